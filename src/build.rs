//! Executes a plan: per architecture, run its steps in order, then check, archive and verify;
//! then put every file in place at once, so a failed build leaves nothing at the output paths.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::archive::{self, Archived};
use crate::check;
use crate::gather::collector;
use crate::manifest::{self, CollectorRecord, LayerInfo, LimitsInfo, Manifest, ManifestEntry, PackageRecord, ZipInfo};
use crate::model::arch::Arch;
use crate::model::entry::{Content, Entry};
use crate::model::runtime::Runtime;
use crate::plan::{LayerPlan, Plan, Step};
use crate::python::TreeFiles;
use crate::python::{compile, tree};
use crate::support::fs::{self, Staged};
use crate::support::progress::Progress;
use crate::verify;

/// One finished zip.
#[derive(Debug)]
pub(crate) struct Built {
    pub zip: PathBuf,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// Builds every zip of the plan; nothing lands at an output path unless all of them verified.
pub(crate) fn run(plan: &Plan, progress: &Progress) -> Result<Vec<Built>> {
    fs_err::create_dir_all(&plan.out).context("cannot create the output folder: check --out")?;
    let staged: Vec<Outputs> = plan
        .layers
        .par_iter()
        .map(|layer| stage(plan, layer, progress))
        .collect::<Result<_>>()?;
    let mut built = Vec::new();
    for s in staged {
        s.manifest.commit(&s.built.manifest_path)?;
        s.checksum.commit(&manifest::checksum_path(&s.built.zip))?;
        s.zip.commit(&s.built.zip)?;
        built.push(s.built);
    }
    write_sha256sums(&plan.out, &built)?;
    Ok(built)
}

/// What a layer's steps gathered.
#[derive(Debug, Default)]
struct Gathered {
    entries: Vec<Entry>,
    /// The Python tree, kept apart until its bytecode is in.
    tree: TreeFiles,
    collector: Option<CollectorRecord>,
    packages: Vec<PackageRecord>,
    bytecode_runtimes: Vec<Runtime>,
    notes: Vec<String>,
}

fn run_step(plan: &Plan, arch: Arch, step: &Step, got: &mut Gathered) -> Result<()> {
    match step {
        Step::Files(entries) => got.entries.extend(entries.iter().cloned()),
        Step::CheckConfig(path) => collector::config::check_file(path)?,
        Step::Collector { source, dest } => {
            let c = collector::gather(source, &plan.spec.dir, dest, arch, &plan.cache)?;
            let origin = c.record.source.clone();
            got.entries
                .push(Entry::file(dest.clone(), true, Content::Bytes(c.data), origin));
            got.collector = Some(c.record);
        }
        Step::Python(tree_plan) => {
            got.notes.extend(tree_plan.notes.iter().cloned());
            let tree = tree::install(tree_plan, &plan.cache, &mut got.notes)?;
            got.tree = tree.files;
            got.packages = tree.packages;
        }
        Step::Bytecode(bytecode_plan) => {
            let c = compile::run(bytecode_plan, &plan.cache, &mut got.tree, &got.entries, &mut got.notes)?;
            got.entries.extend(c.spec_files);
            got.bytecode_runtimes = c.runtimes;
        }
    }
    Ok(())
}

/// Outputs written to temp files in --out, waiting to be renamed into place.
struct Outputs {
    built: Built,
    zip: Staged,
    manifest: Staged,
    checksum: Staged,
}

fn stage(plan: &Plan, layer: &LayerPlan, progress: &Progress) -> Result<Outputs> {
    let arch = layer.arch;
    let failed = || format!("cannot build the {arch} layer");
    let bar = progress.step(format!("{arch}"));
    let mut got = Gathered::default();
    for step in &layer.steps {
        bar.set_message(step.doing());
        run_step(plan, arch, step, &mut got).with_context(failed)?;
    }
    let tree = std::mem::take(&mut got.tree);
    got.entries.extend(
        tree.into_iter()
            .map(|(path, (f, origin))| Entry::file(path, f.executable, Content::Bytes(f.data), origin)),
    );
    bar.set_message("checking");
    check::check(&got.entries, arch, plan.spec.spec.limits.unzipped_bytes).with_context(failed)?;

    bar.set_message(format!("compressing {} files", got.entries.len()));
    // Built in memory: it is hashed and verified next, so reading it back from disk is waste.
    let mut zip_bytes = std::io::Cursor::new(Vec::new());
    let listing = archive::write(
        &got.entries,
        plan.time,
        &mut zip_bytes,
        Some(&plan.cache.join("deflate")),
    )?;
    let bytes = zip_bytes.into_inner();
    let zip_path = plan.out.join(&layer.zip_name);
    let manifest = make_manifest(plan, layer, &bytes, &listing, &mut got);

    bar.set_message("verifying");
    let verified = verify::verify_bytes(&zip_path, &bytes, &manifest)
        .context("the zip just built fails verification (a layerbuild bug: please report it)")?;
    let outputs = Outputs {
        zip: fs::stage(&plan.out, &bytes)?,
        manifest: fs::stage(&plan.out, manifest::to_json(&manifest).as_bytes())?,
        checksum: fs::stage(
            &plan.out,
            manifest::checksum_line(&manifest.zip.sha256, &layer.zip_name).as_bytes(),
        )?,
        built: Built {
            manifest_path: manifest::manifest_path(&zip_path),
            zip: zip_path,
            manifest,
            warnings: verified.warnings,
            notes: got.notes,
        },
    };
    bar.finish_and_clear();
    Ok(outputs)
}

fn make_manifest(plan: &Plan, layer: &LayerPlan, bytes: &[u8], listing: &[Archived], got: &mut Gathered) -> Manifest {
    let sha256 = hex::encode(Sha256::digest(bytes));
    let limits = &plan.spec.spec.limits;
    let mut packages = std::mem::take(&mut got.packages);
    packages.sort();
    Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        layer: LayerInfo {
            name: plan.spec.spec.name.clone(),
            version: plan.spec.spec.version.clone(),
            arch: layer.arch.lambda_name().to_string(),
            runtimes: plan.runtimes.iter().map(|r| r.to_string()).collect(),
        },
        zip: ZipInfo {
            file: layer.zip_name.clone(),
            size: bytes.len() as u64,
            code_sha256: manifest::code_sha256(&sha256),
            sha256,
            unzipped_size: listing.iter().map(|a| a.size).sum(),
        },
        limits: LimitsInfo {
            unzipped_bytes: limits.unzipped_bytes,
            zipped_warning_bytes: limits.zipped_warning_bytes,
        },
        bytecode_runtimes: got.bytecode_runtimes.iter().map(|r| r.to_string()).collect(),
        packages,
        collector: got.collector.take(),
        entries: listing.iter().map(ManifestEntry::from_archived).collect(),
    }
}

/// `SHA256SUMS` for every zip in the folder, built now or earlier, sorted by name.
fn write_sha256sums(out: &Path, built: &[Built]) -> Result<()> {
    let mut names: Vec<String> = fs_err::read_dir(out)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".zip") && !n.starts_with('.'))
        .collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        let hex = match built.iter().find(|b| b.manifest.zip.file == name) {
            Some(b) => b.manifest.zip.sha256.clone(),
            None => hex::encode(Sha256::digest(fs_err::read(out.join(&name))?)),
        };
        text.push_str(&manifest::checksum_line(&hex, &name));
    }
    fs::write_atomic(&out.join("SHA256SUMS"), text.as_bytes())
}
