//! What `diff` compares, read from a manifest, or from a zip (through the manifest beside it
//! when that verifies against the zip, else from the zip's own entries and
//! `*.dist-info/METADATA`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek};
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::manifest::{self, Manifest, format_mode};
use crate::support::text::show;
use crate::support::{extract, input};
use crate::verify;

/// One layer as `diff` sees it; `None` where the input cannot tell.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub arch: Option<String>,
    pub runtimes: Option<Vec<String>>,
    /// Normalized name -> (name as written, versions; several when runtimes differ).
    pub packages: BTreeMap<String, (String, BTreeSet<String>)>,
    pub collector: Option<Collector>,
    pub entries: BTreeMap<String, Entry>,
    pub zipped: Option<u64>,
    pub unzipped: u64,
    /// Things the reader of the diff should know about where the figures came from.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Collector {
    pub sha256: String,
    pub module_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub mode: String,
    pub size: u64,
    pub sha256: Option<String>,
}

/// PEP 503 normalization, so that `Deprecated` and `deprecated` are one package.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if matches!(c, '_' | '.' | '-') {
            '-'
        } else {
            c.to_ascii_lowercase()
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

pub(crate) fn load(path: &Path) -> Result<Summary> {
    if path.extension().is_some_and(|e| e == "json") {
        return Ok(from_manifest(&manifest::read(path)?));
    }
    let shown = show(&path.display().to_string()).to_string();
    let mut file = input::open_regular(path)?;
    let len = file
        .metadata()
        .with_context(|| format!("{shown}: cannot read it"))?
        .len();
    let beside = manifest::manifest_path(path);
    let mut notes = Vec::new();
    if beside.exists() {
        // A manifest beside a zip speaks for it only once verify has checked it against the
        // zip's own bytes, entry by entry: a hash in it proves nothing, anyone can write one.
        let m = manifest::read(&beside)?;
        match verify::verify_reader(path, &mut file, len, &m) {
            Ok(_) => return Ok(from_manifest(&m)),
            Err(e) => notes.push(format!(
                "{}: does not describe {shown} ({e:#}): read the zip itself",
                show(&beside.display().to_string())
            )),
        }
    }
    let zip = extract::Opened::new(path, file, len, &extract::LAYER)?;
    let mut s = from_zip(zip)?;
    s.notes.extend(notes);
    Ok(s)
}

pub(crate) fn from_manifest(m: &Manifest) -> Summary {
    let mut packages: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for p in &m.packages {
        let slot = packages
            .entry(normalize(&p.name))
            .or_insert_with(|| (p.name.clone(), BTreeSet::new()));
        slot.1.insert(p.version.clone());
    }
    Summary {
        arch: Some(m.layer.arch.clone()),
        runtimes: Some(m.layer.runtimes.clone()),
        packages,
        collector: m.collector.as_ref().map(|c| Collector {
            sha256: c.sha256.clone(),
            module_version: c.module_version.clone(),
        }),
        entries: m
            .entries
            .iter()
            .map(|e| {
                let entry = Entry {
                    mode: e.mode.clone(),
                    size: e.size,
                    sha256: e.sha256.clone(),
                };
                (e.path.clone(), entry)
            })
            .collect(),
        zipped: Some(m.zip.size),
        unzipped: m.zip.unzipped_size,
        notes: Vec::new(),
    }
}

/// Reads a zip that has no manifest: entries, packages from their METADATA, the collector's
/// digest, each entry streamed through sha256 (only a METADATA's head is kept). Architecture,
/// runtimes and the collector's module version stay unknown.
fn from_zip<R: Read + Seek>(mut zip: extract::Opened<R>) -> Result<Summary> {
    let shown = show(&zip.path.display().to_string()).to_string();
    let mut s = Summary {
        zipped: Some(zip.len),
        notes: vec![format!(
            "{shown}: no manifest beside it that describes it: architecture, runtimes and the collector's module version are unknown"
        )],
        ..Summary::default()
    };
    for i in 0..zip.entries.len() {
        let e = &zip.entries[i];
        let name = String::from_utf8_lossy(&e.name).into_owned();
        let mode = format_mode(e.unix_mode().unwrap_or(0));
        if name.ends_with('/') {
            s.entries.insert(
                name,
                Entry {
                    mode,
                    size: 0,
                    sha256: None,
                },
            );
            continue;
        }
        let keep = if name.ends_with(".dist-info/METADATA") {
            METADATA_HEAD
        } else {
            0
        };
        let size = e.size;
        let (sha256, head) = zip.hash(i, keep)?;
        s.unzipped += size;
        if name == "extensions/collector" {
            s.collector = Some(Collector {
                sha256: sha256.clone(),
                module_version: None,
            });
        }
        if keep > 0 {
            add_package(&mut s.packages, &head);
        }
        s.entries.insert(
            name,
            Entry {
                mode,
                size,
                sha256: Some(sha256),
            },
        );
    }
    if s.entries.is_empty() {
        bail!("{shown}: the zip is empty");
    }
    Ok(s)
}

/// How much of a METADATA file is read for its headers, which come first.
const METADATA_HEAD: usize = 1 << 20;

/// Takes `Name:` and `Version:` from the headers of a METADATA file.
fn add_package(packages: &mut BTreeMap<String, (String, BTreeSet<String>)>, metadata: &[u8]) {
    let text = String::from_utf8_lossy(metadata);
    let header = |key: &str| {
        text.lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
    };
    if let (Some(name), Some(version)) = (header("Name:"), header("Version:")) {
        let slot = packages
            .entry(normalize(&name))
            .or_insert_with(|| (name, BTreeSet::new()));
        slot.1.insert(version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_as_pep_503_says() {
        assert_eq!(normalize("Deprecated"), "deprecated");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("a__b-_c"), "a-b-c");
    }

    #[test]
    fn metadata_headers_give_name_and_version() {
        let mut p = BTreeMap::new();
        add_package(
            &mut p,
            b"Metadata-Version: 2.1\nName: Demo_Pkg\nVersion: 1.0\n\nVersion: body\n",
        );
        add_package(&mut p, b"Name: demo-pkg\nVersion: 1.1\n");
        add_package(&mut p, b"Name: broken\n");
        assert_eq!(p.len(), 1);
        let (name, versions) = &p["demo-pkg"];
        assert_eq!(name, "Demo_Pkg");
        assert_eq!(versions.iter().collect::<Vec<_>>(), ["1.0", "1.1"]);
    }
}
