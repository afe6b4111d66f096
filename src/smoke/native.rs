//! A runtime's native code, two ways: imported for real by the probe inside the runtime, and
//! judged by the glibc symbol versions each ELF file needs against the runtime's Amazon Linux,
//! which no run on this host (with its newer glibc) can show.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::native_probe::{self, ProbeReport};
use super::process::run_bounded;
use super::python::Interp;
use super::report::Check;
use crate::check::glibc::{self, Baseline};
use crate::model::runtime::Runtime;

/// The layer folders on the runtime's `sys.path`, as the exec wrapper puts them: the runtime's
/// own site-packages (when the layer has one) before the shared `python/`.
fn layer_roots(layer: &Path, rt: Runtime) -> Vec<PathBuf> {
    let own = layer.join(format!("python/lib/python{}/site-packages", rt.dotted()));
    let mut roots: Vec<PathBuf> = own.is_dir().then_some(own).into_iter().collect();
    roots.push(layer.join("python"));
    roots
}

/// Runs the probe with `interp` (natively or through its emulator): every extension module the
/// layer ships for it imported, each from its own file for this machine, no pure-Python fallback.
pub(crate) fn probe_check(interp: &Interp, layer: &Path, work: &Path, limit: Duration) -> Check {
    let rt = interp.runtime;
    let machine = interp
        .foreign
        .as_ref()
        .map(|f| f.arch.wheel_machine())
        .unwrap_or(std::env::consts::ARCH);
    let name = format!("native modules loaded ({rt} on {machine})");
    let script = work.join("native_probe.py");
    let out = work.join(format!("native-probe-{rt}-{machine}.json"));
    if let Err(e) = std::fs::write(&script, native_probe::SCRIPT) {
        return Check::new(&name, false, format!("cannot write {}: {e}", script.display()));
    }
    let roots = layer_roots(layer, rt);
    let path = format!("{}:/usr/bin:/bin", interp.bin_dir.display());
    let mut cmd = Command::new(&interp.python);
    cmd.arg("-B")
        .args(native_probe::args(&script, &out, &roots))
        .env_clear()
        .env("PATH", path)
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONPATH", std::env::join_paths(&roots).unwrap_or_default())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let log = work.join(format!("native-probe-{rt}-{machine}.log"));
    let status = match run_bounded(&mut cmd, limit, &log) {
        Ok((status, _)) => status,
        Err(e) => return Check::new(&name, false, format!("the probe did not run: {e:#}")),
    };
    let report = std::fs::read_to_string(&out)
        .map_err(|e| e.to_string())
        .and_then(|text| ProbeReport::parse(&text).map_err(|e| format!("{e:#}")));
    let report = match report {
        Ok(r) => r,
        Err(why) => {
            let tail = super::process::tail(&log, 8).join(" | ");
            return Check::new(
                &name,
                false,
                format!("the probe exited ({status}) without a report ({why}): {tail}"),
            );
        }
    };
    let failures = report.failures();
    if report.ok && failures.is_empty() {
        Check::new(&name, true, report.summary())
    } else {
        Check::new(
            &name,
            false,
            format!(
                "{} of {} failed: {}",
                failures.len(),
                report.modules.len() + report.fallbacks.len(),
                failures.join("; ")
            ),
        )
    }
}

/// ELF files the runtime can load: everything in the layer but other runtimes'
/// `python/lib/python3.Y/` folders. Paths relative to the layer, sorted.
pub(crate) fn runtime_elf_files(layer: &Path, rt: Runtime) -> Vec<(String, PathBuf)> {
    let own = format!("python{}", rt.dotted());
    let walk = walkdir::WalkDir::new(layer)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(layer).unwrap_or(e.path());
            let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            !(parts.len() == 3 && parts[0] == "python" && parts[1] == "lib" && parts[2] != own)
        });
    walk.filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            let mut head = [0u8; 4];
            std::fs::File::open(e.path())
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok()
                && crate::check::elf::is_elf(&head)
        })
        .map(|e| {
            let rel = e.path().strip_prefix(layer).unwrap_or(e.path()).display().to_string();
            (rel, e.path().to_path_buf())
        })
        .collect()
}

