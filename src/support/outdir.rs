//! The output folder as one transaction. A lock on the folder serialises builds into it; files are
//! staged beside their destination and renamed in, in the caller's order, under a journal:
//! a failure puts back what was there, and a build killed halfway is undone by the next one
//! to open the folder. Temp files of builds killed long ago are removed.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use tempfile::TempPath;

use crate::support::fs;
use crate::support::text::show;

/// Prefix of everything else layerbuild leaves in the folder while it works.
pub(crate) const TEMP_PREFIX: &str = ".layerbuild-";
/// The list of renames in flight; its presence means a commit did not finish.
const JOURNAL: &str = ".layerbuild-journal";
const BACKUP_PREFIX: &str = ".layerbuild-bak-";
/// Temp files older than this belong to no running build.
const STALE_AFTER: Duration = Duration::from_secs(86_400);

/// An output folder, locked for this build.
#[derive(Debug)]
pub(crate) struct OutDir {
    dir: PathBuf,
    _lock: File,
}

impl OutDir {
    /// Creates the folder when needed, waits for any other build writing into it, undoes a
    /// commit a killed build left halfway, and removes stale temp files.
    pub(crate) fn open(dir: &Path) -> Result<OutDir> {
        fs_err::create_dir_all(dir).context("cannot create the output folder: check --out")?;
        // The folder itself is the lock (flock on its descriptor): nothing is left behind.
        let lock = File::open(dir).with_context(|| format!("cannot open {}: check --out", dir.display()))?;
        if !flock(&lock, libc::LOCK_EX | libc::LOCK_NB) {
            eprintln!(
                "layerbuild: waiting for another build writing into {}",
                show(&dir.display().to_string())
            );
            if !flock(&lock, libc::LOCK_EX) {
                bail!("cannot lock {}: {}", dir.display(), std::io::Error::last_os_error());
            }
        }
        let out = OutDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        out.recover()?;
        out.remove_stale()?;
        Ok(out)
    }

    /// Writes `data` to a temp file in the folder, readable by everyone once renamed.
    pub(crate) fn stage(&self, data: &[u8]) -> Result<TempPath> {
        fs::stage(&self.dir, data)?.into_temp_path()
    }

    /// Renames each staged file to its name in the folder, in order. All or nothing: on any
    /// failure every name holds what it held before.
    pub(crate) fn commit(&self, files: Vec<(TempPath, String)>) -> Result<()> {
        let mut plan = Vec::with_capacity(files.len());
        for (staged, name) in files {
            let target = self.dir.join(&name);
            let old = match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_file() => true,
                Ok(_) => bail!(
                    "{}: is not a regular file: move it out of the output folder",
                    target.display()
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", target.display())),
            };
            plan.push(Step { staged, name, old });
        }
        let backups = self.back_up(&plan)?;
        if let Err(e) = self.write_journal(&plan) {
            for b in &backups {
                let _ = std::fs::remove_file(b);
            }
            return Err(e.context("nothing in the output folder was changed"));
        }
        let mut done = 0;
        let result = plan.iter().try_for_each(|s| {
            fs_err::rename(&s.staged, self.dir.join(&s.name))?;
            done += 1;
            Ok::<_, anyhow::Error>(())
        });
        if let Err(e) = result {
            self.undo(plan[..done].iter().map(|s| (s.name.as_str(), s.old)));
            for b in &backups {
                let _ = std::fs::remove_file(b);
            }
            let _ = std::fs::remove_file(self.dir.join(JOURNAL));
            return Err(e.context("nothing in the output folder was changed"));
        }
        // The journal's removal is the commit; the backups are only hard links.
        fs_err::remove_file(self.dir.join(JOURNAL))?;
        for b in backups {
            let _ = std::fs::remove_file(b);
        }
        for s in plan {
            // Renamed away: dropping must not delete what now sits under its name.
            let _ = s.staged.keep();
        }
        Ok(())
    }

    /// Hard links of every file about to be replaced, so it can be put back.
    fn back_up(&self, plan: &[Step]) -> Result<Vec<PathBuf>> {
        let mut made = Vec::new();
        for s in plan.iter().filter(|s| s.old) {
            let backup = self.dir.join(format!("{BACKUP_PREFIX}{}", s.name));
            let _ = std::fs::remove_file(&backup);
            if let Err(e) = fs_err::hard_link(self.dir.join(&s.name), &backup) {
                for b in &made {
                    let _ = std::fs::remove_file(b);
                }
                return Err(e).context("cannot keep the old outputs while the new ones move in");
            }
            made.push(backup);
        }
        Ok(made)
    }

    fn write_journal(&self, plan: &[Step]) -> Result<()> {
        let text: String = plan
            .iter()
            .map(|s| format!("{}\t{}\n", if s.old { "replace" } else { "add" }, s.name))
            .collect();
        fs::stage(&self.dir, text.as_bytes())?.commit(&self.dir.join(JOURNAL))
    }

    /// Puts back each name: the old file from its backup, or nothing where there was none.
    fn undo<'a>(&self, steps: impl Iterator<Item = (&'a str, bool)>) {
        for (name, old) in steps {
            let target = self.dir.join(name);
            let backup = self.dir.join(format!("{BACKUP_PREFIX}{name}"));
            if old {
                if backup.exists() {
                    // Renaming a link onto another link of the same file does nothing: drop it after.
                    let _ = std::fs::rename(&backup, &target);
                    let _ = std::fs::remove_file(&backup);
                }
            } else {
                let _ = std::fs::remove_file(&target);
            }
        }
    }

    /// A journal left behind means a build died while renaming: undo all of it.
    fn recover(&self) -> Result<()> {
        let journal = self.dir.join(JOURNAL);
        let text = match std::fs::read_to_string(&journal) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", journal.display())),
        };
        let steps: Vec<(&str, bool)> = text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(_, name)| is_plain_name(name))
            .map(|(kind, name)| (name, kind == "replace"))
            .collect();
        eprintln!(
            "layerbuild: an earlier build into {} was interrupted while committing: putting back its previous outputs",
            show(&self.dir.display().to_string())
        );
        self.undo(steps.into_iter());
        fs_err::remove_file(&journal)?;
        Ok(())
    }

    /// Backups without a journal are leftovers of a finished commit; other temp files go once
    /// they are a day old (a build of another version may still be writing younger ones).
    fn remove_stale(&self) -> Result<()> {
        let now = SystemTime::now();
        for e in fs_err::read_dir(&self.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(TEMP_PREFIX) || name == JOURNAL {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_AFTER);
            if meta.is_file() && (name.starts_with(BACKUP_PREFIX) || old) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }
}

struct Step {
    staged: TempPath,
    name: String,
    old: bool,
}

/// Whether a build into `dir` died while renaming its outputs in (and none has opened the
/// folder since to undo it): its files may not belong together.
pub(crate) fn interrupted(dir: &Path) -> bool {
    dir.join(JOURNAL).exists()
}

/// A name directly in the folder: what the journal may name.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

fn flock(f: &File, op: i32) -> bool {
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), op) == 0 }
}

#[cfg(test)]
#[path = "outdir/tests.rs"]
mod tests;
