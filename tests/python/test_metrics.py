"""The MeterProvider the layer sets up for each metrics setting, and bad values."""

import pytest

PERIODIC = "opentelemetry.sdk.metrics._internal.export.PeriodicExportingMetricReader"
SDK_METER_PROVIDER = "opentelemetry.sdk.metrics._internal.MeterProvider"
HTTP_EXPORTER = "opentelemetry.exporter.otlp.proto.http.metric_exporter.OTLPMetricExporter"
GRPC_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc.metric_exporter.OTLPMetricExporter"
CONSOLE_EXPORTER = "opentelemetry.sdk.metrics._internal.export.ConsoleMetricExporter"


@pytest.mark.parametrize("value", [None, "none", "NONE"], ids=["unset", "none", "NONE"])
def test_metrics_off_gives_provider_without_readers(run_layer, value):
    run = run_layer({} if value is None else {"OTEL_METRICS_EXPORTER": value})
    assert run.returncode == 0, run.stderr
    meter_provider = run.record["otel"]["meter_provider"]
    assert meter_provider["class"] == SDK_METER_PROVIDER
    assert meter_provider["readers"] == []
    # It is the global provider for good: the function cannot swap in its own.
    assert run.record["otel"]["meter_provider_replaced"] is False


@pytest.mark.parametrize(
    "settings, exporter",
    [
        ({"OTEL_METRICS_EXPORTER": "otlp"}, HTTP_EXPORTER),  # protocol defaults to http
        ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
         HTTP_EXPORTER),
        ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
         GRPC_EXPORTER),
        ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"},
         GRPC_EXPORTER),
        ({"OTEL_METRICS_EXPORTER": "console"}, CONSOLE_EXPORTER),
    ],
    ids=["otlp-default-protocol", "otlp-http", "otlp-grpc", "otlp-grpc-per-signal", "console"],
)
def test_metrics_on_gives_reader_and_exporter(run_layer, settings, exporter):
    run = run_layer(settings)
    assert run.returncode == 0, run.stderr
    assert "Failed to auto initialize" not in run.stderr, run.stderr
    meter_provider = run.record["otel"]["meter_provider"]
    assert meter_provider["class"] == SDK_METER_PROVIDER
    assert meter_provider["readers"] == [{"reader": PERIODIC, "exporter": exporter}]


def test_grpc_exporter_native_code_loads(run_layer):
    # grpcio is native: a tree built for another Python or arch fails here.
    run = run_layer({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "otlp",
                     "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert run.returncode == 0, run.stderr
    assert "cygrpc" not in run.stderr
    assert run.record["otel"]["tracer_provider"] == "opentelemetry.sdk.trace.TracerProvider"
    assert run.record["otel"]["meter_provider"]["readers"][0]["exporter"] == GRPC_EXPORTER


@pytest.mark.parametrize(
    "settings, variable, signal",
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL", "traces"),
        ({"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"},
         "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "metrics"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"},
         "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "traces"),
    ],
    ids=["global-http-json", "metrics-http-json", "traces-thrift"],
)
def test_unsupported_protocol_is_reported_and_function_still_runs(run_layer, settings,
                                                                  variable, signal):
    run = run_layer(settings, invoke=True)
    assert run.returncode == 0, run.stderr
    value = [v for k, v in settings.items() if k == variable][0]
    assert "otel-instrument: %s='%s' is not supported" % (variable, value) in run.stderr
    assert "'http/protobuf' and 'grpc'" in run.stderr
    assert "the %s exporter" % signal in run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    # The function itself works, without OpenTelemetry.
    assert run.record["result"]["request"] == "req-0001"
    assert run.record["otel"]["sitecustomize"] is None
    assert run.record["otel"]["tracer_provider"].endswith("ProxyTracerProvider")


def test_protocol_of_a_disabled_signal_is_not_checked(run_layer):
    # metrics are off, so their protocol setting does not matter
    run = run_layer({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"})
    assert run.returncode == 0, run.stderr
    assert "not supported" not in run.stderr
    assert run.record["otel"]["tracer_provider"] == "opentelemetry.sdk.trace.TracerProvider"


def test_unknown_metrics_exporter_is_reported_and_function_still_runs(run_layer):
    run = run_layer({"OTEL_METRICS_EXPORTER": "prometheus"}, invoke=True)
    assert run.returncode == 0, run.stderr
    assert ("otel-instrument: OTEL_METRICS_EXPORTER names exporter 'prometheus', "
            "which this layer does not ship") in run.stderr
    assert run.record["result"]["request"] == "req-0001"
