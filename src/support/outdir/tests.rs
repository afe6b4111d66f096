//! Unit tests of the output transaction: commit, rollback, recovery, stale files, the lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::os::unix::fs::PermissionsExt;

use super::*;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn stage_all(out: &OutDir, files: &[(&str, &str)]) -> Vec<(TempPath, String)> {
    files
        .iter()
        .map(|(name, text)| (out.stage(text.as_bytes()).unwrap(), name.to_string()))
        .collect()
}

#[test]
fn a_commit_puts_every_file_in_place_and_leaves_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    let dir = &d.path().join("dist");
    let out = OutDir::open(dir).unwrap();
    out.commit(stage_all(&out, &[("a.zip", "A1"), ("a.json", "M1")]))
        .unwrap();
    out.commit(stage_all(&out, &[("a.zip", "A2"), ("a.json", "M2"), ("SUMS", "S2")]))
        .unwrap();
    assert_eq!(names(dir), ["SUMS", "a.json", "a.zip"]);
    assert_eq!((read(dir, "a.zip"), read(dir, "a.json")), ("A2".into(), "M2".into()));
    let mode = std::fs::metadata(dir.join("a.zip")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn a_failed_rename_puts_back_what_was_there() {
    let d = tempfile::tempdir().unwrap();
    let out = OutDir::open(d.path()).unwrap();
    out.commit(stage_all(&out, &[("a.zip", "old"), ("a.json", "old")]))
        .unwrap();
    let files = stage_all(&out, &[("a.zip", "new"), ("b.zip", "new"), ("a.json", "new")]);
    // The third rename cannot happen: its staged file is gone.
    std::fs::remove_file(&files[2].0).unwrap();
    let e = out.commit(files).unwrap_err();
    assert!(
        format!("{e:#}").contains("nothing in the output folder was changed"),
        "{e:#}"
    );
    assert_eq!(names(d.path()), ["a.json", "a.zip"]);
    assert_eq!(
        (read(d.path(), "a.zip"), read(d.path(), "a.json")),
        ("old".into(), "old".into())
    );
}

#[test]
fn a_folder_in_the_way_fails_before_anything_moves() {
    let d = tempfile::tempdir().unwrap();
    let out = OutDir::open(d.path()).unwrap();
    out.commit(stage_all(&out, &[("a.zip", "old")])).unwrap();
    std::fs::create_dir(d.path().join("SUMS")).unwrap();
    let e = out
        .commit(stage_all(&out, &[("a.zip", "new"), ("SUMS", "new")]))
        .unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert_eq!(read(d.path(), "a.zip"), "old");
    assert_eq!(names(d.path()), ["SUMS", "a.zip"]);
}

#[test]
fn the_next_open_undoes_a_commit_that_was_killed() {
    let d = tempfile::tempdir().unwrap();
    {
        let out = OutDir::open(d.path()).unwrap();
        out.commit(stage_all(&out, &[("a.zip", "old"), ("a.json", "old")]))
            .unwrap();
        // What a build killed after its first rename leaves: journal, backups, one new file.
        let plan: Vec<Step> = stage_all(&out, &[("a.zip", "new"), ("b.zip", "new"), ("a.json", "new")])
            .into_iter()
            .map(|(staged, name)| {
                let old = d.path().join(&name).exists();
                Step { staged, name, old }
            })
            .collect();
        out.back_up(&plan).unwrap();
        out.write_journal(&plan).unwrap();
        std::fs::rename(&plan[0].staged, d.path().join("a.zip")).unwrap();
        std::fs::rename(&plan[1].staged, d.path().join("b.zip")).unwrap();
        for s in plan {
            let _ = s.staged.keep();
        }
        assert_eq!(read(d.path(), "a.zip"), "new");
    }
    let _again = OutDir::open(d.path()).unwrap();
    assert_eq!(
        (read(d.path(), "a.zip"), read(d.path(), "a.json")),
        ("old".into(), "old".into())
    );
    let left: Vec<String> = names(d.path())
        .into_iter()
        .filter(|n| !n.starts_with(TEMP_PREFIX) || n.starts_with(BACKUP_PREFIX) || n == JOURNAL)
        .collect();
    assert_eq!(left, ["a.json", "a.zip"]);
}

#[test]
fn temp_files_go_after_a_day_and_orphaned_backups_at_once() {
    let d = tempfile::tempdir().unwrap();
    for name in [
        ".layerbuild-old",
        ".layerbuild-new",
        ".layerbuild-bak-a.zip",
        "keep.zip",
    ] {
        std::fs::write(d.path().join(name), name).unwrap();
    }
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
    File::options()
        .write(true)
        .open(d.path().join(".layerbuild-old"))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let _out = OutDir::open(d.path()).unwrap();
    assert_eq!(names(d.path()), [".layerbuild-new", "keep.zip"]);
}

#[test]
fn a_second_build_waits_for_the_first() {
    let d = tempfile::tempdir().unwrap();
    let first = OutDir::open(d.path()).unwrap();
    let opened = Arc::new(AtomicBool::new(false));
    let (flag, dir) = (opened.clone(), d.path().to_path_buf());
    let second = std::thread::spawn(move || {
        let out = OutDir::open(&dir).unwrap();
        flag.store(true, Ordering::SeqCst);
        drop(out);
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!opened.load(Ordering::SeqCst), "the second build did not wait");
    drop(first);
    second.join().unwrap();
    assert!(opened.load(Ordering::SeqCst));
}
