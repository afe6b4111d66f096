//! The command line: clap types, then one file per command that turns its flags into options,
//! runs it and prints its summary. `smoke` keeps its flags beside its code and is wired here.

mod build;
mod input;
mod lock;
mod plan;
mod verify;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use crate::support::usage::exit_code;

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
    build: build::BuildArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build one zip per architecture, with checksums and a manifest (the default command).
    Build(build::BuildArgs),
    /// Print the steps each zip's build would take, starting no process and writing nothing.
    Plan(plan::PlanArgs),
    /// Re-check finished zips against their manifests, checksums and the layer rules.
    Verify(verify::VerifyArgs),
    /// Resolve python.requirements with pip for every architecture and runtime; write python.lock.
    Lock(lock::LockArgs),
    /// Run a layer through a local Lambda cold start and one invocation, and check its traces.
    Smoke(crate::smoke::SmokeArgs),
}

/// Runs the command the flags name.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => build::run(&cli.build),
        Some(Command::Build(args)) => build::run(&args),
        Some(Command::Plan(args)) => plan::run(&args),
        Some(Command::Verify(args)) => verify::run(&args),
        Some(Command::Smoke(args)) => crate::smoke::command(&args),
        Some(Command::Lock(args)) => lock::run(&args),
    }
}
