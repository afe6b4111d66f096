//! The manifest and checksum files written beside each zip, in a stable order.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::archive::Archived;
use crate::support::input;
use crate::support::text::show;

/// 2: `sbom` added. Older manifests (no SBOM beside the zip) still verify.
pub(crate) const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub schema_version: u32,
    pub layer: LayerInfo,
    pub zip: ZipInfo,
    pub limits: LimitsInfo,
    /// Runtimes whose checked-hash bytecode is in the zip.
    pub bytecode_runtimes: Vec<String>,
    pub packages: Vec<PackageRecord>,
    pub collector: Option<CollectorRecord>,
    /// The CycloneDX SBOM written beside the zip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<SbomRecord>,
    pub entries: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SbomRecord {
    /// File name, in the zip's folder.
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct LayerInfo {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub runtimes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ZipInfo {
    pub file: String,
    pub size: u64,
    pub sha256: String,
    /// What AWS reports as the layer version's `CodeSha256`: base64 of the raw digest.
    pub code_sha256: String,
    pub unzipped_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsInfo {
    pub unzipped_bytes: u64,
    pub zipped_warning_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub(crate) struct PackageRecord {
    pub name: String,
    pub version: String,
    pub wheel: String,
    pub sha256: String,
    /// Runtimes this wheel was installed for.
    pub runtimes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectorRecord {
    pub path: String,
    pub source: String,
    pub sha256: String,
    pub elf_machine: String,
    /// Version of the Go module the binary's main package comes from, for `go:` sources.
    pub module_version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManifestEntry {
    pub path: String,
    /// Octal, as `ls -l` users read it: `0755`.
    pub mode: String,
    pub size: u64,
    pub sha256: Option<String>,
}

impl ManifestEntry {
    pub(crate) fn from_archived(a: &Archived) -> ManifestEntry {
        ManifestEntry {
            path: a.path.clone(),
            mode: format_mode(a.mode),
            size: a.size,
            sha256: a.sha256.clone(),
        }
    }
}

pub(crate) fn format_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

pub(crate) fn code_sha256(digest_hex: &str) -> String {
    let raw = hex::decode(digest_hex).expect("sha256 hex from our own hashing");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// `aws-otel-python-arm64-ver-1-20-0.zip` -> `aws-otel-python-arm64-ver-1-20-0.manifest.json`.
pub(crate) fn manifest_path(zip: &Path) -> PathBuf {
    let stem = zip
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    zip.with_file_name(format!("{stem}.manifest.json"))
}

/// `<zip>.sha256`, beside the zip.
pub(crate) fn checksum_path(zip: &Path) -> PathBuf {
    let name = zip
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    zip.with_file_name(format!("{name}.sha256"))
}

/// One line in the format `sha256sum -c` reads: binary mode marker, file name relative to the folder.
pub(crate) fn checksum_line(hex: &str, file_name: &str) -> String {
    format!("{hex} *{file_name}\n")
}

pub(crate) fn to_json(m: &Manifest) -> String {
    let mut s = serde_json::to_string_pretty(m).expect("manifest serializes");
    s.push('\n');
    s
}

/// Reads a manifest: a regular file of bounded size (it lists every entry of a layer).
pub(crate) fn read(path: &Path) -> Result<Manifest> {
    let text = input::read_to_string(path, input::MANIFEST_CAP, "manifest")?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a layerbuild manifest: rebuild the layer",
            show(&path.display().to_string())
        )
    })
}

/// Reads a checksum file of one line for `file_name`; returns the hex digest.
pub(crate) fn read_checksum(path: &Path, file_name: &str) -> Result<String> {
    let text = input::read_to_string(path, input::CHECKSUM_CAP, "checksum file")?;
    for line in text.lines() {
        if let Some((hex, name)) = line.split_once(' ') {
            let name = name.trim_start_matches(['*', ' ']);
            if name == file_name && hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(hex.to_ascii_lowercase());
            }
        }
    }
    anyhow::bail!(
        "{}: no sha256 line for `{}`: regenerate it with `layerbuild build`",
        show(&path.display().to_string()),
        show(file_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_beside_the_zip() {
        let z = Path::new("dist/aws-otel-python-arm64-ver-1-20-0.zip");
        assert_eq!(
            manifest_path(z),
            Path::new("dist/aws-otel-python-arm64-ver-1-20-0.manifest.json")
        );
        assert_eq!(
            checksum_path(z),
            Path::new("dist/aws-otel-python-arm64-ver-1-20-0.zip.sha256")
        );
    }

    #[test]
    fn code_sha256_is_base64_of_digest() {
        // sha256 of the empty string.
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(code_sha256(hex), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(checksum_line(hex, "a.zip"), format!("{hex} *a.zip\n"));
        assert_eq!(format_mode(0o100755), "0755");
    }
}
