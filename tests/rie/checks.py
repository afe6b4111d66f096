"""Readers and validators for what arrived at the backends: OTLP/JSON spans and X-Ray
segment documents (the format PutTraceSegments takes, as AWS's X-Ray developer guide
describes it)."""

import json
import re
import time
from typing import Dict, List, Optional

SPAN_KIND_SERVER = 2
SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2

# The attribute naming the Lambda request a span belongs to: `faas.execution` until the
# semantic conventions renamed it (contrib 0.41b0 sets it), `faas.invocation_id` after
# (contrib 0.66bN sets that).
INVOCATION_ID_KEYS = ("faas.invocation_id", "faas.execution")

HEX16 = re.compile(r"^[0-9a-f]{16}$")
XRAY_TRACE_ID = re.compile(r"^1-([0-9a-f]{8})-[0-9a-f]{24}$")


def _value(attr_value: dict):
    for key in ("stringValue", "intValue", "boolValue", "doubleValue"):
        if key in attr_value:
            return attr_value[key]
    return attr_value


def _attributes(items: Optional[List[dict]]) -> Dict[str, object]:
    return {item["key"]: _value(item.get("value", {})) for item in items or []}


def invocation_id(attributes: dict) -> Optional[str]:
    """The request id in a span's attributes (or an X-Ray document's metadata), by either name."""
    for key in INVOCATION_ID_KEYS:
        if key in attributes:
            return attributes[key]
    return None


def otlp_spans(received: List[dict]) -> List[dict]:
    """Every span of every OTLP/JSON trace request, flattened, with its resource and scope."""
    spans = []
    for request in received:
        body = request.get("body") or {}
        for resource_spans in body.get("resourceSpans", []):
            resource = _attributes(resource_spans.get("resource", {}).get("attributes"))
            for scope_spans in resource_spans.get("scopeSpans", []):
                scope = scope_spans.get("scope", {}).get("name")
                for span in scope_spans.get("spans", []):
                    spans.append({
                        "trace_id": span.get("traceId"),
                        "span_id": span.get("spanId"),
                        "parent_id": span.get("parentSpanId") or None,
                        "name": span.get("name"),
                        "kind": span.get("kind"),
                        "attributes": _attributes(span.get("attributes")),
                        "events": [{"name": event.get("name"),
                                    "attributes": _attributes(event.get("attributes"))}
                                   for event in span.get("events", [])],
                        "status": span.get("status", {}),
                        "resource": resource,
                        "scope": scope,
                    })
    return spans


def validate_segment(document: dict, top: bool = True) -> List[str]:
    """What is wrong with one X-Ray segment or subsegment document (empty when valid)."""
    problems = []
    name = document.get("name")
    if not isinstance(name, str) or not name or len(name) > 200:
        problems.append("name must be a string of 1 to 200 characters: %r" % (name,))
    if not HEX16.match(str(document.get("id", ""))):
        problems.append("id must be 16 hex digits: %r" % (document.get("id"),))
    start = document.get("start_time")
    if not isinstance(start, (int, float)) or isinstance(start, bool):
        problems.append("start_time must be a number: %r" % (start,))
    end = document.get("end_time")
    if end is None:
        if document.get("in_progress") is not True:
            problems.append("end_time missing and in_progress is not true")
    elif not isinstance(end, (int, float)) or isinstance(end, bool):
        problems.append("end_time must be a number: %r" % (end,))
    elif isinstance(start, (int, float)) and end < start:
        problems.append("end_time %r before start_time %r" % (end, start))
    independent = document.get("type") == "subsegment"
    if top or independent:
        if not XRAY_TRACE_ID.match(str(document.get("trace_id", ""))):
            problems.append("trace_id must be 1-<8 hex>-<24 hex>: %r" % (document.get("trace_id"),))
    if independent and not HEX16.match(str(document.get("parent_id", ""))):
        problems.append("a subsegment document needs a parent_id of 16 hex digits")
    if "parent_id" in document and not HEX16.match(str(document["parent_id"])):
        problems.append("parent_id must be 16 hex digits: %r" % (document["parent_id"],))
    for flag in ("fault", "error", "throttle"):
        if flag in document and not isinstance(document[flag], bool):
            problems.append("%s must be a boolean" % flag)
    http = document.get("http")
    if http is not None:
        status = (http.get("response") or {}).get("status")
        if status is not None and not isinstance(status, int):
            problems.append("http.response.status must be an integer: %r" % (status,))
    for sub in document.get("subsegments", []):
        problems.extend("subsegment %s: %s" % (sub.get("id"), p)
                        for p in validate_segment(sub, top=False))
    return problems


def segment_documents(xray: dict) -> List[dict]:
    """Every document moto's X-Ray handed back, parsed (a parse failure is kept as such)."""
    documents = []
    for trace in xray.get("traces", []):
        for raw in trace["segments"]:
            try:
                documents.append(json.loads(raw))
            except ValueError as exc:
                documents.append({"_unparsable": "%s: %r" % (exc, raw[:200])})
    return documents


def trace_epoch(trace_id: str) -> Optional[int]:
    match = XRAY_TRACE_ID.match(trace_id or "")
    return int(match.group(1), 16) if match else None


def trace_id_problem(trace_id: str, earliest: float, latest: Optional[float] = None) -> Optional[str]:
    """Why X-Ray would not take this trace id (its first 8 hex digits are the epoch second of
    the request, within its retention and clock-skew bounds), or None."""
    epoch = trace_epoch(trace_id)
    if epoch is None:
        return "%r is not 1-<8 hex>-<24 hex>" % (trace_id,)
    latest = latest if latest is not None else time.time()
    if not earliest - 300 <= epoch <= latest + 300:
        return ("%s carries epoch %d (%s UTC), not the time of the request (%s to %s UTC)"
                % (trace_id, epoch, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)),
                   time.strftime("%H:%M:%S", time.gmtime(earliest)),
                   time.strftime("%H:%M:%S", time.gmtime(latest))))
    return None
