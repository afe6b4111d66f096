//! What a smoke run found, as data (`--json`) and as text for people.

use crate::support::text::show_max;
use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize)]
pub struct Report {
    pub layer: String,
    pub arch: String,
    pub host_arch: String,
    pub mode: String,
    pub passed: bool,
    pub runs: Vec<RunReport>,
    /// What could not be run here and was only checked by reading the files.
    pub static_checks: Vec<Check>,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStart>,
}

#[derive(Debug, Serialize, Default)]
pub struct RunReport {
    pub runtime: String,
    pub python: Option<String>,
    pub runtime_client: String,
    pub extensions: Vec<ExtensionReport>,
    pub telemetry: TelemetryReport,
    pub init_ms: Option<u64>,
    /// The first (cold) invocation.
    pub invoke_ms: Option<u64>,
    pub request_id: Option<String>,
    pub result: Option<Value>,
    pub error: Option<Value>,
    /// Every invocation, each ended by a freeze.
    pub invocations: Vec<InvocationReport>,
    /// Warm invocations' response latency by backend delay, for `make bench`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_invoke_ms: Option<WarmLatency>,
    pub spans: Vec<SpanReport>,
    pub checks: Vec<Check>,
    pub passed: bool,
    pub failure: Option<String>,
    pub notes: Vec<String>,
    /// Tails of the children's output; on failure only.
    pub logs: BTreeMap<String, Vec<String>>,
    #[serde(skip)]
    pub(crate) wrapper_to_result_ms: Option<u64>,
    /// The lifecycle ran to its end (whatever the checks say).
    #[serde(skip)]
    pub(crate) completed: bool,
}

/// The name every "spans before the freeze" check starts with.
pub(crate) const BEFORE_FREEZE: &str = "spans before the freeze";

impl RunReport {
    /// The layer itself worked: the lifecycle completed and every check passed, leaving aside
    /// whether spans beat the freeze (that is the collector's export timing, not the cold start).
    pub(crate) fn worked(&self) -> bool {
        self.completed
            && !self.checks.is_empty()
            && self.checks.iter().all(|c| c.ok || c.name.starts_with(BEFORE_FREEZE))
    }
}

#[derive(Debug, Serialize, Clone)]
pub struct ExtensionReport {
    pub file: String,
    pub name: Option<String>,
    pub registered_ms: Option<u64>,
    pub events: Vec<String>,
    pub delivered: Vec<String>,
    pub exit: Option<String>,
}

#[derive(Debug, Serialize, Default, Clone)]
pub struct TelemetryReport {
    /// `lambda` or `rie`.
    pub mode: String,
    pub subscriptions: Vec<SubscriptionReport>,
    /// Event batches posted to listeners, and those that failed.
    pub deliveries: usize,
    pub failed_deliveries: Vec<String>,
    pub logs_api_subscriptions: Vec<String>,
}

#[derive(Debug, Serialize, Clone)]
pub struct SubscriptionReport {
    pub extension: String,
    pub schema_version: String,
    pub types: Vec<String>,
    pub destination: String,
    pub buffering_timeout_ms: u64,
    /// False in RIE mode: accepted, never delivered to.
    pub delivered_to: bool,
}

#[derive(Debug, Serialize, Clone)]
pub struct InvocationReport {
    pub request_id: String,
    pub cold: bool,
    /// How late the receiver answered during this invocation.
    pub backend_delay_ms: u64,
    /// Response latency: invoke to the runtime's response or error.
    pub invoke_ms: Option<u64>,
    pub succeeded: bool,
    /// From the runtime's response to the freeze: the extensions' time after the invocation.
    pub frozen_after_response_ms: Option<u64>,
    pub freeze: FreezeReport,
    /// The invocation's spans (its trace) that had reached the receiver by the freeze, and after it.
    pub spans_before_freeze: usize,
    pub spans_after_freeze: usize,
    pub last_span_after_freeze_ms: Option<u64>,
    /// Telemetry API events delivered for this request, in order.
    pub telemetry: Vec<String>,
}

#[derive(Debug, Serialize, Clone)]
pub struct FreezeReport {
    /// The freeze moment on the run's clock.
    pub at_ms: u64,
    pub held_ms: u64,
    pub groups: Vec<GroupReport>,
}

