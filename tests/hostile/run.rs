//! Runs the binary the way an attacker's input would meet it: with a wall-clock bound, a memory
//! ceiling, and the child's own peak memory measured (not the test process's).
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How one run ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    /// Peak resident memory of the child, in KiB (`ru_maxrss`).
    pub max_rss_kib: i64,
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.and_then(|s| s.signal())
    }

    /// Panics with everything known unless the run exited with `code` in time.
    pub fn expect_code(&self, code: i32, what: &str) -> &Outcome {
        assert!(
            !self.timed_out && self.code() == Some(code),
            "{what}: expected exit {code}, got {:?} (signal {:?}, timed out {}, {:?})\nstdout:\n{}\nstderr:\n{}",
            self.code(),
            self.signal(),
            self.timed_out,
            self.elapsed,
            cut(&self.stdout),
            cut(&self.stderr)
        );
        self
    }
}

fn cut(s: &str) -> &str {
    let mut end = s.len().min(4000);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The debug binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_layerbuild"))
}

/// A command for the binary, run in `dir` with a private cache and no stray build settings.
pub fn layerbuild(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .env("LAYERBUILD_CACHE", dir.join(".cache"))
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Limits the child's address space, so a runaway allocation fails instead of eating the machine.
pub fn limit_memory(cmd: &mut Command, bytes: u64) {
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `cmd` under GNU time, whose figure is the program's own peak memory. wait4's figure in
/// [`run`] also counts the test process's memory at the fork (Linux carries the old address
/// space's high-water mark across exec), which other tests running alongside inflate; a tight
/// bound needs the clean one. scripts/provision installs `time`.
pub fn run_measured(cmd: Command, limit: Duration) -> Outcome {
    const MARK: &str = "layerbuild-test-peak-rss-kib=";
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg(format!("{MARK}%M"))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let mut out = run(timed, limit);
    let (rest, peak) = out.stderr.rsplit_once(MARK).expect("GNU time reports the peak");
    out.max_rss_kib = peak.trim().parse().expect("a number of KiB");
    out.stderr = rest.to_string();
    out
}

/// Runs `cmd` to its end or until `limit`, then kills it; measures the child's peak memory.
pub fn run(mut cmd: Command, limit: Duration) -> Outcome {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    // Reaped below with wait4, which also reports the child's peak memory.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().expect("the binary starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let pid = child.id() as i32;
    let mut timed_out = false;
    let (status, rss) = loop {
        let mut raw = 0;
        // SAFETY: rusage is plain data that wait4 fills; pid is our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let got = unsafe { libc::wait4(pid, &mut raw, libc::WNOHANG, &mut usage) };
        if got == pid {
            break (Some(ExitStatus::from_raw(raw)), usage.ru_maxrss);
        }
        if got < 0 {
            break (None, 0);
        }
        if started.elapsed() > limit && !timed_out {
            timed_out = true;
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    Outcome {
        status,
        timed_out,
        max_rss_kib: rss,
        elapsed,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
    }
}
