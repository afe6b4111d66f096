//! Unit tests of `emulator`.

use super::*;
use crate::smoke::http::{Request, Response};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

fn emulator(mode: TelemetryMode) -> Emulator {
    Emulator::start(function(), mode, Clock::start()).unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn function() -> FunctionInfo {
    FunctionInfo {
        name: "fn".into(),
        version: "$LATEST".into(),
        handler: "h.handler".into(),
        arn: "arn:aws:lambda:us-east-1:000000000000:function:fn".into(),
        memory_mb: 128,
    }
}

/// Status, headers, body.
type Answer = (u16, Vec<(String, String)>, String);

/// One request on its own connection.
fn call(api: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
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
    // A poll the emulator ends by closing the connection has no status line: status 0.
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
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

fn register(api: &str, name: &str, events: &str) -> String {
    let (st, hs, _) = call(
        api,
        "POST",
        "/2020-01-01/extension/register",
        &[("Lambda-Extension-Name", name)],
        events,
    );
    assert_eq!(st, 200);
    header(&hs, "Lambda-Extension-Identifier").to_string()
}

/// A `next` call on its own thread, as a client blocked in the long poll.
fn next_in_background(api: &str, ext_id: Option<&str>) -> std::thread::JoinHandle<Answer> {
    let (api, id) = (api.to_string(), ext_id.map(str::to_string));
    std::thread::spawn(move || match id {
        Some(id) => call(
            &api,
            "GET",
            "/2020-01-01/extension/event/next",
            &[("Lambda-Extension-Identifier", &id)],
            "",
        ),
        None => call(&api, "GET", "/2018-06-01/runtime/invocation/next", &[], ""),
    })
}

#[test]
fn extension_and_runtime_lifecycle() {
    let emu = emulator(TelemetryMode::Lambda);
    let api = emu.api();
    let ext_id = register(&api, "ext", r#"{"events":["INVOKE","SHUTDOWN"]}"#);

    // The extension's long poll and the runtime's next both block until the invoke.
    let ext_poll = next_in_background(&api, Some(&ext_id));
    let rt_poll = next_in_background(&api, None);
    let ready = emu.wait_until(soon(), |s| (s.runtime_waiting && s.extensions[0].waiting).then_some(()));
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

    let respond = format!("/2018-06-01/runtime/invocation/{id}/response");
    assert_eq!(call(&api, "POST", &respond, &[], "\"done\"").0, 202);
    assert_eq!(
        call(&api, "POST", &respond, &[], "\"again\"").0,
        400,
        "a second answer is refused"
    );
    let snap = emu.snapshot();
    let inv = snap.invocation(&id).unwrap();
    assert_eq!(inv.outcome, Some(Outcome::Response(b"\"done\"".to_vec())));
    assert_eq!(inv.done_us, None, "not over while the runtime and extension are busy");

    // Over (and frozen) only once both wait in next again.
    let rt_poll = next_in_background(&api, None);
    emu.wait_until(soon(), |s| s.runtime_waiting.then_some(())).unwrap();
    assert_eq!(emu.snapshot().invocation(&id).unwrap().done_us, None);
    let ext_poll = next_in_background(&api, Some(&ext_id));
    let done = emu.wait_until(soon(), |s| s.invocation(&id).unwrap().done_us).unwrap();
    let snap = emu.snapshot();
    assert!(snap.frozen && done >= snap.invocation(&id).unwrap().outcome_us.unwrap());

    emu.shutdown("spindown", Duration::from_secs(2));
    let ev: Value = serde_json::from_str(&ext_poll.join().unwrap().2).unwrap();
    assert_eq!(ev["eventType"], "SHUTDOWN");
    assert_eq!(ev["shutdownReason"], "spindown");
    assert_eq!(emu.snapshot().extensions[0].delivered, vec!["INVOKE", "SHUTDOWN"]);
    drop(emu);
    assert_eq!(
        rt_poll.join().unwrap().0,
        0,
        "the runtime's poll ends when the emulator closes"
    );
}

#[test]
fn a_waiter_wakes_on_the_change_it_has_not_seen() {
    let emu = emulator(TelemetryMode::Lambda);
    let api = emu.api();
    let seen = emu.snapshot();
    let rt_poll = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        call(&api, "GET", "/2018-06-01/runtime/invocation/next", &[], "")
    });
    // The runtime's next comes in while the wait is on: the wait must end with it, not at its
    // 20 s bound (waits never wake on their own in slices, so only the change's wake-up can
    // end it this early).
    let started = Instant::now();
    emu.wait_change(seen.changes, started + Duration::from_secs(20));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woke after {:?}: at the bound, not on the change",
        started.elapsed()
    );
    let now = emu.snapshot();
    assert_eq!(now.runtime_next_calls, 1);

    // With nothing new, the wait ends at its bound.
    let started = Instant::now();
    emu.wait_change(now.changes, started + Duration::from_millis(120));
    assert!(started.elapsed() >= Duration::from_millis(120));
    assert_eq!(emu.snapshot().changes, now.changes);

    // A waker (a child's exit) counts as a change too.
    let waker = emu.waker();
    let poke = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        waker();
    });
    let started = Instant::now();
    emu.wait_change(now.changes, started + Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    poke.join().unwrap();
    emu.invoke(&json!({}), Duration::from_secs(1), true);
    assert_eq!(rt_poll.join().unwrap().0, 200);
}

