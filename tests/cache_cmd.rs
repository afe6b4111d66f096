//! End to end: `layerbuild cache dir|size|clean`, the one cache root every command uses
//! (`LAYERBUILD_CACHE`, else `$XDG_CACHE_HOME/layerbuild`, else `~/.cache/layerbuild`), and a
//! clean that refuses folders that are not a layerbuild cache and caches in use.

mod common;

use std::path::Path;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{fixture, layerbuild, write};

/// The binary with no cache variables at all, HOME pointing into the test's folder.
fn bare(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("layerbuild").unwrap();
    cmd.current_dir(dir)
        .env_remove("LAYERBUILD_CACHE")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", dir.join("home"));
    cmd
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn cache_dir_follows_layerbuild_cache_then_xdg_then_home() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let dir = |cmd: &mut Command| stdout(&cmd.args(["cache", "dir"]).output().unwrap());
    assert_eq!(
        dir(bare(p)
            .env("LAYERBUILD_CACHE", p.join("mine"))
            .env("XDG_CACHE_HOME", p.join("xdg"))),
        format!("{}\n", p.join("mine").display())
    );
    assert_eq!(
        dir(bare(p).env("XDG_CACHE_HOME", p.join("xdg"))),
        format!("{}\n", p.join("xdg/layerbuild").display())
    );
    // An empty variable counts as unset, as in the XDG spec.
    assert_eq!(
        dir(bare(p).env("LAYERBUILD_CACHE", "").env("XDG_CACHE_HOME", "")),
        format!("{}\n", p.join("home/.cache/layerbuild").display())
    );
    // Showing the folder creates nothing.
    assert!(!p.join("home").exists());
}

#[test]
fn a_build_marks_its_cache_and_the_cache_holds_what_it_wrote() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let cache = d.path().join("xdg/layerbuild");
    bare(d.path())
        .env("XDG_CACHE_HOME", d.path().join("xdg"))
        .args(["--quiet", "--out", "dist"])
        .assert()
        .success();
    let tag = std::fs::read_to_string(cache.join("CACHEDIR.TAG")).unwrap();
    assert!(
        tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n"),
        "{tag}"
    );
    assert!(tag.contains("layerbuild"), "{tag}");
    assert!(
        !d.path().join("home").exists(),
        "nothing under HOME when XDG_CACHE_HOME is set"
    );

    // `cache size --json` agrees with the files on disk.
    let out = bare(d.path())
        .env("XDG_CACHE_HOME", d.path().join("xdg"))
        .args(["cache", "size", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (mut bytes, mut files) = (0u64, 0u64);
    for e in walkdir::WalkDir::new(&cache) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            bytes += e.metadata().unwrap().len();
            files += 1;
        }
    }
    assert_eq!(v["root"], cache.display().to_string());
    assert_eq!(v["bytes"], bytes);
    assert_eq!(v["files"], files);
    assert!(v["parts"]["deflate"]["files"].as_u64().unwrap() > 0, "{v:#}");
}

/// A cache made by hand: known sizes, so the human summary can be pinned.
fn handmade(root: &Path) {
    write(root, "wheels/ab/alpha-1.0-py3-none-any.whl", &[0u8; 3000]);
    write(root, "wheels/cd/beta-2.0-py3-none-any.whl", &[0u8; 1500]);
    write(root, "pyc/x", &[0u8; 100]);
    write(
        root,
        "CACHEDIR.TAG",
        b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by layerbuild.\n",
    );
}

#[test]
fn cache_size_lists_each_part() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("c");
    handmade(&root);
    let out = layerbuild(d.path())
        .env("LAYERBUILD_CACHE", &root)
        .args(["cache", "size"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out).replace(&root.display().to_string(), "<root>");
    insta::assert_snapshot!(text, @r"
    <root>: 4.6 KiB in 4 files
      wheels  4.4 KiB in 2 files
      pyc     100 B in 1 file
    ");
    // No cache yet is not an error.
    let out = layerbuild(d.path())
        .env("LAYERBUILD_CACHE", d.path().join("none"))
        .args(["cache", "size"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).replace(&d.path().display().to_string(), "<tmp>"),
        "<tmp>/none: empty (no cache yet)\n"
    );
}

#[test]
fn cache_clean_empties_the_cache_and_a_build_refills_it() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let cache = d.path().join(".cache");
    layerbuild(d.path())
        .args(["--quiet", "--out", "dist"])
        .assert()
        .success();
    assert!(cache.join("deflate").exists());
    let out = layerbuild(d.path()).args(["cache", "clean"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!("emptied {} (", cache.display())),
        "{}",
        stdout(&out)
    );
    let left: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    assert_eq!(left, ["CACHEDIR.TAG"], "only the marker stays");
    layerbuild(d.path())
        .args(["--quiet", "--out", "dist"])
        .assert()
        .success();
    assert!(cache.join("deflate").exists());
}

#[test]
fn cache_clean_refuses_a_folder_that_is_not_a_layerbuild_cache() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "precious/thesis.tex", b"years of work\n");
    // A tag from another program does not count either.
    write(
        d.path(),
        "other/CACHEDIR.TAG",
        b"Signature: 8a477f597d28d172789f06886806bc55\n# made by some other tool\n",
    );
    for name in ["precious", "other"] {
        let out = layerbuild(d.path())
            .env("LAYERBUILD_CACHE", d.path().join(name))
            .args(["cache", "clean"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = stderr(&out).replace(&d.path().display().to_string(), "<tmp>");
        assert_eq!(
            err,
            format!(
                "layerbuild: cache clean: <tmp>/{name} is not a layerbuild cache (no CACHEDIR.TAG written by layerbuild): check LAYERBUILD_CACHE and XDG_CACHE_HOME, or remove the folder yourself\n"
            )
        );
    }
    assert_eq!(
        std::fs::read(d.path().join("precious/thesis.tex")).unwrap(),
        b"years of work\n"
    );
    // Nothing to clean is fine.
    let out = layerbuild(d.path())
        .env("LAYERBUILD_CACHE", d.path().join("none"))
        .args(["cache", "clean"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!d.path().join("none").exists());
}

#[test]
fn cache_clean_refuses_while_a_build_uses_the_cache() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let path = common::fake_go(d.path(), common::GoBuild::After(6));
    let bin = assert_cmd::cargo::cargo_bin("layerbuild");
    let mut build = StdCommand::new(bin)
        .current_dir(d.path())
        .env("LAYERBUILD_CACHE", d.path().join(".cache"))
        .env("PATH", &path)
        .args(["--arch", "x86_64", "--quiet", "--out", "dist"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waited = Instant::now();
    while !d.path().join("go-started").exists() {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the build never reached go build"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = layerbuild(d.path()).args(["cache", "clean"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out).replace(&d.path().display().to_string(), "<tmp>");
    insta::assert_snapshot!(err.trim_end(), @"layerbuild: cache clean: <tmp>/.cache is in use by a running layerbuild: try again when it has finished");
    let status = build.wait().unwrap();
    assert!(status.success(), "the build survived the refused clean");
    // Once the build is over, clean proceeds.
    layerbuild(d.path()).args(["cache", "clean"]).assert().success();
}
