"""Fetches and caches the third-party software the RIE tests run: AWS's Runtime Interface
Emulator, moto's server, and what Lambda's python3.8/3.9 and python3.12/3.13 runtimes hold in
/var/runtime.

Everything lives under the layerbuild cache root (tests/pylib/layerbuild_env.py finds it as the
binary does), in rie/, keyed by version, and is
reused when present. Each item is built in a temporary folder beside its final place and
renamed into place only when complete, under a lock, so an interrupted or concurrent run
never leaves a half-built item.

Run as a script to provision ahead of the tests (`make provision` does, so CI does):
    python3 tests/rie/provision.py [--python 3.12] ...
"""

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pylib"))

from layerbuild_env import (  # noqa: E402,F401  (the RIE tests take these from here)
    Interpreter, cache_root, find_interpreter, where_looked)

# The module proxy serves this pseudo-version of the emulator; its tag v1.23.0 is not served.
RIE_MODULE = "github.com/aws/aws-lambda-runtime-interface-emulator"
RIE_VERSION = "v0.0.0-20261030222936-bef5c4ba774d"

MOTO_REQUIREMENT = "moto[server]==5.2.1"

# What Lambda's python3.8/3.9 runtimes held in /var/runtime in late 2023: the runtime
# interface client and the AWS SDK, with urllib3 1.26 (the layer leaves boto* and urllib3
# out and relies on these). Pinned whole, so the set does not drift with new releases.
RUNTIME_REQUIREMENTS_2023 = (
    "awslambdaric==2.2.1",
    "simplejson==3.19.2",
    "boto3==1.29.1",
    "botocore==1.32.1",
    "s3transfer==0.7.0",
    "jmespath==1.0.1",
    "python-dateutil==2.8.2",
    "six==1.16.0",
    "urllib3==1.26.18",
)

# A stand-in for what Lambda's python3.12/3.13 runtimes (Amazon Linux 2023) hold in 2026,
# pinned whole like the set above:
# - awslambdaric 4.2.2: the newest release, with wheels for 3.12 and 3.13 (2.2.1 has none);
#   since 3.x it needs simplejson and snapshot-restore-py (SnapStart's restore hooks).
# - urllib3 2.6.3: the runtimes moved from 1.26 to 2.x; AWS's base-image scans list 2.6.3 in
#   python:3.12 and 3.13 in May 2026 (1.26.19 until December 2025). The current layer's
#   instrumentations must work with urllib3 2, so the 2023 set's 1.26 would prove less.
# - boto3/botocore 1.43.7: a 2026 release that takes urllib3 2 (botocore allows <3 on
#   Python 3.10+). Lambda moves the runtimes' SDK with every runtime update, so no pin is
#   exactly what a function sees on a given day; this one is of the 2026 line (AWS's 3.12
#   and 3.13 images held 1.38.36 in August 2025). s3transfer, jmespath, python-dateutil and
#   six are the versions pip resolves boto3 1.43.7 to.
RUNTIME_REQUIREMENTS_2026 = (
    "awslambdaric==4.2.2",
    "simplejson==4.3.0",
    "snapshot-restore-py==1.0.0",
    "boto3==1.43.7",
    "botocore==1.43.7",
    "s3transfer==0.17.1",
    "jmespath==1.1.0",
    "python-dateutil==2.9.0.post0",
    "six==1.17.0",
    "urllib3==2.6.3",
)

# Which set stands in for each runtime's /var/runtime.
RUNTIME_REQUIREMENTS = {
    "3.8": RUNTIME_REQUIREMENTS_2023,
    "3.9": RUNTIME_REQUIREMENTS_2023,
    "3.12": RUNTIME_REQUIREMENTS_2026,
    "3.13": RUNTIME_REQUIREMENTS_2026,
}

INSTALL_TIMEOUT = 900


class ProvisionError(RuntimeError):
    """A piece of the RIE test setup could not be fetched or built."""


def rie_cache() -> Path:
    return cache_root() / "rie"


@contextmanager
def _locked(name: str):
    folder = rie_cache()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / (".%s.lock" % name), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(argv: List[str], what: str, env: Optional[dict] = None) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                              timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ProvisionError("%s: `%s` took over %d s" % (what, " ".join(argv), INSTALL_TIMEOUT))
    except OSError as exc:
        raise ProvisionError("%s: cannot run %s: %s" % (what, argv[0], exc))
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        raise ProvisionError("%s: `%s` exited %d:\n%s"
                             % (what, " ".join(argv), proc.returncode, "\n".join(tail)))


def _say(message: str) -> None:
    sys.stderr.write("rie-provision: %s\n" % message)
    sys.stderr.flush()


# --------------------------------------------------------------------------- the emulator


