//! A child of the root's preparation in its own process group, killed with the whole group at
//! the deadline or when dropped: debootstrap, dpkg-deb and tar may hang on a bad mirror.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child in its own process group, killed with the whole group if the deadline passes.
pub(super) struct Spawned {
    pub(super) child: Child,
}

impl Spawned {
    pub(super) fn new(cmd: &mut Command) -> std::io::Result<Spawned> {
        cmd.process_group(0);
        Ok(Spawned { child: cmd.spawn()? })
    }

    /// The exit status, or `None` after killing the group at the deadline.
    pub(super) fn wait(mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let pid = self.child.id() as i32;
                // SAFETY: kill with a negative pid signals the group this child leads.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = self.child.id() as i32;
            // SAFETY: as in `wait`; the group is ours.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}
