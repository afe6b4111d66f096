"""The Python tests find the layerbuild cache root exactly as the binary does.

Needs the built binary: LAYERBUILD_BIN (make python-test sets it); skipped without it.
"""
import os
import subprocess
from pathlib import Path

import pytest

from layerbuild_env import cache_root

BIN = os.environ.get("LAYERBUILD_BIN")


@pytest.mark.skipif(not BIN, reason="LAYERBUILD_BIN is not set (make python-test sets it)")
@pytest.mark.parametrize(
    "env",
    [
        {"LAYERBUILD_CACHE": "/tmp/lb-explicit", "XDG_CACHE_HOME": "/tmp/xdg"},
        {"LAYERBUILD_CACHE": "", "XDG_CACHE_HOME": "/tmp/xdg"},
        {"LAYERBUILD_CACHE": "", "XDG_CACHE_HOME": ""},
    ],
)
def test_python_and_the_binary_agree_on_the_cache_root(env, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    shown = subprocess.run(
        [BIN, "cache", "dir"], check=True, capture_output=True, text=True, env=dict(os.environ)
    ).stdout.strip()
    assert Path(shown) == cache_root()
