//! Entry point: run the command, print any error as one chain, map it to an exit code.

mod arch;
mod archive;
mod build;
mod bytecode;
mod cache;
mod check;
mod cli;
mod collector;
mod collector_config;
mod deploy;
mod elf;
mod emulator;
mod gather;
mod layout;
mod lock;
mod lockfile;
mod manifest;
mod plan;
mod progress;
mod receiver;
mod runtime;
mod sitepackages;
mod smoke;
mod spec;
mod tags;
mod verify;
mod wheel;
mod wheelcache;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("layerbuild: {err:#}");
            ExitCode::FAILURE
        }
    }
}
