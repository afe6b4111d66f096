//! The path and mode rules every zip entry follows; build applies them and verify re-checks them.

use anyhow::{Result, bail};

pub(crate) const MODE_DIR: u32 = 0o755;
pub(crate) const MODE_FILE: u32 = 0o644;
pub(crate) const MODE_EXEC: u32 = 0o755;

/// Lambda starts every file in `extensions/` as a process: without the exec bit it fails at start.
pub(crate) fn must_be_executable(path: &str) -> bool {
    path.strip_prefix("extensions/")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// A path is safe to unpack under /opt: relative, no `..`, no empty or `.` parts, no backslash.
pub(crate) fn check_path(path: &str) -> Result<()> {
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
pub(crate) fn parent_dirs<'a>(paths: impl Iterator<Item = &'a str>) -> Vec<String> {
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
    }

    #[test]
    fn dirs_of_paths() {
        let d = parent_dirs(["a/b/c.py", "a/d.py", "e"].into_iter());
        assert_eq!(d, vec!["a/", "a/b/"]);
    }
}
