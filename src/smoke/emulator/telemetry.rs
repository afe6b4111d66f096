//! The Telemetry API (2022-07-01): subscriptions checked as Lambda documents them, and platform
//! events (schema 2022-12-13) posted as JSON arrays to each subscriber's own listener.
//!
//! Events are buffered per subscriber and posted when its `buffering.timeoutMs` has passed since
//! the first one (or `maxItems` are waiting), never while the sandbox is frozen, as on Lambda.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Shared;
use super::state::{Buffering, Delivery, Invocation, Outcome, State, Subscription, TelemetryMode};
use crate::smoke::clock::{epoch_ms, iso8601};
use crate::smoke::http::{Request, Response, post};

const SCHEMA_VERSIONS: [&str; 3] = ["2022-07-01", "2022-12-13", "2025-01-29"];
const TYPES: [&str; 3] = ["platform", "function", "extension"];
/// Lambda's defaults and bounds for `buffering` (Telemetry API reference).
const DEFAULT_BUFFERING: Buffering = Buffering {
    max_items: 10_000,
    max_bytes: 262_144,
    timeout_ms: 1_000,
};
/// Attempts per batch; Lambda retries a listener that is not there or answers an error.
const ATTEMPTS: u32 = 3;
const POST_LIMIT: Duration = Duration::from_secs(10);
/// A delivery thread with nothing to do sleeps this long between looks at its state, though any
/// change wakes it sooner.
const IDLE: Duration = Duration::from_secs(3600);

/// `PUT /2022-07-01/telemetry`.
pub(super) fn subscribe(sh: &Arc<Shared>, req: &Request) -> Response {
    let Some(extension) = super::routes::extension_name(sh, req) else {
        sh.watch.update(|st| {
            st.refused
                .push("telemetry subscription from an unknown extension".into())
        });
        return error(
            403,
            "Extension.InvalidExtensionIdentifier",
            "unknown Lambda-Extension-Identifier: register first".into(),
        );
    };
    let parsed = parse_subscription(&req.body, &extension, sh.api_port());
    let mut st = sh.watch.lock();
    let mut sub = match (parsed, sh.telemetry) {
        (Ok(sub), _) => sub,
        (Err(why), TelemetryMode::Lambda) => {
            st.refused.push(format!("telemetry subscription of {extension}: {why}"));
            sh.changed(&mut st);
            return error(400, "ValidationError", why);
        }
        // These modes answer any subscription alike; keep what can be shown of it.
        (Err(why), TelemetryMode::Silent | TelemetryMode::Unsupported) => placeholder(&extension, why),
    };
    sub.active = sh.telemetry == TelemetryMode::Lambda;
    // A second subscription replaces the first in place, so the delivery thread keeps its slot.
    let existing = st.subscriptions.iter().position(|s| s.extension == extension);
    let index = match existing {
        Some(i) => {
            st.subscriptions[i] = sub;
            i
        }
        None => {
            st.subscriptions.push(sub);
            st.subscriptions.len() - 1
        }
    };
    sh.changed(&mut st);
    drop(st);
    match sh.telemetry {
        TelemetryMode::Lambda => {
            if existing.is_none() {
                let sh2 = sh.clone();
                let _ = std::thread::Builder::new()
                    .name(format!("smoke-telemetry-{extension}"))
                    .spawn(move || deliver_loop(&sh2, &extension, index));
            }
            Response::json(200, &json!("OK"))
        }
        TelemetryMode::Silent => Response::json(200, &json!({})),
        TelemetryMode::Unsupported => Response::json(
            202,
            &json!({"errorMessage": "Telemetry API is not supported", "errorType": "Telemetry.NotSupported"}),
        ),
    }
}

fn placeholder(extension: &str, why: String) -> Subscription {
    Subscription {
        extension: extension.to_string(),
        schema_version: String::new(),
        types: Vec::new(),
        uri: format!("(not checked: {why})"),
        buffering: DEFAULT_BUFFERING,
        active: false,
        target: (String::new(), String::new()),
        buffer: Vec::new(),
        buffered_bytes: 0,
        first_buffered_us: None,
    }
}

