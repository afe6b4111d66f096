//! Unit tests of the zip structure check: honest zips pass, each kind of ambiguity is named.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

use super::*;

fn opts(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(mode)
}

/// `a1` (0644), `a2` (0755), folder `d/`: names of one length, so bytes can be swapped.
fn honest() -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("a1", opts(0o644)).unwrap();
    w.write_all(&b"first file\n".repeat(20)).unwrap();
    w.start_file("a2", opts(0o755)).unwrap();
    w.write_all(b"#!/bin/sh\n").unwrap();
    w.add_directory("d/", opts(0o755)).unwrap();
    w.finish().unwrap().into_inner()
}

fn scan_bytes(b: &[u8]) -> Result<Vec<Entry>, CanonError> {
    scan(&mut Cursor::new(b), b.len() as u64)
}

/// Offsets of every `sig` in `b`.
fn find_all(b: &[u8], sig: u32) -> Vec<usize> {
    (0..b.len().saturating_sub(3))
        .filter(|&i| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) == sig)
        .collect()
}

fn refused(b: &[u8], words: &str) -> CanonError {
    let e = scan_bytes(b).expect_err("a non-canonical zip was accepted");
    assert!(e.to_string().contains(words), "{e}");
    e
}

#[test]
fn an_honest_zip_is_read_with_raw_modes() {
    let z = honest();
    let entries = scan_bytes(&z).unwrap();
    let got: Vec<(&str, Option<u32>, u64)> = entries
        .iter()
        .map(|e| (e.name_str().unwrap(), e.unix_mode(), e.size))
        .collect();
    assert_eq!(
        got,
        [
            ("a1", Some(0o100644), 220),
            ("a2", Some(0o100755), 10),
            ("d/", Some(0o40755), 0)
        ]
    );
    assert_eq!(entries[0].method, METHOD_DEFLATED);
    assert_eq!(entries[0].header_offset, 0);
}

#[test]
fn special_bits_survive_the_scan() {
    let mut z = honest();
    let cd = find_all(&z, CENTRAL_SIG)[1];
    z[cd + 38..cd + 42].copy_from_slice(&((0o104755u32) << 16).to_le_bytes());
    let entries = scan_bytes(&z).unwrap();
    assert_eq!(entries[1].unix_mode(), Some(0o104755));
}

#[test]
fn duplicate_names_are_refused() {
    let mut z = honest();
    // Rename `a2` to `a1` in its local and central header alike.
    for at in find_all(&z, LOCAL_SIG)[1..2]
        .iter()
        .map(|l| l + 30)
        .chain(find_all(&z, CENTRAL_SIG)[1..2].iter().map(|c| c + 46))
    {
        assert_eq!(&z[at..at + 2], b"a2");
        z[at + 1] = b'1';
    }
    let e = refused(&z, "appears twice");
    assert_eq!(e.entry.as_deref(), Some(&b"a1"[..]));
}

#[test]
fn local_headers_must_agree_with_the_central_directory() {
    let local = find_all(&honest(), LOCAL_SIG)[1];
    let mut z = honest();
    z[local + 31] = b'9';
    refused(&z, "its local header names `a9`");
    let mut z = honest();
    z[local + 8] = 0;
    refused(&z, "method 0");
    let mut z = honest();
    z[local + 22] ^= 1;
    refused(&z, "its local header says crc");
}

#[test]
fn bytes_outside_the_structure_are_refused() {
    let z = honest();
    let mut prefixed = b"junk".to_vec();
    prefixed.extend_from_slice(&z);
    refused(&prefixed, "does not end where its end record starts");

    let mut trailing = z.clone();
    trailing.extend_from_slice(b"junk");
    refused(&trailing, "4 bytes follow the end");

    // Junk before the central directory, with the end record moved to point past it.
    let cd = find_all(&z, CENTRAL_SIG)[0];
    let mut gap = z[..cd].to_vec();
    gap.extend_from_slice(b"junk");
    gap.extend_from_slice(&z[cd..]);
    let eocd = gap.len() - 22;
    let offset = u32::from_le_bytes(gap[eocd + 16..eocd + 20].try_into().unwrap()) + 4;
    gap[eocd + 16..eocd + 20].copy_from_slice(&offset.to_le_bytes());
    refused(&gap, "4 bytes between the last entry and the central directory");

    let mut two = z.clone();
    two.extend_from_slice(&z);
    refused(&two, "concatenated");
}

#[test]
fn zip64_fields_and_data_descriptors_are_understood() {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("big", opts(0o644).large_file(true)).unwrap();
    w.write_all(b"small but zip64").unwrap();
    let z = w.finish().unwrap().into_inner();
    assert_eq!(scan_bytes(&z).unwrap()[0].size, 15);

    let mut w = zip::ZipWriter::new_stream(Vec::new());
    w.start_file("streamed", opts(0o644)).unwrap();
    w.write_all(&b"no seeking back\n".repeat(10)).unwrap();
    let z = w.finish().unwrap().into_inner();
    let entries = scan_bytes(&z).unwrap();
    assert_ne!(entries[0].flags & FLAG_DESCRIPTOR, 0, "the writer used no descriptor");
    assert_eq!(entries[0].size, 160);
}

#[test]
fn any_damage_is_an_error_never_a_panic() {
    let z = honest();
    for cut in 0..z.len() {
        assert!(scan_bytes(&z[..cut]).is_err(), "cut at {cut}");
    }
    for at in 0..z.len() {
        for v in [0u8, 0x01, 0x7f, 0x80, 0xff] {
            let mut m = z.clone();
            m[at] = v;
            let _ = scan_bytes(&m);
        }
    }
}
