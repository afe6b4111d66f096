//! A run's lifecycle in Lambda's order: extensions register, the runtime starts through the exec
//! wrapper, init ends, each invocation runs and ends with the sandbox frozen, held and thawed.
//!
//! Every wait goes through `Stage::wait_until`, which wakes on each change the emulator records
//! (a child's exit included) and checks the run's trouble between changes.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use super::checks::invocation_spans;
use super::emulator::{Outcome, State};
use super::freeze::Frozen;
use super::options::Round;
use super::process::{spawn, spawn_streamed};
use super::python::Interp;
use super::receiver::{SPAN_KIND_CLIENT, Span};
use super::report::{FreezeReport, GroupReport, InvocationReport};
use super::stage::{ExtensionProc, Phase, Stage};

// Bounds of each step; each is also cut to what is left of --timeout.
const REGISTER_LIMIT: Duration = Duration::from_secs(15);
const INIT_LIMIT: Duration = Duration::from_secs(30);
pub(crate) const INVOKE_LIMIT: Duration = Duration::from_secs(30);
const AFTER_INVOKE_LIMIT: Duration = Duration::from_secs(10);
/// How long spans may take to arrive after the thaw, to tell late from never.
const SPANS_LIMIT: Duration = Duration::from_secs(10);

fn bound(deadline: Instant, limit: Duration) -> Instant {
    deadline.min(Instant::now() + limit)
}

impl Stage {
    /// A step's bound for this run: `base` times the run's slowdown (1 native, more emulated).
    pub(crate) fn limit(&self, base: Duration) -> Duration {
        base * self.slowdown
    }

    /// The one wait of a run: until `ready` answers on the emulator's state, the run's trouble in
    /// `phase` names a cause, or `deadline` (then `late` says what was missing).
    pub(crate) fn wait_until<T>(
        &mut self,
        deadline: Instant,
        phase: Phase,
        mut ready: impl FnMut(&State) -> Option<T>,
        late: impl FnOnce(&State) -> String,
    ) -> Result<T, String> {
        loop {
            let st = self.emulator.snapshot();
            if let Some(answer) = ready(&st) {
                return Ok(answer);
            }
            if let Some(cause) = self.trouble(&st, phase) {
                return Err(cause);
            }
            if Instant::now() >= deadline {
                return Err(late(&st));
            }
            self.emulator.wait_change(st.changes, deadline);
        }
    }

    /// Starts every extension (through `prefix`, such as qemu, when given) and waits until each
    /// has registered.
    pub(crate) fn start_extensions(
        &mut self,
        layer: &Path,
        prefix: Option<&Path>,
        deadline: Instant,
    ) -> Result<(), String> {
        for file in super::layer_dir::extension_files(layer) {
            let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let mut argv: Vec<OsString> = prefix.map(|p| vec![p.as_os_str().to_owned()]).unwrap_or_default();
            argv.push(file.clone().into_os_string());
            let waker = Some(self.emulator.waker());
            match spawn(
                &format!("extension-{name}"),
                &argv,
                layer,
                &self.env,
                &self.dir.logs,
                waker,
            ) {
                Ok(p) => self.extensions.push(ExtensionProc {
                    file,
                    proc: Some(p),
                    why: None,
                }),
                Err(why) => {
                    let why = match prefix {
                        Some(p) => format!("{why} (under {})", p.display()),
                        None => why,
                    };
                    self.extensions.push(ExtensionProc {
                        file,
                        proc: None,
                        why: Some(why.clone()),
                    });
                    return Err(format!("extension {name}: {why}"));
                }
            }
        }
        let want = self.extensions.len();
        let limit = self.limit(REGISTER_LIMIT);
        self.wait_until(
            bound(deadline, limit),
            Phase::Register,
            |st| (st.extensions.len() >= want).then_some(()),
            |st| {
                let names: Vec<String> = st.extensions.iter().map(|e| e.name.clone()).collect();
                format!(
                    "only {} of {want} extensions registered within {} s (registered: {}): an extension must POST /2020-01-01/extension/register first",
                    st.extensions.len(),
                    limit.as_secs(),
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                )
            },
        )
    }

    /// Starts the runtime as Lambda does with AWS_LAMBDA_EXEC_WRAPPER set: `<wrapper> <python> <bootstrap>`.
    pub(crate) fn start_runtime(&mut self, interp: &Interp) -> Result<(), String> {
        let argv: Vec<OsString> = vec![
            self.wrapper.clone().into_os_string(),
            interp.python.clone().into_os_string(),
            self.bootstrap().as_os_str().to_owned(),
        ];
        let waker = Some(self.emulator.waker());
        // What the runtime writes is the function's log, which Lambda streams to subscribers.
        let lines = Some(self.emulator.function_log());
        match spawn_streamed(
            "runtime",
            &argv,
            &self.dir.task,
            &self.env,
            &self.dir.logs,
            waker,
            lines,
        ) {
            Ok(p) => {
                self.runtime = Some(p);
                Ok(())
            }
            Err(why) => Err(format!("runtime: {why} (it is AWS_LAMBDA_EXEC_WRAPPER)")),
        }
    }

