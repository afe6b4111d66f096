"""The CI recipes in docs/ci.md are valid for their CI systems and do what the page promises.

The page holds each recipe as a fenced yaml block whose first line names the CI system; the
tests take them from there, so what a user copies is what was checked.

GitHub Actions: checked by actionlint (built once with `go install` into the layerbuild cache).
GitLab CI: checked against GitLab's CI schema as vendored by check-jsonschema (installed once with
pip into a venv in the layerbuild cache). Both need the registries on first run; CI runs them.
"""
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from layerbuild_env import cache_root

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "ci.md"
ACTIONLINT = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
CHECK_JSONSCHEMA = "check-jsonschema==0.39.0"
CACHE_INPUTS = ("layer-src/requirements.txt", "collector/go.sum")
# SHA256SUMS lists the SBOMs (*.cdx.json) too: keep them, or `sha256sum -c` fails on the copy.
ARTIFACTS = ("dist/*.zip", "dist/*.manifest.json", "dist/*.cdx.json", "dist/*.sha256", "dist/SHA256SUMS")


def _actionlint() -> Path:
    folder = cache_root() / "tools" / ("actionlint-" + ACTIONLINT.rsplit("@", 1)[1])
    binary = folder / "actionlint"
    if not binary.is_file():
        env = dict(os.environ, GOBIN=str(folder), CGO_ENABLED="0")
        subprocess.run(["go", "install", ACTIONLINT], env=env, check=True, timeout=900)
    return binary


def _check_jsonschema() -> Path:
    folder = cache_root() / "tools" / CHECK_JSONSCHEMA.replace("==", "-")
    binary = folder / "bin" / "check-jsonschema"
    if not binary.is_file():
        venv.create(folder, with_pip=True, clear=True)
        subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", CHECK_JSONSCHEMA], check=True, timeout=900)
    return binary


def _recipe(marker: str) -> str:
    """The yaml block of docs/ci.md whose opening comment says where to save it (`marker`)."""
    blocks = [b.split("```", 1)[0] for b in PAGE.read_text().split("```yaml\n")[1:]]
    found = [b for b in blocks if marker in "\n".join(b.splitlines()[:2])]
    assert len(found) == 1, "docs/ci.md should hold one %s recipe, found %d" % (marker, len(found))
    return found[0]


@pytest.fixture
def github(tmp_path) -> Path:
    path = tmp_path / "layer.yml"
    path.write_text(_recipe(".github/workflows/"))
    return path


@pytest.fixture
def gitlab(tmp_path) -> Path:
    path = tmp_path / ".gitlab-ci.yml"
    path.write_text(_recipe(".gitlab-ci.yml"))
    return path


def _run(cmd):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300)


def _commands(steps):
    return "\n".join(str(s) for s in steps)


def test_github_workflow_passes_actionlint(github):
    # -shellcheck= and -pyflakes= keep the check to actionlint's own rules: no other tool needed.
    proc = _run([_actionlint(), "-shellcheck=", "-pyflakes=", github])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_rejects_a_broken_workflow(github, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(github.read_text().replace("runs-on: ubuntu-latest", "runs-on: [ubuntu-latest"))
    assert _run([_actionlint(), "-shellcheck=", "-pyflakes=", broken]).returncode != 0
    unknown = tmp_path / "unknown.yml"
    unknown.write_text(github.read_text().replace("steps:", "stepz:", 1))
    assert _run([_actionlint(), "-shellcheck=", "-pyflakes=", unknown]).returncode != 0


def test_gitlab_job_passes_gitlab_schema(gitlab):
    proc = _run([_check_jsonschema(), "--builtin-schema", "vendor.gitlab-ci", gitlab])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gitlab_schema_rejects_a_broken_job(gitlab, tmp_path):
    broken = tmp_path / "broken" / ".gitlab-ci.yml"
    broken.parent.mkdir()
    broken.write_text(gitlab.read_text().replace("  script:", "  scripts:"))
    assert _run([_check_jsonschema(), "--builtin-schema", "vendor.gitlab-ci", broken]).returncode != 0


def test_github_workflow_builds_verifies_caches_and_keeps_the_outputs(github):
    doc = yaml.safe_load(github.read_text())
    steps = doc["jobs"]["build"]["steps"]
    runs = _commands(s.get("run", "") for s in steps)
    assert "cargo install --locked --path ." in runs
    assert "layerbuild --arch arm64" in runs
    assert "layerbuild verify" in runs
    cache = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache@"))
    assert "LAYERBUILD_CACHE" in cache["with"]["path"]
    for name in CACHE_INPUTS:
        assert name in cache["with"]["key"]
    go = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-go@"))
    assert go["with"]["cache-dependency-path"] == "collector/go.sum"
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    for pattern in ARTIFACTS:
        assert pattern in upload["with"]["path"]


def test_gitlab_job_builds_verifies_caches_and_keeps_the_outputs(gitlab):
    job = yaml.safe_load(gitlab.read_text())["layer"]
    runs = _commands(job["before_script"] + job["script"])
    assert "cargo install --locked --path ." in runs
    assert "layerbuild --arch arm64" in runs
    assert "layerbuild verify" in runs
    assert job["variables"]["LAYERBUILD_CACHE"].endswith(".cache/layerbuild")
    assert job["variables"]["GOMODCACHE"].endswith(".cache/go-mod")
    assert sorted(job["cache"]["key"]["files"]) == sorted(CACHE_INPUTS)
    assert {".cache/layerbuild", ".cache/go-mod"} <= set(job["cache"]["paths"])
    assert set(ARTIFACTS) <= set(job["artifacts"]["paths"])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
