//! The layer's CycloneDX SBOM: written by `build` beside each zip, printed by `sbom` for any
//! zip, checked by `verify` against the zip it sits beside.
//!
//! ```text
//! layer       the layer's files: a build's entries, or a zip read on its own
//! python      dist-info folders: METADATA (name, version, license), WHEEL, RECORD
//! gobuild     Go build info of ELF programs (`.go.buildinfo`)
//! inventory   files sorted into distributions, programs and the layer's own files
//! document    the CycloneDX document, built with the cyclonedx-bom model
//! check       does an SBOM describe this zip?
//! ```

mod check;
mod document;
mod gobuild;
mod inventory;
mod layer;
mod python;

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::{Manifest, SbomRecord};
use crate::model::arch::Arch;
use crate::model::entry::Entry;
use crate::support::text::show;
use crate::support::{extract, input};
use inventory::{Inventory, Known, LayerId};

pub(crate) use check::check;

/// Failures of making or checking an SBOM.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SbomError {
    #[error("{0}")]
    Zip(String),
    #[error("`{}` {problem}", show(path))]
    Read { path: String, problem: String },
    #[error("cannot write the SBOM ({0}): a layerbuild bug, please report it")]
    Write(String),
    #[error("{}: {problem}: the SBOM does not describe the zip beside it; rebuild the layer", show(&sbom.display().to_string()))]
    Mismatch { sbom: PathBuf, problem: String },
}

/// A layer's SBOM is about 170 KB; verify reads no file larger than this as one.
const MAX_SBOM: u64 = 64 << 20;

/// The largest SBOM a layer of this manifest's size can have: about 45 bytes per entry for the
/// 1.20.0 layer (168 KB for 3,929 entries), at most a few hundred for a file no distribution
/// owns. A file the manifest's hash vouches for is still parsed only within this, since the
/// parser's memory grows some 60 times the document's.
fn sbom_cap(manifest: &Manifest) -> u64 {
    let listed = (manifest.entries.len() + manifest.packages.len()) as u64;
    MAX_SBOM.min((1 << 20) + listed.saturating_mul(1024))
}

/// What follows the zip's stem in the SBOM's file name.
pub(crate) const SUFFIX: &str = ".cdx.json";

/// `dist/x-ver-1-0-0.zip` -> `dist/x-ver-1-0-0.cdx.json`.
pub(crate) fn path(zip: &Path) -> PathBuf {
    let stem = zip
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    zip.with_file_name(format!("{stem}{SUFFIX}"))
}

/// The file name of the SBOM beside `zip`, as the manifest records it.
fn file_name(zip: &Path) -> String {
    path(zip)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The manifest's record of the SBOM written beside `zip`.
pub(crate) fn record(zip: &Path, sbom: &[u8]) -> SbomRecord {
    SbomRecord {
        file: file_name(zip),
        sha256: hex::encode(Sha256::digest(sbom)),
    }
}

/// The SBOM of a layer just built, from its entries and what its manifest knows (the wheels,
/// the collector), checked against the manifest the way `verify` will check it.
pub(crate) fn for_build(manifest: &Manifest, entries: &[Entry], time: zip::DateTime) -> Result<Vec<u8>, SbomError> {
    let mut files = layer::Built::new(entries, &manifest.entries);
    let known = Known {
        packages: Some(&manifest.packages),
        collector: manifest.collector.as_ref().map(|c| c.path.as_str()),
    };
    let layer = LayerId {
        name: manifest.layer.name.clone(),
        version: Some(manifest.layer.version.clone()),
        arch: Some(manifest.layer.arch.clone()),
        runtimes: manifest.layer.runtimes.clone(),
        zip_sha256: manifest.zip.sha256.clone(),
        time: iso8601(time),
        made_from: "build",
    };
    let json = document::json(&inventory::gather(&mut files, &known, layer)?)?;
    check(&json, &path(Path::new(&manifest.zip.file)), manifest)?;
    Ok(json)
}

/// The SBOM of any layer zip, from the zip alone: no wheel hashes, and the layer's name,
/// version and architecture from an ADOT-style file name (`name-amd64-ver-1-20-0.zip`) or
/// the programs' Go build settings. The zip is read as every zip of someone else's is
/// ([`extract::Opened`]): refused unless canonical and within what Lambda unpacks.
pub(crate) fn for_zip<R: Read + Seek>(path: &Path, mut zip: R, len: u64) -> Result<Vec<u8>, SbomError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let opened = extract::Opened::new(path, &mut zip, len, &extract::LAYER).map_err(|e| SbomError::Zip(e.detail()))?;
    let mut files = layer::Zipped::new(opened);
    let (name, version, arch) = name_parts(&file_name);
    let layer = LayerId {
        name,
        version,
        arch: arch.map(|a| a.lambda_name().to_string()),
        runtimes: Vec::new(),
        // Hashed below, once the zip reader is done with the file.
        zip_sha256: String::new(),
        time: iso8601(files.newest.unwrap_or_default()),
        made_from: "zip",
    };
    let mut inv = inventory::gather(&mut files, &Known::default(), layer)?;
    drop(files);
    inv.layer.zip_sha256 = zip
        .seek(SeekFrom::Start(0))
        .and_then(|_| input::sha256_of(&mut (&mut zip).take(len)))
        .map_err(|e| SbomError::Zip(format!("cannot be read ({e})")))?;
    if inv.layer.arch.is_none() {
        inv.layer.arch = go_arch(&inv);
    }
    document::json(&inv)
}

