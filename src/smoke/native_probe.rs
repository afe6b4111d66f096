//! The native-module probe: the script smoke runs inside a runtime, and what its report means.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// Imports every extension module the layer ships for the running interpreter and checks, via
/// `/proc/self/maps` and the ELF header, that each came from the layer's own file for this machine.
pub const SCRIPT: &str = include_str!("native_probe.py");

/// The probe's JSON report (see the script's header).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ProbeReport {
    pub python: String,
    pub machine: String,
    pub ok: bool,
    pub modules: Vec<ModuleResult>,
    pub fallbacks: Vec<FallbackResult>,
    /// Shared objects this interpreter never imports: other runtimes' tags, vendored libraries.
    pub ignored: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ModuleResult {
    pub module: String,
    /// The file this interpreter must load the module from.
    pub file: PathBuf,
    #[serde(default)]
    pub loaded_from: Option<PathBuf>,
    #[serde(default)]
    pub elf_machine: Option<u16>,
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
}

/// A package known to fall back to pure Python quietly, and whether it did.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct FallbackResult {
    pub package: String,
    pub ok: bool,
    pub detail: String,
}

impl ProbeReport {
    pub fn parse(json: &str) -> Result<ProbeReport> {
        serde_json::from_str(json).context("the native-module probe wrote a report smoke cannot read")
    }

    /// One line per failure, each naming the module or package and why.
    pub fn failures(&self) -> Vec<String> {
        let modules = self.modules.iter().filter(|m| !m.ok).map(|m| {
            format!(
                "{} ({}): {}",
                m.module,
                m.file.display(),
                m.error.as_deref().unwrap_or("failed")
            )
        });
        let fallbacks = self
            .fallbacks
            .iter()
            .filter(|f| !f.ok)
            .map(|f| format!("{} fell back to pure Python: {}", f.package, f.detail));
        modules.chain(fallbacks).collect()
    }

    /// What passed, for the report: `5 native modules loaded from their aarch64 files (...)`.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.modules.iter().map(|m| m.module.as_str()).collect();
        let fallbacks: Vec<String> = self.fallbacks.iter().map(|f| f.detail.clone()).collect();
        format!(
            "{} native modules under Python {} on {}: {}{}",
            self.modules.len(),
            self.python,
            self.machine,
            if names.is_empty() {
                "none shipped".to_string()
            } else {
                names.join(", ")
            },
            if fallbacks.is_empty() {
                String::new()
            } else {
                format!("; {}", fallbacks.join("; "))
            }
        )
    }
}

