//! Progress on stderr: spinners on a terminal, plain start/end/heartbeat lines in a log, or nothing.
//!
//! Work is reported in stages (`[arm64] collector`, `[x86_64] bytecode`): one line when a stage
//! starts, one when it ends with its duration and outcome (what it fetched, built or reused),
//! and, in plain mode, a heartbeat line while a stage runs longer than the heartbeat interval,
//! so that a CI log is never silent for long. Never one line per file.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a stage that is still running says so in plain mode.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(10);

/// `--progress`: how progress is shown on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// Spinners when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Spinners, even when stderr is not a terminal.
    Bar,
    /// One line per stage start and end, and a heartbeat about every 10 s while a stage runs.
    Plain,
    /// Nothing.
    Never,
}

/// Where progress goes; cheap to clone and safe to share between threads.
#[derive(Clone)]
pub(crate) struct Progress {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    out: Output,
    heartbeat: Duration,
    /// Stages still running, watched by the heartbeat thread (plain mode only).
    open: Mutex<Vec<Arc<StageState>>>,
    watcher: Mutex<bool>,
}

enum Output {
    Bars(MultiProgress),
    Plain(Mutex<Box<dyn Write + Send>>),
}

struct StageState {
    label: String,
    message: Mutex<String>,
    started: Instant,
    last_line: Mutex<Instant>,
    ended: AtomicBool,
}

impl Progress {
    /// Progress on stderr as `--progress` and `--quiet` ask; `--quiet` always wins.
    pub fn new(mode: ProgressMode, quiet: bool) -> Progress {
        let terminal = std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        match (quiet, mode) {
            (true, _) | (false, ProgressMode::Never) => Progress::hidden(),
            (false, ProgressMode::Auto) if terminal => Progress::bars(ProgressDrawTarget::stderr()),
            (false, ProgressMode::Bar) => {
                // indicatif draws nothing on a non-terminal stderr target: draw through a term it
                // does not question, since the user asked for bars.
                Progress::bars(ProgressDrawTarget::term_like_with_hz(
                    Box::new(console::Term::buffered_stderr()),
                    20,
                ))
            }
            (false, ProgressMode::Auto | ProgressMode::Plain) => {
                Progress::plain_into(Box::new(std::io::stderr()), HEARTBEAT)
            }
        }
    }

    /// No progress at all.
    pub fn hidden() -> Progress {
        Progress { shared: None }
    }

    /// Plain lines into `out`, with a heartbeat every `heartbeat` while a stage runs.
    pub fn plain_into(out: Box<dyn Write + Send>, heartbeat: Duration) -> Progress {
        Progress::with(Output::Plain(Mutex::new(out)), heartbeat)
    }

    fn bars(target: ProgressDrawTarget) -> Progress {
        Progress::with(Output::Bars(MultiProgress::with_draw_target(target)), HEARTBEAT)
    }

    fn with(out: Output, heartbeat: Duration) -> Progress {
        Progress {
            shared: Some(Arc::new(Shared {
                out,
                heartbeat,
                open: Mutex::new(Vec::new()),
                watcher: Mutex::new(false),
            })),
        }
    }

    /// Starts a stage: `scope` says what it is part of (an architecture, a runtime; may be empty).
    pub fn stage(&self, scope: impl Display, name: impl Display) -> Stage {
        let Some(shared) = &self.shared else {
            return Stage {
                shared: None,
                state: None,
                bar: None,
            };
        };
        let scope = scope.to_string();
        let label = if scope.is_empty() {
            name.to_string()
        } else {
            format!("[{scope}] {name}")
        };
        let now = Instant::now();
        let state = Arc::new(StageState {
            label,
            message: Mutex::new(String::new()),
            started: now,
            last_line: Mutex::new(now),
            ended: AtomicBool::new(false),
        });
        shared.line(&format!("{}: started", state.label));
        let bar = match &shared.out {
            Output::Bars(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} ({elapsed})").expect("valid template"),
                );
                bar.set_prefix(state.label.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                Some(bar)
            }
            Output::Plain(_) => {
                lock(&shared.open).push(state.clone());
                Shared::watch(shared);
                None
            }
        };
        Stage {
            shared: Some(shared.clone()),
            state: Some(state),
            bar,
        }
    }

    /// One line on its own, outside any stage (a note a log reader needs, e.g. what is next).
    pub fn line(&self, text: impl Display) {
        if let Some(shared) = &self.shared {
            shared.line(&text.to_string());
        }
    }
}

