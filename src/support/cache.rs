//! The cache root for slow-to-make inputs (wheels, bytecode, compressed entries, collector
//! builds, smoke's runtimes): where it is, the tag that marks it as ours, and the lock that
//! keeps `cache clean` away from commands still using it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::support::fs::write_atomic;

/// `$LAYERBUILD_CACHE`, else `$XDG_CACHE_HOME/layerbuild`, else `~/.cache/layerbuild`.
pub(crate) fn dir() -> PathBuf {
    if let Some(p) = std::env::var_os("LAYERBUILD_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("layerbuild");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("layerbuild")
}

/// The Cache Directory Tagging file: backup tools skip the folder, and `cache clean` only
/// empties a folder that holds it with our name in it.
pub(crate) const TAG_FILE: &str = "CACHEDIR.TAG";
const TAG_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55\n";
const TAG_BY_US: &str = "created by layerbuild";
/// Taken shared by every command that uses the cache, exclusively by `cache clean`.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Whether `root` is a cache layerbuild made (it holds our tag).
pub(crate) fn is_ours(root: &Path) -> bool {
    std::fs::read_to_string(root.join(TAG_FILE)).is_ok_and(|t| t.starts_with(TAG_SIGNATURE) && t.contains(TAG_BY_US))
}

/// A command's hold on the cache root; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct Hold {
    _lock: File,
}

/// Creates and tags the cache root if needed, then holds it shared for as long as the command
/// runs: other commands run alongside, `cache clean` waits its turn. Blocks while a clean runs.
pub(crate) fn hold(root: &Path) -> Result<Hold> {
    fs_err::create_dir_all(root)
        .with_context(|| "cannot create the cache folder: set LAYERBUILD_CACHE to a writable folder")?;
    if !root.join(TAG_FILE).exists() {
        write_tag(root)?;
    }
    let lock = open_lock(root)?;
    flock(&lock, libc::LOCK_SH).with_context(|| format!("cannot lock {}", root.join(LOCK_FILE).display()))?;
    Ok(Hold { _lock: lock })
}

/// The exclusive hold `cache clean` needs, or `None` while any other command holds the cache.
pub(crate) fn hold_alone(root: &Path) -> Result<Option<Hold>> {
    let lock = open_lock(root)?;
    match flock(&lock, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(Some(Hold { _lock: lock })),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot lock {}", root.join(LOCK_FILE).display())),
    }
}

fn open_lock(root: &Path) -> Result<File> {
    let path = root.join(LOCK_FILE);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot open {}: set LAYERBUILD_CACHE to a writable folder",
                path.display()
            )
        })
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a descriptor this File owns; no memory is shared with the kernel.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn write_tag(root: &Path) -> Result<()> {
    let text = format!(
        "{TAG_SIGNATURE}# This file is a cache directory tag {TAG_BY_US}: `layerbuild cache clean` empties this folder.\n"
    );
    // Atomic: a concurrent reader sees no tag or a whole one.
    write_atomic(&root.join(TAG_FILE), text.as_bytes()).with_context(|| {
        format!(
            "cannot tag the cache folder {}: set LAYERBUILD_CACHE to a writable folder",
            root.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_cache_is_tagged_and_cannot_be_held_alone() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("c");
        assert!(!is_ours(&root));
        let shared = hold(&root).unwrap();
        assert!(is_ours(&root));
        // Two shared holds at once are fine: builds run side by side.
        let second = hold(&root).unwrap();
        assert!(hold_alone(&root).unwrap().is_none());
        drop((shared, second));
        let alone = hold_alone(&root).unwrap();
        assert!(alone.is_some());
    }

    #[test]
    fn a_tag_from_another_program_is_not_ours() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(TAG_FILE), TAG_SIGNATURE).unwrap();
        assert!(!is_ours(d.path()));
    }
}