fn error(status: u16, error_type: &str, message: String) -> Response {
    Response::json(status, &json!({"errorMessage": message, "errorType": error_type}))
}

/// Checks a subscription body field by field; the error says what to change.
pub(super) fn parse_subscription(body: &[u8], extension: &str, api_port: u16) -> Result<Subscription, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let schema = v["schemaVersion"].as_str().unwrap_or("");
    if !SCHEMA_VERSIONS.contains(&schema) {
        return Err(format!(
            "schemaVersion `{schema}` is not one of {}",
            SCHEMA_VERSIONS.join(", ")
        ));
    }
    let types: Vec<String> = match v["types"].as_array() {
        Some(a) if !a.is_empty() => a.iter().map(|t| t.as_str().unwrap_or("").to_string()).collect(),
        _ => return Err("types must be a non-empty array of platform, function, extension".into()),
    };
    if let Some(bad) = types.iter().find(|t| !TYPES.contains(&t.as_str())) {
        return Err(format!("type `{bad}` is not one of platform, function, extension"));
    }
    let dest = &v["destination"];
    match dest["protocol"].as_str() {
        Some("HTTP") => {}
        Some("TCP") => return Err("destination protocol TCP: smoke's emulator delivers over HTTP only".into()),
        other => return Err(format!("destination protocol {other:?} is not HTTP or TCP")),
    }
    let uri = dest["URI"].as_str().ok_or("destination.URI is missing")?;
    let target = listener_target(uri, api_port)?;
    let buffering = parse_buffering(&v["buffering"])?;
    Ok(Subscription {
        extension: extension.to_string(),
        schema_version: schema.to_string(),
        types,
        uri: uri.to_string(),
        buffering,
        active: true,
        target,
        buffer: Vec::new(),
        buffered_bytes: 0,
        first_buffered_us: None,
    })
}

fn parse_buffering(v: &Value) -> Result<Buffering, String> {
    if v.is_null() {
        return Ok(DEFAULT_BUFFERING);
    }
    let field = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
        match &v[name] {
            Value::Null => Ok(default),
            n => match n.as_u64() {
                Some(x) if (min..=max).contains(&x) => Ok(x),
                _ => Err(format!("buffering.{name} {n} is outside {min}..={max}")),
            },
        }
    };
    let d = DEFAULT_BUFFERING;
    Ok(Buffering {
        max_items: field("maxItems", d.max_items as u64, 1_000, 10_000)? as usize,
        max_bytes: field("maxBytes", d.max_bytes as u64, 262_144, 1_048_576)? as usize,
        timeout_ms: field("timeoutMs", d.timeout_ms, 25, 30_000)?,
    })
}

/// `http://HOST:PORT[/PATH]` on this machine -> (`IP:PORT`, `/PATH`). Lambda delivers only inside
/// the sandbox; here that is loopback, and the sandbox's own names stand for 127.0.0.1.
pub(super) fn listener_target(uri: &str, api_port: u16) -> Result<(String, String), String> {
    let rest = uri
        .strip_prefix("http://")
        .ok_or_else(|| format!("destination.URI `{uri}` must start with http:// (Lambda delivers HTTP only)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (h, p),
        _ => return Err(format!("destination.URI `{uri}` has no port: give http://HOST:PORT/")),
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("destination.URI `{uri}`: `{port}` is not a port"))?;
    let ip: std::net::IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" | "sandbox" | "sandbox.localdomain" => [127, 0, 0, 1].into(),
        literal => literal.parse().map_err(|_| {
            format!("destination.URI `{uri}`: `{host}` is not in the sandbox: use 127.0.0.1, localhost or sandbox.localdomain")
        })?,
    };
    if !ip.is_loopback() {
        return Err(format!(
            "destination.URI `{uri}`: {ip} is not a loopback address; Lambda delivers only inside the sandbox"
        ));
    }
    if port == api_port {
        return Err(format!(
            "destination.URI `{uri}`: port {port} is the Lambda API's own (Lambda reserves it)"
        ));
    }
    Ok((std::net::SocketAddr::new(ip, port).to_string(), path.to_string()))
}

