//! What a layer entry is, and the path and mode rules every zip entry must follow.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};

pub const MODE_DIR: u32 = 0o755;
pub const MODE_FILE: u32 = 0o644;
pub const MODE_EXEC: u32 = 0o755;

/// Where an entry's bytes come from.
#[derive(Clone, Debug)]
pub enum Content {
    Path(PathBuf),
    Bytes(Arc<[u8]>),
}

/// One file of the layer, before it is archived.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Path inside the zip, `/`-separated, no leading `/`.
    pub path: String,
    pub mode: u32,
    pub content: Content,
    /// Where it came from, for `plan` and error messages.
    pub origin: String,
}

impl Entry {
    pub fn file(path: impl Into<String>, executable: bool, content: Content, origin: impl Into<String>) -> Entry {
        let path = path.into();
        let mode = if executable || must_be_executable(&path) {
            MODE_EXEC
        } else {
            MODE_FILE
        };
        Entry {
            path,
            mode,
            content,
            origin: origin.into(),
        }
    }

    /// Bytes it will hold unzipped, without reading a file's content.
    pub fn size(&self) -> Result<u64> {
        match &self.content {
            Content::Bytes(b) => Ok(b.len() as u64),
            Content::Path(p) => Ok(fs_err::metadata(p)?.len()),
        }
    }

    pub fn read(&self) -> Result<Arc<[u8]>> {
        match &self.content {
            Content::Bytes(b) => Ok(b.clone()),
            Content::Path(p) => Ok(fs_err::read(p)?.into()),
        }
    }
}

/// Lambda starts every file in `extensions/` as a process: without the exec bit it fails at start.
pub fn must_be_executable(path: &str) -> bool {
    path.strip_prefix("extensions/")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// A path is safe to unpack under /opt: relative, no `..`, no empty or `.` parts, no backslash.
pub fn check_path(path: &str) -> Result<()> {
    let name = path.strip_suffix('/').unwrap_or(path);
    if name.is_empty() {
        bail!("empty path");
    }
    if name.starts_with('/') {
        bail!("`{path}` is absolute");
    }
    if name.contains('\\') || name.contains('\0') {
        bail!("`{path}` contains a backslash or NUL");
    }
    for part in name.split('/') {
        match part {
            "" | "." => bail!("`{path}` has an empty or `.` component"),
            ".." => bail!("`{path}` climbs out with `..`"),
            _ => {}
        }
    }
    Ok(())
}

/// Every folder that holds an entry, each once, as `a/`, `a/b/`.
pub fn parent_dirs<'a>(paths: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut dirs = std::collections::BTreeSet::new();
    for p in paths {
        let mut end = 0;
        while let Some(i) = p[end..].find('/') {
            end += i + 1;
            dirs.insert(p[..end].to_string());
        }
    }
    dirs.into_iter().collect()
}

/// Joins a zip folder and a relative path.
pub fn join(dir: &str, rel: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert!(check_path("python/otel_wrapper.py").is_ok());
        assert!(check_path("python/").is_ok());
        assert!(check_path("/opt/x").is_err());
        assert!(check_path("python/../x").is_err());
        assert!(check_path("a//b").is_err());
        assert!(check_path("a\\b").is_err());
        assert!(check_path("").is_err());
    }

    #[test]
    fn extensions_are_executable() {
        assert!(must_be_executable("extensions/collector"));
        assert!(!must_be_executable("extensions/"));
        assert!(!must_be_executable("extensions/sub/x"));
        assert!(!must_be_executable("python/extensions/x"));
        let e = Entry::file("extensions/collector", false, Content::Bytes(Arc::from(&b""[..])), "t");
        assert_eq!(e.mode, 0o755);
    }

    #[test]
    fn dirs_of_paths() {
        let d = parent_dirs(["a/b/c.py", "a/d.py", "e"].into_iter());
        assert_eq!(d, vec!["a/", "a/b/"]);
    }
}
