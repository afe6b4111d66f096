//! Input paths that are not files: FIFOs that never deliver, devices that never end, and a spec
//! built to make the parser slow (issue 14, item 10).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common;
use crate::layer::{Layer, MANIFEST, ZIP};
use crate::run::{self, Outcome};

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", p.display());
}

/// Runs with a 4 GiB address-space ceiling and a 20 s bound; the answer must come in 10 s.
fn bounded(mut cmd: Command) -> Outcome {
    run::limit_memory(&mut cmd, 4 << 30);
    run::run(cmd, Duration::from_secs(20))
}

fn check(failures: &mut Vec<String>, what: &str, out: Outcome, names: &str) {
    let ok = out.code() == Some(1)
        && out.elapsed < Duration::from_secs(10)
        && out.stderr.contains(names)
        && out.stderr.contains("regular file");
    if !ok {
        failures.push(format!(
            "{what}: exit {:?} (signal {:?}, timed out {}) after {:?}, peak RSS {} KiB: {}",
            out.code(),
            out.signal(),
            out.timed_out,
            out.elapsed,
            out.max_rss_kib,
            out.stderr.trim()
        ));
    }
}

#[test]
fn verify_refuses_fifos_and_devices() {
    let mut failures = Vec::new();
    let l = Layer::new();
    let d = l.dir.path();
    mkfifo(&d.join("fifo.zip"));
    mkfifo(&d.join("fifo.json"));

    let mut cmd = run::layerbuild(d);
    cmd.args(["verify", "fifo.zip", "--manifest", MANIFEST]);
    check(&mut failures, "zip is a FIFO", bounded(cmd), "fifo.zip");

    let mut cmd = run::layerbuild(d);
    cmd.args(["verify", ZIP, "--manifest", "fifo.json"]);
    check(&mut failures, "manifest is a FIFO", bounded(cmd), "fifo.json");

    let mut cmd = run::layerbuild(d);
    cmd.args(["verify", ZIP, "--manifest", "/dev/zero"]);
    check(&mut failures, "manifest is /dev/zero", bounded(cmd), "/dev/zero");

    let mut cmd = run::layerbuild(d);
    cmd.args(["verify", "/dev/zero", "--manifest", MANIFEST]);
    check(&mut failures, "zip is /dev/zero", bounded(cmd), "/dev/zero");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn build_refuses_fifos_and_devices() {
    let mut failures = Vec::new();
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    common::fixture(d);
    mkfifo(&d.join("fifo"));
    let build = |extra: &[&str]| {
        let mut cmd = run::layerbuild(d);
        cmd.args(["build", "--quiet", "--arch", "x86_64", "--out", "dist"])
            .args(extra);
        bounded(cmd)
    };
    check(&mut failures, "spec is a FIFO", build(&["--spec", "fifo"]), "fifo");
    check(
        &mut failures,
        "spec is /dev/zero",
        build(&["--spec", "/dev/zero"]),
        "/dev/zero",
    );
    check(
        &mut failures,
        "collector is a FIFO",
        build(&["--collector", "x86_64=fifo"]),
        "fifo",
    );
    check(
        &mut failures,
        "collector is /dev/zero",
        build(&["--collector", "x86_64=/dev/zero"]),
        "/dev/zero",
    );

    // The lock and the collector config, named by the spec.
    let with_python = format!(
        "{}runtimes: [python3.9]\npython:\n  lock: fifo\n",
        common::SPEC.replace("runtimes: [python3.9]\n", "")
    );
    std::fs::write(d.join("lock-fifo.yaml"), with_python).unwrap();
    check(
        &mut failures,
        "lock is a FIFO",
        build(&["--spec", "lock-fifo.yaml"]),
        "fifo",
    );
    let zero_lock = format!(
        "{}runtimes: [python3.9]\npython:\n  lock: /dev/zero\n",
        common::SPEC.replace("runtimes: [python3.9]\n", "")
    );
    std::fs::write(d.join("lock-zero.yaml"), zero_lock).unwrap();
    check(
        &mut failures,
        "lock is /dev/zero",
        build(&["--spec", "lock-zero.yaml"]),
        "/dev/zero",
    );
    let config = common::SPEC.replace("src: config/config.yaml", "src: fifo");
    std::fs::write(d.join("config-fifo.yaml"), config).unwrap();
    check(
        &mut failures,
        "collector config is a FIFO",
        build(&["--spec", "config-fifo.yaml"]),
        "fifo",
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_spec_of_nested_brackets_is_rejected_fast() {
    let d = tempfile::tempdir().unwrap();
    let depth = 100_000;
    let spec = format!("name: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    std::fs::write(d.path().join("layer.yaml"), spec).unwrap();
    let mut cmd = run::layerbuild(d.path());
    cmd.args(["plan"]);
    let out = run::run(cmd, Duration::from_secs(60));
    assert!(
        out.code() == Some(1) && out.elapsed < Duration::from_secs(2),
        "a 200 KB spec of brackets: exit {:?} after {:?}: {}",
        out.code(),
        out.elapsed,
        &out.stderr[..out.stderr.len().min(2000)]
    );
    assert!(out.stderr.contains("nest"), "{}", out.stderr);
}
