//! The function's Python: the interpreter for a runtime (found and probed), and the packages
//! that stand in for what Lambda's runtime ships in /var/runtime (its client, urllib3).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::options::{ClientChoice, SmokeArgs};
use super::process::{run_bounded, which};
use crate::runtime::Runtime;

/// Newest awslambdaric with wheels for both python3.8 and python3.9.
const RIC_REQUIREMENT: &str = "awslambdaric==2.2.1";
/// Lambda's python3.8/3.9 runtimes ship urllib3 1.26 and the layer leaves it out (requests,
/// which the OTLP HTTP exporter uses, needs it), so smoke provides it as the runtime would.
const RUNTIME_REQUIREMENT: &str = "urllib3==1.26.20";
const PROBE_LIMIT: Duration = Duration::from_secs(60);
const PIP_LIMIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub(crate) struct Interp {
    pub(crate) runtime: Runtime,
    /// The command name passed to the wrapper (…/bin/python3.X), as Lambda passes /var/lang/bin/python3.X.
    pub(crate) python: PathBuf,
    /// First in PATH, like /var/lang/bin.
    pub(crate) bin_dir: PathBuf,
}

/// The interpreter for `rt`: python3.X in PATH, then pyenv's versions of it, newest first; each
/// is run once to check it works. The one place smoke looks for interpreters.
pub(crate) fn find_python(rt: Runtime, work: &Path) -> Result<Interp, String> {
    let v = rt.dotted();
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = which(&format!("python{v}")).into_iter().collect();
    let root = pyenv_root(work);
    if let Some(root) = &root {
        candidates.extend(pyenv_versions(&root.join("versions"), rt));
    }
    for c in candidates {
        match probe_python(&c, work) {
            Ok(i) if i.runtime == rt => return Ok(i),
            Ok(i) => tried.push(format!("{} is python{}", c.display(), i.runtime.dotted())),
            Err(e) => tried.push(e),
        }
    }
    let pyenv = match &root {
        Some(r) => format!("{}/versions/{v}.*/bin/python", r.display()),
        None => "pyenv's versions (no PYENV_ROOT, no pyenv in PATH)".into(),
    };
    Err(format!(
        "looked for python{v} in PATH and {pyenv} ({}); pass --python PATH",
        if tried.is_empty() {
            "none found".to_string()
        } else {
            tried.join("; ")
        }
    ))
}

/// `$PYENV_ROOT`, else what `pyenv root` says.
fn pyenv_root(work: &Path) -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("PYENV_ROOT").filter(|r| !r.is_empty()) {
        return Some(PathBuf::from(root));
    }
    let pyenv = which("pyenv")?;
    let log = work.join("pyenv-root.log");
    let (status, out) = run_bounded(Command::new(pyenv).arg("root"), PROBE_LIMIT, &log).ok()?;
    let root = out
        .lines()
        .next()
        .map(str::trim)
        .filter(|r| status.success() && !r.is_empty())?;
    Some(PathBuf::from(root))
}

/// `<versions>/3.X.N/bin/python` for every CPython 3.X.N installed there, newest first (3.9.18
/// before 3.9.9: versions compare as numbers).
fn pyenv_versions(versions: &Path, rt: Runtime) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(versions) else {
        return Vec::new();
    };
    let want = [u32::from(rt.major), u32::from(rt.minor)];
    let mut found: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let parts: Vec<u32> = name.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
            let python = e.path().join("bin/python");
            (parts.len() >= 2 && parts[..2] == want && python.exists()).then_some((parts, python))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Runs `candidate` once: its version and real path, and a bin folder where python3 and
/// python3.X are it (as /var/lang/bin is on Lambda).
pub(crate) fn probe_python(candidate: &Path, work: &Path) -> Result<Interp, String> {
    let log = work.join(format!("probe-{}.log", std::process::id()));
    let mut cmd = Command::new(candidate);
    cmd.args([
        "-c",
        "import os, sys; print('%d.%d' % sys.version_info[:2]); print(os.path.realpath(sys.executable))",
    ]);
    let (status, out) =
        run_bounded(&mut cmd, PROBE_LIMIT, &log).map_err(|e| format!("{}: {e:#}", candidate.display()))?;
    let lines: Vec<&str> = out.lines().collect();
    if !status.success() || lines.len() < 2 {
        return Err(format!(
            "{} does not run ({status}): {}",
            candidate.display(),
            out.trim()
        ));
    }
    let runtime = Runtime::parse(&format!("python{}", lines[0])).ok_or_else(|| {
        format!(
            "{} is Python {}, not a Lambda Python 3 runtime",
            candidate.display(),
            lines[0]
        )
    })?;
    let real = PathBuf::from(lines[1]);
    let bin_dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
    let named = bin_dir.join(format!("python{}", runtime.dotted()));
    let same = |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| c == real);
    if same(&named) && same(&bin_dir.join("python3")) {
        return Ok(Interp {
            runtime,
            python: named,
            bin_dir,
        });
    }
    // A bin folder where python3 and python3.X are this interpreter, as /var/lang/bin is.
    let own = work.join(format!("bin-python{}", runtime.dotted()));
    let _ = std::fs::create_dir_all(&own);
    for n in ["python3".to_string(), format!("python{}", runtime.dotted())] {
        let _ = std::os::unix::fs::symlink(&real, own.join(n));
    }
    Ok(Interp {
        runtime,
        python: own.join(format!("python{}", runtime.dotted())),
        bin_dir: own,
    })
}

