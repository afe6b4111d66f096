//! Whether a zip is one unambiguous archive, read from its raw bytes: the central directory and
//! every local header agree, no name appears twice, and every byte of the file belongs to
//! exactly one structure (nothing before, between, after, nothing overlapping). Tools that
//! read a zip differently (from the front, from the back, by local headers) then all see the
//! same files. Memory stays in proportion to the central directory, never to the data.

use std::collections::HashSet;
use std::io::{BufReader, Read, Seek, SeekFrom};

use crate::support::text::show_bytes;

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;

const EOCD_LEN: u64 = 22;
const ZIP64_LOCATOR_LEN: u64 = 20;
const CENTRAL_LEN: u64 = 46;
const LOCAL_LEN: u64 = 30;
const MAX_COMMENT: u64 = 0xffff;

/// General purpose flags.
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DESCRIPTOR: u16 = 1 << 3;
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;
const FLAG_MASKED_HEADERS: u16 = 1 << 13;

/// `version made by` high byte for Unix: only then are the high 16 bits of the external
/// attributes a unix mode.
const SYSTEM_UNIX: u8 = 3;

pub(crate) const METHOD_STORED: u16 = 0;
pub(crate) const METHOD_DEFLATED: u16 = 8;

/// One entry as the central directory and its local header both describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: Vec<u8>,
    pub method: u16,
    pub flags: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub size: u64,
    pub made_by: u16,
    /// The raw 32 bits: a unix mode (special bits included) in the high half when made on Unix.
    pub external: u32,
    pub header_offset: u64,
    pub data_offset: u64,
}

impl Entry {
    /// The full unix mode (file type, setuid/setgid/sticky and permission bits), exactly as
    /// stored, when the entry was made on Unix and has one.
    pub(crate) fn unix_mode(&self) -> Option<u32> {
        let mode = self.external >> 16;
        ((self.made_by >> 8) as u8 == SYSTEM_UNIX && mode != 0).then_some(mode)
    }

    pub(crate) fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.name).ok()
    }
}

/// Why a zip is not canonical; `entry` names the entry when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", entry.as_ref().map(|e| format!("entry `{}`: ", show_bytes(e))).unwrap_or_default())]
pub(crate) struct CanonError {
    pub entry: Option<Vec<u8>>,
    pub problem: String,
}

fn whole(problem: impl Into<String>) -> CanonError {
    CanonError {
        entry: None,
        problem: problem.into(),
    }
}

fn of(name: &[u8], problem: impl Into<String>) -> CanonError {
    CanonError {
        entry: Some(name.to_vec()),
        problem: problem.into(),
    }
}

/// Little-endian fields out of a header buffer.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }
}

fn read_at<R: Read + Seek>(r: &mut R, at: u64, buf: &mut [u8], what: &str) -> Result<(), CanonError> {
    r.seek(SeekFrom::Start(at))
        .and_then(|_| r.read_exact(buf))
        .map_err(|e| whole(format!("cannot read the {what} at byte {at} ({e})")))
}

/// Where the central directory is, as the end records say.
struct Directory {
    entries: u64,
    offset: u64,
    size: u64,
    /// Where the structure after the central directory starts (zip64 record or end record).
    end: u64,
}

/// Checks `zip` (`len` bytes) and returns its entries in central directory order.
pub(crate) fn scan<R: Read + Seek>(zip: &mut R, len: u64) -> Result<Vec<Entry>, CanonError> {
    let dir = find_directory(zip, len)?;
    let mut entries = read_directory(zip, &dir)?;
    let mut names = HashSet::with_capacity(entries.len());
    for e in &entries {
        if !names.insert(e.name.as_slice()) {
            return Err(of(&e.name, "appears twice in the central directory"));
        }
    }
    for e in &mut entries {
        check_local(zip, e, len)?;
    }
    check_contiguous(zip, &entries, &dir)?;
    Ok(entries)
}

