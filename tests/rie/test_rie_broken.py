"""Broken copies of the default layer under AWS's Runtime Interface Emulator (python3.9).

Each copy is the real layer with one thing wrong, laid over it read-only (sandbox.mount_tree).
Each must fail the function's init for its own reason, reported by the emulator the way
Lambda reports it (the error type of the failed invoke), before the handler ever runs.
"""

import re
import zipfile
from pathlib import Path

import pytest

from harness import changed_layer

INVOCATIONS = [{"n": 1}, {"n": 2}]

# Valid YAML that the collector must refuse: the pipeline names an exporter not defined.
BROKEN_CONFIG = b"""\
receivers:
  otlp:
    protocols:
      http:
        endpoint: "localhost:4318"
exporters:
  awsxray:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
"""

EARLY_EXIT = b"""#!/bin/sh
echo "early-exit: giving up before registering" >&2
exit 3
"""

ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


@pytest.fixture(scope="module")
def broken(run_rie, layer_dir, runtime_for, tmp_path_factory):
    def run(name, changes, modes=None):
        folder = changed_layer(tmp_path_factory.mktemp("changes-" + name), changes, modes)
        return run_rie("broken " + name, [folder, layer_dir], runtime_for("3.9"), INVOCATIONS)
    return run


def fails_at_init(run, error_type, pattern):
    """Every invoke fails (502) with `error_type`, `pattern` is in the logs, the handler never
    ran, and the emulator still shut down cleanly."""
    assert not run.result.get("fatal"), run.tail()
    statuses = [inv["status"] for inv in run.invocations]
    assert statuses == [502] * len(INVOCATIONS), "invoke statuses %s\n%s" % (statuses, run.tail())
    assert "Invoke DONE failed: %s" % error_type in run.stderr, run.tail()
    assert re.search(pattern, run.stderr + run.stdout), (
        "%r not in the logs\n%s" % (pattern, run.tail()))
    assert not run.result["target_hits"], "the handler ran although init failed"
    assert run.result.get("rie_exit") == 0, run.tail()


def elf_machine(path: Path) -> str:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", "%s is not an ELF file" % path
    return ELF_MACHINES.get(int.from_bytes(header[18:20], "little"), "unknown")


def test_collector_without_exec_bit(broken, layer_dir):
    run = broken("collector-0644", {"extensions/collector": layer_dir / "extensions/collector"},
                 {"extensions/collector": 0o644})
    fails_at_init(run, "Extension.LaunchError",
                  r"fork/exec /opt/extensions/collector: permission denied")


def test_collector_of_the_other_architecture(broken, layer_dir, layer_zip, tmp_path):
    ours = elf_machine(layer_dir / "extensions/collector")
    names = {"amd64": "arm64", "arm64": "amd64"}
    tag = next((t for t in names if "-%s-" % t in layer_zip.name), None)
    assert tag, "cannot tell the architecture of %s from its name" % layer_zip.name
    other_zip = layer_zip.with_name(layer_zip.name.replace("-%s-" % tag, "-%s-" % names[tag]))
    assert other_zip.is_file(), ("the other architecture's layer (%s) is needed for its "
                                 "collector; `make layers` builds both" % other_zip)
    with zipfile.ZipFile(other_zip) as zf:
        zf.extract("extensions/collector", tmp_path)
    other = tmp_path / "extensions/collector"
    theirs = elf_machine(other)
    assert theirs != ours, "both collectors are %s" % ours
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-%s" % theirs)
    if handler.is_file() and handler.read_text().startswith("enabled"):
        pytest.skip("this kernel runs %s binaries through qemu (%s), so a wrong-architecture "
                    "collector starts here; on Lambda it fails with `exec format error`"
                    % (theirs, handler))
    run = broken("collector-" + theirs, {"extensions/collector": other},
                 {"extensions/collector": 0o755})
    fails_at_init(run, "Extension.LaunchError",
                  r"fork/exec /opt/extensions/collector: exec format error")


def test_wrapper_missing(broken):
    run = broken("no-wrapper", {"otel-instrument": None})
    fails_at_init(run, "Runtime.ExitError", r"Runtime exited with error: exit status 127")
    assert "/opt/otel-instrument: does not exist" in run.stdout, run.tail()


def test_wrapper_without_exec_bit(broken, layer_dir):
    run = broken("wrapper-0644", {"otel-instrument": layer_dir / "otel-instrument"},
                 {"otel-instrument": 0o644})
    fails_at_init(run, "Runtime.ExitError", r"Runtime exited with error: exit status 126")
    assert "/opt/otel-instrument: is not an executable" in run.stdout, run.tail()


def test_broken_collector_config_fails_init(broken):
    run = broken("bad-config", {"collector-config/config.yaml": BROKEN_CONFIG})
    fails_at_init(run, "Extension.InitError",
                  r'references exporter "otlphttp" which is not configured')
    # The collector reported the failure itself (init/error), then exited non-zero.
    assert "First fatal error stored in appctx: Extension.InitError" in run.stderr, run.tail()
    codes = [seen.exit_code for seen in run.collector]
    assert codes and all(code not in (0, None) for code in codes), (
        [s.describe() for s in run.collector], run.watch_error)


def test_extension_exiting_before_it_registers(broken):
    run = broken("early-exit", {"extensions/early-exit": EARLY_EXIT},
                 {"extensions/early-exit": 0o755})
    fails_at_init(run, "Extension.Crash", r"Process extension-early-exit-\d+ exited: exit status 3")
    assert "early-exit: giving up before registering" in run.stdout, run.tail()
