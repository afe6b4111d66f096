"""smoke's native-module probe (src/smoke/native_probe.py): its fallback checks tell a package
that uses its C extension from one that fell back to pure Python, for wrapt 1.x (the C type is
wrapt.ObjectProxy) and 2.x (wrapt.ObjectProxy is a Python subclass of the C type), protobuf's
upb and grpc's Cython core. The packages are stand-ins put into sys.modules: a C type of the
standard library (collections.OrderedDict) plays the extension's type, and a module whose
__file__ carries this interpreter's extension suffix plays the extension module."""

import collections
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[2] / "src" / "smoke" / "native_probe.py"
EXT = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.fixture()
def probe():
    spec = importlib.util.spec_from_file_location("native_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def module(name, file, **attrs):
    m = types.ModuleType(name)
    m.__file__ = file
    for key, value in attrs.items():
        setattr(m, key, value)
    return m


def wrapt_modules(proxy, native_type=None, native_file="wrapt/_wrappers" + EXT):
    mods = {"wrapt": module("wrapt", "wrapt/__init__.py", ObjectProxy=proxy)}
    if native_type is not None:
        mods["wrapt._wrappers"] = module("wrapt._wrappers", native_file, ObjectProxy=native_type)
    return mods


def test_wrapt_1x_exporting_the_c_type_passes(probe, monkeypatch):
    c_type = collections.OrderedDict
    for name, m in wrapt_modules(c_type, c_type).items():
        monkeypatch.setitem(sys.modules, name, m)
    monkeypatch.delitem(sys.modules, "wrapt.proxies", raising=False)
    ok, detail = probe.check_wrapt()
    assert ok, detail
    assert "is the C type from wrapt._wrappers" in detail


def test_wrapt_2x_python_subclass_of_the_c_type_passes(probe, monkeypatch):
    c_type = collections.OrderedDict
    proxy = type("ObjectProxy", (c_type,), {"__module__": "wrapt.proxies"})
    for name, m in wrapt_modules(proxy, c_type).items():
        monkeypatch.setitem(sys.modules, name, m)
    ok, detail = probe.check_wrapt()
    assert ok, detail
    assert detail == ("wrapt.ObjectProxy (wrapt.proxies.ObjectProxy) derives from the C type "
                      "from wrapt._wrappers")


def test_wrapt_pure_python_fallback_fails(probe, monkeypatch):
    proxy = type("ObjectProxy", (object,), {"__module__": "wrapt.wrappers"})
    for name, m in wrapt_modules(proxy).items():
        monkeypatch.setitem(sys.modules, name, m)
    monkeypatch.delitem(sys.modules, "wrapt._wrappers", raising=False)
    ok, detail = probe.check_wrapt()
    assert not ok
    assert "is pure Python" in detail


def test_wrapt_whose_native_module_is_python_source_fails(probe, monkeypatch):
    c_type = collections.OrderedDict
    proxy = type("ObjectProxy", (c_type,), {"__module__": "wrapt.proxies"})
    for name, m in wrapt_modules(proxy, c_type, native_file="wrapt/_wrappers.py").items():
        monkeypatch.setitem(sys.modules, name, m)
    ok, _ = probe.check_wrapt()
    assert not ok


def test_wrapt_2x_subclass_of_an_unrelated_type_fails(probe, monkeypatch):
    proxy = type("ObjectProxy", (collections.OrderedDict,), {"__module__": "wrapt.proxies"})
    for name, m in wrapt_modules(proxy, collections.deque).items():
        monkeypatch.setitem(sys.modules, name, m)
    ok, _ = probe.check_wrapt()
    assert not ok


@pytest.mark.parametrize("kind, core_file, want", [
    ("upb", "google/_upb/_message.abi3.so", True),
    ("python", None, False),
    ("upb", "google/_upb/_message.py", False),
])
def test_protobuf_backend(probe, monkeypatch, kind, core_file, want):
    api = module("google.protobuf.internal.api_implementation", "api_implementation.py",
                 Type=lambda: kind)
    internal = module("google.protobuf.internal", "internal/__init__.py",
                      api_implementation=api)
    monkeypatch.setitem(sys.modules, "google.protobuf.internal", internal)
    monkeypatch.setitem(sys.modules, "google.protobuf.internal.api_implementation", api)
    if core_file is None:
        monkeypatch.delitem(sys.modules, "google._upb._message", raising=False)
    else:
        core_file = core_file.replace(".abi3.so", EXT if EXT.endswith(".so") else ".abi3.so")
        monkeypatch.setitem(sys.modules, "google._upb._message",
                            module("google._upb._message", core_file))
    ok, detail = probe.check_protobuf()
    assert ok is want, detail
    assert detail == "protobuf implementation: %s" % kind


def test_grpc_core_must_be_the_extension(probe, monkeypatch):
    monkeypatch.setitem(sys.modules, "grpc", module("grpc", "grpc/__init__.py"))
    monkeypatch.setitem(sys.modules, "grpc._cython.cygrpc",
                        module("grpc._cython.cygrpc", "grpc/_cython/cygrpc" + EXT))
    assert probe.check_grpc()[0]
    monkeypatch.delitem(sys.modules, "grpc._cython.cygrpc")
    ok, detail = probe.check_grpc()
    assert not ok and detail == "grpc core: not imported"
