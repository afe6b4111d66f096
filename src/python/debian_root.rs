//! Prepares, once per Debian suite and architecture, a root whose CPython stands in for a Lambda
//! runtime no installed Python provides, and caches it: natively through the root's own dynamic
//! loader (the finder's last source, e.g. python3.14 for bytecode and smoke), or under qemu-user
//! for another architecture (`qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.X`).
//!
//! debootstrap's first stage (`--foreign`) fetches and checks every package and unpacks only the
//! essential ones; unpacking the rest with `dpkg-deb` gives a tree qemu runs without a second
//! stage, binfmt or namespaces. Debian compiles bytecode in its maintainer scripts, which never
//! run here, so the root's standard library is compiled once under qemu: otherwise every smoke
//! run would compile it again, emulated.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;

use super::debian_mirror::{self, Mirror};

/// The Debian suites whose CPython is one of Lambda's runtimes, and that the mirror serves for
/// amd64 and arm64 (buster is gone from it; no suite has 3.8, 3.10 or 3.12).
pub const SUITES: &[Suite] = &[
    Suite {
        name: "bullseye",
        minor: 9,
        script_fallback: None,
    },
    Suite {
        name: "bookworm",
        minor: 11,
        script_fallback: None,
    },
    Suite {
        name: "trixie",
        minor: 13,
        script_fallback: None,
    },
    // Debian's testing suite in 2026: debootstrap releases older than it lack its script, and
    // testing is bootstrapped like unstable.
    Suite {
        name: "forky",
        minor: 14,
        script_fallback: Some("sid"),
    },
];

/// Where debootstrap keeps its per-suite scripts (`DEBOOTSTRAP_DIR` moves it, as for debootstrap).
fn debootstrap_scripts_here() -> PathBuf {
    std::env::var_os("DEBOOTSTRAP_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/usr/share/debootstrap"), PathBuf::from)
        .join("scripts")
}

/// Bumped whenever a cached root would differ from what this code prepares.
const LAYOUT: &str = "v1";
/// A first stage takes 20-40 s here; the compile under qemu about a minute.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Lines of a failing tool's log quoted in the error.
const LOG_TAIL: usize = 12;
/// What the root gets besides the essential set: CPython (with libssl, libexpat, libffi, libsqlite3
/// it depends on) and the C++ runtime some wheels link against instead of bundling.
const INCLUDE: &str = "python3,libstdc++6";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub name: &'static str,
    /// CPython 3.<minor> is the suite's `python3`.
    pub minor: u8,
    /// The debootstrap script to use when debootstrap has none of the suite's name.
    pub script_fallback: Option<&'static str>,
}

/// The suite whose `python3` is the runtime's CPython.
pub fn suite_for(rt: Runtime) -> Option<&'static Suite> {
    SUITES.iter().find(|s| rt.major == 3 && s.minor == rt.minor)
}

fn debian_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Arm64 => "arm64",
    }
}

