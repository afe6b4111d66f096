"""The layerbuild cache root, found the way the binary finds it, for tests that cache downloads.

`LAYERBUILD_CACHE`, else `$XDG_CACHE_HOME/layerbuild`, else `$HOME/.cache/layerbuild`; XDG and
HOME count only when absolute, and with neither there is no cache (never the temp folder).
"""
import os
from pathlib import Path


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
