"""Sample function of the RIE tests (/var/task/app.py, handler `app.handler`).

Each invocation calls the URL in the event with `requests` (shipped in the layer, as a
dependency of its OTLP exporter) and, when the event asks, lists S3 buckets through the
runtime's boto3 (AWS_ENDPOINT_URL points it at moto). It raises when the event says `fail`,
after both calls, so the failed invocation still has child spans. The result says where each
library was imported from, so the tests can check the runtime's packages were used.
"""

import os

import boto3
import botocore
import requests
import urllib3

_s3 = None


def _bucket_names():
    global _s3
    if _s3 is None:
        _s3 = boto3.client("s3")
    return sorted(bucket["Name"] for bucket in _s3.list_buckets()["Buckets"])


def handler(event, context):
    reply = requests.get(event["target_url"], params={"n": event.get("n")}, timeout=10)
    buckets = _bucket_names() if event.get("s3") else None
    if event.get("fail"):
        raise RuntimeError("sample function failed on purpose (n=%s)" % event.get("n"))
    return {
        "n": event.get("n"),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "target_status": reply.status_code,
        "target_body": reply.text,
        "buckets": buckets,
        "handler_env": os.environ.get("_HANDLER"),
        "modules": {
            name: {"file": module.__file__, "version": getattr(module, "__version__", None)}
            for name, module in (("boto3", boto3), ("botocore", botocore),
                                 ("urllib3", urllib3), ("requests", requests))
        },
    }
