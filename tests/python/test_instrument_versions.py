"""The wrapper and shim against each opentelemetry-instrumentation version they support.

For every version in the wrapper's shortcut list (otel-instrument: shortcut_versions), a layer
made of that version's pip-installed set (tests/pylib/otel_sets.py) shows that the shortcut
starts the runtime exactly as the version's own `opentelemetry-instrument` console script does,
that another version gets the console script, and (for the sets with the SDK) that the shim
leaves one instrumentation of the handler: no "already instrumented" warning, one span.
"""
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import FAKE_RUNTIME, FAKE_TASK, _fetch_runtime_packages, _find_runtime, base_env, \
    console_spans, missing, run_wrapper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pylib"))

from layerbuild_env import find_interpreter, where_looked  # noqa: E402
from otel_sets import SETS, assemble_layer, otel_tree  # noqa: E402

WRAPPER = Path(__file__).resolve().parent.parent.parent / "layer-src" / "otel-instrument"
ARGS = ["plain", "two words", "", "$HOME", "--version", "-c", "line1\nline2"]


def test_every_shortcut_version_has_a_set():
    listed = re.search(r'^shortcut_versions="([^"]*)"', WRAPPER.read_text(), re.M)
    assert listed, "otel-instrument has no shortcut_versions line"
    assert sorted(listed.group(1).split()) == sorted(s.instrumentation for s in SETS)


class VersionLayer:
    def __init__(self, otel_set, root, runtime, runtime_path):
        self.set = otel_set
        self.root = root
        self.runtime = runtime
        self.runtime_path = runtime_path

    def run(self, tmp_path, name, extra_env=None, args=(), invoke=False, cwd=FAKE_TASK):
        """Run the layer's wrapper with a logging interpreter; return (Run, interpreter starts)."""
        shim = tmp_path / ("python" + self.runtime.version)
        if not shim.exists():
            shim.write_text('#!/bin/sh\nprintf "%%s\\n" "$1" >> "$LBTEST_STARTS"\nexec "%s" "$@"\n'
                            % os.path.realpath(self.runtime.python))
            shim.chmod(0o755)
        env = base_env(self.runtime, tmp_path, self.runtime_path)
        env["LBTEST_STARTS"] = str(tmp_path / (name + ".starts"))
        env["OTEL_TRACES_EXPORTER"] = "console"
        if invoke:
            env["LBTEST_INVOKE"] = "1"
            env["LBTEST_EVENT"] = json.dumps({"n": 1})
        env.update(extra_env or {})
        run = run_wrapper(self.root / "otel-instrument",
                          [str(shim), str(FAKE_RUNTIME / "bootstrap.py")] + list(args),
                          env, tmp_path / (name + ".json"), cwd=cwd)
        assert run.record is not None, run.stderr
        starts = (tmp_path / (name + ".starts")).read_text().splitlines()
        return run, starts


_layers = {}


def _layer(otel_set, tmp_path_factory):
    if otel_set in _layers:
        return _layers[otel_set]
    interp = find_interpreter(otel_set.python)
    if interp is None:
        missing("no python%s: looked at %s" % (otel_set.python, where_looked(otel_set.python)))
    runtime = _find_runtime(otel_set.python, tmp_path_factory)
    packages = _fetch_runtime_packages(otel_set.python, tmp_path_factory)
    if packages is None:
        missing("pip could not fetch the runtime's urllib3 for python%s" % otel_set.python)
    tree = otel_tree(otel_set, interp)
    root = assemble_layer(tree, tmp_path_factory.mktemp("layer-" + otel_set.instrumentation)
                          / "opt")
    _layers[otel_set] = VersionLayer(otel_set, root, runtime, [str(FAKE_RUNTIME), packages])
    return _layers[otel_set]


def _set_id(otel_set):
    return "%s-py%s" % (otel_set.instrumentation, otel_set.python)


