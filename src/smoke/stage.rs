//! One run's set-up: its clock, emulator, receiver, folder and environment, and the processes it
//! starts; what went wrong with them, what they did, and their orderly end (SHUTDOWN).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::clock::Clock;
use super::emulator::{Emulator, FunctionInfo, State};
use super::layer_dir::{RunDir, collector_config};
use super::process::{Proc, describe_status, tail};
use super::receiver::Receiver;
use super::report::ExtensionReport;
use super::{Ctx, FUNCTION_NAME, HANDLER, REGION};
use crate::support::proctree;

/// Lambda gives extensions up to 2 s after SHUTDOWN; the collector's drain gets a little more here.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);
const LOG_TAIL_LINES: usize = 25;

/// Where a run is, for the failure causes that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    Register,
    Init,
    Invoke,
    AfterInvoke,
}

impl Phase {
    fn when(self) -> &'static str {
        match self {
            Phase::Register => "before registering",
            Phase::Init => "during init",
            Phase::Invoke => "during the invocation",
            Phase::AfterInvoke => "after the invocation",
        }
    }
}

/// An extension file and what became of it: its process, or why it could not start.
pub(crate) struct ExtensionProc {
    pub(crate) file: PathBuf,
    pub(crate) proc: Option<Proc>,
    pub(crate) why: Option<String>,
}

impl ExtensionProc {
    pub(crate) fn name(&self) -> String {
        self.file.file_name().unwrap_or_default().to_string_lossy().into_owned()
    }
}

/// Everything one lifecycle needs, set up; processes are stopped on drop.
pub(crate) struct Stage {
    pub(crate) clock: Clock,
    pub(crate) emulator: Emulator,
    pub(crate) receiver: Receiver,
    pub(crate) env: BTreeMap<String, OsString>,
    pub(crate) dir: RunDir,
    pub(crate) target_body: String,
    pub(crate) otlp_http_port: u16,
    pub(crate) extensions: Vec<ExtensionProc>,
    pub(crate) runtime: Option<Proc>,
    /// The exec wrapper the runtime was started through, for messages.
    pub(crate) wrapper: PathBuf,
    /// Every step's time bound is multiplied by this: 1 natively, more under an emulator.
    pub(crate) slowdown: u32,
}

/// Two distinct free ports: both are held at once so the OS cannot hand out the same one twice.
fn two_free_ports() -> Option<(u16, u16)> {
    let a = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
    let b = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
    Some((a.local_addr().ok()?.port(), b.local_addr().ok()?.port()))
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The collector's OTLP ports: the layer's 4317/4318, unless `--free-ports` or something else
/// holds them (then the SDK is pointed at free ones rather than at a stranger's collector).
fn otlp_ports(free_ports: bool, notes: &mut Vec<String>) -> Result<(u16, u16, bool)> {
    if !free_ports && port_free(4317) && port_free(4318) {
        return Ok((4317, 4318, true));
    }
    let (g, h) = two_free_ports().context("no free ports on 127.0.0.1")?;
    notes.push(if free_ports {
        format!("--free-ports: the collector listens on {g}/{h} and the SDK is pointed there")
    } else {
        format!("ports 4317/4318 are taken on this host: the collector listens on {g}/{h} and the SDK is pointed there")
    });
    Ok((g, h, false))
}

pub(crate) fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{:x}{:x}", t, std::process::id())
}

impl Stage {
    pub(crate) fn new(ctx: &Ctx, dir_name: &str, notes: &mut Vec<String>) -> Result<Stage> {
        let clock = Clock::start();
        let target_body = format!("smoke-target-{}", nonce());
        let receiver = Receiver::start(target_body.clone(), clock)?;
        let function = FunctionInfo {
            name: FUNCTION_NAME.into(),
            version: "$LATEST".into(),
            handler: HANDLER.into(),
            arn: format!("arn:aws:lambda:{REGION}:000000000000:function:{FUNCTION_NAME}"),
            memory_mb: 128,
        };
        let emulator = Emulator::start(function, ctx.args.telemetry_mode(), clock)?;
        let (grpc, http, default_ports) = otlp_ports(ctx.args.free_ports, notes)?;
        let config = collector_config(grpc, http, &receiver.endpoint());
        let dir = RunDir::create(ctx.work, dir_name, ctx.args.handler.as_deref(), &config)?;
        let mut env = dir.lambda_env(ctx.layer, &emulator.api());
        if !default_ports {
            env.insert(
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                format!("http://localhost:{http}").into(),
            );
        }
        Ok(Stage {
            clock,
            emulator,
            receiver,
            env,
            dir,
            target_body,
            otlp_http_port: http,
            extensions: Vec::new(),
            runtime: None,
            wrapper: ctx.layer.join("otel-instrument"),
            slowdown: 1,
        })
    }

