//! Turns the spec and the command-line options into a plan: per architecture, the steps that
//! build its zip. Making a plan reads the spec, the lock and the files the spec lists; it starts
//! no process and writes nothing, so `layerbuild plan` shows it as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use zip::DateTime;

use crate::archive;
use crate::gather::files;
use crate::model::arch::Arch;
use crate::model::entry::Entry;
use crate::model::runtime::Runtime;
use crate::python::compile::BytecodePlan;
use crate::python::interpreter;
use crate::python::select::{self, TreePlan};
use crate::spec::{self, Bytecode, LoadedSpec, SourceKind};
use crate::support::cache;
use crate::support::usage::usage;

/// Flags shared by `build` and `plan`, as typed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    pub spec: PathBuf,
    pub arch: Option<Arch>,
    pub out: PathBuf,
    pub collectors: Vec<(Arch, PathBuf)>,
    pub pythons: Vec<(Runtime, PathBuf)>,
    pub wheelhouse: Option<PathBuf>,
    pub offline: bool,
    pub no_bytecode: bool,
    /// The folder `files:` sources must stay in, instead of the spec's.
    pub source_root: Option<PathBuf>,
}

/// Everything a build will do, decided.
#[derive(Debug)]
pub(crate) struct Plan {
    pub spec: LoadedSpec,
    pub out: PathBuf,
    pub cache: PathBuf,
    pub time: DateTime,
    pub runtimes: Vec<Runtime>,
    pub layers: Vec<LayerPlan>,
}

/// One architecture's zip and the steps that make it, in order.
#[derive(Debug)]
pub(crate) struct LayerPlan {
    pub arch: Arch,
    pub zip_name: String,
    pub steps: Vec<Step>,
}

/// One step of a layer's build.
#[derive(Debug)]
pub(crate) enum Step {
    /// Files the spec places as they are.
    Files(Vec<Entry>),
    /// The collector's config, parsed and checked before it ships.
    CheckConfig(PathBuf),
    /// The collector binary, read or built from its source, into `dest`.
    Collector { source: SourceKind, dest: String },
    /// The locked wheels, fetched, installed and placed per runtime.
    Python(TreePlan),
    /// Checked-hash bytecode for the runtimes whose interpreter is found.
    Bytecode(BytecodePlan),
}

impl Plan {
    pub(crate) fn new(opts: &Options) -> Result<Plan> {
        let spec = spec::load(&opts.spec)?;
        let arches = arches(&spec, opts)?;
        let mut collectors = collectors(&spec, &arches, &opts.collectors)?;
        for (rt, path) in &opts.pythons {
            if !spec.spec.runtimes.contains(rt) {
                return Err(usage(format!(
                    "--python {rt}={}: {rt} is not one of the spec's runtimes ({}): add it to `runtimes` in {} or drop the flag",
                    path.display(),
                    list(&spec.spec.runtimes),
                    opts.spec.display()
                )));
            }
        }
        let cache = cache::dir()?;
        let time = archive::timestamp()?;
        let mut layers = Vec::new();
        for arch in arches {
            let steps = steps(&spec, arch, collectors.remove(&arch), opts, &cache)?;
            layers.push(LayerPlan {
                arch,
                zip_name: zip_name(&spec, arch),
                steps,
            });
        }
        Ok(Plan {
            runtimes: spec.spec.runtimes.clone(),
            spec,
            out: opts.out.clone(),
            cache,
            time,
            layers,
        })
    }
}

/// `aws-otel-python-arm64-ver-1-20-0.zip`.
fn zip_name(spec: &LoadedSpec, arch: Arch) -> String {
    format!(
        "{}-{}-ver-{}.zip",
        spec.spec.name,
        arch.adot_name(),
        spec.spec.version.replace('.', "-")
    )
}

/// The spec's architectures, or the one `--arch` picks among them.
fn arches(spec: &LoadedSpec, opts: &Options) -> Result<Vec<Arch>> {
    let listed = spec.architectures();
    match opts.arch {
        None => Ok(listed),
        Some(a) if listed.contains(&a) => Ok(vec![a]),
        Some(a) => Err(usage(format!(
            "--arch {a}: {} does not list {a}: pick one of {}, or add {a} to `architectures`",
            opts.spec.display(),
            list(&listed)
        ))),
    }
}

/// `x86_64, arm64`.
fn list(items: &[impl std::fmt::Display]) -> String {
    items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
}