/// Debian's multiarch folder under `usr/lib` and the dynamic loader in it.
fn loader(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => ("x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
        Arch::Arm64 => ("aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
    }
}

/// The launcher a native root carries: `<root>/layerbuild-python3.X`.
fn launcher_path(dir: &Path, suite: &Suite) -> PathBuf {
    dir.join(format!("layerbuild-python3.{}", suite.minor))
}

/// A script that runs the root's CPython with the root's own loader and libraries: the root's
/// glibc is newer than the host's (forky's 2.42 on a bookworm host), so its programs cannot use
/// the host's loader. Runs at native speed, needs no namespaces; `sys.prefix` is the root's.
fn launcher_script(dir: &Path, suite: &Suite, arch: Arch) -> String {
    let (triplet, ld) = loader(arch);
    let lib = dir.join("usr/lib").join(triplet);
    format!(
        "#!/bin/sh\n# Written by layerbuild: Debian {} CPython 3.{} through the root's own loader.\nexec {} --library-path {} {} \"$@\"\n",
        suite.name,
        suite.minor,
        shell_word(&lib.join(ld)),
        shell_word(&lib),
        shell_word(&dir.join(format!("usr/bin/python3.{}", suite.minor)))
    )
}

/// `path` as one shell word.
pub(crate) fn shell_word(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// A prepared root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The root folder, for qemu's `-L`.
    pub dir: PathBuf,
    /// `<dir>/usr/bin/python3.X`.
    pub python: PathBuf,
    /// `3.11.2`, as the root's interpreter reported it when the root was prepared.
    pub version: String,
    /// For a root of the host's architecture: the script that runs its CPython natively.
    pub launcher: Option<PathBuf>,
    /// How long preparing took; `None` when the root came from the cache.
    pub prepared_in: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(
        "no Debian suite has CPython {runtime}: its {arch} native modules are only checked statically (Debian has {})",
        SUITES.iter().map(|s| format!("{} 3.{}", s.name, s.minor)).collect::<Vec<_>>().join(", ")
    )]
    NoSuite { runtime: Runtime, arch: Arch },
    #[error("{tool} is not installed (not in PATH): {fix}")]
    MissingTool { tool: &'static str, fix: &'static str },
    #[error(
        "preparing the {arch} root needs root (debootstrap creates device nodes and root-owned files): run smoke as root once, it then reuses {cache}"
    )]
    NotRoot { arch: Arch, cache: PathBuf },
    #[error(
        "no Debian mirror in {}: add a Debian source to apt, or set {} to a mirror URI",
        if .looked.is_empty() { "/etc/apt".to_string() } else { .looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") },
        debian_mirror::MIRROR_ENV
    )]
    NoMirror { looked: Vec<PathBuf> },
    #[error(
        "debootstrap could not fetch {suite} for {arch} from {} (found in {}): check that the mirror serves it; the log ({}) ends:\n{tail}",
        .mirror.uri, .mirror.from, .log.display()
    )]
    Debootstrap {
        suite: &'static str,
        arch: Arch,
        mirror: Mirror,
        log: PathBuf,
        tail: String,
    },
    #[error("preparing the root did not finish within {}s ({step} was running): look at {}", .limit.as_secs(), .log.display())]
    Timeout {
        step: String,
        limit: Duration,
        log: PathBuf,
    },
    #[error("{step} failed ({status}); the log ({}) ends:\n{tail}", .log.display())]
    Step {
        step: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{}: {what}", .path.display())]
    Io { path: PathBuf, what: String },
}

fn io(path: &Path, e: impl std::fmt::Display) -> RootError {
    RootError::Io {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}

/// What `prepare` needs besides the suite: where the cache is, how to run the root's programs
/// and for how long.
#[derive(Debug, Clone)]
pub struct Prepare<'a> {
    /// The layerbuild cache folder; roots go to `<cache>/roots/`.
    pub cache: &'a Path,
    pub arch: Arch,
    /// qemu-user for the root's architecture; `None` when the host runs it natively.
    pub emulator: Option<&'a Path>,
    /// Bound on the whole preparation.
    pub limit: Duration,
    /// The programs' search path (`$PATH`), where debootstrap, dpkg-deb and tar are looked up.
    pub path_var: OsString,
    /// apt's configuration folder, whose sources name the mirror (`/etc/apt`).
    pub apt_dir: &'a Path,
    /// `$LAYERBUILD_DEBIAN_MIRROR`, which wins over apt's sources.
    pub mirror_override: Option<String>,
    /// debootstrap's scripts folder, to find a fallback script in.
    pub debootstrap_scripts: PathBuf,
}

impl<'a> Prepare<'a> {
    /// Preparation as smoke does it: this process's `PATH`, apt sources and mirror override.
    pub fn here(cache: &'a Path, arch: Arch, emulator: Option<&'a Path>) -> Prepare<'a> {
        Prepare {
            cache,
            arch,
            emulator,
            limit: DEFAULT_LIMIT,
            path_var: std::env::var_os("PATH").unwrap_or_default(),
            apt_dir: Path::new("/etc/apt"),
            mirror_override: std::env::var(debian_mirror::MIRROR_ENV).ok(),
            debootstrap_scripts: debootstrap_scripts_here(),
        }
    }
}

/// Where the cached root for `suite` on `arch` lives.
pub fn cache_dir(cache: &Path, suite: &Suite, arch: Arch) -> PathBuf {
    cache
        .join("roots")
        .join(format!("{LAYOUT}-{}-{}", suite.name, debian_arch(arch)))
}

