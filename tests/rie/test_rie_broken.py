"""Broken copies of each layer under AWS's Runtime Interface Emulator, on the layer's newest
runtime (python3.9 for the default layer, python3.13 for the current one).

Each copy is the real layer with one thing wrong, laid over it read-only (sandbox.mount_tree).
Each must fail the function's init for its own reason, reported by the emulator the way
Lambda reports it (the error type of the failed invoke), before the handler ever runs.
"""

import re
import zipfile
from pathlib import Path

import pytest

from harness import LAYERS, changed_layer, other_architecture_zip

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


@pytest.fixture(scope="module", params=[kind.name for kind in LAYERS])
def layer(request, layer_of):
    return layer_of(request.param)


@pytest.fixture(scope="module")
def broken(run_rie, layer, runtime_for, tmp_path_factory):
    def run(name, changes, modes=None):
        folder = changed_layer(tmp_path_factory.mktemp("changes-" + name), changes, modes)
        return run_rie("broken %s %s" % (layer.kind.name, name), [folder, layer.dir],
                       runtime_for(layer.kind.runtimes[0]), INVOCATIONS)
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


def test_collector_without_exec_bit(broken, layer):
    run = broken("collector-0644", {"extensions/collector": layer.dir / "extensions/collector"},
                 {"extensions/collector": 0o644})
    fails_at_init(run, "Extension.LaunchError",
                  r"fork/exec /opt/extensions/collector: permission denied")


def test_collector_of_the_other_architecture(broken, layer, tmp_path):
    """The sandbox gives the emulator a binfmt_misc of its own, empty as on Lambda, so a
    qemu-user handler the host registered (provisioning installs qemu-user-static) cannot
    run the foreign collector: the kernel refuses it."""
    ours = elf_machine(layer.dir / "extensions/collector")
    other_zip = other_architecture_zip(layer.zip)
    assert other_zip.is_file(), ("the other architecture's layer (%s) is needed for its "
                                 "collector; `make %s` builds both" % (other_zip, layer.kind.target))
    with zipfile.ZipFile(other_zip) as zf:
        zf.extract("extensions/collector", tmp_path)
    other = tmp_path / "extensions/collector"
    theirs = elf_machine(other)
    assert theirs != ours, "both collectors are %s" % ours
    run = broken("collector-" + theirs, {"extensions/collector": other},
                 {"extensions/collector": 0o755})
    assert "sandbox: binfmt_misc: a private, empty instance" in run.stderr, run.tail()
    fails_at_init(run, "Extension.LaunchError",
                  r"fork/exec /opt/extensions/collector: exec format error")


def test_wrapper_missing(broken):
    run = broken("no-wrapper", {"otel-instrument": None})
    fails_at_init(run, "Runtime.ExitError", r"Runtime exited with error: exit status 127")
    assert "/opt/otel-instrument: does not exist" in run.stdout, run.tail()


def test_wrapper_without_exec_bit(broken, layer):
    run = broken("wrapper-0644", {"otel-instrument": layer.dir / "otel-instrument"},
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
