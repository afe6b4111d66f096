//! Reading input files named by users, specs and locks: regular files only, refused before the
//! first byte is read (a FIFO never opens, `/dev/zero` never starts), and never past a cap.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::model::lambda;
use crate::support::text::show;

/// A layer spec or a collector config: a page of YAML.
pub(crate) const YAML_CAP: u64 = 1 << 20;
/// A lock of a few hundred pins with hashes is well under a megabyte.
pub(crate) const LOCK_CAP: u64 = 16 << 20;
/// A manifest lists every entry of a layer: thousands of short lines.
pub(crate) const MANIFEST_CAP: u64 = 64 << 20;
/// A checksum file is one line per zip.
pub(crate) const CHECKSUM_CAP: u64 = 1 << 20;
/// A zip read whole into memory (a wheel, a collector layer): more than a layer can hold.
pub(crate) const ARCHIVE_CAP: u64 = 2 * lambda::UNZIPPED_BYTES;
/// Any one file of a layer (a collector, a wheel's file): Lambda unpacks no more than this
/// for a function and all its layers, so nothing larger can fit.
pub(crate) const FILE_CAP: u64 = lambda::UNZIPPED_BYTES;

/// Failures tests and users tell apart; every one names the path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error("{}: not a regular file ({kind}): give the path of a file", show(&path.display().to_string()))]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{}: {size} bytes is over the {cap}-byte limit for {what}: this is not a {what} layerbuild wrote or reads",
        show(&path.display().to_string())
    )]
    TooBig {
        path: PathBuf,
        what: &'static str,
        size: u64,
        cap: u64,
    },
    #[error("{}: {what} is not UTF-8 text", show(&path.display().to_string()))]
    NotText { path: PathBuf, what: &'static str },
    #[error("{}: {source}", show(&path.display().to_string()))]
    Io { path: PathBuf, source: io::Error },
}

impl InputError {
    fn io(path: &Path, source: io::Error) -> InputError {
        InputError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the file is simply not there (callers often have a better message for that).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, InputError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading only if it is a regular file (symlinks to one are followed).
///
/// The open itself must not block: a FIFO without a writer would wait forever, so it is opened
/// non-blocking and refused by what the open descriptor is, which no rename can change.
pub(crate) fn open_regular(path: &Path) -> Result<File, InputError> {
    open_checked(path, 0)
}

/// [`open_regular`] for a file layerbuild keeps in a folder of its own (the cache's tag): a
/// symlink in its place is refused, not followed.
pub(crate) fn open_own(path: &Path) -> Result<File, InputError> {
    open_checked(path, libc::O_NOFOLLOW).map_err(|e| match e {
        InputError::Io { path, source } if source.raw_os_error() == Some(libc::ELOOP) => InputError::NotRegular {
            path,
            kind: "a symlink",
        },
        other => other,
    })
}

fn open_checked(path: &Path, flags: libc::c_int) -> Result<File, InputError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | flags)
        .open(path)
        .map_err(|e| InputError::io(path, e))?;
    let meta = file.metadata().map_err(|e| InputError::io(path, e))?;
    if !meta.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    // Back to blocking reads, which regular files ignore anyway, for anything that cares.
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    unsafe {
        let fd = file.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(file)
}

/// A buffer size for data that declares its length: never more than `cap`, whatever it says.
pub(crate) fn capacity(declared: u64, cap: u64) -> usize {
    usize::try_from(declared.min(cap)).unwrap_or(usize::MAX)
}

/// Reads a whole regular file of at most `cap` bytes; `what` names it in errors.
pub(crate) fn read(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    read_from(open_regular(path)?, path, cap, what)
}

/// [`read`] through [`open_own`]: no link followed.
pub(crate) fn read_own(path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    read_from(open_own(path)?, path, cap, what)
}

fn read_from(file: File, path: &Path, cap: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    let len = file.metadata().map_err(|e| InputError::io(path, e))?.len();
    let too_big = |size| InputError::TooBig {
        path: path.to_path_buf(),
        what,
        size,
        cap,
    };
    if len > cap {
        return Err(too_big(len));
    }
    let mut data = Vec::with_capacity(capacity(len, cap));
    // One byte past the cap tells a file that grew while it was read.
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| InputError::io(path, e))?;
    if data.len() as u64 > cap {
        return Err(too_big(data.len() as u64));
    }
    Ok(data)
}

/// [`read`] for text.
pub(crate) fn read_to_string(path: &Path, cap: u64, what: &'static str) -> Result<String, InputError> {
    String::from_utf8(read(path, cap, what)?).map_err(|_| InputError::NotText {
        path: path.to_path_buf(),
        what,
    })
}

/// The sha256 of a regular file, read in pieces (a zip need not fit in memory).
pub(crate) fn sha256_file(path: &Path) -> Result<String, InputError> {
    let mut file = open_regular(path)?;
    sha256_of(&mut file).map_err(|e| InputError::io(path, e))
}

/// The sha256 (hex) of everything `r` reads from where it stands, in pieces.
pub(crate) fn sha256_of(r: &mut impl Read) -> io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::time::{Duration, Instant};

    #[test]
    fn regular_files_are_read_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        std::fs::write(&p, b"hello").unwrap();
        assert_eq!(read(&p, 5, "test file").unwrap(), b"hello");
        assert_eq!(read_to_string(&p, 10, "test file").unwrap(), "hello");
        assert_eq!(
            sha256_file(&p).unwrap(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let e = read(&p, 4, "test file").unwrap_err();
        assert!(matches!(e, InputError::TooBig { size: 5, cap: 4, .. }), "{e}");
        assert!(e.to_string().contains("a.txt"), "{e}");
        std::fs::write(&p, b"\xff").unwrap();
        assert!(matches!(
            read_to_string(&p, 10, "test file"),
            Err(InputError::NotText { .. })
        ));
        let missing = read(&d.path().join("none"), 10, "test file").unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fifo");
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = Instant::now();
        let e = read(&p, 10, "test file").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(e, InputError::NotRegular { kind: "a FIFO", .. }), "{e}");
        assert!(e.to_string().contains("regular file"), "{e}");
    }

    #[test]
    fn devices_and_folders_are_refused_before_reading() {
        let e = read(Path::new("/dev/zero"), 1 << 30, "test file").unwrap_err();
        assert!(
            matches!(
                e,
                InputError::NotRegular {
                    kind: "a character device",
                    ..
                }
            ),
            "{e}"
        );
        let d = tempfile::tempdir().unwrap();
        let e = read(d.path(), 10, "test file").unwrap_err();
        assert!(matches!(e, InputError::NotRegular { kind: "a folder", .. }), "{e}");
    }

    #[test]
    fn own_files_are_never_reached_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::write(&real, b"x").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read(&link, 10, "test file").unwrap(), b"x");
        let e = read_own(&link, 10, "test file").unwrap_err();
        assert!(matches!(e, InputError::NotRegular { kind: "a symlink", .. }), "{e}");
        assert_eq!(read_own(&real, 10, "test file").unwrap(), b"x");
        let e = read_own(Path::new("/dev/zero"), 10, "test file").unwrap_err();
        assert!(matches!(e, InputError::NotRegular { .. }), "{e}");
    }

    #[test]
    fn declared_sizes_never_size_a_buffer_past_the_cap() {
        assert_eq!(capacity(1 << 62, 1024), 1024);
        assert_eq!(capacity(u64::MAX, 10), 10);
        assert_eq!(capacity(7, 1024), 7);
    }
}