/// The marker a finished root carries: the interpreter's version (written last, before the
/// rename that publishes the root).
const VERSION_FILE: &str = "layerbuild-python-version";

/// The cached root, or a new one made (in a temp folder beside it, then renamed into place, so
/// a root in the cache is always whole).
pub fn prepare(rt: Runtime, how: &Prepare) -> Result<Root, RootError> {
    let suite = suite_for(rt).ok_or(RootError::NoSuite {
        runtime: rt,
        arch: how.arch,
    })?;
    let dir = cache_dir(how.cache, suite, how.arch);
    if let Some(root) = cached(&dir, suite) {
        return Ok(root);
    }
    let tools = Tools::find(&how.path_var)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(RootError::NotRoot {
            arch: how.arch,
            cache: dir,
        });
    }
    let mirror = debian_mirror::find(how.apt_dir, how.mirror_override.as_deref())
        .map_err(|looked| RootError::NoMirror { looked })?;
    let started = Instant::now();
    let parent = dir.parent().expect("a cache dir has a parent");
    // Kept after a failure, for the paths the error names.
    let logs = parent
        .join("logs")
        .join(dir.file_name().expect("a cache dir has a name"));
    fs_err::create_dir_all(&logs).map_err(|e| io(&logs, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}-", suite.name))
        .tempdir_in(parent)
        .map_err(|e| io(parent, e))?;
    let steps = Steps {
        root: tmp.path(),
        arch: how.arch,
        logs: &logs,
        deadline: started + how.limit,
        limit: how.limit,
    };
    steps.first_stage(&tools, suite, how, &mirror)?;
    steps.unpack_rest(&tools)?;
    let python = tmp.path().join(format!("usr/bin/python3.{}", suite.minor));
    steps.compile_stdlib(how.emulator, &python, suite)?;
    let version = steps.check_python(how.emulator, &python, suite, how.arch)?;
    steps.tidy()?;
    if how.emulator.is_none() {
        // Names the root where it will be, after the rename below.
        let launcher = launcher_path(tmp.path(), suite);
        write_executable(&launcher, &launcher_script(&dir, suite, how.arch)).map_err(|e| io(&launcher, e))?;
    }
    fs_err::write(tmp.path().join(VERSION_FILE), format!("{version}\n")).map_err(|e| io(tmp.path(), e))?;
    fs_err::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).map_err(|e| io(tmp.path(), e))?;
    let built = tmp.keep();
    if let Err(e) = std::fs::rename(&built, &dir) {
        // Another smoke run finished the same root first: use it, drop ours.
        let _ = std::fs::remove_dir_all(&built);
        if cached(&dir, suite).is_none() {
            return Err(io(&dir, format!("cannot move the prepared root into place: {e}")));
        }
    }
    let mut root = cached(&dir, suite).ok_or_else(|| io(&dir, "the prepared root vanished"))?;
    root.prepared_in = Some(started.elapsed());
    Ok(root)
}

fn cached(dir: &Path, suite: &Suite) -> Option<Root> {
    let version = std::fs::read_to_string(dir.join(VERSION_FILE)).ok()?;
    let python = dir.join(format!("usr/bin/python3.{}", suite.minor));
    let launcher = Some(launcher_path(dir, suite)).filter(|l| l.is_file());
    python.exists().then(|| Root {
        dir: dir.to_path_buf(),
        python,
        version: version.trim().to_string(),
        launcher,
        prepared_in: None,
    })
}

/// The launcher of the cached root of the host's architecture whose CPython is `rt`, if one was
/// prepared: the interpreter finder's last source.
pub fn native_launcher(cache: &Path, rt: Runtime, host: Arch) -> Option<PathBuf> {
    let suite = suite_for(rt)?;
    cached(&cache_dir(cache, suite, host), suite)?.launcher
}

