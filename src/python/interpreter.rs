//! The one interpreter finder: which CPython on this host runs a Lambda runtime's Python, for
//! the lock's pip, the bytecode compiler and the smoke run alike.
//!
//! Where it looks, in order: the interpreter given on the command line (`--python`), else the
//! spec's `python.interpreters` (either must be that runtime's Python, or it is an error); then
//! `python3.X` in each `PATH` folder; then the installs of the version managers the environment
//! points at: pyenv (`PYENV_ROOT`, else `pyenv root`, else `~/.pyenv`), asdf (`ASDF_DATA_DIR`,
//! else `~/.asdf`) and uv (`UV_PYTHON_INSTALL_DIR`, else `uv python dir`), newest patch first;
//! last, a Debian root of the host's architecture in the cache whose CPython is the runtime's
//! (`layerbuild python fetch`: python3.14, which no version manager here has), run through its
//! launcher.
//!
//! Shims (a `shims` folder on PATH, as pyenv and asdf install) are skipped: which Python a shim
//! runs depends on the folder it is started from, a failing one costs a fifth of a second on
//! every build, and the installs it would run are searched in the version manager's step.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::model::runtime::Runtime;
use crate::python::debian_root;
use crate::support::cache::Blobs;

/// A CPython found on the build host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpreter {
    /// The path it was found at, which is what gets run.
    pub path: PathBuf,
    pub version: PythonVersion,
    /// `importlib.util.MAGIC_NUMBER`, hex: it names the bytecode format.
    pub magic: String,
    /// `sys.executable` with every link resolved: the installed program itself.
    pub executable: PathBuf,
    /// The Debian root it comes from: then `path` is the root's launcher, `executable` cannot
    /// run without it, and it has no pip of its own.
    pub debian_root: Option<PathBuf>,
}

impl Interpreter {
    /// The Lambda runtime this interpreter can stand in for.
    pub(crate) fn runtime(&self) -> Option<Runtime> {
        format!("python{}.{}", self.version.major, self.version.minor)
            .parse()
            .ok()
    }

    pub(crate) fn is_for(&self, rt: Runtime) -> bool {
        (self.version.major, self.version.minor) == (u32::from(rt.major), u32::from(rt.minor))
    }
}

/// `3.9.18`, compared numerically: 3.9.18 is newer than 3.9.9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PythonVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl FromStr for PythonVersion {
    type Err = String;

    /// Final releases only: `3.9.18`; `3.9-dev` and `3.13.0rc1` are not.
    fn from_str(s: &str) -> Result<PythonVersion, String> {
        let parts: Vec<u32> = s
            .split('.')
            .map(|p| {
                p.parse()
                    .map_err(|_| format!("`{s}` is not a Python version like 3.9.18"))
            })
            .collect::<Result<_, _>>()?;
        match parts.as_slice() {
            [major, minor, patch] => Ok(PythonVersion {
                major: *major,
                minor: *minor,
                patch: *patch,
            }),
            _ => Err(format!("`{s}` is not a Python version like 3.9.18")),
        }
    }
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Where to look, besides what every host has.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// `--python RUNTIME=PATH`; wins over the spec's.
    pub flag: Option<PathBuf>,
    /// The spec's `python.interpreters` entry, resolved against the spec's folder.
    pub spec: Option<PathBuf>,
    /// Probe results are kept here, so a warm build runs no Python; `None` probes every time.
    pub cache: Option<PathBuf>,
    pub host: Host,
}

/// The parts of the environment the search reads, taken once so tests can give their own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Host {
    pub path: Option<OsString>,
    pub home: Option<PathBuf>,
    pub pyenv_root: Option<PathBuf>,
    pub asdf_data_dir: Option<PathBuf>,
    pub uv_python_dir: Option<PathBuf>,
}

