"""The exec wrapper (otel-instrument): environment, PYTHONPATH, handler swap, argv."""

import os
import shutil
import stat
import sys

import pytest

from conftest import FAKE_RUNTIME, FAKE_TASK, LAMBDA_ENV, base_env, run_wrapper

EXPECTED_LAMBDA_ATTRS = (
    "cloud.region=eu-west-1,cloud.provider=aws,faas.name=orders-fn,"
    "faas.version=$LATEST,faas.instance=2024/05/01/[$LATEST]0123456789abcdef"
)


def test_tree_has_wrapper_and_shim(layer_dir):
    wrapper = layer_dir / "otel-instrument"
    mode = stat.S_IMODE(wrapper.stat().st_mode)
    assert mode == 0o755, oct(mode)
    assert (layer_dir / "python" / "otel_wrapper.py").is_file()
    assert (layer_dir / "python" / "bin" / "opentelemetry-instrument").is_file()
    with open(wrapper, "rb") as script:
        assert script.readline().strip() == b"#!/bin/sh"


def test_defaults(run_layer, layer_dir, runtime):
    run = run_layer()
    assert run.returncode == 0, run.stderr
    env = run.env
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"] == "orders-fn"
    assert env["OTEL_PROPAGATORS"] == "tracecontext,baggage,xray"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_METRICS_EXPORTER"] == "none"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == EXPECTED_LAMBDA_ATTRS
    assert env["ORIG_HANDLER"] == "app.handler"
    assert env["_HANDLER"] == "otel_wrapper.lambda_handler"

    # It ran under opentelemetry-instrument with the runtime's own interpreter.
    record = run.record
    assert record["version"] == runtime.version
    assert record["executable"] == os.path.realpath(runtime.python)
    # ... through the layer's quick start-up (the same telemetry as upstream's sitecustomize).
    sitecustomize = record["otel"]["sitecustomize"]
    assert sitecustomize == str(layer_dir / "python" / "otel_lambda_start" / "sitecustomize.py")

    # ... and the SDK picked the defaults up.
    otel = record["otel"]
    assert otel["tracer_provider"] == "opentelemetry.sdk.trace.TracerProvider"
    resource = otel["resource"]
    assert resource["service.name"] == "orders-fn"
    assert resource["cloud.provider"] == "aws"
    assert resource["cloud.region"] == "eu-west-1"
    assert resource["faas.name"] == "orders-fn"
    assert resource["faas.version"] == "$LATEST"
    assert resource["faas.instance"] == LAMBDA_ENV["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert "X-Amzn-Trace-Id" in otel["propagator_fields"]
    assert "traceparent" in otel["propagator_fields"]
    assert "baggage" in otel["propagator_fields"]


def test_pythonpath_runtime_first_then_layer(run_layer, layer_dir, runtime_path):
    run = run_layer()
    assert run.returncode == 0, run.stderr
    entries = run.env["PYTHONPATH"].split(":")
    layer_python = str(layer_dir / "python")
    assert layer_python in entries
    for own in runtime_path:
        assert entries.index(own) < entries.index(layer_python)
    assert "" not in entries  # an empty entry would put the cwd on sys.path


def test_id_generator_defaults_to_xray(run_layer):
    run = run_layer()
    assert run.returncode == 0, run.stderr
    assert run.env["OTEL_PYTHON_ID_GENERATOR"] == "xray"
    assert run.record["otel"]["id_generator"].endswith(".AwsXRayIdGenerator")

    run = run_layer({"OTEL_PYTHON_ID_GENERATOR": "random"})
    assert run.returncode == 0, run.stderr
    assert run.env["OTEL_PYTHON_ID_GENERATOR"] == "random"
    assert run.record["otel"]["id_generator"].endswith(".RandomIdGenerator")

    run = run_layer({"OTEL_PYTHON_ID_GENERATOR": ""})
    assert run.env["OTEL_PYTHON_ID_GENERATOR"] == "xray"


@pytest.mark.parametrize("already", ["absent", "later"])
def test_lambda_runtime_dir_goes_first(run_layer, layer_dir, runtime_path, tmp_path, already):
    # A function that sets PYTHONPATH replaces Lambda's default, which holds
    # LAMBDA_RUNTIME_DIR; the wrapper puts it first again (after the instrumentation's
    # own folder and the working directory, which opentelemetry-instrument puts ahead).
    runtime_dir = tmp_path / "var-runtime"
    (runtime_dir / "lbtest_runtime_marker").mkdir(parents=True)
    (runtime_dir / "lbtest_runtime_marker" / "__init__.py").write_text("")
    own = str(tmp_path / "function-libs")
    entries = [own] + runtime_path + ([str(runtime_dir)] if already == "later" else [])
    run = run_layer({"LAMBDA_RUNTIME_DIR": str(runtime_dir), "PYTHONPATH": ":".join(entries)})
    assert run.returncode == 0, run.stderr
    path = run.env["PYTHONPATH"].split(":")
    assert path.count(str(runtime_dir)) == 1, path
    first_own = min(path.index(e) for e in [own] + runtime_path)
    assert path.index(str(runtime_dir)) < first_own, path
    assert path.index(str(runtime_dir)) < path.index(str(layer_dir / "python")), path
    sys_path = run.record["sys_path"]
    assert sys_path.index(str(runtime_dir)) < sys_path.index(own), sys_path


def test_overrides_are_kept(run_layer):
    run = run_layer({
        "OTEL_SERVICE_NAME": "my-service",
        "OTEL_PROPAGATORS": "tracecontext",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_RESOURCE_ATTRIBUTES": "team=payments,cloud.region=override-1",
    })
    assert run.returncode == 0, run.stderr
    env = run.env
    assert env["OTEL_SERVICE_NAME"] == "my-service"
    assert env["OTEL_PROPAGATORS"] == "tracecontext"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["OTEL_TRACES_EXPORTER"] == "console"
    assert env["OTEL_METRICS_EXPORTER"] == "console"
    # The function's own attributes come last, so they win in the SDK.
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == (
        EXPECTED_LAMBDA_ATTRS + ",team=payments,cloud.region=override-1"
    )
    otel = run.record["otel"]
    assert otel["resource"]["service.name"] == "my-service"
    assert otel["resource"]["team"] == "payments"
    assert otel["resource"]["cloud.region"] == "override-1"
    assert otel["resource"]["faas.name"] == "orders-fn"
    assert otel["propagator_fields"] == ["traceparent", "tracestate"]


def test_missing_lambda_variables_leave_no_empty_attributes(run_layer):
    run = run_layer(drop=["AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_STREAM_NAME",
                          "AWS_LAMBDA_FUNCTION_NAME"])
    assert run.returncode == 0, run.stderr
    assert run.env["OTEL_RESOURCE_ATTRIBUTES"] == "cloud.region=eu-west-1,cloud.provider=aws"
    assert "OTEL_SERVICE_NAME" not in run.env


def test_empty_values_count_as_unset(run_layer):
    run = run_layer({"OTEL_SERVICE_NAME": "", "OTEL_PROPAGATORS": "",
                     "OTEL_EXPORTER_OTLP_PROTOCOL": "", "OTEL_METRICS_EXPORTER": ""})
    assert run.returncode == 0, run.stderr
    env = run.env
    assert env["OTEL_SERVICE_NAME"] == "orders-fn"
    assert env["OTEL_PROPAGATORS"] == "tracecontext,baggage,xray"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_METRICS_EXPORTER"] == "none"


def test_handler_swap_keeps_path_form(run_layer):
    run = run_layer({"_HANDLER": "dir/sub/module.func"})
    assert run.returncode == 0, run.stderr
    assert run.env["ORIG_HANDLER"] == "dir/sub/module.func"
    assert run.env["_HANDLER"] == "otel_wrapper.lambda_handler"


TRICKY_ARGS = [
    "plain",
    "two words",
    "  leading and trailing  ",
    "it's",
    'say "hi"',
    "",
    "$HOME",
    "*",
    "back\\slash",
    "line1\nline2",
    "--version",
    "-c",
    "tab\there",
]

SHELLS = [None] + [name for name in ("dash", "bash") if shutil.which(name)]


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s or "shebang")
def test_arguments_pass_through_intact(run_layer, shell):
    run = run_layer(args=TRICKY_ARGS, shell=shell)
    assert run.returncode == 0, run.stderr
    assert run.record["argv"] == TRICKY_ARGS


