//! Where slow-to-make inputs (wheels, bytecode, collector builds, compressed entries) are kept
//! between builds, and the rules every read from there follows: the folder is private to its
//! user, and a hit counts only once its bytes hash to the name they are stored under.

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

    /// The blob a record names, and its note; `None` when either is missing or wrong.
    pub(crate) fn get_record(&self, record: &Path, cap: u64) -> Result<Option<(Vec<u8>, String)>> {
        let text = match input::read_to_string(record, 4096, "cache record") {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(_) => return Ok(None),
        };
        let line = text.trim_end_matches('\n');
        let (sha, note) = line.split_once(' ').unwrap_or((line, ""));
        Ok(self.get(sha, cap)?.map(|data| (data, note.to_string())))
    }
}

#[cfg(test)]
#[path = "cache/tests.rs"]
mod tests;
