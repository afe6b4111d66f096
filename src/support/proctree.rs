//! Stopping and ending a process and everything it started, including what left its process
//! group or session (`setsid`, double forks): the tree is read from /proc, frozen with SIGSTOP
//! so it cannot fork while it is read, then continued or killed. A command that runs untrusted
//! programs also becomes a child subreaper, so orphans are re-parented to it instead of to init
//! and can be found too; its children die with it (`PR_SET_PDEATHSIG`), and SIGINT, SIGTERM and
//! SIGHUP end its whole tree before it exits.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// Makes orphaned descendants of this process its children instead of init's.
pub(crate) fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Every process's parent, from /proc; zombies included (they can no longer fork).
fn parents() -> BTreeMap<i32, i32> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split at the last `)`.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(") ")
            && let Some(ppid) = rest.split(' ').nth(1).and_then(|p| p.parse().ok())
        {
            out.insert(pid, ppid);
        }
    }
    out
}

/// Living (or zombie) descendants of `root`, `root` excluded.
pub(crate) fn descendants(root: i32) -> Vec<i32> {
    let parents = parents();
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a plain pid; no memory is touched.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Stops (SIGSTOP) every root and all their descendants, reading the tree again until it stops
/// growing, so a process forked during the walk is not missed; returns every process stopped.
pub(crate) fn stop_tree(roots: &[i32]) -> BTreeSet<i32> {
    let mut tree: BTreeSet<i32> = roots.iter().copied().collect();
    for _ in 0..20 {
        for &p in &tree {
            signal(p, libc::SIGSTOP);
        }
        let now: BTreeSet<i32> = roots
            .iter()
            .flat_map(|&r| std::iter::once(r).chain(descendants(r)))
            .collect();
        if now.is_subset(&tree) {
            break;
        }
        tree.extend(now);
    }
    tree
}

/// Continues (SIGCONT) every process of a stopped tree.
pub(crate) fn continue_all(tree: &BTreeSet<i32>) {
    for &p in tree {
        signal(p, libc::SIGCONT);
    }
}

/// Kills `root` and all its descendants, stopped first (see [`stop_tree`]). `root` itself is
/// left for its owner to reap; adopted descendants are reaped here.
pub(crate) fn kill_tree(root: i32) {
    let tree = stop_tree(&[root]);
    for &p in &tree {
        signal(p, libc::SIGKILL);
    }
    reap(tree.into_iter().filter(|&p| p != root));
}

/// This process's children that are not in `keep`: for a subreaper, the orphans it adopted.
pub(crate) fn children_except(keep: &[i32]) -> Vec<i32> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    parents()
        .into_iter()
        .filter(|&(pid, ppid)| ppid == me && !keep.contains(&pid))
        .map(|(pid, _)| pid)
        .collect()
}

/// Makes `cmd`'s process die (SIGKILL) when the thread that starts it does, so a command that
/// is killed outright leaves no child of its own running. Start such commands from the main
/// thread: the signal comes when the starting thread ends, not only the process.
pub(crate) fn die_with_parent(cmd: &mut Command) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the prctl: nothing would send the signal now.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the parent exited while this process started"));
            }
            Ok(())
        });
    }
}

/// [`die_with_parent`], then the child execs `argv` with exactly `env` itself (execve): std's
/// execvp would run a file the kernel refuses (ENOEXEC: another machine's ELF, no `#!` line)
/// through /bin/sh instead of failing the spawn, and the spawn's error is what explains it.
/// `argv[0]` must be a path; `cmd` is otherwise used for its folder and stdio only.
pub(crate) fn exec_dying_with_parent(
    cmd: &mut Command,
    argv: &[std::ffi::OsString],
    env: &BTreeMap<String, std::ffi::OsString>,
) -> std::io::Result<()> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let cstr = |b: Vec<u8>| std::ffi::CString::new(b).map_err(|_| std::io::Error::other("NUL in an argument"));
    let args: Vec<std::ffi::CString> = argv
        .iter()
        .map(|a| cstr(a.as_bytes().to_vec()))
        .collect::<Result<_, _>>()?;
    let vars: Vec<std::ffi::CString> = env
        .iter()
        .map(|(k, v)| cstr([k.as_bytes(), b"=", &v.clone().into_vec()].concat()))
        .collect::<Result<_, _>>()?;
    // Addresses made here, before the fork: the child must not allocate.
    let table = |v: &[std::ffi::CString]| -> Vec<usize> {
        v.iter()
            .map(|c| c.as_ptr() as usize)
            .chain(std::iter::once(0))
            .collect()
    };
    let (arg_ptrs, var_ptrs) = (table(&args), table(&vars));
    die_with_parent(cmd);
    // SAFETY: execve with NUL-terminated strings and NULL-terminated tables that `args` and
    // `vars`, moved into the closure, keep alive; it returns only on failure.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = (&args, &vars);
            libc::execve(
                arg_ptrs[0] as *const libc::c_char,
                arg_ptrs.as_ptr() as *const *const libc::c_char,
                var_ptrs.as_ptr() as *const *const libc::c_char,
            );
            Err(std::io::Error::last_os_error())
        });
    }
    Ok(())
}