def test_runtime_command_not_python_uses_python3_from_path(run_layer, runtime, tmp_path):
    # A runtime command that is not an interpreter (e.g. a bootstrap shell script): the
    # wrapper must use python3 from PATH, which is the runtime's (its bin dir is first).
    script = tmp_path / "bootstrap"
    script.write_text('#!/bin/sh\nexec python3 "%s" "$@"\n' % (FAKE_RUNTIME / "bootstrap.py"))
    script.chmod(0o755)
    run = run_layer(command=[str(script)], args=["x y"])
    assert run.returncode == 0, run.stderr
    assert run.record["argv"] == ["x y"]
    assert run.record["version"] == runtime.version
    sitecustomize = run.record["otel"]["sitecustomize"]
    assert sitecustomize and "otel_lambda_start" in sitecustomize


def test_no_arguments_is_a_usage_error(layer_dir, runtime, runtime_path, tmp_path):
    env = base_env(runtime, tmp_path, runtime_path)
    run = run_wrapper(layer_dir / "otel-instrument", [], env, tmp_path / "out.json")
    assert run.returncode != 0
    assert "no runtime command" in run.stderr


# ----------------------------------------------------------- synthetic layer: path logic


def _synthetic_layer(layer_dir, tmp_path, versions):
    """A layer with the real otel-instrument and a pass-through opentelemetry-instrument."""
    root = tmp_path / "opt"
    (root / "python" / "bin").mkdir(parents=True)
    shutil.copy2(layer_dir / "otel-instrument", root / "otel-instrument")
    passthrough = root / "python" / "bin" / "opentelemetry-instrument"
    passthrough.write_text(
        "import os, sys\n"
        "os.environ['LBTEST_INSTRUMENT_PYTHON'] = os.path.realpath(sys.executable)\n"
        "os.execv(sys.argv[1], sys.argv[1:])\n"
    )
    for version in versions:
        (root / "python" / "lib" / ("python" + version) / "site-packages").mkdir(parents=True)
    return root


