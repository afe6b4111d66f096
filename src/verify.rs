//! Re-checks a finished zip against its manifest, its checksum file and the layer rules, from
//! the zip's own bytes: its raw structure first (one unambiguous archive, modes as stored),
//! then every entry streamed, hashed and held to its declared size. Lambda's limits are
//! constants no manifest can raise, and memory stays small whatever the zip holds.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};

use crate::check::zipcanon::Entry as RawEntry;
use crate::check::{elf, rules};
use crate::manifest::{self, Manifest, ManifestEntry, format_mode};
use crate::model::arch::Arch;
use crate::model::lambda;
use crate::support::extract::{self, HashSink, Opened};
use crate::support::input;
use crate::support::outdir;
use crate::support::text::show;

/// How much of each file is kept for the ELF check: headers and program headers.
const ELF_HEAD: usize = 64 << 10;

/// A problem found in one zip: tests and scripts match on the zip and the entry.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{problem}", show(&zip.display().to_string()), entry.as_ref().map(|e| format!("entry `{}`: ", show(e))).unwrap_or_default())]
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
    /// The files beside the zip that were checked with it (its `.sha256`, its SBOM): each is
    /// checked when it travels with the zip, so the report says which did.
    pub beside: Vec<String>,
}

fn fail(zip: &Path, entry: Option<&str>, problem: impl Into<String>) -> anyhow::Error {
    VerifyError {
        zip: zip.to_path_buf(),
        entry: entry.map(str::to_string),
        problem: problem.into(),
    }
    .into()
}

/// Verifies a zip on disk with the manifest (and `.sha256`, when present) beside it.
pub(crate) fn verify_file(zip_path: &Path, manifest_override: Option<&Path>) -> Result<Verified> {
    let folder = zip_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if outdir::interrupted(folder) {
        return Err(fail(
            zip_path,
            None,
            "a build into this folder was interrupted while moving its outputs in: run the build again",
        ));
    }
    let mut file = input::open_regular(zip_path)?;
    let len = file.metadata()?.len();
    let manifest_path = manifest_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest::manifest_path(zip_path));
    let manifest = manifest::read(&manifest_path).map_err(|e| {
        if e.downcast_ref::<input::InputError>().is_some_and(input::InputError::is_not_found) {
            anyhow!(
                "{}: no manifest at {}: verify needs the manifest `layerbuild build` writes beside the zip (or pass --manifest)",
                show(&zip_path.display().to_string()),
                show(&manifest_path.display().to_string())
            )
        } else {
            e
        }
    })?;
    let mut summary = verify_reader(zip_path, &mut file, len, &manifest)?;
    summary.beside.extend(check_checksum_file(zip_path, &summary.sha256)?);
    summary.beside.extend(crate::sbom::verify_beside(zip_path, &manifest)?);
    Ok(summary)
}