fn tracing(inv: &Invocation) -> Value {
    json!({"type": "X-Amzn-Trace-Id", "value": inv.trace_id})
}

fn event(kind: &str, record: Value) -> Value {
    json!({"time": iso8601(epoch_ms()), "type": kind, "record": record})
}

/// `function`: one line the function wrote, as a text-format record.
pub(super) fn function_event(line: &str) -> Value {
    event("function", json!(line))
}

/// `platform.start`: the invocation began.
pub(super) fn start_event(inv: &Invocation, version: &str) -> Value {
    event(
        "platform.start",
        json!({"requestId": inv.id, "version": version, "tracing": tracing(inv)}),
    )
}

/// `status` and, for a failure, `errorType`, as `platform.runtimeDone` and `platform.report` carry them.
fn status(outcome: Option<&Outcome>) -> (&'static str, Option<String>) {
    match outcome {
        Some(Outcome::Response(_)) => ("success", None),
        Some(Outcome::Error { error_type, .. }) => {
            ("error", Some(error_type.clone().unwrap_or_else(|| "Unhandled".into())))
        }
        None => ("failure", Some("Runtime.NoResponse".into())),
    }
}

fn with_status(mut record: Value, outcome: Option<&Outcome>) -> Value {
    let (status, error_type) = status(outcome);
    record["status"] = json!(status);
    if let Some(t) = error_type {
        record["errorType"] = json!(t);
    }
    record
}

/// `platform.runtimeDone`: the runtime posted its response or error.
pub(super) fn runtime_done_event(inv: &Invocation) -> Value {
    let start = inv.delivered_us.unwrap_or(inv.invoked_us);
    let latency_ms = inv.outcome_us.unwrap_or(start).saturating_sub(start) as f64 / 1000.0;
    let produced = match &inv.outcome {
        Some(Outcome::Response(b)) | Some(Outcome::Error { body: b, .. }) => b.len(),
        None => 0,
    };
    let record = json!({
        "requestId": inv.id,
        "tracing": tracing(inv),
        "metrics": {"durationMs": latency_ms, "producedBytes": produced},
        "spans": [{"name": "responseLatency", "start": iso8601(epoch_ms().saturating_sub(latency_ms as u64)), "durationMs": latency_ms}],
    });
    event("platform.runtimeDone", with_status(record, inv.outcome.as_ref()))
}

/// `platform.report`: the invocation is over (runtime and extensions back in next). Its
/// duration includes the extensions' time after the response, as Lambda's does; memory used is
/// not measured here, so `maxMemoryUsedMB` is left out.
pub(super) fn report_event(inv: &Invocation, memory_mb: u64, init_ms: Option<f64>) -> Value {
    let ms = inv.done_us.unwrap_or(inv.invoked_us).saturating_sub(inv.invoked_us) as f64 / 1000.0;
    let mut metrics = json!({"durationMs": ms, "billedDurationMs": ms.ceil() as u64, "memorySizeMB": memory_mb});
    if let Some(init) = init_ms {
        metrics["initDurationMs"] = json!(init);
    }
    let record = json!({"requestId": inv.id, "metrics": metrics, "tracing": tracing(inv)});
    event("platform.report", with_status(record, inv.outcome.as_ref()))
}

/// Takes the subscriber's batch when it is due and the sandbox is not frozen; else says when to
/// look again (microseconds on the run's clock; `u64::MAX`: when something changes).
fn due_batch(st: &mut State, index: usize, now_us: u64) -> Result<Vec<Value>, u64> {
    let frozen = st.frozen;
    let sub = &mut st.subscriptions[index];
    let Some(first) = sub.first_buffered_us.filter(|_| !frozen && !sub.buffer.is_empty()) else {
        return Err(u64::MAX);
    };
    let due = first + sub.buffering.timeout_ms * 1000;
    let full = sub.buffer.len() >= sub.buffering.max_items || sub.buffered_bytes >= sub.buffering.max_bytes;
    if !full && now_us < due {
        return Err(due);
    }
    let n = sub.buffer.len().min(sub.buffering.max_items);
    let batch: Vec<Value> = sub.buffer.drain(..n).collect();
    sub.buffered_bytes = sub.buffer.iter().map(|e| e.to_string().len()).sum();
    sub.first_buffered_us = (!sub.buffer.is_empty()).then_some(now_us);
    Ok(batch)
}