@pytest.mark.parametrize("named", ["python3.X", "python"], ids=["versioned-name", "plain-name"])
def test_per_runtime_site_packages(layer_dir, runtime, runtime_path, tmp_path, named):
    other = "3.9" if runtime.version == "3.8" else "3.8"
    root = _synthetic_layer(layer_dir, tmp_path, [runtime.version, other])
    if named == "python":
        # an interpreter whose file name has no version: the wrapper must ask it
        interpreter = tmp_path / "bin" / "python"
        interpreter.parent.mkdir()
        os.symlink(os.path.realpath(runtime.python), interpreter)
    else:
        interpreter = runtime.python
    env = base_env(runtime, tmp_path, runtime_path)
    run = run_wrapper(root / "otel-instrument",
                      [str(interpreter), str(FAKE_RUNTIME / "bootstrap.py")],
                      env, tmp_path / "out.json")
    assert run.record is not None, run.stderr
    entries = run.record["env"]["PYTHONPATH"].split(":")
    own = str(root / "python" / "lib" / ("python" + runtime.version) / "site-packages")
    assert entries == runtime_path + [own, str(root / "python")]
    assert run.record["env"]["LBTEST_INSTRUMENT_PYTHON"] == os.path.realpath(runtime.python)


def test_layer_root_found_through_relative_path(layer_dir, runtime, runtime_path, tmp_path):
    root = _synthetic_layer(layer_dir, tmp_path, [])
    env = base_env(runtime, tmp_path, runtime_path)
    run = run_wrapper(os.path.join(".", "otel-instrument"),
                      [runtime.python, str(FAKE_RUNTIME / "bootstrap.py")],
                      env, tmp_path / "out.json", cwd=root)
    assert run.record is not None, run.stderr
    assert run.record["env"]["PYTHONPATH"].split(":") == runtime_path + [
        str(root.resolve() / "python")]