impl Host {
    pub(crate) fn from_env() -> Host {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Host {
            path: var("PATH"),
            home: var("HOME").map(PathBuf::from),
            pyenv_root: var("PYENV_ROOT").map(PathBuf::from),
            asdf_data_dir: var("ASDF_DATA_DIR").map(PathBuf::from),
            uv_python_dir: var("UV_PYTHON_INSTALL_DIR").map(PathBuf::from),
        }
    }

    /// A program in a PATH folder, as the shell would find it.
    fn which(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(self.path.as_ref()?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }
}

impl Sources {
    /// The host's own environment and the given paths.
    pub(crate) fn new(flag: Option<PathBuf>, spec: Option<PathBuf>, cache: Option<PathBuf>) -> Sources {
        Sources {
            flag,
            spec,
            cache,
            host: Host::from_env(),
        }
    }
}

/// Why no interpreter was returned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FindError {
    #[error("{path} (the {runtime} interpreter given by {given_by}): {problem}: pass a Python {} with --python {runtime}=PATH", .runtime.dotted())]
    Configured {
        runtime: Runtime,
        path: PathBuf,
        given_by: &'static str,
        problem: String,
    },
    #[error("no {runtime} interpreter found; looked at {}", .looked.join("; "))]
    NotFound { runtime: Runtime, looked: Vec<String> },
}

/// Finds the interpreter for `rt`; see the module comment for the order.
pub(crate) fn find(rt: Runtime, sources: &Sources) -> Result<Interpreter, FindError> {
    let cache = sources.cache.as_deref();
    let configured = [(&sources.flag, "--python"), (&sources.spec, "python.interpreters")];
    if let Some((path, given_by)) = configured.iter().find_map(|(p, by)| p.as_ref().map(|p| (p, *by))) {
        let problem = |problem: String| FindError::Configured {
            runtime: rt,
            path: path.clone(),
            given_by,
            problem,
        };
        let i = probe(path, cache).map_err(|e| problem(format!("{e:#}")))?;
        if !i.is_for(rt) {
            return Err(problem(format!("is Python {}, not {}", i.version, rt.dotted())));
        }
        return Ok(i);
    }
    let mut looked = vec!["--python and python.interpreters (not given)".to_string()];
    let host = &sources.host;
    let what = format!("python{} on PATH, shims skipped", rt.dotted());
    if let Some(i) = first_for(rt, what, on_path(host, rt), cache, &mut looked) {
        return Ok(i);
    }
    for manager in &MANAGERS {
        let Some(root) = (manager.root)(host) else {
            looked.push(format!("{} (not installed)", manager.name));
            continue;
        };
        let what = format!("{} installs in {}", manager.name, root.display());
        if let Some(i) = first_for(rt, what, installs(&root, manager, rt), cache, &mut looked) {
            return Ok(i);
        }
    }
    if let Some(i) = in_debian_root(rt, cache, &mut looked) {
        return Ok(i);
    }
    Err(FindError::NotFound { runtime: rt, looked })
}

/// The cached Debian root of this host's architecture for `rt`, as [`debian_root`] prepares it.
fn in_debian_root(rt: Runtime, cache: Option<&Path>, looked: &mut Vec<String>) -> Option<Interpreter> {
    let host = crate::model::arch::Arch::parse(std::env::consts::ARCH)?;
    let cache = cache?;
    let dir = debian_root::native_root_dir(cache, rt, host)?;
    let what = format!("a Debian root in {}", dir.display());
    let Some(launcher) = debian_root::native_launcher(cache, rt, host) else {
        looked.push(format!("{what} (none: `layerbuild python fetch {rt}` prepares one)"));
        return None;
    };
    let mut i = first_for(rt, what, vec![launcher], Some(cache), looked)?;
    i.debian_root = Some(dir);
    Some(i)
}

