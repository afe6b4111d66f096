"""Handler shim of the OpenTelemetry Python Lambda layer.

``otel-instrument`` moves the function's handler setting to ``ORIG_HANDLER`` and points
Lambda at ``otel_wrapper.lambda_handler``. When the runtime imports this module, it:

1. loads the function's real handler from ``ORIG_HANDLER``
   (``module.function``, ``package.module.function`` or ``dir/sub/module.function``);
2. wraps it with opentelemetry-instrumentation-aws-lambda, which opens a span per
   invocation and flushes the tracer and meter providers after a normal return (unless the
   auto-instrumentation has already applied that instrumentation at start-up, as newer
   releases do);
3. exposes the result as ``lambda_handler``, which also flushes both providers when the
   handler raises (the instrumentation skips its flush on that path, and Lambda may freeze
   the sandbox as soon as the error is reported, so unflushed spans would be lost);
4. on SnapStart, reseeds ``random`` after every restore (see ``reseed_after_restore``).

A handler that cannot be loaded raises ``HandlerLoadError`` (an ``ImportError``, which
Lambda reports as an init error) whose message names the handler string.
"""

import importlib
import logging
import os
import time

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor

_logger = logging.getLogger("otel_wrapper")

ORIG_HANDLER = "ORIG_HANDLER"
FLUSH_TIMEOUT_ENV = "OTEL_INSTRUMENTATION_AWS_LAMBDA_FLUSH_TIMEOUT"
DEFAULT_FLUSH_TIMEOUT_MS = 30000


class HandlerLoadError(ImportError):
    """The function's own handler (``ORIG_HANDLER``) could not be loaded."""


def parse_handler(handler):
    """Split a handler string into (importable module name, function name)."""
    if not handler:
        raise HandlerLoadError(
            "ORIG_HANDLER is empty or not set: the layer cannot tell which handler to run. "
            "Set the function's handler (e.g. 'app.handler') and run the layer through "
            "AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-instrument, which copies it to ORIG_HANDLER."
        )
    module_path, dot, function_name = handler.strip().rpartition(".")
    module_name = module_path.replace("/", ".")
    if (
        not dot
        or not function_name
        or not module_name
        or any(not part for part in module_name.split("."))
    ):
        raise HandlerLoadError(
            "ORIG_HANDLER %r is malformed: expected 'module.function' or "
            "'dir/module.function'" % (handler,)
        )
    if module_name == __name__:
        raise HandlerLoadError(
            "ORIG_HANDLER %r points at the layer's shim itself, not at the function's "
            "handler" % (handler,)
        )
    return module_name, function_name


def load_handler(handler):
    """Import the handler's module and check the function; return (module, name)."""
    module_name, function_name = parse_handler(handler)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may fail in any way while importing
        raise HandlerLoadError(
            "cannot import module %r of handler %r (ORIG_HANDLER): %s: %s"
            % (module_name, handler, type(exc).__name__, exc)
        ) from exc
    function = getattr(module, function_name, None)
    if function is None:
        raise HandlerLoadError(
            "handler %r (ORIG_HANDLER): module %r has no function %r"
            % (handler, module_name, function_name)
        )
    if not callable(function):
        raise HandlerLoadError(
            "handler %r (ORIG_HANDLER): %s.%s is not callable"
            % (handler, module_name, function_name)
        )
    return module, function_name


def _instrument(module, function_name):
    """Wrap module.function_name with the aws-lambda instrumentation, unless it is already."""
    instrumentor = AwsLambdaInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        # Newer releases (0.66b1, not 0.41b0) also register the instrumentation as an entry
        # point, which the auto-instrumentation (sitecustomize) applies at start-up to the
        # same ORIG_HANDLER: the handler is wrapped already, and a second instrument() would
        # only log "Attempting to instrument while already instrumented".
        return getattr(module, function_name)
    # The instrumentation reads the handler from ORIG_HANDLER and imports it by name, so
    # hand it the dotted form while it runs.
    saved = os.environ.get(ORIG_HANDLER)
    os.environ[ORIG_HANDLER] = "%s.%s" % (module.__name__, function_name)
    try:
        instrumentor.instrument()
    finally:
        if saved is None:
            del os.environ[ORIG_HANDLER]
        else:
            os.environ[ORIG_HANDLER] = saved
    return getattr(module, function_name)


def _flush_timeout_ms():
    value = os.environ.get(FLUSH_TIMEOUT_ENV)
    if value:
        try:
            return int(value)
        except ValueError:
            pass
    return DEFAULT_FLUSH_TIMEOUT_MS


def flush_providers():
    """Force-flush the global tracer and meter providers within the flush timeout."""
    timeout_ms = _flush_timeout_ms()
    start = time.monotonic()
    for kind, provider in (
        ("TracerProvider", trace.get_tracer_provider()),
        ("MeterProvider", metrics.get_meter_provider()),
    ):
        flush = getattr(provider, "force_flush", None)
        if flush is None:
            continue
        left_ms = timeout_ms - (time.monotonic() - start) * 1000
        if left_ms <= 0:
            _logger.warning("no time left to flush the %s", kind)
            continue
        try:
            flush(left_ms)
        except Exception:  # flushing must never replace the handler's own error
            _logger.exception("%s failed to flush after the handler raised", kind)


def reseed_after_restore():
    """Have SnapStart reseed `random` after each restore; True when the runtime has the hook.

    SnapStart (python3.12 and later) starts sandboxes from one snapshot of an initialised one,
    `random`'s state included: the SDK's trace and span ids (RandomIdGenerator, and the X-Ray
    generator built on it) would repeat across them. Lambda's runtime runs the hooks registered
    with snapshot_restore_py after every restore.
    """
    try:
        from snapshot_restore_py import register_after_restore
    except ImportError:  # not a SnapStart-capable runtime
        return False
    import random

    register_after_restore(random.seed)  # no argument: seeded from os.urandom
    return True


def _make_lambda_handler():
    handler = os.environ.get(ORIG_HANDLER, "")
    module, function_name = load_handler(handler)
    if getattr(trace.get_tracer_provider(), "force_flush", None) is None:
        # OpenTelemetry was not set up (see otel-instrument's message in the log):
        # run the function's handler as it is.
        return getattr(module, function_name)

    instrumented = _instrument(module, function_name)

    def lambda_handler(event, context):
        try:
            return instrumented(event, context)
        except BaseException:
            flush_providers()
            raise

    lambda_handler.__wrapped__ = instrumented
    return lambda_handler


reseed_after_restore()
lambda_handler = _make_lambda_handler()
