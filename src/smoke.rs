//! `layerbuild smoke`: unpack a layer and prove it runs through a Lambda-like cold start and one
//! invocation on this machine (Runtime/Extensions API emulator, collector, OTLP receiver).

pub mod http;
// Used by the runs once the smoke split lands (issue 17, phase 2).
#[allow(dead_code)]
mod arm64_root;
#[allow(dead_code)]
mod debian_mirror;
#[allow(dead_code)]
mod native_probe;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};

use crate::arch::{Arch, elf_machine_name};
use crate::emulator::{Emulator, FunctionInfo, Outcome, State};
use crate::receiver::{self, Received, Receiver, SPAN_KIND_CLIENT, SPAN_KIND_SERVER, Span};
use crate::runtime::Runtime;

const BOOTSTRAP_PY: &str = include_str!("smoke/bootstrap.py");
const HANDLER_PY: &str = include_str!("smoke/handler.py");

pub const FUNCTION_NAME: &str = "smoke-fn";
const HANDLER: &str = "handler.handler";
const REGION: &str = "us-east-1";
/// Newest awslambdaric with wheels for both python3.8 and python3.9.
const RIC_REQUIREMENT: &str = "awslambdaric==2.2.1";
/// Lambda's python3.8/3.9 runtimes ship urllib3 1.26 and the layer leaves it out (requests,
/// which the OTLP HTTP exporter uses, needs it), so smoke provides it as the runtime would.
const RUNTIME_REQUIREMENT: &str = "urllib3==1.26.20";

// Bounds of each step; each is also cut to what is left of --timeout.
const REGISTER_LIMIT: Duration = Duration::from_secs(15);
const INIT_LIMIT: Duration = Duration::from_secs(30);
/// Lambda's own limit for the init phase, reported when exceeded.
const LAMBDA_INIT_LIMIT: Duration = Duration::from_secs(10);
const INVOKE_LIMIT: Duration = Duration::from_secs(30);
const AFTER_INVOKE_LIMIT: Duration = Duration::from_secs(10);
const SPANS_LIMIT: Duration = Duration::from_secs(10);
/// Lambda gives extensions up to 2 s after SHUTDOWN; the collector's drain gets a little more here.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);
const PROBE_LIMIT: Duration = Duration::from_secs(60);
const PIP_LIMIT: Duration = Duration::from_secs(600);
const LOG_TAIL_LINES: usize = 25;
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientChoice {
    /// awslambdaric when pip can install it, else smoke's own minimal client.
    Auto,
    /// awslambdaric 2.2.1, Lambda's runtime interface client; fail if it cannot be installed.
    Awslambdaric,
    /// smoke's own minimal Runtime API client (no network needed).
    Builtin,
}

/// Run a layer through a local Lambda cold start and one invocation, and check its traces.
#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// The layer zip (unpacked with its unix modes); its manifest beside it names the arch and runtimes.
    #[arg(value_name = "ZIP", required_unless_present = "dir", conflicts_with = "dir")]
    zip: Option<PathBuf>,
    /// An unpacked layer folder instead of a zip (copied, so it is left untouched).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Runtime to run, e.g. python3.9 (repeatable); default: the manifest's runtimes, else python3.9.
    #[arg(long, value_name = "RUNTIME", value_parser = parse_runtime)]
    runtime: Vec<Runtime>,
    /// Interpreter to run the function with; its version picks the runtime.
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// The layer's architecture when there is no manifest; default: the host's.
    #[arg(long, value_name = "ARCH", value_parser = parse_arch)]
    arch: Option<Arch>,
    /// Runtime interface client.
    #[arg(long, value_enum, default_value = "auto")]
    client: ClientChoice,
    /// Install nothing with pip; use only what is already cached.
    #[arg(long)]
    offline: bool,
    /// A Python file to use as the function's handler module (function `handler`), instead of the sample.
    #[arg(long, value_name = "FILE")]
    handler: Option<PathBuf>,
    /// Overall bound in seconds for each runtime's run; every step has its own bound within it.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// After a passing run, time N more cold starts (wrapper start to handler result).
    #[arg(long, value_name = "N", default_value_t = 0)]
    cold_start_runs: usize,
    /// Let the collector listen on free ports instead of the layer's 4317/4318 and point the SDK there
    /// (for several smoke runs at once).
    #[arg(long)]
    free_ports: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_runtime(s: &str) -> Result<Runtime, String> {
    Runtime::parse(s).ok_or_else(|| format!("unknown runtime `{s}`: use Lambda's names, e.g. python3.9"))
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    Arch::parse(s).ok_or_else(|| format!("unknown architecture `{s}`: use x86_64 or arm64"))
}

// ------------------------------------------------------------------------------------ report

#[derive(Debug, Serialize)]
pub struct Report {
    pub layer: String,
    pub arch: String,
    pub host_arch: String,
    pub mode: String,
    pub passed: bool,
    pub runs: Vec<RunReport>,
    /// What could not be run here and was only checked by reading the files.
    pub static_checks: Vec<Check>,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStart>,
}

#[derive(Debug, Serialize, Default)]
pub struct RunReport {
    pub runtime: String,
    pub python: Option<String>,
    pub runtime_client: String,
    pub extensions: Vec<ExtensionReport>,
    pub telemetry_subscriptions: usize,
    pub init_ms: Option<u64>,
    pub invoke_ms: Option<u64>,
    pub request_id: Option<String>,
    pub result: Option<Value>,
    pub error: Option<Value>,
    pub spans: Vec<SpanReport>,
    pub checks: Vec<Check>,
    pub passed: bool,
    pub failure: Option<String>,
    pub notes: Vec<String>,
    /// Tails of the children's output; on failure only.
    pub logs: BTreeMap<String, Vec<String>>,
    #[serde(skip)]
    wrapper_to_result_ms: Option<u64>,
}

#[derive(Debug, Serialize, Clone)]
pub struct ExtensionReport {
    pub file: String,
    pub name: Option<String>,
    pub registered_ms: Option<u64>,
    pub events: Vec<String>,
    pub delivered: Vec<String>,
    pub exit: Option<String>,
}

#[derive(Debug, Serialize, Clone)]
pub struct SpanReport {
    pub name: String,
    pub kind: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub service: String,
}

#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(name: &str, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            ok,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ColdStart {
    pub runtime: String,
    pub runs: usize,
    pub wrapper_to_result_ms: Vec<u64>,
    pub min_ms: Option<u64>,
    pub median_ms: Option<u64>,
    pub init_ms: Vec<u64>,
    pub failures: Vec<String>,
}

// ------------------------------------------------------------------------------------ command

pub fn command(args: &SmokeArgs) -> Result<ExitCode> {
    let report = run(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn host_arch() -> Option<Arch> {
    Arch::parse(std::env::consts::ARCH)
}

/// The unpacked layer, read-only like /opt; made writable again so the temp folder can go.
struct LayerTree {
    work: tempfile::TempDir,
    root: PathBuf,
}

impl Drop for LayerTree {
    fn drop(&mut self) {
        set_writable(&self.root, true);
    }
}

fn set_writable(root: &Path, writable: bool) {
    // Folders last when locking (so the walk can still list them), first when unlocking.
    let entries: Vec<_> = walkdir::WalkDir::new(root)
        .contents_first(!writable)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.path_is_symlink())
        .collect();
    for e in entries {
        if let Ok(md) = e.metadata() {
            let mode = md.permissions().mode();
            let new = if writable { mode | 0o200 } else { mode & !0o222 };
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(new));
        }
    }
}