/// Each ELF file on the runtime's path needs no GLIBC_/GLIBCXX_/CXXABI_ version newer than the
/// runtime's Amazon Linux has.
pub(crate) fn glibc_check(layer: &Path, rt: Runtime) -> Check {
    let baseline = Baseline::for_runtime(rt);
    let name = format!("glibc symbol versions for {rt} ({})", baseline.os);
    let files = runtime_elf_files(layer, rt);
    let mut bad = Vec::new();
    let mut newest: Option<(Vec<u32>, String)> = None;
    for (rel, path) in &files {
        let verdict = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|data| glibc::check(&data, &baseline));
        match verdict {
            Ok(v) => {
                if let Some(g) = v.newest_glibc {
                    let key: Vec<u32> = g
                        .trim_start_matches("GLIBC_")
                        .split('.')
                        .filter_map(|p| p.parse().ok())
                        .collect();
                    if newest.as_ref().is_none_or(|(k, _)| key > *k) {
                        newest = Some((key, g));
                    }
                }
                if !v.too_new.is_empty() {
                    let needs: Vec<String> = v.too_new.iter().map(ToString::to_string).collect();
                    bad.push(format!("{rel} needs {}", needs.join(", ")));
                }
            }
            Err(why) => bad.push(format!("{rel}: {why}")),
        }
    }
    if bad.is_empty() {
        let most = newest.map(|(_, g)| format!(", at most {g}")).unwrap_or_default();
        return Check::new(
            &name,
            true,
            format!("{} ELF files on its path fit {baseline}{most}", files.len()),
        );
    }
    Check::new(
        &name,
        false,
        format!(
            "{} of {} ELF files need more than {baseline}: {}; pick wheels whose manylinux tag is at most manylinux_{}_{} for {rt}",
            bad.len(),
            files.len(),
            bad.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
            baseline.glibc.0,
            baseline.glibc.1
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::glibc::elf_with_needs;
    use object::elf::EM_AARCH64;

    fn rt(minor: u8) -> Runtime {
        Runtime { major: 3, minor }
    }

    fn put(layer: &Path, rel: &str, data: &[u8]) {
        let p = layer.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    #[test]
    fn glibc_is_judged_per_runtime_path() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path();
        let old = elf_with_needs(EM_AARCH64.0, &[("libc.so.6", &["GLIBC_2.17"])]);
        let new = elf_with_needs(EM_AARCH64.0, &[("libc.so.6", &["GLIBC_2.17", "GLIBC_2.28"])]);
        put(layer, "python/google/_upb/_message.abi3.so", &old);
        put(layer, "python/lib/python3.9/site-packages/wrapt/_wrappers.so", &old);
        put(layer, "python/lib/python3.12/site-packages/wrapt/_wrappers.so", &new);
        put(layer, "python/wrapt.py", b"# not ELF");

        let c = glibc_check(layer, rt(9));
        assert!(c.ok, "{c:?}");
        assert_eq!(c.name, "glibc symbol versions for python3.9 (Amazon Linux 2)");
        assert!(
            c.detail.starts_with("2 ELF files on its path fit Amazon Linux 2"),
            "{}",
            c.detail
        );
        assert!(c.detail.ends_with("at most GLIBC_2.17"), "{}", c.detail);

        // python3.12 runs on Amazon Linux 2023 (2.34): 2.28 fits there.
        assert!(glibc_check(layer, rt(12)).ok);
        put(layer, "python/lib/python3.11/site-packages/wrapt/_wrappers.so", &new);
        let c = glibc_check(layer, rt(11));
        assert!(!c.ok, "{c:?}");
        assert!(
            c.detail
                .contains("python/lib/python3.11/site-packages/wrapt/_wrappers.so needs GLIBC_2.28 from libc.so.6"),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("manylinux_2_26 for python3.11"), "{}", c.detail);
    }

    #[test]
    fn roots_put_the_runtime_folder_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("python/lib/python3.9/site-packages")).unwrap();
        let roots = layer_roots(dir.path(), rt(9));
        assert_eq!(
            roots,
            [
                dir.path().join("python/lib/python3.9/site-packages"),
                dir.path().join("python")
            ]
        );
        assert_eq!(layer_roots(dir.path(), rt(11)), [dir.path().join("python")]);
    }

    #[test]
    #[ignore = "runs the host's python3"]
    fn the_probe_runs_in_the_runtime_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("opt");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let host = super::super::process::which("python3").expect("python3 in PATH");
        let interp = super::super::python::probe_python(&host, &work).unwrap();
        // One of the interpreter's own extension modules, shipped in a package of the layer.
        let out = Command::new(&interp.python)
            .args([
                "-c",
                "import _json, importlib.machinery as m; print(_json.__file__); print(m.EXTENSION_SUFFIXES[0])",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let (file, suffix) = (lines.next().unwrap(), lines.next().unwrap());
        put(&layer, "python/pkg/__init__.py", b"");
        put(
            &layer,
            &format!("python/pkg/_json{suffix}"),
            &std::fs::read(file).unwrap(),
        );
        let c = probe_check(&interp, &layer, &work, Duration::from_secs(60));
        assert!(c.ok, "{c:?}");
        assert!(c.detail.starts_with("1 native modules under Python 3."), "{}", c.detail);
        // A module that cannot load (its init function has another name) fails the check.
        put(
            &layer,
            &format!("python/pkg/_other{suffix}"),
            &std::fs::read(file).unwrap(),
        );
        let c = probe_check(&interp, &layer, &work, Duration::from_secs(60));
        assert!(!c.ok && c.detail.contains("pkg._other"), "{c:?}");
    }
}
