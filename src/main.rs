//! The `layerbuild` binary: parse the flags, run, print any error as one line, exit 0, 1 or 2.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match layerbuild::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return layerbuild::argument_error(&e),
    };
    match layerbuild::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A failed program's output first, so that the last line is the error, whole. Both
            // quote text layerbuild did not write: no escape sequence in it reaches the terminal.
            for line in layerbuild::output_of(&err) {
                eprintln!("{}", layerbuild::terminal_safe(&line));
            }
            eprintln!("layerbuild: {}", layerbuild::terminal_safe(&format!("{err:#}")));
            layerbuild::exit_code(&err)
        }
    }
}
