//! Unit tests of `checks`.

use super::*;
use crate::smoke::report::{FreezeReport, GroupReport};

fn span(kind: i64, id: &str, parent: &str, trace: &str, attrs: &[(&str, &str)], service: &str) -> Span {
    Span {
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        name: format!("span-{id}"),
        kind,
        scope: String::new(),
        attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        resource: BTreeMap::from([("service.name".to_string(), service.to_string())]),
        received_us: 0,
    }
}

fn state(outcome: Outcome) -> State {
    State {
        invocations: vec![Invocation {
            id: "req-1".into(),
            event: b"{}".to_vec(),
            deadline_ms: 0,
            trace_id: String::new(),
            to_runtime: true,
            invoked_us: 0,
            delivered_us: Some(1),
            outcome: Some(outcome),
            outcome_us: Some(2),
            done_us: Some(3),
        }],
        ..State::default()
    }
}

fn ok_result() -> Outcome {
    Outcome::Response(
        br#"{"smoke":"ok","request_id":"req-1","target_status":200,"target_body":"tb","client":"requests"}"#.to_vec(),
    )
}

fn received(spans: Vec<Span>) -> Received {
    Received {
        posts: 1,
        spans,
        ..Received::default()
    }
}

#[test]
fn passes_with_server_and_child_client() {
    let got = received(vec![
        span(2, "aa", "", "t1", &[("faas.execution", "req-1")], FUNCTION_NAME),
        span(3, "bb", "aa", "t1", &[], FUNCTION_NAME),
    ]);
    let checks = evaluate(&state(ok_result()), Some("req-1"), "tb", &got);
    assert!(checks.iter().all(|c| c.ok), "{checks:?}");
}

#[test]
fn each_broken_piece_is_named() {
    let st = state(ok_result());
    // Client span in another trace.
    let got = received(vec![
        span(2, "aa", "", "t1", &[("faas.execution", "req-1")], FUNCTION_NAME),
        span(3, "bb", "aa", "t2", &[], FUNCTION_NAME),
    ]);
    let c = evaluate(&st, Some("req-1"), "tb", &got);
    assert!(!c[2].ok && c[2].detail.contains("not children"), "{c:?}");
    // Server span of another service, or for another request.
    let got = received(vec![span(2, "aa", "", "t1", &[("faas.execution", "req-1")], "other")]);
    assert!(!evaluate(&st, Some("req-1"), "tb", &got)[1].ok);
    let got = received(vec![span(
        2,
        "aa",
        "",
        "t1",
        &[("faas.execution", "req-9")],
        FUNCTION_NAME,
    )]);
    assert!(!evaluate(&st, Some("req-1"), "tb", &got)[1].ok);
    // No spans at all.
    let c = evaluate(&st, Some("req-1"), "tb", &received(vec![]));
    assert!(c[1].detail.contains("no spans"), "{c:?}");
    // A result that does not carry what the target served.
    let c = evaluate(&st, Some("req-1"), "other-body", &received(vec![]));
    assert!(!c[0].ok && c[0].detail.contains("target_body"), "{c:?}");
    // The handler raised.
    let st = state(Outcome::Error {
        error_type: Some("Unhandled".into()),
        body: br#"{"errorMessage":"boom","errorType":"ValueError"}"#.to_vec(),
    });
    let c = evaluate(&st, Some("req-1"), "tb", &received(vec![]));
    assert_eq!(c[0].detail, "the handler failed: ValueError: boom");
}

fn invocation(before: usize, after: usize, groups: &[(usize, usize)]) -> InvocationReport {
    InvocationReport {
        request_id: "req-1".into(),
        cold: false,
        backend_delay_ms: 300,
        invoke_ms: Some(40),
        succeeded: true,
        frozen_after_response_ms: Some(1),
        freeze: FreezeReport {
            at_ms: 100,
            held_ms: 1000,
            groups: groups
                .iter()
                .map(|&(processes, stopped)| GroupReport {
                    label: "runtime".into(),
                    processes,
                    stopped,
                })
                .collect(),
        },
        spans_before_freeze: before,
        spans_after_freeze: after,
        last_span_after_freeze_ms: (after > 0).then_some(297),
        telemetry: Vec::new(),
    }
}

#[test]
fn spans_after_the_freeze_fail_and_say_how_late() {
    let ok = before_freeze_check(2, &invocation(2, 0, &[(1, 1)]));
    assert!(ok.ok, "{ok:?}");
    assert_eq!(
        ok.name,
        "spans before the freeze, invocation 2 (warm, backend 300 ms late)"
    );
    let late = before_freeze_check(2, &invocation(1, 1, &[(1, 1)]));
    assert!(
        !late.ok && late.detail.contains("1 of 2 spans") && late.detail.contains("297 ms"),
        "{late:?}"
    );
    let none = before_freeze_check(2, &invocation(0, 0, &[(1, 1)]));
    assert!(!none.ok && none.detail.contains("no span of request req-1"), "{none:?}");
}

#[test]
fn a_freeze_that_missed_a_process_fails() {
    assert!(freeze_check(&[invocation(1, 0, &[(2, 2), (1, 1)])]).ok);
    let c = freeze_check(&[invocation(1, 0, &[(1, 1)]), invocation(1, 0, &[(2, 1)])]);
    assert!(
        !c.ok && c.detail.contains("invocation 2: runtime (1 of 2 stopped)"),
        "{c:?}"
    );
    // A group with no process left cannot have been frozen.
    assert!(!freeze_check(&[invocation(1, 0, &[(0, 0)])]).ok);
}

