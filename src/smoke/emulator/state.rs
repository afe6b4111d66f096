//! What the emulated Lambda APIs have seen: extensions, invocations, subscriptions, deliveries;
//! and the rule that says when an invocation is over and the sandbox would freeze.

use std::collections::VecDeque;

use serde_json::Value;

/// How the Telemetry API behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryMode {
    /// As Lambda: subscriptions are checked and platform events are delivered to the listener.
    Lambda,
    /// Accepting but silent: any subscription gets 200 `{}`, nothing is ever delivered.
    Silent,
    /// As AWS's Runtime Interface Emulator by default: every subscription is answered 202
    /// `Telemetry.NotSupported`, and the sandbox never needs one (that emulator never freezes).
    Unsupported,
}

/// What the function looks like to the APIs.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    pub name: String,
    pub version: String,
    pub handler: String,
    pub arn: String,
    pub memory_mb: u64,
}

#[derive(Debug, Clone)]
pub struct Extension {
    pub name: String,
    pub id: String,
    /// Event types it registered for (INVOKE, SHUTDOWN).
    pub events: Vec<String>,
    pub registered_ms: u64,
    /// How many times it called event/next.
    pub next_calls: u32,
    /// Blocked in event/next with nothing to hand it: what Lambda waits for before it freezes.
    pub waiting: bool,
    /// Event types delivered to it, in order.
    pub delivered: Vec<String>,
    pub(super) queue: VecDeque<Value>,
}

/// How the runtime answered one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Vec<u8>),
    Error { error_type: Option<String>, body: Vec<u8> },
}

/// Times are microseconds on the run's clock.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: String,
    pub event: Vec<u8>,
    pub deadline_ms: u64,
    pub trace_id: String,
    /// False when smoke plays the runtime itself (a layer whose Python cannot run here).
    pub to_runtime: bool,
    pub invoked_us: u64,
    pub delivered_us: Option<u64>,
    pub outcome: Option<Outcome>,
    pub outcome_us: Option<u64>,
    /// When the runtime and every extension were all waiting in next: Lambda freezes here.
    pub done_us: Option<u64>,
}

/// An error posted by the runtime's init or by an extension's init/exit.
#[derive(Debug, Clone)]
pub struct PostedError {
    pub who: String,
    pub error_type: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Buffering {
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout_ms: u64,
}

/// One extension's Telemetry API subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub extension: String,
    pub schema_version: String,
    pub types: Vec<String>,
    pub uri: String,
    pub buffering: Buffering,
    /// False in RIE mode: accepted, never delivered to.
    pub active: bool,
    /// `host:port` and path the events are posted to.
    pub(super) target: (String, String),
    pub(super) buffer: Vec<Value>,
    pub(super) buffered_bytes: usize,
    pub(super) first_buffered_us: Option<u64>,
}

impl Subscription {
    /// Makes what is buffered due now, whatever the buffering timeout.
    pub(super) fn flush_now(&mut self) {
        if self.first_buffered_us.is_some() {
            self.first_buffered_us = Some(0);
        }
    }
}

/// One POST of events to a subscriber's listener.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub extension: String,
    /// `type` and `record.requestId` (when it has one) of each event in the batch, in order.
    pub events: Vec<(String, Option<String>)>,
    /// The listener's status, or why the post failed (after retries).
    pub result: Result<u16, String>,
}

#[derive(Debug, Clone, Default)]
pub struct State {
    pub extensions: Vec<Extension>,
    /// Calls of runtime/invocation/next, and when the first came (the end of the runtime's init).
    pub runtime_next_calls: u32,
    pub runtime_first_next_us: Option<u64>,
    pub runtime_waiting: bool,
    pub invocations: Vec<Invocation>,
    pub init_error: Option<PostedError>,
    pub extension_errors: Vec<PostedError>,
    pub subscriptions: Vec<Subscription>,
    /// Logs API (2020-08-15) subscribers: accepted, nothing delivered.
    pub logs_subscriptions: Vec<String>,
    pub deliveries: Vec<Delivery>,
    /// Requests refused (unknown path, unknown extension id, bad subscription...), for the report.
    pub refused: Vec<String>,
    pub closing: bool,
    /// The sandbox is frozen: no telemetry is delivered until smoke thaws it (or invokes again).
    pub frozen: bool,
    /// Bumped on every change a waiter may wait on, so it wakes as soon as it happens.
    pub changes: u64,
}

impl State {
    pub fn invocation(&self, id: &str) -> Option<&Invocation> {
        self.invocations.iter().find(|i| i.id == id)
    }

    /// Queues `event` for every active subscriber of `kind` events (`platform`, ...).
    pub(super) fn emit(&mut self, kind: &str, event: Value, now_us: u64) {
        let size = event.to_string().len();
        for sub in self
            .subscriptions
            .iter_mut()
            .filter(|s| s.active && s.types.iter().any(|t| t == kind))
        {
            sub.buffer.push(event.clone());
            sub.buffered_bytes += size;
            sub.first_buffered_us.get_or_insert(now_us);
        }
    }

    /// The invocation whose runtime has answered and for which the runtime (when it has one) and
    /// every extension now wait in next with nothing queued: it is over, and Lambda would freeze
    /// the sandbox now. Marks it done and the sandbox frozen, and returns its index.
    pub(super) fn settle(&mut self, now_us: u64) -> Option<usize> {
        let extensions_idle = self.extensions.iter().all(|e| e.waiting && e.queue.is_empty());
        if !extensions_idle {
            return None;
        }
        let runtime_waiting = self.runtime_waiting;
        let i = self
            .invocations
            .iter()
            .position(|inv| inv.done_us.is_none() && inv.outcome.is_some() && (!inv.to_runtime || runtime_waiting))?;
        self.invocations[i].done_us = Some(now_us);
        self.frozen = true;
        Some(i)
    }
}