/// One subscriber's delivery thread: waits for a due batch, posts it, records the result.
fn deliver_loop(sh: &Shared, extension: &str, index: usize) {
    loop {
        let mut st = sh.watch.lock();
        let batch = loop {
            if st.closing || st.subscriptions.get(index).is_none_or(|s| s.extension != extension) {
                return;
            }
            match due_batch(&mut st, index, sh.clock.us()) {
                Ok(batch) => break batch,
                Err(due) => {
                    let wake = if due == u64::MAX {
                        Instant::now() + IDLE
                    } else {
                        sh.clock.instant(due)
                    };
                    st = sh.watch.wait(st, wake);
                }
            }
        };
        let target = st.subscriptions[index].target.clone();
        drop(st);
        let result = post_batch(sh, &target, &batch);
        sh.watch.update(|st| {
            st.deliveries.push(Delivery {
                extension: extension.to_string(),
                events: batch
                    .iter()
                    .map(|e| {
                        let kind = e["type"].as_str().unwrap_or("").to_string();
                        (kind, e["record"]["requestId"].as_str().map(str::to_string))
                    })
                    .collect(),
                result,
            });
            st.changes += 1;
        });
    }
}

fn post_batch(sh: &Shared, (host, path): &(String, String), batch: &[Value]) -> Result<u16, String> {
    let body = Value::Array(batch.to_vec()).to_string();
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(100 << attempt));
        }
        if sh.watch.lock().closing {
            break;
        }
        match post(host, path, "application/json", body.as_bytes(), POST_LIMIT) {
            Ok((status, _)) if (200..300).contains(&status) => return Ok(status),
            Ok((status, text)) => last = format!("the listener answered {status}: {}", text.trim()),
            Err(e) => last = format!("{e:#}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    fn good() -> Value {
        json!({"schemaVersion": "2022-12-13", "types": ["platform"],
               "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
               "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243/tel"}})
    }

    #[test]
    fn a_valid_subscription_is_read() {
        let s = parse_subscription(&body(good()), "collector", 9001).unwrap();
        assert_eq!(s.target, ("127.0.0.1:4243".to_string(), "/tel".to_string()));
        assert_eq!(s.buffering.timeout_ms, 25);
        let mut v = good();
        v.as_object_mut().unwrap().remove("buffering");
        let s = parse_subscription(&body(v), "collector", 9001).unwrap();
        assert_eq!(s.buffering, DEFAULT_BUFFERING);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: [(&str, Value, &str); 8] = [
            ("/schemaVersion", json!("2020-01-01"), "schemaVersion"),
            ("/types", json!([]), "non-empty"),
            ("/types", json!(["platform", "logs"]), "`logs`"),
            ("/destination/protocol", json!("TCP"), "HTTP only"),
            ("/destination/URI", json!("http://10.0.0.8:4243/"), "not a loopback"),
            (
                "/destination/URI",
                json!("http://example.invalid:80/"),
                "not in the sandbox",
            ),
            ("/destination/URI", json!("http://127.0.0.1:9001/"), "reserves"),
            ("/buffering/timeoutMs", json!(10), "timeoutMs 10 is outside 25..=30000"),
        ];
        for (pointer, value, says) in cases {
            let mut v = good();
            *v.pointer_mut(pointer).unwrap() = value;
            let err = parse_subscription(&body(v), "c", 9001).unwrap_err();
            assert!(err.contains(says), "{pointer}: {err}");
        }
        assert!(parse_subscription(b"{", "c", 9001).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn listener_addresses() {
        assert_eq!(listener_target("http://[::1]:80", 1).unwrap().0, "[::1]:80");
        assert_eq!(
            listener_target("http://localhost:53612/", 1).unwrap().0,
            "127.0.0.1:53612"
        );
        assert!(listener_target("https://127.0.0.1:1/", 2).is_err());
        assert!(listener_target("http://127.0.0.1/", 2).unwrap_err().contains("no port"));
    }
}
