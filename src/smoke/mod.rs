//! `layerbuild smoke`: unpack a layer and prove it runs through a Lambda-like cold start and
//! invocations on this machine (Runtime/Extensions/Telemetry API emulator, collector, OTLP
//! receiver), with the sandbox frozen after each invocation as Lambda freezes it.
//!
//! `options` (flags) -> `layer_dir` (unpack, run folder) -> `runs` (one per runtime) -> `stage`
//! (processes, emulator, receiver) + `lifecycle` (the waits, the freeze) -> `checks` -> `report`.

mod checks;
mod clock;
mod emulated;
mod emulator;
mod foreign;
mod freeze;
mod http;
mod layer_dir;
mod lifecycle;
mod native;
mod native_probe;
mod options;
pub(crate) mod process;
mod python;
mod receiver;
mod report;
mod runs;
mod stage;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

pub use options::SmokeArgs;
use report::{Report, RunReport, render};

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::support::proctree;
use crate::support::progress::{Progress, ProgressMode};
use crate::support::usage::usage;
use layer_dir::Layer;
use options::Round;
use python::{find_python, prepare_runtime, probe_python};

const FUNCTION_NAME: &str = "smoke-fn";
const HANDLER: &str = "handler.handler";
const REGION: &str = "us-east-1";

/// Why smoke could not run at all (a run that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    #[error("smoke runs on x86_64 or arm64 hosts, not {0}")]
    UnsupportedHost(String),
    #[error("smoke needs a layer: give a ZIP or --dir FOLDER")]
    NoLayer,
    #[error(
        "{} holds neither otel-instrument nor extensions/: give the root of an unpacked layer (what Lambda puts at /opt)",
        .0.display()
    )]
    NotALayer(PathBuf),
    #[error("the manifest of {layer} names an unknown arch `{arch}`: rebuild the layer or pass --arch")]
    ManifestArch { layer: String, arch: String },
    #[error("--python {}: {why}: give a working python3.X interpreter", .path.display())]
    Python { path: PathBuf, why: String },
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

/// What every run of one smoke invocation shares.
pub(crate) struct Ctx<'a> {
    /// The unpacked layer (Lambda's /opt).
    pub(crate) layer: &'a Path,
    /// Where run folders, probes and logs go.
    pub(crate) work: &'a Path,
    pub(crate) args: &'a SmokeArgs,
    /// Where the runs report their stages.
    pub(crate) progress: &'a Progress,
}

