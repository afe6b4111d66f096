//! End-to-end tests of `layerbuild smoke` on tiny hand-made layers: the happy path and layers broken on purpose.
//!
//! The layers are hermetic: a shell exec wrapper, a fake OpenTelemetry shim in Python that emits
//! OTLP JSON the way the real SDK would (a SERVER span per invocation, a CLIENT span per HTTP call),
//! and a fake collector extension in Python that registers, forwards OTLP to the exporter endpoint
//! of the config smoke writes, and leaves on SHUTDOWN. The emulator, receiver, lifecycle ordering
//! and checks are the real ones; only the layer is small. Tests need a python3.9, found the way
//! `layerbuild` finds it (see README, "How the tests find interpreters").

mod common;
#[path = "smoke/fixture.rs"]
mod fixture;

use std::path::Path;

use serde_json::{Value, json};

use fixture::*;

use common::{EM_AARCH64, EM_X86_64, ET_EXEC, ZipEntry, fake_elf, layerbuild, layerbuild_shared_cache, write_zip};

#[test]
fn a_working_layer_passes_with_its_spans() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text, report) = smoke(dir.path(), &good_layer(), &[]);
    assert!(ok, "{text}");
    let run = &report["runs"][0];
    assert_eq!(run["passed"], true);
    assert_eq!(
        run["runtime_client"].as_str().unwrap(),
        "builtin (smoke's minimal Runtime API client)"
    );
    let ext = &run["extensions"][0];
    assert_eq!(ext["name"], "collector");
    // The cold invocation, one warm with the receiver at once and one with it 300 ms late.
    assert_eq!(ext["delivered"], json!(["INVOKE", "INVOKE", "INVOKE", "SHUTDOWN"]));
    assert_eq!(ext["exit"], "exit status 0", "the extension left on SHUTDOWN");
    assert_eq!(run["result"]["smoke"], "ok");
    assert_eq!(run["result"]["request_id"], run["request_id"]);
    let kinds: Vec<&str> = run["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["SERVER", "CLIENT", "SERVER", "CLIENT", "SERVER", "CLIENT"]);
    assert_eq!(run["spans"][1]["parent_span_id"], run["spans"][0]["span_id"]);
    assert!(run["init_ms"].as_u64().is_some());
    let invocations = run["invocations"].as_array().unwrap();
    let delays: Vec<u64> = invocations
        .iter()
        .map(|i| i["backend_delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [0, 0, 300]);
    assert_eq!(invocations[0]["request_id"], run["request_id"]);
    for inv in invocations {
        assert_eq!(inv["spans_before_freeze"], 2, "{inv}");
        assert_eq!(inv["spans_after_freeze"], 0, "{inv}");
        let groups = inv["freeze"]["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 2, "runtime and collector: {inv}");
        assert!(
            groups
                .iter()
                .all(|g| g["processes"].as_u64() >= Some(1) && g["stopped"] == g["processes"]),
            "{inv}"
        );
    }
    // This collector exports before it answers the SDK: the late backend is on the invoke's path.
    let warm = &run["warm_invoke_ms"];
    assert!(warm["median_late_ms"].as_u64().unwrap() >= 300, "{warm}");
    assert!(warm["median_at_once_ms"].as_u64().unwrap() < 300, "{warm}");
    for c in run["checks"].as_array().unwrap() {
        assert_eq!(c["ok"], true, "{c}");
    }
    let names = common::names(&run["checks"]);
    assert!(
        names.contains(&"spans before the freeze, invocation 3 (warm, backend 300 ms late)"),
        "{names:?}"
    );
    assert!(names.contains(&"sandbox frozen after each invocation"), "{names:?}");
    assert!(text.contains("registered as `collector`"), "{text}");
    assert!(text.contains("invocation 3 (warm, backend 300 ms late)"), "{text}");
    assert!(text.contains("smoke: PASS"), "{text}");
}

#[test]
fn a_dir_works_like_a_zip_and_cold_starts_are_timed() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for (name, mode, data) in good_layer() {
        let p = tree.join(&name);
        if name.ends_with('/') {
            std::fs::create_dir_all(&p).unwrap();
        } else {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777)).unwrap();
        }
    }
    let out = layerbuild(dir.path())
        .arg("smoke")
        .arg("--dir")
        .arg(&tree)
        .args([
            "--client",
            "builtin",
            "--offline",
            "--free-ports",
            "--cold-start-runs",
            "2",
            "--json",
        ])
        .timeout(std::time::Duration::from_secs(180))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report:#}");
    // stderr is a pipe: one plain line per stage start and end, durations redacted.
    let filters = vec![
        (r"\b\d+m\d{2}s\b", "<t>"),
        (r"\b\d+(\.\d)?s\b", "<t>"),
        (r"python3\.\d+", "python3.X"),
    ];
    insta::with_settings!({filters => filters}, {
        insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr), @r"
        [python3.X] runtime packages: started
        [python3.X] runtime packages: done in <t>: client builtin (smoke's minimal Runtime API client)
        [python3.X] run: started
        [python3.X] run: done in <t>: passed
        [python3.X] cold starts: started
        [python3.X] cold starts: done in <t>: 2 timed
        ");
    });
    let cold = &report["cold_start"];
    assert_eq!(cold["wrapper_to_result_ms"].as_array().unwrap().len(), 2, "{cold}");
    assert!(cold["min_ms"].as_u64().unwrap() <= cold["median_ms"].as_u64().unwrap());
    // The source folder is left as it was: writable, no bytecode written into it.
    assert!(!std::fs::metadata(tree.join("python")).unwrap().permissions().readonly());
    assert!(!tree.join("python/__pycache__").exists());
}

