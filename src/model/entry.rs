//! What a layer entry is: a path in the zip, its mode, and where its bytes come from.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::check::rules::{MODE_EXEC, MODE_FILE, must_be_executable};
use crate::support::input;

/// Where an entry's bytes come from.
#[derive(Clone, Debug)]
pub(crate) enum Content {
    Path(PathBuf),
    Bytes(Arc<[u8]>),
    /// Bytes with their sha256, computed from exactly these bytes where they were made (a
    /// wheel's RECORD check, the cache that proved them), so the archive does not hash them
    /// again. A wrong hash cannot ship: the finished zip is verified against it.
    Hashed(Arc<[u8]>, [u8; 32]),
}

/// One file of the layer, before it is archived.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// Path inside the zip, `/`-separated, no leading `/`.
    pub path: String,
    pub mode: u32,
    pub content: Content,
    /// Where it came from, for `plan` and error messages.
    pub origin: String,
}

impl Entry {
    pub(crate) fn file(
        path: impl Into<String>,
        executable: bool,
        content: Content,
        origin: impl Into<String>,
    ) -> Entry {
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
    pub(crate) fn size(&self) -> Result<u64> {
        match &self.content {
            Content::Bytes(b) | Content::Hashed(b, _) => Ok(b.len() as u64),
            Content::Path(p) => Ok(fs_err::metadata(p)?.len()),
        }
    }

    /// Its sha256 when already known, without reading or hashing anything.
    pub(crate) fn known_sha256(&self) -> Option<[u8; 32]> {
        match &self.content {
            Content::Hashed(_, sha) => Some(*sha),
            Content::Path(_) | Content::Bytes(_) => None,
        }
    }

    pub(crate) fn read(&self) -> Result<Arc<[u8]>> {
        match &self.content {
            Content::Bytes(b) | Content::Hashed(b, _) => Ok(b.clone()),
            Content::Path(p) => Ok(input::read(p, input::FILE_CAP, "layer file")?.into()),
        }
    }
}

/// Joins a zip folder and a relative path.
pub(crate) fn join(dir: &str, rel: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

/// Content in memory, for tests.
#[cfg(test)]
pub(crate) fn bytes(data: impl Into<Vec<u8>>) -> Content {
    Content::Bytes(Arc::from(data.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_stored_executable() {
        let e = Entry::file("extensions/collector", false, bytes(&b""[..]), "t");
        assert_eq!(e.mode, 0o755);
        assert_eq!(Entry::file("python/x.py", false, bytes(&b""[..]), "t").mode, 0o644);
        assert_eq!(join("python/", "a.py"), "python/a.py");
        assert_eq!(join("", "a.py"), "a.py");
    }
}
