"""Each layer and its shipped collector config under AWS's Runtime Interface Emulator, exporting to moto's X-Ray, with the segments read back through the X-Ray API.

The config is the layer's own collector-config/config.yaml with only the awsxray exporter's
endpoint and region set. X-Ray (through a proxy that answers 300 ms late) and S3 are moto's
server on 127.0.0.1. The function calls a local HTTP server with `requests` and lists S3
buckets through the runtime's boto3; its fourth invocation raises.

Runs, for each layer: each of its runtimes as a user sets the function up (nothing but the
wrapper), and its newest runtime with OTEL_PYTHON_ID_GENERATOR=xray set on the function
(docs/layer.md). The default layer runs on python3.9 and 3.8, the current one on 3.13 and 3.12.
"""

import time

import pytest

import expect
from checks import invocation_id, segment_documents, trace_id_problem, validate_segment
from harness import FUNCTION_NAME, LAYER_RUNTIMES, LAYERS, REGION, with_xray_endpoint

DELAY_MS = 300
BUCKETS = ["rie-sample-bucket"]  # made in moto by the sandbox before the first invocation
INVOCATIONS = [{"n": 1, "s3": True}, {"n": 2, "s3": True}, {"n": 3, "s3": True},
               {"n": 4, "s3": True, "fail": True}]
RUNS = ([(name, version, None) for name, version in LAYER_RUNTIMES] +
        [(kind.name, kind.runtimes[0], "xray") for kind in LAYERS])


@pytest.fixture(scope="module", params=RUNS,
                ids=lambda p: "%s-py%s-%s" % (p[0], p[1], "idgen-" + p[2] if p[2] else "default-env"))
def run(request, run_rie, layer_of, runtime_for):
    name, version, id_generator = request.param
    layer = layer_of(name)
    shipped = (layer.dir / "collector-config" / "config.yaml").read_text()
    config = with_xray_endpoint(shipped, "@XRAY_ENDPOINT@", REGION)
    env = {"OTEL_PYTHON_ID_GENERATOR": id_generator} if id_generator else {}
    label = "xray %s py%s %s" % (name, version, "idgen=" + id_generator if id_generator
                                 else "default")
    result = run_rie(label, [layer.dir], runtime_for(version), INVOCATIONS,
                     collector_config=config, moto=True, delay_ms=DELAY_MS, env=env)
    result.id_generator = id_generator
    result.layer_dir = layer.dir
    return result


def documents(run):
    assert "xray" in run.result, "X-Ray was not read back\n" + run.tail()
    return segment_documents(run.result["xray"])


def function_segment(run, invocation):
    rid = expect.request_id(invocation)
    found = [d for d in documents(run) if d.get("type") != "subsegment"
             and invocation_id(d.get("metadata", {}).get("default", {})) == rid]
    assert len(found) == 1, ("expected one segment for request %s among %d documents\n%s"
                             % (rid, len(documents(run)), run.tail()))
    return found[0]


def children(run, segment):
    inline = segment.get("subsegments", [])
    separate = [d for d in documents(run) if d.get("type") == "subsegment"
                and d.get("parent_id") == segment["id"] and d.get("trace_id") == segment["trace_id"]]
    return inline + separate


def test_every_response_is_right(run):
    expect.responses_right(run, INVOCATIONS, buckets=BUCKETS)


def test_collector_registered_and_exited_zero_after_shutdown(run):
    expect.collector_ran_and_exited_zero(run)


def s3_subsegments(run, subs, n):
    aws = [s for s in subs if s.get("namespace") == "aws" and s.get("name") == "S3"]
    assert len(aws) == 1, "no aws subsegment for S3 ListBuckets of n=%d: %s" % (n, subs)
    return aws[0]


