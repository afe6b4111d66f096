//! Turns command-line flags and the spec into a checked plan: which zips, from which inputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use zip::DateTime;

use crate::archive;
use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::interpreter::Sources;
use crate::python::tree::PythonOptions;
use crate::spec::{self, LoadedSpec, SourceKind};

/// Flags shared by `build` and `plan`, as typed.
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    pub spec: PathBuf,
    pub arch: Option<Arch>,
    pub out: PathBuf,
    pub collectors: Vec<(Arch, PathBuf)>,
    pub pythons: Vec<(Runtime, PathBuf)>,
    pub wheelhouse: Option<PathBuf>,
    pub offline: bool,
    pub no_bytecode: bool,
}

#[derive(Debug)]
pub struct Plan {
    pub spec: LoadedSpec,
    pub arches: Vec<Arch>,
    pub runtimes: Vec<Runtime>,
    pub out: PathBuf,
    pub collectors: BTreeMap<Arch, SourceKind>,
    pub python: PythonOptions,
    pub time: DateTime,
    pub cache: PathBuf,
}

impl Plan {
    pub fn new(input: &PlanInput) -> Result<Plan> {
        let spec = spec::load(&input.spec)?;
        let listed = spec.architectures();
        let arches = match input.arch {
            None => listed,
            Some(a) if listed.contains(&a) => vec![a],
            Some(a) => bail!(
                "{}: the spec does not list architecture {a}: add it to `architectures` or pick one of {}",
                input.spec.display(),
                listed.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
            ),
        };
        let runtimes = spec.spec.runtimes.clone();

        let mut collectors = BTreeMap::new();
        if let Some(c) = &spec.spec.collector {
            for &arch in &arches {
                let src = c.per_arch.get(&arch).or(c.source.as_ref());
                if let Some(src) = src {
                    collectors.insert(arch, src.kind().map_err(anyhow::Error::msg)?);
                }
            }
        }
        for (arch, path) in &input.collectors {
            if spec.spec.collector.is_none() {
                bail!(
                    "--collector {arch}={}: the spec has no `collector` section to override",
                    path.display()
                );
            }
            // A path on the command line is relative to where the user stands, not to the spec.
            let abs = std::env::current_dir()
                .context("cannot read the current folder")?
                .join(path);
            if arches.contains(arch) {
                collectors.insert(*arch, SourceKind::Path(abs));
            }
        }
        if spec.spec.collector.is_some()
            && let Some(arch) = arches.iter().find(|a| !collectors.contains_key(a))
        {
            bail!(
                "{}: no collector source for {arch}: set collector.source or collector.per_arch.{arch}, or pass --collector {arch}=PATH",
                spec.path.display()
            );
        }

        for (rt, _) in &input.pythons {
            if !runtimes.contains(rt) {
                bail!("--python {rt}=...: {rt} is not one of the spec's runtimes");
            }
        }
        let cache = crate::support::cache::dir();
        let flags: BTreeMap<Runtime, PathBuf> = input.pythons.iter().cloned().collect();
        let interpreters = runtimes
            .iter()
            .map(|&rt| {
                let spec_path = spec.spec.python.as_ref().and_then(|p| p.interpreters.get(&rt));
                let sources = Sources::new(
                    flags.get(&rt).cloned(),
                    spec_path.map(|p| spec.resolve(p)),
                    Some(cache.clone()),
                );
                (rt, sources)
            })
            .collect();
        let bytecode = match (&spec.spec.python, input.no_bytecode) {
            (_, true) => spec::Bytecode::Never,
            (Some(p), false) => p.bytecode,
            (None, false) => spec::Bytecode::Never,
        };
        let python = PythonOptions {
            wheelhouse: input.wheelhouse.clone(),
            offline: input.offline,
            cache: cache.clone(),
            interpreters,
            bytecode,
        };
        Ok(Plan {
            spec,
            arches,
            runtimes,
            out: input.out.clone(),
            collectors,
            python,
            time: archive::timestamp()?,
            cache,
        })
    }

    /// `aws-otel-python-arm64-ver-1-20-0.zip`.
    pub fn zip_name(&self, arch: Arch) -> String {
        format!(
            "{}-{}-ver-{}.zip",
            self.spec.spec.name,
            arch.adot_name(),
            self.spec.spec.version.replace('.', "-")
        )
    }
}
