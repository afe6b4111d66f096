"""The tests' interpreter finder (tests/pylib/layerbuild_env.py) keeps the binary's order."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pylib"))

from layerbuild_env import find_interpreter, interpreter_candidates  # noqa: E402


def fake_python(path: Path, says: str) -> Path:
    """An executable that answers the finder's probe as CPython `says` (3.9.18) under its prefix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = path.parent.parent
    major_minor = ".".join(says.split(".")[:2])
    path.write_text("#!/bin/sh\nprintf '%s\\n%s\\n%s\\n%s\\n'\n" % (major_minor, says, prefix, path))
    path.chmod(0o755)
    return path


def isolate(monkeypatch, tmp_path, path_dirs=()):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    # Only the given folders: the host's own python3.9, if any, must not answer.
    monkeypatch.setenv("PATH", os.pathsep.join([str(d) for d in path_dirs] or [str(tmp_path / "empty")]))
    monkeypatch.delenv("LAYERBUILD_PYTHON39", raising=False)


def test_pyenv_patches_are_compared_as_numbers(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)
    for patch in ("3.9.9", "3.9.18", "3.9.2"):
        fake_python(tmp_path / "pyenv" / "versions" / patch / "bin" / "python3.9", patch)
    found = find_interpreter("3.9")
    assert found is not None and found.full_version == "3.9.18"


def test_path_comes_before_pyenv_and_shims_are_skipped(monkeypatch, tmp_path):
    shims = tmp_path / "pyenv" / "shims"
    on_path = tmp_path / "usr" / "bin"
    fake_python(shims / "python3.9", "3.9.1")
    fake_python(on_path / "python3.9", "3.9.7")
    fake_python(tmp_path / "pyenv" / "versions" / "3.9.18" / "bin" / "python3.9", "3.9.18")
    isolate(monkeypatch, tmp_path, [shims, on_path])
    assert str(shims / "python3.9") not in interpreter_candidates("3.9")
    found = find_interpreter("3.9")
    assert found is not None and found.full_version == "3.9.7"


def test_an_override_of_the_wrong_version_is_passed_over(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)
    wrong = fake_python(tmp_path / "other" / "bin" / "python3.9", "3.8.18")
    fake_python(tmp_path / "pyenv" / "versions" / "3.9.18" / "bin" / "python3.9", "3.9.18")
    monkeypatch.setenv("LAYERBUILD_PYTHON39", str(wrong))
    assert interpreter_candidates("3.9")[0] == str(wrong)
    found = find_interpreter("3.9")
    assert found is not None and found.full_version == "3.9.18"


def test_nothing_found_is_none(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path)
    assert find_interpreter("3.9") is None


def test_the_script_names_each_runtime_and_fails_when_none_is_found(monkeypatch, tmp_path):
    import subprocess

    script = Path(__file__).resolve().parent.parent / "pylib" / "layerbuild_env.py"
    isolate(monkeypatch, tmp_path)
    out = subprocess.run([sys.executable, str(script), "3.8", "3.9"], capture_output=True, text=True)
    assert out.returncode == 1
    assert "python3.9: not found (looked at $LAYERBUILD_PYTHON39" in out.stdout
    fake_python(tmp_path / "pyenv" / "versions" / "3.9.18" / "bin" / "python3.9", "3.9.18")
    out = subprocess.run([sys.executable, str(script), "3.8", "3.9"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "python3.9=%s" % (tmp_path / "pyenv" / "versions" / "3.9.18" / "bin" / "python3.9") in out.stdout


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12", "3.13"])
def test_the_newer_runtimes_keep_the_same_order(monkeypatch, tmp_path, version):
    """Override, then PATH, then pyenv's newest patch by number (3.1X.10 after 3.1X.9)."""
    variable = "LAYERBUILD_PYTHON" + version.replace(".", "")
    on_path = tmp_path / "usr" / "bin"
    for patch in ("9", "10"):
        full = "%s.%s" % (version, patch)
        fake_python(tmp_path / "pyenv" / "versions" / full / "bin" / ("python" + version), full)
    isolate(monkeypatch, tmp_path, [on_path])
    monkeypatch.delenv(variable, raising=False)
    assert find_interpreter(version).full_version == version + ".10"
    fake_python(on_path / ("python" + version), version + ".1")
    assert find_interpreter(version).full_version == version + ".1"
    mine = fake_python(tmp_path / "mine" / "bin" / ("python" + version), version + ".2")
    monkeypatch.setenv(variable, str(mine))
    assert find_interpreter(version).full_version == version + ".2"


@pytest.mark.parametrize("require_all, outcome", [("", "1 skipped"), ("1", "1 failed")])
def test_a_missing_environment_skips_or_fails_under_require_all(tmp_path, require_all, outcome):
    import subprocess

    pylib = Path(__file__).resolve().parent.parent / "pylib"
    (tmp_path / "test_env.py").write_text(
        "import sys\nsys.path.insert(0, %r)\nfrom layerbuild_env import skip_or_fail\n\n"
        "def test_needs_something():\n    skip_or_fail('no such thing here')\n" % str(pylib))
    env = dict(os.environ, LAYERBUILD_REQUIRE_ALL=require_all)
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(tmp_path / "test_env.py")], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path))
    assert outcome in out.stdout, out.stdout + out.stderr
    if require_all:
        assert "LAYERBUILD_REQUIRE_ALL=1 turns this skip into a failure" in out.stdout
