"""The layerbuild cache root, found the way the binary finds it, for tests that cache downloads.

`LAYERBUILD_CACHE`, else `$XDG_CACHE_HOME/layerbuild`, else `~/.cache/layerbuild`.
"""
import os
from pathlib import Path


def cache_root() -> Path:
    explicit = os.environ.get("LAYERBUILD_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "layerbuild"
    return Path.home() / ".cache" / "layerbuild"