/// The `.sha256` beside the zip, when there is one, names the zip's hash; its file name when
/// it was there.
fn check_checksum_file(zip_path: &Path, sha256: &str) -> Result<Option<String>> {
    let sum_path = manifest::checksum_path(zip_path);
    if !sum_path.exists() {
        return Ok(None);
    }
    let name = zip_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let want = manifest::read_checksum(&sum_path, &name)?;
    if want != sha256 {
        return Err(fail(
            zip_path,
            None,
            format!(
                "sha256 is {sha256} but {} says {want}: the zip changed after it was built",
                show(&sum_path.display().to_string())
            ),
        ));
    }
    Ok(sum_path.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Verifies a zip read from `zip` (`len` bytes) against a manifest. Never panics: a corrupt
/// zip is an error.
pub(crate) fn verify_reader<R: Read + Seek>(
    zip_path: &Path,
    zip: &mut R,
    len: u64,
    manifest: &Manifest,
) -> Result<Verified> {
    verify_guarded(zip_path, zip, len, manifest, None)
}

/// Verifies a zip just built in memory, whose sha256 the caller computed from exactly `bytes`
/// (and wrote into the manifest): every check of [`verify_reader`], without hashing the whole
/// zip a second time.
pub(crate) fn verify_built(zip_path: &Path, bytes: &[u8], sha256: &str, manifest: &Manifest) -> Result<Verified> {
    let mut zip = io::Cursor::new(bytes);
    verify_guarded(zip_path, &mut zip, bytes.len() as u64, manifest, Some(sha256))
}

fn verify_guarded<R: Read + Seek>(
    zip_path: &Path,
    zip: &mut R,
    len: u64,
    manifest: &Manifest,
    sha256: Option<&str>,
) -> Result<Verified> {
    match catch_unwind(AssertUnwindSafe(|| verify_inner(zip_path, zip, len, manifest, sha256))) {
        Ok(r) => r,
        Err(_) => Err(fail(zip_path, None, "the zip is corrupt (the reader gave up on it)")),
    }
}

fn verify_inner<R: Read + Seek>(
    zip_path: &Path,
    zip: &mut R,
    len: u64,
    manifest: &Manifest,
    sha256: Option<&str>,
) -> Result<Verified> {
    let arch = Arch::parse(&manifest.layer.arch).ok_or_else(|| {
        fail(
            zip_path,
            None,
            format!("manifest names unknown architecture `{}`", show(&manifest.layer.arch)),
        )
    })?;
    // The listing is held to the manifest's limits below, which name the entry to blame.
    let mut opened =
        Opened::new(zip_path, &mut *zip, len, &extract::UNCAPPED).map_err(|e| fail(zip_path, None, e.detail()))?;
    let expected: BTreeMap<&str, &ManifestEntry> = manifest.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    // Entry by entry first, so a changed zip is reported by what changed in it; every
    // declared size is within the limit before any byte is inflated.
    let unzipped = check_listing(zip_path, &opened.entries, &expected, manifest)?;
    check_contents(zip_path, &mut opened, &expected, arch, manifest)?;
    let entries = opened.entries.len();
    drop(opened);
    let sha256 = check_zip_record(zip_path, zip, len, manifest, sha256)?;
    let mut warnings = Vec::new();
    if len > lambda::ZIPPED_DIRECT_BYTES {
        warnings.push(format!(
            "{}: {len} bytes zipped is over {} bytes: upload it through S3, a direct upload is refused",
            show(&zip_path.display().to_string()),
            lambda::ZIPPED_DIRECT_BYTES
        ));
    }
    Ok(Verified {
        entries,
        size: len,
        unzipped,
        sha256,
        warnings,
        beside: Vec::new(),
    })
}

/// The manifest's record of the zip (sha256, CodeSha256, size) describes these bytes, whose
/// sha256 is `known` when the caller has just computed it.
fn check_zip_record<R: Read + Seek>(
    zip_path: &Path,
    zip: &mut R,
    len: u64,
    manifest: &Manifest,
    known: Option<&str>,
) -> Result<String> {
    let sha256 = match known {
        Some(sha) => sha.to_string(),
        None => {
            let mut sink = HashSink::new(0);
            zip.seek(SeekFrom::Start(0))
                .and_then(|_| io::copy(&mut (&mut *zip).take(len), &mut sink))
                .map_err(|e| fail(zip_path, None, format!("cannot be read ({e})")))?;
            sink.finish().0
        }
    };
    let z = &manifest.zip;
    let wrong = |what: &str, got: &str, said: &str| {
        fail(
            zip_path,
            None,
            format!("{what} is {got} but the manifest says {}", show(said)),
        )
    };
    if sha256 != z.sha256 {
        return Err(wrong("sha256", &sha256, &z.sha256));
    }
    let code = manifest::code_sha256(&sha256);
    if code != z.code_sha256 {
        return Err(wrong("code_sha256", &code, &z.code_sha256));
    }
    if len != z.size {
        return Err(wrong("size", &len.to_string(), &z.size.to_string()));
    }
    Ok(sha256)
}

/// Names, modes and declared sizes against the manifest, and the unzipped total against
/// Lambda's limit (or the manifest's, when lower); returns the total.
fn check_listing(
    zip_path: &Path,
    raw: &[RawEntry],
    expected: &BTreeMap<&str, &ManifestEntry>,
    manifest: &Manifest,
) -> Result<u64> {
    if expected.len() != manifest.entries.len() {
        return Err(fail(
            zip_path,
            None,
            "the manifest lists one path twice: rebuild the layer",
        ));
    }
    let limit = lambda::UNZIPPED_BYTES.min(manifest.limits.unzipped_bytes);
    let mut total = 0u64;
    for e in raw {
        let Some(name) = e.name_str() else {
            return Err(fail(
                zip_path,
                Some(&String::from_utf8_lossy(&e.name)),
                "has a name that is not UTF-8",
            ));
        };
        let want = check_entry(name, e, expected).map_err(|p| fail(zip_path, Some(name), p))?;
        if want.size != e.size {
            return Err(fail(
                zip_path,
                Some(name),
                format!("size {} but the manifest says {}", e.size, want.size),
            ));
        }
        total = total.saturating_add(e.size);
        if total > limit {
            return Err(fail(zip_path, None, over_limit(total, limit)));
        }
    }
    let listed: std::collections::BTreeSet<&[u8]> = raw.iter().map(|e| e.name.as_slice()).collect();
    if let Some(missing) = expected.keys().find(|p| !listed.contains(p.as_bytes())) {
        return Err(fail(
            zip_path,
            Some(missing),
            "is in the manifest but missing from the zip",
        ));
    }
    if total != manifest.zip.unzipped_size {
        return Err(fail(
            zip_path,
            None,
            format!(
                "unzipped size is {total} bytes but the manifest says {}",
                manifest.zip.unzipped_size
            ),
        ));
    }
    Ok(total)
}

fn over_limit(total: u64, limit: u64) -> String {
    if limit == lambda::UNZIPPED_BYTES {
        format!(
            "its entries declare at least {total} bytes unzipped, over Lambda's limit of {limit} bytes for a function and all its layers: remove packages"
        )
    } else {
        format!(
            "its entries declare at least {total} bytes unzipped, over the limit of {limit} bytes the layer was built with"
        )
    }
}

/// An entry's path and raw mode follow the layer rules and match its manifest entry.
fn check_entry<'a>(
    name: &str,
    e: &RawEntry,
    expected: &BTreeMap<&str, &'a ManifestEntry>,
) -> Result<&'a ManifestEntry, String> {
    rules::check_path(name).map_err(|x| format!("unsafe path: {x}"))?;
    let full_mode = e
        .unix_mode()
        .ok_or("has no unix mode: Lambda would unpack it with default permissions")?;
    if full_mode & 0o170000 == 0o120000 {
        return Err("is a symlink: layers must hold regular files".into());
    }
    let want = expected
        .get(name)
        .ok_or("is not in the manifest: the zip was changed after it was built")?;
    rules::check_mode(name, name.ends_with('/'), full_mode)?;
    let mode = format_mode(full_mode);
    if mode != want.mode {
        return Err(format!("mode {mode} but the manifest says {}", show(&want.mode)));
    }
    Ok(want)
}

