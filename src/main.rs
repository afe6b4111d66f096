//! The `layerbuild` binary: parse the flags, run, print any error as one chain, exit 0, 1 or 2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap exits 2 itself on a usage error.
    let cli = layerbuild::Cli::parse();
    match layerbuild::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("layerbuild: {err:#}");
            layerbuild::exit_code(&err)
        }
    }
}
