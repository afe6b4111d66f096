"""Lays out a function for the emulator, runs sandbox.py in fresh namespaces, and reads the
outcome back: what the tests call to run a layer under AWS's Runtime Interface Emulator."""

import json
import os
import platform
import re
import shutil
import stat
import statistics
import subprocess
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from procwatch import ProcWatch, ProcWatchError, Seen
from provision import Interpreter

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FUNCTION_DIR = HERE / "function"
FUNCTION_NAME = "rie-orders"
REGION = "eu-west-1"
COLLECTOR = "/opt/extensions/collector"
# A whole run: init, a few invocations, shutdown, moto. Far above what it takes (~10 s).
RUN_TIMEOUT = 300
# The Lambda architecture tag in layer zip names, by machine.
ARCH_TAGS = {"x86_64": "amd64", "aarch64": "arm64"}


class HarnessError(RuntimeError):
    pass


# ------------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerKind:
    """A layer the suite proves: where its zip for this machine is found, and the runtimes it
    runs on (newest first; the newest runs the one-runtime cases)."""

    name: str
    variables: Tuple[str, ...]  # each names a zip; the first one set wins
    folder: str  # where its Makefile target builds it, under the repository
    pattern: str  # its zip's name there; {arch} is the architecture tag
    target: str  # the Makefile target that builds it
    runtimes: Tuple[str, ...]


LAYERS = (
    LayerKind("default", ("LAYERBUILD_RIE_ZIP", "LAYERBUILD_LAYER_ZIP"), "dist",
              "aws-otel-python-{arch}-ver-1-20-0.zip", "layers", ("3.9", "3.8")),
    # examples/current/layer.yaml, built by `make current`.
    LayerKind("current", ("LAYERBUILD_RIE_CURRENT_ZIP",), "dist/current", "*-{arch}-ver-*.zip", "current",
              ("3.13", "3.12")),
)


# (layer, runtime) of each runtime of each layer: the runs that cover them all.
LAYER_RUNTIMES = [(kind.name, version) for kind in LAYERS for version in kind.runtimes]


def layer_kind(name: str) -> LayerKind:
    return next(kind for kind in LAYERS if kind.name == name)


def layer_zip(kind: LayerKind) -> Path:
    """The kind's zip: the first of its variables set, else its one zip for this machine in
    its folder. Fails naming what was looked at."""
    for name in kind.variables:
        if os.environ.get(name):
            return Path(os.environ[name]).resolve()
    machine = platform.machine()
    if machine not in ARCH_TAGS:
        raise HarnessError("no %s layer for this machine (%s)" % (kind.name, machine))
    pattern = kind.pattern.format(arch=ARCH_TAGS[machine])
    found = sorted((REPO / kind.folder).glob(pattern))
    if len(found) != 1:
        what = "%d zips match %s" % (len(found), pattern) if found else "no %s" % pattern
        raise HarnessError("the %s layer: %s in %s (build it with `make %s`, or set %s to its "
                           "zip for this machine)" % (kind.name, what, REPO / kind.folder,
                                                      kind.target, kind.variables[0]))
    return found[0]


def other_architecture_zip(archive: Path) -> Path:
    """The zip of the other architecture beside `archive` (by the tag in its name)."""
    for ours, theirs in (("amd64", "arm64"), ("arm64", "amd64")):
        if "-%s-" % ours in archive.name:
            return archive.with_name(archive.name.replace("-%s-" % ours, "-%s-" % theirs))
    raise HarnessError("cannot tell the architecture of %s from its name" % archive.name)


def unpack_layer(archive: Path, dest: Path) -> Path:
    """Unpack a layer zip with the unix modes its entries carry, as Lambda does."""
    dest.mkdir(parents=True, exist_ok=True)
    dirs = []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0xFFFF
            target = dest / info.filename
            if stat.S_ISLNK(mode):
                raise HarnessError("%s: entry %s is a symlink" % (archive, info.filename))
            zf.extract(info, dest)
            if info.is_dir():
                dirs.append((target, mode & 0o7777))
            elif mode & 0o7777:
                os.chmod(target, mode & 0o7777)
    for target, mode in dirs:
        if mode:
            os.chmod(target, mode)
    return dest


