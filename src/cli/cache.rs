//! `layerbuild cache dir|size|clean`: show the cache root, what it holds, and empty it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

use crate::support::cache;

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the cache folder: LAYERBUILD_CACHE, else $XDG_CACHE_HOME/layerbuild, else ~/.cache/layerbuild.
    Dir,
    /// Print how much the cache holds, in all and per part (wheels, pyc, collector...).
    Size {
        /// Print the sizes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Empty the cache; refuses a folder layerbuild did not tag, and a cache a running command uses.
    Clean,
}

pub fn run(command: &CacheCommand) -> Result<ExitCode> {
    let root = cache::dir()?;
    match command {
        CacheCommand::Dir => println!("{}", root.display()),
        CacheCommand::Size { json } => size(&root, *json)?,
        CacheCommand::Clean => clean(&root)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes and files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    bytes: u64,
    files: u64,
}

impl Usage {
    fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.files += 1;
    }

    fn human(&self) -> String {
        let s = if self.files == 1 { "" } else { "s" };
        format!(
            "{} in {} file{s}",
            crate::support::progress::bytes(self.bytes),
            self.files
        )
    }
}

/// The whole cache and each top-level folder in it (files at the top count in the total only).
fn measure(root: &Path) -> Result<(Usage, BTreeMap<String, Usage>)> {
    let mut total = Usage::default();
    let mut parts: BTreeMap<String, Usage> = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.with_context(|| format!("cannot list {}", root.display()))?;
        if !e.file_type().is_file() {
            continue;
        }
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        total.add(len);
        let rel = e.path().strip_prefix(root).expect("walkdir stays below its root");
        let mut parts_of = rel.components();
        if let (Some(first), Some(_)) = (parts_of.next(), parts_of.next()) {
            parts
                .entry(first.as_os_str().to_string_lossy().into_owned())
                .or_default()
                .add(len);
        }
    }
    Ok((total, parts))
}

fn size(root: &Path, json: bool) -> Result<()> {
    let (total, parts) = if root.is_dir() {
        measure(root)?
    } else {
        Default::default()
    };
    if json {
        let parts: serde_json::Map<String, serde_json::Value> = parts
            .iter()
            .map(|(k, u)| (k.clone(), json!({"bytes": u.bytes, "files": u.files})))
            .collect();
        let v = json!({"root": root, "bytes": total.bytes, "files": total.files, "parts": parts});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if total.files == 0 {
        println!("{}: empty (no cache yet)", root.display());
        return Ok(());
    }
    println!("{}: {}", root.display(), total.human());
    let mut parts: Vec<(String, Usage)> = parts.into_iter().collect();
    parts.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
    let width = parts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (name, usage) in parts {
        println!("  {name:<width$}  {}", usage.human());
    }
    Ok(())
}

fn clean(root: &Path) -> Result<()> {
    if !root.exists() {
        println!("{}: nothing to clean (no cache yet)", root.display());
        return Ok(());
    }
    if !cache::is_ours(root) {
        bail!(
            "cache clean: {} is not a layerbuild cache (no {} written by layerbuild): check LAYERBUILD_CACHE and XDG_CACHE_HOME, or remove the folder yourself",
            root.display(),
            cache::TAG_FILE
        );
    }
    let Some(_alone) = cache::hold_alone(root)? else {
        bail!(
            "cache clean: {} is in use by a running layerbuild: try again when it has finished",
            root.display()
        );
    };
    let (total, _) = measure(root)?;
    for e in fs_err::read_dir(root)? {
        let e = e?;
        let name = e.file_name();
        if name == cache::TAG_FILE || name == cache::LOCK_FILE {
            continue;
        }
        remove(&e.path())?;
    }
    println!("emptied {} ({} removed)", root.display(), total.human());
    Ok(())
}

/// Removes a file or a folder; folders left read-only (smoke's layer copies) are opened up first.
fn remove(path: &Path) -> Result<()> {
    let meta = fs_err::symlink_metadata(path)?;
    if !meta.is_dir() {
        return fs_err::remove_file(path).map_err(Into::into);
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    for e in walkdir::WalkDir::new(path).into_iter().filter_map(|e| e.ok()) {
        if e.file_type().is_dir() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
    std::fs::remove_dir_all(path).with_context(|| format!("cannot remove {}: check its permissions", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_counts_every_file_and_groups_by_top_folder() {
        let d = tempfile::tempdir().unwrap();
        let w = |rel: &str, n: usize| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, vec![0u8; n]).unwrap();
        };
        w("wheels/a/x.whl", 10);
        w("wheels/b/y.whl", 5);
        w("pyc/z", 1);
        w("CACHEDIR.TAG", 7);
        let (total, parts) = measure(d.path()).unwrap();
        assert_eq!(total, Usage { bytes: 23, files: 4 });
        assert_eq!(parts["wheels"], Usage { bytes: 15, files: 2 });
        assert_eq!(parts["pyc"], Usage { bytes: 1, files: 1 });
        assert_eq!(parts.len(), 2);
    }
}
