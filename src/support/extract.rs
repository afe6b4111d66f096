//! The one way layerbuild unpacks a zip it did not write, to disk or to memory: every name is
//! enclosed in the target folder, no symlink is ever created or followed, declared sizes are
//! capped and enforced while the data streams, modes are masked and special bits refused.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::check::zipcanon;
use crate::model::lambda;
use crate::support::input;
use crate::support::text::{show, show_bytes};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;
const SPECIAL_BITS: u32 = 0o7000;

/// How much one unpacking may write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub entry_bytes: u64,
    pub total_bytes: u64,
    pub entries: usize,
}

/// A layer: what Lambda itself unpacks at most.
pub(crate) const LAYER: Limits = Limits {
    entry_bytes: lambda::UNZIPPED_BYTES,
    total_bytes: lambda::UNZIPPED_BYTES,
    entries: 200_000,
};

/// The longest entry name unpacked: under /opt it must still fit Linux's PATH_MAX (4096 with
/// its NUL), or Lambda's runtime could not open it by name.
pub(crate) const MAX_NAME_BYTES: usize = 4096 - "/opt/".len() - 1;

/// No budget: for a caller that holds the listing to limits of its own, naming what is to blame.
pub(crate) const UNCAPPED: Limits = Limits {
    entry_bytes: u64::MAX,
    total_bytes: u64::MAX,
    entries: usize::MAX,
};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub limits: Limits,
    /// Keep setuid, setgid and sticky bits instead of refusing entries that have them.
    pub allow_special_bits: bool,
    /// Give up when unpacking is still going at this moment (a command's `--timeout`).
    pub deadline: Option<Instant>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: LAYER,
            allow_special_bits: false,
            deadline: None,
        }
    }
}

impl Options {
    fn check_deadline(&self) -> Result<(), String> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err("unpacking did not finish in the time given (--timeout)".into()),
            _ => Ok(()),
        }
    }
}

/// Why a zip was not unpacked; tests and callers match on the zip and the entry.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{problem}", show(&zip.display().to_string()), entry.as_ref().map(|e| format!("entry `{e}`: ")).unwrap_or_default())]
pub(crate) struct ExtractError {
    pub zip: PathBuf,
    /// Already escaped for printing.
    pub entry: Option<String>,
    pub problem: String,
}

impl ExtractError {
    /// The message without the zip's name, for callers that name it themselves.
    pub(crate) fn detail(&self) -> String {
        let entry = self.entry.as_ref().map(|e| format!("entry `{e}`: "));
        format!("{}{}", entry.unwrap_or_default(), self.problem)
    }
}

/// What was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Extracted {
    pub files: usize,
    pub dirs: usize,
    pub bytes: u64,
}

/// Copies exactly `declared` bytes from `r` into `w`: a stream longer or shorter than it
/// declares is an error, found without reading more than one byte past the declaration.
pub(crate) fn stream_exact<R: Read, W: Write + ?Sized>(r: R, declared: u64, w: &mut W) -> io::Result<u64> {
    let n = io::copy(&mut r.take(declared.saturating_add(1)), w)?;
    if n != declared {
        let what = if n > declared {
            format!("holds more than the {declared} bytes it declares")
        } else {
            format!("holds {n} bytes but declares {declared}")
        };
        return Err(io::Error::new(io::ErrorKind::InvalidData, what));
    }
    Ok(n)
}

/// A writer that hashes what streams through it and keeps its first `keep` bytes (for a
/// header check), so a file is checked without being held in memory.
pub(crate) struct HashSink {
    sha: Sha256,
    head: Vec<u8>,
    keep: usize,
}

impl HashSink {
    pub(crate) fn new(keep: usize) -> HashSink {
        HashSink {
            sha: Sha256::new(),
            head: Vec::new(),
            keep,
        }
    }

