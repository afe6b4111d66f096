"""SnapStart: sandboxes restored from one snapshot must not repeat trace and span ids.

A stand-in for the runtime's snapshot_restore_py records the shim's after-restore hooks. The
test initialises once (the shim imported, as at init before the snapshot), then "restores" twice
from that one state: two forked children, each running the hooks as the runtime does after a
restore, then drawing ids from the SDK's random and X-Ray id generators.
"""
import json
import subprocess
import sys
from pathlib import Path


from conftest import FAKE_TASK, missing

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pylib"))

from layerbuild_env import find_interpreter  # noqa: E402
from otel_sets import SETS, assemble_layer, otel_tree  # noqa: E402

FAKE_HOOKS = '''
hooks = []
def register_after_restore(func, *args, **kwargs):
    hooks.append((func, args, kwargs))
def restore():
    for func, args, kwargs in hooks:
        func(*args, **kwargs)
'''

RESTORE_TWICE = '''
import json, os, sys
import otel_wrapper
import snapshot_restore_py
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator

def restored():
    read, write = os.pipe()
    if os.fork() == 0:
        snapshot_restore_py.restore()
        ids = [RandomIdGenerator().generate_trace_id(), AwsXRayIdGenerator().generate_span_id()]
        os.write(write, json.dumps(ids).encode())
        os._exit(0)
    os.close(write)
    ids = json.loads(os.read(read, 4096))
    os.wait()
    return ids

print(json.dumps({"hooks": len(snapshot_restore_py.hooks), "runs": [restored(), restored()]}))
'''


def _restore_twice(tmp_path, with_runtime_hooks):
    otel_set = next(s for s in SETS if s.python == "3.12" and s.full)
    interp = find_interpreter("3.12")
    if interp is None:
        missing("no python3.12: SnapStart needs python3.12 or later")
    root = assemble_layer(otel_tree(otel_set, interp), tmp_path / "opt")
    runtime = tmp_path / "var-runtime"
    runtime.mkdir()
    if with_runtime_hooks:
        (runtime / "snapshot_restore_py.py").write_text(FAKE_HOOKS)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ORIG_HANDLER": "app.handler",
           "PYTHONPATH": ":".join([str(runtime), str(FAKE_TASK), str(root / "python")]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    code = RESTORE_TWICE if with_runtime_hooks else "import otel_wrapper\n" \
        "import json; print(json.dumps(otel_wrapper.reseed_after_restore()))"
    proc = subprocess.run([interp.real, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_restored_sandboxes_draw_different_ids(tmp_path):
    got = _restore_twice(tmp_path, True)
    assert got["hooks"] == 1
    first, second = got["runs"]
    assert first[0] != second[0], "trace ids repeat across restores"
    assert first[1] != second[1], "span ids repeat across restores"


def test_without_snapstart_hooks_nothing_is_registered(tmp_path):
    assert _restore_twice(tmp_path, False) is False