@pytest.fixture(scope="module", params=SETS, ids=_set_id)
def version_layer(request, tmp_path_factory):
    return _layer(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=[s for s in SETS if s.full], ids=_set_id)
def sdk_layer(request, tmp_path_factory):
    """A layer of a set that holds the SDK and the aws-lambda instrumentation."""
    return _layer(request.param, tmp_path_factory)


def _outcome(run):
    env = dict(run.record["env"])
    for name in ("OTEL_LAMBDA_USE_INSTRUMENT_COMMAND", "OTEL_LAMBDA_UPSTREAM_START", "LBTEST_OUT",
                 "LBTEST_STARTS"):
        env.pop(name, None)
    return {"argv": run.record["argv"], "executable": run.record["executable"],
            "sys_path": run.record["sys_path"], "env": env,
            "sitecustomize": run.record["otel"]["sitecustomize"]}


@pytest.mark.parametrize("pythonpath", ["lambda-like", "empty", "cwd-there"])
def test_shortcut_matches_the_console_script(version_layer, tmp_path, pythonpath):
    entries = {"lambda-like": version_layer.runtime_path, "empty": [],
               "cwd-there": [str(FAKE_TASK)] + version_layer.runtime_path}[pythonpath]
    extra = {"PYTHONPATH": ":".join(entries)}
    fast, fast_starts = version_layer.run(
        tmp_path, "shortcut", dict(extra, OTEL_LAMBDA_UPSTREAM_START="true"), ARGS)
    real, real_starts = version_layer.run(
        tmp_path, "console", dict(extra, OTEL_LAMBDA_USE_INSTRUMENT_COMMAND="true"), ARGS)
    assert len(real_starts) == 2 and "bin/opentelemetry-instrument" in real_starts[0], real_starts
    assert len(fast_starts) == 1, fast_starts
    assert _outcome(fast) == _outcome(real)
    auto = str(version_layer.root / "python" / "opentelemetry" / "instrumentation" /
               "auto_instrumentation")
    assert fast.record["sys_path"][1] == auto


def test_other_version_gets_the_console_script(version_layer, tmp_path):
    # The same tree under another version's name: a run() the wrapper was not compared with.
    root = tmp_path / "opt"
    shutil.copytree(version_layer.root, root, symlinks=True)
    info = root / "python" / ("opentelemetry_instrumentation-%s.dist-info"
                              % version_layer.set.instrumentation)
    info.rename(info.with_name("opentelemetry_instrumentation-0.99b0.dist-info"))
    other = VersionLayer(version_layer.set, root, version_layer.runtime,
                         version_layer.runtime_path)
    run, starts = other.run(tmp_path, "other", args=ARGS)
    assert len(starts) == 2 and "bin/opentelemetry-instrument" in starts[0], starts
    assert run.record["argv"] == ARGS


def _invocation_spans(stdout):
    """The console exporter's spans of the invocation's request id (0.41b0 names the
    attribute faas.execution, 0.66b1 faas.invocation_id)."""
    return [span for span in console_spans(stdout)
            if "req-0001" in (span.get("attributes") or {}).values()]


@pytest.mark.parametrize("handler", ["app.handler", "dir/sub/module.func"])
def test_shim_instruments_the_handler_once(sdk_layer, tmp_path, handler):
    run, _ = sdk_layer.run(tmp_path, "invoke", {"_HANDLER": handler}, invoke=True)
    assert "init_error" not in run.record, run.record.get("init_error")
    assert "result" in run.record, run.record.get("invoke_error")
    assert "already instrumented" not in run.stderr, run.stderr
    spans = _invocation_spans(run.stdout)
    assert len(spans) == 1, run.stdout
    assert spans[0]["kind"] == "SpanKind.SERVER"
    # 0.41b0 names the span after the handler, 0.66b1 after the function.
    assert spans[0]["name"] in (handler.replace("/", "."), "orders-fn")
