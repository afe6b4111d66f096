//! Child processes of a smoke run: started in their own process group, dying with smoke, their
//! output kept in a capped log, watched for their exit (which wakes the run's waits), stopped,
//! and explained in Lambda's terms when they fail.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::emulator::Waker;
use super::watch::Watch;
use crate::model::arch::{Arch, elf_machine_name};
use crate::support::{input, proctree};

pub(crate) struct Proc {
    pub(crate) label: String,
    child: Child,
    pub(crate) log: PathBuf,
    exit: Option<ExitStatus>,
    killed: bool,
    /// Set by the reaper thread when the process has exited (not yet reaped).
    exited: Arc<Watch<bool>>,
}

impl Proc {
    /// The process id, which is also its process group id.
    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub(crate) fn poll(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Sends `sig` to the process's whole group: a wrapper's or collector's children go too.
    pub(crate) fn signal_group(&self, sig: i32) {
        signal_group(self.pid(), sig);
    }

    /// Waits until the process has exited or `deadline`; says whether it exited.
    pub(crate) fn wait_exit(&mut self, deadline: Instant) -> bool {
        self.exited.wait_until(deadline, |e| e.then_some(()));
        self.poll().is_some()
    }

    /// SIGTERM (and SIGCONT, so a stopped group can act on it), then SIGKILL after `grace`.
    pub(crate) fn stop(&mut self, grace: Duration) {
        if self.poll().is_some() {
            return;
        }
        self.signal_group(libc::SIGTERM);
        self.signal_group(libc::SIGCONT);
        if !self.wait_exit(Instant::now() + grace) {
            self.kill();
        }
    }

    /// SIGKILL to the process and everything it started, found by parentage as well as by
    /// group: a child that left the group (`setsid`) goes too.
    pub(crate) fn kill(&mut self) {
        if self.poll().is_none() {
            proctree::kill_tree(self.pid());
            self.signal_group(libc::SIGKILL);
            self.killed = true;
            self.exit = self.child.wait().ok();
        }
    }

    pub(crate) fn describe_exit(&self) -> Option<String> {
        self.exit.map(|s| {
            if self.killed {
                "killed by smoke".to_string()
            } else {
                describe_status(s)
            }
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn signal_group(pgid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the group we created; no memory is touched.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Watches `pid` for its exit on a thread of its own, without reaping it (`try_wait` does that),
/// then sets the flag and calls `waker`: waits on the run's state wake on a child's exit too.
fn watch_exit(pid: i32, waker: Option<Waker>) -> Arc<Watch<bool>> {
    let exited = Arc::new(Watch::new(false));
    let flag = exited.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("smoke-reaper-{pid}"))
        .spawn(move || {
            loop {
                // SAFETY: waitid writes only into `info`, which lives on this stack; WNOWAIT
                // leaves the child to be reaped by try_wait.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let rc =
                    unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
                if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            flag.update(|e| *e = true);
            if let Some(w) = waker {
                w();
            }
        });
    if spawned.is_err() {
        // No thread: waits fall back to their deadlines, and `poll` still sees the exit.
        exited.update(|e| *e = true);
    }
    exited
}

pub(crate) fn describe_status(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => s.to_string(),
    }
}

/// What a started process's output lines are also given to (Lambda's log stream).
pub(crate) type LineSink = Box<dyn Fn(&[u8]) + Send>;

/// The most of one process's output kept in its log. The rest is counted and dropped, and the
/// process never waits for it: Lambda does not stop a function for logging, and a layer's
/// output must not fill the disk.
pub(crate) const LOG_CAP: u64 = 16 << 20;
/// The longest piece handed to a sink as one line: Lambda's own limit on a log line (256 KB).
const LINE_MAX: usize = 256 << 10;

/// A pipe whose reading end a thread copies into `log` up to [`LOG_CAP`] (each line of what it
/// keeps also to `sink`), then drains to its end, noting what it dropped. Returns the writing
/// end, for a child's stdout and stderr, and a flag set once every writer has closed it and the
/// log is complete.
fn capped_log(log: &Path, sink: Option<LineSink>) -> std::io::Result<(std::io::PipeWriter, Arc<Watch<bool>>)> {
    let mut out = std::fs::File::create(log)?;
    let (mut reader, writer) = std::io::pipe()?;
    let done = Arc::new(Watch::new(false));
    let flag = done.clone();
    std::thread::Builder::new().name("smoke-log".into()).spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut line = Vec::new();
        let (mut kept, mut dropped) = (0u64, 0u64);
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = usize::try_from(LOG_CAP - kept).unwrap_or(usize::MAX).min(n);
            if room > 0 && std::io::Write::write_all(&mut out, &buf[..room]).is_ok() {
                kept += room as u64;
                if let Some(sink) = &sink {
                    feed_lines(&buf[..room], &mut line, sink);
                }
            }
            dropped += (n - room) as u64;
        }
        if let Some(sink) = sink.as_ref().filter(|_| !line.is_empty()) {
            sink(&line);
        }
        if dropped > 0 {
            let _ = writeln!(
                out,
                "\n[layerbuild smoke: {dropped} more bytes of output dropped: a log keeps the first {LOG_CAP} bytes]"
            );
        }
        flag.update(|d| *d = true);
    })?;
    Ok((writer, done))
}

/// Hands `sink` every line `data` completes (without its newline), and a line that grew to
/// [`LINE_MAX`] in pieces; keeps the unfinished rest in `line`.
fn feed_lines(data: &[u8], line: &mut Vec<u8>, sink: &LineSink) {
    for piece in data.split_inclusive(|&b| b == b'\n') {
        line.extend_from_slice(piece);
        if line.last() == Some(&b'\n') {
            sink(&line[..line.len() - 1]);
            line.clear();
        } else if line.len() >= LINE_MAX {
            sink(line);
            line.clear();
        }
    }
}

/// Starts `argv` in `cwd` with exactly `env`, output to `<logs>/<label>.log` (capped), in a new
/// process group; it dies with smoke.
pub(crate) fn spawn(
    label: &str,
    argv: &[OsString],
    cwd: &Path,
    env: &BTreeMap<String, OsString>,
    logs: &Path,
    waker: Option<Waker>,
) -> Result<Proc, String> {
    spawn_streamed(label, argv, cwd, env, logs, waker, None)
}

/// As `spawn`, with each line of the output it keeps also handed to `lines`.
pub(crate) fn spawn_streamed(
    label: &str,
    argv: &[OsString],
    cwd: &Path,
    env: &BTreeMap<String, OsString>,
    logs: &Path,
    waker: Option<Waker>,
    lines: Option<LineSink>,
) -> Result<Proc, String> {
    let log = logs.join(format!("{}.log", label.replace('/', "_")));
    let (out, _) = capped_log(&log, lines).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    proctree::exec_dying_with_parent(&mut cmd, argv, env).map_err(|e| e.to_string())?;
    // `cmd` holds the pipe's write end until it is dropped: the reader ends with the process.
    let spawned = cmd.spawn();
    drop(cmd);
    match spawned {
        Ok(child) => Ok(Proc {
            label: label.to_string(),
            exited: watch_exit(child.id() as i32, waker),
            child,
            log,
            exit: None,
            killed: false,
        }),
        Err(e) => Err(explain_spawn_error(Path::new(&argv[0]), &e)),
    }
}

/// For an ELF file: the machine it is built for, or why its header cannot be read; `None` for
/// anything else.
fn elf_machine(path: &Path) -> Option<Result<u16, String>> {
    let mut head = [0u8; 64];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    crate::check::elf::is_elf(&head).then(|| {
        crate::check::elf::inspect(&head)
            .map(|i| i.machine)
            .map_err(|e| e.to_string())
    })
}

/// Why a file could not be started, in Lambda's terms.
pub(crate) fn explain_spawn_error(path: &Path, e: &std::io::Error) -> String {
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).ok();
    match e.raw_os_error() {
        Some(libc::EACCES) => format!(
            "cannot start {}: permission denied (mode {}): it needs the exec bit; store it 0755 in the zip",
            path.display(),
            mode.map(|m| format!("{m:04o}")).unwrap_or_else(|| "unknown".into())
        ),
        Some(libc::ENOEXEC) => match elf_machine(path) {
            Some(Ok(machine)) => format!(
                "cannot start {}: exec format error: it is an ELF for {}, this host runs {} (wrong architecture for this layer)",
                path.display(),
                elf_machine_name(machine),
                std::env::consts::ARCH
            ),
            Some(Err(why)) => format!(
                "cannot start {}: exec format error: an ELF file Lambda cannot run ({why})",
                path.display()
            ),
            None => format!(
                "cannot start {}: exec format error: neither a program for this host nor a script with a #! line",
                path.display()
            ),
        },
        Some(libc::ENOENT) => format!(
            "cannot start {}: no such file or directory (a script whose #! interpreter is missing?)",
            path.display()
        ),
        _ => format!("cannot start {}: {e}", path.display()),
    }
}

/// Runs a command with a bound, dying with smoke; returns its status and combined output (as
/// much as its capped log keeps).
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration, log: &Path) -> Result<(ExitStatus, String)> {
    let (out, logged) = capped_log(log, None).with_context(|| format!("cannot create {}", log.display()))?;
    let err = out.try_clone()?;
    proctree::die_with_parent(cmd);
    let spawned = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn();
    // The command keeps its copy of the pipe's writing end: closed here, so the log can end.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = spawned?;
    let exited = watch_exit(child.id() as i32, None);
    exited.wait_until(Instant::now() + limit, |e| e.then_some(()));
    let Some(status) = child.try_wait()? else {
        proctree::kill_tree(child.id() as i32);
        let _ = child.wait();
        bail!("did not finish within {} s", limit.as_secs());
    };
    // Its output is all there once nothing holds the pipe (briefly, for one that left a child).
    logged.wait_until(Instant::now() + Duration::from_secs(2), |d| d.then_some(()));
    let text = input::read(log, LOG_CAP + 4096, "log").unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}

