"""Benchmark: warm-cache layer builds by layerbuild against the pip and uv recipes, cold starts,
and warm invoke latency with a near and a distant trace backend.

Prints every figure and the ratios; asserts nothing about time (targets are read by people).
Run as `make bench` from the repository root; `python3 bench/bench.py init` prints only the
cold-init table (init CPU over bare against the pip-built peers, bench/coldinit.py).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "pylib"))
WORK = ROOT / "target" / "bench"
LAYERBUILD = ROOT / "target" / "release" / "layerbuild"
LOCK = ROOT / "layer-src" / "requirements.txt"
os.environ.setdefault("PIP_ROOT_USER_ACTION", "ignore")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
PEER_RUNS = int(os.environ.get("BENCH_PEER_RUNS", "3"))
ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}
PEER_PYTHON = "3.9"  # one runtime for the peers; layerbuild builds both 3.8 and 3.9
EXCLUDE = ("boto", "urllib3")


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def timed(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def cache_dir():
    if os.environ.get("LAYERBUILD_CACHE"):
        return Path(os.environ["LAYERBUILD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache")
    return Path(base) / "layerbuild"


def wheelhouse():
    """The wheels the lock names, as a flat folder, taken from layerbuild's cache."""
    house = WORK / "wheelhouse"
    shutil.rmtree(house, ignore_errors=True)
    house.mkdir(parents=True)
    for whl in (cache_dir() / "wheels").glob("*/*.whl"):
        target = house / whl.name
        if not target.exists():
            os.link(whl, target)
    # layerbuild never fetches what python.exclude drops (urllib3), but the recipes install it.
    missing = sorted({line.split("==")[0] for line in LOCK.read_text().splitlines()
                      if "==" in line and not line.startswith("#")
                      and not any(w.name.startswith(line.split("==")[0].replace("-", "_") + "-") for w in house.iterdir())})
    pins = [line.split(" ")[0] for line in LOCK.read_text().splitlines() if line.split("==")[0] in missing]
    for machine in ARCHES.values():
        if pins:
            run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--dest", str(house),
                 *platforms(machine), "--python-version", PEER_PYTHON, "--implementation", "cp", *pins])
    return house


def zip_tree(tree, out):
    out.unlink(missing_ok=True)
    run(["zip", "-qr", str(out), "."], cwd=tree)


def prune(site):
    for p in site.iterdir():
        if p.name.lower().startswith(EXCLUDE):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def platforms(machine):
    tags = ["manylinux2014_" + machine] + [f"manylinux_2_{m}_{machine}" for m in range(17, 27)]
    return [x for t in tags for x in ("--platform", t)]


def pip_recipe(house):
    for arch, machine in ARCHES.items():
        tree = WORK / "pip" / arch
        shutil.rmtree(tree, ignore_errors=True)
        run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(house), "--no-deps",
             "--target", str(tree / "python"), *platforms(machine), "--only-binary=:all:",
             "--python-version", PEER_PYTHON, "--implementation", "cp", "-r", str(LOCK)])
        zip_tree(tree, WORK / f"pip-{arch}.zip")


def uv_bin():
    venv = WORK / "uv-venv"
    uv = venv / "bin" / "uv"
    if not uv.exists():
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "uv"])
    return uv


def uv_recipe(uv, house, keep=False):
    for arch, machine in ARCHES.items():
        tree = WORK / "uv" / arch
        shutil.rmtree(tree, ignore_errors=True)
        run([str(uv), "pip", "install", "-q", "--no-index", "--find-links", str(house), "--no-deps",
             "--target", str(tree / "python"), "--python-platform", f"{machine}-manylinux_2_17",
             "--python-version", PEER_PYTHON, "-r", str(LOCK)], env={**os.environ, "UV_CACHE_DIR": str(WORK / "uv-cache")})
        if keep:
            prune(tree / "python")
        zip_tree(tree, WORK / f"uv-{arch}.zip")


def ours(out, extra=()):
    run([str(LAYERBUILD), "--out", str(out), "-q", "--offline", *extra], cwd=ROOT)


def python_only_spec():
    """The default layer's python tree alone, one runtime: the same content the uv recipe makes."""
    spec = WORK / "python-only.yaml"
    spec.write_text(
        "name: bench\nversion: 1.0.0\narchitectures: [x86_64, arm64]\n"
        f"runtimes: [python{PEER_PYTHON}]\n"
        f"python:\n  lock: {LOCK}\n  bytecode: never\n"
    )
    return spec


COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "4"))
COLD_BLOCKS = int(os.environ.get("BENCH_COLD_BLOCKS", "4"))


def pip_layer(ours_zip):
    """The pip recipe's x86_64 tree as a layer: same wrapper, shim, collector and config as ours."""
    layer = WORK / "pip-layer"
    shutil.rmtree(layer, ignore_errors=True)
    shutil.copytree(WORK / "pip" / "x86_64" / "python", layer / "python", symlinks=True)
    prune(layer / "python")
    shutil.copy(ROOT / "layer-src" / "otel-instrument", layer / "otel-instrument")
    os.chmod(layer / "otel-instrument", 0o755)
    shutil.copy(ROOT / "layer-src" / "otel_wrapper.py", layer / "python" / "otel_wrapper.py")
    run(["unzip", "-q", str(ours_zip), "extensions/*", "collector-config/*", "-d", str(layer)])
    return layer


def smoke(target, *flags):
    """`layerbuild smoke ... --json`, failing the bench when the layer itself did not work. Whether
    spans beat the freeze is the collector's part and is reported, not required, here."""
    out = run([str(LAYERBUILD), "smoke", *target, "--runtime", f"python{PEER_PYTHON}", "--free-ports", *flags,
               "--json"], cwd=ROOT, stdout=subprocess.PIPE, check=False)
    report = json.loads(out.stdout)
    broken = [f"{r['runtime']}: {c['name']}: {c['detail']}" for r in report["runs"] for c in r["checks"]
              if not c["ok"] and not c["name"].startswith("spans before the freeze")]
    broken += [f"{r['runtime']}: {r['failure']}" for r in report["runs"] if not r["checks"]]
    if broken:
        raise SystemExit(f"bench: smoke {' '.join(target)} did not work: {broken}")
    return report


def cold_start(target, runs):
    report = smoke(target, "--warm-invokes", "0", "--late-backend-ms", "0", "--freeze-ms", "0",
                   "--cold-start-runs", str(runs))
    cold = report.get("cold_start") or {}
    if cold.get("failures") or not cold.get("wrapper_to_result_ms"):
        raise SystemExit(f"bench: smoke {' '.join(target)} timed no cold start: {json.dumps(report)[:2000]}")
    return cold["wrapper_to_result_ms"]


WARM_INVOKES = int(os.environ.get("BENCH_WARM_INVOKES", "10"))
LATE_BACKEND_MS = 300


def warm_latency(target):
    """Warm invokes' response latency with the receiver answering at once and 300 ms late, and
    how many invocations' spans reached it before the sandbox froze."""
    report = smoke(target, "--warm-invokes", str(WARM_INVOKES), "--late-backend-ms", str(LATE_BACKEND_MS),
                   "--freeze-ms", "100")
    run_report = report["runs"][0]
    warm = run_report["warm_invoke_ms"]
    before = {0: [0, 0], LATE_BACKEND_MS: [0, 0]}
    for inv in run_report["invocations"]:
        if not inv["cold"]:
            counts = before[inv["backend_delay_ms"]]
            counts[0] += inv["spans_after_freeze"] == 0 and inv["spans_before_freeze"] > 0
            counts[1] += 1
    return warm, before


# A backend that never answers within the run: the receiver holds every post for a minute.
UNREACHABLE_MS = 60000
# Lambda's default function timeout: the invoke phase (response, then the extensions' work up to
# the freeze) must end within it.
LAMBDA_DEFAULT_TIMEOUT_MS = 3000


def unreachable_backend(target):
    """Warm invokes with a backend that never answers: response latency, and the whole invoke
    phase (response plus the extensions' time before the freeze) against Lambda's 3 s timeout."""
    report = smoke(target, "--warm-invokes", "3", "--late-backend-ms", str(UNREACHABLE_MS),
                   "--freeze-ms", "100")
    rounds = [inv for inv in report["runs"][0]["invocations"]
              if not inv["cold"] and inv["backend_delay_ms"] == UNREACHABLE_MS]
    if not rounds or any(inv["invoke_ms"] is None or inv["frozen_after_response_ms"] is None
                         for inv in rounds):
        raise SystemExit(f"bench: an invocation with the backend unreachable never ended: {rounds}")
    return [inv["invoke_ms"] for inv in rounds], [inv["invoke_ms"] + inv["frozen_after_response_ms"]
                                                  for inv in rounds]


