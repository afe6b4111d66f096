//! Writes a layer zip that is the same bytes for the same inputs: sorted entries, one fixed
//! time, explicit folders, modes chosen by us, deflate at a fixed level.

use std::io::{Cursor, Seek, Write};
use std::path::Path;

use anyhow::{Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

use crate::check::rules::{self, MODE_DIR};
use crate::check::zipcanon;
use crate::model::entry::Entry;
use crate::support::date::civil_from_days;
use crate::support::fs::write_atomic;
use crate::support::input;

/// Best zlib level: layers are built once and unpacked on every cold start.
const DEFLATE_LEVEL: i64 = 9;

/// What went into the zip, entry by entry, in zip order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Archived {
    pub path: String,
    pub mode: u32,
    pub size: u64,
    /// `None` for folders.
    pub sha256: Option<String>,
    /// Its compressed bytes came from the cache rather than from deflate just now.
    pub reused: bool,
}

/// The zip's timestamp: `SOURCE_DATE_EPOCH` when set, else the zip format's first day.
pub(crate) fn timestamp() -> Result<DateTime> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => {
            let secs: i64 = v.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds: unset it or fix it")
            })?;
            Ok(dos_time_from_unix(secs))
        }
        _ => Ok(DateTime::default()),
    }
}

/// Converts Unix seconds to a zip (DOS) time in UTC, clamped to the range DOS time can hold.
pub(crate) fn dos_time_from_unix(secs: i64) -> DateTime {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if year < 1980 {
        return DateTime::default();
    }
    if year > 2107 {
        return DateTime::from_date_and_time(2107, 12, 31, 23, 59, 58).expect("valid DOS time");
    }
    DateTime::from_date_and_time(
        year as u16,
        month as u8,
        day as u8,
        (rem / 3600) as u8,
        (rem % 3600 / 60) as u8,
        (rem % 60) as u8,
    )
    .unwrap_or_default()
}

fn options(mode: u32, time: DateTime) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL))
        .last_modified_time(time)
        .unix_permissions(mode)
}

/// A file compressed on its own, ready to be copied into the layer zip without recompressing.
struct Packed {
    path: String,
    mode: u32,
    size: u64,
    sha256: String,
    one_entry_zip: Vec<u8>,
    reused: bool,
}

/// How [`write`] uses the compression cache, a folder of one-entry zips.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cache<'a> {
    /// Take a cached entry whose structure is what `pack` writes; its data is not inflated here,
    /// so the caller must verify the finished zip against the listing's hashes and, when that
    /// fails, write it again with [`Cache::Renew`].
    Use(&'a Path),
    /// Compress every file again and overwrite what the cache holds for it.
    Renew(&'a Path),
}

impl Cache<'_> {
    fn dir(&self) -> &Path {
        match self {
            Cache::Use(d) | Cache::Renew(d) => d,
        }
    }
}

fn pack(entry: &Entry, time: DateTime, cache: Option<Cache>) -> Result<Packed> {
    let data = entry
        .read()
        .with_context(|| format!("cannot read `{}` ({})", entry.path, entry.origin))?;
    let sha256 = hex::encode(entry.known_sha256().unwrap_or_else(|| Sha256::digest(&data).into()));
    let packed = |one_entry_zip, reused| Packed {
        path: entry.path.clone(),
        mode: entry.mode,
        size: data.len() as u64,
        sha256: sha256.clone(),
        one_entry_zip,
        reused,
    };
    // Deflate at level 9 is the slowest step of a warm build; its output depends only on what
    // the key covers, so a cached copy is the same bytes.
    let slot = cache.map(|c| {
        let time_bits = (u32::from(time.datepart()) << 16) | u32::from(time.timepart());
        let key = format!(
            "{sha256}\0{}\0{:o}\0{time_bits}\0{DEFLATE_LEVEL}\0{ZIP_WRITER}",
            entry.path, entry.mode
        );
        c.dir().join(&hex::encode(Sha256::digest(key))[..40])
    });
    if let (Some(Cache::Use(_)), Some(slot)) = (cache, &slot)
        && let Ok(bytes) = input::read(slot, input::ARCHIVE_CAP, "cache entry")
        && is_packed(&bytes, entry, data.len() as u64)
    {
        return Ok(packed(bytes, true));
    }
    let mut w = ZipWriter::new(Cursor::new(Vec::with_capacity(data.len() / 2 + 256)));
    w.start_file(entry.path.as_str(), options(entry.mode, time))?;
    w.write_all(&data)?;
    let one_entry_zip = w.finish()?.into_inner();
    if let Some(slot) = &slot {
        // A cache that cannot be written only costs speed.
        let _ = write_atomic(slot, &one_entry_zip);
    }
    Ok(packed(one_entry_zip, false))
}