impl Shared {
    fn line(&self, text: &str) {
        match &self.out {
            Output::Bars(multi) => {
                let _ = multi.println(text);
            }
            Output::Plain(out) => {
                // One write per line, so that lines of parallel stages never interleave.
                let mut out = lock(out);
                let _ = out.write_all(format!("{text}\n").as_bytes());
                let _ = out.flush();
            }
        }
    }

    /// Starts the heartbeat thread once; it ends when the last handle to `shared` is gone.
    fn watch(shared: &Arc<Shared>) {
        let mut started = lock(&shared.watcher);
        if *started {
            return;
        }
        *started = true;
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let tick = (shared.heartbeat / 5).clamp(Duration::from_millis(10), Duration::from_secs(1));
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(tick);
                let Some(shared) = weak.upgrade() else { return };
                shared.beat();
            }
        });
    }

    fn beat(&self) {
        let due: Vec<Arc<StageState>> = {
            let mut open = lock(&self.open);
            open.retain(|s| !s.ended.load(Ordering::SeqCst));
            open.iter()
                .filter(|s| lock(&s.last_line).elapsed() >= self.heartbeat)
                .cloned()
                .collect()
        };
        for s in due {
            let message = lock(&s.message).clone();
            let what = if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            };
            *lock(&s.last_line) = Instant::now();
            self.line(&format!(
                "{}: still running after {}{what}",
                s.label,
                duration(s.started.elapsed())
            ));
        }
    }
}

/// One running stage; say how it ended with `done`. Dropped unfinished (an error on the way),
/// it reports that it stopped.
pub(crate) struct Stage {
    shared: Option<Arc<Shared>>,
    state: Option<Arc<StageState>>,
    bar: Option<ProgressBar>,
}

impl Stage {
    /// What the stage is doing now: the spinner's text, and the heartbeat's.
    pub fn set_message(&self, message: impl Into<String>) {
        let message = message.into();
        if let Some(bar) = &self.bar {
            bar.set_message(message.clone());
        }
        if let Some(state) = &self.state {
            *lock(&state.message) = message;
        }
    }

    /// Ends the stage with what it achieved, e.g. "3 fetched, 38 reused".
    pub fn done(mut self, outcome: impl Display) {
        self.end(&format!("done in {{}}: {outcome}"));
    }

    fn end(&mut self, template: &str) {
        let (Some(shared), Some(state)) = (self.shared.take(), self.state.take()) else {
            return;
        };
        state.ended.store(true, Ordering::SeqCst);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let text = template.replace("{}", &duration(state.started.elapsed()));
        shared.line(&format!("{}: {text}", state.label));
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.end("stopped after {}");
    }
}

