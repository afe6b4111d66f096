//! The files a spec places as they are (`files:` and the collector's config), listed as entries.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::check::rules;
use crate::model::entry::{self, Content, Entry};
use crate::spec::FileSpec;

/// Lists one `files:` item: a file, or every file below a folder, sorted. Reads, never writes.
pub(crate) fn list(f: &FileSpec, spec_dir: &Path, section: &str) -> Result<Vec<Entry>> {
    let src = spec_dir.join(&f.src);
    let meta = match fs_err::symlink_metadata(&src) {
        Ok(m) => m,
        Err(e) => bail!(
            "{}: input named in `{section}` is missing ({}): create it or fix `src` in the spec",
            src.display(),
            e.kind()
        ),
    };
    let dest = f.dest.trim_end_matches('/');
    rules::check_path(dest).with_context(|| format!("{}: bad `dest` in `{section}`", src.display()))?;
    if meta.is_file() {
        let origin = src.display().to_string();
        return Ok(vec![Entry::file(dest, f.executable, Content::Path(src), origin)]);
    }
    if !meta.is_dir() {
        bail!(
            "{}: not a regular file or folder (a symlink?): layers hold regular files only",
            src.display()
        );
    }
    let mut entries = Vec::new();
    for e in walkdir::WalkDir::new(&src).sort_by_file_name() {
        let e = e.with_context(|| format!("cannot list {}", src.display()))?;
        let ft = e.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            bail!(
                "{}: not a regular file (a symlink?): layers hold regular files only",
                e.path().display()
            );
        }
        let rel = e.path().strip_prefix(&src).expect("walkdir stays below its root");
        let rel = rel
            .to_str()
            .with_context(|| format!("{}: file name is not UTF-8", e.path().display()))?;
        entries.push(Entry::file(
            entry::join(dest, rel),
            f.executable,
            Content::Path(e.path().to_path_buf()),
            e.path().display().to_string(),
        ));
    }
    Ok(entries)
}
