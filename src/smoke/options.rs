//! The flags of `layerbuild smoke`, and what they make of a run: which invocations, with which
//! backend delay, held frozen how long.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::emulator::TelemetryMode;
use crate::model::arch::Arch;
use crate::model::runtime::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientChoice {
    /// awslambdaric when pip can install it, else smoke's own minimal client.
    Auto,
    /// awslambdaric (2.2.1; 3.1.1 for python3.13), Lambda's runtime interface client; fail if it cannot be installed.
    Awslambdaric,
    /// smoke's own minimal Runtime API client (no network needed).
    Builtin,
}

/// Whether a layer of another architecture has its Python run under qemu-user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForeignPython {
    /// For each runtime a Debian root can give (python3.9, 3.11, 3.13); the others, or all when
    /// no root can be prepared here, are checked statically and the report says why.
    Auto,
    /// As auto, but a root that cannot be prepared (no debootstrap, no mirror, not root) fails
    /// that runtime's run.
    Require,
    /// Never: the extensions run under qemu with smoke playing the runtime; Python is checked statically.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TelemetryChoice {
    /// As Lambda: subscriptions are checked, platform.start, platform.runtimeDone and
    /// platform.report are posted to the extension's listener.
    Lambda,
    /// Accepting but silent: any subscription gets 200 `{}` and nothing is ever delivered.
    Silent,
    /// As AWS's Runtime Interface Emulator: 202 `Telemetry.NotSupported` to any subscription.
    Unsupported,
}

/// Run a layer through a local Lambda cold start and warm invocations, freezing the sandbox after
/// each as Lambda does, and check its traces.
#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// The layer zip (unpacked with its unix modes); its manifest beside it names the arch and runtimes.
    #[arg(value_name = "ZIP")]
    pub(crate) zip: Option<PathBuf>,
    /// An unpacked layer folder instead of a zip (copied, so it is left untouched).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Runtime to run, e.g. python3.9 (repeatable); default: the manifest's runtimes, else python3.9.
    #[arg(long, value_name = "RUNTIME", value_parser = parse_runtime)]
    pub(crate) runtime: Vec<Runtime>,
    /// Interpreter to run the function with; its version picks the runtime.
    #[arg(long, value_name = "PATH")]
    pub(crate) python: Option<PathBuf>,
    /// The layer's architecture when there is no manifest; default: the host's.
    #[arg(long, value_name = "ARCH", value_parser = parse_arch)]
    pub(crate) arch: Option<Arch>,
    /// Runtime interface client.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) client: ClientChoice,
    /// For a layer of another architecture (arm64 on an x86_64 host): run its Python under
    /// qemu-user with the CPython of a Debian root, prepared once with debootstrap and cached.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) foreign_python: ForeignPython,
    /// Install nothing with pip; use only what is already cached.
    #[arg(long)]
    pub(crate) offline: bool,
    /// A Python file to use as the function's handler module (function `handler`), instead of the sample.
    #[arg(long, value_name = "FILE")]
    pub(crate) handler: Option<PathBuf>,
    /// Overall bound in seconds for each runtime's run; every step has its own bound within it.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) timeout: u64,
    /// How the emulated Telemetry API behaves.
    #[arg(long, value_enum, default_value = "lambda")]
    pub(crate) telemetry: TelemetryChoice,
    /// How long the sandbox stays frozen (runtime and extensions stopped) after each invocation.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub(crate) freeze_ms: u64,
    /// Warm invocations with the receiver answering at once, and as many again with it answering late.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) warm_invokes: usize,
    /// How late the receiver answers in the late rounds (a backend that far away); 0: no late rounds.
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub(crate) late_backend_ms: u64,
    /// After a run where the layer worked, time N more cold starts (wrapper start to handler
    /// result; one invocation each, no hold).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) cold_start_runs: usize,
    /// Let the collector listen on free ports instead of the layer's 4317/4318 and point the SDK there
    /// (for several smoke runs at once).
    #[arg(long)]
    pub(crate) free_ports: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_runtime(s: &str) -> Result<Runtime, String> {
    Runtime::parse(s).ok_or_else(|| format!("unknown runtime `{s}`: use Lambda's names, e.g. python3.9"))
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    Arch::parse(s).ok_or_else(|| format!("unknown architecture `{s}`: use x86_64 or arm64"))
}

/// One invocation of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Round {
    /// The first invocation after init (a cold start), or a later one.
    pub(crate) cold: bool,
    /// How late the receiver answers during it.
    pub(crate) backend_delay: Duration,
}

impl SmokeArgs {
    pub(crate) fn telemetry_mode(&self) -> TelemetryMode {
        match self.telemetry {
            TelemetryChoice::Lambda => TelemetryMode::Lambda,
            TelemetryChoice::Silent => TelemetryMode::Silent,
            TelemetryChoice::Unsupported => TelemetryMode::Unsupported,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    pub(crate) fn freeze_hold(&self) -> Duration {
        Duration::from_millis(self.freeze_ms)
    }

    /// The cold invocation, then the warm ones with the receiver answering at once, then as many
    /// with it answering late.
    pub(crate) fn rounds(&self) -> Vec<Round> {
        let at_once = Round {
            cold: false,
            backend_delay: Duration::ZERO,
        };
        let late = Round {
            cold: false,
            backend_delay: Duration::from_millis(self.late_backend_ms),
        };
        let mut rounds = vec![Round { cold: true, ..at_once }];
        rounds.extend(std::iter::repeat_n(at_once, self.warm_invokes));
        if self.late_backend_ms > 0 {
            rounds.extend(std::iter::repeat_n(late, self.warm_invokes.max(1)));
        }
        rounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        smoke: SmokeArgs,
    }

    fn args(extra: &[&str]) -> SmokeArgs {
        Cli::parse_from([&["smoke", "layer.zip"], extra].concat()).smoke
    }

    #[test]
    fn rounds_cover_both_backends() {
        let delays = |a: &SmokeArgs| -> Vec<(bool, u128)> {
            a.rounds()
                .iter()
                .map(|r| (r.cold, r.backend_delay.as_millis()))
                .collect()
        };
        assert_eq!(delays(&args(&[])), [(true, 0), (false, 0), (false, 300)]);
        assert_eq!(
            delays(&args(&["--warm-invokes", "2", "--late-backend-ms", "150"])),
            [(true, 0), (false, 0), (false, 0), (false, 150), (false, 150)]
        );
        // No warm invocations still checks the late backend once; no late rounds when 0.
        assert_eq!(delays(&args(&["--warm-invokes", "0"])), [(true, 0), (false, 300)]);
        assert_eq!(delays(&args(&["--late-backend-ms", "0"])), [(true, 0), (false, 0)]);
        assert_eq!(args(&["--telemetry", "silent"]).telemetry_mode(), TelemetryMode::Silent);
        assert_eq!(
            args(&["--telemetry", "unsupported"]).telemetry_mode(),
            TelemetryMode::Unsupported
        );
    }
}
