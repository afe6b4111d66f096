//! Does an SBOM describe this zip? Checked against the zip's manifest (itself checked against
//! the zip): the layer's sha256, every Python distribution the zip holds with its version and
//! wheel, and the collector's sha256.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cyclonedx_bom::models::bom::Bom;
use cyclonedx_bom::models::component::Component;
use cyclonedx_bom::models::hash::HashAlgorithm;

use super::SbomError;
use super::document::prop;
use super::python::{metadata_dirs, name_version_of};
use crate::manifest::Manifest;
use crate::python::tags::{normalize, same_version};
use crate::support::text::show;

/// Checks `sbom` (JSON bytes) against `manifest`; `sbom_path` names it in errors.
pub(crate) fn check(sbom: &[u8], sbom_path: &Path, manifest: &Manifest) -> Result<(), SbomError> {
    let bad = |problem: String| SbomError::Mismatch {
        sbom: sbom_path.to_path_buf(),
        problem,
    };
    let bom = Bom::parse_from_json_v1_5(sbom)
        .map_err(|e| bad(format!("not a CycloneDX 1.5 JSON document ({})", show(&e.to_string()))))?;
    let layer = bom
        .metadata
        .as_ref()
        .and_then(|m| m.component.as_ref())
        .ok_or_else(|| bad("names no layer (metadata.component)".into()))?;
    let layer_sha = sha256(layer);
    if layer_sha.as_deref() != Some(manifest.zip.sha256.as_str()) {
        return Err(bad(format!(
            "describes a zip with sha256 {}, not {} ({})",
            show(layer_sha.as_deref().unwrap_or("none")),
            show(&manifest.zip.file),
            show(&manifest.zip.sha256)
        )));
    }
    let components = bom.components.as_ref().map(|c| c.0.as_slice()).unwrap_or_default();
    check_python(components, manifest).map_err(bad)?;
    check_collector(components, manifest).map_err(bad)
}

/// Every metadata folder (dist-info, egg-info) in the zip is listed by a PyPI component of the same name and
/// version, no component lists one that is not there, and every installed wheel is listed
/// with its sha256.
fn check_python(components: &[Component], manifest: &Manifest) -> Result<(), String> {
    let pypi: Vec<&Component> = components
        .iter()
        .filter(|c| c.purl.as_ref().is_some_and(|p| p.as_ref().starts_with("pkg:pypi/")))
        .collect();
    let mut listed: BTreeMap<String, &Component> = BTreeMap::new();
    for c in &pypi {
        for d in props(c, prop::PY_DIST_INFO) {
            listed.insert(d, c);
        }
    }
    let dirs = metadata_dirs(manifest.entries.iter().map(|e| e.path.as_str()));
    let in_zip: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
    for dir in &in_zip {
        let (name, version) = name_version_of(dir);
        let c = listed
            .get(*dir)
            .ok_or_else(|| format!("lists no component for `{}`, which the zip holds", show(dir)))?;
        let (c_name, c_version) = (c.name.to_string(), version_of(c));
        if normalize(&c_name) != normalize(&name) || !same_version(&c_version, &version) {
            return Err(format!(
                "says `{}` is {} {}, but the zip has {} {} there",
                show(dir),
                show(&c_name),
                show(&c_version),
                show(&name),
                show(&version)
            ));
        }
    }
    if let Some(extra) = listed.keys().find(|d| !in_zip.contains(d.as_str())) {
        return Err(format!("lists `{}`, which is not in the zip", show(extra)));
    }
    for p in &manifest.packages {
        let found = pypi
            .iter()
            .any(|c| props(c, prop::PY_WHEEL).contains(&p.wheel) && sha256(c).as_deref() == Some(p.sha256.as_str()));
        if !found {
            return Err(format!(
                "does not list wheel {} with sha256 {}",
                show(&p.wheel),
                show(&p.sha256)
            ));
        }
    }
    Ok(())
}

/// The collector's component carries the sha256 of the collector in the zip.
fn check_collector(components: &[Component], manifest: &Manifest) -> Result<(), String> {
    let Some(collector) = &manifest.collector else {
        return Ok(());
    };
    let c = components
        .iter()
        .find(|c| props(c, prop::PATH).contains(&collector.path))
        .ok_or_else(|| format!("lists no component for the collector `{}`", show(&collector.path)))?;
    let got = sha256(c);
    if got.as_deref() != Some(collector.sha256.as_str()) {
        return Err(format!(
            "gives the collector `{}` sha256 {}, but the zip's is {}",
            show(&collector.path),
            show(got.as_deref().unwrap_or("none")),
            show(&collector.sha256)
        ));
    }
    Ok(())
}

fn props(c: &Component, name: &str) -> Vec<String> {
    c.properties
        .iter()
        .flat_map(|p| p.0.iter())
        .filter(|p| p.name == name)
        .map(|p| p.value.to_string())
        .collect()
}

fn sha256(c: &Component) -> Option<String> {
    c.hashes
        .iter()
        .flat_map(|h| h.0.iter())
        .find(|h| h.alg == HashAlgorithm::SHA_256)
        .map(|h| h.content.0.to_ascii_lowercase())
}

fn version_of(c: &Component) -> String {
    c.version.as_ref().map(|v| v.to_string()).unwrap_or_default()
}
