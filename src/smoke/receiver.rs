//! An OTLP/HTTP JSON receiver on 127.0.0.1 that records the spans the collector forwards, plus
//! the plain HTTP target the smoke handler calls.
//!
//! It can answer late, standing in for a backend far away: a post counts as received only when
//! the receiver answers it, as an exporter learns of delivery only then.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};

use super::clock::Clock;
use super::http::{Request, Response, Server};
use super::watch::Watch;

pub const TARGET_PATH: &str = "/smoke-target";

pub const SPAN_KIND_SERVER: i64 = 2;
pub const SPAN_KIND_CLIENT: i64 = 3;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i64,
    pub scope: String,
    pub attributes: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
    /// When the receiver accepted the post that carried it, on the run's clock (microseconds).
    pub received_us: u64,
}

impl Span {
    /// The Lambda request this span was recorded for, by the aws-lambda instrumentation's attributes.
    pub fn request_id(&self) -> Option<&str> {
        ["faas.invocation_id", "faas.execution"]
            .iter()
            .find_map(|k| self.attributes.get(*k))
            .map(String::as_str)
    }
}

pub fn kind_name(kind: i64) -> &'static str {
    match kind {
        1 => "INTERNAL",
        2 => "SERVER",
        3 => "CLIENT",
        4 => "PRODUCER",
        5 => "CONSUMER",
        _ => "UNSPECIFIED",
    }
}

/// One OTLP log record the collector forwarded (its `telemetryapi` receiver's, for one).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogLine {
    pub body: String,
    /// `faas.invocation_id`, the request the line was written in.
    pub request_id: Option<String>,
    /// When the receiver accepted the post that carried it, on the run's clock (microseconds).
    pub received_us: u64,
}

/// One request the handler made to the target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHit {
    pub query: String,
    /// The W3C trace context the instrumented client sent, if any.
    pub traceparent: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Received {
    pub spans: Vec<Span>,
    pub logs: Vec<LogLine>,
    pub posts: usize,
    /// Posts that could not be read (wrong encoding, compression, bad JSON).
    pub problems: Vec<String>,
    pub target_hits: Vec<TargetHit>,
}

struct Shared {
    got: Watch<Received>,
    target_body: String,
    clock: Clock,
    /// How long each OTLP post is held before it is accepted and answered, in milliseconds.
    delay_ms: AtomicU64,
}

pub struct Receiver {
    shared: Arc<Shared>,
    server: Server,
}

impl Receiver {
    /// `target_body` is what the target answers: smoke makes it unique per run, so a result that
    /// carries it proves the call happened.
    pub fn start(target_body: String, clock: Clock) -> Result<Receiver> {
        let shared = Arc::new(Shared {
            got: Watch::new(Received::default()),
            target_body,
            clock,
            delay_ms: AtomicU64::new(0),
        });
        let s2 = shared.clone();
        let server = Server::start("otlp-receiver", 0, Arc::new(move |req| Some(handle(&s2, req))))?;
        Ok(Receiver { shared, server })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// From now on, hold each OTLP post this long before accepting it (a backend that far away).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn snapshot(&self) -> Received {
        self.shared.got.lock().clone()
    }

    /// Waits until `ready` holds on what was received, or `deadline`; says whether it held.
    pub fn wait_until(&self, deadline: Instant, mut ready: impl FnMut(&Received) -> bool) -> bool {
        self.shared
            .got
            .wait_until(deadline, |got| ready(got).then_some(()))
            .is_some()
    }
}

fn handle(sh: &Shared, req: Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", TARGET_PATH) => {
            sh.got.update(|got| {
                got.target_hits.push(TargetHit {
                    query: req.query.clone(),
                    traceparent: req.header("traceparent").map(str::to_string),
                })
            });
            Response::new(200, "text/plain", sh.target_body.clone())
        }
        ("POST", "/v1/traces") => {
            let result = parse_request(&req).and_then(|v| parse_traces(&v));
            let delay = sh.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(Duration::from_millis(delay));
            }
            let at = sh.clock.us();
            sh.got.update(|got| {
                got.posts += 1;
                match result {
                    Ok(spans) => {
                        got.spans
                            .extend(spans.into_iter().map(|s| Span { received_us: at, ..s }));
                        Response::json(200, &json!({}))
                    }
                    Err(problem) => {
                        got.problems.push(problem.clone());
                        Response::json(400, &json!({"code": 3, "message": problem}))
                    }
                }
            })
        }
        ("POST", "/v1/logs") => {
            let result = parse_request(&req).map(|v| parse_logs(&v));
            let at = sh.clock.us();
            sh.got.update(|got| match result {
                Ok(logs) => {
                    got.logs
                        .extend(logs.into_iter().map(|l| LogLine { received_us: at, ..l }));
                    Response::json(200, &json!({}))
                }
                Err(problem) => {
                    got.problems.push(problem.clone());
                    Response::json(400, &json!({"code": 3, "message": problem}))
                }
            })
        }
        // Metrics are accepted so an exporter configured for them does not retry.
        ("POST", "/v1/metrics") => Response::json(200, &json!({})),
        _ => Response::new(404, "text/plain", "not found"),
    }
}

