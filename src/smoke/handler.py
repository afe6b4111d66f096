"""Sample function of `layerbuild smoke`: one outgoing HTTP call, then a result smoke can check.

It calls the URL in the event with `requests`: the layer ships requests (a dependency of the
OTLP HTTP exporter) and its instrumentation, so the call yields a CLIENT span; urllib has no
instrumentation in the layer. Without requests it falls back to urllib and says so.
"""

import urllib.request


# smoke checks that this line reaches its receiver as a log record of the invocation.
LOG_LINE = "layerbuild smoke: the handler ran"


def handler(event, context):
    # Flushed at once: Lambda's runtime writes stdout unbuffered, this bootstrap's pipe would not.
    print(LOG_LINE, flush=True)
    url = event["target_url"]
    try:
        import requests
    except ImportError as exc:
        with urllib.request.urlopen(url, timeout=10) as resp:
            status, body = resp.status, resp.read().decode()
        client = "urllib (requests not importable: %s)" % exc
    else:
        resp = requests.get(url, timeout=10)
        status, body, client = resp.status_code, resp.text, "requests"
    return {
        "smoke": "ok",
        "request_id": context.aws_request_id,
        "target_status": status,
        "target_body": body,
        "client": client,
    }