/// Where [`native_launcher`] looks, for the finder's "looked at" list.
pub fn native_root_dir(cache: &Path, rt: Runtime, host: Arch) -> Option<PathBuf> {
    suite_for(rt).map(|s| cache_dir(cache, s, host))
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// The host programs preparing a root takes.
#[derive(Debug)]
struct Tools {
    debootstrap: PathBuf,
    dpkg_deb: PathBuf,
    tar: PathBuf,
}

impl Tools {
    fn find(path_var: &OsStr) -> Result<Tools, RootError> {
        let find = |tool: &'static str, fix: &'static str| {
            std::env::split_paths(path_var)
                .map(|d| d.join(tool))
                .find(|p| {
                    p.metadata()
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                })
                .ok_or(RootError::MissingTool { tool, fix })
        };
        Ok(Tools {
            debootstrap: find(
                "debootstrap",
                "apt-get install -y debootstrap (scripts/provision installs it)",
            )?,
            dpkg_deb: find(
                "dpkg-deb",
                "it comes with dpkg: prepare arm64 roots on a Debian or Ubuntu host",
            )?,
            tar: find("tar", "apt-get install -y tar")?,
        })
    }
}

/// One preparation under way: the root being made, where logs go, and the time left.
struct Steps<'a> {
    root: &'a Path,
    arch: Arch,
    logs: &'a Path,
    deadline: Instant,
    limit: Duration,
}