def cold_starts(targets):
    """Cold starts of each layer, taken in alternating blocks: this machine's speed drifts over
    minutes, and alternating puts the drift on every layer alike instead of on whichever ran last."""
    times = {name: [] for name in targets}
    for _ in range(COLD_BLOCKS):
        for name, target in targets.items():
            times[name] += cold_start(target, COLD_RUNS)
    return times


INIT_RUNS = int(os.environ.get("BENCH_INIT_RUNS", "7"))
CURRENT_SPEC = Path(os.environ.get("BENCH_CURRENT_SPEC") or ROOT / "examples" / "current" / "layer.yaml")
# Targets of issue 23: init CPU over bare, both handler shapes.
INIT_TARGETS = {"default": 150, "current": 100}


def current_x86_312():
    """examples/current/layer.yaml for the one runtime measured (python3.12, x86_64)."""
    here = CURRENT_SPEC.parent
    text = CURRENT_SPEC.read_text().replace("../../", f"{ROOT}/")
    text = text.replace("requirements: requirements.in", f"requirements: {here}/requirements.in")
    text = text.replace("lock: requirements.txt", f"lock: {here}/requirements.txt")
    lines = [("runtimes: [python3.12]" if line.startswith("runtimes:") else
              "architectures: [x86_64]" if line.startswith("architectures:") else line)
             for line in text.splitlines()]
    spec = WORK / "current-312.yaml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def unzipped(zip_path, dest):
    shutil.rmtree(dest, ignore_errors=True)
    run(["unzip", "-q", str(zip_path), "-d", str(dest)])
    return dest