/// Ends the whole tree of this process when SIGINT, SIGTERM or SIGHUP comes: every descendant
/// (adopted orphans included) is killed, `cleanup` runs (remove temp folders), and the process
/// exits 128 + the signal, as a shell reports it. A signal this process was started ignoring
/// (SIGINT for a shell's background job, SIGHUP under nohup) stays ignored. Call it before any
/// thread starts: the signals are blocked in the caller, and threads started later inherit
/// that, so only the watcher thread takes them. Children get an empty mask (std resets it at
/// spawn).
pub(crate) fn end_tree_on_signals(what: &'static str, cleanup: fn()) -> std::io::Result<()> {
    // SAFETY: the sigset and sigaction live on this stack; the calls only read or write them.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            libc::sigaddset(&mut set, sig);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    let watcher = move || {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait reads the set and writes the signal number into `sig`, both ours.
        while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
        SIGNALLED.store(sig, std::sync::atomic::Ordering::SeqCst);
        end_descendants();
        cleanup();
        eprintln!(
            "layerbuild: {what} interrupted by signal {sig}: every process it started was ended and its temp folder removed"
        );
        std::process::exit(128 + sig);
    };
    std::thread::Builder::new()
        .name("layerbuild-signals".into())
        .spawn(watcher)
        .map(|_| ())
}

/// The signal the watcher of [`end_tree_on_signals`] took, 0 before any.
static SIGNALLED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Once the watcher has taken a signal, the command's own ending (its processes just died under
/// it) must not win the race with the watcher's cleanup and its exit status 128 + the signal:
/// the caller waits here for the watcher to end the process.
pub(crate) fn wait_if_ending() {
    if SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) != 0 {
        loop {
            std::thread::park();
        }
    }
}

/// Kills every descendant of this process: each child's tree, adopted orphans included.
fn end_descendants() {
    let children = children_except(&[]);
    let tree = stop_tree(&children);
    for &p in &tree {
        signal(p, libc::SIGKILL);
    }
    reap(tree.into_iter());
}

/// Kills every child of this process (with its tree) that is not in `keep`: the orphans a
/// subreaper adopted.
/// Returns how many there were.
pub(crate) fn end_adopted(keep: &[i32]) -> usize {
    let adopted = children_except(keep);
    for &p in &adopted {
        kill_tree(p);
    }
    let n = adopted.len();
    reap(adopted.into_iter());
    n
}

/// Waits (briefly) for killed processes that are our children, so none is left a zombie.
/// Others are not ours to wait for; `waitpid` on them fails at once.
fn reap(pids: impl Iterator<Item = i32>) {
    let end = Instant::now() + Duration::from_secs(2);
    for p in pids {
        loop {
            let mut status = 0;
            // SAFETY: waitpid on one pid with WNOHANG; status is a plain int.
            let got = unsafe { libc::waitpid(p, &mut status, libc::WNOHANG) };
            if got != 0 || Instant::now() > end {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn gone(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.starts_with('Z')))
            .unwrap_or(true)
    }

    #[test]
    fn the_whole_tree_dies_even_what_left_the_session() {
        let d = tempfile::tempdir().unwrap();
        let pids = d.path().join("pids");
        let script = format!(
            "sleep 300 & echo $! >> {p}; setsid sh -c 'echo $$ >> {p}; exec sleep 301' & wait",
            p = pids.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let root = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        let started: Vec<i32> = loop {
            let text = std::fs::read_to_string(&pids).unwrap_or_default();
            let v: Vec<i32> = text.lines().filter_map(|l| l.parse().ok()).collect();
            if v.len() == 2 || Instant::now() > deadline {
                break v;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(started.len(), 2, "the tree did not start");
        let found = descendants(root);
        for p in &started {
            assert!(found.contains(p), "{p} not among {found:?}");
        }
        kill_tree(root);
        child.wait().unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while !started.iter().all(|&p| gone(p)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        for p in started {
            assert!(gone(p), "{p} survived");
        }
    }
}