impl Steps<'_> {
    fn first_stage(&self, tools: &Tools, suite: &Suite, how: &Prepare, mirror: &Mirror) -> Result<(), RootError> {
        let arch = how.arch;
        let mut cmd = Command::new(&tools.debootstrap);
        cmd.arg(format!("--arch={}", debian_arch(arch)))
            .args(["--foreign", "--variant=minbase"])
            .arg(format!("--include={INCLUDE}"))
            .arg(suite.name)
            .arg(self.root)
            .arg(&mirror.uri);
        let scripts = &how.debootstrap_scripts;
        if let Some(fallback) = suite.script_fallback
            && !scripts.join(suite.name).exists()
        {
            cmd.arg(scripts.join(fallback));
        }
        let log = self.logs.join("debootstrap.log");
        match self.run("debootstrap", &mut cmd, &log) {
            Err(RootError::Step { log, tail, .. }) => Err(RootError::Debootstrap {
                suite: suite.name,
                arch,
                mirror: mirror.clone(),
                log,
                tail,
            }),
            other => other,
        }
    }

    /// Unpacks what the first stage fetched but left packed (`debootstrap/base`), as the second
    /// stage would minus the maintainer scripts.
    fn unpack_rest(&self, tools: &Tools) -> Result<(), RootError> {
        let meta = self.root.join("debootstrap");
        let read = |name: &str| fs_err::read_to_string(meta.join(name)).map_err(|e| io(&meta, e));
        let base = read("base")?;
        let debpaths = read("debpaths")?;
        for deb in debs_to_unpack(&base, &debpaths).map_err(|what| io(&meta, what))? {
            let deb = self.root.join(deb.trim_start_matches('/'));
            self.unpack(tools, &deb)?;
        }
        Ok(())
    }

    /// `dpkg-deb --fsys-tarfile DEB | tar -x`: keeps the root's `/lib -> usr/lib` links (merged
    /// /usr) instead of replacing them with folders.
    fn unpack(&self, tools: &Tools, deb: &Path) -> Result<(), RootError> {
        let log = self.logs.join("unpack.log");
        let file = std::fs::File::create(&log).map_err(|e| io(&log, e))?;
        let file2 = file.try_clone().map_err(|e| io(&log, e))?;
        let mut dpkg = Command::new(&tools.dpkg_deb);
        dpkg.arg("--fsys-tarfile").arg(deb).stdout(Stdio::piped()).stderr(file);
        let mut dpkg = Spawned::new(&mut dpkg).map_err(|e| io(&tools.dpkg_deb, e))?;
        let data = dpkg.child.stdout.take().expect("stdout was piped");
        let mut tar = Command::new(&tools.tar);
        tar.args(["--keep-directory-symlink", "-xf", "-", "-C"])
            .arg(self.root)
            .stdin(data)
            .stdout(Stdio::null())
            .stderr(file2);
        let step = format!("unpacking {}", deb.file_name().unwrap_or_default().to_string_lossy());
        let tar_status = Spawned::new(&mut tar)
            .map_err(|e| io(&tools.tar, e))?
            .wait(self.deadline);
        let dpkg_status = dpkg.wait(self.deadline);
        for status in [dpkg_status, tar_status] {
            self.judge(&step, status, &log)?;
        }
        Ok(())
    }

    fn compile_stdlib(&self, emulator: Option<&Path>, python: &Path, suite: &Suite) -> Result<(), RootError> {
        let stdlib = self.root.join(format!("usr/lib/python3.{}", suite.minor));
        let mut cmd = self.python(emulator, python);
        // Serial: multiprocessing's semaphores fail under qemu-user (`SemLock`: read-only file system).
        cmd.args(["-m", "compileall", "-q"]).arg(&stdlib);
        self.run(
            "compiling the root's standard library",
            &mut cmd,
            &self.logs.join("compileall.log"),
        )
    }

    /// The interpreter starts, is the suite's CPython, and runs on the wanted machine.
    fn check_python(
        &self,
        emulator: Option<&Path>,
        python: &Path,
        suite: &Suite,
        arch: Arch,
    ) -> Result<String, RootError> {
        let out = self.logs.join("python-check.log");
        let mut cmd = self.python(emulator, python);
        cmd.args([
            "-c",
            "import platform, sys; print('%d.%d.%d' % sys.version_info[:3], platform.machine())",
        ]);
        self.run("starting the root's python", &mut cmd, &out)?;
        let text = fs_err::read_to_string(&out).map_err(|e| io(&out, e))?;
        let (version, machine) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        let want_prefix = format!("3.{}.", suite.minor);
        if !version.starts_with(&want_prefix) || machine != arch.wheel_machine() {
            return Err(RootError::Step {
                step: "checking the root's python".into(),
                status: format!(
                    "it reports Python {version} on {machine}, not 3.{} on {}",
                    suite.minor,
                    arch.wheel_machine()
                ),
                log: out,
                tail: text.trim().to_string(),
            });
        }
        Ok(version.to_string())
    }

    /// The fetched packages are unpacked now; 30-40 MB less per cached root.
    fn tidy(&self) -> Result<(), RootError> {
        for sub in ["var/cache/apt/archives", "debootstrap"] {
            let p = self.root.join(sub);
            if p.is_dir() {
                fs_err::remove_dir_all(&p).map_err(|e| io(&p, e))?;
            }
        }
        Ok(())
    }

    /// The root's interpreter, emulated if need be, with nothing of the host's Python setup.
    fn python(&self, emulator: Option<&Path>, python: &Path) -> Command {
        let mut cmd = match emulator {
            Some(qemu) => {
                let mut c = Command::new(qemu);
                c.arg("-L").arg(self.root).arg(python);
                c
            }
            None => {
                let (triplet, ld) = loader(self.arch);
                let lib = self.root.join("usr/lib").join(triplet);
                let mut c = Command::new(lib.join(ld));
                c.arg("--library-path").arg(&lib).arg(python);
                c
            }
        };
        cmd.env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C.UTF-8");
        cmd
    }

    fn run(&self, step: &str, cmd: &mut Command, log: &Path) -> Result<(), RootError> {
        let file = std::fs::File::create(log).map_err(|e| io(log, e))?;
        let err = file.try_clone().map_err(|e| io(log, e))?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let program = PathBuf::from(cmd.get_program());
        let status = Spawned::new(cmd).map_err(|e| io(&program, e))?.wait(self.deadline);
        self.judge(step, status, log)
    }

    fn judge(&self, step: &str, status: Option<std::process::ExitStatus>, log: &Path) -> Result<(), RootError> {
        match status {
            None => Err(RootError::Timeout {
                step: step.to_string(),
                limit: self.limit,
                log: log.to_path_buf(),
            }),
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(RootError::Step {
                step: step.to_string(),
                status: s.to_string(),
                log: log.to_path_buf(),
                tail: tail(log),
            }),
        }
    }
}

/// `/var/cache/apt/archives/x.deb` paths of the packages named in `base`, from `debpaths`
/// (`name path` per line), in `base`'s order.
fn debs_to_unpack(base: &str, debpaths: &str) -> Result<Vec<String>, String> {
    let paths: std::collections::HashMap<&str, &str> = debpaths.lines().filter_map(|l| l.split_once(' ')).collect();
    base.split_whitespace()
        .map(|name| {
            paths
                .get(name)
                .map(|p| p.trim().to_string())
                .ok_or_else(|| format!("debootstrap fetched no package for `{name}` (not in debootstrap/debpaths)"))
        })
        .collect()
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
}

mod spawned;
use spawned::Spawned;

#[cfg(test)]
mod tests;