/// The body of an OTLP/HTTP post as JSON, or what to change in the exporter to get that.
fn parse_request(req: &Request) -> Result<Value, String> {
    if let Some(enc) = req
        .header("Content-Encoding")
        .filter(|e| !e.eq_ignore_ascii_case("identity"))
    {
        return Err(format!(
            "body is {enc}-compressed: set `compression: none` on the collector's otlphttp exporter"
        ));
    }
    let ct = req.header("Content-Type").unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(format!(
            "Content-Type `{ct}` is not JSON: set `encoding: json` on the collector's otlphttp exporter"
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| format!("body is not JSON: {e}"))
}

/// Flattens an `ExportLogsServiceRequest` in OTLP's JSON mapping into its records.
pub fn parse_logs(v: &Value) -> Vec<LogLine> {
    let mut out = Vec::new();
    for r in v["resourceLogs"].as_array().into_iter().flatten() {
        for sl in r["scopeLogs"].as_array().into_iter().flatten() {
            for l in sl["logRecords"].as_array().into_iter().flatten() {
                out.push(LogLine {
                    body: l["body"]["stringValue"].as_str().unwrap_or("").to_string(),
                    request_id: attributes(&l["attributes"]).remove("faas.invocation_id"),
                    received_us: 0,
                });
            }
        }
    }
    out
}

/// Flattens an `ExportTraceServiceRequest` in OTLP's JSON mapping into spans.
pub fn parse_traces(v: &Value) -> Result<Vec<Span>, String> {
    let Some(rs) = v.get("resourceSpans").and_then(Value::as_array) else {
        return Err("no resourceSpans array: not an OTLP trace request".into());
    };
    let mut out = Vec::new();
    for r in rs {
        let resource = attributes(&r["resource"]["attributes"]);
        for ss in r["scopeSpans"].as_array().into_iter().flatten() {
            let scope = ss["scope"]["name"].as_str().unwrap_or("").to_string();
            for s in ss["spans"].as_array().into_iter().flatten() {
                let kind = match &s["kind"] {
                    Value::Number(n) => n.as_i64().unwrap_or(0),
                    Value::String(k) => match k.as_str() {
                        "SPAN_KIND_INTERNAL" => 1,
                        "SPAN_KIND_SERVER" => 2,
                        "SPAN_KIND_CLIENT" => 3,
                        "SPAN_KIND_PRODUCER" => 4,
                        "SPAN_KIND_CONSUMER" => 5,
                        _ => 0,
                    },
                    _ => 0,
                };
                let text = |k: &str| s[k].as_str().unwrap_or("").to_ascii_lowercase();
                out.push(Span {
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_span_id: text("parentSpanId"),
                    name: s["name"].as_str().unwrap_or("").to_string(),
                    kind,
                    scope: scope.clone(),
                    attributes: attributes(&s["attributes"]),
                    resource: resource.clone(),
                    received_us: 0,
                });
            }
        }
    }
    Ok(out)
}

fn attributes(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), any_value(&kv["value"]))))
        .collect()
}

