//! The checks of a run: the handler's result and its spans, spans delivered before each freeze,
//! the freeze itself, and native code that cannot load (by file name, or by ELF header).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::FUNCTION_NAME;
use super::emulator::{Invocation, Outcome, State};
use super::receiver::{self, Received, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, Span};
use super::report::{BEFORE_FREEZE, Check, InvocationReport, backend};
use super::stage::posted_error_text;
use crate::model::arch::{Arch, elf_machine_name};
use crate::model::runtime::Runtime;

/// The checks of one invocation: the handler's result and the spans that came through.
pub fn evaluate(st: &State, request_id: Option<&str>, target_body: &str, got: &Received) -> Vec<Check> {
    let inv = request_id.and_then(|id| st.invocation(id));
    let server = server_span(got, request_id);
    vec![
        result_check(inv, request_id, target_body),
        server_check(server, got, request_id),
        client_check(server, got, inv),
    ]
}

/// The SERVER span the aws-lambda instrumentation records for the request.
fn server_span<'a>(got: &'a Received, request_id: Option<&str>) -> Option<&'a Span> {
    got.spans.iter().find(|s| {
        s.kind == SPAN_KIND_SERVER
            && s.resource.get("service.name").map(String::as_str) == Some(FUNCTION_NAME)
            && s.attributes.keys().any(|k| k.starts_with("faas."))
            && ["faas.execution", "faas.invocation_id"]
                .iter()
                .filter_map(|k| s.attributes.get(*k))
                .all(|v| Some(v.as_str()) == request_id)
    })
}

fn result_check(inv: Option<&Invocation>, request_id: Option<&str>, target_body: &str) -> Check {
    let body = match inv.and_then(|i| i.outcome.as_ref()) {
        None => return Check::new("invoke result", false, "the runtime did not answer the invocation"),
        Some(Outcome::Error { error_type, body }) => {
            let text = posted_error_text(error_type.as_deref(), &String::from_utf8_lossy(body));
            return Check::new("invoke result", false, format!("the handler failed: {text}"));
        }
        Some(Outcome::Response(body)) => body,
    };
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut wrong = Vec::new();
    if v["smoke"] != "ok" {
        wrong.push("no \"smoke\": \"ok\"".to_string());
    }
    if v["request_id"].as_str() != request_id {
        wrong.push(format!(
            "request_id {} is not {}",
            v["request_id"],
            request_id.unwrap_or("")
        ));
    }
    if v["target_body"].as_str() != Some(target_body) {
        wrong.push(format!(
            "target_body {} is not what the target served",
            v["target_body"]
        ));
    }
    if wrong.is_empty() {
        let via = v["client"].as_str().unwrap_or("?");
        Check::new(
            "invoke result",
            true,
            format!("the handler's result, with the target's answer (via {via})"),
        )
    } else {
        let body = String::from_utf8_lossy(body);
        Check::new(
            "invoke result",
            false,
            format!("unexpected result {body}: {}", wrong.join("; ")),
        )
    }
}

fn server_check(server: Option<&Span>, got: &Received, request_id: Option<&str>) -> Check {
    if let Some(s) = server {
        let faas: Vec<String> = s
            .attributes
            .iter()
            .filter(|(k, _)| k.starts_with("faas.") || k.starts_with("cloud."))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return Check::new(
            "server span",
            true,
            format!("`{}` from service {FUNCTION_NAME}, {}", s.name, faas.join(", ")),
        );
    }
    if got.spans.is_empty() {
        return Check::new(
            "server span",
            false,
            format!(
                "the receiver got no spans ({} posts): nothing came from the SDK through the collector; see the logs",
                got.posts
            ),
        );
    }
    let seen: Vec<String> = got
        .spans
        .iter()
        .map(|s| {
            format!(
                "{} {} (service {}, {} attrs)",
                receiver::kind_name(s.kind),
                s.name,
                s.resource.get("service.name").map(String::as_str).unwrap_or("-"),
                s.attributes.len()
            )
        })
        .collect();
    Check::new(
        "server span",
        false,
        format!(
            "no SERVER span with service.name={FUNCTION_NAME} and faas.* attributes for request {}; got: {}",
            request_id.unwrap_or("?"),
            seen.join("; ")
        ),
    )
}

