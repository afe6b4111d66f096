//! A local stand-in for Lambda's Runtime API and Extensions API, on 127.0.0.1, for `smoke`.
//!
//! It serves the published contract (runtime 2018-06-01, extensions 2020-01-01, telemetry
//! subscribe) and records what each client did; the order of the lifecycle (who may go on when)
//! is driven by `smoke`, which waits on the recorded state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{Value, json};

use crate::smoke::http::{Request, Response, Server};

/// Longest any single long poll may block, so a client left behind never pins a thread for ever.
const LONG_POLL_LIMIT: Duration = Duration::from_secs(900);
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// What the function looks like to the APIs.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub version: String,
    pub handler: String,
    pub arn: String,
}

#[derive(Debug, Clone)]
pub struct Extension {
    pub name: String,
    pub id: String,
    /// Event types it registered for (INVOKE, SHUTDOWN).
    pub events: Vec<String>,
    pub registered_ms: u64,
    /// How many times it called event/next.
    pub next_calls: u32,
    /// Event types delivered to it, in order.
    pub delivered: Vec<String>,
    queue: VecDeque<Value>,
}

/// How the runtime answered one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Vec<u8>),
    Error { error_type: Option<String>, body: Vec<u8> },
}

#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: String,
    pub event: Vec<u8>,
    pub deadline_ms: u64,
    pub trace_id: String,
    pub delivered_ms: Option<u64>,
    pub outcome: Option<Outcome>,
    pub outcome_ms: Option<u64>,
}

/// An error posted by the runtime's init or by an extension's init/exit.
#[derive(Debug, Clone)]
pub struct PostedError {
    pub who: String,
    pub error_type: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    pub extensions: Vec<Extension>,
    /// Calls of runtime/invocation/next, and when the first came (the end of the runtime's init).
    pub runtime_next_calls: u32,
    pub runtime_first_next_ms: Option<u64>,
    pub invocations: Vec<Invocation>,
    pub init_error: Option<PostedError>,
    pub extension_errors: Vec<PostedError>,
    pub telemetry_subscriptions: Vec<String>,
    /// Requests refused (unknown path, unknown extension id...), for the failure report.
    pub refused: Vec<String>,
    pub closing: bool,
    /// Bumped on every change the smoke run waits on, so a waiter wakes as soon as it happens.
    pub changes: u64,
}

impl State {
    pub fn invocation(&self, id: &str) -> Option<&Invocation> {
        self.invocations.iter().find(|i| i.id == id)
    }
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    started: Instant,
    function: FunctionInfo,
    ids: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a change and wakes every waiter. Called with the lock held, so no waiter can
    /// check its condition between the change and the wake-up and then sleep through it.
    fn changed(&self, st: &mut State) {
        st.changes += 1;
        self.cond.notify_all();
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A UUID-shaped identifier, unique in this process.
    fn new_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::SeqCst);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 16) as u32,
            (t & 0xffff) as u16,
            (n >> 12) & 0xfff,
            n & 0xfff,
            (t.rotate_left(17) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) & 0xffff_ffff_ffff
        )
    }
}

pub struct Emulator {
    shared: Arc<Shared>,
    server: Option<Server>,
}

