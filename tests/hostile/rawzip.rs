//! A zip reader and writer with every header field in the test's hands, for zips no honest
//! writer makes: names that differ between headers, duplicates, special mode bits, extra bytes.
#![allow(dead_code)]

use std::io::{Cursor, Write};

/// One entry as it sits in a zip: the central directory's view, plus overrides for the local header.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub method: u16,
    pub crc: u32,
    pub compressed: Vec<u8>,
    pub size: u64,
    /// The raw 32-bit external attributes: unix mode in the high half.
    pub external: u32,
    pub made_by: u16,
    pub flags: u16,
    pub time: u16,
    pub date: u16,
    /// What the local header says instead of the central one, when set.
    pub local_name: Option<Vec<u8>>,
    pub local_method: Option<u16>,
    pub local_size: Option<u32>,
    /// Declared uncompressed size in the central directory instead of `size`.
    pub central_size: Option<u64>,
}

impl RawEntry {
    /// A stored (uncompressed) regular file with the given permission bits.
    pub fn stored(name: &str, mode: u32, data: &[u8]) -> RawEntry {
        RawEntry {
            name: name.as_bytes().to_vec(),
            method: 0,
            crc: crc32(data),
            compressed: data.to_vec(),
            size: data.len() as u64,
            external: unix_attrs(0o100000 | mode),
            made_by: 0x031e,
            flags: 0x0800,
            time: 0,
            date: 0x21,
            local_name: None,
            local_method: None,
            local_size: None,
            central_size: None,
        }
    }

    /// A deflated regular file (compressed by the zip crate).
    pub fn deflated(name: &str, mode: u32, data: &[u8]) -> RawEntry {
        RawEntry {
            method: 8,
            compressed: deflate(data),
            ..RawEntry::stored(name, mode, data)
        }
    }

    pub fn dir(name: &str, mode: u32) -> RawEntry {
        RawEntry::stored(name, 0, b"").with_mode(0o040000 | mode)
    }

    /// A symlink entry: the data is the link target.
    pub fn symlink(name: &str, target: &str) -> RawEntry {
        RawEntry::stored(name, 0, target.as_bytes()).with_mode(0o120777)
    }

    /// Sets the whole unix mode (file type and permission bits) in the external attributes.
    pub fn with_mode(mut self, mode: u32) -> RawEntry {
        self.external = unix_attrs(mode);
        self
    }

    pub fn mode(&self) -> u32 {
        self.external >> 16
    }

    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

pub fn unix_attrs(mode: u32) -> u32 {
    let dir = if mode & 0o170000 == 0o040000 { 0x10 } else { 0 };
    (mode << 16) | dir
}

/// Bytes around the zip proper.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub prefix: Vec<u8>,
    /// Bytes between the last entry's data and the central directory.
    pub gap: Vec<u8>,
    pub suffix: Vec<u8>,
}

/// Writes the entries as a zip: local headers and data, central directory, end record.
/// Offsets count from the zip's first byte, so a `prefix` shifts the zip without telling it.
pub fn write(entries: &[RawEntry], layout: &Layout) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(out.len() as u32);
        let name = e.local_name.as_ref().unwrap_or(&e.name);
        out.extend_from_slice(b"PK\x03\x04");
        put16(&mut out, 20);
        put16(&mut out, e.flags);
        put16(&mut out, e.local_method.unwrap_or(e.method));
        put16(&mut out, e.time);
        put16(&mut out, e.date);
        put32(&mut out, e.crc);
        put32(&mut out, e.compressed.len() as u32);
        put32(&mut out, e.local_size.unwrap_or(e.size as u32));
        put16(&mut out, name.len() as u16);
        put16(&mut out, 0);
        out.extend_from_slice(name);
        out.extend_from_slice(&e.compressed);
    }
    out.extend_from_slice(&layout.gap);
    let cd_start = out.len() as u32;
    for (e, off) in entries.iter().zip(&offsets) {
        let size = e.central_size.unwrap_or(e.size);
        let zip64 = size >= 0xffff_ffff;
        out.extend_from_slice(b"PK\x01\x02");
        put16(&mut out, e.made_by);
        put16(&mut out, if zip64 { 45 } else { 20 });
        put16(&mut out, e.flags);
        put16(&mut out, e.method);
        put16(&mut out, e.time);
        put16(&mut out, e.date);
        put32(&mut out, e.crc);
        put32(&mut out, e.compressed.len() as u32);
        put32(&mut out, if zip64 { 0xffff_ffff } else { size as u32 });
        put16(&mut out, e.name.len() as u16);
        put16(&mut out, if zip64 { 12 } else { 0 });
        put16(&mut out, 0);
        put16(&mut out, 0);
        put16(&mut out, 0);
        put32(&mut out, e.external);
        put32(&mut out, *off);
        out.extend_from_slice(&e.name);
        if zip64 {
            put16(&mut out, 1);
            put16(&mut out, 8);
            out.extend_from_slice(&size.to_le_bytes());
        }
    }
    let cd_len = out.len() as u32 - cd_start;
    out.extend_from_slice(b"PK\x05\x06");
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, entries.len() as u16);
    put16(&mut out, entries.len() as u16);
    put32(&mut out, cd_len);
    put32(&mut out, cd_start);
    put16(&mut out, 0);
    let mut all = layout.prefix.clone();
    all.extend_from_slice(&out);
    all.extend_from_slice(&layout.suffix);
    all
}