def cold_init(ours_zip):
    """Init CPU over bare of the default and the current layer against their pip-built peers,
    and the collector's time to its first event/next (bench/coldinit.py)."""
    from coldinit import collector_first_next, peer_layer, table
    from otel_sets import lock_pins
    from layerbuild_env import find_interpreter

    layers = [("default layer (1.20.0 / 0.41b0)", "default", PEER_PYTHON, LOCK,
               unzipped(ours_zip, WORK / "init-default"))]
    if CURRENT_SPEC.is_file():
        run([str(LAYERBUILD), "--spec", str(current_x86_312()), "--source-root", str(ROOT),
             "--out", str(WORK / "current"), "-q"], cwd=ROOT)
        current_zip = next((WORK / "current").glob("*amd64*.zip"))
        layers.append(("current layer (1.45 / 0.66bN)", "current", "3.12",
                       CURRENT_SPEC.parent / "requirements.txt", unzipped(current_zip, WORK / "init-current")))
    else:
        print(f"current layer: {CURRENT_SPEC} is not on this branch; its cold start is not measured")
    for title, key, version, lock, ours in layers:
        interp = find_interpreter(version)
        if interp is None:
            print(f"{title}: no python{version} here; not measured")
            continue
        peer = peer_layer(lock_pins(lock), interp, WORK / f"init-peer-{key}")
        quick = table(title, version, ours, peer, INIT_RUNS)
        print(f"  target: quick start-up <= {INIT_TARGETS[key]} ms over bare in both shapes: "
              f"{'met' if max(quick) <= INIT_TARGETS[key] else 'NOT met'}")
    first = collector_first_next(layers[0][4], INIT_RUNS)
    print(f"collector: exec to first event/next (median of {len(first)}): "
          f"wall {statistics.median(w for w, _ in first):.0f} ms, "
          f"CPU {statistics.median(c for _, c in first):.0f} ms (clock-tick resolution)")


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    run(["cargo", "build", "--release", "-q"], cwd=ROOT)
    if sys.argv[1:] == ["init"]:  # the cold-init table alone: `python3 bench/bench.py init`
        run([str(LAYERBUILD), "--out", str(WORK / "ours"), "-q"], cwd=ROOT)
        cold_init(WORK / "ours" / "aws-otel-python-amd64-ver-1-20-0.zip")
        return
    # Warm every cache layerbuild has (wheels, collector build, compressed entries).
    run([str(LAYERBUILD), "--out", str(WORK / "ours"), "-q"], cwd=ROOT)
    house = wheelhouse()
    uv = uv_bin()

    ours_med, ours_min = timed(lambda: ours(WORK / "ours"), RUNS)
    pip_med, pip_min = timed(lambda: pip_recipe(house), PEER_RUNS)
    uv_recipe(uv, house)  # fill uv's own cache: the uv recipe is timed warm too
    uv_med, uv_min = timed(lambda: uv_recipe(uv, house), PEER_RUNS)

    print(f"build, both architectures, warm cache (median of {RUNS} / {PEER_RUNS} runs, min in brackets)")
    print(f"  layerbuild (python3.8+3.9, bytecode, collector): {ours_med:7.3f} s  [{ours_min:.3f}]")
    print(f"  pip recipe (python{PEER_PYTHON}, + zip -qr):          {pip_med:7.3f} s  [{pip_min:.3f}]")
    print(f"  uv recipe  (python{PEER_PYTHON}, + zip -qr):          {uv_med:7.3f} s  [{uv_min:.3f}]")
    print(f"  ratio layerbuild/pip: {ours_med / pip_med:.3f}  (target <= 0.10)")
    print(f"  ratio layerbuild/uv:  {ours_med / uv_med:.3f}  (target < 0.50)")

    # Size: the same content (python tree, one runtime, no bytecode, boto*/urllib3* removed).
    spec = python_only_spec()
    run([str(LAYERBUILD), "--spec", str(spec), "--out", str(WORK / "size"), "-q", "--offline"], cwd=ROOT)
    uv_recipe(uv, house, keep=True)
    print("zip size, same content (python tree for one runtime, no bytecode)")
    for arch in ARCHES:
        name = "amd64" if arch == "x86_64" else "arm64"
        mine = (WORK / "size" / f"bench-{name}-ver-1-0-0.zip").stat().st_size
        theirs = (WORK / f"uv-{arch}.zip").stat().st_size
        print(f"  {arch}: layerbuild {mine} bytes, uv recipe {theirs} bytes, ratio {mine / theirs:.3f}  (target <= 1.0)")
    ours_zip = WORK / "ours" / "aws-otel-python-amd64-ver-1-20-0.zip"
    pip_recipe(house)
    cold = cold_starts({"ours": [str(ours_zip)], "pip": ["--dir", str(pip_layer(ours_zip))]})
    mine, theirs = cold["ours"], cold["pip"]
    print(f"cold start, x86_64, python{PEER_PYTHON}, wrapper start to first handler result "
          f"({len(mine)} runs each in {COLD_BLOCKS} alternating blocks, read-only layer, "
          "PYTHONDONTWRITEBYTECODE=1)")
    print(f"  layerbuild zip:           median {statistics.median(mine):6.0f} ms, min {min(mine)} ms")
    print(f"  pip recipe, same wrapper: median {statistics.median(theirs):6.0f} ms, min {min(theirs)} ms")
    print(f"  ratio layerbuild/pip: {statistics.median(mine) / statistics.median(theirs):.3f} median, "
          f"{min(mine) / min(theirs):.3f} min  (target <= 0.60)")
    warm, before = warm_latency([str(ours_zip)])
    at_once, late = warm["median_at_once_ms"], warm["median_late_ms"]
    print(f"warm invoke response latency, x86_64, python{PEER_PYTHON}, {WARM_INVOKES} invokes per backend "
          "(sandbox frozen after each)")
    print(f"  backend at once:          median {at_once:6d} ms, min {min(warm['backend_at_once'])} ms; "
          f"spans before the freeze {before[0][0]}/{before[0][1]}")
    print(f"  backend {LATE_BACKEND_MS} ms late:      median {late:6d} ms, min {min(warm['backend_late'])} ms; "
          f"spans before the freeze {before[LATE_BACKEND_MS][0]}/{before[LATE_BACKEND_MS][1]}")
    print(f"  difference: {late - at_once:+d} ms  (target <= 10 ms, with every invocation's spans before the freeze)")
    response, phase = unreachable_backend([str(ours_zip)])
    over = sum(ms > LAMBDA_DEFAULT_TIMEOUT_MS for ms in phase)
    print(f"  backend unreachable:      median {statistics.median(response):6.0f} ms response; invoke phase "
          f"(response to freeze) max {max(phase)} ms; {over} of {len(phase)} over Lambda's default "
          f"{LAMBDA_DEFAULT_TIMEOUT_MS} ms timeout  (target: none)")
    cold_init(ours_zip)
    for arch in ARCHES:
        name = "amd64" if arch == "x86_64" else "arm64"
        m = json.loads((WORK / "ours" / f"aws-otel-python-{name}-ver-1-20-0.manifest.json").read_text())
        print(f"  default layer {arch}: {m['zip']['size']} bytes zipped, {m['zip']['unzipped_size']} unzipped, "
              f"bytecode for {', '.join(m['bytecode_runtimes']) or 'none'}")


if __name__ == "__main__":
    main()