/// `layerbuild smoke`: the report printed (text or JSON); exit 0 when it passed, 1 when not.
pub fn command(args: &SmokeArgs, mode: ProgressMode) -> Result<ExitCode> {
    // Before any thread starts (see end_tree_on_signals): Ctrl-C or a SIGTERM ends every process
    // the layer started and removes the unpacked layer, instead of leaving both behind.
    if let Err(e) = proctree::end_tree_on_signals("smoke", layer_dir::remove_open_layers) {
        eprintln!(
            "layerbuild: warning: cannot watch for SIGINT and SIGTERM ({e}): an interrupted smoke may leave processes behind"
        );
    }
    let progress = Progress::new(mode, false);
    // An anyhow error goes out as itself, so that a usage error in it still reads as one.
    let report = run(args, &progress);
    // A run that ended because the signal watcher killed its processes is the watcher's to end.
    proctree::wait_if_ending();
    let report = report.map_err(|e| match e {
        SmokeError::Setup(inner) => inner,
        other => other.into(),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // The report quotes the layer's own output and errors: printed terminal-safe.
        print!("{}", crate::support::text::terminal_safe(&render(&report)));
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn host_arch() -> Result<Arch, SmokeError> {
    Arch::parse(std::env::consts::ARCH).ok_or_else(|| SmokeError::UnsupportedHost(std::env::consts::ARCH.into()))
}

/// Runs the layer as the flags say and reports; an error only when nothing could run at all.
fn run(args: &SmokeArgs, progress: &Progress) -> Result<Report, SmokeError> {
    let host = host_arch()?;
    // Processes the layer's programs orphan (a daemon an extension starts with setsid) come
    // back to smoke instead of init, so each run can end them.
    if let Err(e) = proctree::become_subreaper() {
        eprintln!(
            "layerbuild: warning: cannot adopt orphaned processes ({e}): a daemon an extension starts may outlive smoke"
        );
    }
    // The unpacking is bounded by --timeout too: a zip can be made slow to unpack.
    let unpack_by = std::time::Instant::now() + args.timeout();
    let mut layer = layer_dir::open(args.zip.as_deref(), args.dir.as_deref(), unpack_by)?;
    let arch = layer_arch(&mut layer, args.arch, host)?;
    let ctx = Ctx {
        layer: &layer.root,
        work: layer.work(),
        args,
        progress,
    };
    let mut report = Report {
        layer: layer.source.clone(),
        arch: arch.to_string(),
        host_arch: host.to_string(),
        mode: String::new(),
        passed: false,
        runs: Vec::new(),
        static_checks: Vec::new(),
        notes: layer.notes.clone(),
        cold_start: None,
    };
    if arch == host {
        report.mode = format!("{arch} layer on a {host} host: run natively");
        run_natively(&ctx, &layer, &mut report)?;
        report.passed = !report.runs.is_empty() && report.runs.iter().all(|r| r.passed);
    } else {
        run_foreign(&ctx, &layer, arch, host, &mut report)?;
        report.passed = report.runs.iter().all(|r| r.passed) && report.static_checks.iter().all(|c| c.ok);
    }
    Ok(report)
}

/// `--arch`, else the manifest's, else that of the ELF files in `extensions/`, else the host's.
fn layer_arch(layer: &mut Layer, flag: Option<Arch>, host: Arch) -> Result<Arch, SmokeError> {
    match (&layer.manifest, flag) {
        (_, Some(a)) => Ok(a),
        (Some(m), None) => Arch::parse(&m.layer.arch).ok_or_else(|| SmokeError::ManifestArch {
            layer: layer.source.clone(),
            arch: m.layer.arch.clone(),
        }),
        (None, None) => {
            let found = layer_dir::extension_arches(&layer.root);
            let mut arches = found.keys().copied();
            match (arches.next(), arches.next()) {
                (None, _) => Ok(host),
                (Some(a), None) => {
                    layer.notes.push(format!(
                        "architecture {a}, from the ELF files in extensions/ (--arch overrides it)"
                    ));
                    Ok(a)
                }
                (Some(_), Some(_)) => Err(SmokeError::Setup(usage(format!(
                    "{}: extensions/ holds ELF files for {}: pass --arch to say which layer this is",
                    layer.source,
                    found
                        .iter()
                        .map(|(a, names)| format!("{a} ({})", names.join(", ")))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )))),
            }
        }
    }
}

/// A runtime to run, with its interpreter or where smoke looked for one.
type Wanted = (Runtime, Result<python::Interp, String>);

/// The runtimes to run: `--runtime`s, else the manifest's, else python3.9. A runtime the
/// manifest does not list is a usage error: the layer was not built for it.
fn wanted_runtimes(ctx: &Ctx, layer: &Layer) -> Result<Vec<Runtime>, SmokeError> {
    if ctx.args.runtime.is_empty() {
        return Ok(match &layer.manifest {
            Some(m) => m.layer.runtimes.iter().filter_map(|r| Runtime::parse(r)).collect(),
            None => vec![Runtime { major: 3, minor: 9 }],
        });
    }
    for &rt in &ctx.args.runtime {
        layer_has(layer, rt, &format!("--runtime {rt}"))?;
    }
    Ok(ctx.args.runtime.clone())
}

/// Fails with a usage error when the layer's manifest does not list `rt`.
fn layer_has(layer: &Layer, rt: Runtime, flag: &str) -> Result<(), SmokeError> {
    let Some(m) = &layer.manifest else {
        return Ok(());
    };
    if m.layer.runtimes.iter().any(|r| Runtime::parse(r) == Some(rt)) {
        return Ok(());
    }
    let from = manifest_source(layer);
    Err(SmokeError::Setup(usage(format!(
        "{flag}: not one of the layer's runtimes ({}, from {from}): pick one of them, or build the layer for {rt}",
        m.layer.runtimes.join(", ")
    ))))
}

/// Where the layer's manifest was read from, for messages.
fn manifest_source(layer: &Layer) -> String {
    crate::manifest::manifest_path(Path::new(&layer.source))
        .display()
        .to_string()
}

/// Each runtime with its interpreter on this host: `--python`, else [`wanted_runtimes`].
fn runtimes(ctx: &Ctx, layer: &Layer) -> Result<Vec<Wanted>, SmokeError> {
    if let Some(p) = &ctx.args.python {
        let interp = probe_python(p, ctx.work).map_err(|why| SmokeError::Python { path: p.clone(), why })?;
        layer_has(
            layer,
            interp.runtime,
            &format!("--python {} ({})", p.display(), interp.runtime),
        )?;
        return Ok(vec![(interp.runtime, Ok(interp))]);
    }
    let wanted = wanted_runtimes(ctx, layer)?;
    Ok(wanted.into_iter().map(|rt| (rt, find_python(rt, ctx.work))).collect())
}

fn run_natively(ctx: &Ctx, layer: &Layer, report: &mut Report) -> Result<(), SmokeError> {
    let rounds = ctx.args.rounds();
    for (rt, interp) in runtimes(ctx, layer)? {
        let interp = match interp {
            Ok(i) => i,
            Err(where_looked) => {
                report.runs.push(RunReport {
                    runtime: format!("python{}", rt.dotted()),
                    failure: Some(format!("no interpreter for python{}: {where_looked}", rt.dotted())),
                    ..RunReport::default()
                });
                continue;
            }
        };
        let scope = interp.runtime.to_string();
        let (prep, run) = staged_run(ctx, &scope, &interp, &rounds);
        let time_cold_starts = ctx.args.cold_start_runs > 0 && run.worked() && report.cold_start.is_none();
        report.runs.push(run);
        if time_cold_starts {
            report.cold_start = Some(staged_cold_starts(ctx, &scope, &interp, &prep));
        }
    }
    Ok(())
}

/// The runtime's packages, then its run, each a progress stage under `scope`.
pub(crate) fn staged_run(
    ctx: &Ctx,
    scope: &str,
    interp: &python::Interp,
    rounds: &[Round],
) -> (python::Prepared, RunReport) {
    let stage = ctx.progress.stage(scope, "runtime packages");
    stage.set_message("pip install into the cache, once per runtime");
    let prep = prepare_runtime(interp, ctx.args);
    stage.done(format!("client {}", prep.client));
    let stage = ctx.progress.stage(scope, "run");
    stage.set_message(format!(
        "cold start and {} more invocation(s)",
        rounds.len().saturating_sub(1)
    ));
    let run = runs::run_native(ctx, interp, &prep, rounds, ctx.args.freeze_hold());
    stage.done(verdict(&run));
    (prep, run)
}

/// `--cold-start-runs` timed cold starts, as a progress stage.
pub(crate) fn staged_cold_starts(
    ctx: &Ctx,
    scope: &str,
    interp: &python::Interp,
    prep: &python::Prepared,
) -> report::ColdStart {
    let stage = ctx.progress.stage(scope, "cold starts");
    let timed = runs::cold_start(ctx, interp, prep, ctx.args.cold_start_runs);
    stage.done(format!("{} timed", ctx.args.cold_start_runs));
    timed
}

/// A run's outcome in a progress line; the report has the details.
fn verdict(run: &RunReport) -> &'static str {
    if run.passed {
        "passed"
    } else {
        "failed (the report below says why)"
    }
}

/// A layer of another architecture: its ELF files read; each runtime a Debian root gives run
/// under qemu-user like a native one; the rest checked statically; with no runtime run, at least
/// its extensions under qemu.
fn run_foreign(ctx: &Ctx, layer: &Layer, arch: Arch, host: Arch, report: &mut Report) -> Result<(), SmokeError> {
    let wanted = wanted_runtimes(ctx, layer)?;
    report.static_checks = checks::static_native_checks(ctx.layer, arch);
    let Some(qemu) = process::find_qemu(arch) else {
        report.mode = format!("{arch} layer on a {host} host: nothing can run (no qemu)");
        report.runs.push(RunReport {
            runtime: "none".into(),
            failure: Some(format!(
                "cannot run {arch} code on this {host} host: no qemu-{m}-static or qemu-{m} in PATH (install it: apt-get install -y qemu-user-static)",
                m = arch.wheel_machine()
            )),
            ..RunReport::default()
        });
        return Ok(());
    };
    let mut ran = Vec::new();
    let mut statically = Vec::new();
    for rt in wanted {
        match foreign::run_python(ctx, rt, arch, &qemu, report) {
            foreign::Outcome::Ran => ran.push(rt.to_string()),
            foreign::Outcome::Static(why) => {
                let mut check = native::glibc_check(ctx.layer, rt);
                check.name = format!("{} (static only: {why})", check.name);
                report.static_checks.push(check);
                statically.push(rt.to_string());
            }
        }
    }
    report.mode = foreign::mode(arch, host, &qemu, &ran, &statically);
    if ran.is_empty() {
        // The first probe answered at once, then one with the backend late.
        let rounds: Vec<Round> = ctx
            .args
            .rounds()
            .into_iter()
            .filter(|r| r.cold || !r.backend_delay.is_zero())
            .take(2)
            .collect();
        let stage = ctx.progress.stage(arch, "extensions under qemu");
        let run = runs::run_emulated(ctx, &qemu, arch, &rounds, ctx.args.freeze_hold());
        stage.done(verdict(&run));
        report.runs.push(run);
    }
    Ok(())
}
