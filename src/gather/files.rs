//! The files a spec places as they are (`files:` and the collector's config), listed as entries.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::check::rules;
use crate::model::entry::{self, Content, Entry};
use crate::spec::{FileSpec, LoadedSpec};
use crate::support::text::show;

/// Lists one `files:` item: a file, or every file below a folder, sorted. Reads, never writes.
/// Its source must lie below `root` (the spec's folder unless `--source-root` names another)
/// once every link on the way is resolved, as a source that is itself a link is refused: a
/// spec someone else wrote cannot pack `/etc/shadow` or `../../.ssh/id_ed25519` into a layer.
pub(crate) fn list(f: &FileSpec, spec: &LoadedSpec, root: &Path, section: &str) -> Result<Vec<Entry>> {
    let src = spec.dir.join(&f.src);
    let item = || {
        format!(
            "{}: `{section}` entry `{}`",
            show(&spec.path.display().to_string()),
            show(&f.src.display().to_string())
        )
    };
    let meta = match fs_err::symlink_metadata(&src) {
        Ok(m) => m,
        Err(e) => bail!(
            "{}: the input is missing ({}): create it or fix `src` in the spec",
            item(),
            e.kind()
        ),
    };
    let dest = f.dest.trim_end_matches('/');
    rules::check_path(dest).with_context(|| format!("{}: bad `dest`", item()))?;
    if !meta.is_file() && !meta.is_dir() {
        bail!(
            "{}: not a regular file or folder (a symlink?): layers hold regular files only",
            item()
        );
    }
    let inside = std::fs::canonicalize(root)
        .and_then(|root| Ok((std::fs::canonicalize(&src)?, root)))
        .with_context(|| format!("{}: cannot resolve its path", item()))?;
    if !inside.0.starts_with(&inside.1) {
        bail!(
            "{}: the source is {}, outside {}, the folder the spec's sources must stay in: move it there, or pass --source-root with a folder that holds it",
            item(),
            show(&inside.0.display().to_string()),
            show(&inside.1.display().to_string())
        );
    }
    if meta.is_file() {
        let origin = src.display().to_string();
        return Ok(vec![Entry::file(dest, f.executable, Content::Path(src), origin)]);
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