/// The last `n` lines of a log (read from its last 64 KiB).
pub(crate) fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 << 10)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// qemu-user for `arch`, to run a layer's extensions built for another machine.
pub(crate) fn find_qemu(arch: Arch) -> Option<PathBuf> {
    let m = arch.wheel_machine();
    [format!("qemu-{m}-static"), format!("qemu-{m}")]
        .iter()
        .find_map(|n| which(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_sink_whole_or_cut_once_they_grow_past_line_max() {
        let got = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
        let g = got.clone();
        let sink: LineSink = Box::new(move |l| g.lock().unwrap().push(l.to_vec()));
        let mut line = Vec::new();
        feed_lines(b"one\ntw", &mut line, &sink);
        feed_lines(b"o\n", &mut line, &sink);
        feed_lines(&vec![b'x'; LINE_MAX + 5], &mut line, &sink);
        feed_lines(b"tail", &mut line, &sink);
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 3, "{:?}", got.iter().map(Vec::len).collect::<Vec<_>>());
        assert_eq!((got[0].as_slice(), got[1].as_slice()), (&b"one"[..], &b"two"[..]));
        assert_eq!(got[2].len(), LINE_MAX + 5);
        assert_eq!(line, b"tail");
    }

    #[test]
    fn streamed_output_reaches_the_log_and_the_sink_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let got = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let g2 = got.clone();
        let sink: LineSink = Box::new(move |l: &[u8]| g2.lock().unwrap().push(String::from_utf8_lossy(l).into()));
        let argv: Vec<OsString> = ["/bin/sh", "-c", "echo one; echo two >&2; printf three"]
            .iter()
            .map(OsString::from)
            .collect();
        let p = spawn_streamed("s", &argv, dir.path(), &BTreeMap::new(), dir.path(), None, Some(sink)).unwrap();
        p.exited
            .wait_until(Instant::now() + Duration::from_secs(10), |e| e.then_some(()));
        // The output thread ends when the pipe closes, just after the exit.
        let end = Instant::now() + Duration::from_secs(10);
        while got.lock().unwrap().len() < 3 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*got.lock().unwrap(), ["one", "two", "three"]);
        assert_eq!(std::fs::read_to_string(&p.log).unwrap(), "one\ntwo\nthree");
    }

    #[test]
    fn spawn_errors_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("x");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        let env = BTreeMap::new();
        let e = spawn(
            "x",
            &[script.clone().into_os_string()],
            dir.path(),
            &env,
            dir.path(),
            None,
        )
        .err()
        .unwrap();
        assert!(e.contains("permission denied (mode 0644)"), "{e}");
        let mut elf = crate::check::elf::fake_elf(object::elf::EM_AARCH64.0, object::elf::ET_EXEC.0);
        if std::env::consts::ARCH == "aarch64" {
            elf = crate::check::elf::fake_elf(object::elf::EM_X86_64.0, object::elf::ET_EXEC.0);
        }
        elf.resize(4096, 0);
        std::fs::write(&script, elf).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = spawn("x", &[script.into_os_string()], dir.path(), &env, dir.path(), None).err();
        // Only a host with binfmt emulation registered for the other arch may start it.
        let emulated = Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
            || Path::new("/proc/sys/fs/binfmt_misc/qemu-x86_64").exists();
        match e {
            Some(e) => assert!(
                e.contains("exec format error") && e.contains("wrong architecture"),
                "{e}"
            ),
            None => assert!(emulated, "a foreign ELF started without binfmt emulation"),
        }
    }

    #[test]
    fn an_exit_wakes_the_waker_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let woke = Arc::new(Watch::new(0u32));
        let w2 = woke.clone();
        let waker: Waker = Arc::new(move || w2.update(|n| *n += 1));
        let argv: Vec<OsString> = ["/bin/sh", "-c", "sleep 0.1; exit 3"]
            .iter()
            .map(OsString::from)
            .collect();
        let mut p = spawn("short", &argv, dir.path(), &BTreeMap::new(), dir.path(), Some(waker)).unwrap();
        let started = Instant::now();
        // Nothing else would wake this wait before its 20 s bound.
        assert_eq!(
            woke.wait_until(started + Duration::from_secs(20), |n| (*n > 0).then_some(*n)),
            Some(1)
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(p.poll().map(describe_status).as_deref(), Some("exit status 3"));
    }

    #[test]
    fn a_stopped_group_still_stops_on_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let argv: Vec<OsString> = ["/bin/sh", "-c", "sleep 30"].iter().map(OsString::from).collect();
        let mut p = spawn("sleeper", &argv, dir.path(), &BTreeMap::new(), dir.path(), None).unwrap();
        p.signal_group(libc::SIGSTOP);
        let started = Instant::now();
        p.stop(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
        assert_eq!(p.describe_exit().as_deref(), Some("killed by signal 15"));
    }

    #[test]
    fn bounded_runs_end_at_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let (st, out) = run_bounded(
            Command::new("/bin/sh").args(["-c", "echo hi"]),
            Duration::from_secs(20),
            &log,
        )
        .unwrap();
        assert!(st.success());
        assert_eq!(out, "hi\n");
        let started = Instant::now();
        let err = run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(300), &log).unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
