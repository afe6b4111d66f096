//! Executes a plan: per architecture, run its steps in order, then check, archive and verify;
//! then put every file in place at once, so a failed build leaves nothing at the output paths.

use std::path::{Path, PathBuf};

use tempfile::TempPath;

use anyhow::{Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::archive::{self, Archived};
use crate::check;
use crate::gather::collector;
use crate::manifest::{self, CollectorRecord, LayerInfo, LimitsInfo, Manifest, ManifestEntry, PackageRecord, ZipInfo};
use crate::model::arch::Arch;
use crate::model::entry::{Content, Entry};
use crate::model::lambda;
use crate::model::runtime::Runtime;
use crate::plan::{LayerPlan, Plan, Step};
use crate::python::TreeFiles;
use crate::python::select::TreePlan;
use crate::python::{compile, fetch, tree};
use crate::sbom;
use crate::support::cache;
use crate::support::input;
use crate::support::outdir::OutDir;
use crate::support::progress::{self, Progress};
use crate::verify;

/// One finished zip.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    pub zip: PathBuf,
    pub zip_name: String,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

/// Builds every zip of the plan; nothing lands at an output path unless all of them verified,
/// and then all of it lands or none (see [`OutDir`]).
pub(crate) fn run(plan: &Plan, progress: &Progress) -> Result<Vec<Built>> {
    cache::ensure_private(&plan.cache)?;
    let out = OutDir::open(&plan.out)?;
    let staged: Vec<Outputs> = plan
        .layers
        .par_iter()
        .map(|layer| stage(plan, &out, layer, progress))
        .collect::<Result<_>>()?;
    let built: Vec<Built> = staged.iter().map(|s| s.built.clone()).collect();
    let sums = sha256sums(&plan.out, &built)?;
    // Zips first, then what describes them: a reader that trusts a manifest or a checksum
    // file finds the zip it names already in place.
    let mut files = Vec::new();
    let mut described = Vec::new();
    for s in staged {
        files.push((s.zip, s.built.zip_name.clone()));
        described.push((s.manifest, file_name(&s.built.manifest_path)));
        described.push((s.checksum, file_name(&manifest::checksum_path(&s.built.zip))));
        described.push((s.sbom, file_name(&sbom::path(&s.built.zip))));
    }
    files.extend(described);
    files.push((out.stage(sums.as_bytes())?, "SHA256SUMS".to_string()));
    out.commit(files)?;
    Ok(built)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
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

/// Runs one step; the slow ones are progress stages that say what they fetched, built or reused.
fn run_step(plan: &Plan, arch: Arch, step: &Step, got: &mut Gathered, progress: &Progress) -> Result<()> {
    match step {
        Step::Files(entries) => got.entries.extend(entries.iter().cloned()),
        Step::CheckConfig(path) => collector::config::check_file(path)?,
        Step::Collector { source, dest } => {
            let stage = progress.stage(arch, "collector");
            stage.set_message(collector::describe(source, &plan.spec.dir));
            let c = collector::gather(source, &plan.spec.dir, dest, arch, &plan.cache)?;
            stage.done(&c.how);
            let origin = c.record.source.clone();
            let content = match cache::digest_of_hex(&c.record.sha256) {
                Some(sha) => Content::Hashed(c.data, sha),
                None => Content::Bytes(c.data),
            };
            got.entries.push(Entry::file(dest.clone(), true, content, origin));
            got.collector = Some(c.record);
        }
        Step::Python(tree_plan) => install_wheels(plan, arch, tree_plan, got, progress)?,
        Step::Bytecode(bytecode_plan) => {
            let stage = progress.stage(arch, "bytecode");
            stage.set_message(format!("compiling for {}", list(&bytecode_plan.runtimes)));
            let c = compile::run(bytecode_plan, &plan.cache, &mut got.tree, &got.entries, &mut got.notes)?;
            let outcome = if c.runtimes.is_empty() {
                "none: no interpreter found for any runtime".to_string()
            } else {
                format!(
                    "{}: {} compiled, {} from the cache",
                    list(&c.runtimes),
                    c.compiled,
                    c.reused
                )
            };
            got.entries.extend(c.spec_files);
            got.bytecode_runtimes = c.runtimes;
            stage.done(outcome);
        }
    }
    Ok(())
}

/// The wheels step as a stage that says how many wheels came from where.
fn install_wheels(
    plan: &Plan,
    arch: Arch,
    tree_plan: &TreePlan,
    got: &mut Gathered,
    progress: &Progress,
) -> Result<()> {
    let stage = progress.stage(arch, "wheels");
    let cached = tree_plan
        .wants
        .iter()
        .filter(|w| fetch::path(&plan.cache, &w.sha256, &w.file).is_file())
        .count();
    let missing = tree_plan.wants.len() - cached;
    let from = match tree_plan.sources.wheelhouse {
        Some(_) => "from the wheelhouse",
        None => "fetched",
    };
    stage.set_message(match (missing, &tree_plan.sources.wheelhouse) {
        (0, _) => format!("installing {}", tree_plan.wants.len()),
        (n, Some(_)) => format!(
            "copying {n} from the wheelhouse, then installing {}",
            tree_plan.wants.len()
        ),
        (n, None) => format!("pip download of {n}, then installing {}", tree_plan.wants.len()),
    });
    got.notes.extend(tree_plan.notes.iter().cloned());
    let tree = tree::install(tree_plan, &plan.cache, &mut got.notes)?;
    got.tree = tree.files;
    got.packages = tree.packages;
    let parts: Vec<String> = [(missing, from), (cached, "from the cache")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    let installed = format!("{} installed", tree_plan.wants.len());
    stage.done(if parts.is_empty() {
        installed
    } else {
        format!("{installed}: {}", parts.join(", "))
    });
    Ok(())
}

/// `python3.8, python3.9`.
fn list(items: &[impl std::fmt::Display]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Outputs written to temp files in --out, waiting to be renamed into place.
struct Outputs {
    built: Built,
    zip: TempPath,
    manifest: TempPath,
    checksum: TempPath,
    sbom: TempPath,
}

fn stage(plan: &Plan, out: &OutDir, layer: &LayerPlan, progress: &Progress) -> Result<Outputs> {
    let arch = layer.arch;
    let failed = || format!("cannot build the {arch} layer");
    let mut got = Gathered::default();
    for step in &layer.steps {
        run_step(plan, arch, step, &mut got, progress).with_context(failed)?;
    }
    let tree = std::mem::take(&mut got.tree);
    got.entries.extend(
        tree.into_iter()
            .map(|(path, (f, origin))| Entry::file(path, f.executable, Content::Hashed(f.data, f.sha256), origin)),
    );
    let limit = plan.spec.spec.limits.unzipped_bytes.min(lambda::UNZIPPED_BYTES);
    check::check(&got.entries, arch, limit).with_context(failed)?;

    let zip_path = plan.out.join(&layer.zip_name);
    let z = zip_verified(plan, layer, &mut got, progress).with_context(failed)?;
    Ok(Outputs {
        zip: out.stage(&z.bytes)?,
        manifest: out.stage(manifest::to_json(&z.manifest).as_bytes())?,
        checksum: out.stage(manifest::checksum_line(&z.manifest.zip.sha256, &layer.zip_name).as_bytes())?,
        sbom: out.stage(&z.sbom)?,
        built: Built {
            zip_name: layer.zip_name.clone(),
            manifest_path: manifest::manifest_path(&zip_path),
            zip: zip_path,
            manifest: z.manifest,
            warnings: z.warnings,
            notes: got.notes,
        },
    })
}

/// A layer zip with its manifest and SBOM, verified.
struct Zipped {
    bytes: Vec<u8>,
    /// Of `bytes`, hashed once for the manifest and the verify.
    sha256: String,
    manifest: Manifest,
    sbom: Vec<u8>,
    warnings: Vec<String>,
}

/// Zips and verifies the layer. Compressed files taken from the cache are proven by that
/// verify alone, which inflates and hashes every entry anyway; so when a zip that took any
/// fails it, the zip is made again with every file compressed afresh and the cache renewed.
fn zip_verified(plan: &Plan, layer: &LayerPlan, got: &mut Gathered, progress: &Progress) -> Result<Zipped> {
    let cache = plan.cache.join("deflate");
    let (z, reused) = zip_once(plan, layer, got, progress, Some(archive::Cache::Use(&cache)))?;
    let bug = "the zip just built fails verification (a layerbuild bug: please report it)";
    let e = match verify_zipped(plan, layer, z, progress) {
        Ok(z) => return Ok(z),
        Err(e) if reused > 0 => e,
        Err(e) => return Err(e.context(bug)),
    };
    got.notes.push(format!(
        "a file compressed in the cache did not verify ({e:#}): compressed every file again"
    ));
    let (z, _) = zip_once(plan, layer, got, progress, Some(archive::Cache::Renew(&cache)))?;
    verify_zipped(plan, layer, z, progress).context(bug)
}

/// The zip, manifest and SBOM made once; with how many files came from the cache.
fn zip_once(
    plan: &Plan,
    layer: &LayerPlan,
    got: &Gathered,
    progress: &Progress,
    cache: Option<archive::Cache>,
) -> Result<(Zipped, usize)> {
    let zipping = progress.stage(layer.arch, "zip");
    zipping.set_message(format!("compressing {} files", got.entries.len()));
    // Built in memory: it is hashed and verified next, so reading it back from disk is waste.
    let mut zip_bytes = std::io::Cursor::new(Vec::new());
    let listing = archive::write(&got.entries, plan.time, &mut zip_bytes, cache)?;
    let bytes = zip_bytes.into_inner();
    let reused = listing.iter().filter(|a| a.reused).count();
    zipping.done(format!(
        "{} files, {}: {} compressed, {reused} from the cache",
        got.entries.len(),
        progress::bytes(bytes.len() as u64),
        got.entries.len() - reused
    ));
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let mut manifest = make_manifest(plan, layer, &bytes, &sha256, &listing, got);
    let sbom = sbom::for_build(&manifest, &got.entries, plan.time)?;
    manifest.sbom = Some(sbom::record(&plan.out.join(&layer.zip_name), &sbom));
    let z = Zipped {
        bytes,
        sha256,
        manifest,
        sbom,
        warnings: Vec::new(),
    };
    Ok((z, reused))
}

fn verify_zipped(plan: &Plan, layer: &LayerPlan, mut z: Zipped, progress: &Progress) -> Result<Zipped> {
    let verifying = progress.stage(layer.arch, "verify");
    let verified = verify::verify_built(&plan.out.join(&layer.zip_name), &z.bytes, &z.sha256, &z.manifest)?;
    verifying.done(match verified.warnings.len() {
        0 => "ok".to_string(),
        n => format!("ok, {n} warning(s)"),
    });
    z.warnings = verified.warnings;
    Ok(z)
}

fn make_manifest(
    plan: &Plan,
    layer: &LayerPlan,
    bytes: &[u8],
    sha256: &str,
    listing: &[Archived],
    got: &Gathered,
) -> Manifest {
    let limits = &plan.spec.spec.limits;
    let mut packages = got.packages.clone();
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
            code_sha256: manifest::code_sha256(sha256),
            sha256: sha256.to_string(),
            unzipped_size: listing.iter().map(|a| a.size).sum(),
        },
        limits: LimitsInfo {
            unzipped_bytes: limits.unzipped_bytes,
            zipped_warning_bytes: limits.zipped_warning_bytes,
        },
        bytecode_runtimes: got.bytecode_runtimes.iter().map(|r| r.to_string()).collect(),
        packages,
        collector: got.collector.clone(),
        sbom: None,
        entries: listing.iter().map(ManifestEntry::from_archived).collect(),
    }
}

/// `SHA256SUMS`: the zips this build wrote, and every other zip in the folder that still has
/// the hash its own `.sha256` names (a stray or changed zip is left out), each with its SBOM
/// when it has one, sorted by name.
fn sha256sums(out: &Path, built: &[Built]) -> Result<String> {
    let mut names: Vec<String> = fs_err::read_dir(out)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".zip") && !n.starts_with('.'))
        .chain(built.iter().map(|b| b.zip_name.clone()))
        .collect();
    names.sort();
    names.dedup();
    // (file name, sha256): each zip, then its SBOM.
    let mut sums: Vec<(String, String)> = Vec::new();
    for name in names {
        let hex = match built.iter().find(|b| b.zip_name == name) {
            Some(b) => Some(b.manifest.zip.sha256.clone()),
            None => untouched_hash(out, &name),
        };
        if let Some(hex) = hex {
            sums.extend(sbom_sum(out, built, &name));
            sums.push((name, hex));
        }
    }
    sums.sort();
    Ok(sums
        .iter()
        .map(|(name, hex)| manifest::checksum_line(hex, name))
        .collect())
}

/// The SBOM beside zip `name` and its sha256: from this build's manifest, or, for an earlier
/// zip, when the file still has the hash its zip's manifest records.
fn sbom_sum(out: &Path, built: &[Built], name: &str) -> Option<(String, String)> {
    let zip = out.join(name);
    let sha256 = match built.iter().find(|b| b.zip_name == name) {
        Some(b) => b.manifest.sbom.as_ref()?.sha256.clone(),
        None => {
            let want = manifest::read(&manifest::manifest_path(&zip)).ok()?.sbom?.sha256;
            let got = input::sha256_file(&sbom::path(&zip)).ok()?;
            (got == want).then_some(got)?
        }
    };
    // Named after the zip, never after what a manifest says.
    Some((file_name(&sbom::path(&zip)), sha256))
}

/// The zip's hash when its own `.sha256` names exactly that hash.
fn untouched_hash(out: &Path, name: &str) -> Option<String> {
    let zip = out.join(name);
    let want = manifest::read_checksum(&manifest::checksum_path(&zip), name).ok()?;
    let got = input::sha256_file(&zip).ok()?;
    (got == want).then_some(got)
}