/// The probe's arguments after the interpreter: the script, the report file, and the layer
/// folders on `sys.path` (`<layer>/python` and its per-runtime site-packages).
pub fn args(script: &Path, out: &Path, roots: &[PathBuf]) -> Vec<std::ffi::OsString> {
    let mut v = vec![script.as_os_str().to_owned(), out.as_os_str().to_owned()];
    v.extend(roots.iter().map(|r| r.as_os_str().to_owned()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn report_failures_name_module_and_cause() {
        let json = r#"{"python":"3.9.2","machine":"aarch64","ok":false,"roots":["/opt/python"],
            "ignored":["/opt/python/grpc/_cython/cygrpc.cpython-38-aarch64-linux-gnu.so"],
            "fallbacks":[{"package":"protobuf","ok":false,"detail":"protobuf implementation: python"}],
            "modules":[{"module":"wrapt._wrappers","file":"/opt/python/wrapt/_wrappers.so","ok":false,
              "elf_machine":62,"shadowed":[],"error":"ImportError: wrong ELF class"},
              {"module":"m","file":"/opt/python/m.abi3.so","ok":true,"elf_machine":183,"shadowed":[],
              "loaded_from":"/opt/python/m.abi3.so"}]}"#;
        let r = ProbeReport::parse(json).unwrap();
        let f = r.failures();
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f[0].starts_with("wrapt._wrappers (/opt/python/wrapt/_wrappers.so): ImportError"),
            "{f:?}"
        );
        assert!(f[1].contains("protobuf fell back"), "{f:?}");
        assert!(
            r.summary()
                .starts_with("2 native modules under Python 3.9.2 on aarch64"),
            "{}",
            r.summary()
        );
        assert!(ProbeReport::parse("{}").is_err());
    }

    /// A layer tree with a copy of one of the host interpreter's own extension modules (so it is
    /// built for this machine and Python) placed in a package, and a copy with its ELF machine
    /// changed, which must fail to load.
    fn tree_with_host_extension(python: &str, dir: &Path) -> Option<(String, PathBuf)> {
        let out = Command::new(python)
            .args([
                "-c",
                "import _json, importlib.machinery as m; print(_json.__file__); print(m.EXTENSION_SUFFIXES[0])",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let mut lines = text.lines();
        let (file, suffix) = (PathBuf::from(lines.next()?), lines.next()?.to_string());
        // `_json` is built into some interpreters: then there is no file to copy.
        if !file.is_file() {
            return None;
        }
        let pkg = dir.join("python/probe_pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("__init__.py"), "").unwrap();
        std::fs::copy(&file, pkg.join(format!("_json{suffix}"))).unwrap();
        Some((suffix, pkg))
    }

    #[test]
    #[ignore = "runs the host's python3"]
    fn probe_loads_a_good_module_and_rejects_a_foreign_one() {
        let dir = tempfile::tempdir().unwrap();
        let Some((suffix, pkg)) = tree_with_host_extension("python3", dir.path()) else {
            panic!("python3 has no _json extension file to copy");
        };
        let script = dir.path().join("probe.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let roots = [dir.path().join("python")];
        let run = |out: &Path| {
            Command::new("python3")
                .arg("-B")
                .args(args(&script, out, &roots))
                .env("PYTHONPATH", &roots[0])
                .status()
                .unwrap()
        };
        let out = dir.path().join("good.json");
        let status = run(&out);
        let good = ProbeReport::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert!(status.success() && good.ok, "{good:?}");
        assert_eq!(good.modules.len(), 1);
        assert_eq!(good.modules[0].module, "probe_pkg._json");

        // The same file with e_machine set to another architecture: the loader refuses it.
        let mut data = std::fs::read(pkg.join(format!("_json{suffix}"))).unwrap();
        let other: u16 = if data[18..20] == 62u16.to_le_bytes() { 183 } else { 62 };
        data[18..20].copy_from_slice(&other.to_le_bytes());
        let bad = dir.path().join("python/bad_pkg");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("__init__.py"), "").unwrap();
        std::fs::write(bad.join(format!("_json{suffix}")), data).unwrap();
        let out = dir.path().join("bad.json");
        let status = run(&out);
        let report = ProbeReport::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert!(!status.success() && !report.ok, "{report:?}");
        let failures = report.failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("bad_pkg._json"), "{failures:?}");
    }

    #[test]
    #[ignore = "runs the host's python3"]
    fn probe_fails_a_package_that_fell_back() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in for wrapt that ships `_wrappers` (not loadable: its init function has another
        // name) and whose ObjectProxy is pure Python.
        let Some((suffix, _)) = tree_with_host_extension("python3", dir.path()) else {
            panic!("python3 has no _json extension file to copy");
        };
        let wrapt = dir.path().join("python/wrapt");
        std::fs::create_dir_all(&wrapt).unwrap();
        std::fs::copy(
            dir.path().join(format!("python/probe_pkg/_json{suffix}")),
            wrapt.join(format!("_wrappers{suffix}")),
        )
        .unwrap();
        std::fs::write(wrapt.join("__init__.py"), "class ObjectProxy: pass\n").unwrap();
        let script = dir.path().join("probe.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let out = dir.path().join("r.json");
        let roots = [dir.path().join("python")];
        Command::new("python3")
            .arg("-B")
            .args(args(&script, &out, &roots))
            .env("PYTHONPATH", &roots[0])
            .status()
            .unwrap();
        let report = ProbeReport::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let failures = report.failures();
        assert!(!report.ok);
        assert!(
            failures.iter().any(|f| f.starts_with("wrapt fell back to pure Python")),
            "{failures:?}"
        );
    }
}
