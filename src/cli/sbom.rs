//! `layerbuild sbom`: print the CycloneDX SBOM of any layer zip, read from the zip alone.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::sbom;
use crate::support::text::show;
use crate::support::{fs, input};

#[derive(Debug, Args)]
pub(super) struct SbomArgs {
    /// The layer zip: one `layerbuild build` made, or anyone else's.
    #[arg(value_name = "ZIP")]
    zip: PathBuf,
    /// Write the SBOM to this file instead of printing it.
    #[arg(long, short, value_name = "PATH")]
    output: Option<PathBuf>,
}

pub(super) fn run(args: &SbomArgs) -> Result<ExitCode> {
    let shown = show(&args.zip.display().to_string()).to_string();
    let zip = input::open_regular(&args.zip)?;
    let len = zip
        .metadata()
        .with_context(|| format!("{shown}: cannot read it"))?
        .len();
    let json = sbom::for_zip(&args.zip, zip, len).with_context(|| format!("{shown}: cannot make its SBOM"))?;
    match &args.output {
        Some(path) => fs::write_atomic(path, &json)?,
        None => std::io::stdout().lock().write_all(&json)?,
    }
    Ok(ExitCode::SUCCESS)
}