#[test]
fn a_wrapper_without_exec_bit_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let layer = replace(good_layer(), file("otel-instrument", 0o644, WRAPPER));
    let (ok, text, report) = smoke(dir.path(), &layer, &[]);
    assert!(!ok);
    let f = failure(&report);
    assert!(
        f.contains("otel-instrument") && f.contains("permission denied") && f.contains("needs the exec bit"),
        "{f}"
    );
    assert!(text.contains("FAIL: runtime: cannot start"), "{text}");
}

#[test]
fn a_collector_for_the_wrong_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // The machine this host cannot run: an arm64 collector in an x86_64 layer (or the reverse on arm64).
    let other = if cfg!(target_arch = "aarch64") {
        EM_X86_64
    } else {
        EM_AARCH64
    };
    let elf = fake_elf(other, ET_EXEC, 4096);
    let layer = replace(good_layer(), ("extensions/collector".into(), 0o100755, elf));
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    };
    let (ok, _, report) = smoke(dir.path(), &layer, &["--arch", arch]);
    assert!(!ok);
    let f = failure(&report);
    assert!(
        f.contains("extension collector") && f.contains("exec format error") && f.contains("wrong architecture"),
        "{f}"
    );
}

#[test]
fn a_handler_that_raises_shows_the_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let handler = dir.path().join("raising.py");
    std::fs::write(&handler, RAISING_HANDLER).unwrap();
    let (ok, text, report) = smoke(dir.path(), &good_layer(), &["--handler", handler.to_str().unwrap()]);
    assert!(!ok);
    let run = &report["runs"][0];
    assert_eq!(run["error"]["body"]["errorType"], "ValueError");
    assert!(
        failure(&report).contains("the handler failed: ValueError: boom from the handler"),
        "{report:#}"
    );
    // The spans of the failed invocation still arrive (the shim exports on the error path).
    assert_eq!(run["spans"].as_array().unwrap().len(), 1, "{report:#}");
    // A failed invocation ends the run: no warm ones after it.
    assert_eq!(run["invocations"].as_array().unwrap().len(), 1, "{report:#}");
    assert!(
        text.contains("FAIL: invoke result: the handler failed: ValueError: boom"),
        "{text}"
    );
}

