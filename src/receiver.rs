//! An OTLP/HTTP JSON receiver on 127.0.0.1 that records the spans the collector forwards, plus
//! the plain HTTP target the smoke handler calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};

use crate::smoke::http::{Request, Response, Server};

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
    pub posts: usize,
    /// Posts that could not be read (wrong encoding, compression, bad JSON).
    pub problems: Vec<String>,
    pub target_hits: Vec<TargetHit>,
}

struct Shared {
    got: Mutex<Received>,
    cond: Condvar,
    target_body: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Received> {
        self.got.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Receiver {
    shared: Arc<Shared>,
    server: Server,
}

impl Receiver {
    /// `target_body` is what the target answers: smoke makes it unique per run, so a result that
    /// carries it proves the call happened.
    pub fn start(target_body: String) -> Result<Receiver> {
        let shared = Arc::new(Shared {
            got: Mutex::new(Received::default()),
            cond: Condvar::new(),
            target_body,
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

    pub fn snapshot(&self) -> Received {
        self.shared.lock().clone()
    }

    /// Waits at most `max` for `f` to hold on what was received.
    pub fn wait_for(&self, max: Duration, mut f: impl FnMut(&Received) -> bool) -> bool {
        let end = Instant::now() + max;
        let mut got = self.shared.lock();
        loop {
            if f(&got) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            got = self
                .shared
                .cond
                .wait_timeout(got, (end - now).min(Duration::from_millis(50)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn handle(sh: &Shared, req: Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", TARGET_PATH) => {
            sh.lock().target_hits.push(TargetHit {
                query: req.query.clone(),
                traceparent: req.header("traceparent").map(str::to_string),
            });
            sh.cond.notify_all();
            Response::new(200, "text/plain", sh.target_body.clone())
        }
        ("POST", "/v1/traces") => {
            let result = parse_request(&req);
            let mut got = sh.lock();
            got.posts += 1;
            let resp = match result {
                Ok(spans) => {
                    got.spans.extend(spans);
                    Response::json(200, &json!({}))
                }
                Err(problem) => {
                    got.problems.push(problem.clone());
                    Response::json(400, &json!({"code": 3, "message": problem}))
                }
            };
            drop(got);
            sh.cond.notify_all();
            resp
        }
        // Metrics and logs are accepted so an exporter configured for them does not retry.
        ("POST", "/v1/metrics" | "/v1/logs") => Response::json(200, &json!({})),
        _ => Response::new(404, "text/plain", "not found"),
    }
}

fn parse_request(req: &Request) -> Result<Vec<Span>, String> {
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
    let v: Value = serde_json::from_slice(&req.body).map_err(|e| format!("body is not JSON: {e}"))?;
    parse_traces(&v)
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

    #[test]
    fn receives_over_http_and_names_wrong_encodings() {
        let r = Receiver::start("body-42".into()).unwrap();
        let host = format!("127.0.0.1:{}", r.port());
        let (st, _) = post(
            &host,
            "/v1/traces",
            "application/json",
            SAMPLE.as_bytes(),
            Duration::from_secs(5),
        )
        .unwrap();
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
        assert!(r.wait_for(Duration::from_secs(5), |g| g.posts == 2));
        let got = r.snapshot();
        assert_eq!(got.spans.len(), 2);
        assert_eq!(got.problems.len(), 1);
        assert!(got.problems[0].contains("encoding: json"), "{:?}", got.problems);
    }
}