#[test]
fn refusals_and_errors_are_recorded() {
    let mut emu = emulator(TelemetryMode::Lambda);
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
    assert_eq!(st, 403, "a subscription needs a registered extension");
    let (st, _, _) = call(
        &api,
        "POST",
        "/2018-06-01/runtime/init/error",
        &[("Lambda-Runtime-Function-Error-Type", "Runtime.ImportModuleError")],
        r#"{"errorMessage":"no module","errorType":"Runtime.ImportModuleError"}"#,
    );
    assert_eq!(st, 202);
    let snap = emu.snapshot();
    assert_eq!(snap.refused.len(), 3, "{:?}", snap.refused);
    assert_eq!(
        snap.init_error.unwrap().error_type.as_deref(),
        Some("Runtime.ImportModuleError")
    );

    // A long poll in progress ends (connection closed) when the emulator closes.
    let id = register(&api, "e", r#"{"events":["SHUTDOWN"]}"#);
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
    emu.wait_until(soon(), |s| s.extensions[0].waiting.then_some(()))
        .unwrap();
    // INVOKE is not delivered to an extension that registered for SHUTDOWN only.
    emu.invoke(&json!({}), Duration::from_secs(1), false);
    std::thread::sleep(Duration::from_millis(200));
    emu.close();
    assert_eq!(poll.join().unwrap(), "");
}

/// A telemetry listener: every POST body (a JSON array) is kept, in order.
fn listener() -> (Server, Arc<Watch<Vec<Value>>>) {
    let got = Arc::new(Watch::new(Vec::new()));
    let g2 = got.clone();
    let server = Server::start(
        "listener",
        0,
        Arc::new(move |req: Request| {
            let batch: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            g2.update(|v| v.push(batch));
            Some(Response::new(200, "text/plain", ""))
        }),
    )
    .unwrap();
    (server, got)
}

fn subscribe(api: &str, ext_id: &str, uri: &str) -> (u16, String) {
    let body = json!({"schemaVersion": "2022-12-13", "types": ["platform", "function"],
        "buffering": {"timeoutMs": 25}, "destination": {"protocol": "HTTP", "URI": uri}});
    let (st, _, text) = call(
        api,
        "PUT",
        "/2022-07-01/telemetry",
        &[("Lambda-Extension-Identifier", ext_id)],
        &body.to_string(),
    );
    (st, text)
}

/// Event types delivered so far, flattened across batches.
fn types(got: &[Value]) -> Vec<String> {
    got.iter()
        .flat_map(|b| b.as_array().cloned().unwrap_or_default())
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn platform_events_reach_the_listener_and_wait_for_the_thaw() {
    let emu = emulator(TelemetryMode::Lambda);
    let api = emu.api();
    let ext_id = register(&api, "collector", r#"{"events":["INVOKE","SHUTDOWN"]}"#);
    let (server, got) = listener();
    let uri = format!("http://localhost:{}/telemetry", server.port());
    assert_eq!(subscribe(&api, &ext_id, &uri), (200, "\"OK\"".to_string()));
    let far = format!("http://192.0.2.1:{}/", server.port());
    assert_eq!(
        subscribe(&api, &ext_id, &far).0,
        400,
        "a listener outside the sandbox is refused"
    );

    let rt_poll = next_in_background(&api, None);
    let ext_poll = next_in_background(&api, Some(&ext_id));
    emu.wait_until(soon(), |s| (s.runtime_waiting && s.extensions[0].waiting).then_some(()))
        .unwrap();
    let id = emu.invoke(&json!({}), Duration::from_secs(30), true);
    ext_poll.join().unwrap();
    rt_poll.join().unwrap();
    let start = got.wait_until(soon(), |g| g.first().cloned()).unwrap();
    assert_eq!(start[0]["type"], "platform.start");
    assert_eq!(start[0]["record"]["requestId"], id.as_str());
    assert!(start[0]["time"].as_str().unwrap().ends_with('Z'));

    let respond = format!("/2018-06-01/runtime/invocation/{id}/response");
    assert_eq!(call(&api, "POST", &respond, &[], "{\"a\":1}").0, 202);
    let done = got.wait_until(soon(), |g| g.get(1).cloned()).unwrap();
    assert_eq!(done[0]["type"], "platform.runtimeDone");
    assert_eq!(done[0]["record"]["requestId"], id.as_str());
    assert_eq!(done[0]["record"]["status"], "success");
    assert_eq!(done[0]["record"]["metrics"]["producedBytes"], 7);

    // Everyone back in next: over, frozen, and the report waits for the thaw.
    let _rt = next_in_background(&api, None);
    let _ext = next_in_background(&api, Some(&ext_id));
    emu.wait_until(soon(), |s| s.invocation(&id).unwrap().done_us).unwrap();
    let frozen_at = Instant::now();
    assert!(
        got.wait_until(frozen_at + Duration::from_millis(300), |g| (g.len() > 2).then_some(()))
            .is_none(),
        "delivered while frozen: {:?}",
        types(&got.lock())
    );
    emu.thaw();
    let report = got.wait_until(soon(), |g| g.get(2).cloned()).unwrap();
    assert_eq!(report[0]["type"], "platform.report");
    assert_eq!(report[0]["record"]["status"], "success");
    assert!(report[0]["record"]["metrics"]["initDurationMs"].is_number());
    assert_eq!(
        types(&got.lock()),
        ["platform.start", "platform.runtimeDone", "platform.report"]
    );
    // The delivery is recorded once the listener's answer is back.
    emu.wait_until(soon(), |s| (s.deliveries.len() == 3).then_some(()))
        .unwrap();
    let snap = emu.snapshot();
    assert!(
        snap.deliveries
            .iter()
            .all(|d| d.result == Ok(200) && d.events.len() == 1 && d.events[0].1.as_deref() == Some(id.as_str())),
        "{:?}",
        snap.deliveries
    );
    assert_eq!(snap.refused.len(), 1, "{:?}", snap.refused);
}

#[test]
fn like_the_rie_it_answers_not_supported_and_delivers_nothing() {
    let emu = emulator(TelemetryMode::Unsupported);
    let api = emu.api();
    let ext_id = register(&api, "collector", r#"{"events":["INVOKE"]}"#);
    let (server, got) = listener();
    let uri = format!("http://127.0.0.1:{}/", server.port());
    let (status, body) = subscribe(&api, &ext_id, &uri);
    assert_eq!(status, 202);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["errorType"], "Telemetry.NotSupported");
    let id = emu.invoke(&json!({}), Duration::from_secs(30), false);
    emu.answer(&id, Outcome::Response(b"{}".to_vec())).unwrap();
    let quiet = Instant::now() + Duration::from_millis(300);
    assert!(got.wait_until(quiet, |g| (!g.is_empty()).then_some(())).is_none());
    let snap = emu.snapshot();
    assert!(!snap.subscriptions[0].active);
    assert!(snap.deliveries.is_empty());
}

#[test]
fn a_silent_api_accepts_a_subscription_and_delivers_nothing() {
    let emu = emulator(TelemetryMode::Silent);
    let api = emu.api();
    let ext_id = register(&api, "collector", r#"{"events":["INVOKE"]}"#);
    let (server, got) = listener();
    let uri = format!("http://127.0.0.1:{}/", server.port());
    assert_eq!(subscribe(&api, &ext_id, &uri), (200, "{}".to_string()));
    let id = emu.invoke(&json!({}), Duration::from_secs(30), false);
    emu.answer(&id, Outcome::Response(b"{}".to_vec())).unwrap();
    let _ext = next_in_background(&api, Some(&ext_id));
    let _ext2 = {
        // The first next takes INVOKE; the second waits, which ends the invocation.
        emu.wait_until(soon(), |s| (s.extensions[0].delivered.len() == 1).then_some(()))
            .unwrap();
        next_in_background(&api, Some(&ext_id))
    };
    emu.wait_until(soon(), |s| s.invocation(&id).unwrap().done_us).unwrap();
    emu.thaw();
    let quiet = Instant::now() + Duration::from_millis(300);
    assert!(got.wait_until(quiet, |g| (!g.is_empty()).then_some(())).is_none());
    let snap = emu.snapshot();
    assert_eq!(snap.subscriptions.len(), 1);
    assert!(!snap.subscriptions[0].active);
    assert!(snap.deliveries.is_empty());
}