impl Emulator {
    pub fn start(function: FunctionInfo) -> Result<Emulator> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            started: Instant::now(),
            function,
            ids: AtomicU64::new(1),
        });
        let s2 = shared.clone();
        let server = Server::start("lambda-api", 0, Arc::new(move |req| handle(&s2, req)))?;
        Ok(Emulator {
            shared,
            server: Some(server),
        })
    }

    /// `127.0.0.1:PORT` for `AWS_LAMBDA_RUNTIME_API`.
    pub fn api(&self) -> String {
        self.server.as_ref().map(Server::host_port).unwrap_or_default()
    }

    /// Milliseconds since the emulator started: the time base of everything recorded.
    pub fn now_ms(&self) -> u64 {
        self.shared.ms()
    }

    pub fn snapshot(&self) -> State {
        self.shared.lock().clone()
    }

    /// Waits at most `max` for `f` to give an answer; callers loop with their own deadline so
    /// they can watch their child processes between slices.
    pub fn wait_for<T>(&self, max: Duration, mut f: impl FnMut(&State) -> Option<T>) -> Option<T> {
        let end = Instant::now() + max;
        let mut st = self.shared.lock();
        loop {
            if let Some(v) = f(&st) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            st = self
                .shared
                .cond
                .wait_timeout(st, (end - now).min(WAIT_SLICE))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits at most `max` for the state to move on from `seen` (a snapshot): loops that check
    /// the state and their child processes in turn wake on a change, not at the end of a slice.
    pub fn wait_change(&self, seen: &State, max: Duration) {
        self.wait_for(max, |st| (st.changes != seen.changes).then_some(()));
    }

    /// Queues one invocation: INVOKE to every extension that asked for it, the event to the runtime
    /// when `to_runtime`. Returns the request id.
    pub fn invoke(&self, event: &Value, timeout: Duration, to_runtime: bool) -> String {
        let id = self.shared.new_id();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let deadline_ms = (now + timeout).as_millis() as u64;
        let trace_id = xray_header(now.as_secs(), &self.shared.new_id());
        let mut st = self.shared.lock();
        let ev = json!({
            "eventType": "INVOKE",
            "deadlineMs": deadline_ms,
            "requestId": id,
            "invokedFunctionArn": self.shared.function.arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
        });
        for ext in st
            .extensions
            .iter_mut()
            .filter(|e| e.events.iter().any(|t| t == "INVOKE"))
        {
            ext.queue.push_back(ev.clone());
        }
        if to_runtime {
            st.invocations.push(Invocation {
                id: id.clone(),
                event: event.to_string().into_bytes(),
                deadline_ms,
                trace_id,
                delivered_ms: None,
                outcome: None,
                outcome_ms: None,
            });
        }
        self.shared.changed(&mut st);
        id
    }

    /// Queues SHUTDOWN for every extension that asked for it.
    pub fn shutdown(&self, reason: &str, within: Duration) {
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + within;
        let ev = json!({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline.as_millis() as u64});
        let mut st = self.shared.lock();
        for ext in st
            .extensions
            .iter_mut()
            .filter(|e| e.events.iter().any(|t| t == "SHUTDOWN"))
        {
            ext.queue.push_back(ev.clone());
        }
        self.shared.changed(&mut st);
    }

    /// Ends every long poll still waiting and stops serving.
    pub fn close(&mut self) {
        let mut st = self.shared.lock();
        st.closing = true;
        self.shared.changed(&mut st);
        drop(st);
        self.server.take();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.close();
    }
}

/// An X-Ray trace header as Lambda passes it, sampled so the SDK records the invocation.
fn xray_header(epoch_secs: u64, seed: &str) -> String {
    let hex: String = seed.chars().filter(char::is_ascii_hexdigit).collect();
    let root = format!("{:0>24}", &hex[hex.len().saturating_sub(24)..]);
    let parent = format!("{:0>16}", &hex[..16.min(hex.len())]);
    format!("Root=1-{:08x}-{root};Parent={parent};Sampled=1", epoch_secs as u32)
}

fn error_json(status: u16, error_type: &str, message: String) -> Option<Response> {
    Some(Response::json(
        status,
        &json!({"errorMessage": message, "errorType": error_type}),
    ))
}

fn handle(sh: &Shared, req: Request) -> Option<Response> {
    let path = req.path.clone();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["2020-01-01", "extension", "register"]) => register(sh, &req),
        ("GET", ["2020-01-01", "extension", "event", "next"]) => extension_next(sh, &req),
        ("POST", ["2020-01-01", "extension", phase @ ("init" | "exit"), "error"]) => {
            let who = extension_name(sh, &req).unwrap_or_else(|| "an unknown extension".into());
            let err = PostedError {
                who: format!("extension {who} ({phase})"),
                error_type: req.header("Lambda-Extension-Function-Error-Type").map(str::to_string),
                body: String::from_utf8_lossy(&req.body).into_owned(),
            };
            let mut st = sh.lock();
            st.extension_errors.push(err);
            sh.changed(&mut st);
            Some(Response::json(202, &json!({"status": "OK"})))
        }
        ("PUT", ["2022-07-01", "telemetry"]) | ("PUT", ["2020-08-15", "logs"]) => {
            let who = extension_name(sh, &req).unwrap_or_else(|| "unknown".into());
            sh.lock().telemetry_subscriptions.push(who);
            Some(Response::new(200, "text/plain", "OK"))
        }
        ("GET", ["2018-06-01", "runtime", "invocation", "next"]) => runtime_next(sh),
        ("POST", ["2018-06-01", "runtime", "invocation", id, kind @ ("response" | "error")]) => {
            let mut st = sh.lock();
            let now = sh.ms();
            let Some(inv) = st.invocations.iter_mut().find(|i| i.id == *id) else {
                st.refused.push(format!("{} {path}: unknown request id", req.method));
                return error_json(400, "InvalidRequestID", format!("no invocation {id}"));
            };
            if inv.outcome.is_some() {
                st.refused
                    .push(format!("{} {path}: invocation already answered", req.method));
                return error_json(
                    400,
                    "InvalidStateTransition",
                    format!("invocation {id} already answered"),
                );
            }
            inv.outcome = Some(if *kind == "response" {
                Outcome::Response(req.body.clone())
            } else {
                Outcome::Error {
                    error_type: req.header("Lambda-Runtime-Function-Error-Type").map(str::to_string),
                    body: req.body.clone(),
                }
            });
            inv.outcome_ms = Some(now);
            sh.changed(&mut st);
            Some(Response::json(202, &json!({"status": "OK"})))
        }
        ("POST", ["2018-06-01", "runtime", "init", "error"]) => {
            let mut st = sh.lock();
            st.init_error = Some(PostedError {
                who: "runtime".into(),
                error_type: req.header("Lambda-Runtime-Function-Error-Type").map(str::to_string),
                body: String::from_utf8_lossy(&req.body).into_owned(),
            });
            sh.changed(&mut st);
            Some(Response::json(202, &json!({"status": "OK"})))
        }
        _ => {
            sh.lock()
                .refused
                .push(format!("{} {path}: not part of the API", req.method));
            error_json(
                404,
                "NotFound",
                format!("{} {path} is not part of the Lambda APIs", req.method),
            )
        }
    }
}

