//! The command line: flags as typed (clap), then handed to the plan and the commands.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::arch::Arch;
use crate::build;
use crate::gather;
use crate::manifest::format_mode;
use crate::plan::{Plan, PlanInput};
use crate::progress::Progress;
use crate::runtime::Runtime;
use crate::verify;

/// Build AWS Lambda layer zips for the ADOT Python layer: deterministic, checked, verified.
///
/// With no subcommand, `layerbuild` builds: `layerbuild --arch arm64` builds the arm64 layer
/// described by ./layer.yaml into ./dist.
#[derive(Debug, Parser)]
#[command(
    name = "layerbuild",
    version,
    args_conflicts_with_subcommands = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build one zip per architecture, with checksums and a manifest (the default command).
    Build(BuildArgs),
    /// Print every entry each zip would hold (path, mode, size, source), writing nothing.
    Plan(PlanArgs),
    /// Re-check finished zips against their manifests, checksums and the layer rules.
    Verify(VerifyArgs),
    /// Resolve python.requirements with pip for every architecture and runtime; write python.lock.
    Lock(LockArgs),
    /// Run a layer through a local Lambda cold start and one invocation, and check its traces.
    Smoke(crate::smoke::SmokeArgs),
    /// Publish verified zips as Lambda layer versions, reusing a version that already holds the zip.
    #[cfg(feature = "publish")]
    Publish(crate::deploy::PublishArgs),
    /// Put a layer version on a function, replacing its older version, keeping everything else.
    #[cfg(feature = "publish")]
    Attach(crate::deploy::AttachArgs),
    /// Compare two layers (zips or manifests): packages, collector, entries, sizes.
    Diff(crate::deploy::DiffArgs),
}

#[derive(Debug, Args)]
struct LockArgs {
    /// The layer spec; paths inside it are relative to its folder.
    #[arg(long, value_name = "PATH", default_value = "layer.yaml")]
    spec: PathBuf,
    /// Python whose pip resolves for one runtime, e.g. python3.9=/usr/bin/python3.9 (repeatable).
    #[arg(long, value_name = "RUNTIME=PATH", value_parser = parse_python)]
    python: Vec<(Runtime, PathBuf)>,
}

/// Where the layer is described and which parts of it to build.
#[derive(Debug, Args, Clone)]
struct InputArgs {
    /// Architecture to build: x86_64 (or amd64), arm64 (or aarch64), or all the spec lists.
    #[arg(long, value_name = "ARCH", default_value = "all", value_parser = parse_arch_choice)]
    arch: ArchChoice,
    /// The layer spec; paths inside it are relative to its folder.
    #[arg(long, value_name = "PATH", default_value = "layer.yaml")]
    spec: PathBuf,
    /// Use this collector binary for one architecture instead of the spec's source (repeatable).
    #[arg(long, value_name = "ARCH=PATH", value_parser = parse_collector)]
    collector: Vec<(Arch, PathBuf)>,
    /// Python interpreter for one runtime's bytecode, e.g. python3.9=/usr/bin/python3.9 (repeatable).
    #[arg(long, value_name = "RUNTIME=PATH", value_parser = parse_python)]
    python: Vec<(Runtime, PathBuf)>,
    /// Take wheels from this folder only, never from the package index.
    #[arg(long, value_name = "DIR")]
    wheelhouse: Option<PathBuf>,
    /// Never touch the network: every wheel must already be in the cache or the wheelhouse.
    #[arg(long)]
    offline: bool,
    /// Ship no bytecode, even for runtimes whose interpreter is found.
    #[arg(long)]
    no_bytecode: bool,
}

#[derive(Debug, Args, Clone)]
struct BuildArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Folder for the zips, checksums and manifests.
    #[arg(long, value_name = "DIR", default_value = "dist")]
    out: PathBuf,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
    /// No progress and no summary (errors still go to stderr).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Zips to check; each needs the manifest written beside it by `build`.
    #[arg(required = true, value_name = "ZIP")]
    zips: Vec<PathBuf>,
    /// Manifest to check against, instead of the one beside the zip.
    #[arg(long, value_name = "PATH")]
    manifest: Option<PathBuf>,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy)]
struct ArchChoice(Option<Arch>);

fn parse_arch_choice(s: &str) -> Result<ArchChoice, String> {
    if s == "all" {
        return Ok(ArchChoice(None));
    }
    Arch::parse(s)
        .map(|a| ArchChoice(Some(a)))
        .ok_or_else(|| format!("unknown architecture `{s}`: use x86_64, arm64 or all"))
}

