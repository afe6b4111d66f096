//! The HTTP routes of the emulated Runtime API (2018-06-01), Extensions API (2020-01-01),
//! Telemetry API (2022-07-01) and Logs API (2020-08-15), each answering as Lambda documents.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::state::{Extension, Outcome, PostedError, State};
use super::{Shared, telemetry};
use crate::smoke::http::{Request, Response};

/// Longest any single long poll may block, so a client left behind never pins a thread for ever.
const LONG_POLL_LIMIT: Duration = Duration::from_secs(900);

fn error_json(status: u16, error_type: &str, message: String) -> Option<Response> {
    Some(Response::json(
        status,
        &json!({"errorMessage": message, "errorType": error_type}),
    ))
}

fn accepted() -> Option<Response> {
    Some(Response::json(202, &json!({"status": "OK"})))
}

pub(super) fn handle(sh: &Arc<Shared>, req: Request) -> Option<Response> {
    let path = req.path.clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["2020-01-01", "extension", "register"]) => register(sh, &req),
        ("GET", ["2020-01-01", "extension", "event", "next"]) => extension_next(sh, &req),
        ("POST", ["2020-01-01", "extension", phase @ ("init" | "exit"), "error"]) => extension_error(sh, &req, phase),
        ("PUT", ["2022-07-01", "telemetry"]) => Some(telemetry::subscribe(sh, &req)),
        ("PUT", ["2020-08-15", "logs"]) => {
            let who = extension_name(sh, &req).unwrap_or_else(|| "unknown".into());
            sh.watch.update(|st| st.logs_subscriptions.push(who));
            Some(Response::new(200, "text/plain", "OK"))
        }
        ("GET", ["2018-06-01", "runtime", "invocation", "next"]) => runtime_next(sh),
        ("POST", ["2018-06-01", "runtime", "invocation", id, kind @ ("response" | "error")]) => {
            let outcome = if *kind == "response" {
                Outcome::Response(req.body.clone())
            } else {
                Outcome::Error {
                    error_type: req.header("Lambda-Runtime-Function-Error-Type").map(str::to_string),
                    body: req.body.clone(),
                }
            };
            match answer(sh, id, outcome) {
                Ok(()) => accepted(),
                Err((error_type, message)) => {
                    sh.watch
                        .update(|st| st.refused.push(format!("{} {path}: {message}", req.method)));
                    error_json(400, error_type, message)
                }
            }
        }
        ("POST", ["2018-06-01", "runtime", "init", "error"]) => {
            let err = posted_error("runtime".into(), &req, "Lambda-Runtime-Function-Error-Type");
            sh.watch.update(|st| {
                st.init_error = Some(err);
                st.changes += 1;
            });
            accepted()
        }
        _ => {
            sh.watch
                .update(|st| st.refused.push(format!("{} {path}: not part of the API", req.method)));
            error_json(
                404,
                "NotFound",
                format!("{} {path} is not part of the Lambda APIs", req.method),
            )
        }
    }
}

fn posted_error(who: String, req: &Request, type_header: &str) -> PostedError {
    PostedError {
        who,
        error_type: req.header(type_header).map(str::to_string),
        body: String::from_utf8_lossy(&req.body).into_owned(),
    }
}

fn extension_error(sh: &Shared, req: &Request, phase: &str) -> Option<Response> {
    let who = extension_name(sh, req).unwrap_or_else(|| "an unknown extension".into());
    let err = posted_error(
        format!("extension {who} ({phase})"),
        req,
        "Lambda-Extension-Function-Error-Type",
    );
    sh.watch.update(|st| {
        st.extension_errors.push(err);
        st.changes += 1;
    });
    accepted()
}

/// Records the runtime's answer to invocation `id` (or smoke's, when it plays the runtime), and
/// emits `platform.runtimeDone`.
pub(super) fn answer(sh: &Shared, id: &str, outcome: Outcome) -> Result<(), (&'static str, String)> {
    let mut st = sh.watch.lock();
    let now = sh.clock.us();
    let Some(inv) = st.invocations.iter_mut().find(|i| i.id == id) else {
        return Err(("InvalidRequestID", format!("no invocation {id}")));
    };
    if inv.outcome.is_some() {
        return Err(("InvalidStateTransition", format!("invocation {id} already answered")));
    }
    inv.outcome = Some(outcome);
    inv.outcome_us = Some(now);
    let done = telemetry::runtime_done_event(inv);
    st.emit("platform", done, now);
    settle(sh, &mut st);
    sh.changed(&mut st);
    Ok(())
}

/// Marks the invocation over when everyone waits in next, and queues its `platform.report`.
pub(super) fn settle(sh: &Shared, st: &mut State) {
    let now = sh.clock.us();
    if let Some(i) = st.settle(now) {
        // The first invocation's report carries the init duration, as a cold start's REPORT does.
        let init_ms = (i == 0)
            .then_some(st.runtime_first_next_us)
            .flatten()
            .map(|us| us as f64 / 1000.0);
        let report = telemetry::report_event(&st.invocations[i], sh.function.memory_mb, init_ms);
        st.emit("platform", report, now);
    }
}