/// Reads every entry of a plain (non-zip64) zip through its central directory, data still
/// compressed, so a real zip can be rewritten byte for byte with only the chosen changes.
pub fn read(zip: &[u8]) -> Vec<RawEntry> {
    let eocd = (0..=zip.len() - 22)
        .rev()
        .find(|&i| &zip[i..i + 4] == b"PK\x05\x06")
        .expect("an end of central directory record");
    let count = get16(zip, eocd + 10) as usize;
    let mut at = get32(zip, eocd + 16) as usize;
    let mut entries = Vec::new();
    for _ in 0..count {
        assert_eq!(&zip[at..at + 4], b"PK\x01\x02", "central header at {at}");
        let name_len = get16(zip, at + 28) as usize;
        let extra_len = get16(zip, at + 30) as usize;
        let comment_len = get16(zip, at + 32) as usize;
        let local = get32(zip, at + 42) as usize;
        let csize = get32(zip, at + 20) as usize;
        let local_data = local + 30 + get16(zip, local + 26) as usize + get16(zip, local + 28) as usize;
        entries.push(RawEntry {
            name: zip[at + 46..at + 46 + name_len].to_vec(),
            method: get16(zip, at + 10),
            crc: get32(zip, at + 16),
            compressed: zip[local_data..local_data + csize].to_vec(),
            size: u64::from(get32(zip, at + 24)),
            external: get32(zip, at + 38),
            made_by: get16(zip, at + 4),
            flags: get16(zip, at + 8),
            time: get16(zip, at + 12),
            date: get16(zip, at + 14),
            local_name: None,
            local_method: None,
            local_size: None,
            central_size: None,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    entries
}

/// The raw deflate stream the zip crate makes of `data`.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    deflate_chunks(data, 1).0
}

/// A deflated entry of `chunk` repeated `times` times, made without holding it all in memory:
/// returns (raw deflate stream, crc32, size).
pub fn deflate_chunks(chunk: &[u8], times: usize) -> (Vec<u8>, u32, u64) {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let size = chunk.len() as u64 * times as u64;
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(size >= 0xffff_ffff);
    w.start_file("x", opts).unwrap();
    for _ in 0..times {
        w.write_all(chunk).unwrap();
    }
    let bytes = w.finish().unwrap().into_inner();
    // The central directory holds the sizes and crc (the local header may defer them).
    let cd = (0..bytes.len() - 4)
        .rev()
        .find(|&i| &bytes[i..i + 4] == b"PK\x01\x02")
        .unwrap();
    let crc = get32(&bytes, cd + 16);
    let csize = get32(&bytes, cd + 20) as usize;
    let start = 30 + get16(&bytes, 26) as usize + get16(&bytes, 28) as usize;
    (bytes[start..start + csize].to_vec(), crc, size)
}

/// A deflated regular file of `chunk` repeated `times` times.
pub fn big_entry(name: &str, mode: u32, chunk: &[u8], times: usize) -> RawEntry {
    let (compressed, crc, size) = deflate_chunks(chunk, times);
    RawEntry {
        method: 8,
        crc,
        compressed,
        size,
        ..RawEntry::stored(name, mode, b"")
    }
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

pub fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[test]
fn written_zips_read_back_through_the_zip_crate() {
    let entries = vec![
        RawEntry::dir("a/", 0o755),
        RawEntry::stored("a/b.txt", 0o644, b"hello"),
        RawEntry::deflated("a/c.txt", 0o755, &b"zzzz".repeat(1000)),
    ];
    let bytes = write(&entries, &Layout::default());
    let mut z = zip::ZipArchive::new(Cursor::new(bytes.clone())).unwrap();
    assert_eq!(z.len(), 3);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut z.by_name("a/c.txt").unwrap(), &mut s).unwrap();
    assert_eq!(s.len(), 4000);
    assert_eq!(z.by_name("a/c.txt").unwrap().unix_mode(), Some(0o100755));
    let again = read(&bytes);
    assert_eq!(write(&again, &Layout::default()), bytes);
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
}
