//! The command line: clap types, then one file per command that turns its flags into options,
//! runs it and prints its summary. `smoke` keeps its flags beside its code and is wired here.

mod build;
mod cache;
mod input;
mod lock;
mod parse_error;
mod plan;
mod python;
mod sbom;
mod verify;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::support::progress::ProgressMode;
pub use crate::support::tool::output_of;
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
    /// Progress on stderr: spinners on a terminal, plain lines in a log (auto), or as chosen.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build one zip per architecture, with checksums and a manifest (the default command).
    Build(build::BuildArgs),
    /// Print the steps each zip's build would take, starting no process and writing nothing.
    Plan(plan::PlanArgs),
    /// Re-check finished zips against their manifests, checksums and the layer rules.
    Verify(verify::VerifyArgs),
    /// Resolve python.requirements with pip for every architecture and runtime, and write the lock file named by the spec's `python.lock` key (e.g. layer-src/requirements.txt).
    Lock(lock::LockArgs),
    /// Find the interpreter for a runtime, or prepare one from a Debian root (python3.14).
    Python {
        #[command(subcommand)]
        command: python::PythonCommand,
    },
    /// Print the CycloneDX SBOM of any layer zip, read from the zip alone.
    Sbom(sbom::SbomArgs),
    /// Run a layer through a local Lambda cold start and one invocation, and check its traces.
    ///
    /// The layer's code (its extensions, exec wrapper and Python packages) runs natively on this
    /// machine as the user running smoke, with no sandbox: it can read and write whatever that
    /// user can. Smoke only layers you would run yourself, or run smoke in a throwaway VM or
    /// container. Every process the layer starts is ended when the run ends, and on Ctrl-C or
    /// SIGTERM.
    #[command(
        override_usage = "layerbuild smoke [OPTIONS] <ZIP|--dir DIR>",
        group(clap::ArgGroup::new("layer").required(true).args(["zip", "dir"]))
    )]
    Smoke(crate::smoke::SmokeArgs),
    /// Show or empty the cache of wheels, bytecode, compressed entries and collector builds.
    Cache {
        #[command(subcommand)]
        command: cache::CacheCommand,
    },
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
    // Commands that fill the cache hold it, so that `cache clean` waits for them. The others
    // (plan, verify, cache itself, and publish, attach and diff) never write to it.
    let _hold = match &cli.command {
        None | Some(Command::Build(_) | Command::Lock(_) | Command::Smoke(_) | Command::Python { .. }) => {
            let root = crate::support::cache::dir()?;
            Some(crate::support::cache::hold(&root)?)
        }
        Some(_) => None,
    };
    let progress = cli.progress;
    match cli.command {
        None => build::run(&cli.build, progress),
        Some(Command::Build(args)) => build::run(&args, progress),
        Some(Command::Plan(args)) => plan::run(&args),
        Some(Command::Verify(args)) => verify::run(&args),
        Some(Command::Smoke(args)) => crate::smoke::command(&args, progress),
        Some(Command::Lock(args)) => lock::run(&args, progress),
        Some(Command::Python { command }) => python::run(&command),
        Some(Command::Sbom(args)) => sbom::run(&args),
        Some(Command::Cache { command }) => cache::run(&command),
        #[cfg(feature = "publish")]
        Some(Command::Publish(args)) => crate::deploy::publish(&args),
        #[cfg(feature = "publish")]
        Some(Command::Attach(args)) => crate::deploy::attach(&args),
        Some(Command::Diff(args)) => crate::deploy::diff(&args),
    }
}

/// Help and version as clap prints them; an argument error as one line, exit 2.
pub fn argument_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let args: Vec<String> = std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let root = <Cli as clap::CommandFactory>::command();
            eprintln!("{}", parse_error::one_line(e, &root, &args));
            ExitCode::from(2)
        }
    }
}
