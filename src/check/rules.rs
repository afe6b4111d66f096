//! The path and mode rules every zip entry follows; build applies them and verify re-checks them.

use anyhow::{Result, bail};

use crate::support::text::{needs_escape, show};

pub(crate) const MODE_DIR: u32 = 0o755;
pub(crate) const MODE_FILE: u32 = 0o644;
pub(crate) const MODE_EXEC: u32 = 0o755;

/// Lambda starts every file in `extensions/` as a process: without the exec bit it fails at start.
pub(crate) fn must_be_executable(path: &str) -> bool {
    path.strip_prefix("extensions/")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// A zip entry's unix mode (file type and permissions) is one a layer may have: folders 0755,
/// regular files 0644 or 0755, and 0755 for whatever Lambda starts as a process.
pub(crate) fn check_mode(path: &str, is_dir: bool, full_mode: u32) -> Result<(), String> {
    let kind = full_mode & 0o170000;
    let mode = full_mode & 0o7777;
    if mode & 0o7000 != 0 {
        return Err(format!(
            "mode {mode:04o} has setuid, setgid or sticky bits: Lambda would unpack them as they are"
        ));
    }
    if is_dir {
        if mode != MODE_DIR {
            return Err(format!(
                "folder mode is {mode:04o} but must be 0755 so the runtime can enter it"
            ));
        }
        return Ok(());
    }
    if kind != 0o100000 && kind != 0 {
        return Err(format!("is not a regular file (mode {full_mode:o})"));
    }
    if mode != MODE_FILE && mode != MODE_EXEC {
        return Err(format!("mode {mode:04o} is neither 0644 nor 0755"));
    }
    if must_be_executable(path) && mode != MODE_EXEC {
        return Err(format!(
            "mode {mode:04o} lacks the exec bit: Lambda cannot start an extension without it"
        ));
    }
    Ok(())
}

/// A path is safe to unpack under /opt: relative, no `..`, no empty or `.` parts, no backslash,
/// and no character a terminal acts on or that hides text (a newline, an escape, a bidi
/// override), which no file a layer needs has and which would forge lines wherever it is shown.
pub(crate) fn check_path(path: &str) -> Result<()> {
    let name = path.strip_suffix('/').unwrap_or(path);
    let shown = show(path);
    if name.is_empty() {
        bail!("empty path");
    }
    if name.starts_with('/') {
        bail!("`{shown}` is absolute");
    }
    if name.contains('\\') || name.contains('\0') {
        bail!("`{shown}` contains a backslash or NUL");
    }
    if name.chars().any(needs_escape) {
        bail!("`{shown}` contains a control or invisible character");
    }
    for part in name.split('/') {
        match part {
            "" | "." => bail!("`{shown}` has an empty or `.` component"),
            ".." => bail!("`{shown}` climbs out with `..`"),
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
        for hidden in ["a\u{1b}[2Kb", "a\nok", "a\u{202e}b", "a\u{9b}b"] {
            let e = check_path(hidden).unwrap_err().to_string();
            assert!(
                e.contains("control or invisible") && !e.chars().any(needs_escape),
                "{e}"
            );
        }
    }

    #[test]
    fn extensions_are_executable() {
        assert!(must_be_executable("extensions/collector"));
        assert!(!must_be_executable("extensions/"));
        assert!(!must_be_executable("extensions/sub/x"));
        assert!(!must_be_executable("python/extensions/x"));
    }

    #[test]
    fn mode_rules() {
        assert!(check_mode("python/", true, 0o40755).is_ok());
        assert!(check_mode("python/", true, 0o40700).unwrap_err().contains("0700"));
        assert!(check_mode("otel-instrument", false, 0o100755).is_ok());
        for special in [0o104755, 0o102755, 0o101755, 0o041755] {
            let e = check_mode("x/", special & 0o040000 != 0, special).unwrap_err();
            assert!(e.contains("setuid, setgid or sticky"), "{special:o}: {e}");
        }
        assert!(
            check_mode("a.py", false, 0o100600)
                .unwrap_err()
                .contains("neither 0644 nor 0755")
        );
        assert!(
            check_mode("extensions/collector", false, 0o100644)
                .unwrap_err()
                .contains("exec bit")
        );
        assert!(
            check_mode("fifo", false, 0o10644)
                .unwrap_err()
                .contains("not a regular file")
        );
    }

    #[test]
    fn dirs_of_paths() {
        let d = parent_dirs(["a/b/c.py", "a/d.py", "e"].into_iter());
        assert_eq!(d, vec!["a/", "a/b/"]);
    }
}