/// One process group stopped at the freeze: how many processes, how many seen stopped.
#[derive(Debug, Serialize, Clone)]
pub struct GroupReport {
    pub label: String,
    pub processes: usize,
    pub stopped: usize,
}

#[derive(Debug, Serialize, Clone)]
pub struct WarmLatency {
    pub backend_late_by_ms: u64,
    pub backend_at_once: Vec<u64>,
    pub backend_late: Vec<u64>,
    pub median_at_once_ms: Option<u64>,
    pub median_late_ms: Option<u64>,
}

#[derive(Debug, Serialize, Clone)]
pub struct SpanReport {
    pub name: String,
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub service: String,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub(crate) fn new(name: &str, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            ok,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ColdStart {
    pub runtime: String,
    pub runs: usize,
    pub wrapper_to_result_ms: Vec<u64>,
    pub min_ms: Option<u64>,
    pub median_ms: Option<u64>,
    pub init_ms: Vec<u64>,
    pub failures: Vec<String>,
}

pub(crate) fn median(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    (!sorted.is_empty()).then(|| sorted[sorted.len() / 2])
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok  " } else { "FAIL" }
}

fn ms(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// How much of one log line of the layer's programs a failure report shows.
const LOG_LINE_CHARS: usize = 400;

pub fn render(r: &Report) -> String {
    let mut s = format!("smoke {}: {}\n", r.layer, r.mode);
    for n in &r.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    for run in &r.runs {
        render_run(&mut s, run);
    }
    for c in &r.static_checks {
        let _ = writeln!(s, "{} {}: {}", verdict(c.ok), c.name, c.detail);
    }
    if let Some(c) = &r.cold_start {
        render_cold_start(&mut s, c);
    }
    let _ = write!(s, "\n{}\n", if r.passed { "smoke: PASS" } else { "smoke: FAIL" });
    s
}

fn render_run(s: &mut String, run: &RunReport) {
    let python = run.python.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
    let _ = writeln!(s, "\n{}{python}  runtime client: {}", run.runtime, run.runtime_client);
    for e in &run.extensions {
        let state = match (&e.name, e.registered_ms) {
            (Some(n), Some(ms)) => format!(
                "registered as `{n}` at {ms} ms for [{}], got [{}]",
                e.events.join(", "),
                e.delivered.join(", ")
            ),
            _ => "not registered".into(),
        };
        let exit = e.exit.as_deref().map(|x| format!("; {x}")).unwrap_or_default();
        let _ = writeln!(s, "  extension {}: {state}{exit}", e.file);
    }
    render_telemetry(s, &run.telemetry);
    if let Some(ms) = run.init_ms {
        let _ = writeln!(s, "  init: {ms} ms (start to ready: runtime and extensions in next)");
    }
    if let Some(v) = &run.result {
        let _ = writeln!(s, "  invoke: {} ms -> {v}", run.invoke_ms.unwrap_or(0));
    }
    if let Some(v) = &run.error {
        let _ = writeln!(s, "  invoke: {} ms -> error {v}", run.invoke_ms.unwrap_or(0));
    }
    for (n, inv) in run.invocations.iter().enumerate() {
        render_invocation(s, n + 1, inv);
    }
    if let Some(w) = &run.warm_invoke_ms {
        let _ = writeln!(
            s,
            "  warm invoke latency: median {} ms with the backend at once, {} ms with it {} ms late",
            ms(w.median_at_once_ms),
            ms(w.median_late_ms),
            w.backend_late_by_ms
        );
    }
    render_spans(s, &run.spans);
    for c in &run.checks {
        let _ = writeln!(s, "  {} {}: {}", verdict(c.ok), c.name, c.detail);
    }
    for n in &run.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    match &run.failure {
        None => s.push_str("  PASS\n"),
        Some(f) => {
            let _ = writeln!(s, "  FAIL: {f}");
            for (name, lines) in &run.logs {
                let _ = writeln!(s, "  --- {name} (last {} lines)", lines.len());
                // What the layer's programs printed: no escape sequence of theirs reaches the
                // terminal, and a runaway line is cut.
                for l in lines {
                    let _ = writeln!(s, "  | {}", show_max(l, LOG_LINE_CHARS));
                }
            }
        }
    }
}

fn render_telemetry(s: &mut String, t: &TelemetryReport) {
    for sub in &t.subscriptions {
        let _ = writeln!(
            s,
            "  telemetry API ({} mode): {} subscribed to [{}] at {} (buffering {} ms){}",
            t.mode,
            sub.extension,
            sub.types.join(", "),
            sub.destination,
            sub.buffering_timeout_ms,
            if sub.delivered_to {
                ""
            } else {
                "; nothing delivered, as the RIE"
            }
        );
    }
    if !t.logs_api_subscriptions.is_empty() {
        let _ = writeln!(s, "  logs API subscriptions: {}", t.logs_api_subscriptions.join(", "));
    }
    for f in &t.failed_deliveries {
        let _ = writeln!(s, "  telemetry delivery failed: {f}");
    }
}

fn render_invocation(s: &mut String, n: usize, inv: &InvocationReport) {
    let groups: Vec<String> = inv
        .freeze
        .groups
        .iter()
        .map(|g| format!("{} {}/{}", g.label, g.stopped, g.processes))
        .collect();
    let arrival = match (inv.spans_before_freeze, inv.spans_after_freeze) {
        (0, 0) => "no spans arrived".to_string(),
        (b, 0) => format!("{b} spans before the freeze"),
        (b, a) => format!(
            "{b} spans before the freeze, {a} after (up to {} ms late)",
            ms(inv.last_span_after_freeze_ms)
        ),
    };
    let _ = writeln!(
        s,
        "  invocation {n} ({}, backend {}): {} ms, frozen {} ms after the response for {} ms (stopped: {}); {arrival}{}",
        if inv.cold { "cold" } else { "warm" },
        backend(inv.backend_delay_ms),
        ms(inv.invoke_ms),
        ms(inv.frozen_after_response_ms),
        inv.freeze.held_ms,
        groups.join(", "),
        if inv.telemetry.is_empty() {
            String::new()
        } else {
            format!("; telemetry [{}]", inv.telemetry.join(", "))
        }
    );
}

/// `at once` or `300 ms late`.
pub(crate) fn backend(delay_ms: u64) -> String {
    if delay_ms == 0 {
        "at once".into()
    } else {
        format!("{delay_ms} ms late")
    }
}

fn render_spans(s: &mut String, spans: &[SpanReport]) {
    if spans.is_empty() {
        return;
    }
    let _ = writeln!(s, "  spans received ({}):", spans.len());
    for sp in spans {
        let parent = if sp.parent_span_id.is_empty() {
            "-"
        } else {
            &sp.parent_span_id
        };
        let _ = writeln!(
            s,
            "    {:<8} {:<40} span {} parent {parent} trace {} service {}",
            sp.kind, sp.name, sp.span_id, sp.trace_id, sp.service
        );
    }
}

fn render_cold_start(s: &mut String, c: &ColdStart) {
    let _ = writeln!(
        s,
        "\ncold start, {} ({} runs, read-only layer, PYTHONDONTWRITEBYTECODE=1), wrapper start to handler result: min {} ms, median {} ms; init (to first next): {:?} ms",
        c.runtime,
        c.runs,
        ms(c.min_ms),
        ms(c.median_ms),
        c.init_ms
    );
    for f in &c.failures {
        let _ = writeln!(s, "  cold start failure: {f}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_works_even_when_its_spans_miss_the_freeze() {
        let check = |name: &str, ok| Check::new(name, ok, "");
        let mut run = RunReport {
            completed: true,
            checks: vec![
                check("invoke result", true),
                check("spans before the freeze, invocation 1 (cold, backend at once)", false),
            ],
            ..RunReport::default()
        };
        assert!(run.worked());
        run.checks.push(check("server span", false));
        assert!(!run.worked());
        run.checks.truncate(1);
        run.completed = false;
        assert!(!run.worked(), "a lifecycle that stopped early did not work");
        assert!(!RunReport::default().worked(), "no checks, no proof");
        assert_eq!(median(&[5, 1, 9, 3]), Some(5));
        assert_eq!(median(&[]), None);
    }
}
