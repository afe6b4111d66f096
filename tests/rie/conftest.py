"""Fixtures of the RIE tests: the emulator, moto, Lambda's Python runtimes, the layers, and a
factory that runs the function under the emulator and keeps the figures for the summary.

The layers (harness.LAYERS): the default one, $LAYERBUILD_RIE_ZIP, else $LAYERBUILD_LAYER_ZIP,
else dist/'s zip for this machine's architecture (`make layers`); the current one,
$LAYERBUILD_RIE_CURRENT_ZIP, else dist/current/'s zip for this machine (`make current`). The
emulator, moto and the runtime packages come from the registries once and are cached (see
provision.py). The tests need root: they run the emulator in private mount, network and PID
namespaces. Without root they skip, and fail under LAYERBUILD_REQUIRE_ALL=1.
"""

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import provision  # noqa: E402
from layerbuild_env import skip_or_fail  # noqa: E402  (provision.py put pylib on the path)

# (label, one-line figures) of every run, printed at the end of the session.
FIGURES = []
SESSION_STARTED = time.monotonic()


def pytest_runtest_setup(item):
    if os.geteuid() == 0 and shutil.which("unshare"):
        return
    skip_or_fail("the RIE tests need root and util-linux `unshare`: they run AWS's Runtime "
                 "Interface Emulator in private mount, network and PID namespaces")


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("RIE runs (cold = first invocation, init included)")
    for label, line in FIGURES:
        terminalreporter.write_line("%-42s %s" % (label, line))
    terminalreporter.write_line("RIE tests took %.1f s in all (provisioning included)"
                                % (time.monotonic() - SESSION_STARTED))


def _provisioned(step, what):
    try:
        return step()
    except provision.ProvisionError as exc:
        pytest.fail("%s: %s" % (what, exc), pytrace=False)


@pytest.fixture(scope="session")
def rie_binary():
    return _provisioned(provision.rie_binary, "the Runtime Interface Emulator")


@pytest.fixture(scope="session")
def driver_python():
    """moto's venv interpreter; it also runs sandbox.py (which reads X-Ray with its boto3)."""
    return _provisioned(provision.moto_python, "moto")


@dataclass
class Layer:
    kind: harness.LayerKind
    zip: Path
    dir: Path  # unpacked, with the modes its entries carry


@pytest.fixture(scope="session")
def layer_of(tmp_path_factory):
    """layer_of("current"): that layer's zip, unpacked once per session."""
    made = {}

    def get(name):
        if name not in made:
            kind = harness.layer_kind(name)
            try:
                path = harness.layer_zip(kind)
            except harness.HarnessError as exc:
                pytest.fail(str(exc), pytrace=False)
            if not path.is_file():
                pytest.fail("no %s layer zip at %s: build it with `make %s`, or set %s to a "
                            "layer zip for this machine's architecture"
                            % (name, path, kind.target, kind.variables[0]), pytrace=False)
            unpacked = harness.unpack_layer(path, tmp_path_factory.mktemp("layer-" + name))
            made[name] = Layer(kind, path, unpacked)
        return made[name]

    return get


@pytest.fixture(scope="session")
def runtime_for(tmp_path_factory):
    """runtime_for("3.9"): Lambda's python3.9 runtime (interpreter, bootstrap, packages)."""
    made = {}

    def get(version):
        if version in made:
            return made[version]
        interp = provision.find_interpreter(version)
        if interp is None:
            pytest.fail("no python%s found for the runtime (looked at %s; set LAYERBUILD_PYTHON%s)"
                        % (version, provision.where_looked(version), version.replace(".", "")),
                        pytrace=False)
        packages = _provisioned(lambda: provision.runtime_packages(interp),
                                "the python%s runtime packages" % version)
        made[version] = harness.prepare_runtime(
            interp, packages, tmp_path_factory.mktemp("runtime-py" + version))
        return made[version]

    return get


@pytest.fixture(scope="session")
def run_rie(rie_binary, driver_python, tmp_path_factory):
    """run_rie(label, layer=[dirs], runtime=..., invocations=[...], **harness options)."""

    def run(label, layer, runtime, invocations, **options):
        workdir = tmp_path_factory.mktemp(label.replace(" ", "-"))
        result = harness.run_function(workdir, label, driver_python, rie_binary, layer,
                                      runtime, invocations, **options)
        FIGURES.append((label, result.figures()))
        return result

    return run
