//! Unit tests of the cache rules: where it lives, that it is private, that reads are checked.

use std::ffi::OsString;

use super::*;

fn os(s: &str) -> Option<OsString> {
    Some(OsString::from(s))
}

#[test]
fn the_folder_is_never_relative_or_shared() {
    assert_eq!(locate(os("/c"), os("/x"), os("/h")).unwrap(), Path::new("/c"));
    assert_eq!(locate(os(""), os("/x"), os("/h")).unwrap(), Path::new("/x/layerbuild"));
    assert_eq!(
        locate(None, os("rel"), os("/h")).unwrap(),
        Path::new("/h/.cache/layerbuild")
    );
    for home in [None, os(""), os("rel")] {
        let e = locate(None, None, home.clone()).unwrap_err();
        assert!(e.to_string().contains("LAYERBUILD_CACHE"), "{home:?}: {e}");
    }
}

#[test]
fn the_folder_is_made_private_and_kept_private() {
    let d = tempfile::tempdir().unwrap();
    let c = d.path().join("a/b/cache");
    ensure_private(&c).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&c), 0o700);
    std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o777)).unwrap();
    ensure_private(&c).unwrap();
    assert_eq!(mode(&c), 0o700);
    let file = d.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(ensure_private(&file).is_err());
}

#[test]
fn a_changed_entry_is_a_miss_and_is_removed() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("w");
    std::fs::write(&p, b"good").unwrap();
    let sha = sha256_hex(b"good");
    assert_eq!(read_checked(&p, &sha, 100).unwrap().unwrap(), b"good");
    std::fs::write(&p, b"evil").unwrap();
    assert_eq!(read_checked(&p, &sha, 100).unwrap(), None);
    assert!(!p.exists());
    assert_eq!(read_checked(&p, &sha, 100).unwrap(), None);
}

#[test]
fn blobs_are_checked_against_their_names() {
    let d = tempfile::tempdir().unwrap();
    let blobs = Blobs::new(d.path());
    let sha = blobs.put(b"pyc bytes").unwrap();
    let record = d.path().join("pyc/ab/key");
    blobs.put_record(&record, &sha, "3.9.18").unwrap();
    let hit = blobs.get_record(&record, 100).unwrap().unwrap();
    assert_eq!(
        (hit.data.as_slice(), hit.note.as_str(), hit.sha256.as_str()),
        (&b"pyc bytes"[..], "3.9.18", sha.as_str())
    );
    // A blob changed in place no longer has its name.
    std::fs::write(blobs.path(&sha), b"pyc bytez").unwrap();
    assert_eq!(blobs.get_record(&record, 100).unwrap(), None);
    // A record naming no blob, or garbage, is a miss.
    std::fs::write(&record, b"../../etc/passwd x\n").unwrap();
    assert_eq!(blobs.get_record(&record, 100).unwrap(), None);
    assert_eq!(blobs.get(&"A".repeat(64), 100).unwrap(), None);
}