/// Every file streamed through sha256 with its declared size enforced; ELF headers checked for
/// the layer's architecture; the collector's hash is the manifest's collector record.
fn check_contents<R: Read + Seek>(
    zip_path: &Path,
    zip: &mut Opened<R>,
    expected: &BTreeMap<&str, &ManifestEntry>,
    arch: Arch,
    manifest: &Manifest,
) -> Result<()> {
    let collector = manifest.collector.as_ref();
    let mut collector_seen = false;
    for i in 0..zip.entries.len() {
        let name = zip.entries[i].name_str().unwrap_or_default().to_string();
        let name = name.as_str();
        if name.ends_with('/') {
            continue;
        }
        let bad = |problem: String| fail(zip_path, Some(name), problem);
        let (sha, head) = zip
            .hash(i, ELF_HEAD)
            .map_err(|x| bad(format!("cannot be read back ({}): the zip is damaged", x.problem)))?;
        let want = expected[name];
        if want.sha256.as_deref() != Some(sha.as_str()) {
            return Err(bad(format!(
                "sha256 {sha} but the manifest says {}",
                show(want.sha256.as_deref().unwrap_or("none"))
            )));
        }
        let is_collector = collector.is_some_and(|c| c.path == name);
        if is_collector && collector.is_some_and(|c| c.sha256 != sha) {
            return Err(bad(format!(
                "is the collector, sha256 {sha}, but the manifest's collector record says {}",
                show(collector.map(|c| c.sha256.as_str()).unwrap_or_default())
            )));
        }
        collector_seen |= is_collector;
        check_elf(name, &head, arch, is_collector).map_err(bad)?;
    }
    if let Some(c) = collector.filter(|_| !collector_seen) {
        return Err(fail(
            zip_path,
            Some(&c.path),
            "is the manifest's collector but not a file in the zip",
        ));
    }
    Ok(())
}

fn check_elf(name: &str, head: &[u8], arch: Arch, is_collector: bool) -> Result<(), String> {
    if elf::is_elf(head) || elf::looks_like_shared_object(name) || is_collector {
        let info = elf::check_arch(head, arch).map_err(|e| e.to_string())?;
        if is_collector && !info.is_executable() {
            return Err("is an ELF library, not an executable: the collector must be a program".into());
        }
    }
    Ok(())
}

/// Verifies each zip, stopping at the first problem.
pub(crate) fn run(zips: &[PathBuf], manifest_override: Option<&Path>) -> Result<Vec<(PathBuf, Verified)>> {
    zips.iter()
        .map(|z| verify_file(z, manifest_override).map(|v| (z.clone(), v)))
        .collect()
}