/// An `AnyValue` as text: int64 values arrive as JSON strings in OTLP's mapping.
fn any_value(v: &Value) -> String {
    let Some(obj) = v.as_object() else {
        return String::new();
    };
    if let Some((k, inner)) = obj.iter().next() {
        return match (k.as_str(), inner) {
            ("arrayValue", a) => {
                let items: Vec<String> = a["values"].as_array().into_iter().flatten().map(any_value).collect();
                format!("[{}]", items.join(","))
            }
            (_, Value::String(s)) => s.clone(),
            (_, other) => other.to_string(),
        };
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::http::post;

    const SAMPLE: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"smoke-fn"}},
        {"key":"n","value":{"intValue":"7"}}]},
      "scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.aws_lambda"},"spans":[
        {"traceId":"5759E988BD862E3FE1BE46A994272793","spanId":"53995c3f42cd8ad8","parentSpanId":"","name":"h.handler","kind":2,
         "attributes":[{"key":"faas.execution","value":{"stringValue":"req-1"}},
                       {"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"},{"boolValue":true}]}}}]},
        {"traceId":"5759e988bd862e3fe1be46a994272793","spanId":"0102030405060708","parentSpanId":"53995c3f42cd8ad8","name":"GET","kind":"SPAN_KIND_CLIENT"}]}]}]}"#;

    #[test]
    fn parses_otlp_json_logs() {
        let v = json!({"resourceLogs": [{"scopeLogs": [{"scope": {"name": "telemetryapi"}, "logRecords": [
            {"body": {"stringValue": "hello"}, "attributes": [
                {"key": "faas.invocation_id", "value": {"stringValue": "req-1"}},
                {"key": "type", "value": {"stringValue": "function"}}]},
            {"body": {"stringValue": "no request"}}]}]}]});
        let logs = parse_logs(&v);
        assert_eq!(logs.len(), 2);
        assert_eq!(
            (logs[0].body.as_str(), logs[0].request_id.as_deref()),
            ("hello", Some("req-1"))
        );
        assert_eq!(logs[1].request_id, None);
        assert!(parse_logs(&json!({"x": 1})).is_empty());
    }

    #[test]
    fn parses_otlp_json() {
        let spans = parse_traces(&serde_json::from_str(SAMPLE).unwrap()).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].kind, SPAN_KIND_SERVER);
        assert_eq!(
            spans[0].trace_id, "5759e988bd862e3fe1be46a994272793",
            "ids are normalised to lower case"
        );
        assert_eq!(spans[0].attributes["faas.execution"], "req-1");
        assert_eq!(spans[0].attributes["tags"], "[a,true]");
        assert_eq!(spans[0].resource["service.name"], "smoke-fn");
        assert_eq!(spans[0].resource["n"], "7");
        assert_eq!(spans[1].kind, SPAN_KIND_CLIENT);
        assert_eq!(spans[1].parent_span_id, spans[0].span_id);
        assert!(parse_traces(&json!({"x": 1})).is_err());
    }

    /// Posts the sample traces as OTLP JSON, as the SDK's exporter would.
    fn post_sample(host: &str) -> (u16, String) {
        post(
            host,
            "/v1/traces",
            "application/json",
            SAMPLE.as_bytes(),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[test]
    fn receives_over_http_and_names_wrong_encodings() {
        let r = Receiver::start("body-42".into(), Clock::start()).unwrap();
        let host = format!("127.0.0.1:{}", r.port());
        let (st, _) = post_sample(&host);
        assert_eq!(st, 200);
        let (st, _) = post(
            &host,
            "/v1/traces",
            "application/x-protobuf",
            b"\x0a\x00",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(st, 400);
        assert!(r.wait_until(Instant::now() + Duration::from_secs(5), |g| g.posts == 2));
        let got = r.snapshot();
        assert_eq!(got.spans.len(), 2);
        assert_eq!(got.problems.len(), 1);
        assert!(got.problems[0].contains("encoding: json"), "{:?}", got.problems);
    }

    #[test]
    fn a_late_receiver_accepts_only_when_it_answers() {
        let clock = Clock::start();
        let r = Receiver::start("b".into(), clock).unwrap();
        r.set_delay(Duration::from_millis(300));
        let host = format!("127.0.0.1:{}", r.port());
        let sent = clock.us();
        let (st, _) = post_sample(&host);
        let answered = clock.us();
        assert_eq!(st, 200);
        assert!(answered - sent >= 300_000, "answered after {} us", answered - sent);
        let got = r.snapshot();
        assert_eq!(got.spans.len(), 2);
        assert!(
            got.spans.iter().all(|s| s.received_us >= sent + 300_000),
            "{:?}",
            got.spans
        );
        assert_eq!(got.spans[0].request_id(), Some("req-1"));
        // The target the handler calls is never late.
        r.set_delay(Duration::ZERO);
        let started = Instant::now();
        let (st, _) = post_sample(&host);
        assert_eq!(st, 200);
        assert!(started.elapsed() < Duration::from_millis(300));
    }
}