/// The first candidate that is `rt`'s Python; else notes in `looked` what each one was.
fn first_for(
    rt: Runtime,
    what: String,
    candidates: Vec<PathBuf>,
    cache: Option<&Path>,
    looked: &mut Vec<String>,
) -> Option<Interpreter> {
    let mut seen = Vec::new();
    for c in candidates {
        match probe(&c, cache) {
            Ok(i) if i.is_for(rt) => return Some(i),
            Ok(i) => seen.push(format!("{} is Python {}", c.display(), i.version)),
            Err(e) => seen.push(format!("{}: {e:#}", c.display())),
        }
    }
    looked.push(if seen.is_empty() {
        format!("{what} (none there)")
    } else {
        format!("{what} ({})", seen.join(", "))
    });
    None
}

/// `python3.X` in each PATH folder that is not a version manager's shims.
fn on_path(host: &Host, rt: Runtime) -> Vec<PathBuf> {
    let name = format!("python{}", rt.dotted());
    let Some(path) = &host.path else { return Vec::new() };
    std::env::split_paths(path)
        .filter(|dir| !dir.ends_with("shims"))
        .map(|dir| dir.join(&name))
        .filter(|p| p.is_file())
        .collect()
}

/// A version manager: where its installs are, and how it names them.
struct Manager {
    name: &'static str,
    root: fn(&Host) -> Option<PathBuf>,
    /// The install folder's name -> its version.
    version: fn(&str) -> Option<PythonVersion>,
    /// The interpreter, relative to the install folder.
    program: fn(Runtime) -> String,
}

const MANAGERS: [Manager; 3] = [
    Manager {
        name: "pyenv",
        root: |h| {
            let root = h
                .pyenv_root
                .clone()
                .or_else(|| h.which("pyenv").and_then(|p| output_path(&p, &["root"])))
                .or_else(|| h.home.as_ref().map(|home| home.join(".pyenv")))?;
            Some(root.join("versions")).filter(|d| d.is_dir())
        },
        version: |name| name.parse().ok(),
        program: |_| "bin/python".to_string(),
    },
    Manager {
        name: "asdf",
        root: |h| {
            let data = h
                .asdf_data_dir
                .clone()
                .or_else(|| h.home.as_ref().map(|home| home.join(".asdf")))?;
            Some(data.join("installs/python")).filter(|d| d.is_dir())
        },
        version: |name| name.parse().ok(),
        program: |_| "bin/python".to_string(),
    },
    Manager {
        name: "uv",
        root: |h| {
            h.uv_python_dir
                .clone()
                .or_else(|| h.which("uv").and_then(|p| output_path(&p, &["python", "dir"])))
                .filter(|d| d.is_dir())
        },
        // `cpython-3.9.18-linux-x86_64-gnu`.
        version: |name| name.strip_prefix("cpython-")?.split('-').next()?.parse().ok(),
        program: |rt| format!("bin/python{}", rt.dotted()),
    },
];

