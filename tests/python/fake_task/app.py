"""Test handlers for the layer tests (the function's own code)."""

from opentelemetry import metrics

_counter = metrics.get_meter("lbtest").create_counter("lbtest.invocations")

not_a_function = 42


def handler(event, context):
    _counter.add(1)
    return {"echo": event, "request": context.aws_request_id}


def fail(event, context):
    _counter.add(1)
    raise ValueError("lbtest-handler-failed")
