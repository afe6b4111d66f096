//! clap's argument errors as one line in the project's format, with the help hint as the fix:
//! `layerbuild: --arch sparc: unknown architecture, use x86_64, arm64 or all: try 'layerbuild --help'`.

use std::error::Error as _;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The one line for an argument error; `root` is the whole command tree and `args` the command
/// line as typed (without the program), which tell the command that failed.
pub(super) fn one_line(err: &clap::Error, root: &clap::Command, args: &[String]) -> String {
    let path = command_path(err, root, args);
    let what = what(err).unwrap_or_else(|| path.last().cloned().unwrap_or_default());
    let why = why(err, root, &path);
    format!("layerbuild: {what}: {why}: try '{} --help'", path.join(" "))
}

/// The command the error is about, `["layerbuild", "cache"]`: from clap's usage line when the
/// error has one, else the subcommand names as typed.
fn command_path(err: &clap::Error, root: &clap::Command, args: &[String]) -> Vec<String> {
    if let Some(ContextValue::StyledStr(usage)) = err.get(ContextKind::Usage) {
        let words: Vec<String> = usage
            .to_string()
            .trim_start()
            .strip_prefix("Usage:")
            .unwrap_or("")
            .split_whitespace()
            .take_while(|w| !w.starts_with(['[', '<', '-']))
            .map(str::to_string)
            .collect();
        if !words.is_empty() {
            return words;
        }
    }
    let mut path = vec![root.get_name().to_string()];
    let mut cmd = root;
    for arg in args.iter().take_while(|a| *a != "--") {
        if let Some(sub) = cmd.find_subcommand(arg) {
            path.push(sub.get_name().to_string());
            cmd = sub;
        }
    }
    path
}

fn text(v: Option<&ContextValue>) -> Option<String> {
    match v? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) if !v.is_empty() => Some(v.join(", ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        _ => None,
    }
}

/// `--arch <ARCH>` with the value typed: `--arch sparc`; a positional or a bare flag as named.
fn what(err: &clap::Error) -> Option<String> {
    if let Some(sub) = text(err.get(ContextKind::InvalidSubcommand)) {
        return Some(sub);
    }
    let arg = text(err.get(ContextKind::InvalidArg))?;
    let value = text(err.get(ContextKind::InvalidValue));
    Some(match value {
        Some(v) if arg.starts_with('-') => {
            let flag = arg.split([' ', '=']).next().unwrap_or(&arg);
            format!("{flag} {v}")
        }
        _ => arg,
    })
}

/// `a, b or c`.
fn either(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn why(err: &clap::Error, root: &clap::Command, path: &[String]) -> String {
    let suggested = |kind| {
        text(err.get(kind))
            .map(|s| format!(", did you mean {s}?"))
            .unwrap_or_default()
    };
    match err.kind() {
        ErrorKind::UnknownArgument => format!("unexpected argument{}", suggested(ContextKind::SuggestedArg)),
        ErrorKind::InvalidSubcommand => {
            let hint = suggested(ContextKind::SuggestedSubcommand);
            if !hint.is_empty() {
                return format!("unknown command{hint}");
            }
            let mut cmd = root;
            for name in path.iter().skip(1) {
                cmd = cmd.find_subcommand(name).unwrap_or(cmd);
            }
            let names: Vec<String> = cmd
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .filter(|n| n != "help")
                .collect();
            format!("unknown command, use {}", either(&names))
        }
        ErrorKind::InvalidValue => match err.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) => format!("invalid value, use {}", either(valid)),
            _ => "invalid value".to_string(),
        },
        // Our own value parsers explain themselves: "unknown architecture, use x86_64 or arm64".
        ErrorKind::ValueValidation => err
            .source()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "invalid value".to_string()),
        ErrorKind::MissingRequiredArgument => "required, missing".to_string(),
        ErrorKind::MissingSubcommand => "a command is required".to_string(),
        ErrorKind::ArgumentConflict => match text(err.get(ContextKind::PriorArg)) {
            Some(prior) => format!("cannot be used with {prior}"),
            None => "cannot be used with one of the other arguments".to_string(),
        },
        ErrorKind::NoEquals => "needs `=` before its value".to_string(),
        ErrorKind::TooManyValues | ErrorKind::WrongNumberOfValues | ErrorKind::TooFewValues => {
            "wrong number of values".to_string()
        }
        _ => {
            // Anything else: clap's own first line, without its `error:` label.
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            first.trim_start_matches("error: ").to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn cmd() -> Command {
        Command::new("layerbuild")
            .arg(Arg::new("offline").long("offline").action(ArgAction::SetTrue))
            .arg(
                Arg::new("arch")
                    .long("arch")
                    .value_name("ARCH")
                    .value_parser(|s: &str| -> Result<String, String> {
                        if s == "arm64" {
                            Ok(s.to_string())
                        } else {
                            Err("unknown architecture, use arm64".to_string())
                        }
                    }),
            )
            .arg(
                Arg::new("progress")
                    .long("progress")
                    .value_parser(["auto", "plain", "never"]),
            )
            .subcommand(
                Command::new("cache")
                    .subcommand(Command::new("dir"))
                    .subcommand(Command::new("clean")),
            )
            .subcommand(Command::new("verify").arg(Arg::new("zip").value_name("ZIP").required(true)))
            .subcommand(
                Command::new("lock").arg(
                    Arg::new("python")
                        .long("python")
                        .value_parser(|_: &str| -> Result<String, String> { Err("unknown runtime".into()) }),
                ),
            )
    }

    fn line(args: &[&str]) -> String {
        let root = cmd();
        let err = root
            .clone()
            .try_get_matches_from(std::iter::once("layerbuild").chain(args.iter().copied()))
            .unwrap_err();
        let typed: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        one_line(&err, &root, &typed)
    }

    #[test]
    fn each_kind_reads_as_what_why_and_the_help_hint() {
        assert_eq!(
            line(&["--frob"]),
            "layerbuild: --frob: unexpected argument: try 'layerbuild --help'"
        );
        assert_eq!(
            line(&["--ofline"]),
            "layerbuild: --ofline: unexpected argument, did you mean --offline?: try 'layerbuild --help'"
        );
        assert_eq!(
            line(&["--arch", "sparc"]),
            "layerbuild: --arch sparc: unknown architecture, use arm64: try 'layerbuild --help'"
        );
        assert_eq!(
            line(&["--progress", "loud"]),
            "layerbuild: --progress loud: invalid value, use auto, plain or never: try 'layerbuild --help'"
        );
        assert_eq!(
            line(&["verify"]),
            "layerbuild: <ZIP>: required, missing: try 'layerbuild verify --help'"
        );
        assert_eq!(
            line(&["lock", "--python", "python2.7=/x"]),
            "layerbuild: --python python2.7=/x: unknown runtime: try 'layerbuild lock --help'"
        );
        assert_eq!(
            line(&["cache", "empty"]),
            "layerbuild: empty: unknown command, use dir or clean: try 'layerbuild cache --help'"
        );
    }

    #[test]
    fn either_joins_like_a_sentence() {
        assert_eq!(either(&["a".into()]), "a");
        assert_eq!(either(&["a".into(), "b".into(), "c".into()]), "a, b or c");
    }
}
