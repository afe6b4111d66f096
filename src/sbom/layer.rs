//! A layer's files as the SBOM reads them: a build's entries (already hashed, in memory), or a
//! zip on its own, whose members are unpacked only when asked for.

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::SbomError;
use crate::manifest::ManifestEntry;
use crate::model::entry::Entry;
use crate::support::extract::{ExtractError, Opened};
use crate::support::input;

/// Read access to every file of a layer.
pub(crate) trait LayerFiles {
    /// Every file (not folder) in the layer, sorted.
    fn paths(&self) -> &[String];
    fn read(&mut self, path: &str) -> Result<Arc<[u8]>, SbomError>;
    fn sha256(&mut self, path: &str) -> Result<String, SbomError>;
}

/// A layer being built: its entries, hashed by the archive step.
pub(crate) struct Built<'a> {
    paths: Vec<String>,
    entries: HashMap<&'a str, &'a Entry>,
    sums: HashMap<&'a str, &'a str>,
}

impl<'a> Built<'a> {
    pub(crate) fn new(entries: &'a [Entry], listing: &'a [ManifestEntry]) -> Built<'a> {
        let sums: HashMap<&str, &str> = listing
            .iter()
            .filter_map(|e| Some((e.path.as_str(), e.sha256.as_deref()?)))
            .collect();
        let mut paths: Vec<String> = sums.keys().map(|p| p.to_string()).collect();
        paths.sort();
        Built {
            paths,
            entries: entries.iter().map(|e| (e.path.as_str(), e)).collect(),
            sums,
        }
    }
}

impl LayerFiles for Built<'_> {
    fn paths(&self) -> &[String] {
        &self.paths
    }

    fn read(&mut self, path: &str) -> Result<Arc<[u8]>, SbomError> {
        let entry = self.entries.get(path).ok_or_else(|| missing(path))?;
        entry.read().map_err(|e| SbomError::Read {
            path: path.to_string(),
            problem: format!("cannot be read ({e:#})"),
        })
    }

    fn sha256(&mut self, path: &str) -> Result<String, SbomError> {
        self.sums.get(path).map(|s| s.to_string()).ok_or_else(|| missing(path))
    }
}

fn missing(path: &str) -> SbomError {
    SbomError::Read {
        path: path.to_string(),
        problem: "is not in the layer".into(),
    }
}

/// A zip read on its own, ours or anyone's, through the one reader of other people's zips:
/// canonical, within what Lambda unpacks, every member streamed.
pub(crate) struct Zipped<R: Read + Seek> {
    zip: Opened<R>,
    paths: Vec<String>,
    /// Zip path -> member index.
    index: HashMap<String, usize>,
    /// The sha256 of every member hashed so far: the collector is unpacked once, not twice.
    sums: HashMap<String, String>,
    /// The newest member time, as the zip stores it (no time zone: layerbuild writes UTC).
    pub newest: Option<zip::DateTime>,
}

impl<R: Read + Seek> Zipped<R> {
    pub(crate) fn new(mut zip: Opened<R>) -> Zipped<R> {
        let mut index = HashMap::new();
        let mut newest: Option<zip::DateTime> = None;
        for i in 0..zip.entries.len() {
            let e = &zip.entries[i];
            if e.name.ends_with(b"/") {
                continue;
            }
            let name = String::from_utf8_lossy(&e.name).into_owned();
            if let Some(t) = zip.modified(i) {
                newest = Some(newest.map_or(t, |n| if key(t) > key(n) { t } else { n }));
            }
            index.insert(name, i);
        }
        let mut paths: Vec<String> = index.keys().cloned().collect();
        paths.sort();
        Zipped {
            zip,
            paths,
            index,
            sums: HashMap::new(),
            newest,
        }
    }

    fn member(&self, path: &str) -> Result<usize, SbomError> {
        self.index.get(path).copied().ok_or_else(|| missing(path))
    }
}

/// Orders zip times: date bits above time bits.
fn key(t: zip::DateTime) -> u32 {
    (u32::from(t.datepart()) << 16) | u32::from(t.timepart())
}

fn unreadable(path: &str, e: ExtractError) -> SbomError {
    SbomError::Read {
        path: path.to_string(),
        problem: format!("cannot be unpacked ({})", e.detail()),
    }
}

impl<R: Read + Seek> LayerFiles for Zipped<R> {
    fn paths(&self) -> &[String] {
        &self.paths
    }

    fn read(&mut self, path: &str) -> Result<Arc<[u8]>, SbomError> {
        let i = self.member(path)?;
        let data = self.zip.read(i, input::FILE_CAP).map_err(|e| unreadable(path, e))?;
        self.sums.insert(path.to_string(), hex::encode(Sha256::digest(&data)));
        Ok(data.into())
    }

    fn sha256(&mut self, path: &str) -> Result<String, SbomError> {
        if let Some(sum) = self.sums.get(path) {
            return Ok(sum.clone());
        }
        let i = self.member(path)?;
        let (sum, _) = self.zip.hash(i, 0).map_err(|e| unreadable(path, e))?;
        self.sums.insert(path.to_string(), sum.clone());
        Ok(sum)
    }
}
