"""A function that uses every library the differential tests can run without a server of
their own (HTTP goes to the test's local server, boto3 to moto). Imported by the runtime as
libs.handler; LBTEST_HTTP is the local server's URL, LBTEST_MOTO moto's."""
import os
import sqlite3

import requests  # imported at module level, as functions do; others inside the handler
import urllib3


def _http(url):
    requests.get(url + "/requests")
    urllib3.PoolManager().request("GET", url + "/urllib3")
    import httpx

    httpx.get(url + "/httpx")
    import asyncio

    import aiohttp

    async def fetch():
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/aiohttp") as response:
                await response.read()

    asyncio.run(fetch())


def _boto(url):
    import boto3

    s3 = boto3.client("s3", endpoint_url=url, region_name="eu-west-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="lbtest-bucket",
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.list_buckets()
    s3.delete_bucket(Bucket="lbtest-bucket")  # the other start-up's run creates it again


def _sqlite():
    db = sqlite3.connect(":memory:")
    db.execute("create table t (x integer)")
    db.execute("insert into t values (1)")
    db.execute("select x from t").fetchall()


def _jinja():
    import jinja2

    jinja2.Environment().from_string("hello {{ name }}").render(name="lbtest")


def _wsgi():
    from wsgiref.util import setup_testing_defaults

    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    environ = {}
    setup_testing_defaults(environ)
    list(OpenTelemetryMiddleware(app)(environ, lambda *args: None))


def handler(event, context):
    _http(os.environ["LBTEST_HTTP"])
    _boto(os.environ["LBTEST_MOTO"])
    _sqlite()
    _jinja()
    _wsgi()
    return {"ok": True}