fn extension_name(sh: &Shared, req: &Request) -> Option<String> {
    let id = req.header("Lambda-Extension-Identifier")?;
    sh.lock().extensions.iter().find(|e| e.id == id).map(|e| e.name.clone())
}

fn register(sh: &Shared, req: &Request) -> Option<Response> {
    let Some(name) = req.header("Lambda-Extension-Name").filter(|n| !n.is_empty()) else {
        sh.lock().refused.push("register without Lambda-Extension-Name".into());
        return error_json(400, "InvalidRequest", "missing header Lambda-Extension-Name".into());
    };
    let events: Vec<String> = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.get("events").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let id = sh.new_id();
    let mut st = sh.lock();
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
        registered_ms: sh.ms(),
        next_calls: 0,
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
    let mut st = sh.lock();
    let Some(ext) = st.extensions.iter_mut().find(|e| e.id == id) else {
        st.refused.push(format!("event/next with unknown extension id `{id}`"));
        return error_json(
            403,
            "Extension.InvalidExtensionIdentifier",
            "unknown Lambda-Extension-Identifier".into(),
        );
    };
    ext.next_calls += 1;
    sh.changed(&mut st);
    long_poll(sh, st, |st| {
        let ext = st.extensions.iter_mut().find(|e| e.id == id)?;
        let ev = ext.queue.pop_front()?;
        ext.delivered.push(ev["eventType"].as_str().unwrap_or("").to_string());
        Some(Response::json(200, &ev).with_header("Lambda-Extension-Event-Identifier", sh.new_id()))
    })
}

fn runtime_next(sh: &Shared) -> Option<Response> {
    let mut st = sh.lock();
    st.runtime_next_calls += 1;
    if st.runtime_first_next_ms.is_none() {
        st.runtime_first_next_ms = Some(sh.ms());
    }
    sh.changed(&mut st);
    long_poll(sh, st, |st| {
        let inv = st.invocations.iter_mut().find(|i| i.delivered_ms.is_none())?;
        inv.delivered_ms = Some(sh.ms());
        Some(
            Response::new(200, "application/json", inv.event.clone())
                .with_header("Lambda-Runtime-Aws-Request-Id", inv.id.clone())
                .with_header("Lambda-Runtime-Deadline-Ms", inv.deadline_ms.to_string())
                .with_header("Lambda-Runtime-Invoked-Function-Arn", sh.function.arn.clone())
                .with_header("Lambda-Runtime-Trace-Id", inv.trace_id.clone()),
        )
    })
}