fn find_directory<R: Read + Seek>(zip: &mut R, len: u64) -> Result<Directory, CanonError> {
    if len < EOCD_LEN {
        return Err(whole(format!("{len} bytes is too short to be a zip")));
    }
    let tail_len = len.min(EOCD_LEN + MAX_COMMENT);
    let mut tail = vec![0u8; tail_len as usize];
    read_at(zip, len - tail_len, &mut tail, "end of the zip")?;
    // The last end record is the one readers that start from the back use.
    let at = (0..=tail.len() - EOCD_LEN as usize)
        .rev()
        .find(|&i| Fields(&tail).u32(i) == EOCD_SIG)
        .ok_or_else(|| whole("has no end of central directory record: not a zip"))?;
    let f = Fields(&tail[at..]);
    let eocd = len - tail_len + at as u64;
    let comment = u64::from(f.u16(20));
    let end = eocd + EOCD_LEN + comment;
    if end != len {
        return Err(whole(format!(
            "{} bytes follow the end of central directory record: trailing data or another zip",
            len.abs_diff(end)
        )));
    }
    if f.u16(4) != 0 || f.u16(6) != 0 || f.u16(8) != f.u16(10) {
        return Err(whole("spans several disks: layers are single zip files"));
    }
    let mut d = Directory {
        entries: u64::from(f.u16(10)),
        size: u64::from(f.u32(12)),
        offset: u64::from(f.u32(16)),
        end: eocd,
    };
    if d.entries == 0xffff || d.size == 0xffff_ffff || d.offset == 0xffff_ffff {
        read_zip64_end(zip, &mut d)?;
    }
    Ok(d)
}

fn read_zip64_end<R: Read + Seek>(zip: &mut R, d: &mut Directory) -> Result<(), CanonError> {
    let locator = d
        .end
        .checked_sub(ZIP64_LOCATOR_LEN)
        .ok_or_else(|| whole("says zip64 but has no zip64 locator"))?;
    let mut buf = [0u8; ZIP64_LOCATOR_LEN as usize];
    read_at(zip, locator, &mut buf, "zip64 locator")?;
    let f = Fields(&buf);
    if f.u32(0) != ZIP64_LOCATOR_SIG || f.u32(4) != 0 || f.u32(16) != 1 {
        return Err(whole("says zip64 but has no valid zip64 locator"));
    }
    let record = f.u64(8);
    let mut rec = [0u8; 56];
    if record.checked_add(56) != Some(locator) {
        return Err(whole("the zip64 end record is not right before its locator"));
    }
    read_at(zip, record, &mut rec, "zip64 end record")?;
    let f = Fields(&rec);
    if f.u32(0) != ZIP64_EOCD_SIG || f.u64(4) != 44 || f.u32(16) != 0 || f.u32(20) != 0 || f.u64(24) != f.u64(32) {
        return Err(whole("has a zip64 end record this reader does not accept"));
    }
    d.entries = f.u64(32);
    d.size = f.u64(40);
    d.offset = f.u64(48);
    d.end = record;
    Ok(())
}

fn read_directory<R: Read + Seek>(zip: &mut R, d: &Directory) -> Result<Vec<Entry>, CanonError> {
    if d.offset.checked_add(d.size) != Some(d.end) {
        return Err(whole(format!(
            "the central directory ({} bytes at {}) does not end where its end record starts ({}): bytes between them, or zips concatenated",
            d.size, d.offset, d.end
        )));
    }
    if d.entries.saturating_mul(CENTRAL_LEN) > d.size {
        return Err(whole(format!(
            "claims {} entries in a {}-byte central directory",
            d.entries, d.size
        )));
    }
    zip.seek(SeekFrom::Start(d.offset))
        .map_err(|e| whole(format!("cannot read the central directory ({e})")))?;
    let mut r = BufReader::new(zip.by_ref().take(d.size));
    let mut entries = Vec::with_capacity(d.entries as usize);
    let mut used = 0u64;
    for i in 0..d.entries {
        let (e, n) = read_central(&mut r).map_err(|p| whole(format!("central directory entry {i}: {p}")))?;
        used += n;
        entries.push(e);
    }
    if used != d.size {
        return Err(whole(format!(
            "{} bytes of the central directory belong to no entry",
            d.size - used
        )));
    }
    Ok(entries)
}

