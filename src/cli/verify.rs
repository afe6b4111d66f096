//! `layerbuild verify`: re-check finished zips and print one line per zip.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory};
use serde_json::json;

use crate::support::text::{show, terminal_safe};
use crate::verify;

#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
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

pub(super) fn run(args: &VerifyArgs) -> Result<ExitCode> {
    if args.manifest.is_some() && args.zips.len() > 1 {
        // A usage error like clap's own: exit 2.
        super::Cli::command()
            .error(
                ErrorKind::ArgumentConflict,
                "--manifest names one manifest: verify one zip at a time with it",
            )
            .exit();
    }
    let results = verify::run(&args.zips, args.manifest.as_deref())?;
    for (_, v) in &results {
        for w in &v.warnings {
            eprintln!("layerbuild: warning: {}", terminal_safe(w));
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
                show(&z.display().to_string()),
                v.entries,
                v.size,
                v.sha256
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