/// What stands in for Lambda's /var/runtime: the runtime client and urllib3.
pub(crate) struct Prepared {
    pub(crate) pythonpath: Vec<PathBuf>,
    pub(crate) client: String,
    pub(crate) notes: Vec<String>,
}

/// Installs `requirement` once into the cache for this Python; returns the folder.
fn pip_cached(interp: &Interp, name: &str, requirement: &str, offline: bool, work: &Path) -> Result<PathBuf> {
    let dir = crate::cache::dir()
        .join("smoke")
        .join(format!("python{}", interp.runtime.dotted()))
        .join(name);
    let marker = dir.join(".layerbuild-complete");
    if marker.exists() && fs_err::read_to_string(&marker).unwrap_or_default().trim() == requirement {
        return Ok(dir);
    }
    if offline {
        bail!(
            "{requirement} is not in the cache ({}) and --offline forbids pip",
            dir.display()
        );
    }
    let parent = dir.parent().context("cache folder has no parent")?;
    fs_err::create_dir_all(parent)?;
    let staging = tempfile::Builder::new().prefix(".staging-").tempdir_in(parent)?;
    let mut cmd = Command::new(&interp.python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
        "--target",
    ])
    .arg(staging.path())
    .arg(requirement);
    let log = work.join(format!("pip-{name}.log"));
    let (status, out) = run_bounded(&mut cmd, PIP_LIMIT, &log)?;
    if !status.success() {
        let tail: Vec<&str> = out
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "`{} -m pip install {requirement}` failed ({status}): {}",
            interp.python.display(),
            tail.join(" | ")
        );
    }
    fs_err::write(staging.path().join(".layerbuild-complete"), requirement)?;
    if dir.exists() {
        fs_err::remove_dir_all(&dir)?;
    }
    let staged = staging.keep();
    fs_err::rename(&staged, &dir)?;
    Ok(dir)
}

pub(crate) fn prepare_runtime(interp: &Interp, args: &SmokeArgs) -> Prepared {
    let work = std::env::temp_dir();
    let mut p = Prepared {
        pythonpath: Vec::new(),
        client: "builtin (smoke's minimal Runtime API client)".into(),
        notes: Vec::new(),
    };
    if args.client != ClientChoice::Builtin {
        match pip_cached(interp, "ric", RIC_REQUIREMENT, args.offline, &work) {
            Ok(dir) => {
                p.pythonpath.push(dir);
                p.client = RIC_REQUIREMENT.replace("==", " ");
            }
            Err(e) if args.client == ClientChoice::Awslambdaric => {
                p.client = format!("unavailable: {e:#}");
            }
            Err(e) => p.notes.push(format!("runtime client: using smoke's own, since {e:#}")),
        }
    }
    match pip_cached(interp, "runtime", RUNTIME_REQUIREMENT, args.offline, &work) {
        Ok(dir) => p.pythonpath.push(dir),
        Err(e) => p.notes.push(format!(
            "no {RUNTIME_REQUIREMENT} (Lambda's runtime ships urllib3; the layer's requests needs it): {e:#}"
        )),
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyenv_versions_newest_first_by_number() {
        let dir = tempfile::tempdir().unwrap();
        for v in ["3.9.9", "3.9.18", "3.9.2", "3.10.1", "3.9-dev", "3.9.18t", "3.8.18"] {
            let bin = dir.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("python"), "").unwrap();
        }
        // A version folder without an interpreter is passed over.
        std::fs::create_dir_all(dir.path().join("3.9.30")).unwrap();
        let names: Vec<String> = pyenv_versions(dir.path(), Runtime { major: 3, minor: 9 })
            .iter()
            .map(|p| {
                let version = p.parent().and_then(Path::parent).and_then(Path::file_name);
                version.unwrap().to_string_lossy().into_owned()
            })
            .collect();
        assert_eq!(names, ["3.9.18", "3.9.9", "3.9.2"]);
    }
}
