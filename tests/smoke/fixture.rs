//! The hermetic layers the smoke tests run: a shell wrapper, a fake OpenTelemetry shim, fake
//! collector extensions, and the helpers that zip a layer and run `layerbuild smoke` on it.

use super::*;

pub const WRAPPER: &str = r#"#!/bin/sh
# Test exec wrapper: put the fake shim on PYTHONPATH and swap the handler, as otel-instrument does.
root=$(cd "${0%/*}" && pwd -P)
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/python"
export ORIG_HANDLER="$_HANDLER"
export _HANDLER="fakeotel.lambda_handler"
exec "$@"
"#;

pub const FAKE_SHIM: &str = r#"
import http.client, importlib, json, os, random, urllib.request

_spans = []
_current = {}


def _id(n):
    return "%0*x" % (n * 2, random.getrandbits(n * 8))


_orig_request = http.client.HTTPConnection.request


def _request(self, method, url, body=None, headers=None, **kw):
    headers = dict(headers or {})
    if _current:
        sid = _id(8)
        headers["traceparent"] = "00-%s-%s-01" % (_current["trace"], sid)
        _spans.append({"traceId": _current["trace"], "spanId": sid, "parentSpanId": _current["span"],
                       "name": method, "kind": 3})
    return _orig_request(self, method, url, body, headers, **kw)


http.client.HTTPConnection.request = _request
_module, _, _name = os.environ["ORIG_HANDLER"].rpartition(".")
_function = getattr(importlib.import_module(_module), _name)


