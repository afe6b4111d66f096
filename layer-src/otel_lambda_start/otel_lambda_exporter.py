"""OTLP span and log exporters that import their package at their first export, not at start-up.

The OTLP exporters import requests or grpc and the protobuf encoders (about half of what the SDK
set-up costs). The SDK creates its exporters at start-up from the `opentelemetry_traces_exporter`
and `opentelemetry_logs_exporter` entry points; otel_lambda_index.serving() hands it
`deferred(ep)` instead, whose class stands for the real one: the first export imports the real
exporter and creates it with the same arguments, from the environment as it is then.
"""
import threading


class DeferredEntryPoint:
    """An entry point whose load() gives a deferring stand-in for the real exporter class."""

    def __init__(self, entry_point):
        self.name = entry_point.name
        self.value = entry_point.value
        self.group = entry_point.group
        self._entry_point = entry_point

    def load(self):
        return _exporter_class(self._entry_point)


def deferred(entry_point):
    return DeferredEntryPoint(entry_point)


def _base(group):
    """The SDK's exporter base class for `group` and its failed export result."""
    if group == "opentelemetry_traces_exporter":
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        return SpanExporter, SpanExportResult.FAILURE
    from opentelemetry.sdk._logs import export

    # SDK 1.20 names them LogExporter and LogExportResult, later ones LogRecord...
    base = getattr(export, "LogRecordExporter", None) or export.LogExporter
    result = getattr(export, "LogRecordExportResult", None) or export.LogExportResult
    return base, result.FAILURE


def _exporter_class(entry_point):
    base, failure = _base(entry_point.group)

    class DeferredExporter(base):
        def __init__(self, *args, **kwargs):
            self._args = args
            self._kwargs = kwargs
            self._real = None
            self._lock = threading.Lock()
            self._shut_down = False

        def _exporter(self):
            with self._lock:
                if self._real is None:
                    self._real = entry_point.load()(*self._args, **self._kwargs)
                return self._real

        def export(self, spans):
            if self._shut_down:
                return failure
            return self._exporter().export(spans)

        def force_flush(self, timeout_millis=30000):
            real = self._real
            return real.force_flush(timeout_millis) if real is not None else True

        def shutdown(self):
            self._shut_down = True
            real = self._real
            if real is not None:
                real.shutdown()

    DeferredExporter.__qualname__ = "DeferredExporter[%s]" % entry_point.value
    return DeferredExporter
