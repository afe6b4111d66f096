//! Where slow-to-make inputs (wheels, bytecode, collector builds, compressed entries, smoke's
//! runtimes) are kept between builds, and the rules every use of it follows: the folder is
//! private to its user, a hit counts only once its bytes hash to the name they are stored under,
//! the tag marks it as ours, and a lock keeps `cache clean` away from commands still using it.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::support::fs::write_atomic;
use crate::support::input;

/// `$LAYERBUILD_CACHE`, else `$XDG_CACHE_HOME/layerbuild`, else `$HOME/.cache/layerbuild`.
/// XDG and HOME count only when absolute: a relative or empty one would put the cache wherever
/// the build happens to run, and the temp folder is shared. Commands that write to the cache
/// call [`ensure_private`] on it first.
pub(crate) fn dir() -> Result<PathBuf> {
    locate(
        std::env::var_os("LAYERBUILD_CACHE"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

fn locate(
    own: Option<std::ffi::OsString>,
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf> {
    if let Some(p) = own.filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let absolute = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(p) = absolute(xdg) {
        return Ok(p.join("layerbuild"));
    }
    if let Some(home) = absolute(home) {
        return Ok(home.join(".cache").join("layerbuild"));
    }
    bail!(
        "no folder for the cache: HOME is unset, empty or relative and XDG_CACHE_HOME is not an absolute path: set LAYERBUILD_CACHE (or HOME) to a folder of yours"
    )
}

/// Creates `dir` (0700) or, when it exists, makes sure it is ours and closes it to others.
pub(crate) fn ensure_private(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create the cache folder {}", dir.display())),
    }
    let meta = fs_err::symlink_metadata(dir)?;
    if !meta.is_dir() {
        bail!(
            "{}: the cache path is not a folder: set LAYERBUILD_CACHE to a folder",
            dir.display()
        );
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "{}: the cache folder belongs to user {}, not to you: set LAYERBUILD_CACHE to a folder of yours",
            dir.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The sha256 of `data`, lowercase hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Reads a cached file that must hash to `sha256`. A missing file is `None`; so is one whose
/// bytes do not match, which is removed, so it is made again rather than trusted.
pub(crate) fn read_checked(path: &Path, sha256: &str, cap: u64) -> Result<Option<Vec<u8>>> {
    let data = match input::read(path, cap, "cache entry") {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if sha256_hex(&data) != sha256 {
        eprintln!(
            "layerbuild: warning: {} does not match the hash it is stored under: discarded",
            path.display()
        );
        let _ = std::fs::remove_file(path);
        return Ok(None);
    }
    Ok(Some(data))
}

/// Content-addressed files under `<cache>/blobs`, each named by its own sha256, with small
/// records under other folders pointing at them.
#[derive(Debug, Clone)]
pub(crate) struct Blobs {
    root: PathBuf,
}

impl Blobs {
    pub(crate) fn new(cache: &Path) -> Blobs {
        Blobs {
            root: cache.join("blobs"),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.root.join(&sha256[..2]).join(sha256)
    }

    /// Stores `data`; returns its sha256.
    pub(crate) fn put(&self, data: &[u8]) -> Result<String> {
        let sha = sha256_hex(data);
        let path = self.path(&sha);
        if !path.is_file() {
            write_atomic(&path, data)?;
        }
        Ok(sha)
    }

    /// The blob named `sha256`, if present and still that content.
    pub(crate) fn get(&self, sha256: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        if !is_sha256(sha256) {
            return Ok(None);
        }
        read_checked(&self.path(sha256), sha256, cap)
    }

    /// Records that `key` (a file under the cache) now names the blob `sha256`, with a
    /// line of free text (e.g. a version) beside it.
    pub(crate) fn put_record(&self, record: &Path, sha256: &str, note: &str) -> Result<()> {
        write_atomic(record, format!("{sha256} {note}\n").as_bytes())
    }

    /// The blob a record names, with its note; `None` when either is missing or wrong.
    pub(crate) fn get_record(&self, record: &Path, cap: u64) -> Result<Option<Hit>> {
        let text = match input::read_to_string(record, 4096, "cache record") {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(_) => return Ok(None),
        };
        let line = text.trim_end_matches('\n');
        let (sha, note) = line.split_once(' ').unwrap_or((line, ""));
        Ok(self.get(sha, cap)?.map(|data| Hit {
            data,
            sha256: sha.to_string(),
            note: note.to_string(),
        }))
    }
}

impl Hit {
    /// The sha256 as bytes.
    pub(crate) fn digest(&self) -> [u8; 32] {
        digest_of_hex(&self.sha256).unwrap_or_else(|| Sha256::digest(&self.data).into())
    }
}

/// A lowercase hex sha256 as bytes; `None` when it is not one.
pub(crate) fn digest_of_hex(sha256: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    (is_sha256(sha256) && hex::decode_to_slice(sha256, &mut out).is_ok()).then_some(out)
}

/// A blob found by its record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub data: Vec<u8>,
    /// The blob's sha256, which its bytes were just hashed to: callers need not hash them again.
    pub sha256: String,
    pub note: String,
}

/// The Cache Directory Tagging file: backup tools skip the folder, and `cache clean` only
/// empties a folder that holds it with our name in it.
pub(crate) const TAG_FILE: &str = "CACHEDIR.TAG";
const TAG_SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55\n";
const TAG_BY_US: &str = "created by layerbuild";
/// Taken shared by every command that uses the cache, exclusively by `cache clean`.
pub(crate) const LOCK_FILE: &str = ".lock";

/// How long our tag can be: a line of signature and one of comment.
const TAG_CAP: u64 = 4096;

/// Whether `root` is a cache layerbuild made (it holds our tag: a small regular file, not a
/// link, a FIFO or a device, which are refused without being read).
pub(crate) fn is_ours(root: &Path) -> bool {
    input::read_own(&root.join(TAG_FILE), TAG_CAP, "cache tag").is_ok_and(|t| {
        t.starts_with(TAG_SIGNATURE.as_bytes()) && t.windows(TAG_BY_US.len()).any(|w| w == TAG_BY_US.as_bytes())
    })
}

/// A command's hold on the cache root; released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct Hold {
    _lock: File,
}

/// Creates and tags the cache root if needed, then holds it shared for as long as the command
/// runs: other commands run alongside, `cache clean` waits its turn. Blocks while a clean runs.
pub(crate) fn hold(root: &Path) -> Result<Hold> {
    ensure_private(root)?;
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

/// The lock file, opened without following a link (a link would create a file wherever it
/// points) and without blocking (a FIFO in its place has no reader); it must be a regular file.
fn open_lock(root: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot open {} (a symlink or FIFO in its place is refused): remove it, or set LAYERBUILD_CACHE to a writable folder",
                path.display()
            )
        })?;
    if !file.metadata()?.is_file() {
        bail!(
            "{}: not a regular file: remove it, layerbuild makes it again",
            path.display()
        );
    }
    Ok(file)
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
#[path = "cache/tests.rs"]
mod tests;

#[cfg(test)]
mod hold_tests {
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
