"""Fixtures for running the layer's exec wrapper and handler shim from a layer tree.

The layer tree comes from the environment:
  LAYERBUILD_LAYER_DIR  an unpacked layer folder (holding otel-instrument and python/)
  LAYERBUILD_LAYER_ZIP  a layer zip, unpacked here with its unix modes
Without either, the tests that need a tree are skipped.

Runtime interpreters (python3.8, python3.9) come from the finder the tests share with the
binary's rules (tests/pylib/layerbuild_env.py): LAYERBUILD_PYTHON38 / LAYERBUILD_PYTHON39,
then python3.X in PATH, then pyenv's installs.

The runtime command's own PYTHONPATH stands in for Lambda's /var/runtime: this folder's
fake_runtime/ plus the packages Lambda's runtime ships and the layer leaves out (urllib3),
from LAYERBUILD_RUNTIME_PACKAGES or fetched once with pip into the layerbuild cache root
(LAYERBUILD_CACHE, else $XDG_CACHE_HOME/layerbuild, else ~/.cache/layerbuild).
"""

import http.server
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pylib"))

from layerbuild_env import cache_root, find_interpreter, skip_or_fail, where_looked  # noqa: E402

HERE = Path(__file__).resolve().parent
FAKE_RUNTIME = HERE / "fake_runtime"
FAKE_TASK = HERE / "fake_task"
RUNTIME_VERSIONS = ("3.8", "3.9")

# Values the tests give the Lambda variables.
LAMBDA_ENV = {
    "AWS_REGION": "eu-west-1",
    "AWS_LAMBDA_FUNCTION_NAME": "orders-fn",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2024/05/01/[$LATEST]0123456789abcdef",
}


# --------------------------------------------------------------------------- layer tree


def _unzip_with_modes(zip_path: Path, dest: Path) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            mode = (info.external_attr >> 16) & 0xFFFF
            target = dest / info.filename
            if stat.S_ISLNK(mode):
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(archive.read(info).decode(), target)
                continue
            archive.extract(info, dest)
            if mode & 0o7777:
                os.chmod(target, mode & 0o7777)


@pytest.fixture(scope="session")
def layer_dir(tmp_path_factory) -> Path:
    folder = os.environ.get("LAYERBUILD_LAYER_DIR")
    if folder:
        path = Path(folder).resolve()
        if not (path / "otel-instrument").is_file():
            pytest.fail("LAYERBUILD_LAYER_DIR=%s has no otel-instrument" % folder)
        return path
    archive = os.environ.get("LAYERBUILD_LAYER_ZIP")
    if archive:
        dest = tmp_path_factory.mktemp("layer")
        _unzip_with_modes(Path(archive), dest)
        return dest
    pytest.skip(
        "no layer tree: set LAYERBUILD_LAYER_DIR to an unpacked layer folder or "
        "LAYERBUILD_LAYER_ZIP to a layer zip (e.g. the output of `layerbuild build`)"
    )


# ------------------------------------------------------------------------- interpreters


@dataclass
class Runtime:
    version: str  # "3.9"
    python: str  # the interpreter as the runtime command names it (…/bin/python3.X)
    bin_dir: str  # goes first in PATH, like /var/lang/bin on Lambda


_runtime_cache: Dict[str, Optional[Runtime]] = {}


def _find_runtime(version: str, tmp_path_factory) -> Optional[Runtime]:
    if version in _runtime_cache:
        return _runtime_cache[version]
    runtime = None
    interp = find_interpreter(version)
    if interp:
        real = interp.real
        bin_dir = os.path.dirname(real)
        named = os.path.join(bin_dir, "python" + version)
        python = named if os.path.realpath(named) == real else real
        if os.path.realpath(os.path.join(bin_dir, "python3")) != real:
            # Make a bin dir where python3 is this interpreter, as /var/lang/bin is.
            own = tmp_path_factory.mktemp("bin-python" + version)
            os.symlink(real, own / "python3")
            os.symlink(real, own / ("python" + version))
            bin_dir, python = str(own), str(own / ("python" + version))
        runtime = Runtime(version, python, bin_dir)
    _runtime_cache[version] = runtime
    return runtime


@pytest.fixture(scope="session", params=RUNTIME_VERSIONS, ids=lambda v: "py" + v)
def runtime(request, tmp_path_factory) -> Runtime:
    version = request.param
    found = _find_runtime(version, tmp_path_factory)
    if found is None:
        pytest.skip("no working python%s: looked at %s" % (version, where_looked(version)))
    return found


# ------------------------------------------------------- what Lambda's runtime provides

# Lambda's python3.8/3.9 runtimes ship boto3, botocore and urllib3 (1.26) in /var/runtime,
# so the layer leaves urllib3 out (spec: exclude urllib3*) and relies on the runtime's.
RUNTIME_PROVIDED = "urllib3<2"


def _layer_has(layer: Path, name: str, version: str) -> bool:
    return any((folder / name).is_dir() for folder in (
        layer / "python", layer / "python" / "lib" / ("python" + version) / "site-packages"))


