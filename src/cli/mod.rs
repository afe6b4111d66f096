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
    /// Publish verified zips as Lambda layer versions, reusing a version that already holds the zip.
    #[cfg(feature = "publish")]
    Publish(crate::deploy::PublishArgs),
    /// Put a layer version on a function, replacing its older version, keeping everything else.
    #[cfg(feature = "publish")]
    Attach(crate::deploy::AttachArgs),
    /// Compare two layers (zips or manifests): packages, collector, entries, sizes.
    Diff(crate::deploy::DiffArgs),
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
        #[cfg(feature = "publish")]
        Some(Command::Publish(args)) => crate::deploy::publish(&args),
        #[cfg(feature = "publish")]
        Some(Command::Attach(args)) => crate::deploy::attach(&args),
        Some(Command::Diff(args)) => crate::deploy::diff(&args),
    }
}