#[test]
fn a_collector_that_refuses_its_config_is_named_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let layer = replace(good_layer(), file("extensions/collector", 0o755, BROKEN_COLLECTOR));
    let (ok, text, report) = smoke(dir.path(), &layer, &[]);
    assert!(!ok);
    let f = failure(&report);
    assert!(
        f.contains("extension collector exited (exit status 1) before registering"),
        "{f}"
    );
    let log = report["runs"][0]["logs"]["extension-collector"].as_array().unwrap();
    assert!(
        log.iter()
            .any(|l| l.as_str().unwrap().contains("unknown type: \"otlphttpx\"")),
        "{log:?}"
    );
    assert!(text.contains("| 'exporters' unknown type"), "{text}");
}

#[test]
fn an_extension_that_never_registers_fails_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut layer = good_layer();
    layer.push(file("extensions/silent", 0o755, SILENT_EXTENSION));
    let started = std::time::Instant::now();
    let (ok, _, report) = smoke(dir.path(), &layer, &["--timeout", "4"]);
    assert!(!ok);
    let f = failure(&report);
    assert!(f.contains("only 1 of 2 extensions registered within"), "{f}");
    // Two runs (JSON and text), each bounded by --timeout plus the shutdown bound.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
}

/// The check named `spans before the freeze, invocation N (...)` of the first run.
fn freeze_check(report: &Value, invocation: usize) -> &Value {
    let prefix = format!("spans before the freeze, invocation {invocation} ");
    report["runs"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(&prefix))
        .unwrap_or_else(|| panic!("no check for invocation {invocation}: {report:#}"))
}

#[test]
fn the_freeze_stops_every_process_for_its_hold() {
    let dir = tempfile::tempdir().unwrap();
    let ticks = dir.path().join("ticks");
    let ticker = TICKER.replace("TICKS = None", &format!("TICKS = {:?}", ticks.display().to_string()));
    let mut layer = good_layer();
    layer.push(file("extensions/ticker", 0o755, &ticker));
    let (ok, report) = smoke_json(dir.path(), &layer, &["--freeze-ms", "800"]);
    assert!(ok, "{report:#}");
    let invocations = report["runs"][0]["invocations"].as_array().unwrap();
    for inv in invocations {
        let ticker = inv["freeze"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["label"] == "extension-ticker");
        assert_eq!(ticker.unwrap()["stopped"], 1, "{inv}");
        assert_eq!(inv["freeze"]["held_ms"], 800);
    }
    // The ticker writes every 10 ms; while frozen it cannot. Freezes may follow each other too
    // closely for it to be scheduled between them, so their gaps are counted by total length.
    let stamps: Vec<f64> = std::fs::read_to_string(&ticks)
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let gaps: Vec<f64> = stamps.windows(2).map(|w| w[1] - w[0]).filter(|g| *g >= 0.7).collect();
    let frozen: f64 = gaps.iter().sum();
    let held = 0.8 * invocations.len() as f64;
    assert!(
        frozen >= held - 0.05,
        "stopped {frozen:.2} s of {held:.2} s: gaps {gaps:?}"
    );
    // It runs again after the last thaw, until SHUTDOWN.
    let last_gap_end = stamps.windows(2).rposition(|w| w[1] - w[0] >= 0.7).unwrap() + 1;
    assert!(last_gap_end < stamps.len() - 1, "no tick after the last thaw");
}

