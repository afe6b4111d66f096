//! `layerbuild plan`: print what each zip would hold, writing nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::input::InputArgs;
use crate::gather;
use crate::manifest::format_mode;
use crate::plan::Plan;

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &PlanArgs) -> Result<ExitCode> {
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