/// Each architecture's collector source: `--collector`, else `per_arch`, else `source`.
fn collectors(spec: &LoadedSpec, arches: &[Arch], overrides: &[(Arch, PathBuf)]) -> Result<BTreeMap<Arch, SourceKind>> {
    let mut out = BTreeMap::new();
    let Some(c) = &spec.spec.collector else {
        if let Some((arch, path)) = overrides.first() {
            bail!(
                "--collector {arch}={}: the spec has no `collector` section to override",
                path.display()
            );
        }
        return Ok(out);
    };
    for &arch in arches {
        if let Some(src) = c.per_arch.get(&arch).or(c.source.as_ref()) {
            out.insert(arch, src.kind().map_err(anyhow::Error::msg)?);
        }
    }
    for (arch, path) in overrides {
        // A path on the command line is relative to where the user stands, not to the spec.
        let abs = std::env::current_dir()
            .context("cannot read the current folder")?
            .join(path);
        if arches.contains(arch) {
            out.insert(*arch, SourceKind::Path(abs));
        }
    }
    if let Some(arch) = arches.iter().find(|a| !out.contains_key(a)) {
        bail!(
            "{}: no collector source for {arch}: set collector.source or collector.per_arch.{arch}, or pass --collector {arch}=PATH",
            spec.path.display()
        );
    }
    Ok(out)
}

/// One architecture's steps: the spec's files, the collector, the Python tree, its bytecode.
fn steps(
    spec: &LoadedSpec,
    arch: Arch,
    collector: Option<SourceKind>,
    opts: &Options,
    cache: &Path,
) -> Result<Vec<Step>> {
    let mut listed = Vec::new();
    let root = opts.source_root.as_deref().unwrap_or(&spec.dir);
    for f in &spec.spec.files {
        listed.extend(files::list(f, spec, root, "files")?);
    }
    let mut steps = Vec::new();
    let mut after_files = Vec::new();
    if let Some(c) = &spec.spec.collector {
        if let Some(cfg) = &c.config {
            listed.extend(files::list(cfg, spec, root, "collector.config")?);
            after_files.push(Step::CheckConfig(spec.resolve(&cfg.src)));
        }
        let source = collector.expect("the plan has a collector source for every arch");
        after_files.push(Step::Collector {
            source,
            dest: c.dest.clone(),
        });
    }
    steps.push(Step::Files(listed));
    steps.extend(after_files);
    let Some(py) = &spec.spec.python else {
        return Ok(steps);
    };
    let sources = select::Sources {
        wheelhouse: opts.wheelhouse.clone(),
        offline: opts.offline,
    };
    let tree = select::plan(py, &spec.dir, arch, &spec.spec.runtimes, sources)?;
    let dest = tree.dest.clone();
    steps.push(Step::Python(tree));
    if py.bytecode != Bytecode::Never && !opts.no_bytecode {
        steps.push(Step::Bytecode(bytecode_plan(spec, dest, py.bytecode, opts, cache)));
    }
    Ok(steps)
}

/// `python.bytecode_runtimes`, else every runtime, in the spec's order.
fn bytecode_runtimes(spec: &LoadedSpec) -> Vec<Runtime> {
    let chosen = spec.spec.python.as_ref().and_then(|p| p.bytecode_runtimes.as_ref());
    spec.spec
        .runtimes
        .iter()
        .copied()
        .filter(|rt| chosen.is_none_or(|c| c.contains(rt)))
        .collect()
}

fn bytecode_plan(spec: &LoadedSpec, dest: String, mode: Bytecode, opts: &Options, cache: &Path) -> BytecodePlan {
    let flags: BTreeMap<Runtime, PathBuf> = opts.pythons.iter().cloned().collect();
    let configured = spec.spec.python.as_ref().map(|p| &p.interpreters);
    let interpreters = bytecode_runtimes(spec)
        .into_iter()
        .map(|rt| {
            let from_spec = configured.and_then(|c| c.get(&rt)).map(|p| spec.resolve(p));
            let sources = interpreter::Sources::new(flags.get(&rt).cloned(), from_spec, Some(cache.to_path_buf()));
            (rt, sources)
        })
        .collect();
    BytecodePlan {
        dest,
        runtimes: bytecode_runtimes(spec),
        always: mode == Bytecode::Always,
        interpreters,
    }
}
