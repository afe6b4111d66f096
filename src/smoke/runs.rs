//! One run of the layer: natively with a Python runtime, or, for a layer of another architecture,
//! its extensions under qemu with smoke playing the runtime. Each run is set up, taken through its
//! invocations, shut down, checked and reported; timed cold starts repeat the native run.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::checks::{
    before_freeze_check, evaluate, freeze_check, handler_log_check, invocation_spans, native_modules_check,
    runtime_log_check,
};
use super::emulator::{Outcome, State, TelemetryMode};
use super::http;
use super::lifecycle::INVOKE_LIMIT;
use super::native;
use super::options::Round;
use super::python::{Interp, Prepared};
use super::receiver::{self, Received, Span, TARGET_PATH};
use super::report::{
    Check, ColdStart, InvocationReport, RunReport, SpanReport, SubscriptionReport, TelemetryReport, WarmLatency, median,
};
use super::stage::{Stage, nonce};
use super::{Ctx, FUNCTION_NAME};
use crate::model::arch::Arch;

/// Lambda's own limit for the init phase, reported when exceeded (at native speed only).
const LAMBDA_INIT_LIMIT: Duration = Duration::from_secs(10);
/// Bound on the native-module probe, natively (it imports five or so modules).
const PROBE_LIMIT: Duration = Duration::from_secs(30);

/// A run with the layer's Python: cold start, then each round's invocation, each ended by a freeze.
pub(crate) fn run_native(ctx: &Ctx, interp: &Interp, prep: &Prepared, rounds: &[Round], hold: Duration) -> RunReport {
    let mut r = RunReport {
        runtime: format!("python{}", interp.runtime.dotted()),
        python: Some(interp.python.display().to_string()),
        runtime_client: prep.client.clone(),
        notes: prep.notes.clone(),
        ..RunReport::default()
    };
    if prep.client.starts_with("unavailable") {
        r.failure = Some(format!("runtime client {}", prep.client));
        return r;
    }
    let deadline = Instant::now() + ctx.args.timeout() * interp.slowdown();
    let dir = format!("run-python{}-{}", interp.runtime.dotted(), nonce());
    let mut stage = match Stage::new(ctx, &dir, &mut r.notes) {
        Ok(s) => s,
        Err(e) => {
            r.failure = Some(format!("cannot set up the run: {e:#}"));
            return r;
        }
    };
    stage.slowdown = interp.slowdown();
    native_env(&mut stage, interp, prep);
    let failure = native_lifecycle(ctx, interp, &mut stage, &mut r, rounds, hold, deadline).err();
    let (st, got) = finish(&mut stage, &mut r, ctx.args.telemetry_mode(), deadline);
    let cold_answered = r
        .request_id
        .as_deref()
        .and_then(|id| st.invocation(id))
        .is_some_and(|i| i.outcome.is_some());
    if cold_answered {
        r.checks = evaluate(&st, r.request_id.as_deref(), &stage.target_body, &got);
        // The sample handler prints a line; Lambda's Telemetry API streams it to the extensions
        // that asked for function records (the layer's collector does with smoke's config).
        let streamed = st
            .subscriptions
            .iter()
            .any(|s| s.active && s.types.iter().any(|t| t == "function"));
        if let Some(id) = r.request_id.as_deref()
            && ctx.args.handler.is_none()
            && ctx.args.telemetry_mode() == TelemetryMode::Lambda
        {
            if streamed {
                r.checks.push(handler_log_check(&st, id, &got));
            } else {
                r.notes
                    .push("no extension subscribed to function records: the handler's log line is not checked".into());
            }
        }
        r.checks.push(native_modules_check(ctx.layer, interp.runtime));
        r.checks.push(native::probe_check(
            interp,
            ctx.layer,
            ctx.work,
            PROBE_LIMIT * interp.slowdown(),
        ));
        r.checks.push(native::glibc_check(ctx.layer, interp.runtime));
        if let Some(runtime) = &stage.runtime {
            r.checks.push(runtime_log_check(&runtime.log));
        }
    }
    r.checks.extend(invocation_checks(&r.invocations));
    conclude(&mut r, failure);
    if !r.passed {
        stage.collect_logs(&mut r.logs);
    }
    r
}