def test_function_segment_with_http_and_aws_subsegments(run):
    for event, invocation in zip(INVOCATIONS, run.invocations):
        segment = function_segment(run, invocation)
        assert segment["name"] == FUNCTION_NAME, segment
        subs = children(run, segment)
        http = [s for s in subs if s.get("namespace") == "remote"
                and s.get("http", {}).get("request", {}).get("url", "").endswith(
                    "/ping?n=%d" % event["n"])]
        assert len(http) == 1, "no HTTP subsegment for the requests call of n=%d: %s" % (
            event["n"], subs)
        assert http[0]["http"]["request"].get("method") == "GET"
        assert http[0]["http"].get("response", {}).get("status") == 200, http[0]
        aws = s3_subsegments(run, subs, event["n"])
        assert aws.get("aws", {}).get("operation") == "ListBuckets", aws


def test_aws_subsegment_names_the_region(run, request):
    """X-Ray's aws.region of the S3 call. The collector's X-Ray translator (contrib v0.109.0)
    takes it from the span attribute `aws.region` only; botocore's instrumentation sets that
    in 0.41b0 but `cloud.region` in 0.66bN, which lands in metadata instead. That case is a
    strict xfail, tied to what the document shows."""
    unmapped = []
    for event, invocation in zip(INVOCATIONS, run.invocations):
        aws = s3_subsegments(run, children(run, function_segment(run, invocation)), event["n"])
        region = aws.get("aws", {}).get("region")
        if region is None and aws.get("metadata", {}).get("default", {}).get(
                "cloud.region") == REGION:
            unmapped.append(event["n"])
            continue
        assert region == REGION, aws
    if unmapped:
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "the S3 spans carry cloud.region (botocore instrumentation 0.66bN), which the "
            "collector's X-Ray translator (contrib v0.109.0) does not map to aws.region")))
    assert not unmapped, ("aws subsegments of n=%s have no aws.region, only "
                          "metadata cloud.region" % unmapped)


def test_every_document_is_an_xray_segment_document(run):
    docs = documents(run)
    # One segment, one HTTP and one aws subsegment per invocation.
    assert len(docs) >= 3 * len(INVOCATIONS), "%d documents\n%s" % (len(docs), run.tail())
    problems = ["%s: %s" % (d.get("id"), p) for d in docs for p in validate_segment(d)]
    assert not problems, "\n".join(problems)


def test_trace_ids_are_valid_for_xray(run, request):
    wrapper = (run.layer_dir / "otel-instrument").read_text()
    if run.id_generator is None and "OTEL_PYTHON_ID_GENERATOR" not in wrapper:
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "the layer's wrapper does not default OTEL_PYTHON_ID_GENERATOR to xray (issue 12) "
            "and the emulator passes no X-Ray trace header, so trace ids are random W3C ids")))
    earliest = run.result.get("invoked_at", time.time())
    latest = run.result.get("sigterm_at")
    docs = documents(run)
    assert docs, run.tail()
    problems = [p for p in (trace_id_problem(d.get("trace_id"), earliest, latest) for d in docs) if p]
    assert not problems, "%d of %d trace ids invalid for X-Ray, e.g. %s" % (
        len(problems), len(docs), problems[0])


def test_raising_handler_segment_records_the_error(run):
    failing = [(e, i) for e, i in zip(INVOCATIONS, run.invocations) if e.get("fail")]
    assert failing
    for event, invocation in failing:
        segment = function_segment(run, invocation)
        assert segment.get("fault") is True or segment.get("error") is True, segment
        exceptions = segment.get("cause", {}).get("exceptions", [])
        assert exceptions and exceptions[0].get("type") == "RuntimeError", segment
        assert "(n=%d)" % event["n"] in exceptions[0].get("message", ""), exceptions[0]
        assert children(run, segment), "the failed invocation lost its subsegments"


def test_collector_logged_its_no_freeze_path(run):
    expect.took_the_no_freeze_path(run)


def test_warm_invokes_not_held_by_export(run):
    expect.not_held_by_export(run, DELAY_MS)

