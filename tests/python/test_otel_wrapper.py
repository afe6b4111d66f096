"""The handler shim (python/otel_wrapper.py), run through the real wrapper."""

import pytest


def test_handler_is_loaded_instrumented_and_called(run_layer, otlp_sink):
    run = run_layer(invoke=True, event={"order": 7})
    assert run.returncode == 0, run.stderr
    record = run.record
    assert "init_error" not in record, record.get("init_error")
    assert record["result"] == {"echo": {"order": 7}, "request": "req-0001"}
    # A span for the invocation reached the OTLP endpoint during the call.
    traces = otlp_sink.bodies("/v1/traces")
    assert traces, otlp_sink.requests
    assert any(b"app.handler" in body for body in traces)
    assert any(b"req-0001" in body for body in traces)


def test_handler_in_sub_directory(run_layer, otlp_sink):
    run = run_layer({"_HANDLER": "dir/sub/module.func"}, invoke=True, event={"x": 1})
    assert run.returncode == 0, run.stderr
    assert "init_error" not in run.record, run.record.get("init_error")
    assert run.record["result"] == {"loaded_from": "dir.sub.module", "echo": {"x": 1}}
    assert any(b"dir.sub.module.func" in body for body in otlp_sink.bodies("/v1/traces"))


@pytest.mark.parametrize(
    "handler, expected",
    [
        (None, "ORIG_HANDLER is empty or not set"),
        ("", "ORIG_HANDLER is empty or not set"),
        ("nodot", "'nodot' is malformed"),
        ("app.", "'app.' is malformed"),
        ("dir//module.func", "'dir//module.func' is malformed"),
        ("no_such_module.handler", "'no_such_module.handler'"),
        ("broken_import.handler", "lbtest-broken-at-import"),
        ("app.missing_function", "'app.missing_function'"),
        ("app.not_a_function", "'app.not_a_function'"),
        ("otel_wrapper.lambda_handler", "points at the layer's shim itself"),
    ],
    ids=["unset", "empty", "no-dot", "no-function", "empty-dir", "no-module",
         "module-raises", "no-function-in-module", "not-callable", "the-shim"],
)
def test_handler_load_errors_name_the_handler(run_layer, handler, expected):
    if handler is None:
        run = run_layer(drop=["_HANDLER"], invoke=True)
    else:
        run = run_layer({"_HANDLER": handler}, invoke=True)
    assert run.returncode == 0, run.stderr
    error = run.record.get("init_error")
    assert error is not None, "handler %r loaded without error" % (handler,)
    # ImportError is what Lambda reports as an init error of the handler module.
    assert "HandlerLoadError" in error["types"] and "ImportError" in error["types"]
    assert expected in error["message"]
    if handler:
        assert repr(handler) in error["message"]
    assert "result" not in run.record


def test_import_error_keeps_the_cause(run_layer):
    run = run_layer({"_HANDLER": "broken_import.handler"}, invoke=True)
    message = run.record["init_error"]["message"]
    assert "RuntimeError" in message
    assert "broken_import" in message


def test_raising_handler_flushes_spans_and_metrics(run_layer, otlp_sink):
    # The fake runtime exits right after the invocation, like a frozen sandbox: only what
    # the shim flushed before re-raising reaches the endpoint.
    run = run_layer({"_HANDLER": "app.fail", "OTEL_METRICS_EXPORTER": "otlp"}, invoke=True)
    assert run.returncode == 0, run.stderr
    error = run.record.get("invoke_error")
    assert error is not None
    assert error["types"][0] == "ValueError"
    assert error["message"] == "lbtest-handler-failed"
    traces = otlp_sink.bodies("/v1/traces")
    assert any(b"app.fail" in body for body in traces), otlp_sink.requests
    assert any(b"lbtest-handler-failed" in body for body in traces)  # the exception event
    metrics = otlp_sink.bodies("/v1/metrics")
    assert any(b"lbtest.invocations" in body for body in metrics), otlp_sink.requests


def test_successful_handler_flushes_metrics_when_enabled(run_layer, otlp_sink):
    run = run_layer({"OTEL_METRICS_EXPORTER": "otlp"}, invoke=True)
    assert run.returncode == 0, run.stderr
    assert run.record["result"]["request"] == "req-0001"
    assert any(b"lbtest.invocations" in body for body in otlp_sink.bodies("/v1/metrics"))


def test_no_metrics_sent_by_default(run_layer, otlp_sink):
    run = run_layer(invoke=True)
    assert run.returncode == 0, run.stderr
    assert run.record["result"]["request"] == "req-0001"
    assert otlp_sink.bodies("/v1/traces")
    assert otlp_sink.bodies("/v1/metrics") == []
