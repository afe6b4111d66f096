//! The collector extension binary for one architecture, from its source (a file, a Go build, a
//! zip), checked to be an executable for that architecture.

pub(crate) mod config;
mod go;
mod zip;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::check::elf;
use crate::manifest::CollectorRecord;
use crate::model::arch::{Arch, elf_machine_name};
use crate::spec::SourceKind;
use crate::support::input;

pub(crate) struct Collector {
    pub data: Arc<[u8]>,
    pub record: CollectorRecord,
    /// How it was had, for progress: read, taken from a zip, built, or reused from the cache.
    pub how: String,
}

/// How the plan, the manifest and errors name a source.
pub(crate) fn describe(source: &SourceKind, spec_dir: &Path) -> String {
    match source {
        SourceKind::Path(p) => spec_dir.join(p).display().to_string(),
        SourceKind::Zip { zip, member, .. } => format!("{}!{member}", spec_dir.join(zip).display()),
        SourceKind::Go { dir, package } => format!("go build {package} in {}", spec_dir.join(dir).display()),
    }
}

/// Reads or builds the collector, then checks it is an executable for `arch`.
pub(crate) fn gather(
    source: &SourceKind,
    spec_dir: &Path,
    dest: &str,
    arch: Arch,
    cache_dir: &Path,
) -> Result<Collector> {
    let label = describe(source, spec_dir);
    // The sha256 is taken from where the bytes were already hashed, else computed here.
    let (data, sha256, module_version, how): (Arc<[u8]>, Option<String>, Option<String>, String) = match source {
        SourceKind::Path(p) => {
            let data = input::read(&spec_dir.join(p), input::FILE_CAP, "collector").context(
                "the collector binary is missing or unreadable: build it or fix the collector path in the spec",
            )?;
            (data.into(), None, None, format!("read {label}"))
        }
        SourceKind::Zip { zip, sha256, member } => (
            zip::member(&spec_dir.join(zip), sha256, member)?,
            None,
            None,
            format!("taken from {label}"),
        ),
        SourceKind::Go { dir, package } => {
            let b = go::build(&spec_dir.join(dir), package, arch, cache_dir)?;
            let how = if b.reused {
                "reused the cached go build"
            } else {
                "built with go build"
            };
            (b.data, Some(b.sha256), b.version, how.to_string())
        }
    };
    let info = elf::check_arch(&data, arch).with_context(|| format!("collector {label}"))?;
    if !info.is_executable() {
        bail!("collector {label}: an ELF library, not an executable: point the spec at the collector program");
    }
    let record = CollectorRecord {
        path: dest.to_string(),
        source: label,
        sha256: sha256.unwrap_or_else(|| hex::encode(Sha256::digest(&data))),
        elf_machine: elf_machine_name(info.machine),
        module_version,
    };
    Ok(Collector { data, record, how })
}
