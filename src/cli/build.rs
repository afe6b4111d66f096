//! `layerbuild build` (the default command): build every zip, then print what was built.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::input::InputArgs;
use crate::build;
use crate::plan::Plan;
use crate::support::progress::Progress;
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

pub(super) fn run(args: &BuildArgs) -> Result<ExitCode> {
    let plan = Plan::new(&args.input.options(args.out.clone()))?;
    let progress = Progress::new(args.quiet);
    let built = build::run(&plan, &progress)?;
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
                println!("  note: {}", terminal_safe(n));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}
