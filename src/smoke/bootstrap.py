"""Runtime entry point of `layerbuild smoke`: what Lambda's Python bootstrap does, run locally.

Started as `<exec wrapper> <python> bootstrap.py`, like Lambda starts its runtime. It reads
_HANDLER from the environment only now, after the exec wrapper ran (the wrapper swaps it for
its shim), then serves invocations from AWS_LAMBDA_RUNTIME_API with awslambdaric when smoke
installed it (LAYERBUILD_SMOKE_CLIENT=awslambdaric), else with the minimal client below.
"""

import http.client
import importlib
import json
import os
import sys
import time
import traceback

# Lambda keeps the runtime alive for many invocations; smoke sends one per run.
MAX_INVOCATIONS = 1000


def say(message):
    sys.stderr.write("smoke-bootstrap: %s\n" % message)
    sys.stderr.flush()


class Context:
    """The fields of Lambda's context object that handlers and the instrumentation read."""

    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def api_call(api, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(api)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def error_body(exc):
    return json.dumps({
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    })


def builtin_client(api, handler_name):
    try:
        module_name, _, function_name = handler_name.rpartition(".")
        if not module_name:
            raise ValueError("handler %r is not 'module.function'" % handler_name)
        module = importlib.import_module(module_name.replace("/", "."))
        function = getattr(module, function_name)
    except Exception as exc:  # any failure to load is an init error, as on Lambda
        api_call(api, "POST", "/2018-06-01/runtime/init/error", error_body(exc),
                 {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
        say("init error: %s: %s" % (type(exc).__name__, exc))
        return 1
    for _ in range(MAX_INVOCATIONS):
        status, headers, body = api_call(api, "GET", "/2018-06-01/runtime/invocation/next")
        if status != 200:
            say("invocation/next answered %d" % status)
            return 1
        request_id = headers["lambda-runtime-aws-request-id"]
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        context = Context(request_id, int(headers.get("lambda-runtime-deadline-ms", "0")),
                          headers.get("lambda-runtime-invoked-function-arn", ""))
        base = "/2018-06-01/runtime/invocation/%s/" % request_id
        try:
            result = function(json.loads(body or b"null"), context)
            payload = json.dumps(result)
        except Exception as exc:  # the handler's error goes back to the caller, as on Lambda
            api_call(api, "POST", base + "error", error_body(exc),
                     {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
            continue
        api_call(api, "POST", base + "response", payload, {"Content-Type": "application/json"})
    return 0


def main():
    handler = os.environ.get("_HANDLER", "")
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    # Lambda runs the runtime in the task root and imports the function from there.
    os.chdir(task_root)
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    client = os.environ.get("LAYERBUILD_SMOKE_CLIENT", "builtin")
    say("runtime client %s, handler %s" % (client, handler))
    if client == "awslambdaric":
        from awslambdaric import __main__ as ric

        # Its main takes the handler from argv; hand it the one the wrapper left in _HANDLER.
        ric.main([sys.argv[0], handler])
        return 0
    return builtin_client(api, handler)


if __name__ == "__main__":
    sys.exit(main())