/// Holds a `next` call open until `take` has something to hand out (waking the other waiters,
/// who may be waiting for this delivery), the emulator closes, or the long-poll bound passes.
fn long_poll<'a>(
    sh: &'a Shared,
    mut st: MutexGuard<'a, State>,
    mut take: impl FnMut(&mut State) -> Option<Response>,
) -> Option<Response> {
    let started = Instant::now();
    while started.elapsed() < LONG_POLL_LIMIT {
        if st.closing {
            return None;
        }
        if let Some(resp) = take(&mut st) {
            sh.changed(&mut st);
            return Some(resp);
        }
        st = sh
            .cond
            .wait_timeout(st, WAIT_SLICE)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;

    fn function() -> FunctionInfo {
        FunctionInfo {
            name: "fn".into(),
            version: "$LATEST".into(),
            handler: "h.handler".into(),
            arn: "arn:aws:lambda:us-east-1:000000000000:function:fn".into(),
        }
    }

    /// One request on its own connection; returns status, headers, body.
    fn call(
        api: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        let mut s = TcpStream::connect(api).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut hs = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            hs.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut b = String::new();
        r.read_to_string(&mut b).unwrap();
        (status, hs, b)
    }

    fn header<'a>(hs: &'a [(String, String)], name: &str) -> &'a str {
        hs.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn extension_and_runtime_lifecycle() {
        let emu = Emulator::start(function()).unwrap();
        let api = emu.api();
        let (st, hs, body) = call(
            &api,
            "POST",
            "/2020-01-01/extension/register",
            &[("Lambda-Extension-Name", "ext")],
            r#"{"events":["INVOKE","SHUTDOWN"]}"#,
        );
        assert_eq!(st, 200);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["functionName"], "fn");
        let ext_id = header(&hs, "Lambda-Extension-Identifier").to_string();

        // The extension's long poll and the runtime's next both block until the invoke.
        let (api2, id2) = (api.clone(), ext_id.clone());
        let ext_poll = std::thread::spawn(move || {
            call(
                &api2,
                "GET",
                "/2020-01-01/extension/event/next",
                &[("Lambda-Extension-Identifier", &id2)],
                "",
            )
        });
        let api3 = api.clone();
        let rt_poll = std::thread::spawn(move || call(&api3, "GET", "/2018-06-01/runtime/invocation/next", &[], ""));
        let ready = emu.wait_for(Duration::from_secs(5), |s| {
            (s.runtime_next_calls == 1 && s.extensions[0].next_calls == 1).then_some(())
        });
        assert!(ready.is_some(), "both clients should be waiting");

        let id = emu.invoke(&json!({"k": 1}), Duration::from_secs(30), true);
        let (st, _, body) = ext_poll.join().unwrap();
        assert_eq!(st, 200);
        let ev: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ev["eventType"], "INVOKE");
        assert_eq!(ev["requestId"], id.as_str());
        let (st, hs, body) = rt_poll.join().unwrap();
        assert_eq!(st, 200);
        assert_eq!(body, r#"{"k":1}"#);
        assert_eq!(header(&hs, "Lambda-Runtime-Aws-Request-Id"), id);
        assert!(header(&hs, "Lambda-Runtime-Trace-Id").ends_with(";Sampled=1"));
        assert_eq!(header(&hs, "Lambda-Runtime-Invoked-Function-Arn"), function().arn);

        let (st, _, _) = call(
            &api,
            "POST",
            &format!("/2018-06-01/runtime/invocation/{id}/response"),
            &[],
            "\"done\"",
        );
        assert_eq!(st, 202);
        let (st, _, _) = call(
            &api,
            "POST",
            &format!("/2018-06-01/runtime/invocation/{id}/response"),
            &[],
            "\"again\"",
        );
        assert_eq!(st, 400, "a second answer is refused");
        let snap = emu.snapshot();
        assert_eq!(
            snap.invocation(&id).unwrap().outcome,
            Some(Outcome::Response(b"\"done\"".to_vec()))
        );

        emu.shutdown("spindown", Duration::from_secs(2));
        let (st, _, body) = call(
            &api,
            "GET",
            "/2020-01-01/extension/event/next",
            &[("Lambda-Extension-Identifier", &ext_id)],
            "",
        );
        assert_eq!(st, 200);
        let ev: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ev["eventType"], "SHUTDOWN");
        assert_eq!(ev["shutdownReason"], "spindown");
        assert_eq!(emu.snapshot().extensions[0].delivered, vec!["INVOKE", "SHUTDOWN"]);
    }

    #[test]
    fn a_waiter_wakes_on_the_change_it_has_not_seen() {
        let emu = Emulator::start(function()).unwrap();
        let api = emu.api();
        let seen = emu.snapshot();
        let rt_poll = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            call(&api, "GET", "/2018-06-01/runtime/invocation/next", &[], "")
        });
        // The runtime's next comes in while the wait is on; the wait ends with it, long
        // before its bound.
        let started = Instant::now();
        emu.wait_change(&seen, Duration::from_secs(60));
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "woke at the bound, not on the change"
        );
        let now = emu.snapshot();
        assert_eq!(now.runtime_next_calls, 1);
        assert!(now.changes > seen.changes);

        // With nothing new, the wait ends at its bound.
        let started = Instant::now();
        emu.wait_change(&now, Duration::from_millis(120));
        assert!(started.elapsed() >= Duration::from_millis(120));
        assert_eq!(emu.snapshot().changes, now.changes);
        emu.invoke(&json!({}), Duration::from_secs(1), true);
        assert_eq!(rt_poll.join().unwrap().0, 200);
    }

    #[test]
    fn refusals_and_errors_are_recorded() {
        let mut emu = Emulator::start(function()).unwrap();
        let api = emu.api();
        let (st, _, _) = call(
            &api,
            "GET",
            "/2020-01-01/extension/event/next",
            &[("Lambda-Extension-Identifier", "nope")],
            "",
        );
        assert_eq!(st, 403);
        let (st, _, _) = call(&api, "POST", "/2020-01-01/extension/register", &[], "{}");
        assert_eq!(st, 400);
        let (st, _, _) = call(&api, "PUT", "/2022-07-01/telemetry", &[], "{}");
        assert_eq!(st, 200);
        let (st, _, _) = call(
            &api,
            "POST",
            "/2018-06-01/runtime/init/error",
            &[("Lambda-Runtime-Function-Error-Type", "Runtime.ImportModuleError")],
            r#"{"errorMessage":"no module","errorType":"Runtime.ImportModuleError"}"#,
        );
        assert_eq!(st, 202);
        let snap = emu.snapshot();
        assert_eq!(snap.refused.len(), 2, "{:?}", snap.refused);
        assert_eq!(
            snap.init_error.unwrap().error_type.as_deref(),
            Some("Runtime.ImportModuleError")
        );

        // A long poll in progress ends (connection closed) when the emulator closes.
        let (_, hs, _) = call(
            &api,
            "POST",
            "/2020-01-01/extension/register",
            &[("Lambda-Extension-Name", "e")],
            r#"{"events":["SHUTDOWN"]}"#,
        );
        let id = header(&hs, "Lambda-Extension-Identifier").to_string();
        let api2 = api.clone();
        let poll = std::thread::spawn(move || {
            let mut s = TcpStream::connect(&api2).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            write!(
                s,
                "GET /2020-01-01/extension/event/next HTTP/1.1\r\nLambda-Extension-Identifier: {id}\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        });
        emu.wait_for(Duration::from_secs(5), |s| {
            (s.extensions[0].next_calls == 1).then_some(())
        })
        .unwrap();
        // INVOKE is not delivered to an extension that registered for SHUTDOWN only.
        emu.invoke(&json!({}), Duration::from_secs(1), false);
        std::thread::sleep(Duration::from_millis(200));
        emu.close();
        assert_eq!(poll.join().unwrap(), "");
    }
}
