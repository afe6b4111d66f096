//! `layerbuild build` (the default command): build every zip, then print what was built.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::input::InputArgs;
use crate::build;
use crate::plan::Plan;
use crate::support::progress::bytes as human_bytes;
use crate::support::progress::{Progress, ProgressMode};
use crate::support::text::terminal_safe;

#[derive(Debug, Args, Clone)]
pub(super) struct BuildArgs {
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

pub(super) fn run(args: &BuildArgs, mode: ProgressMode) -> Result<ExitCode> {
    let plan = Plan::new(&args.input.options(args.out.clone())?)?;
    let progress = Progress::new(mode, args.quiet);
    progress.line(format_args!(
        "build: {} {} for {} into {}",
        plan.spec.spec.name,
        plan.spec.spec.version,
        plan.layers
            .iter()
            .map(|l| l.arch.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        plan.out.display()
    ));
    let built = build_into_out(&plan, &progress)?;
    for b in &built {
        for w in &b.warnings {
            eprintln!("layerbuild: warning: {}", terminal_safe(w));
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
                    "sbom": crate::sbom::path(&b.zip),
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
        println!("{}", crate::support::text::json_pretty(&json!({ "zips": zips }))?);
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
                println!("  note: {}", terminal_safe(n));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds; on failure, removes the `--out` folders this build created (only if still empty),
/// so that a failed build leaves nothing behind.
fn build_into_out(plan: &Plan, progress: &Progress) -> Result<Vec<build::Built>> {
    let mut created = Vec::new();
    let mut dir = Some(plan.out.as_path());
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        created.push(d.to_path_buf());
        dir = d.parent();
    }
    let result = build::run(plan, progress);
    if result.is_err() {
        // Deepest first; remove_dir leaves any folder that something else wrote into.
        for d in &created {
            let _ = std::fs::remove_dir(d);
        }
    }
    result
}