fn client_check(server: Option<&Span>, got: &Received, inv: Option<&Invocation>) -> Check {
    let Some(s) = server else {
        return Check::new("client span", false, "no SERVER span to be its parent");
    };
    let clients: Vec<&Span> = got.spans.iter().filter(|s| s.kind == SPAN_KIND_CLIENT).collect();
    if let Some(c) = clients
        .iter()
        .find(|c| c.parent_span_id == s.span_id && c.trace_id == s.trace_id)
    {
        return Check::new(
            "client span",
            true,
            format!(
                "`{}` is a child of `{}` (span {}) in trace {}",
                c.name, s.name, s.span_id, s.trace_id
            ),
        );
    }
    if clients.is_empty() {
        let used = inv
            .and_then(|i| match &i.outcome {
                Some(Outcome::Response(b)) => serde_json::from_slice::<Value>(b).ok(),
                _ => None,
            })
            .and_then(|v| v["client"].as_str().map(str::to_string))
            .unwrap_or_else(|| "an unknown client".into());
        return Check::new(
            "client span",
            false,
            format!("no CLIENT span: the handler's HTTP call was not instrumented (it used {used})"),
        );
    }
    let listed: Vec<String> = clients
        .iter()
        .map(|c| format!("`{}` parent {} trace {}", c.name, c.parent_span_id, c.trace_id))
        .collect();
    Check::new(
        "client span",
        false,
        format!(
            "CLIENT spans {} are not children of the SERVER span {} (trace {})",
            listed.join(", "),
            s.span_id,
            s.trace_id
        ),
    )
}

/// The spans of one invocation: its SERVER span (by request id) and everything in its trace.
pub(crate) fn invocation_spans<'a>(got: &'a Received, request_id: &str) -> Vec<&'a Span> {
    let Some(server) = got
        .spans
        .iter()
        .find(|s| s.kind == SPAN_KIND_SERVER && s.request_id() == Some(request_id))
    else {
        return Vec::new();
    };
    got.spans.iter().filter(|s| s.trace_id == server.trace_id).collect()
}

/// The line the sample handler prints (handler.py's `LOG_LINE`).
pub(crate) const HANDLER_LOG_LINE: &str = "layerbuild smoke: the handler ran";

/// Did the sample handler's log line reach the receiver as a log record of its request, through
/// the Telemetry API and the collector's `telemetryapi` receiver, before the freeze?
pub(crate) fn handler_log_check(st: &State, request_id: &str, got: &Received) -> Check {
    const NAME: &str = "handler log record";
    let line = got
        .logs
        .iter()
        .find(|l| l.body.contains(HANDLER_LOG_LINE) && l.request_id.as_deref() == Some(request_id));
    let frozen_us = st.invocation(request_id).and_then(|i| i.done_us);
    match (line, frozen_us) {
        (None, _) => {
            let others = got.logs.iter().filter(|l| l.body.contains(HANDLER_LOG_LINE)).count();
            Check::new(
                NAME,
                false,
                format!(
                    "no log record of request {request_id} with the handler's line `{HANDLER_LOG_LINE}` reached the \
                     receiver ({} log record(s) in all, {others} with the line but another request id): the \
                     collector's telemetryapi receiver or its logs pipeline did not deliver it",
                    got.logs.len()
                ),
            )
        }
        (Some(l), Some(frozen)) if l.received_us > frozen => Check::new(
            NAME,
            false,
            format!(
                "the handler's log line of request {request_id} arrived {} ms after the freeze: it must be \
                 delivered before the extension asks for the next event",
                (l.received_us - frozen) / 1000
            ),
        ),
        (Some(_), _) => Check::new(
            NAME,
            true,
            format!("the handler's line arrived as a log record of request {request_id}, before the freeze"),
        ),
    }
}

