//! `layerbuild lock`: resolve the requirements and write the lock, then say what was locked.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::input::{parse_python, require_python, require_spec};
use crate::model::runtime::Runtime;
use crate::support::progress::{Progress, ProgressMode};
use crate::support::text::terminal_safe;

#[derive(Debug, Args)]
pub(super) struct LockArgs {
    /// The layer spec; paths inside it are relative to its folder.
    #[arg(long, value_name = "PATH", default_value = "layer.yaml")]
    spec: PathBuf,
    /// Python whose pip resolves for one runtime, e.g. python3.9=/usr/bin/python3.9 (repeatable).
    #[arg(long, value_name = "RUNTIME=PATH", value_parser = parse_python)]
    python: Vec<(Runtime, PathBuf)>,
}

pub(super) fn run(args: &LockArgs, mode: ProgressMode) -> Result<ExitCode> {
    require_spec(&args.spec)?;
    for (rt, path) in &args.python {
        require_python(*rt, path)?;
    }
    let progress = Progress::new(mode, false);
    let locked = crate::python::lock::run(
        &crate::python::lock::LockInput {
            spec: args.spec.clone(),
            pythons: args.python.clone(),
        },
        &progress,
    )?;
    for w in &locked.warnings {
        eprintln!("layerbuild: warning: {}", terminal_safe(w));
    }
    println!(
        "locked {} packages ({} wheels) in {}",
        locked.packages,
        locked.wheels,
        locked.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
