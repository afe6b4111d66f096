"""What the Python tests share with the binary: the cache root and the interpreter finder; and
what they share with each other: the require-all switch.

Both follow the rules of the Rust code (src/support/cache.rs, src/python/interpreter.rs) so that
the tests cache where `layerbuild` caches and run the Pythons `layerbuild` would pick:

- cache root: `LAYERBUILD_CACHE`, else `$XDG_CACHE_HOME/layerbuild`, else
  `$HOME/.cache/layerbuild`; XDG and HOME count only when absolute, and with neither there is
  no cache (never the temp folder). tests/python/test_cache_root.py holds the two to the same
  answer.
- interpreter for runtime 3.X: `LAYERBUILD_PYTHON3X` when set, then `python3.X` in each PATH
  folder (version managers' shims skipped: what they run depends on the folder), then pyenv's
  installs (`PYENV_ROOT`, else `pyenv root`, else `~/.pyenv`), newest patch first by number.
  Each candidate is run once; the first that says it is 3.X is taken. The same order for
  every runtime, 3.8 to 3.13 (LAYERBUILD_PYTHON38 ... LAYERBUILD_PYTHON313).
- require-all: with `LAYERBUILD_REQUIRE_ALL=1` (CI sets it) a test whose environment is
  missing fails instead of skipping, so a run that proved nothing cannot pass.
"""
import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional


def cache_root() -> Path:
    explicit = os.environ.get("LAYERBUILD_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "layerbuild"
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return Path(home) / ".cache" / "layerbuild"
    raise RuntimeError("no folder for the cache: set LAYERBUILD_CACHE (or HOME) to a folder of yours")


def require_all() -> bool:
    return os.environ.get("LAYERBUILD_REQUIRE_ALL") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip the running test for a missing environment, or fail it under require-all."""
    import pytest

    if require_all():
        pytest.fail("%s (LAYERBUILD_REQUIRE_ALL=1 turns this skip into a failure)" % reason,
                    pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Interpreter:
    """A CPython for one runtime: `prefix` holds bin/python3.X and lib/, as /var/lang does."""

    version: str  # "3.9"
    executable: str  # the candidate as found
    real: str  # os.path.realpath(sys.executable)
    full_version: str  # "3.9.18"
    prefix: str  # sys.base_prefix


def pyenv_roots() -> List[str]:
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(os.environ["PYENV_ROOT"])
    else:
        pyenv = shutil.which("pyenv")
        if pyenv:
            try:
                out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30)
                if out.returncode == 0 and out.stdout.strip():
                    roots.append(out.stdout.strip())
            except (OSError, subprocess.TimeoutExpired):
                pass
        if not roots:
            roots.append(str(Path.home() / ".pyenv"))
    return roots


def _patch_key(path: str):
    # .../versions/3.9.18/bin/python3.9 -> (3, 9, 18): 3.9.18 sorts before 3.9.9.
    name = Path(path).parent.parent.name
    return tuple(int(p) if p.isdigit() else -1 for p in name.split("."))


def interpreter_candidates(version: str) -> List[str]:
    found = []
    override = os.environ.get("LAYERBUILD_PYTHON" + version.replace(".", ""))
    if override:
        found.append(override)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        exe = os.path.join(folder, "python" + version)
        if folder and "shims" not in Path(folder).parts and os.access(exe, os.X_OK):
            found.append(exe)
    for root in pyenv_roots():
        found.extend(sorted(glob.glob("%s/versions/%s.*/bin/python%s" % (root, version, version)),
                            key=_patch_key, reverse=True))
    return list(dict.fromkeys(found))


_PROBE = ("import os, sys; print('%d.%d' % sys.version_info[:2]); "
          "print('%d.%d.%d' % sys.version_info[:3]); print(sys.base_prefix); "
          "print(os.path.realpath(sys.executable))")


def _probe(candidate: str, version: str) -> Optional[Interpreter]:
    try:
        out = subprocess.run([candidate, "-c", _PROBE], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.split("\n")
    if out.returncode != 0 or len(lines) < 4 or lines[0] != version:
        return None
    return Interpreter(version, candidate, lines[3], lines[1], lines[2])


def _working(version: str) -> Iterator[Interpreter]:
    for candidate in interpreter_candidates(version):
        found = _probe(candidate, version)
        if found:
            yield found


def find_interpreter(version: str) -> Optional[Interpreter]:
    """The first working CPython 3.X whose prefix has bin/python3.X, or None."""
    for interp in _working(version):
        if os.access(os.path.join(interp.prefix, "bin", "python" + version), os.X_OK):
            return interp
    return None


def where_looked(version: str) -> str:
    """For skip and error messages: every candidate, or what was consulted when none exist."""
    looked = interpreter_candidates(version)
    if looked:
        return ", ".join(looked)
    return "$LAYERBUILD_PYTHON%s, python%s in PATH, %s" % (
        version.replace(".", ""), version,
        ", ".join("%s/versions/%s.*" % (r, version) for r in pyenv_roots()))


if __name__ == "__main__":
    # `python3 tests/pylib/layerbuild_env.py 3.8 3.9`: one `python3.X=PATH` line per runtime
    # found (scripts/provision prints them), exit 1 when none is.
    import sys

    found = [(v, find_interpreter(v)) for v in sys.argv[1:]]
    for v, interp in found:
        print("python%s=%s" % (v, interp.executable) if interp else
              "python%s: not found (looked at %s)" % (v, where_looked(v)))
    sys.exit(0 if any(interp for _, interp in found) else 1)