pub fn run(args: &SmokeArgs) -> Result<Report> {
    let host =
        host_arch().with_context(|| format!("smoke runs on x86_64 or arm64 hosts, not {}", std::env::consts::ARCH))?;
    let mut notes = Vec::new();
    let work = tempfile::Builder::new().prefix("layerbuild-smoke-").tempdir()?;
    let root = work.path().join("opt");
    let (source, manifest) = match (&args.zip, &args.dir) {
        (Some(zip), _) => {
            unpack_zip(zip, &root)?;
            let mpath = crate::manifest::manifest_path(zip);
            let manifest = if mpath.exists() {
                Some(crate::manifest::read(&mpath)?)
            } else {
                notes.push(format!(
                    "no manifest at {}: arch and runtimes from the flags",
                    mpath.display()
                ));
                None
            };
            (zip.display().to_string(), manifest)
        }
        (None, Some(dir)) => {
            copy_tree(dir, &root)?;
            (dir.display().to_string(), None)
        }
        (None, None) => bail!("smoke needs a layer: give a ZIP or --dir FOLDER"),
    };
    let tree = LayerTree { work, root };
    set_writable(&tree.root, false);

    let arch = match (&manifest, args.arch) {
        (_, Some(a)) => a,
        (Some(m), None) => Arch::parse(&m.layer.arch)
            .with_context(|| format!("the manifest of {source} names an unknown arch `{}`", m.layer.arch))?,
        (None, None) => host,
    };
    let mut runtimes: Vec<Runtime> = if !args.runtime.is_empty() {
        args.runtime.clone()
    } else if let Some(m) = &manifest {
        m.layer.runtimes.iter().filter_map(|r| Runtime::parse(r)).collect()
    } else {
        vec![Runtime { major: 3, minor: 9 }]
    };
    let timeout = Duration::from_secs(args.timeout.max(1));
    let ctx = Ctx {
        layer: tree.root.clone(),
        work: tree.work.path().to_path_buf(),
        args,
    };

    let mut report = Report {
        layer: source,
        arch: arch.to_string(),
        host_arch: host.to_string(),
        mode: String::new(),
        passed: false,
        runs: Vec::new(),
        static_checks: Vec::new(),
        notes,
        cold_start: None,
    };

    if arch != host {
        let qemu = find_qemu(arch);
        report.mode = match &qemu {
            Some(q) => format!(
                "{arch} layer on a {host} host: extensions under {}; Python not run",
                q.display()
            ),
            None => format!("{arch} layer on a {host} host: nothing can run (no qemu)"),
        };
        report.static_checks = static_native_checks(&ctx.layer, arch);
        match qemu {
            Some(q) => report.runs.push(run_emulated(&ctx, &q, arch, timeout)),
            None => report.runs.push(RunReport {
                runtime: "none".into(),
                failure: Some(format!(
                    "cannot run {arch} extensions on this {host} host: no qemu-{}-static or qemu-{} in PATH (install it: apt-get install -y qemu-user-static)",
                    arch.wheel_machine(),
                    arch.wheel_machine()
                )),
                ..RunReport::default()
            }),
        }
        report.passed = report.runs.iter().all(|r| r.passed) && report.static_checks.iter().all(|c| c.ok);
        return Ok(report);
    }

    report.mode = format!("{arch} layer on a {host} host: run natively");
    let mut interps = Vec::new();
    if let Some(p) = &args.python {
        let interp = probe_python(p, &ctx.work)
            .map_err(|e| anyhow::anyhow!("--python {}: {e}: give a working python3.X interpreter", p.display()))?;
        runtimes = vec![interp.runtime];
        interps.push((interp.runtime, Ok(interp)));
    } else {
        for rt in &runtimes {
            interps.push((*rt, find_python(*rt, &ctx.work)));
        }
    }
    for (rt, interp) in interps {
        match interp {
            Ok(interp) => {
                let prep = prepare_runtime(&interp, args);
                let run = run_native(&ctx, &interp, &prep, timeout);
                let cold = args.cold_start_runs > 0 && run.passed && report.cold_start.is_none();
                report.runs.push(run);
                if cold {
                    report.cold_start = Some(cold_start(&ctx, &interp, &prep, timeout, args.cold_start_runs));
                }
            }
            Err(where_looked) => report.runs.push(RunReport {
                runtime: format!("python{}", rt.dotted()),
                failure: Some(format!("no interpreter for python{}: {where_looked}", rt.dotted())),
                ..RunReport::default()
            }),
        }
    }
    let _ = runtimes;
    report.passed = !report.runs.is_empty() && report.runs.iter().all(|r| r.passed);
    Ok(report)
}

struct Ctx<'a> {
    layer: PathBuf,
    work: PathBuf,
    args: &'a SmokeArgs,
}

// ----------------------------------------------------------------------------- layer on disk

fn unpack_zip(zip_path: &Path, dest: &Path) -> Result<()> {
    let file = fs_err::File::open(zip_path)?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).with_context(|| {
        format!(
            "{} is not a readable zip: give a layer zip built by `layerbuild build`",
            zip_path.display()
        )
    })?;
    fs_err::create_dir_all(dest)?;
    let mut dirs = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let name = String::from_utf8(entry.name_raw().to_vec())
            .with_context(|| format!("{}: entry {i} has a name that is not UTF-8", zip_path.display()))?;
        crate::layout::check_path(&name)
            .with_context(|| format!("{}: entry `{name}` cannot be unpacked safely", zip_path.display()))?;
        let target = dest.join(name.trim_end_matches('/'));
        let mode = entry.unix_mode();
        if name.ends_with('/') || entry.is_dir() {
            fs_err::create_dir_all(&target)?;
            dirs.push((target, mode.map(|m| m & 0o7777).unwrap_or(0o755)));
            continue;
        }
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
            let mut link = String::new();
            entry.read_to_string(&mut link)?;
            std::os::unix::fs::symlink(&link, &target)
                .with_context(|| format!("cannot create symlink {}", target.display()))?;
            continue;
        }
        let mut out = fs_err::File::create(&target)?;
        std::io::copy(&mut entry, &mut out).with_context(|| format!("cannot unpack {}", target.display()))?;
        // Lambda unpacks with the modes stored in the zip; no mode means Lambda's default 0644.
        let perm = mode.map(|m| m & 0o7777).unwrap_or(0o644);
        fs_err::set_permissions(&target, std::fs::Permissions::from_mode(perm))?;
    }
    for (d, m) in dirs {
        fs_err::set_permissions(&d, std::fs::Permissions::from_mode(m))?;
    }
    Ok(())
}

fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    if !src.join("otel-instrument").exists() && !src.join("extensions").is_dir() {
        bail!(
            "{} holds neither otel-instrument nor extensions/: give the root of an unpacked layer (what Lambda puts at /opt)",
            src.display()
        );
    }
    for e in walkdir::WalkDir::new(src) {
        let e = e.with_context(|| format!("cannot read {}", src.display()))?;
        let rel = e.path().strip_prefix(src)?;
        let target = dest.join(rel);
        let md = std::fs::symlink_metadata(e.path())?;
        if md.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs_err::read_link(e.path())?, &target)?;
        } else if md.is_dir() {
            fs_err::create_dir_all(&target)?;
        } else {
            fs_err::copy(e.path(), &target)?;
            fs_err::set_permissions(
                &target,
                std::fs::Permissions::from_mode(md.permissions().mode() & 0o7777),
            )?;
        }
    }
    Ok(())
}

