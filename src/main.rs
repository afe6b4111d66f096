//! The `layerbuild` binary: parse the flags, run, print any error as one chain, exit 0, 1 or 2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap exits 2 itself on a usage error.
    let cli = layerbuild::Cli::parse();
    match layerbuild::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Messages quote entry names, manifest fields and tool output: no escape sequence
            // in them reaches the terminal.
            eprintln!("layerbuild: {}", layerbuild::terminal_safe(&format!("{err:#}")));
            layerbuild::exit_code(&err)
        }
    }
}