/// The runtime's environment, as Lambda's python3.X runtime has it.
fn native_env(stage: &mut Stage, interp: &Interp, prep: &Prepared) {
    let path = format!("{}:{}", interp.bin_dir.display(), stage.env["PATH"].to_string_lossy());
    stage.env.insert("PATH".into(), path.into());
    let pythonpath = std::env::join_paths(&prep.pythonpath).unwrap_or_default();
    stage.env.insert("PYTHONPATH".into(), pythonpath);
    if let Some(first) = prep.pythonpath.first() {
        stage
            .env
            .insert("LAMBDA_RUNTIME_DIR".into(), first.clone().into_os_string());
    }
    let client = if prep.client.starts_with("awslambdaric") {
        "awslambdaric"
    } else {
        "builtin"
    };
    stage.env.insert("LAYERBUILD_SMOKE_CLIENT".into(), client.into());
    stage.env.insert(
        "AWS_EXECUTION_ENV".into(),
        format!("AWS_Lambda_python{}", interp.runtime.dotted()).into(),
    );
    // On Lambda /opt and /var/task are read-only, so Python never caches bytecode there. File
    // modes cannot stop root from writing, so without this the first run would leave
    // `__pycache__` in the layer and every later (timed) run would use it.
    stage.env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
}

/// Extensions, runtime, init, then the invocations; the failure cause, if any.
fn native_lifecycle(
    ctx: &Ctx,
    interp: &Interp,
    stage: &mut Stage,
    r: &mut RunReport,
    rounds: &[Round],
    hold: Duration,
    deadline: Instant,
) -> Result<(), String> {
    let emulator = interp.foreign.as_ref().map(|f| f.emulator.as_path());
    stage.start_extensions(ctx.layer, emulator, deadline)?;
    let started = stage.clock.us();
    stage.start_runtime(interp)?;
    let init = stage.await_init(deadline)?.saturating_sub(started) / 1000;
    r.init_ms = Some(init);
    if stage.slowdown == 1 && Duration::from_millis(init) > LAMBDA_INIT_LIMIT {
        r.notes
            .push(format!("init took {init} ms: over Lambda's 10 s init limit"));
    }
    for round in rounds {
        let target = format!("{}{TARGET_PATH}?run={}", stage.receiver.endpoint(), nonce());
        stage.receiver.set_delay(round.backend_delay);
        let limit = deadline
            .saturating_duration_since(Instant::now())
            .min(stage.limit(INVOKE_LIMIT));
        let id = stage.emulator.invoke(&json!({ "target_url": target }), limit, true);
        if round.cold {
            r.request_id = Some(id.clone());
        }
        stage.await_outcome(&id, Instant::now() + limit)?;
        if round.cold {
            record_cold(r, &stage.emulator.snapshot(), &id, started);
        }
        let inv = stage.finish_invocation(&id, *round, hold, deadline)?;
        let go_on = inv.succeeded && reached_receiver(&inv);
        r.invocations.push(inv);
        // A failed invocation, or one whose spans never came, already fails the run; more
        // invocations would only spend the run's time bound waiting for the same.
        if !go_on {
            break;
        }
    }
    Ok(())
}

/// The cold invocation's latency, result or error, and wrapper-start-to-result time.
fn record_cold(r: &mut RunReport, st: &State, id: &str, started_us: u64) {
    let Some(inv) = st.invocation(id) else { return };
    let (Some(outcome), Some(at)) = (&inv.outcome, inv.outcome_us) else {
        return;
    };
    r.invoke_ms = Some(at.saturating_sub(inv.invoked_us) / 1000);
    r.wrapper_to_result_ms = Some(at.saturating_sub(started_us) / 1000);
    let as_json = |body: &[u8]| {
        serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()))
    };
    match outcome {
        Outcome::Response(body) => r.result = Some(as_json(body)),
        Outcome::Error { error_type, body } => r.error = Some(json!({"header": error_type, "body": as_json(body)})),
    }
}

/// Shuts the run down and fills in what every run reports: extensions, telemetry, spans.
fn finish(stage: &mut Stage, r: &mut RunReport, mode: TelemetryMode, deadline: Instant) -> (State, Received) {
    stage.shutdown(&mut r.notes, deadline);
    let st = stage.emulator.snapshot();
    r.extensions = stage.extension_reports(&st);
    r.telemetry = telemetry_report(&st, mode);
    for inv in &mut r.invocations {
        inv.telemetry = st
            .deliveries
            .iter()
            .flat_map(|d| d.events.iter())
            .filter(|(_, rid)| rid.as_deref() == Some(inv.request_id.as_str()))
            .map(|(kind, _)| kind.clone())
            .collect();
    }
    r.warm_invoke_ms = warm_latency(&r.invocations);
    let got = stage.receiver.snapshot();
    r.spans = span_reports(&got.spans);
    for p in &got.problems {
        r.notes.push(format!("receiver refused a post: {p}"));
    }
    for refused in st.refused.iter().filter(|x| x.contains("telemetry")) {
        r.notes.push(format!("the Telemetry API refused: {refused}"));
    }
    (st, got)
}

