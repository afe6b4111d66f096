//! Unit tests of the safe unpacking: modes, links, special bits, caps, declared sizes.

use std::io::Cursor;

use zip::write::SimpleFileOptions;

use super::*;

fn opts(mode: u32) -> SimpleFileOptions {
    SimpleFileOptions::default().unix_permissions(mode)
}

fn write_zip(dir: &Path, build: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> PathBuf {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    build(&mut w);
    let p = dir.join("in.zip");
    std::fs::write(&p, w.finish().unwrap().into_inner()).unwrap();
    p
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn files_and_folders_land_with_their_modes() {
    let d = tempfile::tempdir().unwrap();
    let zip = write_zip(d.path(), |w| {
        w.add_directory("ro/", opts(0o555)).unwrap();
        w.start_file("ro/inside.txt", opts(0o644)).unwrap();
        w.write_all(b"inside").unwrap();
        w.start_file("bin/run", opts(0o755)).unwrap();
        w.write_all(b"#!/bin/sh\n").unwrap();
    });
    let out = d.path().join("out");
    let got = extract(&zip, &out, &Options::default()).unwrap();
    assert_eq!(
        got,
        Extracted {
            files: 2,
            dirs: 1,
            bytes: 16
        }
    );
    assert_eq!(std::fs::read(out.join("ro/inside.txt")).unwrap(), b"inside");
    assert_eq!(mode_of(&out.join("ro")), 0o555);
    assert_eq!(mode_of(&out.join("bin")), 0o755, "an implied folder");
    assert_eq!(mode_of(&out.join("bin/run")), 0o755);
    assert_eq!(mode_of(&out.join("ro/inside.txt")), 0o644);
    std::fs::set_permissions(out.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_symlink_entry_is_refused_and_nothing_lands_outside() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let target = outside.display().to_string();
    let zip = write_zip(d.path(), |w| {
        w.add_symlink("escape", &target, opts(0o777)).unwrap();
        w.start_file("escape/planted", opts(0o755)).unwrap();
        w.write_all(b"x").unwrap();
    });
    let e = extract(&zip, &d.path().join("out"), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_eq!(e.entry.as_deref(), Some("escape"));
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!d.path().join("out/escape").exists());
}

#[test]
fn the_target_must_be_new() {
    let d = tempfile::tempdir().unwrap();
    let zip = write_zip(d.path(), |w| {
        w.start_file("a", opts(0o644)).unwrap();
    });
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let e = extract(&zip, &out, &Options::default()).unwrap_err();
    assert!(e.to_string().contains("cannot create"), "{e}");
}

/// The zip's first central header gets `mode` as its raw unix mode.
fn with_raw_mode(zip: &Path, mode: u32) {
    let mut b = std::fs::read(zip).unwrap();
    let cd = (0..b.len() - 4).find(|&i| b[i..i + 4] == [0x50, 0x4b, 1, 2]).unwrap();
    b[cd + 38..cd + 42].copy_from_slice(&(mode << 16).to_le_bytes());
    std::fs::write(zip, b).unwrap();
}

#[test]
fn special_bits_are_refused_unless_asked_for() {
    let d = tempfile::tempdir().unwrap();
    let zip = write_zip(d.path(), |w| {
        w.start_file("tool", opts(0o755)).unwrap();
        w.write_all(b"#!/bin/sh\n").unwrap();
    });
    with_raw_mode(&zip, 0o104755);
    let e = extract(&zip, &d.path().join("a"), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("setuid"), "{e}");
    let allow = Options {
        allow_special_bits: true,
        ..Options::default()
    };
    extract(&zip, &d.path().join("b"), &allow).unwrap();
    assert_eq!(mode_of(&d.path().join("b/tool")), 0o4755);
    with_raw_mode(&zip, 0o010644);
    let e = extract(&zip, &d.path().join("c"), &allow).unwrap_err();
    assert!(e.to_string().contains("neither a file nor a folder"), "{e}");
}

#[test]
fn declared_sizes_are_capped_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let zip = write_zip(d.path(), |w| {
        w.start_file("big", opts(0o644)).unwrap();
        w.write_all(&[0u8; 5000]).unwrap();
    });
    let small = Options {
        limits: Limits {
            entry_bytes: 4096,
            total_bytes: 1 << 20,
            entries: 10,
        },
        ..Options::default()
    };
    let e = extract(&zip, &d.path().join("out"), &small).unwrap_err();
    assert!(e.to_string().contains("over the 4096-byte limit"), "{e}");
    assert!(!d.path().join("out").exists());
}

#[test]
fn unsafe_names_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let zip = write_zip(d.path(), |w| {
        w.start_file("../up", opts(0o644)).unwrap();
    });
    let e = extract(&zip, &d.path().join("out"), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("`..`"), "{e}");
    assert!(!d.path().join("up").exists());
}

#[test]
fn streams_must_hold_exactly_what_they_declare() {
    let mut out = Vec::new();
    assert_eq!(stream_exact(&b"abc"[..], 3, &mut out).unwrap(), 3);
    let long = stream_exact(&b"abcd"[..], 3, &mut Vec::new()).unwrap_err();
    assert!(long.to_string().contains("more than the 3 bytes"), "{long}");
    let short = stream_exact(&b"ab"[..], 3, &mut Vec::new()).unwrap_err();
    assert!(short.to_string().contains("holds 2 bytes but declares 3"), "{short}");
    // A declaration of u64::MAX neither overflows nor allocates.
    assert_eq!(
        stream_exact(&b"ab"[..], u64::MAX, &mut Vec::new()).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn entries_read_into_memory_are_capped_by_their_declaration() {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("f", opts(0o644)).unwrap();
    w.write_all(&[7u8; 100]).unwrap();
    let bytes = w.finish().unwrap().into_inner();
    let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    assert_eq!(read_entry(&mut z.by_index(0).unwrap(), 100).unwrap(), vec![7u8; 100]);
    let e = read_entry(&mut z.by_index(0).unwrap(), 99).unwrap_err();
    assert!(e.contains("declares 100 bytes, over the 99-byte limit"), "{e}");
}

#[test]
fn unpacking_stops_at_its_deadline() {
    let d = tempfile::tempdir().unwrap();
    let zip = write_zip(d.path(), |w| {
        w.start_file("a.txt", opts(0o644)).unwrap();
        w.write_all(b"a").unwrap();
    });
    let past = Options {
        deadline: Some(Instant::now()),
        ..Options::default()
    };
    let e = extract(&zip, &d.path().join("late"), &past).unwrap_err();
    assert!(e.to_string().contains("did not finish in the time given"), "{e}");
    let later = Options {
        deadline: Some(Instant::now() + std::time::Duration::from_secs(60)),
        ..Options::default()
    };
    extract(&zip, &d.path().join("in-time"), &later).unwrap();
}

#[test]
fn a_name_longer_than_a_path_under_opt_can_be_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let deep = format!("{}f", "a/".repeat(MAX_NAME_BYTES / 2));
    let zip = write_zip(d.path(), |w| {
        w.start_file(deep.as_str(), opts(0o644)).unwrap();
        w.write_all(b"x").unwrap();
    });
    let e = extract(&zip, &d.path().join("out"), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("PATH_MAX"), "{e}");
    // Just within the bound: unpacked, every implied folder 0755.
    let ok = format!("{}f", "a/".repeat(MAX_NAME_BYTES / 2 - 1));
    let zip = write_zip(d.path(), |w| {
        w.start_file(ok.as_str(), opts(0o644)).unwrap();
        w.write_all(b"x").unwrap();
    });
    extract(&zip, &d.path().join("fits"), &Options::default()).unwrap();
    assert_eq!(mode_of(&d.path().join("fits/a/a")), 0o755);
}