def test_other_python3_first_in_path_is_not_used(run_layer, runtime, tmp_path):
    # The console script's shebang says "env python3"; a python3 of another version
    # first in PATH must not end up running the function.
    decoy_bin = tmp_path / "decoy-bin"
    decoy_bin.mkdir()
    decoy = decoy_bin / "python3"
    decoy.write_text("#!/bin/sh\necho decoy python3 ran >&2\nexit 97\n")
    decoy.chmod(0o755)
    run = run_layer({"PATH": "%s:%s:/usr/bin:/bin" % (decoy_bin, runtime.bin_dir)})
    assert run.returncode == 0, run.stderr
    assert "decoy python3 ran" not in run.stderr
    assert run.record["version"] == runtime.version
    assert "otel_lambda_start" in (run.record["otel"]["sitecustomize"] or "")


def test_wrapper_run_twice_keeps_the_original_handler(run_layer, layer_dir, runtime):
    # e.g. another exec wrapper that calls /opt/otel-instrument again
    run = run_layer(command=[str(layer_dir / "otel-instrument"), runtime.python,
                             str(FAKE_RUNTIME / "bootstrap.py")], invoke=True)
    assert run.returncode == 0, run.stderr
    assert run.env["ORIG_HANDLER"] == "app.handler"
    assert run.env["_HANDLER"] == "otel_wrapper.lambda_handler"
    assert run.record["result"]["request"] == "req-0001"
    # the resource attributes are added once more, but the values stay the same
    assert run.record["otel"]["resource"]["faas.name"] == "orders-fn"


# ------------------------------------------- the wrapper's own opentelemetry-instrument step


def _logging_interpreter(runtime, tmp_path):
    """A python3.X that logs each start (its first argument) to a file, then runs the real one."""
    shim_dir = tmp_path / "shim-bin"
    shim_dir.mkdir(exist_ok=True)
    shim = shim_dir / ("python" + runtime.version)
    shim.write_text('#!/bin/sh\nprintf "%%s\\n" "$1" >> "$LBTEST_STARTS"\nexec "%s" "$@"\n'
                    % os.path.realpath(runtime.python))
    shim.chmod(0o755)
    return shim


def _run_logged(layer_dir, runtime, runtime_path, tmp_path, otlp_sink, name, extra_env, cwd):
    shim = _logging_interpreter(runtime, tmp_path)
    env = base_env(runtime, tmp_path, runtime_path)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_sink.url
    env["LBTEST_STARTS"] = str(tmp_path / (name + ".starts"))
    env.update(extra_env)
    run = run_wrapper(layer_dir / "otel-instrument",
                      [str(shim), str(FAKE_RUNTIME / "bootstrap.py")] + TRICKY_ARGS,
                      env, tmp_path / (name + ".json"), cwd=cwd)
    assert run.record is not None, run.stderr
    starts = (tmp_path / (name + ".starts")).read_text().splitlines()
    return run, starts


def _outcome(run):
    env = dict(run.record["env"])
    for name in ("OTEL_LAMBDA_USE_INSTRUMENT_COMMAND", "OTEL_LAMBDA_UPSTREAM_START", "LBTEST_OUT",
                 "LBTEST_STARTS"):
        env.pop(name, None)
    return {
        "argv": run.record["argv"],
        "executable": run.record["executable"],
        "sys_path": run.record["sys_path"],
        "env": env,
        "sitecustomize": run.record["otel"]["sitecustomize"],
    }