fn telemetry_report(st: &State, mode: TelemetryMode) -> TelemetryReport {
    TelemetryReport {
        mode: match mode {
            TelemetryMode::Lambda => "lambda",
            TelemetryMode::Silent => "silent",
            TelemetryMode::Unsupported => "unsupported",
        }
        .into(),
        subscriptions: st
            .subscriptions
            .iter()
            .map(|s| SubscriptionReport {
                extension: s.extension.clone(),
                schema_version: s.schema_version.clone(),
                types: s.types.clone(),
                destination: s.uri.clone(),
                buffering_timeout_ms: s.buffering.timeout_ms,
                delivered_to: s.active,
            })
            .collect(),
        deliveries: st.deliveries.len(),
        failed_deliveries: st
            .deliveries
            .iter()
            .filter_map(|d| d.result.as_ref().err().map(|e| format!("to {}: {e}", d.extension)))
            .collect(),
        logs_api_subscriptions: st.logs_subscriptions.clone(),
    }
}

fn warm_latency(invocations: &[InvocationReport]) -> Option<WarmLatency> {
    let warm = |late: bool| -> Vec<u64> {
        invocations
            .iter()
            .filter(|i| !i.cold && (i.backend_delay_ms > 0) == late)
            .filter_map(|i| i.invoke_ms)
            .collect()
    };
    let (at_once, late) = (warm(false), warm(true));
    if at_once.is_empty() && late.is_empty() {
        return None;
    }
    Some(WarmLatency {
        backend_late_by_ms: invocations.iter().map(|i| i.backend_delay_ms).max().unwrap_or(0),
        median_at_once_ms: median(&at_once),
        median_late_ms: median(&late),
        backend_at_once: at_once,
        backend_late: late,
    })
}

/// One check per invocation (spans before its freeze), and one for the freezes themselves.
fn invocation_checks(invocations: &[InvocationReport]) -> Vec<Check> {
    let mut checks: Vec<Check> = invocations
        .iter()
        .enumerate()
        .map(|(n, inv)| before_freeze_check(n + 1, inv))
        .collect();
    if !invocations.is_empty() {
        checks.push(freeze_check(invocations));
    }
    checks
}

fn span_reports(spans: &[Span]) -> Vec<SpanReport> {
    spans
        .iter()
        .map(|s| SpanReport {
            name: s.name.clone(),
            kind: receiver::kind_name(s.kind).into(),
            trace_id: s.trace_id.clone(),
            span_id: s.span_id.clone(),
            parent_span_id: s.parent_span_id.clone(),
            service: s.resource.get("service.name").cloned().unwrap_or_default(),
        })
        .collect()
}