    /// The sha256 (hex) and the first bytes.
    pub(crate) fn finish(self) -> (String, Vec<u8>) {
        (hex::encode(self.sha.finalize()), self.head)
    }
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sha.update(buf);
        let room = self.keep.saturating_sub(self.head.len()).min(buf.len());
        self.head.extend_from_slice(&buf[..room]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads one zip entry into memory: refused before reading when it declares more than `cap`,
/// the buffer sized by the declaration (never past `cap`), the declaration enforced.
pub(crate) fn read_entry<R: Read>(entry: &mut zip::read::ZipFile<'_, R>, cap: u64) -> Result<Vec<u8>, String> {
    let declared = entry.size();
    if declared > cap {
        return Err(format!("declares {declared} bytes, over the {cap}-byte limit"));
    }
    let mut data = Vec::with_capacity(input::capacity(declared, cap));
    stream_exact(entry, declared, &mut data).map_err(|e| e.to_string())?;
    Ok(data)
}

/// A zip layerbuild did not write, opened for reading entry by entry: one canonical archive
/// ([`zipcanon::scan`]), its declared sizes within `limits` before a byte is inflated, and each
/// entry held to its declaration while it streams. Every command that reads someone else's zip
/// reads it through this.
pub(crate) struct Opened<R: Read + io::Seek> {
    pub path: PathBuf,
    /// In central directory order: entry `i` is `zip.by_index(i)`.
    pub entries: Vec<zipcanon::Entry>,
    /// The zip file's own size.
    pub len: u64,
    zip: zip::ZipArchive<R>,
    inflater: inflate::Inflater,
}

/// Opens the zip at `zip_path` (a regular file) for reading within `limits`.
pub(crate) fn open(zip_path: &Path, limits: &Limits) -> Result<Opened<File>, ExtractError> {
    let fail = |problem: String| ExtractError {
        zip: zip_path.to_path_buf(),
        entry: None,
        problem,
    };
    let file = input::open_regular(zip_path).map_err(|e| fail(e.to_string()))?;
    let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    Opened::new(zip_path, file, len, limits)
}

impl<R: Read + io::Seek> Opened<R> {
    /// Reads `len` bytes of zip from `zip`; `path` names it in errors.
    pub(crate) fn new(path: &Path, mut zip: R, len: u64, limits: &Limits) -> Result<Opened<R>, ExtractError> {
        let fail = |problem: String| ExtractError {
            zip: path.to_path_buf(),
            entry: None,
            problem,
        };
        let entries = zipcanon::scan(&mut zip, len).map_err(|e| fail(e.to_string()))?;
        check_budget(&entries, limits).map_err(fail)?;
        let zip = zip::ZipArchive::new(zip).map_err(|e| fail(format!("not a readable zip ({e})")))?;
        Ok(Opened {
            path: path.to_path_buf(),
            entries,
            len,
            zip,
            inflater: inflate::Inflater::new(),
        })
    }

    fn fail(&self, i: usize, problem: String) -> ExtractError {
        entry_error(&self.path, &self.entries[i], problem)
    }

    /// Streams entry `i`'s data into `w`: exactly as many bytes as it declares, with the crc32
    /// it declares. The raw data comes from the zip reader, once it names the entry the scan
    /// saw there; it is inflated here (see [`inflate`]).
    pub(crate) fn stream(&mut self, i: usize, w: &mut dyn Write) -> Result<u64, ExtractError> {
        let (canon, path) = (&self.entries[i], &self.path);
        let mut raw = match self.zip.by_index_raw(i) {
            Ok(f) if f.name_raw() == canon.name.as_slice() => f,
            Ok(_) => {
                return Err(entry_error(
                    path,
                    canon,
                    "the zip reader sees another entry here".into(),
                ));
            }
            Err(e) => return Err(entry_error(path, canon, format!("cannot be read ({e})"))),
        };
        let deflated = canon.method == zipcanon::METHOD_DEFLATED;
        self.inflater
            .copy(&mut raw, deflated, canon.size, canon.crc32, w)
            .map_err(|e| entry_error(path, canon, format!("cannot be unpacked ({e})")))
    }

    /// Entry `i`'s sha256 (hex) and its first `keep` bytes, without holding the rest.
    pub(crate) fn hash(&mut self, i: usize, keep: usize) -> Result<(String, Vec<u8>), ExtractError> {
        let mut sink = HashSink::new(keep);
        self.stream(i, &mut sink)?;
        Ok(sink.finish())
    }

    /// Entry `i`'s data in memory: refused unread when it declares more than `cap`.
    pub(crate) fn read(&mut self, i: usize, cap: u64) -> Result<Vec<u8>, ExtractError> {
        let declared = self.entries[i].size;
        if declared > cap {
            return Err(self.fail(i, format!("declares {declared} bytes, over the {cap}-byte limit")));
        }
        let mut data = Vec::with_capacity(input::capacity(declared, cap));
        self.stream(i, &mut data)?;
        Ok(data)
    }

    /// Entry `i`'s stored time, as the zip reader decodes it.
    pub(crate) fn modified(&mut self, i: usize) -> Option<zip::DateTime> {
        self.zip.by_index_raw(i).ok()?.last_modified()
    }
}

fn entry_error(zip: &Path, e: &zipcanon::Entry, problem: String) -> ExtractError {
    ExtractError {
        zip: zip.to_path_buf(),
        entry: Some(show_bytes(&e.name)),
        problem,
    }
}

/// Unpacks `zip_path` into `dest`, which must not exist: it is created private, so nothing in
/// it can be a link planted by someone else, and every path is opened without following links.
pub(crate) fn extract(zip_path: &Path, dest: &Path, opts: &Options) -> Result<Extracted, ExtractError> {
    let fail = |entry: Option<String>, problem: String| ExtractError {
        zip: zip_path.to_path_buf(),
        entry,
        problem,
    };
    let mut zip = open(zip_path, &opts.limits)?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dest)
        .map_err(|e| fail(None, format!("cannot create {} ({e})", dest.display())))?;
    let root = open_dir(dest).map_err(|e| fail(None, format!("cannot open {} ({e})", dest.display())))?;
    let mut done = Extracted::default();
    let mut dir_modes: Vec<(String, u32)> = Vec::new();
    for i in 0..zip.entries.len() {
        opts.check_deadline().map_err(|p| fail(None, p))?;
        let canon = zip.entries[i].clone();
        let bad = |problem: String| fail(Some(show_bytes(&canon.name)), problem);
        let plan = Planned::of(&canon, opts).map_err(&bad)?;
        match plan.kind {
            Kind::Dir => {
                walk(&root, &plan.parts, true).map_err(|e| bad(e.to_string()))?;
                dir_modes.push((plan.name.clone(), plan.mode));
                done.dirs += 1;
            }
            Kind::File => {
                let (parent, leaf) = plan.parts.split_at(plan.parts.len() - 1);
                let dir = walk(&root, parent, true).map_err(|e| bad(e.to_string()))?;
                let out = create_file(&dir, leaf[0]).map_err(|e| bad(e.to_string()))?;
                let mut w = BufWriter::new(&out);
                done.bytes += zip.stream(i, &mut w)?;
                w.flush().map_err(|e| bad(format!("cannot be unpacked ({e})")))?;
                drop(w);
                out.set_permissions(std::fs::Permissions::from_mode(plan.mode))
                    .map_err(|e| bad(format!("cannot set its mode ({e})")))?;
                done.files += 1;
            }
        }
    }
    set_dir_modes(&root, dir_modes, opts).map_err(|p| fail(None, p))?;
    Ok(done)
}

enum Kind {
    File,
    Dir,
}

/// One entry's checked name, kind and mode.
struct Planned<'a> {
    name: String,
    parts: Vec<&'a str>,
    kind: Kind,
    mode: u32,
}

