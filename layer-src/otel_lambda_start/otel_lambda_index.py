"""The OpenTelemetry entry points of every distribution on sys.path, read once at start-up.

importlib.metadata (and pkg_resources on contrib 0.41b0) scans every sys.path folder again for
each lookup; OpenTelemetry's start-up makes a dozen. This reader lists each folder once, keeps the
first distribution of each name (as importlib.metadata does), and reads only the entry_points.txt
files (about 2 ms for the layer and Lambda's runtime folder, so no index is written at build
time). `serving()` answers OpenTelemetry's entry point lookups from it while sys.path stays as it
was read, with the OTLP span and log exporters deferred (otel_lambda_exporter.py).
"""
import contextlib
import os
import re

PREFIX = "opentelemetry"
DEFERRED_EXPORTERS = ("opentelemetry_traces_exporter", "opentelemetry_logs_exporter")
OTLP = "opentelemetry.exporter.otlp."
_INSTRUMENTS = re.compile(r"""extra\s*==\s*["'](instruments(?:-any)?)["']""")


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement):
    """`requests ~= 2.0` -> `requests`."""
    return normalize(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def parse_entry_points(text):
    """[(group, name, value)] of the groups whose name starts with `opentelemetry`."""
    out, group = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif group and group.startswith(PREFIX) and "=" in line:
            name, _, value = line.partition("=")
            out.append((group, name.strip(), value.strip()))
    return out


def parse_instruments(metadata):
    """(requirements of extra `instruments`, of extra `instruments-any`) from METADATA text."""
    plain, any_of = [], []
    for line in metadata.splitlines():
        if not line.strip():
            break  # the headers end at the first empty line
        if not line.startswith("Requires-Dist:"):
            continue
        found = _INSTRUMENTS.search(line)
        if found:
            requirement = line[len("Requires-Dist:"):].split(";", 1)[0].strip()
            (any_of if found.group(1) == "instruments-any" else plain).append(requirement)
    return plain, any_of


class Dist:
    __slots__ = ("folder", "name", "version", "entry_points", "_instruments")

    def __init__(self, folder, name, version, entry_points, instruments=None):
        self.folder = folder
        self.name = name
        self.version = version
        self.entry_points = entry_points
        self._instruments = instruments

    def instruments(self):
        if self._instruments is None:
            try:
                with open(os.path.join(self.folder, "METADATA"), encoding="utf-8") as f:
                    self._instruments = parse_instruments(f.read())
            except OSError:
                self._instruments = ([], [])
        return self._instruments


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _scan(entry, names):
    """The distributions in one sys.path folder, or None when one cannot be read like
    importlib.metadata would (an egg-info file, an egg)."""
    out = []
    for folder in sorted(names):
        path = os.path.join(entry, folder)
        if folder.endswith(".egg-info") and not os.path.isdir(path):
            return None
        stem = folder.rsplit(".", 1)[0]
        name, _, version = stem.partition("-")
        if folder.endswith(".egg-info"):
            version = version.split("-")[0]
        out.append(Dist(path, name, version,
                        parse_entry_points(_read_text(os.path.join(path, "entry_points.txt")))))
    return out


class Found:
    """Distributions by sys.path order, first of each name."""

    def __init__(self, path, dists):
        self.path = list(path)
        self.dists = dists
        self._of = {}

    def version(self, name):
        key = normalize(name)
        for dist in self.dists:
            if normalize(dist.name) == key:
                return dist.version
        return None

    def entry_points(self, group, name=None):
        from opentelemetry.util._importlib_metadata import EntryPoint

        out = []
        for dist in self.dists:
            for got_group, got_name, value in dist.entry_points:
                if got_group == group and (name is None or got_name == name):
                    ep = EntryPoint(name=got_name, value=value, group=group)
                    self._of[(group, got_name, value)] = dist
                    out.append(ep)
        return out

    def instruments(self, entry_point):
        dist = self._of.get((entry_point.group, entry_point.name, entry_point.value))
        return dist.instruments() if dist else ([], [])


def read(path):
    """Found for the sys.path `path`, or None when a folder cannot be read this way."""
    dists, seen = [], set()
    for entry in path:
        folder = entry or "."
        if not os.path.isdir(folder):
            if os.path.exists(folder):
                return None  # a zip on sys.path may hold distributions
            continue
        try:
            names = [n for n in os.listdir(folder) if n.endswith((".dist-info", ".egg-info"))]
        except OSError:
            continue
        scanned = _scan(folder, names)
        if scanned is None:
            return None
        for dist in scanned:
            key = normalize(dist.name)
            if key not in seen:
                seen.add(key)
                dists.append(dist)
    return Found(path, dists)


@contextlib.contextmanager
def serving(found):
    """OpenTelemetry's entry point lookups answered from `found` while this runs (and, for the
    modules that took the function during it, later too, while sys.path is unchanged)."""
    import sys

    from opentelemetry.util import _importlib_metadata as meta
    from otel_lambda_exporter import deferred

    real = meta.entry_points

    def entry_points(**params):
        group = params.get("group")
        if (group is None or not group.startswith(PREFIX) or set(params) - {"group", "name"}
                or sys.path != found.path):
            return real(**params)
        got = found.entry_points(group, params.get("name"))
        if group in DEFERRED_EXPORTERS:
            got = [deferred(ep) if ep.value.startswith(OTLP) else ep for ep in got]
        return meta.EntryPoints(got)

    meta.entry_points = entry_points
    try:
        yield
    finally:
        meta.entry_points = real
