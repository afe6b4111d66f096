//! Re-checks a finished zip against its manifest, its checksum file and the layer rules.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use crate::check::elf;
use crate::check::rules;
use crate::manifest::{self, Manifest, ManifestEntry, format_mode};
use crate::model::arch::Arch;

/// A problem found in one zip: tests and scripts match on the zip and the entry.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{problem}", zip.display(), entry.as_ref().map(|e| format!("entry `{e}`: ")).unwrap_or_default())]
pub(crate) struct VerifyError {
    pub zip: PathBuf,
    pub entry: Option<String>,
    pub problem: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub entries: usize,
    pub size: u64,
    pub unzipped: u64,
    pub sha256: String,
    pub warnings: Vec<String>,
}

/// Verifies a zip on disk with the manifest (and `.sha256`, when present) beside it.
pub(crate) fn verify_file(zip_path: &Path, manifest_override: Option<&Path>) -> Result<Verified> {
    let bytes = fs_err::read(zip_path)?;
    let manifest_path = manifest_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest::manifest_path(zip_path));
    if !manifest_path.exists() {
        bail!(
            "{}: no manifest at {}: verify needs the manifest `layerbuild build` writes beside the zip (or pass --manifest)",
            zip_path.display(),
            manifest_path.display()
        );
    }
    let manifest = manifest::read(&manifest_path)?;
    let summary = verify_bytes(zip_path, &bytes, &manifest)?;
    let sum_path = manifest::checksum_path(zip_path);
    if sum_path.exists() {
        let name = zip_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let want = manifest::read_checksum(&sum_path, &name)?;
        if want != summary.sha256 {
            return Err(fail(
                zip_path,
                None,
                format!(
                    "sha256 is {} but {} says {want}: the zip changed after it was built",
                    summary.sha256,
                    sum_path.display()
                ),
            ));
        }
    }
    Ok(summary)
}

fn fail(zip: &Path, entry: Option<&str>, problem: impl Into<String>) -> anyhow::Error {
    VerifyError {
        zip: zip.to_path_buf(),
        entry: entry.map(str::to_string),
        problem: problem.into(),
    }
    .into()
}

/// Verifies zip bytes against a manifest. Never panics: a corrupt zip is an error.
pub(crate) fn verify_bytes(zip_path: &Path, bytes: &[u8], manifest: &Manifest) -> Result<Verified> {
    match catch_unwind(AssertUnwindSafe(|| verify_inner(zip_path, bytes, manifest))) {
        Ok(r) => r,
        Err(_) => Err(fail(zip_path, None, "the zip is corrupt (the reader gave up on it)")),
    }
}

fn verify_inner(zip_path: &Path, bytes: &[u8], manifest: &Manifest) -> Result<Verified> {
    let arch = Arch::parse(&manifest.layer.arch).ok_or_else(|| {
        fail(
            zip_path,
            None,
            format!("manifest names unknown architecture `{}`", manifest.layer.arch),
        )
    })?;
    let mut zip = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| fail(zip_path, None, format!("not a readable zip ({e}): rebuild it")))?;
    let expected: BTreeMap<&str, &ManifestEntry> = manifest.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let collector = manifest.collector.as_ref().map(|c| c.path.as_str());
    let mut seen = BTreeSet::new();
    let mut unzipped = 0u64;
    for i in 0..zip.len() {
        let mut file = zip
            .by_index(i)
            .map_err(|e| fail(zip_path, None, format!("entry {i} is unreadable ({e})")))?;
        let name = String::from_utf8(file.name_raw().to_vec())
            .map_err(|_| fail(zip_path, None, format!("entry {i} has a name that is not UTF-8")))?;
        let bad = |problem: String| fail(zip_path, Some(&name), problem);
        if !seen.insert(name.clone()) {
            return Err(bad("appears twice".into()));
        }
        let want = check_entry(&name, file.is_dir(), file.unix_mode(), &expected).map_err(bad)?;
        if file.is_dir() {
            continue;
        }
        let mut data = Vec::with_capacity(file.size().min(1 << 30) as usize);
        file.read_to_end(&mut data)
            .map_err(|e| bad(format!("cannot be read back ({e}): the zip is damaged")))?;
        check_content(&name, &data, want, arch, collector == Some(name.as_str())).map_err(bad)?;
        unzipped += data.len() as u64;
    }
    if let Some(missing) = expected.keys().find(|p| !seen.contains(**p)) {
        return Err(fail(
            zip_path,
            Some(missing),
            "is in the manifest but missing from the zip",
        ));
    }
    let (sha256, warnings) = check_whole(zip_path, bytes, manifest, unzipped)?;
    Ok(Verified {
        entries: seen.len(),
        size: bytes.len() as u64,
        unzipped,
        sha256,
        warnings,
    })
}

