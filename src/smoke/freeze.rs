//! Freezing the sandbox as Lambda does after an invocation: the runtime and every extension
//! stopped (SIGSTOP) with everything they started, found by parentage (a `setsid` daemon too),
//! and the orphans smoke adopted; confirmed stopped, and always continued (SIGCONT) again, on
//! every path, by the guard's drop.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::proctree;

/// How long stopped processes get to show as stopped in /proc.
const CONFIRM_LIMIT: Duration = Duration::from_millis(500);
/// Between looks at /proc: another process's stop has no event to wait on.
const CONFIRM_STEP: Duration = Duration::from_millis(2);

/// One frozen process and its tree, as seen in /proc while frozen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupState {
    pub(crate) label: String,
    pub(crate) processes: usize,
    pub(crate) stopped: usize,
}

/// Stopped process trees; continued when dropped, whatever happened in between.
pub(crate) struct Frozen {
    groups: Vec<(String, BTreeSet<i32>)>,
}

impl Frozen {
    /// Stops every group (a label and the processes it is rooted at) with its whole tree.
    pub(crate) fn stop(roots: Vec<(String, Vec<i32>)>) -> Frozen {
        let mut groups: Vec<(String, BTreeSet<i32>)> = roots
            .into_iter()
            .filter(|(_, pids)| !pids.is_empty())
            .map(|(label, pids)| (label, proctree::stop_tree(&pids)))
            .collect();
        // What one tree's walk found first may have moved under another meanwhile: each is
        // counted once, under the first label that stopped it.
        let mut seen = BTreeSet::new();
        for (_, tree) in &mut groups {
            tree.retain(|p| seen.insert(*p));
        }
        Frozen { groups }
    }

    /// Each group's living processes and how many of them are stopped, once all are or a short
    /// bound passes.
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
        self.groups
            .iter()
            .map(|(label, tree)| {
                // A zombie is already dead: there is nothing of it left to stop.
                let living: Vec<char> = tree
                    .iter()
                    .filter_map(|&p| state_of(p))
                    .filter(|s| !matches!(s, 'Z' | 'X'))
                    .collect();
                GroupState {
                    label: label.clone(),
                    processes: living.len(),
                    stopped: living.iter().filter(|s| matches!(s, 'T' | 't')).count(),
                }
            })
            .collect()
    }

    /// Continues every process (the drop does the same; this names the moment).
    pub(crate) fn thaw(self) {}
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for (_, tree) in &self.groups {
            proctree::continue_all(tree);
        }
    }
}

/// The state letter of `pid` in /proc (`R`, `S`, `T`, `Z`...); `None` when it is gone.
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`; comm may hold spaces and parentheses.
    stat.get(stat.rfind(')')? + 2..)?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::process::spawn;
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    #[test]
    fn a_frozen_tree_is_stopped_whole_even_outside_its_session_and_continued_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // A shell with a child in its group and one in a session of its own.
        let script = format!(
            "sleep 30 & echo $! >> {p}; setsid sh -c 'echo $$ >> {p}; exec sleep 31' & wait",
            p = pids.display()
        );
        let argv: Vec<OsString> = ["/bin/sh", "-c", &script].iter().map(OsString::from).collect();
        let mut p = spawn("tree", &argv, dir.path(), &BTreeMap::new(), dir.path(), None).unwrap();
        let wait_two = Instant::now() + Duration::from_secs(10);
        let started: Vec<i32> = loop {
            let text = std::fs::read_to_string(&pids).unwrap_or_default();
            let v: Vec<i32> = text.lines().filter_map(|l| l.parse().ok()).collect();
            if v.len() == 2 || Instant::now() > wait_two {
                break v;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(started.len(), 2, "the tree did not start");
        let frozen = Frozen::stop(vec![("tree".into(), vec![p.pid()])]);
        let states = frozen.confirm();
        assert_eq!(
            states,
            [GroupState {
                label: "tree".into(),
                processes: 3,
                stopped: 3
            }]
        );
        drop(frozen);
        let running = Instant::now() + Duration::from_secs(5);
        let stopped = || {
            started
                .iter()
                .filter(|&&q| matches!(state_of(q), Some('T' | 't')))
                .count()
        };
        while stopped() > 0 && Instant::now() < running {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(stopped(), 0, "the drop continues the whole tree");
        p.kill();
    }
}
