//! The one way layerbuild writes a file others may read while it is written: into a temp file
//! in the destination's folder, then renamed over it, so a reader or a killed build never sees
//! half a file.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// A finished file waiting in its destination's folder for [`Staged::commit`].
#[derive(Debug)]
pub(crate) struct Staged(NamedTempFile);

/// Writes `data` to a temp file in `dir` (which must exist).
pub(crate) fn stage(dir: &Path, data: &[u8]) -> Result<Staged> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".layerbuild-")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "cannot create a temp file in {}: check the folder is writable",
                dir.display()
            )
        })?;
    tmp.write_all(data)
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    Ok(Staged(tmp))
}

impl Staged {
    /// Moves the file to `to`, replacing whatever is there, readable by everyone.
    pub(crate) fn commit(self, to: &Path) -> Result<()> {
        // Temp files are 0600; what we write is for everyone to read.
        fs_err::set_permissions(self.0.path(), std::fs::Permissions::from_mode(0o644))?;
        self.0
            .persist(to)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot move the finished file to {}", to.display()))?;
        Ok(())
    }
}

impl Staged {
    /// The staged file as a path only, readable by everyone, for a caller that renames several
    /// files as one transaction (the output folder); deleted if dropped unrenamed.
    pub(crate) fn into_temp_path(self) -> Result<tempfile::TempPath> {
        fs_err::set_permissions(self.0.path(), std::fs::Permissions::from_mode(0o644))?;
        Ok(self.0.into_temp_path())
    }
}

/// Writes `data` to `to` in one step, creating its folder.
pub(crate) fn write_atomic(to: &Path, data: &[u8]) -> Result<()> {
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(dir)?;
    stage(dir, data)?.commit(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let to = d.path().join("sub/out.txt");
        write_atomic(&to, b"one").unwrap();
        write_atomic(&to, b"two").unwrap();
        assert_eq!(fs_err::read(&to).unwrap(), b"two");
        let mode = fs_err::metadata(&to).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = fs_err::read_dir(to.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.txt"]);
    }

    #[test]
    fn a_staged_file_not_committed_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        drop(stage(d.path(), b"x").unwrap());
        assert_eq!(fs_err::read_dir(d.path()).unwrap().count(), 0);
    }
}