/// `aws-otel-python-amd64-ver-1-20-0.zip` -> (`aws-otel-python`, `1.20.0`, x86_64).
fn name_parts(file_name: &str) -> (String, Option<String>, Option<Arch>) {
    let stem = file_name.strip_suffix(".zip").unwrap_or(file_name);
    let Some((head, ver)) = stem.rsplit_once("-ver-") else {
        return (stem.to_string(), None, None);
    };
    let version = Some(ver.replace('-', ".")).filter(|v| !v.is_empty());
    match head.rsplit_once('-') {
        Some((name, arch)) if Arch::parse(arch).is_some() => (name.to_string(), version, Arch::parse(arch)),
        _ => (head.to_string(), version, None),
    }
}

/// The architecture the programs were built for, when they all agree.
fn go_arch(inv: &Inventory) -> Option<String> {
    let mut arches = inv.programs.iter().filter_map(|p| {
        let info = p.go.as_ref().ok()?;
        let goarch = info.settings.iter().find(|(k, _)| k == "GOARCH")?;
        Arch::parse(&goarch.1)
    });
    let first = arches.next()?;
    arches.all(|a| a == first).then(|| first.lambda_name().to_string())
}

/// A zip time (UTC, as layerbuild writes it) in ISO 8601.
fn iso8601(t: zip::DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Checks the SBOM the manifest records beside `zip`, when it is there: describing the zip, and
/// the bytes the manifest hashed; its file name when it was there. Manifests from before SBOMs
/// (schema 1) record none.
pub(crate) fn verify_beside(zip: &Path, manifest: &Manifest) -> Result<Option<String>, SbomError> {
    let Some(rec) = &manifest.sbom else {
        return Ok(None);
    };
    // The name comes from the zip's, never from the manifest: a manifest must not point
    // verify at some other file.
    let sbom_path = path(zip);
    let bad = |problem: String| SbomError::Mismatch {
        sbom: sbom_path.clone(),
        problem,
    };
    if file_name(zip) != rec.file {
        return Err(bad(format!(
            "the manifest names the SBOM `{}` instead",
            show(&rec.file)
        )));
    }
    let bytes = match input::read(&sbom_path, sbom_cap(manifest), "CycloneDX SBOM") {
        Ok(bytes) => bytes,
        // Like the `.sha256`, it is checked when it travels with the zip.
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(bad(format!("cannot be read ({e})"))),
    };
    // Hashed before it is parsed: a file that is not the one the manifest records is refused
    // without handing its bytes to the JSON parser, whose memory grows many times theirs.
    let sha = hex::encode(Sha256::digest(&bytes));
    if sha != rec.sha256 {
        return Err(bad(format!(
            "sha256 is {sha} but the manifest says {}: it was changed after the build",
            show(&rec.sha256)
        )));
    }
    check(&bytes, &sbom_path, manifest)?;
    Ok(Some(rec.file.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::{Entry, bytes};

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(p, t)| Entry::file(*p, false, bytes(t.as_bytes()), "test"))
            .collect();
        let mut out = std::io::Cursor::new(Vec::new());
        crate::archive::write(
            &entries,
            crate::archive::dos_time_from_unix(1_700_000_000),
            &mut out,
            None,
        )
        .unwrap();
        out.into_inner()
    }

    fn sbom_of(zip: &[u8]) -> Vec<u8> {
        let path = Path::new("l-amd64-ver-1-0.zip");
        for_zip(path, std::io::Cursor::new(zip), zip.len() as u64).unwrap()
    }

    #[test]
    fn same_zip_same_bytes_and_another_zip_another_serial() {
        let dist = "python/pkg-1.0.dist-info";
        let a = zip_of(&[
            (&format!("{dist}/METADATA"), "Name: pkg\nVersion: 1.0\nLicense: MIT\n"),
            (&format!("{dist}/RECORD"), "pkg/__init__.py,,\n"),
            ("python/pkg/__init__.py", ""),
            ("otel-instrument", "#!/bin/sh\n"),
        ]);
        let first = sbom_of(&a);
        assert_eq!(first, sbom_of(&a));
        let doc: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(doc["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(doc["components"][0]["purl"], "pkg:pypi/pkg@1.0");
        assert_eq!(doc["components"][1]["name"], "otel-instrument");
        assert_eq!(
            doc["components"].as_array().unwrap().len(),
            2,
            "the RECORD owns pkg/__init__.py"
        );
        let b = zip_of(&[("otel-instrument", "#!/bin/sh\nexit 0\n")]);
        let other: serde_json::Value = serde_json::from_slice(&sbom_of(&b)).unwrap();
        assert_ne!(doc["serialNumber"], other["serialNumber"]);
        let junk = for_zip(Path::new("x.zip"), std::io::Cursor::new(b"not a zip"), 9);
        assert!(matches!(junk, Err(SbomError::Zip(_))));
    }

    #[test]
    fn names_from_the_zip() {
        assert_eq!(
            path(Path::new("dist/aws-otel-python-arm64-ver-1-20-0.zip")),
            Path::new("dist/aws-otel-python-arm64-ver-1-20-0.cdx.json")
        );
        assert_eq!(
            name_parts("aws-otel-python-amd64-ver-1-20-0.zip"),
            (
                "aws-otel-python".to_string(),
                Some("1.20.0".to_string()),
                Some(Arch::X86_64)
            )
        );
        assert_eq!(
            name_parts("layer-ver-2.zip"),
            ("layer".to_string(), Some("2".to_string()), None)
        );
        assert_eq!(name_parts("mine.zip"), ("mine".to_string(), None, None));
        let t = crate::archive::dos_time_from_unix(1_700_000_000);
        assert_eq!(iso8601(t), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(zip::DateTime::default()), "1980-01-01T00:00:00Z");
    }
}