/// Files Lambda would start as extensions: every regular file in `extensions/`, by name.
fn extension_files(layer: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(layer.join("extensions"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn find_qemu(arch: Arch) -> Option<PathBuf> {
    let m = arch.wheel_machine();
    [format!("qemu-{m}-static"), format!("qemu-{m}")]
        .iter()
        .find_map(|n| which(n))
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// ELF files checked by reading their headers, for layers whose code cannot run here.
fn static_native_checks(layer: &Path, arch: Arch) -> Vec<Check> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for e in walkdir::WalkDir::new(layer).into_iter().filter_map(|e| e.ok()) {
        if !e.file_type().is_file() {
            continue;
        }
        let mut head = [0u8; 64];
        let Ok(mut f) = std::fs::File::open(e.path()) else {
            continue;
        };
        if f.read_exact(&mut head).is_err() || !crate::elf::is_elf(&head) {
            continue;
        }
        let rel = e.path().strip_prefix(layer).unwrap_or(e.path()).display().to_string();
        let machine = u16::from_le_bytes([head[18], head[19]]);
        *counts.entry(elf_machine_name(machine)).or_default() += 1;
        if machine != arch.elf_machine() {
            wrong.push(format!("{rel} is {}", elf_machine_name(machine)));
        }
    }
    let total: usize = counts.values().sum();
    let summary = counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    vec![Check::new(
        "native code (checked statically only: no Python for this architecture here)",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{total} ELF files, all for {arch}: {summary}")
        } else {
            format!(
                "{} of {total} ELF files are not for {arch}: {}; rebuild them for {}",
                wrong.len(),
                wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; "),
                arch.wheel_machine()
            )
        },
    )]
}

// ------------------------------------------------------------------------------- interpreters

#[derive(Debug, Clone)]
struct Interp {
    runtime: Runtime,
    /// The command name passed to the wrapper (…/bin/python3.X), as Lambda passes /var/lang/bin/python3.X.
    python: PathBuf,
    /// First in PATH, like /var/lang/bin.
    bin_dir: PathBuf,
}

/// Runs a command with a bound; returns status and combined output.
fn run_bounded(cmd: &mut Command, limit: Duration, log: &Path) -> Result<(ExitStatus, String)> {
    let out = fs_err::File::create(log)?;
    let err = out.try_clone()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.into_parts().0))
        .stderr(Stdio::from(err.into_parts().0))
        .spawn()?;
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            bail!("did not finish within {} s", limit.as_secs());
        }
        std::thread::sleep(POLL);
    };
    Ok((status, fs_err::read_to_string(log).unwrap_or_default()))
}