/// One central header; returns it and how many bytes it took.
fn read_central(r: &mut impl Read) -> Result<(Entry, u64), String> {
    let mut h = [0u8; CENTRAL_LEN as usize];
    r.read_exact(&mut h).map_err(|_| "cut short".to_string())?;
    let f = Fields(&h);
    if f.u32(0) != CENTRAL_SIG {
        return Err("has no central header signature".into());
    }
    let (name_len, extra_len, comment_len) = (f.u16(28) as usize, f.u16(30) as usize, f.u16(32) as usize);
    let mut var = vec![0u8; name_len + extra_len + comment_len];
    r.read_exact(&mut var).map_err(|_| "cut short".to_string())?;
    let name = var[..name_len].to_vec();
    if f.u16(34) != 0 {
        return Err(format!("`{}` starts on another disk", show_bytes(&name)));
    }
    let mut e = Entry {
        name,
        method: f.u16(10),
        flags: f.u16(8),
        crc32: f.u32(16),
        compressed_size: u64::from(f.u32(20)),
        size: u64::from(f.u32(24)),
        made_by: f.u16(4),
        external: f.u32(38),
        header_offset: u64::from(f.u32(42)),
        data_offset: 0,
    };
    apply_zip64(&mut e, &var[name_len..name_len + extra_len]).map_err(|p| format!("`{}`: {p}", show_bytes(&e.name)))?;
    Ok((e, CENTRAL_LEN + var.len() as u64))
}

/// Walks the extra fields (which must tile their space exactly) and takes zip64 sizes.
fn apply_zip64(e: &mut Entry, extra: &[u8]) -> Result<(), String> {
    let mut at = 0;
    while at < extra.len() {
        if at + 4 > extra.len() {
            return Err("an extra field is cut short".into());
        }
        let f = Fields(&extra[at..]);
        let (id, len) = (f.u16(0), f.u16(2) as usize);
        let data = extra.get(at + 4..at + 4 + len).ok_or("an extra field is cut short")?;
        if id == 1 {
            let mut vals = data
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
            for slot in [&mut e.size, &mut e.compressed_size, &mut e.header_offset] {
                if *slot == 0xffff_ffff {
                    *slot = vals.next().ok_or("its zip64 field lacks a value it needs")?;
                }
            }
        }
        at += 4 + len;
    }
    Ok(())
}

fn check_local<R: Read + Seek>(zip: &mut R, e: &mut Entry, len: u64) -> Result<(), CanonError> {
    let bad = |p: String| of(&e.name, p);
    if e.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS) != 0 {
        return Err(bad("is encrypted: layers hold plain files".into()));
    }
    if e.method != METHOD_STORED && e.method != METHOD_DEFLATED {
        return Err(bad(format!(
            "uses compression method {}: only stored and deflate are read",
            e.method
        )));
    }
    if e.method == METHOD_STORED && e.compressed_size != e.size {
        return Err(bad("is stored but its two sizes differ".into()));
    }
    let mut h = [0u8; LOCAL_LEN as usize];
    if e.header_offset.checked_add(LOCAL_LEN).is_none_or(|end| end > len) {
        return Err(bad(format!(
            "its local header offset {} is outside the zip",
            e.header_offset
        )));
    }
    read_at(zip, e.header_offset, &mut h, "local header").map_err(|x| bad(x.problem))?;
    let f = Fields(&h);
    if f.u32(0) != LOCAL_SIG {
        return Err(bad("has no local header where the central directory points".into()));
    }
    let (name_len, extra_len) = (u64::from(f.u16(26)), u64::from(f.u16(28)));
    let mut var = vec![0u8; (name_len + extra_len) as usize];
    read_at(zip, e.header_offset + LOCAL_LEN, &mut var, "local header").map_err(|x| bad(x.problem))?;
    let local_name = &var[..name_len as usize];
    if local_name != e.name.as_slice() {
        return Err(bad(format!(
            "its local header names `{}`: readers that go by local headers unpack another file",
            show_bytes(local_name)
        )));
    }
    if f.u16(6) != e.flags || f.u16(8) != e.method {
        return Err(bad(format!(
            "its local header says flags {:#x} and method {}, the central directory {:#x} and {}",
            f.u16(6),
            f.u16(8),
            e.flags,
            e.method
        )));
    }
    if e.flags & FLAG_DESCRIPTOR == 0 {
        let mut local = Entry {
            crc32: f.u32(14),
            compressed_size: u64::from(f.u32(18)),
            size: u64::from(f.u32(22)),
            header_offset: 0,
            ..e.clone()
        };
        apply_zip64(&mut local, &var[name_len as usize..]).map_err(bad)?;
        if (local.crc32, local.compressed_size, local.size) != (e.crc32, e.compressed_size, e.size) {
            return Err(bad(format!(
                "its local header says crc {:08x}, {} bytes compressed, {} bytes, the central directory {:08x}, {}, {}",
                local.crc32, local.compressed_size, local.size, e.crc32, e.compressed_size, e.size
            )));
        }
    }
    e.data_offset = e.header_offset + LOCAL_LEN + name_len + extra_len;
    if e.data_offset.checked_add(e.compressed_size).is_none_or(|end| end > len) {
        return Err(bad("its data runs past the end of the zip".into()));
    }
    Ok(())
}