/// Whether cached bytes are shaped like what `pack` writes for this entry: one canonical
/// entry of this name, deflated, of this size, a regular file with no extra fields.
/// (The mode and time are set again when the entry is copied: they never come from a cache.)
/// Whether its data inflates to the entry's content is left to the verify of the finished
/// zip, which inflates and hashes every entry anyway: doing it here too doubled the
/// inflating and hashing of a warm build.
fn is_packed(bytes: &[u8], entry: &Entry, size: u64) -> bool {
    let Ok(raw) = zipcanon::scan(&mut Cursor::new(bytes), bytes.len() as u64) else {
        return false;
    };
    let [one] = raw.as_slice() else { return false };
    if one.name != entry.path.as_bytes()
        || one.method != zipcanon::METHOD_DEFLATED
        || one.size != size
        || one.unix_mode().is_none_or(|m| m & 0o177000 != 0o100000)
    {
        return false;
    }
    let Ok(mut zip) = ZipArchive::new(Cursor::new(bytes)) else {
        return false;
    };
    let Ok(file) = zip.by_index_raw(0) else { return false };
    file.extra_data_fields().next().is_none() && file.comment().is_empty()
}

/// Part of the cache key: another zip writer may put other header bytes around the same data.
const ZIP_WRITER: &str = "zip-9";

