//! A local stand-in for Lambda's Runtime, Extensions and Telemetry APIs, on 127.0.0.1, for `smoke`.
//!
//! It serves the published contracts and records what each client did. It also knows when an
//! invocation is over for Lambda (the runtime and every extension wait in next) and marks the
//! sandbox frozen then; smoke, which owns the processes, stops them (SIGSTOP) and thaws them.

mod routes;
mod state;
mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{Value, json};

pub use state::{FunctionInfo, Invocation, Outcome, State, TelemetryMode};

use super::clock::{Clock, epoch_ms};
use super::http::Server;
use super::watch::Watch;

/// Wakes the run's waiters from outside the APIs (a child process that exited).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

struct Shared {
    watch: Watch<State>,
    clock: Clock,
    function: FunctionInfo,
    telemetry: TelemetryMode,
    ids: AtomicU64,
    api_port: AtomicU16,
}

impl Shared {
    /// Records a change on a guard already held and wakes every waiter.
    fn changed(&self, st: &mut std::sync::MutexGuard<'_, State>) {
        st.changes += 1;
        self.watch.announce(st);
    }

    fn api_port(&self) -> u16 {
        self.api_port.load(Ordering::SeqCst)
    }

    /// A UUID-shaped identifier, unique in this process.
    fn new_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::SeqCst);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (t >> 16) as u32,
            (t & 0xffff) as u16,
            (n >> 12) & 0xfff,
            n & 0xfff,
            (t.rotate_left(17) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) & 0xffff_ffff_ffff
        )
    }
}

pub struct Emulator {
    shared: Arc<Shared>,
    server: Option<Server>,
}

impl Emulator {
    pub fn start(function: FunctionInfo, telemetry: TelemetryMode, clock: Clock) -> Result<Emulator> {
        let shared = Arc::new(Shared {
            watch: Watch::new(State::default()),
            clock,
            function,
            telemetry,
            ids: AtomicU64::new(1),
            api_port: AtomicU16::new(0),
        });
        let s2 = shared.clone();
        let server = Server::start("lambda-api", 0, Arc::new(move |req| routes::handle(&s2, req)))?;
        shared.api_port.store(server.port(), Ordering::SeqCst);
        Ok(Emulator {
            shared,
            server: Some(server),
        })
    }

    /// `127.0.0.1:PORT` for `AWS_LAMBDA_RUNTIME_API`.
    pub fn api(&self) -> String {
        self.server.as_ref().map(Server::host_port).unwrap_or_default()
    }

    pub fn snapshot(&self) -> State {
        self.shared.watch.lock().clone()
    }

    /// Waits until `ready` gives an answer on the recorded state, or `deadline`.
    pub fn wait_until<T>(&self, deadline: Instant, mut ready: impl FnMut(&State) -> Option<T>) -> Option<T> {
        self.shared.watch.wait_until(deadline, |st| ready(st))
    }

    /// Waits until the state moves on from the snapshot whose `changes` was `seen`, or `deadline`.
    pub fn wait_change(&self, seen: u64, deadline: Instant) {
        self.wait_until(deadline, |st| (st.changes != seen).then_some(()));
    }

    /// Where the runtime's output goes, line by line: each line becomes a `function` event for
    /// the subscribers that asked for them, as Lambda streams the function's log (text format).
    pub fn function_log(&self) -> crate::smoke::process::LineSink {
        let sh = self.shared.clone();
        Box::new(move |line: &[u8]| {
            let event = telemetry::function_event(&String::from_utf8_lossy(line));
            let now = sh.clock.us();
            let mut st = sh.watch.lock();
            st.emit("function", event, now);
            sh.changed(&mut st);
        })
    }

    /// A waker for things the APIs cannot see, such as a child's exit: it counts as a change.
    pub fn waker(&self) -> Waker {
        let sh = self.shared.clone();
        Arc::new(move || sh.watch.update(|st| st.changes += 1))
    }

    /// Starts one invocation: `platform.start` to subscribers, INVOKE to every extension that
    /// asked for it, the event to the runtime when `to_runtime`. Thaws the sandbox. Returns the
    /// request id.
    pub fn invoke(&self, event: &Value, timeout: Duration, to_runtime: bool) -> String {
        let sh = &self.shared;
        let id = sh.new_id();
        let deadline_ms = epoch_ms() + timeout.as_millis() as u64;
        let trace_id = xray_header(epoch_ms() / 1000, &sh.new_id());
        let ev = json!({
            "eventType": "INVOKE",
            "deadlineMs": deadline_ms,
            "requestId": id,
            "invokedFunctionArn": sh.function.arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
        });
        let mut st = sh.watch.lock();
        st.frozen = false;
        let now = sh.clock.us();
        let inv = Invocation {
            id: id.clone(),
            event: event.to_string().into_bytes(),
            deadline_ms,
            trace_id,
            to_runtime,
            invoked_us: now,
            delivered_us: None,
            outcome: None,
            outcome_us: None,
            done_us: None,
        };
        st.emit("platform", telemetry::start_event(&inv, &sh.function.version), now);
        st.invocations.push(inv);
        for ext in st
            .extensions
            .iter_mut()
            .filter(|e| e.events.iter().any(|t| t == "INVOKE"))
        {
            ext.queue.push_back(ev.clone());
        }
        sh.changed(&mut st);
        id
    }

    /// Answers invocation `id` as the runtime would, for runs where smoke plays the runtime.
    pub fn answer(&self, id: &str, outcome: Outcome) -> Result<(), String> {
        routes::answer(&self.shared, id, outcome).map_err(|(_, why)| why)
    }

    /// The sandbox runs again: telemetry held during the freeze may now be delivered.
    pub fn thaw(&self) {
        self.shared.watch.update(|st| {
            st.frozen = false;
            st.changes += 1;
        });
    }

    /// Queues SHUTDOWN for every extension that asked for it, thaws the sandbox and makes the
    /// telemetry still buffered due at once (the platform flushes when it closes its streams).
    pub fn shutdown(&self, reason: &str, within: Duration) {
        let deadline = epoch_ms() + within.as_millis() as u64;
        let ev = json!({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline});
        self.shared.watch.update(|st| {
            st.frozen = false;
            for sub in &mut st.subscriptions {
                sub.flush_now();
            }
            for ext in st
                .extensions
                .iter_mut()
                .filter(|e| e.events.iter().any(|t| t == "SHUTDOWN"))
            {
                ext.queue.push_back(ev.clone());
            }
            st.changes += 1;
        });
    }

    /// Ends every long poll and delivery still waiting, and stops serving.
    pub fn close(&mut self) {
        self.shared.watch.update(|st| {
            st.closing = true;
            st.changes += 1;
        });
        self.server.take();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.close();
    }
}

/// An X-Ray trace header as Lambda passes it, sampled so the SDK records the invocation.
fn xray_header(epoch_secs: u64, seed: &str) -> String {
    let hex: String = seed.chars().filter(char::is_ascii_hexdigit).collect();
    let root = format!("{:0>24}", &hex[hex.len().saturating_sub(24)..]);
    let parent = format!("{:0>16}", &hex[..16.min(hex.len())]);
    format!("Root=1-{:08x}-{root};Parent={parent};Sampled=1", epoch_secs as u32)
}

#[cfg(test)]
mod tests;