/// `0.4s`, `12s`, `1m32s`: short, and precise where it matters.
pub(crate) fn duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.1}s")
    } else if secs < 60.0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// `100 B`, `4.6 KiB`, `9.1 MiB`, `1.2 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    let f = n as f64;
    if n >= 1 << 30 {
        format!("{:.1} GiB", f / (1u64 << 30) as f64)
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", f / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// A poisoned lock only means another thread panicked while printing: keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            String::from_utf8(lock(&self.0).clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    fn plain(heartbeat: Duration) -> (Progress, Buffer) {
        let buf = Buffer::default();
        (Progress::plain_into(Box::new(buf.clone()), heartbeat), buf)
    }

    /// Durations vary from run to run; the tests pin everything else.
    fn redact(line: &str) -> String {
        line.split(' ')
            .map(|w| {
                let core = w.trim_end_matches([':', ')', ',']);
                let is_duration = core.ends_with('s')
                    && core.len() > 1
                    && core[..core.len() - 1]
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '.' || c == 'm');
                if is_duration {
                    w.replace(core, "<t>")
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_stage_prints_its_start_and_its_outcome_with_the_time_it_took() {
        let (p, buf) = plain(HEARTBEAT);
        let s = p.stage("arm64", "collector");
        s.set_message("go build");
        s.done("built with go build");
        let lines: Vec<String> = buf.lines().iter().map(|l| redact(l)).collect();
        assert_eq!(
            lines,
            [
                "[arm64] collector: started",
                "[arm64] collector: done in <t>: built with go build"
            ]
        );
    }

    #[test]
    fn a_stage_without_scope_has_no_brackets_and_one_dropped_unfinished_says_it_stopped() {
        let (p, buf) = plain(HEARTBEAT);
        drop(p.stage("", "lock"));
        let lines: Vec<String> = buf.lines().iter().map(|l| redact(l)).collect();
        assert_eq!(lines, ["lock: started", "lock: stopped after <t>"]);
    }

    #[test]
    fn a_slow_stage_prints_a_heartbeat_with_what_it_is_doing_and_a_quick_one_none() {
        let (p, buf) = plain(Duration::from_millis(100));
        let quick = p.stage("x86_64", "zip");
        quick.done("12 entries");
        let slow = p.stage("x86_64", "wheels");
        slow.set_message("fetching 3 wheels");
        std::thread::sleep(Duration::from_millis(450));
        slow.done("3 fetched");
        let lines: Vec<String> = buf.lines().iter().map(|l| redact(l)).collect();
        let beats: Vec<&String> = lines.iter().filter(|l| l.contains("still running")).collect();
        // 450 ms at one beat per 100 ms of silence: at least two, never more than four.
        assert!((2..=4).contains(&beats.len()), "{lines:#?}");
        for b in &beats {
            assert_eq!(
                b.as_str(),
                "[x86_64] wheels: still running after <t> (fetching 3 wheels)"
            );
        }
        assert_eq!(lines.last().unwrap(), "[x86_64] wheels: done in <t>: 3 fetched");
        assert!(
            !lines.iter().any(|l| l.starts_with("[x86_64] zip: still")),
            "{lines:#?}"
        );
    }

    #[test]
    fn parallel_stages_never_split_a_line() {
        let (p, buf) = plain(HEARTBEAT);
        std::thread::scope(|s| {
            for arch in ["x86_64", "arm64"] {
                let p = p.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        p.stage(arch, format!("step {i}")).done("ok");
                    }
                });
            }
        });
        let lines = buf.lines();
        assert_eq!(lines.len(), 200);
        for l in lines {
            assert!(l.starts_with("[x86_64] step ") || l.starts_with("[arm64] step "), "{l}");
        }
    }

    #[test]
    fn hidden_and_quiet_print_nothing() {
        let p = Progress::new(ProgressMode::Plain, true);
        assert!(p.shared.is_none());
        let s = Progress::hidden().stage("arm64", "collector");
        s.set_message("x");
        s.done("y");
    }

    #[test]
    fn sizes_read_short() {
        assert_eq!(bytes(100), "100 B");
        assert_eq!(bytes(4704), "4.6 KiB");
        assert_eq!(bytes(9_500_000), "9.1 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(duration(Duration::from_millis(420)), "0.4s");
        assert_eq!(duration(Duration::from_millis(12_400)), "12s");
        assert_eq!(duration(Duration::from_secs(92)), "1m32s");
        assert_eq!(duration(Duration::from_secs(3605)), "60m05s");
    }
}
