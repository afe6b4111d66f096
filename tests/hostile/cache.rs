//! The cache is input too: whatever is changed in it must never reach a zip, and it lives only
//! where other users cannot write (issue 14, item 2).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::common;
use crate::pyfix::{PyLayer, files_below, pure};
use crate::rawzip::{self, Layout};
use crate::run;

#[test]
fn a_wheel_changed_in_the_cache_is_not_shipped() {
    let mut l = PyLayer::new(&["python3.9"], "");
    let got = l.add("demo", "1.0", &[&pure("demo", "1.0", "V = 'locked'\n")]);
    l.build(&["--out", "dist", "--wheelhouse", "wheelhouse", "--no-bytecode"])
        .expect_code(0, "first build");
    let (file, sha) = &got[0];
    let cached = l.cache().join("wheels").join(sha).join(file);
    let evil = pure("demo", "1.0", "import os\nos.system('id')\n").bytes();
    std::fs::write(&cached, evil).unwrap();

    // Offline, the cache is all there is: its wheel no longer has the locked hash.
    let out = l.build(&["--out", "offline", "--offline", "--no-bytecode"]);
    let shipped = std::fs::read(l.path().join("offline").join(crate::pyfix::X86_ZIP)).ok();
    assert!(
        out.code() == Some(1) && shipped.is_none(),
        "a changed cached wheel was used (exit {:?}): {}",
        out.code(),
        out.stderr
    );
    // With the wheelhouse, the build takes the locked wheel again.
    l.build(&["--out", "again", "--wheelhouse", "wheelhouse", "--no-bytecode"])
        .expect_code(0, "build with the wheelhouse");
    assert_eq!(l.zip_bytes("again"), l.zip_bytes("dist"));
}

/// Changes every file of a cache folder: a zip gets the setuid bit on every entry, anything
/// else one flipped byte in its middle.
fn tamper_all(dir: &Path) -> usize {
    let files = files_below(dir);
    for f in &files {
        let mut data = std::fs::read(f).unwrap();
        let parsed = std::panic::catch_unwind(|| rawzip::read(&data));
        match parsed {
            Ok(mut entries) if !entries.is_empty() => {
                for e in &mut entries {
                    e.external |= 0o4000 << 16;
                }
                data = rawzip::write(&entries, &Layout::default());
            }
            _ if !data.is_empty() => {
                let mid = data.len() / 2;
                data[mid] ^= 0x20;
            }
            _ => data = b"x".to_vec(),
        }
        std::fs::write(f, data).unwrap();
    }
    files.len()
}

#[test]
fn a_changed_compression_cache_changes_nothing_in_the_zip() {
    let d = tempfile::tempdir().unwrap();
    common::fixture(d.path());
    let build = |out: &str| {
        let mut cmd = run::layerbuild(d.path());
        cmd.args(["build", "--quiet", "--out", out]);
        run::run(cmd, Duration::from_secs(120)).expect_code(0, out);
        std::fs::read(d.path().join(out).join(common::AMD64_ZIP)).unwrap()
    };
    let clean = build("clean");
    let changed = tamper_all(&d.path().join(".cache"));
    assert!(changed > 0, "the build cached nothing to tamper with");
    let again = build("again");
    for e in rawzip::read(&again) {
        assert_eq!(e.mode() & 0o7000, 0, "{} has special bits {:o}", e.name_str(), e.mode());
    }
    assert!(again == clean, "a tampered cache changed the zip");
}

/// Every cached one-entry zip keeps its shape, size and a matching CRC but holds other data:
/// only hashing what it inflates to tells it apart.
fn swap_cached_data(dir: &Path) -> Vec<std::path::PathBuf> {
    let files = files_below(dir);
    for f in &files {
        let mut entries = rawzip::read(&std::fs::read(f).unwrap());
        for e in &mut entries {
            let other = vec![b'!'; e.size as usize];
            e.compressed = rawzip::deflate(&other);
            e.crc = rawzip::crc32(&other);
        }
        std::fs::write(f, rawzip::write(&entries, &Layout::default())).unwrap();
    }
    files
}

#[test]
fn compressed_data_changed_in_the_cache_is_compressed_again() {
    let d = tempfile::tempdir().unwrap();
    common::fixture(d.path());
    let build = |out: &str| {
        let mut cmd = run::layerbuild(d.path());
        cmd.args(["build", "--out", out]);
        let got = run::run(cmd, Duration::from_secs(120));
        got.expect_code(0, out);
        (got, std::fs::read(d.path().join(out).join(common::AMD64_ZIP)).unwrap())
    };
    let (_, clean) = build("clean");
    let swapped = swap_cached_data(&d.path().join(".cache").join("deflate"));
    assert!(!swapped.is_empty(), "the build cached nothing to change");
    let (out, again) = build("again");
    assert!(again == clean, "changed compressed data in the cache changed the zip");
    assert!(
        out.stdout.contains("did not verify"),
        "the build did not say it compressed again: {}",
        out.stdout
    );
    // The cache was renewed: no entry holds the swapped data any more.
    for f in &swapped {
        for e in rawzip::read(&std::fs::read(f).unwrap()).iter().filter(|e| e.size > 0) {
            assert_ne!(e.crc, rawzip::crc32(&vec![b'!'; e.size as usize]), "{}", f.display());
        }
    }
}

