//! Where slow-to-make inputs (wheels, collector builds) are kept between builds.

use std::path::PathBuf;

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