    /// Init ends when the runtime (if there is one) and every extension have called next; returns
    /// that moment (the runtime's first next, else now) in microseconds.
    pub(crate) fn await_init(&mut self, deadline: Instant) -> Result<u64, String> {
        let has_runtime = self.runtime.is_some();
        let clock = self.clock;
        let limit = self.limit(INIT_LIMIT);
        self.wait_until(
            bound(deadline, limit),
            Phase::Init,
            |st| {
                let runtime_ready = !has_runtime || st.runtime_next_calls > 0;
                let ready = runtime_ready && st.extensions.iter().all(|e| e.next_calls > 0);
                ready.then(|| st.runtime_first_next_us.unwrap_or_else(|| clock.us()))
            },
            |st| {
                let waiting: Vec<String> = st
                    .extensions
                    .iter()
                    .filter(|e| e.next_calls == 0)
                    .map(|e| e.name.clone())
                    .collect();
                format!(
                    "init did not finish within {} s: {}{}",
                    limit.as_secs(),
                    if has_runtime && st.runtime_next_calls == 0 {
                        "the runtime never called invocation/next; "
                    } else {
                        ""
                    },
                    if waiting.is_empty() {
                        String::new()
                    } else {
                        format!("extensions not ready: {}", waiting.join(", "))
                    }
                )
            },
        )
    }

    /// Waits for the runtime's response or error to invocation `id`.
    pub(crate) fn await_outcome(&mut self, id: &str, deadline: Instant) -> Result<(), String> {
        let limit = deadline.saturating_duration_since(Instant::now());
        self.wait_until(
            deadline,
            Phase::Invoke,
            |st| st.invocation(id).and_then(|i| i.outcome.as_ref()).map(|_| ()),
            |_| {
                format!(
                    "the runtime gave no response or error within {} s of the invocation",
                    limit.as_secs()
                )
            },
        )
    }

    /// Waits until invocation `id` is over for Lambda (the runtime and every extension back in
    /// next); returns that moment, when Lambda freezes the sandbox.
    fn await_done(&mut self, id: &str, deadline: Instant) -> Result<u64, String> {
        let limit = self.limit(AFTER_INVOKE_LIMIT);
        self.wait_until(
            bound(deadline, limit),
            Phase::AfterInvoke,
            |st| st.invocation(id).and_then(|i| i.done_us),
            |st| {
                let behind: Vec<String> = st
                    .extensions
                    .iter()
                    .filter(|e| !e.waiting)
                    .map(|e| e.name.clone())
                    .collect();
                format!(
                    "extensions did not call event/next again after INVOKE within {} s: {}",
                    limit.as_secs(),
                    if behind.is_empty() {
                        "(the runtime did not either)".into()
                    } else {
                        behind.join(", ")
                    }
                )
            },
        )
    }

    /// Ends invocation `id` as Lambda does: waits for everyone to be back in next, freezes the
    /// sandbox for `hold`, thaws it, then waits (bounded) for the invocation's spans so that late
    /// ones can be told from missing ones.
    pub(crate) fn finish_invocation(
        &mut self,
        id: &str,
        round: Round,
        hold: Duration,
        deadline: Instant,
    ) -> Result<InvocationReport, String> {
        let done_us = self.await_done(id, deadline)?;
        let frozen = Frozen::stop(self.sandbox_groups());
        let groups = frozen.confirm();
        std::thread::sleep(hold);
        frozen.thaw();
        self.emulator.thaw();
        let st = self.emulator.snapshot();
        let inv = st.invocation(id).ok_or_else(|| format!("invocation {id} vanished"))?;
        let succeeded = matches!(inv.outcome, Some(Outcome::Response(_)));
        // A handler whose result carries the target's answer called it: a CLIENT span is due too.
        let called_target = |b: &[u8]| String::from_utf8_lossy(b).contains(&self.target_body);
        let wants_client = matches!(&inv.outcome, Some(Outcome::Response(b)) if called_target(b));
        let spans_limit = self.limit(SPANS_LIMIT);
        self.receiver.wait_until(bound(deadline, spans_limit), |got| {
            let spans = invocation_spans(got, id);
            !spans.is_empty() && (!wants_client || spans.iter().any(|s| s.kind == SPAN_KIND_CLIENT))
        });
        let got = self.receiver.snapshot();
        let spans = invocation_spans(&got, id);
        let (before, after): (Vec<&Span>, Vec<&Span>) = spans.iter().partition(|s| s.received_us <= done_us);
        Ok(InvocationReport {
            request_id: id.to_string(),
            cold: round.cold,
            backend_delay_ms: round.backend_delay.as_millis() as u64,
            invoke_ms: inv.outcome_us.map(|t| t.saturating_sub(inv.invoked_us) / 1000),
            succeeded,
            frozen_after_response_ms: inv.outcome_us.map(|t| done_us.saturating_sub(t) / 1000),
            freeze: FreezeReport {
                at_ms: done_us / 1000,
                held_ms: hold.as_millis() as u64,
                groups: groups
                    .into_iter()
                    .map(|g| GroupReport {
                        label: g.label,
                        processes: g.processes,
                        stopped: g.stopped,
                    })
                    .collect(),
            },
            spans_before_freeze: before.len(),
            spans_after_freeze: after.len(),
            last_span_after_freeze_ms: after.iter().map(|s| (s.received_us - done_us) / 1000).max(),
            telemetry: Vec::new(),
        })
    }
}