fn probe_python(candidate: &Path, work: &Path) -> Result<Interp, String> {
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

/// python3.X in PATH, then pyenv's versions; each run once to check it works.
fn find_python(rt: Runtime, work: &Path) -> Result<Interp, String> {
    let v = rt.dotted();
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = which(&format!("python{v}")).into_iter().collect();
    let mut pyenv: Vec<PathBuf> = glob_pyenv(&v);
    pyenv.sort();
    pyenv.reverse();
    candidates.extend(pyenv);
    for c in candidates {
        match probe_python(&c, work) {
            Ok(i) if i.runtime == rt => return Ok(i),
            Ok(i) => tried.push(format!("{} is python{}", c.display(), i.runtime.dotted())),
            Err(e) => tried.push(e),
        }
    }
    Err(format!(
        "looked for python{v} in PATH and /root/.pyenv/versions/{v}*/bin/python ({}); pass --python PATH",
        if tried.is_empty() {
            "none found".to_string()
        } else {
            tried.join("; ")
        }
    ))
}

fn glob_pyenv(v: &str) -> Vec<PathBuf> {
    let base = Path::new("/root/.pyenv/versions");
    std::fs::read_dir(base)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n == v || n.starts_with(&format!("{v}."))
                })
                .map(|e| e.path().join("bin/python"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default()
}

// ------------------------------------------------------------------------ runtime packages

/// What stands in for Lambda's /var/runtime: the runtime client and urllib3.
struct Prepared {
    pythonpath: Vec<PathBuf>,
    client: String,
    notes: Vec<String>,
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

fn prepare_runtime(interp: &Interp, args: &SmokeArgs) -> Prepared {
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

// -------------------------------------------------------------------------------- processes

struct Proc {
    label: String,
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
    killed: bool,
}

impl Proc {
    fn poll(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    fn signal_group(&self, sig: i32) {
        // Children run in their own process group: a wrapper's or collector's children go too.
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) with a negative pid signals the group we created; no memory is touched.
        unsafe {
            libc::kill(-pid, sig);
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        if self.poll().is_some() {
            return;
        }
        self.signal_group(libc::SIGTERM);
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if self.poll().is_some() {
                return;
            }
            std::thread::sleep(POLL);
        }
        self.kill();
    }

    fn kill(&mut self) {
        if self.poll().is_none() {
            self.signal_group(libc::SIGKILL);
            self.killed = true;
            self.exit = self.child.wait().ok();
        }
    }

    fn describe_exit(&self) -> Option<String> {
        self.exit.map(|s| {
            if self.killed {
                "killed by smoke".to_string()
            } else {
                describe_status(s)
            }
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe_status(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

fn spawn(
    label: &str,
    argv: &[OsString],
    cwd: &Path,
    env: &BTreeMap<String, OsString>,
    logs: &Path,
) -> Result<Proc, String> {
    let log = logs.join(format!("{}.log", label.replace('/', "_")));
    let out = std::fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    match cmd.spawn() {
        Ok(child) => Ok(Proc {
            label: label.to_string(),
            child,
            log,
            exit: None,
            killed: false,
        }),
        Err(e) => Err(explain_spawn_error(Path::new(&argv[0]), &e)),
    }
}

/// Why a file could not be started, in Lambda's terms.
fn explain_spawn_error(path: &Path, e: &std::io::Error) -> String {
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).ok();
    match e.raw_os_error() {
        Some(libc::EACCES) => format!(
            "cannot start {}: permission denied (mode {}): it needs the exec bit; store it 0755 in the zip",
            path.display(),
            mode.map(|m| format!("{m:04o}")).unwrap_or_else(|| "unknown".into())
        ),
        Some(libc::ENOEXEC) => {
            let mut head = [0u8; 64];
            let is_elf = std::fs::File::open(path)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok()
                && crate::elf::is_elf(&head);
            if is_elf {
                let machine = u16::from_le_bytes([head[18], head[19]]);
                format!(
                    "cannot start {}: exec format error: it is an ELF for {}, this host runs {} (wrong architecture for this layer)",
                    path.display(),
                    elf_machine_name(machine),
                    std::env::consts::ARCH
                )
            } else {
                format!(
                    "cannot start {}: exec format error: neither a program for this host nor a script with a #! line",
                    path.display()
                )
            }
        }
        Some(libc::ENOENT) => format!(
            "cannot start {}: no such file or directory (a script whose #! interpreter is missing?)",
            path.display()
        ),
        _ => format!("cannot start {}: {e}", path.display()),
    }
}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

// ------------------------------------------------------------------------------ one run

/// Two distinct free ports: both are held at once so the OS cannot hand out the same one twice.
fn two_free_ports() -> Option<(u16, u16)> {
    let a = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
    let b = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
    Some((a.local_addr().ok()?.port(), b.local_addr().ok()?.port()))
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn nonce() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{:x}{:x}", t, std::process::id())
}

/// The collector config smoke points the extension at: OTLP in, OTLP/HTTP JSON out to the receiver.
pub fn collector_config(grpc_port: u16, http_port: u16, receiver_endpoint: &str) -> String {
    format!(
        "# Written by `layerbuild smoke`: the layer's collector forwards traces to smoke's receiver.
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: \"localhost:{grpc_port}\"
      http:
        endpoint: \"localhost:{http_port}\"
exporters:
  otlphttp:
    endpoint: \"{receiver_endpoint}\"
    encoding: json
    compression: none
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
"
    )
}

/// Everything one lifecycle needs, set up; processes are stopped on drop.
struct Stage {
    emulator: Emulator,
    receiver: Receiver,
    env: BTreeMap<String, OsString>,
    logs: PathBuf,
    target_body: String,
    otlp_http_port: u16,
    extensions: Vec<(PathBuf, Option<Proc>, Option<String>)>,
}

fn stage(ctx: &Ctx, dir_name: &str, notes: &mut Vec<String>) -> Result<Stage> {
    let run_dir = ctx.work.join(dir_name);
    let logs = run_dir.join("logs");
    fs_err::create_dir_all(&logs)?;
    let id = nonce();
    let target_body = format!("smoke-target-{id}");
    let receiver = Receiver::start(target_body.clone())?;
    let emulator = Emulator::start(FunctionInfo {
        name: FUNCTION_NAME.into(),
        version: "$LATEST".into(),
        handler: HANDLER.into(),
        arn: format!("arn:aws:lambda:{REGION}:000000000000:function:{FUNCTION_NAME}"),
    })?;
    // The layer's defaults are 4317/4318; when something else holds them, use free ports and
    // point the SDK there, rather than talking to a stranger's collector.
    let (grpc, http, default_ports) = if !ctx.args.free_ports && port_free(4317) && port_free(4318) {
        (4317, 4318, true)
    } else {
        let (g, h) = two_free_ports().context("no free ports on 127.0.0.1")?;
        notes.push(if ctx.args.free_ports {
            format!("--free-ports: the collector listens on {g}/{h} and the SDK is pointed there")
        } else {
            format!(
                "ports 4317/4318 are taken on this host: the collector listens on {g}/{h} and the SDK is pointed there"
            )
        });
        (g, h, false)
    };
    let config = run_dir.join("collector-config.yaml");
    fs_err::write(&config, collector_config(grpc, http, &receiver.endpoint()))?;
    let task = run_dir.join("task");
    fs_err::create_dir_all(&task)?;
    match &ctx.args.handler {
        Some(h) => {
            fs_err::copy(h, task.join("handler.py"))?;
        }
        None => fs_err::write(task.join("handler.py"), HANDLER_PY)?,
    }
    fs_err::write(run_dir.join("bootstrap.py"), BOOTSTRAP_PY)?;

    let mut env: BTreeMap<String, OsString> = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_string(), OsString::from(v));
    };
    set("LANG", "C.UTF-8");
    set("TZ", ":UTC");
    set("HOME", &run_dir.display().to_string());
    set("_HANDLER", HANDLER);
    set("LAMBDA_TASK_ROOT", &task.display().to_string());
    set("AWS_REGION", REGION);
    set("AWS_DEFAULT_REGION", REGION);
    set("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME);
    set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
    set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
    set("AWS_LAMBDA_LOG_GROUP_NAME", &format!("/aws/lambda/{FUNCTION_NAME}"));
    set(
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "2024/01/01/[$LATEST]00000000000000000000000000000000",
    );
    set("AWS_LAMBDA_RUNTIME_API", &emulator.api());
    set(
        "AWS_LAMBDA_EXEC_WRAPPER",
        &ctx.layer.join("otel-instrument").display().to_string(),
    );
    set("OPENTELEMETRY_COLLECTOR_CONFIG_URI", &config.display().to_string());
    set("PATH", "/usr/local/bin:/usr/bin:/bin");
    if !default_ports {
        set("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://localhost:{http}"));
    }
    Ok(Stage {
        emulator,
        receiver,
        env,
        logs,
        target_body,
        otlp_http_port: http,
        extensions: Vec::new(),
    })
}

impl Stage {
    /// Starts every extension (optionally through an emulator such as qemu) and waits until
    /// each has registered. Returns the failure cause.
    fn start_extensions(&mut self, ctx: &Ctx, prefix: Option<&Path>, deadline: Instant) -> Result<(), String> {
        for file in extension_files(&ctx.layer) {
            let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let mut argv: Vec<OsString> = prefix.map(|p| vec![p.as_os_str().to_owned()]).unwrap_or_default();
            argv.push(file.clone().into_os_string());
            match spawn(&format!("extension-{name}"), &argv, &ctx.layer, &self.env, &self.logs) {
                Ok(p) => self.extensions.push((file, Some(p), None)),
                Err(why) => {
                    let why = if prefix.is_some() {
                        format!("{why} (under {})", prefix.unwrap_or(Path::new("")).display())
                    } else {
                        why
                    };
                    self.extensions.push((file, None, Some(why.clone())));
                    return Err(format!("extension {name}: {why}"));
                }
            }
        }
        let want = self.extensions.len();
        let end = deadline.min(Instant::now() + REGISTER_LIMIT);
        loop {
            let st = self.emulator.snapshot();
            if st.extensions.len() >= want {
                return Ok(());
            }
            if let Some(cause) = self.extension_trouble(&st, "before registering") {
                return Err(cause);
            }
            if Instant::now() >= end {
                let names: Vec<String> = st.extensions.iter().map(|e| e.name.clone()).collect();
                return Err(format!(
                    "only {} of {want} extensions registered within {} s (registered: {}): an extension must POST /2020-01-01/extension/register first",
                    st.extensions.len(),
                    REGISTER_LIMIT.as_secs(),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ));
            }
            self.emulator.wait_change(&st, POLL);
        }
    }

    /// An extension that exited early or posted an init/exit error.
    fn extension_trouble(&mut self, st: &State, when: &str) -> Option<String> {
        if let Some(e) = st.extension_errors.first() {
            return Some(format!(
                "{} reported an error: {}{}",
                e.who,
                e.error_type.as_deref().map(|t| format!("{t}: ")).unwrap_or_default(),
                e.body
            ));
        }
        for (file, proc, _) in &mut self.extensions {
            if let Some(p) = proc
                && let Some(status) = p.poll()
            {
                let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
                return Some(format!("extension {name} exited ({}) {when}", describe_status(status)));
            }
        }
        None
    }

    fn extension_reports(&mut self, st: &State) -> Vec<ExtensionReport> {
        self.extensions
            .iter_mut()
            .enumerate()
            .map(|(i, (file, proc, why))| {
                let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
                // Registered under its file name, as Lambda expects; else by start order.
                let reg = st
                    .extensions
                    .iter()
                    .find(|e| e.name == name)
                    .or_else(|| st.extensions.get(i));
                ExtensionReport {
                    file: format!("extensions/{name}"),
                    name: reg.map(|e| e.name.clone()),
                    registered_ms: reg.map(|e| e.registered_ms),
                    events: reg.map(|e| e.events.clone()).unwrap_or_default(),
                    delivered: reg.map(|e| e.delivered.clone()).unwrap_or_default(),
                    exit: match proc {
                        Some(p) => {
                            p.poll();
                            p.describe_exit()
                        }
                        None => why.clone(),
                    },
                }
            })
            .collect()
    }

    /// SHUTDOWN to the extensions, wait for them to exit, kill what is left.
    fn shutdown(&mut self, notes: &mut Vec<String>) {
        self.emulator.shutdown("spindown", SHUTDOWN_LIMIT);
        let end = Instant::now() + SHUTDOWN_LIMIT;
        while Instant::now() < end {
            if self
                .extensions
                .iter_mut()
                .all(|(_, p, _)| p.as_mut().is_none_or(|p| p.poll().is_some()))
            {
                break;
            }
            std::thread::sleep(POLL);
        }
        for (file, p, _) in &mut self.extensions {
            if let Some(p) = p
                && p.poll().is_none()
            {
                p.kill();
                notes.push(format!(
                    "extension {} did not exit within {} s of SHUTDOWN: killed",
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    SHUTDOWN_LIMIT.as_secs()
                ));
            }
        }
        self.emulator.close();
    }

    fn collect_logs(&self, runtime: Option<&Proc>, into: &mut BTreeMap<String, Vec<String>>) {
        for p in self.extensions.iter().filter_map(|(_, p, _)| p.as_ref()).chain(runtime) {
            into.insert(p.label.clone(), tail(&p.log, LOG_TAIL_LINES));
        }
    }
}

fn span_reports(spans: &[Span]) -> Vec<SpanReport> {
    spans
        .iter()
        .map(|s| SpanReport {
            name: s.name.clone(),
            kind: receiver::kind_name(s.kind).into(),
            trace_id: s.trace_id.clone(),
            span_id: s.span_id.clone(),
            parent_span_id: s.parent_span_id.clone(),
            service: s.resource.get("service.name").cloned().unwrap_or_default(),
        })
        .collect()
}

fn run_native(ctx: &Ctx, interp: &Interp, prep: &Prepared, timeout: Duration) -> RunReport {
    let mut r = RunReport {
        runtime: format!("python{}", interp.runtime.dotted()),
        python: Some(interp.python.display().to_string()),
        runtime_client: prep.client.clone(),
        notes: prep.notes.clone(),
        ..RunReport::default()
    };
    if prep.client.starts_with("unavailable") {
        r.failure = Some(format!("runtime client {}", prep.client));
        return r;
    }
    let deadline = Instant::now() + timeout;
    let dir = format!("run-python{}-{}", interp.runtime.dotted(), nonce());
    let mut stage = match stage(ctx, &dir, &mut r.notes) {
        Ok(s) => s,
        Err(e) => {
            r.failure = Some(format!("cannot set up the run: {e:#}"));
            return r;
        }
    };
    let path = format!("{}:{}", interp.bin_dir.display(), stage.env["PATH"].to_string_lossy());
    stage.env.insert("PATH".into(), path.into());
    let pythonpath = std::env::join_paths(&prep.pythonpath).unwrap_or_default();
    stage.env.insert("PYTHONPATH".into(), pythonpath);
    if let Some(first) = prep.pythonpath.first() {
        stage
            .env
            .insert("LAMBDA_RUNTIME_DIR".into(), first.clone().into_os_string());
    }
    let client = if prep.client.starts_with("awslambdaric") {
        "awslambdaric"
    } else {
        "builtin"
    };
    stage.env.insert("LAYERBUILD_SMOKE_CLIENT".into(), client.into());
    stage.env.insert(
        "AWS_EXECUTION_ENV".into(),
        format!("AWS_Lambda_python{}", interp.runtime.dotted()).into(),
    );
    // On Lambda /opt and /var/task are read-only, so Python never caches bytecode there. File
    // modes cannot stop root from writing, so without this the first run would leave
    // `__pycache__` in the layer and every later (timed) run would use it.
    stage.env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
    let mut runtime: Option<Proc> = None;
    let failure = lifecycle(ctx, interp, &mut stage, &mut runtime, &mut r, deadline);
    if let Some(rt) = runtime.as_mut() {
        // Lambda stops the runtime when the sandbox goes away; it has answered by now.
        rt.stop(Duration::from_millis(500));
    }
    stage.shutdown(&mut r.notes);
    let st = stage.emulator.snapshot();
    r.extensions = stage.extension_reports(&st);
    r.telemetry_subscriptions = st.telemetry_subscriptions.len();
    let got = stage.receiver.snapshot();
    r.spans = span_reports(&got.spans);
    if failure.is_none() || !r.checks.is_empty() {
        r.checks = evaluate(&st, r.request_id.as_deref(), &stage.target_body, &got);
        r.checks.push(native_modules_check(&ctx.layer, interp.runtime));
    }
    for p in &got.problems {
        r.notes.push(format!("receiver refused a post: {p}"));
    }
    // A run that checked nothing proved nothing.
    let failure = failure.or_else(|| r.checks.is_empty().then(|| "no checks ran".to_string()));
    conclude(&mut r, failure);
    if !r.passed {
        stage.collect_logs(runtime.as_ref(), &mut r.logs);
    }
    r
}

/// Passed when nothing failed on the way and every check is ok; the failure is the first cause.
fn conclude(r: &mut RunReport, failure: Option<String>) {
    r.passed = failure.is_none() && r.checks.iter().all(|c| c.ok);
    r.failure = failure.or_else(|| {
        r.checks
            .iter()
            .find(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
    });
}

/// Cold start, init, invoke, wait for the extensions: the failure cause, if any.
fn lifecycle(
    ctx: &Ctx,
    interp: &Interp,
    stage: &mut Stage,
    runtime: &mut Option<Proc>,
    r: &mut RunReport,
    deadline: Instant,
) -> Option<String> {
    if let Err(cause) = stage.start_extensions(ctx, None, deadline) {
        return Some(cause);
    }
    // The runtime is started as Lambda does with AWS_LAMBDA_EXEC_WRAPPER set.
    let wrapper = ctx.layer.join("otel-instrument");
    let argv: Vec<OsString> = vec![
        wrapper.clone().into_os_string(),
        interp.python.clone().into_os_string(),
        stage
            .logs
            .parent()
            .unwrap_or(&stage.logs)
            .join("bootstrap.py")
            .into_os_string(),
    ];
    let task = PathBuf::from(&stage.env["LAMBDA_TASK_ROOT"]);
    let started_ms = stage.emulator.now_ms();
    match spawn("runtime", &argv, &task, &stage.env, &stage.logs) {
        Ok(p) => *runtime = Some(p),
        Err(why) => return Some(format!("runtime: {why} (it is AWS_LAMBDA_EXEC_WRAPPER)")),
    }
    let rt = runtime.as_mut()?;

    // Init ends when the runtime and every extension have called next.
    let end = deadline.min(Instant::now() + INIT_LIMIT);
    loop {
        let st = stage.emulator.snapshot();
        if let Some(e) = &st.init_error {
            return Some(format!(
                "the runtime failed to initialise: {}",
                posted_error_text(e.error_type.as_deref(), &e.body)
            ));
        }
        if let Some(cause) = stage.extension_trouble(&st, "during init") {
            return Some(cause);
        }
        if let Some(s) = rt.poll() {
            return Some(format!(
                "the runtime (exec wrapper {}) exited during init ({})",
                wrapper.display(),
                describe_status(s)
            ));
        }
        if st.runtime_next_calls > 0 && st.extensions.iter().all(|e| e.next_calls > 0) {
            let init = st.runtime_first_next_ms.unwrap_or(0).saturating_sub(started_ms);
            r.init_ms = Some(init);
            if Duration::from_millis(init) > LAMBDA_INIT_LIMIT {
                r.notes
                    .push(format!("init took {init} ms: over Lambda's 10 s init limit"));
            }
            break;
        }
        if Instant::now() >= end {
            let waiting: Vec<String> = st
                .extensions
                .iter()
                .filter(|e| e.next_calls == 0)
                .map(|e| e.name.clone())
                .collect();
            return Some(format!(
                "init did not finish within {} s: {}{}",
                end.saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(INIT_LIMIT.as_secs().min(1)),
                if st.runtime_next_calls == 0 {
                    "the runtime never called invocation/next; "
                } else {
                    ""
                },
                if waiting.is_empty() {
                    String::new()
                } else {
                    format!("extensions not ready: {}", waiting.join(", "))
                }
            ));
        }
        stage.emulator.wait_change(&st, POLL);
    }

    let event =
        json!({"target_url": format!("{}{}?run={}", stage.receiver.endpoint(), receiver::TARGET_PATH, nonce())});
    let invoke_limit = deadline.saturating_duration_since(Instant::now()).min(INVOKE_LIMIT);
    let sent_ms = stage.emulator.now_ms();
    let id = stage.emulator.invoke(&event, invoke_limit, true);
    r.request_id = Some(id.clone());
    let end = Instant::now() + invoke_limit;
    loop {
        let st = stage.emulator.snapshot();
        if let Some(inv) = st.invocation(&id)
            && let (Some(outcome), Some(at)) = (&inv.outcome, inv.outcome_ms)
        {
            r.invoke_ms = Some(at.saturating_sub(sent_ms));
            r.wrapper_to_result_ms = Some(at.saturating_sub(started_ms));
            match outcome {
                Outcome::Response(body) => {
                    r.result = Some(
                        serde_json::from_slice(body)
                            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into())),
                    );
                }
                Outcome::Error { error_type, body } => {
                    let v: Value = serde_json::from_slice(body)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()));
                    r.error = Some(json!({"header": error_type, "body": v}));
                }
            }
            break;
        }
        if let Some(s) = rt.poll() {
            return Some(format!(
                "the runtime exited during the invocation ({}) without answering",
                describe_status(s)
            ));
        }
        if let Some(cause) = stage.extension_trouble(&st, "during the invocation") {
            return Some(cause);
        }
        if Instant::now() >= end {
            return Some(format!(
                "the runtime gave no response or error within {} s of the invocation",
                invoke_limit.as_secs()
            ));
        }
        stage.emulator.wait_change(&st, POLL);
    }

    // The invocation is over for Lambda when every extension is back in event/next.
    let end = deadline.min(Instant::now() + AFTER_INVOKE_LIMIT);
    loop {
        let st = stage.emulator.snapshot();
        let behind: Vec<String> = st
            .extensions
            .iter()
            .filter(|e| e.events.iter().any(|t| t == "INVOKE") && e.next_calls < 2)
            .map(|e| e.name.clone())
            .collect();
        if behind.is_empty() {
            break;
        }
        if let Some(cause) = stage.extension_trouble(&st, "after the invocation") {
            return Some(cause);
        }
        if Instant::now() >= end {
            return Some(format!(
                "extensions did not call event/next again after INVOKE within {} s: {}",
                AFTER_INVOKE_LIMIT.as_secs(),
                behind.join(", ")
            ));
        }
        stage.emulator.wait_change(&st, POLL);
    }

    // Spans may still be on their way through the collector. A failed invocation cannot pass the
    // checks, so there the first SERVER span is enough to report on.
    let target_body = stage.target_body.clone();
    let end = deadline.min(Instant::now() + SPANS_LIMIT);
    let st = stage.emulator.snapshot();
    let failed = !matches!(
        st.invocation(&id).and_then(|i| i.outcome.as_ref()),
        Some(Outcome::Response(_))
    );
    stage
        .receiver
        .wait_for(end.saturating_duration_since(Instant::now()), |got| {
            if failed {
                got.spans.iter().any(|s| s.kind == SPAN_KIND_SERVER)
            } else {
                evaluate(&st, Some(&id), &target_body, got).iter().all(|c| c.ok)
            }
        });
    None
}

fn posted_error_text(error_type: Option<&str>, body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v.get("errorMessage").is_some() => format!(
            "{}: {}",
            v["errorType"].as_str().or(error_type).unwrap_or("error"),
            v["errorMessage"].as_str().unwrap_or("")
        ),
        _ => format!("{}: {}", error_type.unwrap_or("error"), body.trim()),
    }
}

/// The checks of one invocation: the handler's result and the spans that came through.
pub fn evaluate(st: &State, request_id: Option<&str>, target_body: &str, got: &Received) -> Vec<Check> {
    let mut checks = Vec::new();
    let inv = request_id.and_then(|id| st.invocation(id));
    let result = match inv.and_then(|i| i.outcome.as_ref()) {
        None => Check::new("invoke result", false, "the runtime did not answer the invocation"),
        Some(Outcome::Error { error_type, body }) => Check::new(
            "invoke result",
            false,
            format!(
                "the handler failed: {}",
                posted_error_text(error_type.as_deref(), &String::from_utf8_lossy(body))
            ),
        ),
        Some(Outcome::Response(body)) => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let mut wrong = Vec::new();
            if v["smoke"] != "ok" {
                wrong.push("no \"smoke\": \"ok\"".to_string());
            }
            if v["request_id"].as_str() != request_id {
                wrong.push(format!(
                    "request_id {} is not {}",
                    v["request_id"],
                    request_id.unwrap_or("")
                ));
            }
            if v["target_body"].as_str() != Some(target_body) {
                wrong.push(format!(
                    "target_body {} is not what the target served",
                    v["target_body"]
                ));
            }
            if wrong.is_empty() {
                Check::new(
                    "invoke result",
                    true,
                    format!(
                        "the handler's result, with the target's answer (via {})",
                        v["client"].as_str().unwrap_or("?")
                    ),
                )
            } else {
                Check::new(
                    "invoke result",
                    false,
                    format!(
                        "unexpected result {}: {}",
                        String::from_utf8_lossy(body),
                        wrong.join("; ")
                    ),
                )
            }
        }
    };
    checks.push(result);

    let servers: Vec<&Span> = got.spans.iter().filter(|s| s.kind == SPAN_KIND_SERVER).collect();
    let server = servers.iter().copied().find(|s| {
        s.resource.get("service.name").map(String::as_str) == Some(FUNCTION_NAME)
            && s.attributes.keys().any(|k| k.starts_with("faas."))
            && ["faas.execution", "faas.invocation_id"]
                .iter()
                .filter_map(|k| s.attributes.get(*k))
                .all(|v| Some(v.as_str()) == request_id)
    });
    let server_check = match (server, got.spans.is_empty()) {
        (Some(s), _) => {
            let faas: Vec<String> = s
                .attributes
                .iter()
                .filter(|(k, _)| k.starts_with("faas.") || k.starts_with("cloud."))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            Check::new(
                "server span",
                true,
                format!("`{}` from service {FUNCTION_NAME}, {}", s.name, faas.join(", ")),
            )
        }
        (None, true) => Check::new(
            "server span",
            false,
            format!(
                "the receiver got no spans ({} posts): nothing came from the SDK through the collector; see the logs",
                got.posts
            ),
        ),
        (None, false) => Check::new(
            "server span",
            false,
            format!(
                "no SERVER span with service.name={FUNCTION_NAME} and faas.* attributes for request {}; got: {}",
                request_id.unwrap_or("?"),
                got.spans
                    .iter()
                    .map(|s| format!(
                        "{} {} (service {}, {} attrs)",
                        receiver::kind_name(s.kind),
                        s.name,
                        s.resource.get("service.name").map(String::as_str).unwrap_or("-"),
                        s.attributes.len()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
    };
    checks.push(server_check);

    let clients: Vec<&Span> = got.spans.iter().filter(|s| s.kind == SPAN_KIND_CLIENT).collect();
    let client_check = match server {
        None => Check::new("client span", false, "no SERVER span to be its parent"),
        Some(s) => match clients
            .iter()
            .find(|c| c.parent_span_id == s.span_id && c.trace_id == s.trace_id)
        {
            Some(c) => Check::new(
                "client span",
                true,
                format!(
                    "`{}` is a child of `{}` (span {}) in trace {}",
                    c.name, s.name, s.span_id, s.trace_id
                ),
            ),
            None if clients.is_empty() => Check::new(
                "client span",
                false,
                format!(
                    "no CLIENT span: the handler's HTTP call was not instrumented (it used {})",
                    inv.and_then(|i| match &i.outcome {
                        Some(Outcome::Response(b)) => serde_json::from_slice::<Value>(b).ok(),
                        _ => None,
                    })
                    .and_then(|v| v["client"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "an unknown client".into())
                ),
            ),
            None => Check::new(
                "client span",
                false,
                format!(
                    "CLIENT spans {} are not children of the SERVER span {} (trace {})",
                    clients
                        .iter()
                        .map(|c| format!("`{}` parent {} trace {}", c.name, c.parent_span_id, c.trace_id))
                        .collect::<Vec<_>>()
                        .join(", "),
                    s.span_id,
                    s.trace_id
                ),
            ),
        },
    };
    checks.push(client_check);
    checks
}

/// Extension modules on this runtime's path that it cannot import: tagged for another CPython
/// (`.cpython-39-` under python3.8) with no sibling for this one. Python skips them silently and
/// the package falls back or fails at first use, so a passing invocation does not show it.
fn native_modules_check(layer: &Path, rt: Runtime) -> Check {
    let py = layer.join("python");
    let own = format!("python{}", rt.dotted());
    let want = format!("{}{}", rt.major, rt.minor);
    let mut total = 0;
    let mut bad = Vec::new();
    let walk = walkdir::WalkDir::new(&py).into_iter().filter_entry(|e| {
        // python/lib/python3.X/ of other runtimes is not on this runtime's path.
        let rel = e.path().strip_prefix(&py).unwrap_or(e.path());
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        !(parts.len() == 2 && parts[0] == "lib" && parts[1].starts_with("python") && parts[1] != own)
    });
    for e in walk.filter_map(|e| e.ok()).filter(|e| e.file_type().is_file()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((module, rest)) = name.split_once(".cpython-") else {
            continue;
        };
        if !name.ends_with(".so") {
            continue;
        }
        total += 1;
        let tag: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if tag == want {
            continue;
        }
        // This runtime's own build, or a stable-ABI or untagged one, which any CPython loads
        // (charset_normalizer ships cp39-only wheels beside a cp37-abi3 one for 3.8).
        let sibling = format!("{module}.cpython-{want}-");
        let portable = [format!("{module}.abi3.so"), format!("{module}.so")];
        let has_sibling = e
            .path()
            .parent()
            .and_then(|d| std::fs::read_dir(d).ok())
            .is_some_and(|rd| {
                rd.filter_map(|x| x.ok()).any(|x| {
                    let n = x.file_name().to_string_lossy().into_owned();
                    n.starts_with(&sibling) || portable.contains(&n)
                })
            });
        if !has_sibling {
            bad.push(e.path().strip_prefix(layer).unwrap_or(e.path()).display().to_string());
        }
    }
    let name = format!("native modules for {own}");
    if bad.is_empty() {
        Check::new(
            &name,
            true,
            format!("{total} extension modules on its path, each loadable by cp{want} (checked by file name)"),
        )
    } else {
        Check::new(
            &name,
            false,
            format!(
                "{} extension modules are built for another CPython and cannot load under {own}: {}; build the layer's packages for {own}",
                bad.len(),
                bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    }
}

/// For a layer of another architecture: the extensions under qemu, a probe span through them.
fn run_emulated(ctx: &Ctx, qemu: &Path, arch: Arch, timeout: Duration) -> RunReport {
    let mut r = RunReport {
        runtime: "none (no Python for this architecture here)".into(),
        runtime_client: "none".into(),
        ..RunReport::default()
    };
    let deadline = Instant::now() + timeout;
    let mut stage = match stage(ctx, &format!("run-{arch}-{}", nonce()), &mut r.notes) {
        Ok(s) => s,
        Err(e) => {
            r.failure = Some(format!("cannot set up the run: {e:#}"));
            return r;
        }
    };
    let failure = emulated_lifecycle(ctx, qemu, &mut stage, &mut r, deadline);
    stage.shutdown(&mut r.notes);
    let st = stage.emulator.snapshot();
    r.extensions = stage.extension_reports(&st);
    r.telemetry_subscriptions = st.telemetry_subscriptions.len();
    let got = stage.receiver.snapshot();
    r.spans = span_reports(&got.spans);
    if failure.is_none() {
        let probe = r.request_id.clone().unwrap_or_default();
        let through = got.spans.iter().any(|s| s.name == probe);
        r.checks.push(Check::new(
            "collector pipeline",
            through,
            if through {
                format!("a probe span posted to the {arch} collector's OTLP/HTTP receiver reached smoke's receiver")
            } else {
                format!(
                    "the probe span posted to the collector did not reach the receiver ({} posts)",
                    got.posts
                )
            },
        ));
    }
    conclude(&mut r, failure);
    if !r.passed {
        stage.collect_logs(None, &mut r.logs);
    }
    r
}

fn emulated_lifecycle(
    ctx: &Ctx,
    qemu: &Path,
    stage: &mut Stage,
    r: &mut RunReport,
    deadline: Instant,
) -> Option<String> {
    if extension_files(&ctx.layer).is_empty() {
        return Some("the layer has no extensions/: nothing of it can run on this host".into());
    }
    let started = stage.emulator.now_ms();
    if let Err(cause) = stage.start_extensions(ctx, Some(qemu), deadline) {
        return Some(cause);
    }
    let end = deadline.min(Instant::now() + INIT_LIMIT);
    loop {
        let st = stage.emulator.snapshot();
        if let Some(cause) = stage.extension_trouble(&st, "during init") {
            return Some(cause);
        }
        if st.extensions.iter().all(|e| e.next_calls > 0) {
            r.init_ms = Some(stage.emulator.now_ms().saturating_sub(started));
            break;
        }
        if Instant::now() >= end {
            return Some("extensions did not call event/next (end of init) in time".into());
        }
        stage.emulator.wait_change(&st, POLL);
    }
    let id = stage.emulator.invoke(&json!({}), INVOKE_LIMIT, false);
    let probe_name = format!("smoke-probe-{}", nonce());
    r.request_id = Some(probe_name.clone());
    let trace: String = format!("{:0>32}", nonce()).chars().rev().take(32).collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": FUNCTION_NAME}}]},
        "scopeSpans": [{"scope": {"name": "layerbuild.smoke"}, "spans": [{
            "traceId": trace, "spanId": &trace[..16], "name": probe_name, "kind": 2,
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
            "attributes": [{"key": "faas.execution", "value": {"stringValue": id}}]
        }]}]
    }]});
    let host = format!("127.0.0.1:{}", stage.otlp_http_port);
    match http::post(
        &host,
        "/v1/traces",
        "application/json",
        body.to_string().as_bytes(),
        Duration::from_secs(10),
    ) {
        Ok((200, _)) => {}
        Ok((status, text)) => return Some(format!("the collector's OTLP/HTTP receiver answered {status}: {text}")),
        Err(e) => {
            return Some(format!(
                "cannot post to the collector's OTLP/HTTP receiver on {host}: {e:#}"
            ));
        }
    }
    let end = deadline.min(Instant::now() + AFTER_INVOKE_LIMIT);
    while Instant::now() < end {
        let st = stage.emulator.snapshot();
        if st
            .extensions
            .iter()
            .all(|e| !e.events.iter().any(|t| t == "INVOKE") || e.next_calls >= 2)
        {
            break;
        }
        stage.emulator.wait_change(&st, POLL);
    }
    let p2 = probe_name.clone();
    stage.receiver.wait_for(
        deadline
            .min(Instant::now() + SPANS_LIMIT)
            .saturating_duration_since(Instant::now()),
        |g| g.spans.iter().any(|s| s.name == p2),
    );
    None
}

fn cold_start(ctx: &Ctx, interp: &Interp, prep: &Prepared, timeout: Duration, n: usize) -> ColdStart {
    let mut c = ColdStart {
        runtime: format!("python{}", interp.runtime.dotted()),
        runs: n,
        wrapper_to_result_ms: Vec::new(),
        min_ms: None,
        median_ms: None,
        init_ms: Vec::new(),
        failures: Vec::new(),
    };
    for i in 0..n {
        let run = run_native(ctx, interp, prep, timeout);
        match (run.passed, run.wrapper_to_result_ms) {
            (true, Some(ms)) => {
                c.wrapper_to_result_ms.push(ms);
                c.init_ms.extend(run.init_ms);
            }
            _ => c.failures.push(format!(
                "run {}: {}",
                i + 1,
                run.failure.unwrap_or_else(|| "no timing".into())
            )),
        }
    }
    let mut sorted = c.wrapper_to_result_ms.clone();
    sorted.sort_unstable();
    c.min_ms = sorted.first().copied();
    c.median_ms = (!sorted.is_empty()).then(|| sorted[sorted.len() / 2]);
    c
}

// ------------------------------------------------------------------------------ rendering

pub fn render(r: &Report) -> String {
    let mut s = format!("smoke {}: {}\n", r.layer, r.mode);
    for n in &r.notes {
        s.push_str(&format!("  note: {n}\n"));
    }
    for run in &r.runs {
        s.push_str(&format!(
            "\n{}{}  runtime client: {}\n",
            run.runtime,
            run.python.as_deref().map(|p| format!(" ({p})")).unwrap_or_default(),
            run.runtime_client
        ));
        for e in &run.extensions {
            s.push_str(&format!(
                "  extension {}: {}{}\n",
                e.file,
                match (&e.name, e.registered_ms) {
                    (Some(n), Some(ms)) => format!(
                        "registered as `{n}` at {ms} ms for [{}], got [{}]",
                        e.events.join(", "),
                        e.delivered.join(", ")
                    ),
                    _ => "not registered".into(),
                },
                e.exit.as_deref().map(|x| format!("; {x}")).unwrap_or_default()
            ));
        }
        if run.telemetry_subscriptions > 0 {
            s.push_str(&format!(
                "  telemetry API subscriptions: {}\n",
                run.telemetry_subscriptions
            ));
        }
        if let Some(ms) = run.init_ms {
            s.push_str(&format!(
                "  init: {ms} ms (start to ready: runtime and extensions in next)\n"
            ));
        }
        if let Some(v) = &run.result {
            s.push_str(&format!("  invoke: {} ms -> {v}\n", run.invoke_ms.unwrap_or(0)));
        }
        if let Some(v) = &run.error {
            s.push_str(&format!("  invoke: {} ms -> error {v}\n", run.invoke_ms.unwrap_or(0)));
        }
        if !run.spans.is_empty() {
            s.push_str(&format!("  spans received ({}):\n", run.spans.len()));
            for sp in &run.spans {
                s.push_str(&format!(
                    "    {:<8} {:<40} span {} parent {} trace {} service {}\n",
                    sp.kind,
                    sp.name,
                    sp.span_id,
                    if sp.parent_span_id.is_empty() {
                        "-"
                    } else {
                        &sp.parent_span_id
                    },
                    sp.trace_id,
                    sp.service
                ));
            }
        }
        for c in &run.checks {
            s.push_str(&format!(
                "  {} {}: {}\n",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        for n in &run.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        match &run.failure {
            None => s.push_str("  PASS\n"),
            Some(f) => {
                s.push_str(&format!("  FAIL: {f}\n"));
                for (name, lines) in &run.logs {
                    s.push_str(&format!("  --- {name} (last {} lines)\n", lines.len()));
                    for l in lines {
                        s.push_str(&format!("  | {l}\n"));
                    }
                }
            }
        }
    }
    for c in &r.static_checks {
        s.push_str(&format!(
            "{} {}: {}\n",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        ));
    }
    if let Some(c) = &r.cold_start {
        s.push_str(&format!(
            "\ncold start, {} ({} runs, read-only layer, PYTHONDONTWRITEBYTECODE=1), wrapper start to handler result: min {} ms, median {} ms; init (to first next): {:?} ms\n",
            c.runtime,
            c.runs,
            c.min_ms.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            c.median_ms.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            c.init_ms
        ));
        for f in &c.failures {
            s.push_str(&format!("  cold start failure: {f}\n"));
        }
    }
    s.push_str(&format!("\n{}\n", if r.passed { "smoke: PASS" } else { "smoke: FAIL" }));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::Invocation;
    use std::collections::BTreeMap;

    fn span(kind: i64, id: &str, parent: &str, trace: &str, attrs: &[(&str, &str)], service: &str) -> Span {
        Span {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: format!("span-{id}"),
            kind,
            scope: String::new(),
            attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            resource: BTreeMap::from([("service.name".to_string(), service.to_string())]),
        }
    }

    fn state(outcome: Outcome) -> State {
        State {
            invocations: vec![Invocation {
                id: "req-1".into(),
                event: b"{}".to_vec(),
                deadline_ms: 0,
                trace_id: String::new(),
                delivered_ms: Some(1),
                outcome: Some(outcome),
                outcome_ms: Some(2),
            }],
            ..State::default()
        }
    }

    fn ok_result() -> Outcome {
        Outcome::Response(
            br#"{"smoke":"ok","request_id":"req-1","target_status":200,"target_body":"tb","client":"requests"}"#
                .to_vec(),
        )
    }

    fn received(spans: Vec<Span>) -> Received {
        Received {
            posts: 1,
            spans,
            ..Received::default()
        }
    }

    #[test]
    fn passes_with_server_and_child_client() {
        let got = received(vec![
            span(2, "aa", "", "t1", &[("faas.execution", "req-1")], FUNCTION_NAME),
            span(3, "bb", "aa", "t1", &[], FUNCTION_NAME),
        ]);
        let checks = evaluate(&state(ok_result()), Some("req-1"), "tb", &got);
        assert!(checks.iter().all(|c| c.ok), "{checks:?}");
    }

    #[test]
    fn each_broken_piece_is_named() {
        let st = state(ok_result());
        // Client span in another trace.
        let got = received(vec![
            span(2, "aa", "", "t1", &[("faas.execution", "req-1")], FUNCTION_NAME),
            span(3, "bb", "aa", "t2", &[], FUNCTION_NAME),
        ]);
        let c = evaluate(&st, Some("req-1"), "tb", &got);
        assert!(!c[2].ok && c[2].detail.contains("not children"), "{c:?}");
        // Server span of another service, or for another request.
        let got = received(vec![span(2, "aa", "", "t1", &[("faas.execution", "req-1")], "other")]);
        assert!(!evaluate(&st, Some("req-1"), "tb", &got)[1].ok);
        let got = received(vec![span(
            2,
            "aa",
            "",
            "t1",
            &[("faas.execution", "req-9")],
            FUNCTION_NAME,
        )]);
        assert!(!evaluate(&st, Some("req-1"), "tb", &got)[1].ok);
        // No spans at all.
        let c = evaluate(&st, Some("req-1"), "tb", &received(vec![]));
        assert!(c[1].detail.contains("no spans"), "{c:?}");
        // A result that does not carry what the target served.
        let c = evaluate(&st, Some("req-1"), "other-body", &received(vec![]));
        assert!(!c[0].ok && c[0].detail.contains("target_body"), "{c:?}");
        // The handler raised.
        let st = state(Outcome::Error {
            error_type: Some("Unhandled".into()),
            body: br#"{"errorMessage":"boom","errorType":"ValueError"}"#.to_vec(),
        });
        let c = evaluate(&st, Some("req-1"), "tb", &received(vec![]));
        assert_eq!(c[0].detail, "the handler failed: ValueError: boom");
    }

    #[test]
    fn config_points_at_the_receiver() {
        let c = collector_config(4317, 4318, "http://127.0.0.1:9");
        let v: serde_norway::Value = serde_norway::from_str(&c).unwrap();
        assert_eq!(
            v["exporters"]["otlphttp"]["endpoint"].as_str(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(v["exporters"]["otlphttp"]["encoding"].as_str(), Some("json"));
        assert_eq!(
            v["receivers"]["otlp"]["protocols"]["http"]["endpoint"].as_str(),
            Some("localhost:4318")
        );
    }

    #[test]
    fn spawn_errors_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("x");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        let env = BTreeMap::new();
        let e = spawn("x", &[script.clone().into_os_string()], dir.path(), &env, dir.path())
            .err()
            .unwrap();
        assert!(e.contains("permission denied (mode 0644)"), "{e}");
        let mut elf = crate::elf::fake_elf(object::elf::EM_AARCH64.0, object::elf::ET_EXEC.0);
        if std::env::consts::ARCH == "aarch64" {
            elf = crate::elf::fake_elf(object::elf::EM_X86_64.0, object::elf::ET_EXEC.0);
        }
        elf.resize(4096, 0);
        std::fs::write(&script, elf).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = spawn("x", &[script.into_os_string()], dir.path(), &env, dir.path()).err();
        // A host with binfmt emulation for the other arch may start it; otherwise the cause is named.
        // Only a host with binfmt emulation registered for the other arch may start it.
        let emulated = std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
            || std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-x86_64").exists();
        match e {
            Some(e) => assert!(
                e.contains("exec format error") && e.contains("wrong architecture"),
                "{e}"
            ),
            None => assert!(emulated, "a foreign ELF started without binfmt emulation"),
        }
    }

    #[test]
    fn native_modules_must_match_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let py = dir.path().join("python");
        let put = |rel: &str| {
            let p = py.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        };
        let py38 = Runtime { major: 3, minor: 8 };
        let py39 = Runtime { major: 3, minor: 9 };
        put("wrapt/_wrappers.cpython-39-x86_64-linux-gnu.so");
        put("lib/python3.8/site-packages/grpc/cygrpc.cpython-38-x86_64-linux-gnu.so");
        put("lib/python3.9/site-packages/grpc/cygrpc.cpython-39-x86_64-linux-gnu.so");
        put("lib/python3.9/site-packages/x/_abi3.abi3.so");
        assert!(native_modules_check(dir.path(), py39).ok);
        let c = native_modules_check(dir.path(), py38);
        assert!(!c.ok && c.detail.contains("wrapt/_wrappers.cpython-39"), "{c:?}");
        // A sibling built for the runtime makes it loadable.
        put("wrapt/_wrappers.cpython-38-x86_64-linux-gnu.so");
        let c = native_modules_check(dir.path(), py38);
        assert!(c.ok, "{c:?}");
        assert!(c.detail.starts_with("3 extension modules"), "{c:?}");
        // A stable-ABI sibling loads under any CPython, so a cp39-only build beside it is fine.
        put("charset_normalizer/md.cpython-39-x86_64-linux-gnu.so");
        assert!(!native_modules_check(dir.path(), py38).ok);
        put("charset_normalizer/md.abi3.so");
        assert!(native_modules_check(dir.path(), py38).ok);
    }
}