impl<'a> Planned<'a> {
    fn of(e: &'a zipcanon::Entry, opts: &Options) -> Result<Planned<'a>, String> {
        let name = e.name_str().ok_or("has a name that is not UTF-8")?;
        if name.len() > MAX_NAME_BYTES {
            return Err(format!(
                "has a {}-byte name, over the {MAX_NAME_BYTES} bytes a path under /opt can have (Linux's PATH_MAX)",
                name.len()
            ));
        }
        crate::check::rules::check_path(name).map_err(|x| format!("cannot be unpacked safely ({x})"))?;
        let is_dir_name = name.ends_with('/');
        let mode = e
            .unix_mode()
            .unwrap_or(if is_dir_name { S_IFDIR | 0o755 } else { S_IFREG | 0o644 });
        // A mode without a file type (some writers leave it out) goes by the name.
        let kind = match (mode & S_IFMT, is_dir_name) {
            (S_IFDIR | 0, true) => Kind::Dir,
            (S_IFREG | 0, false) => Kind::File,
            (S_IFLNK, _) => return Err("is a symlink: unpacking never creates links".into()),
            (S_IFDIR, false) | (S_IFREG, true) => {
                return Err("its mode and its name disagree on whether it is a folder".into());
            }
            (other, _) => return Err(format!("is neither a file nor a folder (type {other:o})")),
        };
        if mode & SPECIAL_BITS != 0 && !opts.allow_special_bits {
            return Err(format!(
                "has setuid, setgid or sticky bits (mode {:04o}): refusing to unpack them",
                mode & 0o7777
            ));
        }
        let keep = if opts.allow_special_bits { 0o7777 } else { 0o777 };
        let trimmed = name.trim_end_matches('/');
        Ok(Planned {
            name: trimmed.to_string(),
            parts: trimmed.split('/').collect(),
            kind,
            mode: mode & keep,
        })
    }
}

fn check_budget(entries: &[zipcanon::Entry], limits: &Limits) -> Result<(), String> {
    if entries.len() > limits.entries {
        return Err(format!(
            "holds {} entries, over the limit of {}",
            entries.len(),
            limits.entries
        ));
    }
    let mut total = 0u64;
    for e in entries {
        if e.size > limits.entry_bytes {
            return Err(format!(
                "entry `{}` declares {} bytes, over the {}-byte limit",
                show_bytes(&e.name),
                e.size,
                limits.entry_bytes
            ));
        }
        total = total.saturating_add(e.size);
    }
    if total > limits.total_bytes {
        return Err(format!(
            "declares {total} bytes unpacked, over the {}-byte limit",
            limits.total_bytes
        ));
    }
    Ok(())
}

/// The modes of the folders the zip lists, set last and deepest first, so a read-only folder
/// does not stop its own unpacking. Each is reached in as many steps as its name has parts,
/// so the work grows with the zip's names, not with their square; folders only implied by a
/// path got 0755 when they were made.
fn set_dir_modes(root: &File, mut explicit: Vec<(String, u32)>, opts: &Options) -> Result<(), String> {
    explicit.sort_by_key(|(d, _)| std::cmp::Reverse(d.matches('/').count()));
    for (d, mode) in explicit {
        opts.check_deadline()?;
        let parts: Vec<&str> = d.split('/').collect();
        let fd = walk(root, &parts, false).map_err(|e| format!("cannot open `{}` ({e})", show(&d)))?;
        fd.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot set the mode of `{}` ({e})", show(&d)))?;
    }
    Ok(())
}

fn cstr(part: &str) -> io::Result<CString> {
    CString::new(part).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

fn open_dir(path: &Path) -> io::Result<File> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string; the descriptor is owned by the File from here on.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens the folder `parts` below `root` one name at a time, never following a link;
/// creates missing folders when `create` is set, each 0755 once it is open (the unpacking's
/// own root stays private until the caller is done).
fn walk(root: &File, parts: &[&str], create: bool) -> io::Result<File> {
    let mut dir = root.try_clone()?;
    for part in parts {
        let c = cstr(part)?;
        let mut made = false;
        if create {
            // SAFETY: a valid C string and an open folder descriptor.
            made = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o700) } == 0;
            if !made && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: as above; O_NOFOLLOW refuses a symlink in place of the folder.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "`{}` is not a folder that can be entered without following a link ({e})",
                    show(part)
                ),
            ));
        }
        dir = unsafe { File::from_raw_fd(fd) };
        if made {
            dir.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(dir)
}

/// Creates a new file in `dir`: never one that exists, never through a link.
fn create_file(dir: &File, name: &str) -> io::Result<File> {
    let c = cstr(name)?;
    // SAFETY: a valid C string and an open folder descriptor.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("cannot be created ({e})")));
    }
    Ok(unsafe { File::from_raw_fd(fd) })
}

mod inflate;

#[cfg(test)]
mod tests;