/// Where an entry's bytes end: after its data, and after its data descriptor when it has one.
fn entry_end<R: Read + Seek>(zip: &mut R, e: &Entry) -> Result<u64, CanonError> {
    let data_end = e.data_offset + e.compressed_size;
    if e.flags & FLAG_DESCRIPTOR == 0 {
        return Ok(data_end);
    }
    let mut d = [0u8; 24];
    let got = zip
        .seek(SeekFrom::Start(data_end))
        .and_then(|_| read_up_to(zip, &mut d))
        .map_err(|x| of(&e.name, format!("its data descriptor cannot be read ({x})")))?;
    let f = Fields(&d[..got]);
    let start = usize::from(got >= 4 && f.u32(0) == DESCRIPTOR_SIG) * 4;
    let zip64 = e.size >= 0xffff_ffff || e.compressed_size >= 0xffff_ffff;
    let width = if zip64 { 8 } else { 4 };
    let need = start + 4 + 2 * width;
    if got < need {
        return Err(of(&e.name, "its data descriptor is cut short"));
    }
    let read = |at: usize| if zip64 { f.u64(at) } else { u64::from(f.u32(at)) };
    let (crc, csize, size) = (f.u32(start), read(start + 4), read(start + 4 + width));
    if (crc, csize, size) != (e.crc32, e.compressed_size, e.size) {
        return Err(of(&e.name, "its data descriptor disagrees with the central directory"));
    }
    Ok(data_end + need as u64)
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Entries in file order must follow each other from byte 0 to the central directory.
fn check_contiguous<R: Read + Seek>(zip: &mut R, entries: &[Entry], d: &Directory) -> Result<(), CanonError> {
    let mut order: Vec<&Entry> = entries.iter().collect();
    order.sort_by_key(|e| e.header_offset);
    let mut at = 0u64;
    for e in order {
        match e.header_offset.cmp(&at) {
            std::cmp::Ordering::Less => return Err(of(&e.name, "overlaps the entry before it")),
            std::cmp::Ordering::Greater if at == 0 => {
                return Err(whole(format!(
                    "{} bytes come before the first entry: data prepended, or zips concatenated",
                    e.header_offset
                )));
            }
            std::cmp::Ordering::Greater => {
                return Err(of(
                    &e.name,
                    format!(
                        "{} bytes between it and the entry before it belong to no entry",
                        e.header_offset - at
                    ),
                ));
            }
            std::cmp::Ordering::Equal => {}
        }
        at = entry_end(zip, e)?;
    }
    if at != d.offset {
        return Err(whole(format!(
            "{} bytes between the last entry and the central directory belong to no entry",
            d.offset.abs_diff(at)
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "zipcanon/tests.rs"]
mod tests;
