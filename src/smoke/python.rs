//! The function's Python: the interpreter for a runtime (found and probed), and the packages
//! that stand in for what Lambda's runtime ships in /var/runtime (its client, urllib3).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::options::{ClientChoice, SmokeArgs};
use super::process::run_bounded;
use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::interpreter;

/// Lambda's runtime interface client for `rt`: 2.2.1 is the newest with wheels for python3.8 to
/// python3.12; python3.13 needs 3.x (3.1.1 has wheels for python3.9 to 3.13); python3.14 needs
/// 4.x (4.2.2 has cp314 wheels).
pub(crate) fn ric_requirement(rt: Runtime) -> &'static str {
    match (rt.major, rt.minor) {
        (3, ..=12) => "awslambdaric==2.2.1",
        (3, 13) => "awslambdaric==3.1.1",
        _ => "awslambdaric==4.2.2",
    }
}
/// Lambda's python3.8/3.9 runtimes ship urllib3 1.26 and the layer leaves it out (requests,
/// which the OTLP HTTP exporter uses, needs it), so smoke provides it as the runtime would.
const RUNTIME_REQUIREMENT: &str = "urllib3==1.26.20";
const PIP_LIMIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub(crate) struct Interp {
    pub(crate) runtime: Runtime,
    /// The command name passed to the wrapper (…/bin/python3.X), as Lambda passes /var/lang/bin/python3.X.
    pub(crate) python: PathBuf,
    /// First in PATH, like /var/lang/bin.
    pub(crate) bin_dir: PathBuf,
    /// Set when the interpreter is of another architecture, run under an emulator.
    pub(crate) foreign: Option<Foreign>,
    /// A Debian root's CPython (foreign, or native through its launcher) has no pip: the host's
    /// installs its packages, told the runtime's platform.
    pub(crate) own_pip: bool,
}

/// Another architecture's interpreter: packages for it are installed by the host's pip for its
/// platform, and the layer's extensions run under the same emulator.
#[derive(Debug, Clone)]
pub(crate) struct Foreign {
    pub(crate) arch: Arch,
    /// qemu-user for `arch`.
    pub(crate) emulator: PathBuf,
}

impl Interp {
    /// How much longer this interpreter's runs may take: under an emulator, every bound is
    /// multiplied by [`super::emulated::SLOWDOWN`].
    pub(crate) fn slowdown(&self) -> u32 {
        if self.foreign.is_some() {
            super::emulated::SLOWDOWN
        } else {
            1
        }
    }
}

/// The interpreter for `rt`, found by the crate's one finder (PATH, then version managers).
pub(crate) fn find_python(rt: Runtime, work: &Path) -> Result<Interp, String> {
    // Without a usable cache folder the probe simply runs Python every time.
    let cache = crate::support::cache::dir()
        .ok()
        .filter(|c| crate::support::cache::ensure_private(c).is_ok());
    let sources = interpreter::Sources::new(None, None, cache);
    let found = interpreter::find(rt, &sources).map_err(|e| format!("{e}; pass --python PATH"))?;
    match found.debian_root {
        // Its program runs only through the launcher, which is what goes into the bin folder.
        Some(_) => runtime_bin(rt, &found.path, work, false),
        None => runtime_bin(rt, &found.executable, work, true),
    }
}

/// The interpreter given with `--python`: run once to learn which runtime it is.
pub(crate) fn probe_python(candidate: &Path, work: &Path) -> Result<Interp, String> {
    let found = interpreter::probe(candidate, None).map_err(|e| format!("{e:#}"))?;
    let runtime = found.runtime().ok_or_else(|| {
        format!(
            "{} is Python {}, not a Lambda Python 3 runtime",
            candidate.display(),
            found.version
        )
    })?;
    runtime_bin(runtime, &found.executable, work, true)
}

/// A bin folder where python3 and python3.X are the interpreter at `real`, as /var/lang/bin is.
fn runtime_bin(runtime: Runtime, real: &Path, work: &Path, own_pip: bool) -> Result<Interp, String> {
    let real = real.to_path_buf();
    let bin_dir = real.parent().map(Path::to_path_buf).unwrap_or_default();
    let named = bin_dir.join(format!("python{}", runtime.dotted()));
    let same = |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| c == real);
    if same(&named) && same(&bin_dir.join("python3")) {
        return Ok(Interp {
            runtime,
            python: named,
            bin_dir,
            foreign: None,
            own_pip,
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
        foreign: None,
        own_pip,
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
    let target = match &interp.foreign {
        None => format!("python{}", interp.runtime.dotted()),
        Some(f) => format!("python{}-{}", interp.runtime.dotted(), f.arch.wheel_machine()),
    };
    let cache = crate::support::cache::dir()?;
    crate::support::cache::ensure_private(&cache)?;
    let dir = cache.join("smoke").join(target).join(name);
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
    let mut cmd = pip_for(interp);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
    ])
    .args(foreign_flags(interp))
    .arg("--target")
    .arg(staging.path())
    .arg(requirement);
    let log = work.join(format!("pip-{name}.log"));
    let (status, out) = run_bounded(&mut cmd, PIP_LIMIT, &log)?;
    let pip = format!("{} -m pip", cmd.get_program().to_string_lossy());
    if !status.success() {
        let tail: Vec<&str> = out
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!("`{pip} install {requirement}` failed ({status}): {}", tail.join(" | "));
    }
    fs_err::write(staging.path().join(".layerbuild-complete"), requirement)?;
    if dir.exists() {
        fs_err::remove_dir_all(&dir)?;
    }
    let staged = staging.keep();
    fs_err::rename(&staged, &dir)?;
    Ok(dir)
}

/// The Python whose pip installs for `interp`: its own, or for a Debian root's (which has no
/// pip) the host's, told the target's platform by `foreign_flags`.
fn pip_for(interp: &Interp) -> Command {
    if interp.own_pip {
        Command::new(&interp.python)
    } else {
        Command::new(crate::python::fetch::python())
    }
}

/// pip's flags after `install` that pick wheels for an interpreter without pip of its own.
fn foreign_flags(interp: &Interp) -> Vec<String> {
    if interp.own_pip {
        return Vec::new();
    }
    let host = Arch::parse(std::env::consts::ARCH);
    let Some(arch) = interp.foreign.as_ref().map(|f| f.arch).or(host) else {
        return Vec::new();
    };
    let mut flags = vec![
        "--python-version".to_string(),
        interp.runtime.dotted(),
        "--implementation".into(),
        "cp".into(),
        "--abi".into(),
        interp.runtime.cp_tag(),
    ];
    for p in crate::python::tags::pip_platforms(interp.runtime, arch) {
        flags.extend(["--platform".to_string(), p]);
    }
    flags
}

pub(crate) fn prepare_runtime(interp: &Interp, args: &SmokeArgs) -> Prepared {
    let work = std::env::temp_dir();
    let mut p = Prepared {
        pythonpath: Vec::new(),
        client: "builtin (smoke's minimal Runtime API client)".into(),
        notes: Vec::new(),
    };
    if args.client != ClientChoice::Builtin {
        let ric = ric_requirement(interp.runtime);
        match pip_cached(interp, "ric", ric, args.offline, &work) {
            Ok(dir) => {
                p.pythonpath.push(dir);
                p.client = ric.replace("==", " ");
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