pub(super) fn extension_name(sh: &Shared, req: &Request) -> Option<String> {
    let id = req.header("Lambda-Extension-Identifier")?;
    sh.watch
        .lock()
        .extensions
        .iter()
        .find(|e| e.id == id)
        .map(|e| e.name.clone())
}

fn register(sh: &Shared, req: &Request) -> Option<Response> {
    let Some(name) = req.header("Lambda-Extension-Name").filter(|n| !n.is_empty()) else {
        sh.watch
            .update(|st| st.refused.push("register without Lambda-Extension-Name".into()));
        return error_json(400, "InvalidRequest", "missing header Lambda-Extension-Name".into());
    };
    let events: Vec<String> = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.get("events").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let id = sh.new_id();
    let mut st = sh.watch.lock();
    if st.extensions.iter().any(|e| e.name == name) {
        st.refused.push(format!("extension {name} registered twice"));
        return error_json(
            409,
            "Extension.AlreadyRegistered",
            format!("extension {name} is already registered"),
        );
    }
    if st.runtime_next_calls > 0 {
        st.refused.push(format!("extension {name} registered after init"));
        return error_json(
            403,
            "Extension.InvalidState",
            "registration is only allowed during init".into(),
        );
    }
    st.extensions.push(Extension {
        name: name.to_string(),
        id: id.clone(),
        events,
        registered_ms: sh.clock.ms(),
        next_calls: 0,
        waiting: false,
        delivered: Vec::new(),
        queue: VecDeque::new(),
    });
    sh.changed(&mut st);
    drop(st);
    let f = &sh.function;
    Some(
        Response::json(
            200,
            &json!({"functionName": f.name, "functionVersion": f.version, "handler": f.handler}),
        )
        .with_header("Lambda-Extension-Identifier", id),
    )
}

fn extension_next(sh: &Shared, req: &Request) -> Option<Response> {
    let id = req.header("Lambda-Extension-Identifier").unwrap_or("").to_string();
    let mut st = sh.watch.lock();
    let Some(ext) = st.extensions.iter_mut().find(|e| e.id == id) else {
        st.refused.push(format!("event/next with unknown extension id `{id}`"));
        return error_json(
            403,
            "Extension.InvalidExtensionIdentifier",
            "unknown Lambda-Extension-Identifier".into(),
        );
    };
    ext.next_calls += 1;
    ext.waiting = true;
    settle(sh, &mut st);
    sh.changed(&mut st);
    long_poll(sh, st, |st| {
        let ext = st.extensions.iter_mut().find(|e| e.id == id)?;
        let ev = ext.queue.pop_front()?;
        ext.waiting = false;
        ext.delivered.push(ev["eventType"].as_str().unwrap_or("").to_string());
        Some(Response::json(200, &ev).with_header("Lambda-Extension-Event-Identifier", sh.new_id()))
    })
}

fn runtime_next(sh: &Shared) -> Option<Response> {
    let mut st = sh.watch.lock();
    st.runtime_next_calls += 1;
    st.runtime_waiting = true;
    if st.runtime_first_next_us.is_none() {
        st.runtime_first_next_us = Some(sh.clock.us());
    }
    settle(sh, &mut st);
    sh.changed(&mut st);
    long_poll(sh, st, |st| {
        let inv = st
            .invocations
            .iter_mut()
            .find(|i| i.to_runtime && i.delivered_us.is_none())?;
        inv.delivered_us = Some(sh.clock.us());
        let resp = Response::new(200, "application/json", inv.event.clone())
            .with_header("Lambda-Runtime-Aws-Request-Id", inv.id.clone())
            .with_header("Lambda-Runtime-Deadline-Ms", inv.deadline_ms.to_string())
            .with_header("Lambda-Runtime-Invoked-Function-Arn", sh.function.arn.clone())
            .with_header("Lambda-Runtime-Trace-Id", inv.trace_id.clone());
        st.runtime_waiting = false;
        Some(resp)
    })
}

/// Holds a `next` call open until `take` has something to hand out (waking the other waiters,
/// who may be waiting for this delivery), the emulator closes, or the long-poll bound passes.
fn long_poll<'a>(
    sh: &'a Shared,
    mut st: MutexGuard<'a, State>,
    mut take: impl FnMut(&mut State) -> Option<Response>,
) -> Option<Response> {
    let deadline = Instant::now() + LONG_POLL_LIMIT;
    while Instant::now() < deadline {
        if st.closing {
            return None;
        }
        if let Some(resp) = take(&mut st) {
            sh.changed(&mut st);
            return Some(resp);
        }
        st = sh.watch.wait(st, deadline);
    }
    None
}