#[test]
fn an_invocation_is_its_server_span_and_trace() {
    let got = received(vec![
        span(2, "aa", "", "t1", &[("faas.invocation_id", "req-1")], FUNCTION_NAME),
        span(3, "bb", "aa", "t1", &[], FUNCTION_NAME),
        span(2, "cc", "", "t2", &[("faas.invocation_id", "req-2")], FUNCTION_NAME),
    ]);
    let ids: Vec<&str> = invocation_spans(&got, "req-1")
        .iter()
        .map(|s| s.span_id.as_str())
        .collect();
    assert_eq!(ids, ["aa", "bb"]);
    assert!(invocation_spans(&got, "req-3").is_empty());
}

#[test]
fn static_check_reads_the_elf_header() {
    let dir = tempfile::tempdir().unwrap();
    let put = |rel: &str, machine: u16| {
        let mut elf = crate::check::elf::fake_elf(machine, object::elf::ET_DYN.0);
        elf.resize(128, 0);
        std::fs::write(dir.path().join(rel), elf).unwrap();
    };
    put("a.so", object::elf::EM_AARCH64.0);
    assert!(static_native_checks(dir.path(), Arch::Arm64)[0].ok);
    put("b.so", object::elf::EM_X86_64.0);
    let c = &static_native_checks(dir.path(), Arch::Arm64)[0];
    assert!(!c.ok && c.detail.contains("b.so is x86_64"), "{c:?}");
}

#[test]
fn native_modules_must_match_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let py = dir.path().join("python");
    let put = |rel: &str| {
        let p = py.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    };
    let py38 = Runtime { major: 3, minor: 8 };
    let py39 = Runtime { major: 3, minor: 9 };
    put("wrapt/_wrappers.cpython-39-x86_64-linux-gnu.so");
    put("lib/python3.8/site-packages/grpc/cygrpc.cpython-38-x86_64-linux-gnu.so");
    put("lib/python3.9/site-packages/grpc/cygrpc.cpython-39-x86_64-linux-gnu.so");
    put("lib/python3.9/site-packages/x/_abi3.abi3.so");
    assert!(native_modules_check(dir.path(), py39).ok);
    let c = native_modules_check(dir.path(), py38);
    assert!(!c.ok && c.detail.contains("wrapt/_wrappers.cpython-39"), "{c:?}");
    // A sibling built for the runtime makes it loadable.
    put("wrapt/_wrappers.cpython-38-x86_64-linux-gnu.so");
    let c = native_modules_check(dir.path(), py38);
    assert!(c.ok, "{c:?}");
    assert!(c.detail.starts_with("3 extension modules"), "{c:?}");
    // A stable-ABI sibling loads under any CPython, so a cp39-only build beside it is fine.
    put("charset_normalizer/md.cpython-39-x86_64-linux-gnu.so");
    assert!(!native_modules_check(dir.path(), py38).ok);
    put("charset_normalizer/md.abi3.so");
    assert!(native_modules_check(dir.path(), py38).ok);
}

#[test]
fn runtime_log_check_fails_on_a_second_instrument_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runtime.log");
    std::fs::write(&log, "START\nINFO fine\n").unwrap();
    let c = runtime_log_check(&log);
    assert!(c.ok, "{c:?}");
    std::fs::write(
        &log,
        "START\nWARNING:opentelemetry.instrumentation.instrumentor:Attempting to instrument while already instrumented\x1b[2K\nERROR Instrumenting of flask failed\n",
    )
    .unwrap();
    let c = runtime_log_check(&log);
    assert!(!c.ok);
    assert_eq!(
        c.detail,
        "WARNING:opentelemetry.instrumentation.instrumentor:Attempting to instrument while already instrumented\\x1b[2K (and 1 more)"
    );
    let c = runtime_log_check(&dir.path().join("missing.log"));
    assert!(!c.ok && c.detail.starts_with("cannot read"), "{c:?}");
}

fn log_line(body: &str, request_id: &str, received_us: u64) -> receiver::LogLine {
    receiver::LogLine {
        body: body.into(),
        request_id: Some(request_id.into()),
        received_us,
    }
}

#[test]
fn the_handler_log_line_must_come_with_its_request_before_the_freeze() {
    let st = state(ok_result()); // frozen at 3 µs
    let mut got = Received::default();
    let check = |got: &Received| handler_log_check(&st, "req-1", got);
    let none = check(&got);
    assert!(
        !none.ok && none.detail.contains("0 log record(s) in all"),
        "{}",
        none.detail
    );
    got.logs.push(log_line(HANDLER_LOG_LINE, "req-0", 1));
    let wrong = check(&got);
    assert!(
        !wrong.ok && wrong.detail.contains("1 with the line but another request id"),
        "{}",
        wrong.detail
    );
    got.logs.push(log_line(HANDLER_LOG_LINE, "req-1", 2_003));
    let late = check(&got);
    assert!(
        !late.ok && late.detail.contains("2 ms after the freeze"),
        "{}",
        late.detail
    );
    got.logs[1].received_us = 3;
    assert!(check(&got).ok, "{}", check(&got).detail);
}
