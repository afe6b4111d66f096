//! `smoke` against layers that fight back (issue 25, items 5, 6, 14, 17, 18): interrupted runs
//! leave no process and no unpacked layer behind, a zip cannot make the unpacking endless, a
//! chatty extension cannot fill the disk, the freeze stops what left its session, and smoke
//! says it runs the layer's code unsandboxed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::rawzip::{self, Layout, RawEntry};
use crate::run;
use crate::smoke::{alive, smoke_cmd as smoke};

const WRAPPER: &[u8] = b"#!/bin/sh\nexec \"$@\"\n";

/// A layer zip in `dir` with the wrapper and one extension, `extensions/<name>`.
fn layer(dir: &Path, name: &str, extension: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let entries = [
        RawEntry::dir("extensions/", 0o755),
        RawEntry::stored(&format!("extensions/{name}"), 0o755, extension.as_bytes()),
        RawEntry::stored("otel-instrument", 0o755, WRAPPER),
    ];
    let zip = dir.join("layer.zip");
    std::fs::write(&zip, rawzip::write(&entries, &Layout::default())).unwrap();
    zip
}

/// The pids written one a line to `file`, once there are `n` (or after 30 s).
fn pids(file: &Path, n: usize) -> Vec<i32> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Vec<i32> = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if v.len() >= n || Instant::now() > end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which of `pids` are still alive after a moment for the last kill to land; kills them, so
/// that a failing test leaves nothing behind either.
fn survivors(pids: &[i32]) -> Vec<i32> {
    let end = Instant::now() + Duration::from_secs(2);
    while pids.iter().any(|&p| alive(p)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
    for &p in &left {
        // SAFETY: the test's own processes.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    left
}

/// Smoke's temp folders still in `dir/tmp`.
fn temp_left(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("layerbuild-smoke-"))
        .collect()
}

/// An extension that never registers and leaves a daemon in a session of its own; both write
/// their pids to `PIDS`.
const LINGERING: &str = "#!/bin/sh\necho $$ >> PIDS\nsetsid sh -c 'echo $$ >> PIDS; exec sleep 300' </dev/null >/dev/null 2>&1 &\nexec sleep 300\n";

/// Starts smoke in a process group of its own (as a shell does), waits for the extension and
/// its daemon, sends `sig` to the group or to smoke alone, and checks what is left.
fn interrupted(sig: i32, to_group: bool) {
    let d = tempfile::tempdir().unwrap();
    let pidfile = d.path().join("pids");
    let zip = layer(
        d.path(),
        "lingering",
        &LINGERING.replace("PIDS", &pidfile.display().to_string()),
    );
    let mut cmd = smoke(d.path(), &zip, &["--timeout", "120"]);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let started = pids(&pidfile, 2);
    assert_eq!(started.len(), 2, "the extension and its daemon did not start");
    let pid = child.id() as i32;
    // SAFETY: signals to the test's own child (and its group).
    unsafe { libc::kill(if to_group { -pid } else { pid }, sig) };
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if sent.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ended_in = sent.elapsed();
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    let left = survivors(&started);
    let folders = temp_left(d.path());
    eprintln!("signal {sig}: smoke ended in {ended_in:?} with {status:?}");
    assert!(
        left.is_empty(),
        "signal {sig}: still running after smoke: {left:?}\n{stderr}"
    );
    assert!(folders.is_empty(), "signal {sig}: temp folders left: {folders:?}");
    assert_eq!(status.and_then(|s| s.code()), Some(128 + sig), "{stderr}");
    assert!(ended_in < Duration::from_secs(10), "{ended_in:?}");
}

#[test]
fn ctrl_c_ends_every_process_of_the_layer_and_removes_the_unpacked_layer() {
    interrupted(libc::SIGINT, true);
}

#[test]
fn sigterm_ends_every_process_of_the_layer_and_removes_the_unpacked_layer() {
    interrupted(libc::SIGTERM, false);
}

#[test]
fn a_file_32000_folders_deep_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("tmp")).unwrap();
    let deep = format!("{}f", "a/".repeat(32_000));
    let entries = [
        RawEntry::stored("otel-instrument", 0o755, WRAPPER),
        RawEntry::stored(&deep, 0o644, b"x"),
    ];
    let zip = d.path().join("deep.zip");
    std::fs::write(&zip, rawzip::write(&entries, &Layout::default())).unwrap();
    let out = run::run_measured(smoke(d.path(), &zip, &["--timeout", "10"]), Duration::from_secs(60));
    eprintln!(
        "32,000 folders deep: exit {:?} in {:?}, peak RSS {} KiB",
        out.code(),
        out.elapsed,
        out.max_rss_kib
    );
    out.expect_code(1, "a zip with one file 32,000 folders deep");
    assert!(out.stderr.contains("PATH_MAX"), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
    assert!(temp_left(d.path()).is_empty(), "{:?}", temp_left(d.path()));
}