def changed_layer(dest: Path, changes: Dict[str, Union[bytes, Path, None]],
                  modes: Optional[Dict[str, int]] = None) -> Path:
    """A folder of changes to lay over a layer (see sandbox.mount_tree): each path gets the
    given bytes or a copy of the given file, or is hidden when the value is None."""
    modes = modes or {}
    for rel, content in changes.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        for parent in target.relative_to(dest).parents:
            os.chmod(dest / parent, 0o755)
        if content is None:
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))  # overlayfs whiteout
            continue
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
        os.chmod(target, modes.get(rel, 0o644))
    return dest


def with_xray_endpoint(config: str, endpoint: str, region: str) -> str:
    """The collector config with only the awsxray exporter's endpoint and region set."""
    lines = config.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)awsxray:\s*(#.*)?$", line)
        if match:
            break
    else:
        raise HarnessError("the collector config has no `awsxray:` exporter")
    indent = len(match.group(1))
    end = index + 1
    while end < len(lines) and (not lines[end].strip() or
                                len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    child = " " * (indent + 2)
    body = [l for l in lines[index + 1:end]
            if not re.match(r"^%s(endpoint|region):" % child, l)]
    ours = ["%sendpoint: %s" % (child, endpoint), "%sregion: %s" % (child, region)]
    return "\n".join(lines[:index + 1] + ours + body + lines[end:]) + "\n"


# ------------------------------------------------------------------------------ runtime


@dataclass
class Runtime:
    """What is laid at /var/lang (the interpreter) and /var/runtime (bootstrap, packages)."""

    interp: Interpreter
    folders: List[str]

    @property
    def version(self) -> str:
        return self.interp.version


def prepare_runtime(interp: Interpreter, packages: Path, dest: Path) -> Runtime:
    dest.mkdir(parents=True, exist_ok=True)
    text = (HERE / "runtime" / "bootstrap").read_text()
    (dest / "bootstrap").write_text(text.replace("@PYTHON_VERSION@", interp.version))
    os.chmod(dest / "bootstrap", 0o755)
    shutil.copyfile(HERE / "runtime" / "bootstrap.py", dest / "bootstrap.py")
    return Runtime(interp, [str(dest), str(packages)])


# -------------------------------------------------------------------------------- a run


@dataclass
class RieRun:
    """Everything one sandbox run produced."""

    label: str
    spec: dict
    result: dict
    workdir: Path
    wall_s: float
    collector: List[Seen] = field(default_factory=list)
    watch_error: Optional[str] = None

    def _read(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def stdout(self) -> str:
        """What the runtime and the extensions printed (the function's log)."""
        return self._read("rie.stdout")

    @property
    def stderr(self) -> str:
        """The emulator's own log."""
        return self._read("rie.stderr")

    @property
    def invocations(self) -> List[dict]:
        return self.result.get("invocations", [])

    @property
    def cold_ms(self) -> Optional[float]:
        return self.invocations[0]["ms"] if self.invocations else None

    @property
    def warm_ms(self) -> List[float]:
        return [inv["ms"] for inv in self.invocations[1:]]

    def collector_lines(self) -> List[str]:
        return [l for l in self.stdout.splitlines()
                if "[collector]" in l or "\tinfo\t" in l or "\twarn\t" in l or "\terror\t" in l]

    @property
    def fallback_line(self) -> Optional[str]:
        """The line in which the collector says it falls back from the Telemetry API to
        exporting synchronously."""
        for line in self.collector_lines():
            if re.search(r"fall(s|ing)?[ -]?back|export(s|ing)? synchronously", line, re.I):
                return line.strip()
        return None

    @property
    def no_freeze_line(self) -> Optional[str]:
        """The line in which the collector says it took its "no freeze" path: the emulator
        answered the subscription with Telemetry.NotSupported, so event/next goes at once
        and batches are exported in the background (collector/README.md)."""
        for line in self.collector_lines():
            if 'export path "no freeze"' in line:
                return line.strip()
        return None

    def telemetry_lines(self) -> List[str]:
        """What the collector logged about the Telemetry API. The emulator itself logs
        nothing there: in its default mode the subscription goes to a stub that answers
        202 Telemetry.NotSupported and has no access log."""
        return [l.strip() for l in self.collector_lines()
                if re.search(r"telemetry api|/2022-07-01/telemetry|platform\.", l, re.I)]

    def collector_path(self) -> str:
        """Which export path the collector took, from what it logged."""
        if self.fallback_line:
            return "Telemetry API, synchronous fallback: %s" % self.fallback_line
        if self.no_freeze_line:
            return "no freeze, background export: %s" % self.no_freeze_line
        if self.telemetry_lines():
            return "Telemetry API drain: %s" % self.telemetry_lines()[0]
        return "no Telemetry API in the collector's log: it exports as data arrives"

    @property
    def init_ms(self) -> Optional[float]:
        """The emulator's measure of the first init (extensions and runtime up to /next)."""
        match = re.search(r"INIT REPORT\(durationMs: ([0-9.]+)\)", self.stderr)
        return round(float(match.group(1)), 1) if match else None

    def backend_requests_during_warm_invokes(self) -> int:
        """How many export requests reached a backend between the first warm invoke's start
        and SIGTERM."""
        if len(self.invocations) < 2:
            return 0
        start, end = self.invocations[1]["started"], self.result.get("sigterm_at", 0)
        arrivals = ([r["arrived"] for r in self.result.get("otlp", [])] +
                    [r["at"] for r in self.result.get("proxy_seen", [])])
        return sum(1 for at in arrivals if start <= at <= end)

    def figures(self) -> str:
        warm = self.warm_ms
        return ("cold %s ms (init %s), warm median %s ms (max %s), shutdown %s ms, run %.1f s; "
                "collector: %s"
                % (self.cold_ms, self.init_ms, round(statistics.median(warm), 1) if warm else "-",
                   max(warm) if warm else "-", self.result.get("shutdown_ms"), self.wall_s,
                   self.collector_path()))

    def tail(self, lines: int = 40) -> str:
        parts = []
        for name in ("rie.stderr", "rie.stdout", "moto.log", "sandbox.log"):
            text = self._read(name).strip().splitlines()
            if text:
                parts.append("--- %s (last %d lines)\n%s" % (name, lines, "\n".join(text[-lines:])))
        if self.result.get("fatal"):
            parts.append("--- sandbox failed\n%s" % self.result.get("traceback"))
        if self.result.get("errors"):
            parts.append("--- sandbox errors\n%s" % "\n".join(self.result["errors"]))
        return "\n".join(parts)


def run_function(workdir: Path, label: str, driver_python: Path, rie: Path, layer: List[Path],
                 runtime: Runtime, invocations: List[dict], collector_config: Optional[str] = None,
                 moto: bool = False, delay_ms: int = 0, env: Optional[dict] = None) -> RieRun:
    """Run the function under the emulator in fresh namespaces; bounded by RUN_TIMEOUT."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "workdir": str(workdir),
        "result": str(workdir / "result.json"),
        "layer": [str(p) for p in layer],
        "task": [str(FUNCTION_DIR)],
        "runtime": runtime.folders,
        "lang": [runtime.interp.prefix],
        "runtime_version": runtime.version,
        "rie": str(rie),
        "region": REGION,
        "function_name": FUNCTION_NAME,
        "backend_delay_ms": delay_ms,
        "collector_config": collector_config,
        "moto": moto,
        "env": env or {},
        "invocations": invocations,
    }
    (workdir / "spec.json").write_text(json.dumps(spec, indent=1))
    watch, watch_error = None, None
    try:
        watch = ProcWatch([COLLECTOR])
    except ProcWatchError as exc:
        watch_error = str(exc)
    argv = ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--kill-child",
            "--", str(driver_python), str(HERE / "sandbox.py"), str(workdir / "spec.json")]
    started = time.monotonic()
    with open(workdir / "sandbox.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        if watch is not None:
            watch.root = proc.pid
        try:
            proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            # --kill-child takes the sandbox down with unshare; the PID namespace goes with it.
            proc.kill()
            proc.wait()
    wall = time.monotonic() - started
    if watch is not None:
        time.sleep(0.2)  # the last exit events may still be on their way
        watch.close()
    result_path = workdir / "result.json"
    if result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        result = {"fatal": "the sandbox wrote no result (exit status %s after %.0f s)"
                           % (proc.returncode, wall), "traceback": ""}
    seen = watch.matching(COLLECTOR) if watch is not None else []
    return RieRun(label, spec, result, workdir, wall, seen, watch_error)
