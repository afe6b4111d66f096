//! What `diff` compares, read from a manifest, or from a zip (through its manifest when that
//! matches the zip, else from the zip's own entries and `*.dist-info/METADATA`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::manifest::{self, Manifest, format_mode};
use crate::model::lambda;
use crate::support::input;

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
    // A layer zip is never bigger than what it unpacks to, which Lambda caps.
    let bytes = input::read(path, lambda::UNZIPPED_BYTES, "layer zip")?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let beside = manifest::manifest_path(path);
    let mut notes = Vec::new();
    if beside.exists() {
        let m = manifest::read(&beside)?;
        if m.zip.sha256 == sha {
            return Ok(from_manifest(&m));
        }
        notes.push(format!(
            "{}: does not describe {} (another sha256): read the zip itself",
            beside.display(),
            path.display()
        ));
    }
    let mut s = from_zip(path, &bytes)?;
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
/// digest. Architecture, runtimes and the collector's module version stay unknown.
fn from_zip(path: &Path, bytes: &[u8]) -> Result<Summary> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .with_context(|| format!("{}: not a readable zip or manifest", path.display()))?;
    let mut s = Summary {
        zipped: Some(bytes.len() as u64),
        notes: vec![format!(
            "{}: no manifest beside it: architecture, runtimes and the collector's module version are unknown",
            path.display()
        )],
        ..Summary::default()
    };
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .with_context(|| format!("{}: entry {i} is unreadable: the zip is damaged", path.display()))?;
        let name = f.name().unwrap_or_default().to_string();
        let mode = format_mode(f.unix_mode().unwrap_or(0));
        if f.is_dir() {
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
        // Read no further than Lambda's unzipped limit, whatever the entry declares.
        let room = lambda::UNZIPPED_BYTES - s.unzipped;
        let mut data = Vec::with_capacity(input::capacity(f.size(), room));
        (&mut f)
            .take(room + 1)
            .read_to_end(&mut data)
            .with_context(|| format!("{}: entry `{name}` cannot be read: the zip is damaged", path.display()))?;
        s.unzipped += data.len() as u64;
        if s.unzipped > lambda::UNZIPPED_BYTES {
            bail!(
                "{}: unpacks to more than Lambda's {} bytes: not a layer Lambda would take",
                path.display(),
                lambda::UNZIPPED_BYTES
            );
        }
        let sha256 = hex::encode(Sha256::digest(&data));
        if name == "extensions/collector" {
            s.collector = Some(Collector {
                sha256: sha256.clone(),
                module_version: None,
            });
        }
        if name.ends_with(".dist-info/METADATA") {
            add_package(&mut s.packages, &data);
        }
        s.entries.insert(
            name,
            Entry {
                mode,
                size: data.len() as u64,
                sha256: Some(sha256),
            },
        );
    }
    if s.entries.is_empty() {
        bail!("{}: the zip is empty", path.display());
    }
    Ok(s)
}

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