/// An extension that writes `MIB` MiB to stdout, says so in `DONE`, then never registers.
const CHATTY: &str = "#!/bin/sh\nhead -c MIBM /dev/zero | tr '\\0' x\necho done > DONE\nexec sleep 300\n";

#[test]
fn an_extension_writing_hundreds_of_megabytes_is_logged_capped() {
    let d = tempfile::tempdir().unwrap();
    let done = d.path().join("done");
    let script = CHATTY
        .replace("MIB", "200")
        .replace("DONE", &done.display().to_string());
    let zip = layer(d.path(), "chatty", &script);
    let mut cmd = smoke(d.path(), &zip, &["--timeout", "60"]);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while !done.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The biggest log under smoke's temp folder, while the run still waits for the extension.
    std::thread::sleep(Duration::from_millis(300));
    let logged: u64 = walk_sizes(&d.path().join("tmp"));
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("200 MiB of output: {logged} bytes in smoke's temp folder");
    assert!(done.exists(), "the extension never finished writing");
    assert!(logged <= 17 << 20, "{logged} bytes of logs kept");
    assert!(logged >= 16 << 20, "the log keeps its first 16 MiB: {logged}");
}

fn walk_sizes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_sizes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// An extension that registers, starts a daemon in a session of its own that notes the time
/// every 20 ms in `TICKS`, and answers every event.
const TICKING: &str = r#"#!/usr/bin/env python3
import json, os, subprocess, urllib.request
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
subprocess.Popen(["setsid", "sh", "-c", "while :; do date +%s%N >> TICKS; sleep 0.02; done"],
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
req = urllib.request.Request("http://%s/2020-01-01/extension/register" % api, method="POST",
                             data=json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(),
                             headers={"Lambda-Extension-Name": "ticking"})
ext = urllib.request.urlopen(req).headers["Lambda-Extension-Identifier"]
while True:
    nxt = urllib.request.Request("http://%s/2020-01-01/extension/event/next" % api,
                                 headers={"Lambda-Extension-Identifier": ext})
    if json.load(urllib.request.urlopen(nxt)).get("eventType") == "SHUTDOWN":
        break
"#;

#[test]
fn the_freeze_stops_a_daemon_that_left_its_session_and_says_so() {
    let d = tempfile::tempdir().unwrap();
    let ticks = d.path().join("ticks");
    let zip = layer(
        d.path(),
        "ticking",
        &TICKING.replace("TICKS", &ticks.display().to_string()),
    );
    let out = run::run(
        smoke(d.path(), &zip, &["--timeout", "60", "--freeze-ms", "1500", "--json"]),
        Duration::from_secs(120),
    );
    let report: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}): {}\n{}", out.stdout, out.stderr));
    let freeze = &report["runs"][0]["invocations"][0]["freeze"];
    let groups = freeze["groups"].as_array().cloned().unwrap_or_default();
    let count = |k: &str| groups.iter().map(|g| g[k].as_u64().unwrap_or(0)).sum::<u64>();
    let times: Vec<u64> = std::fs::read_to_string(&ticks)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let longest_gap_ms = times.windows(2).map(|w| w[1].saturating_sub(w[0]) / 1_000_000).max();
    eprintln!(
        "freeze groups {groups:?}; {} ticks, longest gap {longest_gap_ms:?} ms",
        times.len()
    );
    assert!(!groups.is_empty(), "no freeze happened: {}\n{}", out.stdout, out.stderr);
    // Runtime, extension and its daemon (sh, and its sleep or date at that moment) at least.
    assert!(
        count("processes") >= 4,
        "the freeze did not count the daemon: {groups:?}"
    );
    assert_eq!(count("stopped"), count("processes"), "{groups:?}");
    // The daemon stood still for the freeze's 1.5 s: no tick in it.
    assert!(
        longest_gap_ms.is_some_and(|g| g >= 1400),
        "the daemon kept running through the freeze (longest pause {longest_gap_ms:?} ms)"
    );
}

#[test]
fn smoke_says_it_runs_the_layer_unsandboxed() {
    let d = tempfile::tempdir().unwrap();
    let out = run::run(
        {
            let mut c = run::layerbuild(d.path());
            c.args(["smoke", "--help"]);
            c
        },
        Duration::from_secs(30),
    );
    out.expect_code(0, "smoke --help");
    let help = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("runs natively on this machine as the user running smoke, with no sandbox"),
        "{help}"
    );
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        readme.contains("The layer's code runs natively and unsandboxed, as the user running smoke"),
        "the README's smoke paragraph does not say it"
    );
}
