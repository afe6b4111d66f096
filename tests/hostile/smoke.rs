//! `smoke` runs layers it did not build: unpacking must stay in its folder, and every process an
//! extension starts must end when the run ends (issue 14, items 1 and 12).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::rawzip::{self, Layout, RawEntry};
use crate::run;

fn python3() -> &'static str {
    "python3"
}

/// `smoke` on `zip` with `TMPDIR` inside `dir`, natively, offline, on free ports.
pub(crate) fn smoke_cmd(dir: &Path, zip: &Path, extra: &[&str]) -> Command {
    let mut cmd = run::layerbuild(dir);
    cmd.env("TMPDIR", dir.join("tmp"))
        .arg("smoke")
        .arg(zip)
        .args([
            "--python",
            python3(),
            "--client",
            "builtin",
            "--offline",
            "--free-ports",
        ])
        .args(["--arch", std::env::consts::ARCH])
        .args(extra);
    cmd
}

#[test]
fn smoke_never_unpacks_through_symlinks() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("tmp")).unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = outside.display().to_string();
    let entries = [
        RawEntry::symlink("escape", &target),
        RawEntry::stored("otel-instrument", 0o755, b"#!/bin/sh\nexec \"$@\"\n"),
        RawEntry::stored("escape/planted.sh", 0o755, b"#!/bin/sh\nid\n"),
        RawEntry::dir("escape/wide/", 0o777),
        RawEntry::dir("escape/", 0o700),
    ];
    let zip = d.path().join("layer.zip");
    std::fs::write(&zip, rawzip::write(&entries, &Layout::default())).unwrap();
    let out = run::run(
        smoke_cmd(d.path(), &zip, &["--timeout", "10"]),
        Duration::from_secs(120),
    );
    let left: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mode = std::fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
    assert!(
        left.is_empty() && mode == 0o755,
        "smoke wrote through a symlink: {left:?} created, folder mode now {mode:o} (exit {:?})",
        out.code()
    );
    out.expect_code(1, "a layer with a symlink");
    assert!(out.stderr.contains("symlink"), "{}", out.stderr);
}

/// An extension that leaves a grandchild in its own session, then never registers.
const ESCAPING_EXTENSION: &str =
    "#!/bin/sh\nsetsid sh -c 'echo $$ > \"$PIDFILE\"; exec sleep 300' </dev/null >/dev/null 2>&1 &\nexec sleep 300\n";

/// Running, not gone or a zombie waiting to be reaped.
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn smoke_ends_every_process_of_an_extension_within_its_timeout() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("tmp")).unwrap();
    let pidfile = d.path().join("grandchild.pid");
    let script = ESCAPING_EXTENSION.replace("$PIDFILE", &pidfile.display().to_string());
    let entries = [
        RawEntry::dir("extensions/", 0o755),
        RawEntry::stored("extensions/escaper", 0o755, script.as_bytes()),
        RawEntry::stored("otel-instrument", 0o755, b"#!/bin/sh\nexec \"$@\"\n"),
    ];
    let zip = d.path().join("layer.zip");
    std::fs::write(&zip, rawzip::write(&entries, &Layout::default())).unwrap();
    let out = run::run(smoke_cmd(d.path(), &zip, &["--timeout", "5"]), Duration::from_secs(120));
    let pid: Option<i32> = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    // A moment for the last kill to land.
    let survivor = pid.filter(|&p| {
        !(0..40).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            !alive(p)
        })
    });
    if let Some(p) = survivor {
        // SAFETY: the test's own grandchild; do not leave it behind.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    assert!(pid.is_some(), "the extension never ran: {}\n{}", out.stdout, out.stderr);
    assert!(survivor.is_none(), "the extension's setsid grandchild outlived smoke");
    assert!(
        out.elapsed < Duration::from_secs(5 + 3),
        "--timeout 5 took {:?}",
        out.elapsed
    );
    out.expect_code(1, "an extension that never registers");
}
