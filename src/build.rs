//! Executes a plan: per architecture gather, check, archive, verify; then put every file in
//! place at once, so a failed build leaves nothing at the output paths.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::arch::Arch;
use crate::archive;
use crate::check;
use crate::gather;
use crate::manifest::{self, LayerInfo, LimitsInfo, Manifest, ManifestEntry, ZipInfo};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::verify;

/// One finished zip.
#[derive(Debug)]
pub struct Built {
    pub zip: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// Outputs written to temp files in --out, waiting to be renamed into place.
struct Staged {
    built: Built,
    zip: NamedTempFile,
    manifest: NamedTempFile,
    checksum: NamedTempFile,
}

fn temp_in(dir: &Path) -> Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".layerbuild-")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot create a temp file in {}: check the --out folder is writable",
                dir.display()
            )
        })
}

fn stage(plan: &Plan, arch: Arch, progress: &Progress) -> Result<Staged> {
    let bar = progress.stage(arch, "build");
    bar.set_message("gathering inputs");
    let layer = gather::gather(plan, arch).with_context(|| format!("cannot build the {arch} layer"))?;
    bar.set_message("checking");
    let limits = &plan.spec.spec.limits;
    check::check(&layer.entries, arch, limits.unzipped_bytes)
        .with_context(|| format!("cannot build the {arch} layer"))?;

    bar.set_message(format!("compressing {} files", layer.entries.len()));
    // Built in memory: it is hashed and verified next, so reading it back from disk is waste.
    let mut zip_bytes = std::io::Cursor::new(Vec::new());
    let listing = archive::write(
        &layer.entries,
        plan.time,
        &mut zip_bytes,
        Some(&plan.cache.join("deflate")),
    )?;
    let bytes = zip_bytes.into_inner();
    let mut zip_tmp = temp_in(&plan.out)?;
    zip_tmp.write_all(&bytes)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));

    let zip_name = plan.zip_name(arch);
    let zip_path = plan.out.join(&zip_name);
    let mut packages = layer.packages;
    packages.sort();
    let manifest = Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        layer: LayerInfo {
            name: plan.spec.spec.name.clone(),
            version: plan.spec.spec.version.clone(),
            arch: arch.lambda_name().to_string(),
            runtimes: plan.runtimes.iter().map(|r| r.to_string()).collect(),
        },
        zip: ZipInfo {
            file: zip_name.clone(),
            size: bytes.len() as u64,
            code_sha256: manifest::code_sha256(&sha256),
            sha256: sha256.clone(),
            unzipped_size: listing.iter().map(|a| a.size).sum(),
        },
        limits: LimitsInfo {
            unzipped_bytes: limits.unzipped_bytes,
            zipped_warning_bytes: limits.zipped_warning_bytes,
        },
        bytecode_runtimes: layer.bytecode_runtimes.iter().map(|r| r.to_string()).collect(),
        packages,
        collector: layer.collector,
        entries: listing.iter().map(ManifestEntry::from_archived).collect(),
    };

    bar.set_message("verifying");
    let verified = verify::verify_bytes(&zip_path, &bytes, &manifest)
        .context("the zip just built fails verification (a layerbuild bug: please report it)")?;

    let mut manifest_tmp = temp_in(&plan.out)?;
    manifest_tmp.write_all(manifest::to_json(&manifest).as_bytes())?;
    let mut checksum_tmp = temp_in(&plan.out)?;
    checksum_tmp.write_all(manifest::checksum_line(&sha256, &zip_name).as_bytes())?;
    bar.done("ok");
    Ok(Staged {
        built: Built {
            manifest_path: manifest::manifest_path(&zip_path),
            zip: zip_path,
            manifest,
            warnings: verified.warnings,
            notes: layer.notes,
        },
        zip: zip_tmp,
        manifest: manifest_tmp,
        checksum: checksum_tmp,
    })
}

fn persist(tmp: NamedTempFile, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Temp files are 0600; outputs are for everyone to read.
    fs_err::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(to)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot move the finished file to {}", to.display()))?;
    Ok(())
}

/// Builds every zip of the plan; nothing lands at an output path unless all of them verified.
pub fn run(plan: &Plan, progress: &Progress) -> Result<Vec<Built>> {
    fs_err::create_dir_all(&plan.out).context("cannot create the output folder: check --out")?;
    let staged: Vec<Staged> = plan
        .arches
        .par_iter()
        .map(|&a| stage(plan, a, progress))
        .collect::<Result<_>>()?;
    let mut built = Vec::new();
    for s in staged {
        persist(s.manifest, &s.built.manifest_path)?;
        persist(s.checksum, &manifest::checksum_path(&s.built.zip))?;
        persist(s.zip, &s.built.zip)?;
        built.push(s.built);
    }
    write_sha256sums(&plan.out, &built)?;
    Ok(built)
}

/// `SHA256SUMS` for every zip in the folder, built now or earlier, sorted by name.
fn write_sha256sums(out: &Path, built: &[Built]) -> Result<()> {
    let mut names: Vec<String> = fs_err::read_dir(out)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".zip") && !n.starts_with('.'))
        .collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        let hex = match built.iter().find(|b| b.manifest.zip.file == name) {
            Some(b) => b.manifest.zip.sha256.clone(),
            None => hex::encode(Sha256::digest(fs_err::read(out.join(&name))?)),
        };
        text.push_str(&manifest::checksum_line(&hex, &name));
    }
    let mut tmp = temp_in(out)?;
    tmp.write_all(text.as_bytes())?;
    persist(tmp, &out.join("SHA256SUMS"))
}
