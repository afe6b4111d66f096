"""The layer's quick start-up against upstream's, on the same function: the same spans.

Each test runs the function in tests/python/diff_task/libs.py once through the quick start-up
(the wrapper's default) and once through upstream's sitecustomize (OTEL_LAMBDA_UPSTREAM_START=
true), on contrib 0.41b0 (python3.9) and 0.66b1 (python3.12) sets installed with pip, with
Lambda's runtime packages (awslambdaric, boto3, botocore, urllib3 1.26) as the runtime folder.
The function calls requests, urllib3, httpx and aiohttp against a local server, S3 through
boto3 against moto, sqlite3, jinja2 and a WSGI app behind the wsgi middleware. Spans come from
the console exporter and are compared by name, kind, status, attributes, events, parent (by
name) and resource; and the same instrumentors must end up applied.
"""
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import FAKE_RUNTIME, console_spans, missing, run_wrapper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pylib"))
sys.path.insert(0, str(HERE.parent / "rie"))

from layerbuild_env import find_interpreter, where_looked  # noqa: E402
from otel_sets import SETS, assemble_layer, otel_tree  # noqa: E402
from provision import moto_python, pip_target, runtime_packages  # noqa: E402
from sandbox import free_port, wait_for_port  # noqa: E402

TASK = HERE / "diff_task"
FUNCTION_LIBS = ("jinja2==3.1.6", "httpx==0.28.1", "aiohttp==3.10.11")
# Values that differ between any two processes, whichever start-up runs.
VOLATILE_RESOURCE = ("service.instance.id",)
VOLATILE_ATTRIBUTES = ("aws.request_id",)
# Instrumentors whose library the layer itself holds (grpcio, for the OTLP gRPC exporter):
# upstream applies them at start-up, the quick start-up once grpc is imported, which this
# function never does.
UNUSED_LIBRARY_MODULES = ("opentelemetry.instrumentation.grpc",)


