"""Init CPU of a cold Python runtime with a layer: from the exec wrapper to the handler module
imported, against the same runtime importing the same handler with no layer ("bare").

A run is one process tree: `/opt/otel-instrument <python> <bootstrap>` (or `<python> <bootstrap>`
for bare), where the bootstrap stands in for Lambda's: the runtime client (awslambdaric) first,
then the handler named by `_HANDLER` through the client's own loader, then an immediate exit.
Its CPU is the children's user+system time that the wait returns. Layers are read-only and
`PYTHONDONTWRITEBYTECODE=1`, as on Lambda. Runs alternate between the subjects, so drift of the
machine's speed falls on all of them alike; figures are medians.

Used by bench/bench.py (`make bench`); run alone as
    python3 bench/coldinit.py --python 3.9 --layer NAME=DIR [--layer NAME=DIR ...] [--runs 7]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "rie"))

from provision import runtime_packages  # noqa: E402
from layerbuild_env import find_interpreter  # noqa: E402

BOOTSTRAP = '''import os, sys
from awslambdaric import bootstrap
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
bootstrap._get_handler(os.environ["_HANDLER"])
os._exit(0)
'''
# The two handler shapes: one that imports nothing, one that imports boto3 at module level (the
# function's own cost, paid with no layer too).
HANDLERS = {
    "imports nothing": "def handler(event, context):\n    return 1\n",
    "imports boto3": "import boto3\n\n\ndef handler(event, context):\n    return 1\n",
}
MODULES = {"imports nothing": "plain", "imports boto3": "withboto"}


class Stage:
    """The task root, the bootstrap and the runtime folder for one Python version."""

    def __init__(self, version, work):
        interp = find_interpreter(version)
        if interp is None:
            raise SystemExit("coldinit: no python%s found" % version)
        self.version = version
        # A venv of the interpreter: the runtime's prefix without whatever .pth files this
        # machine's own site-packages holds (Lambda's has none that import anything).
        venv = Path(work) / ("venv" + version)
        subprocess.run([interp.real, "-m", "venv", "--without-pip", str(venv)], check=True)
        self.python = str(venv / "bin" / ("python" + version))
        self.runtime_dir = str(runtime_packages(interp))
        self.task = Path(work) / "task"
        self.task.mkdir(parents=True, exist_ok=True)
        for shape, source in HANDLERS.items():
            (self.task / (MODULES[shape] + ".py")).write_text(source)
        self.bootstrap = Path(work) / "bootstrap.py"
        self.bootstrap.write_text(BOOTSTRAP)
        self.home = Path(work) / "home"
        self.home.mkdir(exist_ok=True)

    def env(self, shape, extra=None):
        env = {
            "PATH": "%s:/usr/bin:/bin" % os.path.dirname(self.python),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": self.runtime_dir,
            "LAMBDA_RUNTIME_DIR": self.runtime_dir,
            "LAMBDA_TASK_ROOT": str(self.task),
            "PYTHONDONTWRITEBYTECODE": "1",
            "_HANDLER": MODULES[shape] + ".handler",
            "AWS_REGION": "eu-west-1",
            "AWS_LAMBDA_FUNCTION_NAME": "bench-fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/08/[$LATEST]0123456789abcdef",
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python" + self.version,
            # No collector runs here: spans would only be queued (none are made before the handler).
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        }
        env.update(extra or {})
        return env

    def argv(self, layer):
        command = [self.python, str(self.bootstrap)]
        return [str(Path(layer) / "otel-instrument")] + command if layer else command


def cpu_ms(argv, env, cwd):
    """CPU (user+system) of one process tree, in ms, and its wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit("coldinit: %s exited %d:\n%s" % (argv, proc.returncode,
                                                          proc.stderr.decode()[-3000:]))
    if b"Traceback" in proc.stderr or b"rror" in proc.stderr:
        raise SystemExit("coldinit: %s reported an error:\n%s" % (argv, proc.stderr.decode()[-3000:]))
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return cpu, wall


def measure(stage, subjects, runs, shapes=tuple(HANDLERS)):
    """{(subject, shape): [cpu ms...]}, alternating subjects and shapes run by run. `subjects`
    maps a name to (layer dir or None for bare, extra environment)."""
    got = {(name, shape): [] for name in subjects for shape in shapes}
    for _ in range(runs):
        for shape in shapes:
            for name, (layer, extra) in subjects.items():
                cpu, _ = cpu_ms(stage.argv(layer), stage.env(shape, extra), str(stage.task))
                got[(name, shape)].append(cpu)
    return got


def over_bare(got, shapes=tuple(HANDLERS)):
    """{(subject, shape): median CPU over bare's median} for every subject but bare."""
    out = {}
    for (name, shape), values in got.items():
        if name != "bare":
            out[(name, shape)] = statistics.median(values) - statistics.median(got[("bare", shape)])
    return out