#[test]
fn a_collector_that_queues_misses_the_freeze_with_a_late_backend() {
    let dir = tempfile::tempdir().unwrap();
    let layer = replace(good_layer(), collector("queued", None));
    let (ok, report) = smoke_json(dir.path(), &layer, &["--freeze-ms", "300"]);
    assert!(!ok, "{report:#}");
    // With the backend 300 ms late the export is still on its way when the sandbox freezes.
    let late = freeze_check(&report, 3);
    assert_eq!(
        late["name"],
        "spans before the freeze, invocation 3 (warm, backend 300 ms late)"
    );
    assert_eq!(late["ok"], false, "{late}");
    assert!(
        late["detail"]
            .as_str()
            .unwrap()
            .contains("arrived only after the freeze"),
        "{late}"
    );
    let inv = &report["runs"][0]["invocations"][2];
    assert_eq!(inv["spans_before_freeze"], 0, "{inv}");
    assert_eq!(inv["spans_after_freeze"], 2, "{inv}");
    // ... though the invocation itself did not wait for the backend.
    assert!(inv["invoke_ms"].as_u64().unwrap() < 300, "{inv}");
    assert!(
        failure(&report).contains("arrived only after the freeze"),
        "{}",
        failure(&report)
    );
}

#[test]
fn a_telemetry_subscriber_drains_before_the_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let noted = dir.path().join("notes");
    let layer = replace(good_layer(), collector("telemetry", Some(&noted)));
    let (ok, report) = smoke_json(dir.path(), &layer, &["--freeze-ms", "300"]);
    assert!(ok, "{report:#}\n{}", notes(&noted));
    let run = &report["runs"][0];
    let sub = &run["telemetry"]["subscriptions"][0];
    assert_eq!(sub["extension"], "collector");
    assert_eq!(sub["delivered_to"], true);
    assert_eq!(sub["buffering_timeout_ms"], 25);
    assert!(
        sub["destination"].as_str().unwrap().starts_with("http://127.0.0.1:"),
        "{sub}"
    );
    let invocations = run["invocations"].as_array().unwrap();
    for (n, inv) in invocations.iter().enumerate() {
        let id = inv["request_id"].as_str().unwrap();
        // The last report is delivered at SHUTDOWN, which the extension may leave on first.
        let mut events = vec!["platform.start", "platform.runtimeDone", "platform.report"];
        if n + 1 == invocations.len() && inv["telemetry"].as_array().unwrap().len() == 2 {
            events.pop();
        }
        assert_eq!(inv["telemetry"], json!(events), "{inv}");
        assert!(notes(&noted).contains(&format!("runtimeDone {id}: draining")));
        assert_eq!(inv["spans_after_freeze"], 0, "{inv}");
    }
    // Off the invoke's path: the late backend holds the freeze back, not the response.
    let late = &run["invocations"][2];
    assert_eq!(late["backend_delay_ms"], 300);
    assert!(late["invoke_ms"].as_u64().unwrap() < 300, "{late}");
    assert!(late["frozen_after_response_ms"].as_u64().unwrap() >= 300, "{late}");
    assert_eq!(freeze_check(&report, 3)["ok"], true);
    assert!(notes(&noted).contains("subscribed: \"OK\""), "{}", notes(&noted));
}

#[test]
fn a_silent_telemetry_api_delivers_nothing_and_the_subscriber_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let noted = dir.path().join("notes");
    let layer = replace(good_layer(), collector("telemetry", Some(&noted)));
    let (ok, report) = smoke_json(dir.path(), &layer, &["--freeze-ms", "300", "--telemetry", "silent"]);
    assert!(ok, "{report:#}\n{}", notes(&noted));
    let run = &report["runs"][0];
    assert_eq!(run["telemetry"]["mode"], "silent");
    assert_eq!(run["telemetry"]["subscriptions"][0]["delivered_to"], false);
    assert_eq!(run["telemetry"]["deliveries"], 0);
    let noted = notes(&noted);
    assert!(noted.contains("subscribed: {}"), "{noted}");
    assert!(!noted.contains("telemetry platform."), "{noted}");
    // Falls back once, on the first invocation, and exports synchronously from then on.
    let first = run["invocations"][0]["request_id"].as_str().unwrap();
    assert_eq!(noted.matches("falling back").count(), 1, "{noted}");
    assert!(noted.contains(&format!("no platform.start for {first}")), "{noted}");
    for inv in run["invocations"].as_array().unwrap() {
        assert_eq!(inv["telemetry"], json!([]), "{inv}");
        assert_eq!(inv["spans_after_freeze"], 0, "{inv}");
    }
    assert!(run["invocations"][2]["invoke_ms"].as_u64().unwrap() >= 300);
}

