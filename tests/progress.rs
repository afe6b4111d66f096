//! End to end: progress on stderr. Plain lines when stderr is not a terminal (stage start, end
//! with duration and outcome, a heartbeat while a slow stage runs), never one line per file;
//! `--progress never` and `--quiet` print nothing. The plain format is pinned by snapshots.

mod common;

#[path = "common/wheels.rs"]
mod wheels;
// wheels.rs names its ELF helpers `crate::elf`; common re-exports them.
use common as elf;

use std::path::Path;
use std::process::Output;

use common::{GoBuild, fake_go, fixture, layerbuild, write};

/// Durations change from run to run: `<t>` in snapshots.
fn filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"\b\d+m\d{2}s\b", "<t>"), (r"\b\d+(\.\d)?s\b", "<t>")]
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Lines of parallel architectures interleave: keep each scope's lines in their order, scopes
/// apart (unscoped lines first), so that the snapshot pins each sequence.
fn by_scope(text: &str) -> String {
    let scope = |l: &str| {
        l.strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(s, _)| s.to_string())
            .unwrap_or_default()
    };
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_by_key(|l| scope(l));
    lines.join("\n")
}

fn build(dir: &Path, args: &[&str]) -> Output {
    let out = layerbuild(dir).args(["--out", "dist"]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn plain_progress_shows_each_stage_with_its_outcome() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    // One architecture: two in parallel race for the same compressed entries in the cache.
    let out = build(d.path(), &["--progress", "plain", "--arch", "x86_64"]);
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!(stderr(&out), @r"
        build: demo-layer 1.2.3 for x86_64 into dist
        [x86_64] collector: started
        [x86_64] collector: done in <t>: read ./bin/collector-amd64
        [x86_64] zip: started
        [x86_64] zip: done in <t>: 6 files, 1.4 KiB: 6 compressed, 0 from the cache
        [x86_64] verify: started
        [x86_64] verify: done in <t>: ok
        ");
    });
    // Both architectures: each scope keeps its order; x86_64 finds every entry in the cache.
    let again = build(d.path(), &["--progress", "plain"]);
    let text = by_scope(&stderr(&again));
    let arm: Vec<&str> = text.lines().filter(|l| l.starts_with("[arm64]")).collect();
    let mut racy = filters();
    racy.push((
        r"\d+ compressed, \d+ from the cache",
        "<n> compressed, <n> from the cache",
    ));
    insta::with_settings!({filters => racy}, {
        insta::assert_snapshot!(arm.join("\n"), @r"
        [arm64] collector: started
        [arm64] collector: done in <t>: read ./bin/collector-arm64
        [arm64] zip: started
        [arm64] zip: done in <t>: 6 files, 1.4 KiB: <n> compressed, <n> from the cache
        [arm64] verify: started
        [arm64] verify: done in <t>: ok
        ");
    });
    assert!(
        text.starts_with("build: demo-layer 1.2.3 for x86_64, arm64 into dist\n"),
        "{text}"
    );
    assert!(text.contains("[x86_64] zip: done in"), "{text}");
    assert!(
        text.contains(": 6 files, 1.4 KiB: 0 compressed, 6 from the cache"),
        "{text}"
    );
}

#[test]
fn progress_goes_to_a_log_by_default_and_never_or_quiet_silence_it() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    // stderr is a pipe here, as in CI: auto means plain lines.
    let auto = stderr(&build(d.path(), &[]));
    assert!(auto.contains("[x86_64] zip: started"), "{auto}");
    let never = build(d.path(), &["--progress", "never"]);
    assert_eq!(stderr(&never), "");
    assert!(!never.stdout.is_empty(), "--progress never keeps the summary");
    let quiet = build(d.path(), &["--progress", "plain", "--quiet"]);
    assert_eq!(stderr(&quiet), "", "--quiet wins over --progress");
    assert!(quiet.stdout.is_empty());
    // The flag is global: it may come after the subcommand too.
    let out = layerbuild(d.path())
        .args(["plan", "--progress", "never"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
}

#[test]
fn many_files_still_make_one_line_per_stage() {
    let few = tempfile::tempdir().unwrap();
    fixture(few.path());
    let many = tempfile::tempdir().unwrap();
    fixture(many.path());
    for i in 0..300 {
        write(many.path(), &format!("src/pkg/many/m{i}.py"), b"X = 1\n");
    }
    let lines = |d: &Path| stderr(&build(d, &["--progress", "plain"])).lines().count();
    assert_eq!(lines(few.path()), lines(many.path()));
}

/// A build of the x86_64 layer with plain progress and `path` as PATH (a fake go first); its
/// stderr, after checking that it succeeded.
fn plain_build(dir: &std::path::Path, path: &std::ffi::OsStr) -> String {
    let out = layerbuild(dir)
        .env("PATH", path)
        .args(["--arch", "x86_64", "--progress", "plain", "--out", "dist"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn a_go_build_says_built_then_reused() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let path = fake_go(d.path(), GoBuild::After(0));
    let run = || {
        plain_build(d.path(), &path)
            .lines()
            .filter(|l| l.contains("collector: done"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first = run();
    let second = run();
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!(format!("{first}\n{second}"), @r"
        [x86_64] collector: done in <t>: built with go build
        [x86_64] collector: done in <t>: reused the cached go build
        ");
    });
}

#[test]
fn a_slow_stage_prints_a_heartbeat_about_every_ten_seconds() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let path = fake_go(d.path(), GoBuild::After(12));
    let text = plain_build(d.path(), &path);
    let beats: Vec<&str> = text.lines().filter(|l| l.contains("still running")).collect();
    assert_eq!(beats.len(), 1, "12 s of go build: one heartbeat at 10 s:\n{text}");
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!(beats[0], @"[x86_64] collector: still running after <t> (go build . in ./gomod)");
    });
}

#[test]
fn python_packages_say_where_each_wheel_came_from() {
    use wheels::{Wheel, pin, write_wheels};
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    write(
        dir,
        "layer.yaml",
        b"name: sp\nversion: '1.0'\narchitectures: [x86_64]\nruntimes: [python3.9]\npython:\n  lock: requirements.txt\n  bytecode: never\n",
    );
    let a = Wheel::new("alpha", "1.0", "py3-none-any").file("alpha/__init__.py", b"A = 1\n");
    let b = Wheel::new("beta", "2.0", "py3-none-any").file("beta/__init__.py", b"B = 2\n");
    let mut lock = String::from("# Generated by `layerbuild lock` from requirements.in: do not edit by hand.\n");
    lock.push_str(&pin(
        "alpha",
        "1.0",
        None,
        &write_wheels(&dir.join("wheelhouse"), &[&a]),
    ));
    lock.push_str(&pin("beta", "2.0", None, &write_wheels(&dir.join("wheelhouse"), &[&b])));
    write(dir, "requirements.txt", lock.as_bytes());
    let wheel_lines = |args: &[&str]| {
        let out = build(dir, &[&["--progress", "plain"], args].concat());
        stderr(&out)
            .lines()
            .filter(|l| l.contains("wheels: done"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first = wheel_lines(&["--wheelhouse", "wheelhouse"]);
    let second = wheel_lines(&["--offline"]);
    insta::with_settings!({filters => filters()}, {
        insta::assert_snapshot!(format!("{first}\n{second}"), @r"
        [x86_64] wheels: done in <t>: 2 installed: 2 from the wheelhouse
        [x86_64] wheels: done in <t>: 2 installed: 2 from the cache
        ");
    });
}