/// A version manager's installs of `rt`, newest first.
fn installs(root: &Path, manager: &Manager, rt: Runtime) -> Vec<PathBuf> {
    let Ok(dir) = fs_err::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(PythonVersion, PathBuf)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = (manager.version)(e.file_name().to_str()?)?;
            let program = e.path().join((manager.program)(rt));
            ((v.major, v.minor) == (u32::from(rt.major), u32::from(rt.minor)) && program.is_file())
                .then_some((v, program))
        })
        .collect();
    found.sort_by_key(|v| std::cmp::Reverse(v.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The one line a version manager prints for a folder it keeps (`pyenv root`).
fn output_path(program: &Path, args: &[&str]) -> Option<PathBuf> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (out.status.success() && !line.is_empty()).then(|| PathBuf::from(line))
}

/// What the probe prints, one per line: version, bytecode magic, the real executable.
const PROBE: &str = "import os, sys, importlib.util\nprint('%d.%d.%d' % sys.version_info[:3])\nprint(importlib.util.MAGIC_NUMBER.hex())\nprint(os.path.realpath(sys.executable))";

/// A candidate that does not answer in this time is not a usable Python.
const PROBE_LIMIT: Duration = Duration::from_secs(20);

/// Asks an interpreter what it is. With a cache, the answer is kept by the file's identity (path,
/// size, mtime): running Python only to ask costs more than a warm build's whole Python step.
pub(crate) fn probe(path: &Path, cache: Option<&Path>) -> Result<Interpreter> {
    let slot = match cache {
        Some(cache) => Some(probe_slot(path, cache)?),
        None => None,
    };
    let blobs = cache.map(Blobs::new);
    if let (Some(slot), Some(blobs)) = (&slot, &blobs)
        && let Ok(Some(hit)) = blobs.get_record(slot, 4096)
        && let Ok(i) = parse_probe(path, &String::from_utf8_lossy(&hit.data))
    {
        return Ok(i);
    }
    let text = run_bounded(Command::new(path).args(["-I", "-c", PROBE]), PROBE_LIMIT)?;
    let i = parse_probe(path, &text).with_context(|| format!("{}: does not answer like CPython 3", path.display()))?;
    if let (Some(slot), Some(blobs)) = (slot, blobs) {
        let sha = blobs.put(text.as_bytes())?;
        blobs.put_record(&slot, &sha, "")?;
    }
    Ok(i)
}

fn probe_slot(path: &Path, cache: &Path) -> Result<PathBuf> {
    let real = fs_err::canonicalize(path)?;
    let meta = fs_err::metadata(&real)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // `probe-3`: the answer's format (it grew the executable line) and where it is kept.
    let key = format!("probe-3\0{}\0{}\0{mtime}", real.display(), meta.len());
    Ok(cache.join("interpreters").join(hex::encode(Sha256::digest(key))))
}

fn parse_probe(path: &Path, text: &str) -> Result<Interpreter> {
    let lines: Vec<&str> = text.lines().collect();
    let [version, magic, executable] = lines.as_slice() else {
        bail!("printed {} lines, not 3", lines.len());
    };
    Ok(Interpreter {
        path: path.to_path_buf(),
        version: version.parse().map_err(anyhow::Error::msg)?,
        magic: magic.to_string(),
        executable: PathBuf::from(executable),
        debian_root: None,
    })
}

/// Runs `cmd` for its stdout, killing it after `limit`.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run it")?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            bail!("did not answer within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = reader.join().expect("reader thread does not panic")?;
    if !status.success() {
        bail!("exited with {status}");
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in interpreter: a script answering the probe as CPython `version` would.
    fn fake_python(path: &Path, version: &str) {
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        let script = format!("#!/bin/sh\nprintf '%s\\n' {version} 550d0d0a \"$0\"\n");
        fs_err::write(path, script).unwrap();
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn rt(s: &str) -> Runtime {
        s.parse().unwrap()
    }

    fn host_in(dir: &Path) -> Host {
        Host {
            path: Some(dir.join("bin").into_os_string()),
            home: Some(dir.join("home")),
            ..Host::default()
        }
    }

    #[test]
    fn versions_compare_numerically() {
        let v = |s: &str| s.parse::<PythonVersion>().unwrap();
        assert!(v("3.9.18") > v("3.9.9"));
        assert!(v("3.10.0") > v("3.9.18"));
        assert!("3.9-dev".parse::<PythonVersion>().is_err());
        assert!("3.13.0rc1".parse::<PythonVersion>().is_err());
    }

    #[test]
    fn a_configured_interpreter_of_another_version_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let py = d.path().join("py");
        fake_python(&py, "3.11.7");
        let sources = Sources {
            flag: Some(py.clone()),
            host: host_in(d.path()),
            ..Sources::default()
        };
        let e = find(rt("python3.9"), &sources).unwrap_err();
        assert!(
            matches!(&e, FindError::Configured { problem, .. } if problem == "is Python 3.11.7, not 3.9"),
            "{e}"
        );
        assert!(e.to_string().contains("--python python3.9=PATH"), "{e}");
        // The flag wins over the spec.
        let spec = d.path().join("spec-py");
        fake_python(&spec, "3.9.1");
        let both = Sources {
            spec: Some(spec.clone()),
            ..sources.clone()
        };
        assert!(find(rt("python3.9"), &both).is_err());
        let only_spec = Sources { flag: None, ..both };
        assert_eq!(find(rt("python3.9"), &only_spec).unwrap().path, spec);
    }

    #[test]
    fn path_comes_first_and_shims_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        fake_python(&d.path().join("shims/python3.9"), "3.9.1");
        fake_python(&d.path().join("bin/python3.9"), "3.9.2");
        fake_python(&d.path().join("home/.pyenv/versions/3.9.18/bin/python"), "3.9.18");
        let mut host = host_in(d.path());
        host.path = Some(std::env::join_paths([d.path().join("shims"), d.path().join("bin")]).unwrap());
        let sources = Sources {
            host,
            ..Sources::default()
        };
        let i = find(rt("python3.9"), &sources).unwrap();
        assert_eq!(i.path, d.path().join("bin/python3.9"));
        assert_eq!(i.executable, d.path().join("bin/python3.9"));
    }

    #[test]
    fn version_managers_give_their_newest_patch() {
        let d = tempfile::tempdir().unwrap();
        for v in ["3.9.9", "3.9.18", "3.8.20", "3.9-dev"] {
            fake_python(&d.path().join(format!("home/.pyenv/versions/{v}/bin/python")), v);
        }
        fake_python(&d.path().join("bin/python3.9"), "3.11.7");
        let sources = Sources {
            host: host_in(d.path()),
            ..Sources::default()
        };
        let i = find(rt("python3.9"), &sources).unwrap();
        assert_eq!(i.version.to_string(), "3.9.18");
        assert!(i.path.ends_with("versions/3.9.18/bin/python"), "{}", i.path.display());

        let uv = d.path().join("uv");
        fake_python(&uv.join("cpython-3.12.4-linux-x86_64-gnu/bin/python3.12"), "3.12.4");
        let mut host = host_in(d.path());
        host.uv_python_dir = Some(uv);
        let i = find(
            rt("python3.12"),
            &Sources {
                host,
                ..Sources::default()
            },
        )
        .unwrap();
        assert_eq!(i.version.to_string(), "3.12.4");
    }

    #[test]
    fn not_found_says_where_it_looked() {
        let d = tempfile::tempdir().unwrap();
        fake_python(&d.path().join("bin/python3.9"), "3.11.7");
        let sources = Sources {
            host: host_in(d.path()),
            ..Sources::default()
        };
        let e = find(rt("python3.9"), &sources).unwrap_err().to_string();
        assert!(e.contains("no python3.9 interpreter found"), "{e}");
        assert!(e.contains("bin/python3.9 is Python 3.11.7"), "{e}");
        assert!(
            e.contains("pyenv (not installed)") && e.contains("uv (not installed)"),
            "{e}"
        );
    }

    #[test]
    fn probes_are_cached_by_the_file() {
        let d = tempfile::tempdir().unwrap();
        let cache = d.path().join("cache");
        let py = d.path().join("py");
        fake_python(&py, "3.9.18");
        let first = probe(&py, Some(&cache)).unwrap();
        // Same file identity (size and mtime kept), other answer: the cache answers.
        let meta = fs_err::metadata(&py).unwrap();
        fake_python(&py, "3.9.19");
        let f = std::fs::File::options().write(true).open(&py).unwrap();
        f.set_modified(meta.modified().unwrap()).unwrap();
        // A file open for writing cannot be run.
        drop(f);
        assert_eq!(probe(&py, Some(&cache)).unwrap(), first);
        assert_eq!(probe(&py, None).unwrap().version.to_string(), "3.9.19");
    }
}