fn parse_collector(s: &str) -> Result<(Arch, PathBuf), String> {
    let (arch, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not ARCH=PATH, e.g. arm64=bin/collector"))?;
    let arch = Arch::parse(arch).ok_or_else(|| format!("unknown architecture `{arch}`: use x86_64 or arm64"))?;
    if path.is_empty() {
        return Err(format!("`{s}` has no path after `=`"));
    }
    Ok((arch, PathBuf::from(path)))
}

fn parse_python(s: &str) -> Result<(Runtime, PathBuf), String> {
    let (rt, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not RUNTIME=PATH, e.g. python3.9=/usr/bin/python3.9"))?;
    let runtime =
        Runtime::parse(rt).ok_or_else(|| format!("unknown runtime `{rt}`: use Lambda's names, e.g. python3.9"))?;
    if path.is_empty() {
        return Err(format!("`{s}` has no path after `=`"));
    }
    Ok((runtime, PathBuf::from(path)))
}

impl InputArgs {
    fn plan_input(&self, out: PathBuf) -> PlanInput {
        PlanInput {
            spec: self.spec.clone(),
            arch: self.arch.0,
            out,
            collectors: self.collector.clone(),
            pythons: self.python.clone(),
            wheelhouse: self.wheelhouse.clone(),
            offline: self.offline,
            no_bytecode: self.no_bytecode,
        }
    }
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        None => run_build(&cli.build),
        Some(Command::Build(args)) => run_build(&args),
        Some(Command::Plan(args)) => run_plan(&args),
        Some(Command::Verify(args)) => run_verify(&args),
        Some(Command::Smoke(args)) => crate::smoke::command(&args),
        Some(Command::Lock(args)) => run_lock(&args),
        #[cfg(feature = "publish")]
        Some(Command::Publish(args)) => crate::deploy::publish(&args),
        #[cfg(feature = "publish")]
        Some(Command::Attach(args)) => crate::deploy::attach(&args),
        Some(Command::Diff(args)) => crate::deploy::diff(&args),
    }
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

fn run_build(args: &BuildArgs) -> Result<ExitCode> {
    let plan = Plan::new(&args.input.plan_input(args.out.clone()))?;
    let progress = Progress::new(args.quiet);
    let built = build::run(&plan, &progress)?;
    for b in &built {
        for w in &b.warnings {
            eprintln!("layerbuild: warning: {w}");
        }
    }
    if args.json {
        let zips: Vec<_> = built
            .iter()
            .map(|b| {
                let m = &b.manifest;
                json!({
                    "arch": m.layer.arch,
                    "zip": b.zip,
                    "manifest": b.manifest_path,
                    "size": m.zip.size,
                    "unzipped_size": m.zip.unzipped_size,
                    "entries": m.entries.len(),
                    "sha256": m.zip.sha256,
                    "code_sha256": m.zip.code_sha256,
                    "bytecode_runtimes": m.bytecode_runtimes,
                    "warnings": b.warnings,
                    "notes": b.notes,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "zips": zips }))?);
    } else if !args.quiet {
        for b in &built {
            let m = &b.manifest;
            let bytecode = if m.bytecode_runtimes.is_empty() {
                "none".to_string()
            } else {
                m.bytecode_runtimes.join(", ")
            };
            println!(
                "built {} ({}, {} zipped, {} unzipped, {} entries, bytecode: {bytecode})",
                b.zip.display(),
                m.layer.arch,
                human_bytes(m.zip.size),
                human_bytes(m.zip.unzipped_size),
                m.entries.len()
            );
            println!("  sha256 {}  CodeSha256 {}", m.zip.sha256, m.zip.code_sha256);
            for n in &b.notes {
                println!("  note: {n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_plan(args: &PlanArgs) -> Result<ExitCode> {
    let plan = Plan::new(&args.input.plan_input(PathBuf::from("dist")))?;
    let mut report = Vec::new();
    for &arch in &plan.arches {
        let layer = gather::gather(&plan, arch)?;
        let total = crate::check::check(&layer.entries, arch, plan.spec.spec.limits.unzipped_bytes)?;
        let mut entries: Vec<_> = layer
            .entries
            .iter()
            .map(|e| Ok((e.path.clone(), e.mode, e.size()?, e.origin.clone())))
            .collect::<Result<_>>()?;
        entries.sort();
        report.push((arch, plan.zip_name(arch), entries, total, layer.notes));
    }
    if args.json {
        let v: Vec<_> = report
            .iter()
            .map(|(arch, zip, entries, total, notes)| {
                json!({
                    "arch": arch.lambda_name(),
                    "zip": zip,
                    "unzipped_size": total,
                    "notes": notes,
                    "entries": entries.iter().map(|(p, m, s, o)| json!({"path": p, "mode": format_mode(*m), "size": s, "source": o})).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "zips": v }))?);
        return Ok(ExitCode::SUCCESS);
    }
    for (arch, zip, entries, total, notes) in &report {
        println!("{zip} ({arch}, {} files, {total} bytes unzipped)", entries.len());
        for n in notes {
            println!("  note: {n}");
        }
        for (path, mode, size, origin) in entries {
            println!("  {} {size:>10} {path}  <- {origin}", format_mode(*mode));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_lock(args: &LockArgs) -> Result<ExitCode> {
    let locked = crate::lock::run(&crate::lock::LockInput {
        spec: args.spec.clone(),
        pythons: args.python.clone(),
    })?;
    for w in &locked.warnings {
        eprintln!("layerbuild: warning: {w}");
    }
    println!(
        "locked {} packages ({} wheels) in {}",
        locked.packages,
        locked.wheels,
        locked.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_verify(args: &VerifyArgs) -> Result<ExitCode> {
    let results = verify::run(&args.zips, args.manifest.as_deref())?;
    for (_, v) in &results {
        for w in &v.warnings {
            eprintln!("layerbuild: warning: {w}");
        }
    }
    if args.json {
        let v: Vec<_> = results
            .iter()
            .map(|(z, v)| json!({"zip": z, "ok": true, "entries": v.entries, "size": v.size, "unzipped_size": v.unzipped, "sha256": v.sha256}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "verified": v }))?);
    } else if !args.quiet {
        for (z, v) in &results {
            println!(
                "ok {} ({} entries, {} bytes, sha256 {})",
                z.display(),
                v.entries,
                v.size,
                v.sha256
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
