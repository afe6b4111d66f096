"""Each layer under AWS's Runtime Interface Emulator, its collector sending OTLP to a receiver
of the test's own that answers 300 ms late, on each of the layer's runtimes (the default layer
on python3.9 and python3.8, the current one on python3.13 and python3.12).

The function calls a local HTTP server with `requests`; its fourth invocation raises. The
collector config is the documented way to send elsewhere (docs/layer.md): otlp receiver,
otlphttp exporter (JSON, so the test reads it without protobuf).
"""

import pytest

import expect
from checks import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, STATUS_ERROR, invocation_id, otlp_spans
from harness import FUNCTION_NAME, LAYER_RUNTIMES

DELAY_MS = 300
INVOCATIONS = [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4, "fail": True}, {"n": 5}]

OTLP_CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "localhost:4317"
      http:
        endpoint: "localhost:4318"
exporters:
  otlphttp:
    endpoint: "@OTLP_ENDPOINT@"
    encoding: json
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
"""


@pytest.fixture(scope="module", params=LAYER_RUNTIMES, ids=lambda p: "%s-py%s" % p)
def run(request, run_rie, layer_of, runtime_for):
    name, version = request.param
    return run_rie("otlp %s py%s" % (name, version), [layer_of(name).dir], runtime_for(version),
                   INVOCATIONS, collector_config=OTLP_CONFIG, delay_ms=DELAY_MS)


def handler_and_client(run, invocation):
    """The invocation's handler span (SERVER, by its request id) and its CLIENT children."""
    spans = otlp_spans(run.result["otlp"])
    rid = expect.request_id(invocation)
    servers = [s for s in spans if s["kind"] == SPAN_KIND_SERVER
               and invocation_id(s["attributes"]) == rid]
    assert len(servers) == 1, ("expected one handler span for request %s, got %d of %d spans\n%s"
                               % (rid, len(servers), len(spans), run.tail()))
    server = servers[0]
    clients = [s for s in spans if s["kind"] == SPAN_KIND_CLIENT
               and s["parent_id"] == server["span_id"] and s["trace_id"] == server["trace_id"]]
    return server, clients


def test_every_response_is_right(run):
    expect.responses_right(run, INVOCATIONS)


def test_collector_registered_and_exited_zero_after_shutdown(run):
    expect.collector_ran_and_exited_zero(run)


def test_spans_arrived_with_client_span_child_of_handler_span(run):
    for event, invocation in zip(INVOCATIONS, run.invocations):
        server, clients = handler_and_client(run, invocation)
        assert server["resource"].get("service.name") == FUNCTION_NAME
        assert server["resource"].get("faas.name") == FUNCTION_NAME
        assert server["resource"].get("cloud.provider") == "aws"
        calls = [c for c in clients
                 if str(c["attributes"].get("http.url", "")).endswith("/ping?n=%d" % event["n"])]
        assert len(calls) == 1, ("no single CLIENT span for the requests call of n=%d under "
                                 "handler span %s: %s" % (event["n"], server["span_id"], clients))
        assert str(calls[0]["attributes"].get("http.status_code")) == "200"
        # The call carried the CLIENT span's context to the server it called.
        hit = [h for h in run.result["target_hits"] if h["path"] == "/ping?n=%d" % event["n"]]
        assert hit and hit[0]["traceparent"], hit
        assert hit[0]["traceparent"].split("-")[1:3] == [server["trace_id"], calls[0]["span_id"]]


def test_raising_handler_spans_reach_backend_with_error(run):
    failing = [(e, i) for e, i in zip(INVOCATIONS, run.invocations) if e.get("fail")]
    assert failing
    for event, invocation in failing:
        server, clients = handler_and_client(run, invocation)
        assert server["status"].get("code") == STATUS_ERROR, server["status"]
        exceptions = [e["attributes"] for e in server["events"] if e["name"] == "exception"]
        assert exceptions and exceptions[0].get("exception.type") == "RuntimeError", server
        assert "(n=%d)" % event["n"] in exceptions[0].get("exception.message", "")
        assert clients, "the failed invocation's requests call lost its CLIENT span"


def test_collector_logged_its_no_freeze_path(run):
    expect.took_the_no_freeze_path(run)


def test_warm_invokes_not_held_by_export(run):
    expect.not_held_by_export(run, DELAY_MS)