def rie_binary() -> Path:
    """aws-lambda-rie at RIE_VERSION, built with `go install` once per cache."""
    final = rie_cache() / "emulator" / RIE_VERSION / "aws-lambda-rie"
    if final.is_file():
        return final
    go = shutil.which("go")
    if not go:
        raise ProvisionError("building the Runtime Interface Emulator needs Go (`go` in PATH)")
    with _locked("emulator"):
        if final.is_file():
            return final
        final.parent.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent.parent))
        try:
            env = dict(os.environ, GOBIN=str(staging), CGO_ENABLED="0")
            started = time.monotonic()
            _run([go, "install", "%s/cmd/aws-lambda-rie@%s" % (RIE_MODULE, RIE_VERSION)],
                 "building aws-lambda-rie", env)
            _say("built aws-lambda-rie %s in %.1f s" % (RIE_VERSION, time.monotonic() - started))
            if final.parent.exists():
                shutil.rmtree(final.parent)
            staging.rename(final.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------- moto


def moto_python() -> Path:
    """The interpreter of a venv holding moto[server] (and boto3, for reading back)."""
    version = "%d.%d.%d" % sys.version_info[:3]
    name = "%s-py%s" % (MOTO_REQUIREMENT.replace("[server]==", "-"), version)
    venv = rie_cache() / "moto" / name
    python = venv / "bin" / "python"
    stamp = venv / ".complete"
    if stamp.is_file():
        return python
    with _locked("moto"):
        if stamp.is_file():
            return python
        if subprocess.run([sys.executable, "-c", "import venv, ensurepip"]).returncode != 0:
            raise ProvisionError("%s cannot make a venv (no venv/ensurepip module): install "
                                 "python3-venv (apt-get install python3-venv)" % sys.executable)
        if venv.exists():
            shutil.rmtree(venv)
        venv.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        # A venv records its own path, so it is built where it stays; the stamp marks it whole.
        _run([sys.executable, "-m", "venv", str(venv)], "creating the moto venv")
        _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              MOTO_REQUIREMENT], "installing %s" % MOTO_REQUIREMENT)
        stamp.write_text(MOTO_REQUIREMENT + "\n")
        _say("installed %s in %.1f s" % (MOTO_REQUIREMENT, time.monotonic() - started))
    return python


# ---------------------------------------------------------------------- the Python runtime


def runtime_requirements(version: str) -> tuple:
    """The pinned /var/runtime set of runtime `version` ("3.12")."""
    if version not in RUNTIME_REQUIREMENTS:
        raise ProvisionError("no /var/runtime package set for python%s (tests/rie/provision.py "
                             "has one for %s)" % (version, ", ".join(RUNTIME_REQUIREMENTS)))
    return RUNTIME_REQUIREMENTS[version]


def runtime_packages(interp: Interpreter) -> Path:
    """A folder with the runtime's pinned set installed for `interp` (Lambda's /var/runtime)."""
    return pip_target("runtime", runtime_requirements(interp.version), interp, "awslambdaric",
                      "the python%s runtime packages" % interp.version)


def pip_target(kind: str, requirements, interp: Interpreter, marker: str, what: str,
               resolve: bool = False) -> Path:
    """A cached `pip install --no-deps --target` of `requirements` (a complete pinned set) for
    `interp`, under rie/<kind>/; `marker` is a folder that only a finished install has. With
    `resolve`, pip also installs their dependencies (pinned top-level names only)."""
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    final = rie_cache() / kind / ("python%s-%s" % (interp.full_version, key))
    if (final / marker).is_dir():
        return final
    with _locked(kind):
        if (final / marker).is_dir():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
        try:
            started = time.monotonic()
            # The runtime's own pip, so wheels and bytecode are for that Python.
            _run([interp.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                  "--only-binary=:all:", "--target", str(staging)]
                 + ([] if resolve else ["--no-deps"]) + list(requirements), "installing " + what)
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
            _say("installed %s in %.1f s" % (what, time.monotonic() - started))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", default=None,
                        help="runtime version to provision (default: every one the tests run: %s)"
                        % ", ".join(RUNTIME_REQUIREMENTS))
    args = parser.parse_args()
    started = time.monotonic()
    try:
        print("aws-lambda-rie: %s" % rie_binary())
        print("moto: %s" % moto_python())
        for version in args.python or list(RUNTIME_REQUIREMENTS):
            interp = find_interpreter(version)
            if interp is None:
                print("python%s: not found (looked at %s)"
                      % (version, where_looked(version)))
                continue
            print("python%s runtime packages: %s" % (version, runtime_packages(interp)))
    except ProvisionError as exc:
        sys.stderr.write("rie-provision: %s\n" % exc)
        return 1
    print("provisioned in %.1f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