class Target(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (name fixed by the base class)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        python = moto_python()
    except Exception as exc:  # provisioning failed: say why
        missing("moto is not available: %s" % exc)
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    moto = subprocess.Popen([str(python), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for_port(port, 60, moto), "moto did not start (see %s)" % log.name
        yield {"LBTEST_HTTP": "http://127.0.0.1:%d" % server.server_address[1],
               "LBTEST_MOTO": "http://127.0.0.1:%d" % port}
    finally:
        moto.terminate()
        moto.wait(timeout=30)
        log.close()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module", params=[s for s in SETS if s.full],
                ids=lambda s: "%s-py%s" % (s.instrumentation, s.python))
def stage(request, tmp_path_factory):
    otel_set = request.param
    interp = find_interpreter(otel_set.python)
    if interp is None:
        missing("no python%s: looked at %s" % (otel_set.python, where_looked(otel_set.python)))
    root = assemble_layer(otel_tree(otel_set, interp),
                          tmp_path_factory.mktemp("quick-" + otel_set.instrumentation) / "opt")
    libs = pip_target("function-libs", FUNCTION_LIBS, interp, "jinja2",
                      "the test function's libraries for python%s" % interp.version, resolve=True)
    home = tmp_path_factory.mktemp("home")
    return {"root": root, "python": interp.real, "home": home,
            "path": [str(FAKE_RUNTIME), str(runtime_packages(interp)), str(libs)]}


def _run(stage, backends, tmp_path, name, extra):
    env = {
        "PATH": "%s:/usr/bin:/bin" % os.path.dirname(stage["python"]),
        "HOME": str(stage["home"]), "LANG": "C.UTF-8",
        "LAMBDA_TASK_ROOT": str(TASK), "PYTHONPATH": ":".join(stage["path"]),
        "PYTHONDONTWRITEBYTECODE": "1", "_HANDLER": "libs.handler",
        "AWS_REGION": "eu-west-1", "AWS_LAMBDA_FUNCTION_NAME": "orders-fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/05/01/[$LATEST]0123456789abcdef",
        "OTEL_TRACES_EXPORTER": "console", "LBTEST_INVOKE": "1", "LBTEST_EVENT": "{}",
    }
    env.update(backends)
    env.update(extra)
    run = run_wrapper(stage["root"] / "otel-instrument",
                      [stage["python"], str(FAKE_RUNTIME / "bootstrap.py")], env,
                      tmp_path / (name + ".json"), cwd=TASK)
    assert run.record is not None, run.stderr
    assert "invoke_error" not in run.record and "init_error" not in run.record, \
        (run.record.get("invoke_error") or run.record.get("init_error"), run.stderr)
    return run


def _shape(spans):
    """The spans without what differs between any two runs (ids, times), parents by name."""
    names = {s["context"]["span_id"]: s["name"] for s in spans}
    out = []
    for s in spans:
        attributes = {k: v for k, v in (s.get("attributes") or {}).items()
                      if k not in VOLATILE_ATTRIBUTES}
        resource = {k: v for k, v in s["resource"]["attributes"].items()
                    if k not in VOLATILE_RESOURCE}
        out.append({
            "name": s["name"], "kind": s["kind"], "status": s["status"].get("status_code"),
            "attributes": attributes, "events": [e["name"] for e in s.get("events") or []],
            "links": len(s.get("links") or []),
            "parent": names.get(s["parent_id"]) if s.get("parent_id") else None,
            "resource": resource,
        })
    return sorted(out, key=lambda s: json.dumps(s, sort_keys=True))


def _both(stage, backends, tmp_path, extra=None):
    quick = _run(stage, backends, tmp_path, "quick", dict(extra or {}))
    upstream = _run(stage, backends, tmp_path, "upstream",
                    dict(extra or {}, OTEL_LAMBDA_UPSTREAM_START="true"))
    assert "otel_lambda_start" in (quick.record["otel"]["sitecustomize"] or "")
    assert "auto_instrumentation" in (upstream.record["otel"]["sitecustomize"] or "")
    return quick, upstream


def _state(run):
    otel = dict(run.record["otel"])
    otel.pop("sitecustomize")
    otel.pop("instrumented")
    otel["resource"] = {k: v for k, v in (otel["resource"] or {}).items()
                        if k not in VOLATILE_RESOURCE}
    return otel


def test_same_spans_and_instrumentors(stage, backends, tmp_path):
    quick, upstream = _both(stage, backends, tmp_path)
    spans = _shape(console_spans(quick.stdout))
    assert spans == _shape(console_spans(upstream.stdout))
    names = {s["name"] for s in spans}
    # the function's calls were traced at all (not two empty lists)
    assert {"S3.CreateBucket", "S3.ListBuckets"} <= names, names
    assert any(s["kind"] == "SpanKind.CLIENT" and s["parent"] for s in spans), spans
    assert _state(quick) == _state(upstream)
    applied = set(quick.record["otel"]["instrumented"])
    upstream_only = set(upstream.record["otel"]["instrumented"]) - applied
    assert applied <= set(upstream.record["otel"]["instrumented"])
    assert all(name.startswith(UNUSED_LIBRARY_MODULES) for name in upstream_only), upstream_only
    for expected in ("botocore", "requests", "sqlite3", "jinja2", "aiohttp_client"):
        assert any(".%s." % expected in name for name in applied), (expected, applied)


@pytest.mark.parametrize("extra", [
    {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests, botocore"},
    {"OTEL_SDK_DISABLED": "true"},
    {"OTEL_PYTHON_ID_GENERATOR": "random"},
    {"OTEL_PROPAGATORS": "tracecontext"},
    {"OTEL_TRACES_EXPORTER": "none"},
    {"OTEL_RESOURCE_ATTRIBUTES": "team=payments", "OTEL_SERVICE_NAME": "svc"},
], ids=["disabled", "sdk-disabled", "id-generator", "propagators", "no-exporter", "resource"])
def test_upstream_variables_work_the_same(stage, backends, tmp_path, extra):
    quick, upstream = _both(stage, backends, tmp_path, extra)
    assert _shape(console_spans(quick.stdout)) == _shape(console_spans(upstream.stdout))
    assert _state(quick) == _state(upstream)
    assert quick.record["otel"]["instrumented"] == [
        name for name in upstream.record["otel"]["instrumented"]
        if not name.startswith(UNUSED_LIBRARY_MODULES)]
    if "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in extra:
        assert not any(s["name"].startswith("S3.") for s in console_spans(quick.stdout))


def test_otlp_export_reaches_the_endpoint(stage, backends, tmp_path, otlp_sink):
    # The OTLP exporter is created at its first export on the quick start-up: it must still
    # send every span of the invocation before the handler returns.
    extra = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_sink.url}
    _run(stage, backends, tmp_path, "quick", extra)
    quick = b"".join(otlp_sink.bodies("/v1/traces"))
    otlp_sink.requests.clear()
    _run(stage, backends, tmp_path, "upstream", dict(extra, OTEL_LAMBDA_UPSTREAM_START="true"))
    upstream = b"".join(otlp_sink.bodies("/v1/traces"))
    for name in (b"S3.ListBuckets", b"orders-fn", b"GET"):
        assert (name in quick) == (name in upstream), name
    assert b"S3.ListBuckets" in quick
