# Run by `layerbuild smoke` inside the runtime under test (natively or under qemu-user): imports
# every native module the layer ships for this interpreter and proves each one was loaded from
# its own file, built for this machine, and that the packages known to fall back to pure Python
# when their extension is unusable did not.
#
# Usage: python native_probe.py OUT.json ROOT [ROOT...]
#   ROOT: a layer folder on sys.path (the wrapper's /opt/python and
#   /opt/python/lib/pythonX.Y/site-packages), most specific last or first: the longest one that
#   holds a file names its module.
# Writes a JSON report to OUT.json; exit status 0 when every check passed, 1 otherwise.
# Keep this file valid for Python 3.8: it runs on every runtime.

import importlib
import importlib.machinery
import json
import os
import platform
import re
import struct
import sys
import traceback

# ELF e_machine by the machine name Python reports.
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}
SITE_DIR = re.compile(r"^lib/python\d+\.\d+$")


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return struct.unpack("<H", head[18:20])[0]


def mapped_files():
    """Every file mapped into this process, by real path."""
    found = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                found.add(os.path.realpath(parts[5].strip()))
    return found


def module_name(rel_path, suffix):
    """`pkg/sub/mod<suffix>` -> `pkg.sub.mod`, or None when a part is not importable."""
    parts = rel_path[: -len(suffix)].split("/")
    if all(p.isidentifier() for p in parts):
        return ".".join(parts)
    return None


def shipped_modules(roots):
    """Module name -> candidate files this interpreter would consider, best first; and the
    shared objects it never imports (other runtimes' tags, vendored libraries)."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    real_roots = sorted({os.path.realpath(r) for r in roots if os.path.isdir(r)}, key=len, reverse=True)
    candidates = {}
    ignored = []
    for root in real_roots:
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
            # Per-runtime site-packages folders are roots of their own (or another runtime's).
            dirnames[:] = sorted(
                d for d in dirnames if not SITE_DIR.match(d if rel_dir == "." else rel_dir + "/" + d)
            )
            for name in sorted(filenames):
                if ".so" not in name:
                    continue
                path = os.path.join(dirpath, name)
                owner = next(r for r in real_roots if (path + "/").startswith(r + "/"))
                if owner != root:
                    continue
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                suffix = next((s for s in suffixes if name.endswith(s)), None)
                mod = module_name(rel, suffix) if suffix else None
                if mod is None:
                    ignored.append(path)
                    continue
                rank = suffixes.index(suffix)
                candidates.setdefault(mod, []).append((rank, path))
    return {m: [p for _, p in sorted(c)] for m, c in candidates.items()}, sorted(ignored)


def probe_module(name, files, want_machine):
    entry = {"module": name, "file": files[0], "shadowed": files[1:], "ok": False}
    entry["elf_machine"] = elf_machine(files[0])
    try:
        mod = importlib.import_module(name)
    except BaseException as e:  # a bad .so can raise anything, SystemError included
        entry["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()
        return entry
    loaded = getattr(mod, "__file__", None)
    entry["loaded_from"] = loaded
    problems = []
    if loaded is None or os.path.realpath(loaded) != os.path.realpath(files[0]):
        problems.append("imported from %s, not from the layer's %s" % (loaded, files[0]))
    if os.path.realpath(files[0]) not in mapped_files():
        problems.append("%s is not mapped into the process (/proc/self/maps)" % files[0])
    if want_machine is not None and entry["elf_machine"] != want_machine:
        problems.append("ELF e_machine %s, not %s" % (entry["elf_machine"], want_machine))
    entry["ok"] = not problems
    if problems:
        entry["error"] = "; ".join(problems)
    return entry


def is_extension(module):
    """The module was loaded from a shared object, not from Python source."""
    path = getattr(module, "__file__", None) or ""
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def check_protobuf():
    # Every release since 4.21 (upb) names its backend the same way, up to 7.x.
    from google.protobuf.internal import api_implementation

    kind = api_implementation.Type()
    core = sys.modules.get("google._upb._message")
    ok = kind == "upb" and core is not None and is_extension(core)
    return ok, "protobuf implementation: %s" % kind


def check_wrapt():
    import wrapt

    # wrapt 1.x exports the C type itself as wrapt.ObjectProxy; 2.x exports a Python subclass
    # of it (wrapt.proxies). Either way the C type from wrapt._wrappers is in the MRO; after a
    # fallback to pure Python it is not (and wrapt._wrappers is not loaded at all).
    native = sys.modules.get("wrapt._wrappers")
    c_type = getattr(native, "ObjectProxy", None) if native is not None else None
    proxy = wrapt.ObjectProxy
    name = "%s.%s" % (proxy.__module__, proxy.__qualname__)
    if c_type is not None and is_extension(native) and c_type in proxy.__mro__:
        how = "is" if proxy is c_type else "derives from"
        return True, "wrapt.ObjectProxy (%s) %s the C type from wrapt._wrappers" % (name, how)
    return False, "wrapt.ObjectProxy (%s) is pure Python: no C type from wrapt._wrappers in its MRO" % name


def check_grpc():
    import grpc  # noqa: F401  (grpc imports its Cython core on import)

    core = sys.modules.get("grpc._cython.cygrpc")
    ok = core is not None and is_extension(core)
    return ok, "grpc core: %s" % getattr(core, "__file__", "not imported")


# Packages that quietly fall back to pure Python (or fail late) when their extension is unusable:
# (the native module whose presence makes the check apply, the check).
FALLBACKS = [
    ("google._upb._message", "protobuf", check_protobuf),
    ("wrapt._wrappers", "wrapt", check_wrapt),
    ("grpc._cython.cygrpc", "grpcio", check_grpc),
]


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: native_probe.py OUT.json ROOT [ROOT...]\n")
        return 2
    out, roots = argv[1], argv[2:]
    machine = platform.machine()
    want = ELF_MACHINES.get(machine)
    modules, ignored = shipped_modules(roots)
    report = {
        "python": "%d.%d.%d" % sys.version_info[:3],
        "machine": machine,
        "roots": roots,
        "fallbacks": [],
        "modules": [],
        "ignored": ignored,
    }
    # The packages first, imported as user code would, so that a silent fallback shows.
    for native, package, check in FALLBACKS:
        if native not in modules:
            continue
        try:
            ok, detail = check()
        except BaseException as e:
            ok, detail = False, "".join(traceback.format_exception_only(type(e), e)).strip()
        report["fallbacks"].append({"package": package, "ok": bool(ok), "detail": detail})
    for name in sorted(modules):
        report["modules"].append(probe_module(name, modules[name], want))
    report["ok"] = all(
        e["ok"] for e in report["modules"] + report["fallbacks"]
    )
    with open(out, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
