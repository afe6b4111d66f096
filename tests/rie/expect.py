"""Checks that every run of a layer under the emulator must pass, shared by the
OTLP and the X-Ray tests. Each failure message names what was seen and ends with the tail of
the emulator's, the function's and the sandbox's logs."""

import re

from harness import FUNCTION_NAME, RieRun
from provision import runtime_requirements


def pinned(run: RieRun) -> dict:
    """name -> version of what the run's /var/runtime holds."""
    return dict(r.split("==") for r in runtime_requirements(run.spec["runtime_version"]))


def request_id(invocation: dict) -> str:
    body = invocation["json"] or {}
    return body.get("request_id") or body.get("requestId")


def responses_right(run: RieRun, invocations, buckets=None):
    """Each invocation answered as the handler does: its result, or its error when it raised."""
    assert not run.result.get("fatal"), "the sandbox failed:\n" + run.tail()
    assert not run.result.get("errors"), "\n".join(run.result["errors"]) + "\n" + run.tail()
    assert len(run.invocations) == len(invocations), run.tail()
    for event, got in zip(invocations, run.invocations):
        where = "invocation n=%s: HTTP %s %s\n%s" % (event["n"], got["status"], got["body"][:600],
                                                     run.tail())
        assert got["status"] == 200 and got["json"] is not None, where
        body = got["json"]
        if event.get("fail"):
            assert body.get("errorType") == "RuntimeError", where
            assert "(n=%d)" % event["n"] in body.get("errorMessage", ""), where
            continue
        assert body.get("n") == event["n"], where
        assert (body["target_status"], body["target_body"]) == (200, "pong"), where
        assert body["function_name"] == FUNCTION_NAME, where
        # The exec wrapper ran and pointed the runtime at its shim; the shim ran our handler.
        assert body["handler_env"] == "otel_wrapper.lambda_handler", where
        assert body["buckets"] == buckets, where
        modules = body["modules"]
        for name in ("boto3", "botocore", "urllib3"):
            assert modules[name]["file"] == "/var/runtime/%s/__init__.py" % name, where
            assert modules[name]["version"] == pinned(run)[name], where
        assert modules["requests"]["file"].startswith("/opt/python/"), where
    ids = [request_id(got) for got in run.invocations]
    assert len(set(ids)) == len(ids) and all(ids), "request ids not distinct: %s" % ids


def collector_ran_and_exited_zero(run: RieRun):
    """The emulator started the layer's collector once, it registered for INVOKE and
    SHUTDOWN, and after SIGTERM (SHUTDOWN, 2 s deadline) it exited 0 by itself."""
    assert re.search(r"External agent collector \(\S+\) registered, subscribed to "
                     r"\[INVOKE SHUTDOWN\]", run.stderr), "collector not registered:\n" + run.tail()
    assert run.watch_error is None, run.watch_error
    assert len(run.collector) == 1, ("expected one collector process, saw %s\n%s"
                                     % ([s.describe() for s in run.collector], run.tail()))
    seen = run.collector[0]
    assert seen.exit_code == 0, seen.describe() + "\n" + run.tail()
    assert seen.exit_at >= run.result["sigterm_at"], (
        "the collector exited before the emulator was told to shut down\n" + run.tail())
    assert "Handling termination for extension-collector-1" in run.stderr, run.tail()
    assert "Deadline: the agent" not in run.stderr, (
        "the emulator had to kill an extension at the SHUTDOWN deadline\n" + run.tail())
    assert run.result.get("rie_exit") == 0, run.tail()


def took_the_no_freeze_path(run: RieRun):
    """The collector logged its "no freeze" path, as it must under the emulator, whose
    Telemetry API answers 202 Telemetry.NotSupported (collector/README.md), and never its
    synchronous fallback, which would hold every warm invoke by the backend's time."""
    assert run.fallback_line is None, ("the collector fell back to exporting synchronously: %s\n%s"
                                       % (run.fallback_line, run.tail()))
    assert run.no_freeze_line, ('the collector never logged its export path "no freeze" (it '
                                'took: %s)\n%s' % (run.collector_path(), run.tail()))


def not_held_by_export(run: RieRun, delay_ms: int):
    """With the backend answering delay_ms late, no warm invoke took that long: the export
    was not on the invoke's path, whatever path the collector says it took."""
    assert run.backend_requests_during_warm_invokes() > 0, (
        "no export reached the backend while the warm invokes ran, so nothing shows whether "
        "an export holds an invoke\n" + run.tail())
    held = [ms for ms in run.warm_ms if ms >= delay_ms]
    assert not held, ("warm invokes took %s ms with the backend answering %d ms late: the "
                      "export held the responses (collector path: %s)"
                      % (run.warm_ms, delay_ms, run.collector_path()))