#[test]
fn a_collector_that_forwards_nothing_fails_after_one_invocation() {
    let dir = tempfile::tempdir().unwrap();
    let layer = replace(good_layer(), collector("drop", None));
    let started = std::time::Instant::now();
    let (ok, report) = smoke_json(dir.path(), &layer, &["--freeze-ms", "100"]);
    assert!(!ok);
    assert!(
        failure(&report).starts_with("server span: the receiver got no spans"),
        "{}",
        failure(&report)
    );
    let run = &report["runs"][0];
    // The invocation itself worked; with no span coming, warm ones would only wait for the same.
    assert_eq!(run["result"]["smoke"], "ok");
    assert_eq!(run["invocations"].as_array().unwrap().len(), 1, "{run:#}");
    assert_eq!(
        freeze_check(&report, 1)["detail"],
        format!(
            "no span of request {} reached the receiver, before the freeze or after the thaw",
            run["request_id"].as_str().unwrap()
        )
    );
    // One bounded wait for spans (10 s), not one per invocation.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
}

/// `layerbuild smoke --json` on the real default amd64 layer from `dist/`.
fn smoke_real_amd64(extra: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let zip = root.join("dist/aws-otel-python-amd64-ver-1-20-0.zip");
    assert!(
        zip.exists(),
        "{} is missing: build it first (cargo run --release -- --out dist)",
        zip.display()
    );
    let out = layerbuild_shared_cache(root)
        .arg("smoke")
        .arg(&zip)
        .args(["--free-ports", "--timeout", "120", "--json"])
        .args(extra)
        .timeout(std::time::Duration::from_secs(900))
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.success(), report["passed"] == true);
    report
}

/// Names of the failed checks of every run, and each run's failure when it stopped early.
fn failed_checks(report: &Value) -> Vec<String> {
    let mut failed = Vec::new();
    for run in report["runs"].as_array().unwrap() {
        for c in run["checks"].as_array().unwrap().iter().filter(|c| c["ok"] != true) {
            failed.push(format!("{} {}: {}", run["runtime"], c["name"], c["detail"]));
        }
        if run["checks"].as_array().unwrap().is_empty() {
            failed.push(format!("{}: {}", run["runtime"], run["failure"]));
        }
    }
    failed
}

#[test]
#[ignore = "needs the real default layer: run make layers first"]
fn the_real_amd64_layer_passes() {
    let report = smoke_real_amd64(&[]);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "python3.8 and python3.9: {report:#}");
    for run in runs {
        assert_eq!(run["invocations"].as_array().unwrap().len(), 3, "{run:#}");
    }
    // Whether spans beat the freeze is the collector's part (issue 12), checked below on its own.
    let failed: Vec<String> = failed_checks(&report)
        .into_iter()
        .filter(|c| !c.contains("spans before the freeze"))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // The layer's collector subscribes to function records, so the handler's line is checked.
    for run in runs {
        let checks = run["checks"].as_array().unwrap();
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == "handler log record" && c["ok"] == true),
            "{run:#}"
        );
    }
}

#[test]
#[ignore = "needs the real default layer (make layers) and a collector that delivers before event/next (issue 12)"]
fn the_real_amd64_layer_delivers_spans_before_each_freeze() {
    let report = smoke_real_amd64(&["--warm-invokes", "3"]);
    let failed = failed_checks(&report);
    assert!(failed.is_empty(), "{failed:#?}");
    // Off the invoke's path: a backend 300 ms away costs a warm invoke (almost) nothing.
    for run in report["runs"].as_array().unwrap() {
        let warm = &run["warm_invoke_ms"];
        let (at_once, late) = (
            warm["median_at_once_ms"].as_u64().unwrap(),
            warm["median_late_ms"].as_u64().unwrap(),
        );
        assert!(late <= at_once + 10, "{}: {warm}", run["runtime"]);
    }
}
