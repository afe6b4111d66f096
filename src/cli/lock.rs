//! `layerbuild lock`: resolve the requirements and write the lock, then say what was locked.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::input::{parse_python, require_python, require_spec};
use crate::model::runtime::Runtime;
use crate::python::tags::normalize;
use crate::python::upgrade::Upgrade;
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
    /// Resolve every package to the newest version requirements.in allows (without it, every pin
    /// of the existing lock that requirements.in still allows is kept).
    #[arg(long, short = 'U')]
    upgrade: bool,
    /// Resolve this package to the newest version allowed, keeping the other pins (repeatable).
    #[arg(long, short = 'P', value_name = "NAME", conflicts_with = "upgrade")]
    upgrade_package: Vec<String>,
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
            upgrade: if args.upgrade {
                Upgrade::All
            } else if args.upgrade_package.is_empty() {
                Upgrade::Nothing
            } else {
                Upgrade::Packages(args.upgrade_package.iter().map(|n| normalize(n)).collect())
            },
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
    match &locked.changes {
        Some(changes) if changes.is_empty() => println!("no pin changed"),
        Some(changes) => {
            for c in changes {
                println!("  {}", terminal_safe(c));
            }
        }
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}