/// Writes `entries` (files; folders are added for them) as a zip to `out`.
/// Files are compressed on every core (or taken from `cache`), then copied in sorted order.
pub(crate) fn write<W: Write + Seek>(
    entries: &[Entry],
    time: DateTime,
    out: W,
    cache: Option<Cache>,
) -> Result<Vec<Archived>> {
    let mut packed: Vec<Packed> = entries
        .par_iter()
        .map(|e| pack(e, time, cache))
        .collect::<Result<_>>()?;
    let dirs = rules::parent_dirs(entries.iter().map(|e| e.path.as_str()));
    packed.sort_by(|a, b| a.path.cmp(&b.path));

    enum Item<'a> {
        Dir(&'a str),
        File(&'a Packed),
    }
    let mut items: Vec<(&str, Item)> = dirs.iter().map(|d| (d.as_str(), Item::Dir(d))).collect();
    items.extend(packed.iter().map(|p| (p.path.as_str(), Item::File(p))));
    items.sort_by(|a, b| a.0.cmp(b.0));

    let mut zip = ZipWriter::new(out);
    let mut listing = Vec::with_capacity(items.len());
    for (_, item) in items {
        match item {
            Item::Dir(d) => {
                zip.add_directory(d, options(MODE_DIR, time).compression_method(CompressionMethod::Stored))?;
                listing.push(Archived {
                    path: d.to_string(),
                    mode: MODE_DIR,
                    size: 0,
                    sha256: None,
                    reused: false,
                });
            }
            Item::File(p) => {
                let mut one = ZipArchive::new(Cursor::new(p.one_entry_zip.as_slice()))?;
                zip.raw_copy_file_touch(one.by_index_raw(0)?, time, Some(p.mode))?;
                listing.push(Archived {
                    path: p.path.clone(),
                    mode: p.mode,
                    size: p.size,
                    sha256: Some(p.sha256.clone()),
                    reused: p.reused,
                });
            }
        }
    }
    zip.finish()?.flush()?;
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::Content;
    use std::io::Read;
    use std::sync::Arc;

    fn entry(path: &str, exec: bool, data: &[u8]) -> Entry {
        Entry::file(path, exec, Content::Bytes(Arc::from(data)), "test")
    }

    #[test]
    fn same_entries_in_any_order_give_same_bytes() {
        let a = vec![entry("b/x.py", false, b"x = 1\n"), entry("a", true, b"#!/bin/sh\n")];
        let b: Vec<Entry> = a.iter().rev().cloned().collect();
        let mut za = Cursor::new(Vec::new());
        let mut zb = Cursor::new(Vec::new());
        write(&a, DateTime::default(), &mut za, None).unwrap();
        write(&b, DateTime::default(), &mut zb, None).unwrap();
        assert_eq!(za.into_inner(), zb.into_inner());
    }

    #[test]
    fn modes_times_and_folders_as_chosen() {
        let time = dos_time_from_unix(1_700_000_000);
        let mut z = Cursor::new(Vec::new());
        let listing = write(
            &[
                entry("python/a/b.py", false, b"pass\n"),
                entry("otel-instrument", true, b"#!/bin/sh\n"),
            ],
            time,
            &mut z,
            None,
        )
        .unwrap();
        let names: Vec<_> = listing.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(names, ["otel-instrument", "python/", "python/a/", "python/a/b.py"]);
        let mut zip = ZipArchive::new(Cursor::new(z.into_inner())).unwrap();
        let expect = [
            ("otel-instrument", 0o100755),
            ("python/", 0o40755),
            ("python/a/", 0o40755),
            ("python/a/b.py", 0o100644),
        ];
        for (i, (name, mode)) in expect.iter().enumerate() {
            let mut f = zip.by_index(i).unwrap();
            assert_eq!(f.name().unwrap(), *name);
            assert_eq!(f.unix_mode(), Some(*mode), "{name}");
            assert_eq!(f.last_modified(), Some(time));
            let mut s = Vec::new();
            f.read_to_end(&mut s).unwrap();
        }
    }

    #[test]
    fn cached_compression_gives_the_same_bytes() {
        let cache = tempfile::tempdir().unwrap();
        let entries = vec![
            entry("a/x.py", false, &b"y = 2\n".repeat(100)),
            entry("b", true, b"#!/bin/sh\n"),
        ];
        let mut cold = Cursor::new(Vec::new());
        let mut warm = Cursor::new(Vec::new());
        let mut none = Cursor::new(Vec::new());
        let listed = write(&entries, DateTime::default(), &mut cold, Some(Cache::Use(cache.path()))).unwrap();
        assert!(listed.iter().all(|a| !a.reused));
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 2);
        let listed = write(&entries, DateTime::default(), &mut warm, Some(Cache::Use(cache.path()))).unwrap();
        let reused: Vec<&str> = listed.iter().filter(|a| a.reused).map(|a| a.path.as_str()).collect();
        assert_eq!(
            reused,
            ["a/x.py", "b"],
            "every file's compressed bytes come from the cache"
        );
        write(&entries, DateTime::default(), &mut none, None).unwrap();
        assert_eq!(cold.get_ref(), warm.get_ref());
        assert_eq!(cold.get_ref(), none.get_ref());
        // Another mode is another key, not a stale hit.
        let mut other = entries.clone();
        other[1].mode = 0o644;
        let mut z = Cursor::new(Vec::new());
        write(&other, DateTime::default(), &mut z, Some(Cache::Use(cache.path()))).unwrap();
        let mut zip = ZipArchive::new(Cursor::new(z.into_inner())).unwrap();
        assert_eq!(zip.by_name("b").unwrap().unix_mode(), Some(0o100644));
    }

    /// Rewrites every cached one-entry zip with `change` applied to its entry's options.
    fn recache(dir: &Path, level: i64, extra_mode_bits: u32) {
        for f in fs_err::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            let bytes = fs_err::read(&path).unwrap();
            let mut one = ZipArchive::new(Cursor::new(bytes)).unwrap();
            let mut file = one.by_index(0).unwrap();
            let (name, mode) = (file.name().unwrap().to_string(), file.unix_mode().unwrap());
            let mut data = Vec::new();
            file.read_to_end(&mut data).unwrap();
            let opts = options(mode & 0o777, DateTime::default()).compression_level(Some(level));
            let mut w = ZipWriter::new(Cursor::new(Vec::new()));
            w.start_file(name, opts).unwrap();
            w.write_all(&data).unwrap();
            let mut out = w.finish().unwrap().into_inner();
            if extra_mode_bits != 0 {
                let cd = out.len() - 22 - 46 - file_name_len(&out);
                let attrs = u32::from_le_bytes(out[cd + 38..cd + 42].try_into().unwrap()) | (extra_mode_bits << 16);
                out[cd + 38..cd + 42].copy_from_slice(&attrs.to_le_bytes());
            }
            fs_err::write(&path, out).unwrap();
        }
    }

    fn file_name_len(one_entry_zip: &[u8]) -> usize {
        let eocd = one_entry_zip.len() - 22;
        let cd = u32::from_le_bytes(one_entry_zip[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
        u16::from_le_bytes([one_entry_zip[cd + 28], one_entry_zip[cd + 29]]) as usize
    }

    fn contents(zip: &[u8]) -> Vec<(String, Option<u32>, Vec<u8>)> {
        let mut z = ZipArchive::new(Cursor::new(zip)).unwrap();
        (0..z.len())
            .map(|i| {
                let mut f = z.by_index(i).unwrap();
                let mut d = Vec::new();
                f.read_to_end(&mut d).unwrap();
                (f.name().unwrap().to_string(), Some(f.external_attributes() >> 16), d)
            })
            .collect()
    }

    #[test]
    fn a_cache_entry_counts_only_when_it_is_the_content_and_never_sets_the_mode() {
        let cache = tempfile::tempdir().unwrap();
        let entries = vec![
            entry("a/x.py", false, &b"y = 2\n".repeat(100)),
            entry("b", true, b"#!/bin/sh\n"),
        ];
        let build = || {
            let mut z = Cursor::new(Vec::new());
            write(&entries, DateTime::default(), &mut z, Some(Cache::Use(cache.path()))).unwrap();
            z.into_inner()
        };
        let cold = build();
        // Valid entries compressed another way are hits: the zip changes, its content does not.
        recache(cache.path(), 1, 0);
        let other = build();
        assert_ne!(other, cold, "a valid cache entry was not used");
        assert_eq!(contents(&other), contents(&cold));
        // Setuid bits in the cache are no hit: the entry is compressed again.
        recache(cache.path(), 9, 0o4000);
        assert_eq!(build(), cold);
        // Damaged data is not found here (the build's verify of the finished zip finds it),
        // but renewing the cache compresses every file again and overwrites what it holds.
        for f in fs_err::read_dir(cache.path()).unwrap() {
            let path = f.unwrap().path();
            let mut bytes = fs_err::read(&path).unwrap();
            bytes[40] ^= 0x55;
            fs_err::write(&path, bytes).unwrap();
        }
        assert_ne!(build(), cold, "a damaged entry of the right shape is taken as it is");
        let mut z = Cursor::new(Vec::new());
        let listed = write(&entries, DateTime::default(), &mut z, Some(Cache::Renew(cache.path()))).unwrap();
        assert!(listed.iter().all(|a| !a.reused));
        assert_eq!(z.into_inner(), cold);
        assert_eq!(build(), cold, "renewing left the damaged entries in the cache");
    }

    #[test]
    fn epoch_conversion() {
        let t = dos_time_from_unix(1_700_000_000); // 2023-11-14 22:13:20 UTC
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour(), t.minute()),
            (2023, 11, 14, 22, 13)
        );
        assert_eq!(dos_time_from_unix(0), DateTime::default());
    }
}
