"""OpenTelemetry package sets installed the upstream way (`pip install --target`), one per
opentelemetry-instrumentation version the layer's wrapper takes its shortcut for, so that the
tests can run the wrapper and the shim against each version's real `opentelemetry-instrument`.

Each set is pinned whole and installed without dependency resolution, cached under the layerbuild
cache root like the RIE test's runtime packages (tests/rie/provision.py installs them).
"""
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "rie"))

from provision import Interpreter, pip_target  # noqa: E402

DEFAULT_LOCK = ROOT / "layer-src" / "requirements.txt"
# Upstream's recipe drops these: Lambda's runtime ships its own.
RUNTIME_OWNED = ("boto", "urllib3")

# The current layer's set (OpenTelemetry 1.45.1 / contrib 0.66b1) as pip resolves the spec's
# top-level packages (distro, OTLP HTTP and gRPC exporters, aws-lambda instrumentation, X-Ray
# parts), plus the 1.20.0 set's library instrumentations that still exist and urllib3, httpx and
# boto3sqs, installed without their libraries.
CURRENT_INSTRUMENTATIONS = (
    "aiohttp-client", "asgi", "asyncpg", "boto3sqs", "botocore", "celery", "dbapi", "django",
    "falcon", "fastapi", "flask", "grpc", "httpx", "jinja2", "mysql", "psycopg2", "pymemcache",
    "pymongo", "pymysql", "pyramid", "redis", "requests", "sqlalchemy", "sqlite3", "starlette",
    "tornado", "urllib3", "wsgi",
)
CURRENT_0_66B1 = (
    "asgiref==3.13.0", "certifi==2026.10.19.post1", "charset-normalizer==3.5.3",
    "googleapis-common-protos==1.76.0", "grpcio==1.85.4", "idna==3.21",
    "opentelemetry-api==1.45.1", "opentelemetry-distro==0.66b1",
    "opentelemetry-exporter-http-transport==0.66b1", "opentelemetry-exporter-otlp-common==0.66b1",
    "opentelemetry-exporter-otlp-proto-common==1.45.1",
    "opentelemetry-exporter-otlp-proto-grpc==1.45.1",
    "opentelemetry-exporter-otlp-proto-http==1.45.1", "opentelemetry-instrumentation==0.66b1",
    "opentelemetry-instrumentation-aws-lambda==0.66b1", "opentelemetry-propagator-aws-xray==1.0.2",
    "opentelemetry-proto==1.45.1", "opentelemetry-sdk==1.45.1",
    "opentelemetry-sdk-extension-aws==2.1.0", "opentelemetry-semantic-conventions==0.66b1",
    "opentelemetry-util-http==0.66b1", "packaging==26.4", "protobuf==7.36.2", "requests==2.34.2",
    "typing-extensions==4.16.0", "wrapt==2.5.2",
) + tuple("opentelemetry-instrumentation-%s==0.66b1" % n for n in CURRENT_INSTRUMENTATIONS)
# opentelemetry-instrumentation 0.66b2 alone: what its console script needs to run.
INSTRUMENT_0_66B2 = (
    "opentelemetry-api==1.45.2", "opentelemetry-instrumentation==0.66b2",
    "opentelemetry-propagator-aws-xray==1.0.2", "opentelemetry-semantic-conventions==0.66b2",
    "packaging==26.4",
    "typing-extensions==4.16.0", "wrapt==2.5.2",
)


@dataclass(frozen=True)
class OtelSet:
    instrumentation: str  # opentelemetry-instrumentation's version: "0.41b0"
    python: str  # the runtime it is installed for: "3.9"
    full: bool  # holds the SDK, distro and aws-lambda instrumentation (can run the shim)

    def requirements(self) -> Tuple[str, ...]:
        if self.instrumentation == "0.41b0":
            return lock_pins(DEFAULT_LOCK)
        if self.instrumentation == "0.66b1":
            return CURRENT_0_66B1
        return INSTRUMENT_0_66B2


SETS = (
    OtelSet("0.41b0", "3.9", True),
    OtelSet("0.66b1", "3.12", True),
    OtelSet("0.66b2", "3.12", False),
)


def lock_pins(lock: Path) -> Tuple[str, ...]:
    """`name==version` of every package in a `layerbuild lock` file, minus the runtime's own."""
    pins = []
    for line in lock.read_text().splitlines():
        pin = line.split(" ")[0]
        if "==" in pin and not pin.startswith("#") and not pin.startswith(RUNTIME_OWNED):
            pins.append(pin)
    return tuple(pins)


def otel_tree(otel_set: OtelSet, interp: Interpreter) -> Path:
    """The set installed with `interp`'s pip (cached); holds bin/opentelemetry-instrument."""
    return pip_target("otel", otel_set.requirements(), interp, "opentelemetry",
                      "OpenTelemetry contrib %s for python%s"
                      % (otel_set.instrumentation, interp.version))


def assemble_layer(tree: Path, dest: Path) -> Path:
    """A layer folder at `dest`: the repository's wrapper, shim and quick start-up over a copy
    of `tree`."""
    dest.mkdir(parents=True)
    shutil.copytree(tree, dest / "python", symlinks=True)
    shutil.copy2(ROOT / "layer-src" / "otel_wrapper.py", dest / "python" / "otel_wrapper.py")
    shutil.copytree(ROOT / "layer-src" / "otel_lambda_start", dest / "python" / "otel_lambda_start",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "layer-src" / "otel-instrument", dest / "otel-instrument")
    os.chmod(dest / "otel-instrument", 0o755)
    return dest
