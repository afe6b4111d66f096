//! `layerbuild python find|fetch`: which interpreter the one finder picks for a runtime, and a
//! Debian root's CPython prepared for a runtime no installed Python provides (python3.14).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::debian_root::{self, Prepare};
use crate::python::interpreter::{self, Sources};
use crate::support::text::{show, terminal_safe};
use crate::support::usage::usage;

#[derive(Debug, Subcommand)]
pub enum PythonCommand {
    /// Print the interpreter the finder picks for each runtime (what bytecode, lock and smoke use).
    Find {
        /// Lambda runtimes, e.g. python3.12 python3.14.
        #[arg(required = true, value_name = "RUNTIME")]
        runtimes: Vec<Runtime>,
    },
    /// Prepare, once, a Debian root of this host's architecture whose CPython is the runtime's,
    /// for runtimes no installed Python provides (python3.9 bullseye, 3.11 bookworm, 3.13 trixie,
    /// 3.14 forky); kept in the cache, found by the finder last. Needs root and debootstrap.
    Fetch {
        /// Lambda runtimes, e.g. python3.14.
        #[arg(required = true, value_name = "RUNTIME")]
        runtimes: Vec<Runtime>,
    },
}

pub fn run(command: &PythonCommand) -> Result<ExitCode> {
    let cache = crate::support::cache::dir()?;
    crate::support::cache::ensure_private(&cache)?;
    match command {
        PythonCommand::Find { runtimes } => {
            for &rt in runtimes {
                let found = interpreter::find(rt, &Sources::new(None, None, Some(cache.clone())))?;
                let from = found
                    .debian_root
                    .as_ref()
                    .map(|d| format!(" (Debian root {})", show(&d.display().to_string())))
                    .unwrap_or_default();
                println!(
                    "{rt} {} {}{from}",
                    found.version,
                    show(&found.path.display().to_string())
                );
            }
        }
        PythonCommand::Fetch { runtimes } => {
            let host = Arch::parse(std::env::consts::ARCH).with_context(|| {
                format!(
                    "this host's architecture ({}) is not one Lambda has",
                    std::env::consts::ARCH
                )
            })?;
            for &rt in runtimes {
                fetch(rt, host, &cache)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn fetch(rt: Runtime, host: Arch, cache: &std::path::Path) -> Result<()> {
    let Some(suite) = debian_root::suite_for(rt) else {
        let have: Vec<String> = debian_root::SUITES
            .iter()
            .map(|s| format!("python3.{} ({})", s.minor, s.name))
            .collect();
        return Err(usage(format!(
            "{rt}: no Debian suite has it (they have {}): install it with pyenv or uv, or pass --python {rt}=PATH to the commands that need it",
            have.join(", ")
        )));
    };
    if !debian_root::cache_dir(cache, suite, host).exists() {
        eprintln!(
            "layerbuild: preparing a Debian {} {host} root for {rt} (debootstrap, about a minute; kept in {})",
            suite.name,
            show(&cache.join("roots").display().to_string())
        );
    }
    let root = debian_root::prepare(rt, &Prepare::here(cache, host, None))
        .with_context(|| format!("cannot prepare a {rt} interpreter"))?;
    let launcher = root.launcher.context("the prepared root has no launcher (a bug)")?;
    let how = match root.prepared_in {
        Some(t) => format!("prepared in {:.0} s", t.as_secs_f64()),
        None => "already in the cache".to_string(),
    };
    println!(
        "{rt} {} {} (Debian {} root, {how})",
        terminal_safe(&root.version),
        show(&launcher.display().to_string()),
        suite.name
    );
    Ok(())
}