def _proc_cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def collector_first_next(layer, runs):
    """The collector extension's time from exec to its first event/next: [(wall ms, cpu ms)].
    A stand-in Extensions API on 127.0.0.1 registers it, accepts its Telemetry API subscription
    and answers that first next with SHUTDOWN; the config is the layer's with free ports."""
    import http.server
    import json
    import socket
    import threading

    def free_port():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    out = []
    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "config.yaml"
        text = (Path(layer) / "collector-config" / "config.yaml").read_text()
        config.write_text(text.replace("localhost:4317", "localhost:%d" % free_port())
                          .replace("localhost:4318", "localhost:%d" % free_port()))
        for _ in range(runs):
            seen = {}

            class Api(http.server.BaseHTTPRequestHandler):
                def _reply(self, body):
                    data = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("Lambda-Extension-Identifier", "bench-extension")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

                def do_POST(self):  # noqa: N802 (register)
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    self._reply({"functionName": "bench-fn", "functionVersion": "$LATEST",
                                 "handler": "plain.handler"})

                def do_PUT(self):  # noqa: N802 (Telemetry API subscription)
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    self._reply({})

                def do_GET(self):  # noqa: N802 (event/next)
                    if "wall" not in seen:
                        seen["wall"] = (time.perf_counter() - seen["start"]) * 1000
                        seen["cpu"] = _proc_cpu_ms(seen["pid"])
                    self._reply({"eventType": "SHUTDOWN", "shutdownReason": "spindown",
                                 "deadlineMs": int(time.time() * 1000) + 2000})

                def log_message(self, *args):
                    pass

            api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
            threading.Thread(target=api.serve_forever, daemon=True).start()
            env = {"PATH": "/usr/bin:/bin", "AWS_REGION": "eu-west-1",
                   "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.server_address[1],
                   "OPENTELEMETRY_COLLECTOR_CONFIG_URI": str(config),
                   "OPENTELEMETRY_EXTENSION_TELEMETRY_LISTENER_HOST": "127.0.0.1"}
            seen["start"] = time.perf_counter()
            proc = subprocess.Popen([str(Path(layer) / "extensions" / "collector")], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            seen["pid"] = proc.pid
            try:
                _, err = proc.communicate(timeout=60)
            finally:
                api.shutdown()
                api.server_close()
            if "wall" not in seen:
                raise SystemExit("coldinit: the collector never asked for an event:\n"
                                 + err.decode()[-2000:])
            out.append((seen["wall"], seen["cpu"]))
    return out


def peer_layer(lock_pins, interp, dest):
    """Upstream's recipe for the same packages: `pip install --target` (cached), the layer's
    wrapper and shim, no valid bytecode (pip's is for the build host and zip tools break its
    timestamps; /opt is read-only, so nothing is written at start either)."""
    import shutil

    sys.path.insert(0, str(ROOT / "tests" / "pylib"))
    from otel_sets import assemble_layer
    from provision import pip_target

    tree = pip_target("bench-peer", lock_pins, interp, "opentelemetry",
                      "the pip-built peer for python%s" % interp.version)
    shutil.rmtree(dest, ignore_errors=True)
    assemble_layer(tree, dest)
    for cache in list(Path(dest).rglob("__pycache__")):
        shutil.rmtree(cache)
    return dest


# How each subject starts: ours through the quick start-up, ours through upstream's sitecustomize,
# the pip-built peer through the opentelemetry-instrument console script as upstream's wrapper.
QUICK = {}
UPSTREAM = {"OTEL_LAMBDA_UPSTREAM_START": "true"}
CONSOLE_SCRIPT = {"OTEL_LAMBDA_UPSTREAM_START": "true", "OTEL_LAMBDA_USE_INSTRUMENT_COMMAND": "true"}


def table(title, version, ours, peer, runs):
    """Prints init CPU over bare for both handler shapes: ours (quick and upstream start-up)
    and the pip-built peer, medians of `runs` alternating runs."""
    with tempfile.TemporaryDirectory() as work:
        stage = Stage(version, work)
        subjects = {"bare": (None, None), "ours, quick start-up": (ours, QUICK),
                    "ours, upstream start-up": (ours, UPSTREAM),
                    "pip-built peer": (peer, CONSOLE_SCRIPT)}
        got = measure(stage, subjects, runs)
    over = over_bare(got)
    print("%s, python%s: init CPU over bare, exec wrapper to handler module imported "
          "(median of %d alternating runs; bare: %s)" % (
              title, version, runs, ", ".join("%s %.0f ms" % (shape, statistics.median(
                  got[("bare", shape)])) for shape in HANDLERS)))
    print("  %-26s %18s %18s" % ("", *HANDLERS))
    for name in subjects:
        if name != "bare":
            print("  %-26s %15.0f ms %15.0f ms" % (name, *(over[(name, s)] for s in HANDLERS)))
    quick = [over[("ours, quick start-up", s)] for s in HANDLERS]
    peer_ms = [over[("pip-built peer", s)] for s in HANDLERS]
    print("  ratio quick/pip-built: %s" % ", ".join("%.2f" % (q / p) for q, p in
                                                     zip(quick, peer_ms)))
    return quick


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True)
    parser.add_argument("--layer", action="append", default=[], help="NAME=DIR[,VAR=VALUE...]")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        stage = Stage(args.python, work)
        subjects = {"bare": (None, None)}
        for item in args.layer:
            name, _, rest = item.partition("=")
            layer, *pairs = rest.split(",")
            subjects[name] = (layer, dict(p.split("=", 1) for p in pairs))
        got = measure(stage, subjects, args.runs)
        for (name, shape), values in sorted(got.items()):
            print("%-28s %-16s median %7.1f ms cpu" % (name, shape, statistics.median(values)))
        for (name, shape), ms in sorted(over_bare(got).items()):
            print("%-28s %-16s over bare %7.1f ms" % (name, shape, ms))


if __name__ == "__main__":
    main()