    /// What stopped the run in `phase`, if anything: an error posted to the APIs, or a process
    /// that exited when it should not have.
    pub(crate) fn trouble(&mut self, st: &State, phase: Phase) -> Option<String> {
        if let Some(e) = st.init_error.as_ref().filter(|_| phase >= Phase::Init) {
            return Some(format!(
                "the runtime failed to initialise: {}",
                posted_error_text(e.error_type.as_deref(), &e.body)
            ));
        }
        if let Some(e) = st.extension_errors.first() {
            return Some(format!(
                "{} reported an error: {}{}",
                e.who,
                e.error_type.as_deref().map(|t| format!("{t}: ")).unwrap_or_default(),
                e.body
            ));
        }
        for ext in &mut self.extensions {
            if let Some(status) = ext.proc.as_mut().and_then(Proc::poll) {
                return Some(format!(
                    "extension {} exited ({}) {}",
                    ext.name(),
                    describe_status(status),
                    phase.when()
                ));
            }
        }
        let status = self.runtime.as_mut().and_then(Proc::poll)?;
        let status = describe_status(status);
        Some(match phase {
            Phase::Register | Phase::Init => format!(
                "the runtime (exec wrapper {}) exited during init ({status})",
                self.wrapper.display()
            ),
            Phase::Invoke => format!("the runtime exited during the invocation ({status}) without answering"),
            Phase::AfterInvoke => format!("the runtime exited after the invocation ({status})"),
        })
    }

    /// What Lambda would freeze: the runtime and every running extension, each with all it
    /// started, and the processes they left running that smoke adopted (children of smoke's
    /// that are neither).
    pub(crate) fn sandbox_groups(&self) -> Vec<(String, Vec<i32>)> {
        let tracked: Vec<&Proc> = self
            .runtime
            .iter()
            .chain(self.extensions.iter().filter_map(|e| e.proc.as_ref()))
            .collect();
        let pids: Vec<i32> = tracked.iter().map(|p| p.pid()).collect();
        let mut groups: Vec<(String, Vec<i32>)> = tracked.iter().map(|p| (p.label.clone(), vec![p.pid()])).collect();
        groups.push((
            "left running (adopted by smoke)".to_string(),
            proctree::children_except(&pids),
        ));
        groups
    }

    pub(crate) fn extension_reports(&mut self, st: &State) -> Vec<ExtensionReport> {
        self.extensions
            .iter_mut()
            .enumerate()
            .map(|(i, ext)| {
                let name = ext.name();
                // Registered under its file name, as Lambda expects; else by start order.
                let reg = st
                    .extensions
                    .iter()
                    .find(|e| e.name == name)
                    .or_else(|| st.extensions.get(i));
                ExtensionReport {
                    file: format!("extensions/{name}"),
                    name: reg.map(|e| e.name.clone()),
                    registered_ms: reg.map(|e| e.registered_ms),
                    events: reg.map(|e| e.events.clone()).unwrap_or_default(),
                    delivered: reg.map(|e| e.delivered.clone()).unwrap_or_default(),
                    exit: match &mut ext.proc {
                        Some(p) => {
                            p.poll();
                            p.describe_exit()
                        }
                        None => ext.why.clone(),
                    },
                }
            })
            .collect()
    }

    /// Stops the runtime (Lambda ends it with the sandbox), sends SHUTDOWN to the extensions,
    /// waits for them to exit, and kills what is left, all before the run's `deadline`; then
    /// ends every process the run's programs left behind, even outside their process groups.
    pub(crate) fn shutdown(&mut self, notes: &mut Vec<String>, deadline: Instant) {
        // Lambda's SHUTDOWN bound, scaled when the extensions run under emulation.
        let limit = self.limit(SHUTDOWN_LIMIT);
        let end = deadline.min(Instant::now() + limit);
        let granted = end.saturating_duration_since(Instant::now());
        if let Some(rt) = self.runtime.as_mut() {
            rt.stop(
                end.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(500)),
            );
        }
        self.emulator
            .shutdown("spindown", end.saturating_duration_since(Instant::now()));
        for ext in &mut self.extensions {
            let name = ext.name();
            if let Some(p) = ext.proc.as_mut()
                && !p.wait_exit(end)
            {
                p.kill();
                notes.push(format!(
                    "extension {name} did not exit within {} ms of SHUTDOWN (the run's bound or Lambda's): killed",
                    granted.as_millis()
                ));
            }
        }
        let tracked: Vec<i32> = self
            .extensions
            .iter()
            .filter_map(|e| e.proc.as_ref())
            .chain(self.runtime.as_ref())
            .map(Proc::pid)
            .collect();
        let ended = proctree::end_adopted(&tracked);
        if ended > 0 {
            notes.push(format!(
                "{ended} process(es) the layer's programs left running (outside their process group) were killed"
            ));
        }
        self.emulator.close();
    }

    /// The tail of every process's output, for a failure report.
    pub(crate) fn collect_logs(&self, into: &mut BTreeMap<String, Vec<String>>) {
        let extensions = self.extensions.iter().filter_map(|e| e.proc.as_ref());
        for p in extensions.chain(self.runtime.as_ref()) {
            into.insert(p.label.clone(), tail(&p.log, LOG_TAIL_LINES));
        }
    }

    /// `<run>/bootstrap.py`, started by the wrapper as Lambda's bootstrap is.
    pub(crate) fn bootstrap(&self) -> &Path {
        &self.dir.bootstrap
    }
}

/// An error the runtime or handler posted, as `Type: message`.
pub(crate) fn posted_error_text(error_type: Option<&str>, body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) if v.get("errorMessage").is_some() => format!(
            "{}: {}",
            v["errorType"].as_str().or(error_type).unwrap_or("error"),
            v["errorMessage"].as_str().unwrap_or("")
        ),
        _ => format!("{}: {}", error_type.unwrap_or("error"), body.trim()),
    }
}