def lambda_handler(event, context):
    _current.update(trace=_id(16), span=_id(8))
    try:
        return _function(event, context)
    finally:
        server = {"traceId": _current["trace"], "spanId": _current["span"], "name": "handler", "kind": 2,
                  "attributes": [{"key": "faas.execution", "value": {"stringValue": context.aws_request_id}}]}
        _current.clear()
        name = os.environ.get("OTEL_SERVICE_NAME") or os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        body = json.dumps({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": name}}]},
            "scopeSpans": [{"scope": {"name": "fakeotel"}, "spans": [server] + _spans}]}]})
        del _spans[:]
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
        request = urllib.request.Request(endpoint + "/v1/traces", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
"#;

/// Test collector extension: OTLP/HTTP in on the config's port, out to the config's otlphttp
/// endpoint. `MODE` (replaced by the tests) says how it exports:
/// - `sync`: forwards each post before answering it (export on the invocation's path);
/// - `queued`: answers at once and forwards on a thread of its own (as an exporter with a
///   sending queue does), calling event/next without waiting for it;
/// - `telemetry`: answers at once and holds the data; subscribes to the Telemetry API and, after
///   each INVOKE, waits for the request's platform.runtimeDone, forwards what it holds, and only
///   then calls event/next. With no platform.start within 500 ms it falls back to `sync` for good;
/// - `drop`: answers and forwards nothing.
///
/// Each decision is appended to the file `NOTES` names, for the tests to read.
pub const FAKE_COLLECTOR: &str = r#"#!/usr/bin/env python3
import http.server, json, os, re, sys, threading, urllib.request

MODE = "sync"
NOTES = None
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
config = open(os.environ["OPENTELEMETRY_COLLECTOR_CONFIG_URI"]).read()
port = int(re.search(r'http:\s*\n\s*endpoint:\s*"?[\w.]+:(\d+)', config).group(1))
exporter = re.search(r'otlphttp:\s*\n\s*endpoint:\s*"?([^"\s]+)', config).group(1)
lock = threading.Condition()
held = []
seen = {}
fallback = [MODE != "telemetry"]


def note(line):
    print(line, flush=True)
    if NOTES:
        with open(NOTES, "a") as f:
            f.write(line + "\n")


def forward(body):
    out = urllib.request.Request(exporter + "/v1/traces", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(out, timeout=10).read()


def drain():
    with lock:
        bodies = held[:]
        del held[:]
    for body in bodies:
        forward(body)


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


class Otlp(Handler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if MODE == "queued":
            threading.Thread(target=forward, args=(body,)).start()
        elif MODE == "drop":
            pass
        else:
            with lock:
                keep = not fallback[0]
                if keep:
                    held.append(body)
            if not keep:
                forward(body)
        self.answer()


class Listener(Handler):
    def do_POST(self):
        events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            for e in events:
                seen.setdefault(e["type"], set()).add(e["record"].get("requestId"))
                note("telemetry %s %s" % (e["type"], e["record"].get("requestId")))
            lock.notify_all()
        self.answer()


def serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0 if handler is Listener else port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def call(method, path, body=None, headers=None):
    request = urllib.request.Request("http://%s%s" % (api, path), data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers, json.loads(response.read() or b"null")


def wait_for_runtime(request_id):
    with lock:
        if not lock.wait_for(lambda: request_id in seen.get("platform.start", ()), timeout=0.5):
            fallback[0] = True
            note("no platform.start for %s: falling back to synchronous export" % request_id)
            return
        lock.wait_for(lambda: request_id in seen.get("platform.runtimeDone", ()), timeout=10)
        note("runtimeDone %s: draining" % request_id)


serve(Otlp)
headers, _ = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(),
                  {"Lambda-Extension-Name": os.path.basename(sys.argv[0])})
ident = {"Lambda-Extension-Identifier": headers["Lambda-Extension-Identifier"]}
if MODE == "telemetry":
    subscription = {"schemaVersion": "2022-12-13", "types": ["platform"], "buffering": {"timeoutMs": 25},
                    "destination": {"protocol": "HTTP", "URI": "http://127.0.0.1:%d/telemetry" % serve(Listener)}}
    _, answer = call("PUT", "/2022-07-01/telemetry", json.dumps(subscription).encode(), ident)
    note("subscribed: %s" % json.dumps(answer))
print("fake collector registered", flush=True)
for _ in range(100):
    _, event = call("GET", "/2020-01-01/extension/event/next", headers=ident)
    if event["eventType"] == "SHUTDOWN":
        drain()
        break
    if not fallback[0]:
        wait_for_runtime(event["requestId"])
    drain()
"#;

/// An extension that stamps the monotonic clock into a file every 10 ms until shortly after
/// SHUTDOWN: the gaps show when its process was stopped.
pub const TICKER: &str = r#"#!/usr/bin/env python3
import json, os, sys, threading, time, urllib.request

TICKS = None
api = os.environ["AWS_LAMBDA_RUNTIME_API"]


def tick():
    with open(TICKS, "a") as f:
        while True:
            f.write("%f\n" % time.monotonic())
            f.flush()
            time.sleep(0.01)


request = urllib.request.Request("http://%s/2020-01-01/extension/register" % api, method="POST",
                                 data=json.dumps({"events": ["SHUTDOWN"]}).encode(),
                                 headers={"Lambda-Extension-Name": os.path.basename(sys.argv[0])})
ident = urllib.request.urlopen(request, timeout=60).headers["Lambda-Extension-Identifier"]
threading.Thread(target=tick, daemon=True).start()
request = urllib.request.Request("http://%s/2020-01-01/extension/event/next" % api,
                                 headers={"Lambda-Extension-Identifier": ident})
urllib.request.urlopen(request, timeout=600).read()
# A few more ticks after SHUTDOWN, so the last freeze shows as a gap too.
time.sleep(0.2)
"#;

pub fn collector(mode: &str, notes: Option<&Path>) -> ZipEntry {
    let script = FAKE_COLLECTOR
        .replace("MODE = \"sync\"", &format!("MODE = {mode:?}"))
        .replace(
            "NOTES = None",
            &format!(
                "NOTES = {:?}",
                notes.map(|p| p.display().to_string()).unwrap_or_default()
            ),
        );
    file("extensions/collector", 0o755, &script)
}

/// The lines the fake collector noted.
pub fn notes(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A collector that refuses its config, as the real one does with a bad exporter: it exits before registering.
pub const BROKEN_COLLECTOR: &str = r#"#!/bin/sh
echo "Error: failed to get config: cannot unmarshal the configuration: decoding failed due to the following error(s):" >&2
echo "'exporters' unknown type: \"otlphttpx\" for id: \"otlphttpx\"" >&2
exit 1
"#;

/// An extension that never registers: smoke must give up within its bounds.
pub const SILENT_EXTENSION: &str = "#!/bin/sh\nsleep 300\n";

pub const RAISING_HANDLER: &str = r#"
def handler(event, context):
    raise ValueError("boom from the handler")
"#;

pub fn file(name: &str, mode: u32, data: &str) -> ZipEntry {
    (name.to_string(), 0o100000 | mode, data.as_bytes().to_vec())
}

pub fn good_layer() -> Vec<ZipEntry> {
    vec![
        ("extensions/".into(), 0o040755, Vec::new()),
        collector("sync", None),
        file("otel-instrument", 0o755, WRAPPER),
        ("python/".into(), 0o040755, Vec::new()),
        file("python/fakeotel.py", 0o644, FAKE_SHIM),
    ]
}

pub fn replace(mut layer: Vec<ZipEntry>, entry: ZipEntry) -> Vec<ZipEntry> {
    layer.retain(|e| e.0 != entry.0);
    layer.push(entry);
    layer
}

/// Runs smoke on `layer` (written as a zip in `dir`) and returns (exit ok, stdout, JSON report).
pub fn smoke(dir: &Path, layer: &[ZipEntry], extra: &[&str]) -> (bool, String, Value) {
    let (ok, text, report) = run_smoke(dir, layer, extra, true);
    (ok, text.unwrap_or_default(), report)
}

/// Like `smoke`, with the JSON report only (one run instead of two).
pub fn smoke_json(dir: &Path, layer: &[ZipEntry], extra: &[&str]) -> (bool, Value) {
    let (ok, _, report) = run_smoke(dir, layer, extra, false);
    (ok, report)
}

pub fn run_smoke(dir: &Path, layer: &[ZipEntry], extra: &[&str], also_text: bool) -> (bool, Option<String>, Value) {
    let zip = dir.join("layer.zip");
    write_zip(&zip, layer);
    // Defaults for these tests, unless the test sets them itself.
    let mut args: Vec<&str> = extra.to_vec();
    for (flag, value) in [("--arch", "x86_64"), ("--timeout", "30")] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    let run = |json: bool| {
        let mut cmd = layerbuild(dir);
        cmd.arg("smoke")
            .arg(&zip)
            // No --python: python3.9 comes from the binary's own finder, as for a user.
            .args(["--client", "builtin", "--offline", "--free-ports"])
            .args(&args);
        if json {
            cmd.arg("--json");
        }
        cmd.timeout(std::time::Duration::from_secs(120)).output().unwrap()
    };
    let out = run(true);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "--json output is not JSON ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        out.status.success(),
        report["passed"] == true,
        "exit status follows the verdict"
    );
    let human = also_text.then(|| String::from_utf8_lossy(&run(false).stdout).into_owned());
    (out.status.success(), human, report)
}

pub fn failure(report: &Value) -> String {
    report["runs"][0]["failure"].as_str().unwrap_or("").to_string()
}