PYTHONPATH_CASES = {
    "empty": lambda runtime_path, cwd, auto: [],
    "lambda-like": lambda runtime_path, cwd, auto: runtime_path,
    "cwd-already-there": lambda runtime_path, cwd, auto: [str(cwd)] + runtime_path,
    "empty-entries": lambda runtime_path, cwd, auto: runtime_path + ["", "/nonexistent"],
    "instrument-dir-already-there": lambda runtime_path, cwd, auto: runtime_path + [auto],
}


@pytest.mark.parametrize("case", sorted(PYTHONPATH_CASES))
@pytest.mark.parametrize("where", ["task-root", "symlinked-dir"])
def test_runtime_starts_as_under_opentelemetry_instrument(layer_dir, runtime, runtime_path,
                                                          tmp_path, otlp_sink, case, where):
    cwd = FAKE_TASK
    if where == "symlinked-dir":
        (tmp_path / "real-cwd").mkdir()
        cwd = tmp_path / "link-cwd"
        os.symlink(tmp_path / "real-cwd", cwd)
    auto = str(layer_dir.resolve() / "python" / "opentelemetry" / "instrumentation" /
               "auto_instrumentation")
    extra = {"PYTHONPATH": ":".join(PYTHONPATH_CASES[case](runtime_path, cwd, auto))}

    # Upstream's start-up (its sitecustomize), reached without the console script.
    fast, fast_starts = _run_logged(layer_dir, runtime, runtime_path, tmp_path, otlp_sink,
                                    "shortcut", dict(extra, OTEL_LAMBDA_UPSTREAM_START="true"),
                                    cwd)
    real, real_starts = _run_logged(layer_dir, runtime, runtime_path, tmp_path, otlp_sink,
                                    "console-script",
                                    dict(extra, OTEL_LAMBDA_USE_INSTRUMENT_COMMAND="true"), cwd)

    # The console script costs its own interpreter start; the wrapper's own step does not.
    assert len(real_starts) == 2, real_starts
    assert "bin/opentelemetry-instrument" in real_starts[0]
    assert len(fast_starts) == 1, fast_starts
    # ... and the runtime cannot tell them apart.
    assert _outcome(fast) == _outcome(real)
    assert fast.record["sys_path"][1] == auto
    assert fast.record["otel"]["sitecustomize"].startswith(auto)


def test_an_earlier_opentelemetry_on_pythonpath_gets_the_console_script(
        layer_dir, runtime, runtime_path, tmp_path, otlp_sink):
    # The function's own PYTHONPATH holds another opentelemetry-instrumentation: the console
    # script would import that one's run() and sitecustomize, so the wrapper must not guess.
    other = tmp_path / "other-otel"
    auto = other / "opentelemetry" / "instrumentation" / "auto_instrumentation"
    auto.mkdir(parents=True)
    (auto / "__init__.py").write_text(
        "import os, shutil\n"
        "def run():\n"
        "    import sys\n"
        "    here = os.path.dirname(os.path.abspath(__file__))\n"
        "    os.environ['PYTHONPATH'] = here + ':' + os.environ['PYTHONPATH']\n"
        "    command = shutil.which(sys.argv[1])\n"
        "    os.execl(command, command, *sys.argv[2:])\n"
    )
    (auto / "sitecustomize.py").write_text("")
    extra = {"PYTHONPATH": ":".join([str(other)] + runtime_path)}
    run, starts = _run_logged(layer_dir, runtime, runtime_path, tmp_path, otlp_sink, "other",
                              extra, FAKE_TASK)
    assert len(starts) == 2, starts
    assert run.record["otel"]["sitecustomize"] == str(auto / "sitecustomize.py")
    assert run.record["argv"] == TRICKY_ARGS
