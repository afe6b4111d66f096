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