/// Did the invocation's spans reach the receiver before Lambda froze the sandbox?
pub(crate) fn before_freeze_check(n: usize, inv: &InvocationReport) -> Check {
    let name = format!(
        "{BEFORE_FREEZE}, invocation {n} ({}, backend {})",
        if inv.cold { "cold" } else { "warm" },
        backend(inv.backend_delay_ms)
    );
    let id = &inv.request_id;
    match (inv.spans_before_freeze, inv.spans_after_freeze) {
        (0, 0) => Check::new(
            &name,
            false,
            format!("no span of request {id} reached the receiver, before the freeze or after the thaw"),
        ),
        (b, 0) => Check::new(
            &name,
            true,
            format!("all {b} spans of request {id} arrived before the freeze"),
        ),
        (b, a) => Check::new(
            &name,
            false,
            format!(
                "{a} of {} spans of request {id} arrived only after the freeze (up to {} ms after it): \
                 the extension let Lambda freeze the sandbox with the export still on its way; it must \
                 deliver (or export synchronously) before calling event/next",
                a + b,
                inv.last_span_after_freeze_ms.unwrap_or(0)
            ),
        ),
    }
}

/// Were all the sandbox's processes stopped at every freeze?
pub(crate) fn freeze_check(invocations: &[InvocationReport]) -> Check {
    let name = "sandbox frozen after each invocation";
    let missed: Vec<String> = invocations
        .iter()
        .enumerate()
        .flat_map(|(n, inv)| {
            inv.freeze
                .groups
                .iter()
                .filter(|g| g.processes == 0 || g.stopped < g.processes)
                .map(move |g| {
                    format!(
                        "invocation {}: {} ({} of {} stopped)",
                        n + 1,
                        g.label,
                        g.stopped,
                        g.processes
                    )
                })
        })
        .collect();
    if !missed.is_empty() {
        return Check::new(
            name,
            false,
            format!("not every process was stopped: {}", missed.join("; ")),
        );
    }
    let held: Vec<String> = invocations.first().map_or(Vec::new(), |inv| {
        inv.freeze
            .groups
            .iter()
            .map(|g| format!("{} ({} processes)", g.label, g.processes))
            .collect()
    });
    Check::new(
        name,
        true,
        format!(
            "{} freezes of {} ms, each with every process stopped: {}",
            invocations.len(),
            invocations.first().map_or(0, |i| i.freeze.held_ms),
            held.join(", ")
        ),
    )
}

/// Extension modules on this runtime's path that it cannot import: tagged for another CPython
/// (`.cpython-39-` under python3.8) with no sibling for this one. Python skips them silently and
/// the package falls back or fails at first use, so a passing invocation does not show it.
/// What OpenTelemetry logs when its set-up went wrong in a way the spans may not show: a second
/// `instrument()` of the same instrumentor (the shim and the auto-instrumentation both wrapping
/// the handler), the auto-instrumentation failing whole, one instrumentor or configurator failing.
const SETUP_WARNINGS: &[&str] = &[
    "attempting to instrument while already instrumented",
    "failed to auto initialize",
    "instrumenting of ",
    "configuration of ",
];
/// How much of the runtime's log is read: far more than a healthy run writes.
const RUNTIME_LOG_CAP: u64 = 8 << 20;

/// The runtime's log holds none of [`SETUP_WARNINGS`].
pub(crate) fn runtime_log_check(log: &Path) -> Check {
    const NAME: &str = "runtime log: no OpenTelemetry set-up warnings";
    let mut text = Vec::new();
    if let Err(e) = std::fs::File::open(log).and_then(|f| f.take(RUNTIME_LOG_CAP).read_to_end(&mut text)) {
        return Check::new(NAME, false, format!("cannot read {}: {e}", log.display()));
    }
    let text = String::from_utf8_lossy(&text);
    let found: Vec<String> = text
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            SETUP_WARNINGS.iter().any(|w| l.contains(w))
        })
        .map(|l| crate::support::text::show(l.trim()).to_string())
        .collect();
    match found.as_slice() {
        [] => Check::new(
            NAME,
            true,
            format!(
                "{} lines, no double instrumentation or failed instrumentor",
                text.lines().count()
            ),
        ),
        [first, rest @ ..] => Check::new(
            NAME,
            false,
            format!(
                "{first}{}",
                if rest.is_empty() {
                    String::new()
                } else {
                    format!(" (and {} more)", rest.len())
                }
            ),
        ),
    }
}

