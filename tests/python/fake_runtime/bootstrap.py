"""Stand-in for Lambda's Python runtime bootstrap, used as the "runtime command".

otel-instrument finally runs `<python> bootstrap.py <args...>`. Like Lambda, this script
reads the handler from _HANDLER, imports it from LAMBDA_TASK_ROOT and (when LBTEST_INVOKE
is set) calls it once with LBTEST_EVENT. It then writes what the tests need to know
(argv, environment, OpenTelemetry state, handler result or error) as JSON to LBTEST_OUT,
and leaves with os._exit: like a frozen Lambda sandbox, no atexit hook runs, so only
telemetry flushed during the invocation gets out.
"""

import importlib
import json
import os
import sys
import time
import traceback


def qualname(obj):
    cls = obj if isinstance(obj, type) else type(obj)
    return "%s.%s" % (cls.__module__, cls.__qualname__)


def error_info(exc):
    return {
        "types": [cls.__name__ for cls in type(exc).__mro__],
        "message": str(exc),
        "traceback": traceback.format_exc(),
    }


class FakeContext:
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:%s" % function_name
    aws_request_id = "req-0001"
    memory_limit_in_mb = "128"

    @staticmethod
    def get_remaining_time_in_millis():
        return 30000


def instrumented():
    """The instrumentor classes applied in this process (module.Class), sorted."""
    try:
        from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
    except ImportError:
        return None
    found = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("opentelemetry.instrumentation.") or module is None:
            continue
        for value in list(vars(module).values()):
            if (isinstance(value, type) and issubclass(value, BaseInstrumentor)
                    and value is not BaseInstrumentor
                    and getattr(value.__dict__.get("_instance"), "_is_instrumented_by_opentelemetry",
                                False)):
                found.add(qualname(value))
    return sorted(found)


def otel_state():
    from opentelemetry import metrics, propagate, trace

    state = {}
    tracer_provider = trace.get_tracer_provider()
    state["tracer_provider"] = qualname(tracer_provider)
    resource = getattr(tracer_provider, "resource", None)
    state["resource"] = dict(resource.attributes) if resource is not None else None
    state["propagator_fields"] = sorted(propagate.get_global_textmap().fields)
    id_generator = getattr(tracer_provider, "id_generator", None)
    state["id_generator"] = qualname(id_generator) if id_generator is not None else None

    meter_provider = metrics.get_meter_provider()
    config = getattr(meter_provider, "_sdk_config", None)
    # SDK 1.20 keeps the readers in its configuration, 1.45 on the provider itself.
    found = getattr(config, "metric_readers", getattr(meter_provider, "_metric_readers", None))
    readers = None
    if found is not None:
        readers = [
            {
                "reader": qualname(reader),
                "exporter": qualname(reader._exporter) if hasattr(reader, "_exporter") else None,
            }
            for reader in found
        ]
    state["meter_provider"] = {"class": qualname(meter_provider), "readers": readers}
    try:
        from opentelemetry.sdk.metrics import MeterProvider

        metrics.set_meter_provider(MeterProvider())
        state["meter_provider_replaced"] = metrics.get_meter_provider() is not meter_provider
    except Exception as exc:  # report, do not hide
        state["meter_provider_replaced"] = "error: %r" % (exc,)

    state["instrumented"] = instrumented()
    site = sys.modules.get("sitecustomize")
    state["sitecustomize"] = getattr(site, "__file__", None)
    return state


def main():
    record = {
        "argv": sys.argv[1:],
        "executable": os.path.realpath(sys.executable),
        "version": "%d.%d" % sys.version_info[:2],
        "env": dict(os.environ),
        "sys_path": list(sys.path),
    }
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root:
        sys.path.insert(0, task_root)

    handler_name = os.environ.get("_HANDLER", "")
    function = None
    try:
        module_name, function_name = handler_name.rsplit(".", 1)
        module = importlib.import_module(module_name.replace("/", "."))
        function = getattr(module, function_name)
    except Exception as exc:
        record["init_error"] = error_info(exc)

    if function is not None and os.environ.get("LBTEST_INVOKE"):
        event = json.loads(os.environ.get("LBTEST_EVENT", "{}"))
        start = time.monotonic()
        try:
            record["result"] = function(event, FakeContext())
        except Exception as exc:
            record["invoke_error"] = error_info(exc)
        record["invoke_seconds"] = time.monotonic() - start

    try:
        record["otel"] = otel_state()
    except Exception as exc:
        record["otel_error"] = error_info(exc)

    with open(os.environ["LBTEST_OUT"], "w") as out:
        json.dump(record, out, default=repr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


main()
