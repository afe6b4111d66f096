//! Freezing the sandbox as Lambda does after an invocation: every process group of the runtime
//! and extensions stopped (SIGSTOP), confirmed stopped, and always continued (SIGCONT) again,
//! on every path, by the guard's drop.

use std::time::{Duration, Instant};

use super::process::signal_group;

/// How long stopped groups get to show as stopped in /proc.
const CONFIRM_LIMIT: Duration = Duration::from_millis(500);
/// Between looks at /proc: another process's stop has no event to wait on.
const CONFIRM_STEP: Duration = Duration::from_millis(2);

/// One frozen process group, as seen in /proc while frozen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupState {
    pub(crate) label: String,
    pub(crate) processes: usize,
    pub(crate) stopped: usize,
}

/// Stopped process groups; continued when dropped, whatever happened in between.
pub(crate) struct Frozen {
    groups: Vec<(String, i32)>,
}

impl Frozen {
    /// Stops every group (label, process group id) at once.
    pub(crate) fn stop(groups: Vec<(String, i32)>) -> Frozen {
        let frozen = Frozen { groups };
        for (_, pgid) in &frozen.groups {
            signal_group(*pgid, libc::SIGSTOP);
        }
        frozen
    }

    /// Each group's processes and how many of them are stopped, once all are or a short bound passes.
    pub(crate) fn confirm(&self) -> Vec<GroupState> {
        let end = Instant::now() + CONFIRM_LIMIT;
        loop {
            let states = self.states();
            if states.iter().all(|g| g.stopped == g.processes) || Instant::now() >= end {
                return states;
            }
            std::thread::sleep(CONFIRM_STEP);
        }
    }

    fn states(&self) -> Vec<GroupState> {
        let members = group_members();
        self.groups
            .iter()
            .map(|(label, pgid)| {
                // A zombie is already dead: there is nothing of it left to stop.
                let of_group: Vec<char> = members
                    .iter()
                    .filter(|m| m.1 == *pgid && !matches!(m.2, 'Z' | 'X'))
                    .map(|m| m.2)
                    .collect();
                GroupState {
                    label: label.clone(),
                    processes: of_group.len(),
                    stopped: of_group.iter().filter(|s| matches!(s, 'T' | 't')).count(),
                }
            })
            .collect()
    }

    /// Continues every group (the drop does the same; this names the moment).
    pub(crate) fn thaw(self) {}
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for (_, pgid) in &self.groups {
            signal_group(*pgid, libc::SIGCONT);
        }
    }
}

/// (pid, process group, state) of every process in /proc.
fn group_members() -> Vec<(i32, i32, char)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let pgrp = fields.nth(1)?.parse().ok()?;
            Some((pid, pgrp, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::process::spawn;
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    #[test]
    fn a_frozen_group_is_stopped_whole_and_continued_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        // A shell with a child of its own: the group holds both.
        let argv: Vec<OsString> = ["/bin/sh", "-c", "sleep 30 & wait"]
            .iter()
            .map(OsString::from)
            .collect();
        let mut p = spawn("group", &argv, dir.path(), &BTreeMap::new(), dir.path(), None).unwrap();
        let pgid = p.pid();
        let wait_two = Instant::now() + Duration::from_secs(10);
        while group_members().iter().filter(|m| m.1 == pgid).count() < 2 && Instant::now() < wait_two {
            std::thread::sleep(Duration::from_millis(10));
        }
        let frozen = Frozen::stop(vec![("group".into(), pgid)]);
        let states = frozen.confirm();
        assert_eq!(
            states,
            [GroupState {
                label: "group".into(),
                processes: 2,
                stopped: 2
            }]
        );
        drop(frozen);
        let running = Instant::now() + Duration::from_secs(5);
        let mut stopped = 2;
        while stopped > 0 && Instant::now() < running {
            stopped = group_members()
                .iter()
                .filter(|m| m.1 == pgid && matches!(m.2, 'T' | 't'))
                .count();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(stopped, 0, "the drop continues the group");
        p.kill();
    }
}