/// An entry's path and mode follow the layer rules and match its manifest entry.
fn check_entry<'a>(
    name: &str,
    is_dir: bool,
    unix_mode: Option<u32>,
    expected: &BTreeMap<&str, &'a ManifestEntry>,
) -> Result<&'a ManifestEntry, String> {
    rules::check_path(name).map_err(|e| format!("unsafe path: {e}"))?;
    let full_mode = unix_mode.ok_or("has no unix mode: Lambda would unpack it with default permissions")?;
    if full_mode & 0o170000 == 0o120000 {
        return Err("is a symlink: layers must hold regular files".into());
    }
    let want = expected
        .get(name)
        .ok_or("is not in the manifest: the zip was changed after it was built")?;
    rules::check_mode(name, is_dir, full_mode)?;
    let mode = format_mode(full_mode);
    if mode != want.mode {
        return Err(format!("mode {mode} but the manifest says {}", want.mode));
    }
    Ok(want)
}

/// A file's bytes are the manifest's, and ELF files are for the layer's architecture.
fn check_content(name: &str, data: &[u8], want: &ManifestEntry, arch: Arch, is_collector: bool) -> Result<(), String> {
    let sha = hex::encode(Sha256::digest(data));
    if data.len() as u64 != want.size {
        return Err(format!("size {} but the manifest says {}", data.len(), want.size));
    }
    if want.sha256.as_deref() != Some(sha.as_str()) {
        return Err(format!(
            "sha256 {sha} but the manifest says {}",
            want.sha256.as_deref().unwrap_or("none")
        ));
    }
    if elf::is_elf(data) || elf::looks_like_shared_object(name) || is_collector {
        let info = elf::check_arch(data, arch).map_err(|e| e.to_string())?;
        if is_collector && !info.is_executable() {
            return Err("is an ELF library, not an executable: the collector must be a program".into());
        }
    }
    Ok(())
}

/// The zip's own hash and sizes: its sha256, the unzipped limit, the direct-upload warning.
fn check_whole(zip_path: &Path, bytes: &[u8], manifest: &Manifest, unzipped: u64) -> Result<(String, Vec<String>)> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    if sha256 != manifest.zip.sha256 {
        return Err(fail(
            zip_path,
            None,
            format!("sha256 is {sha256} but the manifest says {}", manifest.zip.sha256),
        ));
    }
    if unzipped > manifest.limits.unzipped_bytes {
        return Err(fail(
            zip_path,
            None,
            format!(
                "unzipped size {unzipped} bytes is over the limit of {} bytes (Lambda's 250 MB for a function and all its layers): remove packages or raise limits.unzipped_bytes",
                manifest.limits.unzipped_bytes
            ),
        ));
    }
    let mut warnings = Vec::new();
    if bytes.len() as u64 > manifest.limits.zipped_warning_bytes {
        warnings.push(format!(
            "{}: {} bytes zipped is over {} bytes: upload it through S3, a direct upload is refused",
            zip_path.display(),
            bytes.len(),
            manifest.limits.zipped_warning_bytes
        ));
    }
    Ok((sha256, warnings))
}

/// Verifies each zip, stopping at the first problem.
pub(crate) fn run(zips: &[PathBuf], manifest_override: Option<&Path>) -> Result<Vec<(PathBuf, Verified)>> {
    if manifest_override.is_some() && zips.len() > 1 {
        return Err(anyhow!(
            "--manifest names one manifest: verify one zip at a time with it"
        ));
    }
    zips.iter()
        .map(|z| verify_file(z, manifest_override).map(|v| (z.clone(), v)))
        .collect()
}
