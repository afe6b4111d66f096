//! `layerbuild sbom`: print the CycloneDX SBOM of any layer zip, read from the zip alone.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::sbom;
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
    let bytes = input::read(&args.zip, input::ARCHIVE_CAP, "layer zip")?;
    let name = args
        .zip
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let json = sbom::for_zip(&bytes, &name).with_context(|| format!("{}: cannot make its SBOM", args.zip.display()))?;
    match &args.output {
        Some(path) => fs::write_atomic(path, &json)?,
        None => std::io::stdout().lock().write_all(&json)?,
    }
    Ok(ExitCode::SUCCESS)
}