pub(crate) fn native_modules_check(layer: &Path, rt: Runtime) -> Check {
    let py = layer.join("python");
    let own = format!("python{}", rt.dotted());
    let want = format!("{}{}", rt.major, rt.minor);
    let mut total = 0;
    let mut bad = Vec::new();
    let walk = walkdir::WalkDir::new(&py).into_iter().filter_entry(|e| {
        // python/lib/python3.X/ of other runtimes is not on this runtime's path.
        let rel = e.path().strip_prefix(&py).unwrap_or(e.path());
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        !(parts.len() == 2 && parts[0] == "lib" && parts[1].starts_with("python") && parts[1] != own)
    });
    for e in walk.filter_map(|e| e.ok()).filter(|e| e.file_type().is_file()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((module, rest)) = name.split_once(".cpython-") else {
            continue;
        };
        if !name.ends_with(".so") {
            continue;
        }
        total += 1;
        let tag: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if tag == want {
            continue;
        }
        // This runtime's own build, or a stable-ABI or untagged one, which any CPython loads
        // (charset_normalizer ships cp39-only wheels beside a cp37-abi3 one for 3.8).
        let sibling = format!("{module}.cpython-{want}-");
        let portable = [format!("{module}.abi3.so"), format!("{module}.so")];
        let has_sibling = e
            .path()
            .parent()
            .and_then(|d| std::fs::read_dir(d).ok())
            .is_some_and(|rd| {
                rd.filter_map(|x| x.ok()).any(|x| {
                    let n = x.file_name().to_string_lossy().into_owned();
                    n.starts_with(&sibling) || portable.contains(&n)
                })
            });
        if !has_sibling {
            bad.push(e.path().strip_prefix(layer).unwrap_or(e.path()).display().to_string());
        }
    }
    let name = format!("native modules for {own}");
    if bad.is_empty() {
        Check::new(
            &name,
            true,
            format!("{total} extension modules on its path, each loadable by cp{want} (checked by file name)"),
        )
    } else {
        Check::new(
            &name,
            false,
            format!(
                "{} extension modules are built for another CPython and cannot load under {own}: {}; build the layer's packages for {own}",
                bad.len(),
                bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    }
}

/// ELF files checked by reading their headers, for layers whose code cannot run here.
pub(crate) fn static_native_checks(layer: &Path, arch: Arch) -> Vec<Check> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for e in walkdir::WalkDir::new(layer).into_iter().filter_map(|e| e.ok()) {
        if !e.file_type().is_file() {
            continue;
        }
        let mut head = [0u8; 64];
        let Ok(mut f) = std::fs::File::open(e.path()) else {
            continue;
        };
        if f.read_exact(&mut head).is_err() || !crate::check::elf::is_elf(&head) {
            continue;
        }
        let rel = e.path().strip_prefix(layer).unwrap_or(e.path()).display().to_string();
        match crate::check::elf::inspect(&head) {
            Ok(info) => {
                *counts.entry(elf_machine_name(info.machine)).or_default() += 1;
                if info.machine != arch.elf_machine() {
                    wrong.push(format!("{rel} is {}", elf_machine_name(info.machine)));
                }
            }
            Err(why) => {
                *counts.entry("unreadable".into()).or_default() += 1;
                wrong.push(format!("{rel}: {why}"));
            }
        }
    }
    let total: usize = counts.values().sum();
    let summary = counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![Check::new(
        "ELF machine of every file (read statically)",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{total} ELF files, all for {arch}: {summary}")
        } else {
            format!(
                "{} of {total} ELF files are not for {arch}: {}; rebuild them for {}",
                wrong.len(),
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                arch.wheel_machine()
            )
        },
    )]
}

#[cfg(test)]
mod tests;
