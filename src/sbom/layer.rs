//! A layer's files as the SBOM reads them: a build's entries (already hashed, in memory), or a
//! zip on its own, whose members are unpacked only when asked for.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zip::ZipArchive;

use super::SbomError;
use crate::manifest::ManifestEntry;
use crate::model::entry::Entry;

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

/// Lambda refuses layers that unpack to more than this; no member of one can be larger.
const MAX_MEMBER: u64 = 262_144_000;

/// A zip read on its own, ours or anyone's.
pub(crate) struct Zipped<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    paths: Vec<String>,
    /// Zip path -> member index.
    index: HashMap<String, usize>,
    /// The sha256 of every member read so far: the collector is unpacked once, not twice.
    sums: HashMap<String, String>,
    /// The newest member time, as the zip stores it (no time zone: layerbuild writes UTC).
    pub newest: Option<zip::DateTime>,
}

impl<'a> Zipped<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Zipped<'a>, SbomError> {
        let bad = SbomError::Zip;
        let mut zip = guard(|| ZipArchive::new(Cursor::new(bytes)))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| bad(format!("not a readable zip ({e})")))?;
        let mut index = HashMap::new();
        let mut newest: Option<zip::DateTime> = None;
        for i in 0..zip.len() {
            let f = zip
                .by_index_raw(i)
                .map_err(|e| bad(format!("zip member {i} is unreadable ({e})")))?;
            if f.is_dir() {
                continue;
            }
            let name = String::from_utf8_lossy(f.name_raw()).into_owned();
            if let Some(t) = f.last_modified() {
                newest = Some(newest.map_or(t, |n| if key(t) > key(n) { t } else { n }));
            }
            index.insert(name, i);
        }
        let mut paths: Vec<String> = index.keys().cloned().collect();
        paths.sort();
        Ok(Zipped {
            zip,
            paths,
            index,
            sums: HashMap::new(),
            newest,
        })
    }
}

/// Orders zip times: date bits above time bits.
fn key(t: zip::DateTime) -> u32 {
    (u32::from(t.datepart()) << 16) | u32::from(t.timepart())
}

/// Runs a zip reader call that may panic on a damaged archive.
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| "the zip reader gave up on it".to_string())
}

impl LayerFiles for Zipped<'_> {
    fn paths(&self) -> &[String] {
        &self.paths
    }

    fn read(&mut self, path: &str) -> Result<Arc<[u8]>, SbomError> {
        let &i = self.index.get(path).ok_or_else(|| missing(path))?;
        let bad = |problem: String| SbomError::Read {
            path: path.to_string(),
            problem,
        };
        let zip = &mut self.zip;
        let data = guard(|| -> Result<Vec<u8>, String> {
            let f = zip.by_index(i).map_err(|e| e.to_string())?;
            let mut data = Vec::with_capacity(f.size().min(1 << 26) as usize);
            f.take(MAX_MEMBER + 1)
                .read_to_end(&mut data)
                .map_err(|e| e.to_string())?;
            Ok(data)
        })
        .and_then(|r| r)
        .map_err(|e| bad(format!("cannot be unpacked ({e})")))?;
        if data.len() as u64 > MAX_MEMBER {
            return Err(bad(format!(
                "unpacks to more than {MAX_MEMBER} bytes, more than Lambda allows a whole layer"
            )));
        }
        self.sums.insert(path.to_string(), hex::encode(Sha256::digest(&data)));
        Ok(data.into())
    }

    fn sha256(&mut self, path: &str) -> Result<String, SbomError> {
        if let Some(sum) = self.sums.get(path) {
            return Ok(sum.clone());
        }
        self.read(path)?;
        Ok(self.sums[path].clone())
    }
}
