//! Collects every file one architecture's zip will hold: spec files, collector, Python tree.

pub(crate) mod collector;

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::check::rules;
use crate::manifest::{CollectorRecord, PackageRecord};
use crate::model::arch::Arch;
use crate::model::entry::{self, Content, Entry};
use crate::model::runtime::Runtime;
use crate::plan::Plan;
use crate::python::tree;
use crate::spec::FileSpec;

/// Everything one zip is made from.
#[derive(Debug, Default)]
pub struct Layer {
    pub entries: Vec<Entry>,
    pub collector: Option<CollectorRecord>,
    pub packages: Vec<PackageRecord>,
    pub bytecode_runtimes: Vec<Runtime>,
    pub notes: Vec<String>,
}

pub fn gather(plan: &Plan, arch: Arch) -> Result<Layer> {
    let spec = &plan.spec;
    let mut layer = Layer::default();
    for f in &spec.spec.files {
        add_file_spec(&mut layer.entries, f, &spec.dir, "files")?;
    }
    if let Some(c) = &spec.spec.collector {
        if let Some(cfg) = &c.config {
            add_file_spec(&mut layer.entries, cfg, &spec.dir, "collector.config")?;
            collector::config::check_file(&spec.dir.join(&cfg.src))?;
        }
        let source = plan
            .collectors
            .get(&arch)
            .expect("plan has a collector source for every arch");
        let got = collector::gather(source, &spec.dir, &c.dest, arch, &plan.cache)?;
        layer.entries.push(Entry::file(
            c.dest.clone(),
            true,
            Content::Bytes(got.data),
            got.record.source.clone(),
        ));
        layer.collector = Some(got.record);
    }
    if let Some(py) = &spec.spec.python {
        let tree = tree::gather(py, &spec.dir, arch, &plan.runtimes, &plan.python)?;
        let own = tree::bytecode_for_files(&layer.entries, &py.dest, &tree.bytecode_runtimes, &plan.python)?;
        layer.entries.extend(own);
        layer.entries.extend(tree.entries);
        layer.packages = tree.packages;
        layer.bytecode_runtimes = tree.bytecode_runtimes;
        layer.notes = tree.notes;
    }
    Ok(layer)
}

fn add_file_spec(entries: &mut Vec<Entry>, f: &FileSpec, spec_dir: &Path, section: &str) -> Result<()> {
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
        entries.push(Entry::file(
            dest,
            f.executable,
            Content::Path(src.clone()),
            src.display().to_string(),
        ));
        return Ok(());
    }
    if !meta.is_dir() {
        bail!(
            "{}: not a regular file or folder (a symlink?): layers hold regular files only",
            src.display()
        );
    }
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
    Ok(())
}