fn cache_cmd(dir: &Path) -> std::process::Command {
    let mut cmd = run::layerbuild(dir);
    cmd.env_remove("LAYERBUILD_CACHE")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("HOME")
        .env("TMPDIR", dir.join("tmp"))
        .args(["build", "--quiet", "--arch", "x86_64", "--out", "dist"]);
    cmd
}

#[test]
fn without_a_usable_home_the_cache_is_never_shared_or_relative() {
    let d = tempfile::tempdir().unwrap();
    common::fixture(d.path());
    std::fs::create_dir(d.path().join("tmp")).unwrap();
    let variants: [(&str, Option<&str>); 3] = [
        ("HOME unset", None),
        ("HOME empty", Some("")),
        ("HOME relative", Some("rel")),
    ];
    for (what, home) in variants {
        let mut cmd = cache_cmd(d.path());
        if let Some(h) = home {
            cmd.env("HOME", h);
        }
        let out = run::run(cmd, Duration::from_secs(120));
        for place in ["tmp/.cache", ".cache", "rel/.cache", "tmp/layerbuild"] {
            assert!(
                !d.path().join(place).exists(),
                "{what}: the cache went to {place} (exit {:?})",
                out.code()
            );
        }
        out.expect_code(1, what);
        assert!(out.stderr.contains("LAYERBUILD_CACHE"), "{what}: {}", out.stderr);
    }
}

#[test]
fn the_cache_folder_is_private() {
    let d = tempfile::tempdir().unwrap();
    common::fixture(d.path());
    std::fs::create_dir(d.path().join("tmp")).unwrap();
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut cmd = cache_cmd(d.path());
    cmd.env("HOME", &home);
    run::run(cmd, Duration::from_secs(120)).expect_code(0, "build with HOME");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home.join(".cache/layerbuild")), 0o700);

    let xdg = d.path().join("xdg");
    let mut cmd = cache_cmd(d.path());
    cmd.env("XDG_CACHE_HOME", &xdg);
    run::run(cmd, Duration::from_secs(120)).expect_code(0, "build with XDG_CACHE_HOME and no HOME");
    assert_eq!(mode(&xdg.join("layerbuild")), 0o700);

    // A cache folder someone left open to everyone is closed before use.
    let open = d.path().join("open-cache");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = cache_cmd(d.path());
    cmd.env("LAYERBUILD_CACHE", &open);
    run::run(cmd, Duration::from_secs(120)).expect_code(0, "build with LAYERBUILD_CACHE");
    assert_eq!(mode(&open), 0o700);
}

/// `cache clean` on a cache root in `dir` whose tag or lock is `plant`ed by an attacker.
fn clean_with(dir: &Path, plant: impl FnOnce(&Path)) -> run::Outcome {
    let root = dir.join("cache");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    plant(&root);
    let mut cmd = run::layerbuild(dir);
    cmd.env("LAYERBUILD_CACHE", &root).args(["cache", "clean"]);
    // A read without limit fails here instead of eating the machine.
    run::limit_memory(&mut cmd, 1 << 30);
    run::run(cmd, Duration::from_secs(30))
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# created by layerbuild\n";

#[test]
fn cache_clean_refuses_a_tag_that_is_a_fifo_or_a_device_without_reading_it() {
    let d = tempfile::tempdir().unwrap();
    let out = clean_with(d.path(), |root| mkfifo(&root.join("CACHEDIR.TAG")));
    eprintln!("tag a FIFO: exit {:?} in {:?}", out.code(), out.elapsed);
    out.expect_code(1, "cache clean with a FIFO for a tag");
    assert!(out.stderr.contains("not a layerbuild cache"), "{}", out.stderr);

    let d = tempfile::tempdir().unwrap();
    let out = clean_with(d.path(), |root| {
        std::os::unix::fs::symlink("/dev/zero", root.join("CACHEDIR.TAG")).unwrap();
    });
    eprintln!("tag a link to /dev/zero: exit {:?} in {:?}", out.code(), out.elapsed);
    // Within a 1 GiB address space: read without limit, it would abort.
    out.expect_code(1, "cache clean with a link to /dev/zero for a tag");
    assert!(out.stderr.contains("not a layerbuild cache"), "{}", out.stderr);
}

#[test]
fn cache_clean_never_follows_a_lock_link_or_opens_a_lock_fifo() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let target = outside.join("created-by-the-lock");
    let out = clean_with(d.path(), |root| {
        std::fs::write(root.join("CACHEDIR.TAG"), TAG).unwrap();
        std::os::unix::fs::symlink(&target, root.join(".lock")).unwrap();
    });
    assert!(!target.exists(), "the lock link was followed (exit {:?})", out.code());
    out.expect_code(1, "cache clean with a symlink for a lock");
    assert!(out.stderr.contains(".lock"), "{}", out.stderr);

    let d = tempfile::tempdir().unwrap();
    let out = clean_with(d.path(), |root| {
        std::fs::write(root.join("CACHEDIR.TAG"), TAG).unwrap();
        mkfifo(&root.join(".lock"));
    });
    eprintln!("lock a FIFO: exit {:?} in {:?}", out.code(), out.elapsed);
    out.expect_code(1, "cache clean with a FIFO for a lock");
}