/// Passed when nothing failed on the way and every check is ok; the failure is the first cause.
/// A run that checked nothing proved nothing.
fn conclude(r: &mut RunReport, failure: Option<String>) {
    r.completed = failure.is_none();
    let failure = failure.or_else(|| r.checks.is_empty().then(|| "no checks ran".to_string()));
    r.passed = failure.is_none() && r.checks.iter().all(|c| c.ok);
    r.failure = failure.or_else(|| {
        r.checks
            .iter()
            .find(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
    });
}

/// For a layer of another architecture: the extensions under qemu, and per round a probe span
/// posted to the collector by smoke, which plays the runtime.
pub(crate) fn run_emulated(ctx: &Ctx, qemu: &Path, arch: Arch, rounds: &[Round], hold: Duration) -> RunReport {
    let mut r = RunReport {
        runtime: "none (no Python for this architecture here)".into(),
        runtime_client: "none".into(),
        ..RunReport::default()
    };
    let deadline = Instant::now() + ctx.args.timeout();
    let mut stage = match Stage::new(ctx, &format!("run-{arch}-{}", nonce()), &mut r.notes) {
        Ok(s) => s,
        Err(e) => {
            r.failure = Some(format!("cannot set up the run: {e:#}"));
            return r;
        }
    };
    let failure = emulated_lifecycle(ctx, qemu, &mut stage, &mut r, rounds, hold, deadline).err();
    let (_, got) = finish(&mut stage, &mut r, ctx.args.telemetry_mode(), deadline);
    if let Some(id) = r.request_id.as_deref() {
        let through = !invocation_spans(&got, id).is_empty();
        r.checks.push(Check::new(
            "collector pipeline",
            through,
            if through {
                format!("a probe span posted to the {arch} collector's OTLP/HTTP receiver reached smoke's receiver")
            } else {
                format!(
                    "the probe span posted to the collector did not reach the receiver ({} posts)",
                    got.posts
                )
            },
        ));
    }
    r.checks.extend(invocation_checks(&r.invocations));
    conclude(&mut r, failure);
    if !r.passed {
        stage.collect_logs(&mut r.logs);
    }
    r
}

fn emulated_lifecycle(
    ctx: &Ctx,
    qemu: &Path,
    stage: &mut Stage,
    r: &mut RunReport,
    rounds: &[Round],
    hold: Duration,
    deadline: Instant,
) -> Result<(), String> {
    if super::layer_dir::extension_files(ctx.layer).is_empty() {
        return Err("the layer has no extensions/: nothing of it can run on this host".into());
    }
    let started = stage.clock.us();
    stage.start_extensions(ctx.layer, Some(qemu), deadline)?;
    r.init_ms = Some(stage.await_init(deadline)?.saturating_sub(started) / 1000);
    for round in rounds {
        stage.receiver.set_delay(round.backend_delay);
        let id = stage.emulator.invoke(&json!({}), INVOKE_LIMIT, false);
        r.request_id.get_or_insert_with(|| id.clone());
        post_probe(stage, &id)?;
        stage.emulator.answer(&id, Outcome::Response(b"{}".to_vec()))?;
        let inv = stage.finish_invocation(&id, *round, hold, deadline)?;
        let go_on = reached_receiver(&inv);
        r.invocations.push(inv);
        if !go_on {
            break;
        }
    }
    Ok(())
}

fn reached_receiver(inv: &InvocationReport) -> bool {
    inv.spans_before_freeze + inv.spans_after_freeze > 0
}

/// Posts one SERVER span for request `id` to the collector's OTLP/HTTP receiver, as the SDK's
/// flush at the end of an invocation would, and waits for its answer.
fn post_probe(stage: &Stage, id: &str) -> Result<(), String> {
    let trace: String = format!("{:0>32}", nonce()).chars().rev().take(32).collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": FUNCTION_NAME}}]},
        "scopeSpans": [{"scope": {"name": "layerbuild.smoke"}, "spans": [{
            "traceId": trace, "spanId": &trace[..16], "name": format!("smoke-probe-{id}"), "kind": 2,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
            "attributes": [{"key": "faas.execution", "value": {"stringValue": id}}]
        }]}]
    }]});
    let host = format!("127.0.0.1:{}", stage.otlp_http_port);
    let posted = http::post(
        &host,
        "/v1/traces",
        "application/json",
        body.to_string().as_bytes(),
        Duration::from_secs(10),
    );
    match posted {
        Ok((200, _)) => Ok(()),
        Ok((status, text)) => Err(format!("the collector's OTLP/HTTP receiver answered {status}: {text}")),
        Err(e) => Err(format!(
            "cannot post to the collector's OTLP/HTTP receiver on {host}: {e:#}"
        )),
    }
}

/// N more native runs of the cold invocation alone, timed from the wrapper's start to the result.
/// A run counts when the layer worked, whether or not its spans beat the freeze.
pub(crate) fn cold_start(ctx: &Ctx, interp: &Interp, prep: &Prepared, n: usize) -> ColdStart {
    let cold_only = [Round {
        cold: true,
        backend_delay: Duration::ZERO,
    }];
    let mut c = ColdStart {
        runtime: format!("python{}", interp.runtime.dotted()),
        runs: n,
        wrapper_to_result_ms: Vec::new(),
        min_ms: None,
        median_ms: None,
        init_ms: Vec::new(),
        failures: Vec::new(),
    };
    for i in 0..n {
        let run = run_native(ctx, interp, prep, &cold_only, Duration::ZERO);
        match (run.worked(), run.wrapper_to_result_ms) {
            (true, Some(ms)) => {
                c.wrapper_to_result_ms.push(ms);
                c.init_ms.extend(run.init_ms);
            }
            _ => c.failures.push(format!(
                "run {}: {}",
                i + 1,
                run.failure.unwrap_or_else(|| "no timing".into())
            )),
        }
    }
    c.min_ms = c.wrapper_to_result_ms.iter().copied().min();
    c.median_ms = median(&c.wrapper_to_result_ms);
    c
}