def _fetch_runtime_packages(version: str, tmp_path_factory) -> Optional[str]:
    cache = cache_root() / "python-test-runtime" / ("python" + version)
    if (cache / "urllib3").is_dir():
        return str(cache)
    staging = tmp_path_factory.mktemp("runtime-packages")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "--python-version", version,
         "--implementation", "cp", "--target", str(staging), RUNTIME_PROVIDED],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 or not (staging / "urllib3").is_dir():
        return None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, cache)
        return str(cache)
    except OSError:
        return str(staging)


@pytest.fixture(scope="session")
def runtime_path(runtime, layer_dir, tmp_path_factory) -> List[str]:
    """The runtime's own PYTHONPATH entries, like /var/runtime on Lambda."""
    entries = [str(FAKE_RUNTIME)]
    override = os.environ.get("LAYERBUILD_RUNTIME_PACKAGES")
    if override:
        return entries + [override]
    packages = _fetch_runtime_packages(runtime.version, tmp_path_factory)
    if packages:
        return entries + [packages]
    if _layer_has(layer_dir, "urllib3", runtime.version):
        return entries
    pytest.skip(
        "the layer leaves out urllib3 (Lambda's runtime ships it) and pip could not fetch "
        "%r for python%s: set LAYERBUILD_RUNTIME_PACKAGES to a folder holding urllib3 1.26 "
        "for that Python" % (RUNTIME_PROVIDED, runtime.version)
    )


# ---------------------------------------------------------------------------- OTLP sink


class OtlpSink:
    """A local OTLP/HTTP endpoint that accepts and records every POST."""

    def __init__(self):
        self.requests: List[tuple] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (name fixed by the base class)
                length = int(self.headers.get("Content-Length") or 0)
                sink.requests.append((self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> List[bytes]:
        return [body for got, body in self.requests if got == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def otlp_sink():
    sink = OtlpSink()
    yield sink
    sink.close()


# ------------------------------------------------------------------------------ running


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    record: Optional[dict]
    env_in: Dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> Dict[str, str]:
        assert self.record is not None, "runtime command did not run:\n" + self.stderr
        return self.record["env"]


def base_env(runtime: Runtime, home: Path, runtime_path: List[str]) -> Dict[str, str]:
    """A Lambda-like environment: the runtime's bin dir first in PATH, its own PYTHONPATH."""
    env = {
        "PATH": "%s:/usr/local/bin:/usr/bin:/bin" % runtime.bin_dir,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LAMBDA_TASK_ROOT": str(FAKE_TASK),
        "LAMBDA_RUNTIME_DIR": str(FAKE_RUNTIME),
        "PYTHONPATH": ":".join(runtime_path),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python" + runtime.version,
        "_HANDLER": "app.handler",
        # keep the layer tree untouched (it is read-only on Lambda)
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(LAMBDA_ENV)
    return env


def run_wrapper(wrapper: Path, command: List[str], env: Dict[str, str], out: Path,
                cwd: Path = FAKE_TASK, shell: Optional[str] = None) -> Run:
    env = dict(env)
    env["LBTEST_OUT"] = str(out)
    if out.exists():
        out.unlink()
    argv = ([shell] if shell else []) + [str(wrapper)] + command
    proc = subprocess.run(argv, env=env, cwd=str(cwd), capture_output=True, text=True,
                          timeout=180)
    record = json.loads(out.read_text()) if out.exists() else None
    return Run(proc.returncode, proc.stdout, proc.stderr, record, env)


@pytest.fixture
def run_layer(layer_dir, runtime, runtime_path, tmp_path, otlp_sink):
    """Run the layer's otel-instrument with the fake runtime command.

    run_layer(extra_env, args=[...], invoke=False, event=None, drop=[...], shell=None)
    """

    def run(extra_env=None, args=(), invoke=False, event=None, drop=(), shell=None,
            command=None):
        env = base_env(runtime, tmp_path, runtime_path)
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_sink.url
        if invoke:
            env["LBTEST_INVOKE"] = "1"
            env["LBTEST_EVENT"] = json.dumps(event if event is not None else {"n": 1})
        for name in drop:
            env.pop(name, None)
        env.update(extra_env or {})
        if command is None:
            command = [runtime.python, str(FAKE_RUNTIME / "bootstrap.py")]
        return run_wrapper(layer_dir / "otel-instrument", list(command) + list(args), env,
                           tmp_path / "record.json", shell=shell)

    return run


# ------------------------------------------------------------------------- shared helpers


# Skip for a missing environment, or fail when LAYERBUILD_REQUIRE_ALL=1 (CI): the one switch.
missing = skip_or_fail


def console_spans(stdout):
    """The spans the SDK's console exporter printed (one JSON object each), in order."""
    spans, decoder, at = [], json.JSONDecoder(), 0
    while True:
        at = stdout.find("{", at)
        if at < 0:
            return spans
        try:
            span, end = decoder.raw_decode(stdout, at)
        except ValueError:
            at += 1
            continue
        if isinstance(span, dict) and "context" in span and "kind" in span:
            spans.append(span)
        at = end
