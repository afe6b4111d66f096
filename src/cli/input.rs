//! Flags `build` and `plan` share: where the layer is described and which parts to build.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::check::elf;
use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::plan::Options;
use crate::support::usage::usage;

/// Where the layer is described and which parts of it to build.
#[derive(Debug, Args, Clone)]
pub(super) struct InputArgs {
    /// Architecture to build: x86_64 (or amd64), arm64 (or aarch64), or all the spec lists.
    #[arg(long, value_name = "ARCH", default_value = "all", value_parser = parse_arch_choice)]
    arch: ArchChoice,
    /// The layer spec; paths inside it are relative to its folder.
    #[arg(long, value_name = "PATH", default_value = "layer.yaml")]
    spec: PathBuf,
    /// Use this collector binary for one architecture instead of the spec's source (repeatable).
    #[arg(long, value_name = "ARCH=PATH", value_parser = parse_collector)]
    collector: Vec<(Arch, PathBuf)>,
    /// Python interpreter for one runtime's bytecode, e.g. python3.9=/usr/bin/python3.9 (repeatable).
    #[arg(long, value_name = "RUNTIME=PATH", value_parser = parse_python)]
    python: Vec<(Runtime, PathBuf)>,
    /// Take wheels from this folder only, never from the package index.
    #[arg(long, value_name = "DIR")]
    wheelhouse: Option<PathBuf>,
    /// Never touch the network: every wheel must already be in the cache or the wheelhouse.
    #[arg(long)]
    offline: bool,
    /// Ship no bytecode, even for runtimes whose interpreter is found.
    #[arg(long)]
    no_bytecode: bool,
    /// The folder every `files:` source must stay in (default: the spec's own folder).
    #[arg(long, value_name = "DIR")]
    source_root: Option<PathBuf>,
}

/// `--arch`: one architecture, or `all` the spec lists.
#[derive(Debug, Clone, Copy)]
pub(super) struct ArchChoice(Option<Arch>);

fn parse_arch_choice(s: &str) -> Result<ArchChoice, String> {
    if s == "all" {
        return Ok(ArchChoice(None));
    }
    s.parse()
        .map(|a| ArchChoice(Some(a)))
        .map_err(|e| format!("{e}, or all"))
}

/// `NAME=PATH`, the name parsed by `T`'s own parser.
fn parse_pair<T: std::str::FromStr<Err: std::fmt::Display>>(s: &str, example: &str) -> Result<(T, PathBuf), String> {
    let (name, path) = s.split_once('=').ok_or_else(|| format!("`{s}` is not {example}"))?;
    let name = name.parse().map_err(|e: T::Err| e.to_string())?;
    if path.is_empty() {
        return Err(format!("`{s}` has no path after `=`"));
    }
    Ok((name, PathBuf::from(path)))
}

fn parse_collector(s: &str) -> Result<(Arch, PathBuf), String> {
    parse_pair(s, "ARCH=PATH, e.g. arm64=bin/collector")
}

pub(super) fn parse_python(s: &str) -> Result<(Runtime, PathBuf), String> {
    parse_pair(s, "RUNTIME=PATH, e.g. python3.9=/usr/bin/python3.9")
}

impl InputArgs {
    /// The options, once every path a flag names is there: a missing one is a usage error that
    /// names the flag, not the spec or a file deep in the build.
    pub(super) fn options(&self, out: PathBuf) -> Result<Options> {
        require_spec(&self.spec)?;
        for (arch, path) in &self.collector {
            check_collector(*arch, path)?;
        }
        for (rt, path) in &self.python {
            require_python(*rt, path)?;
        }
        Ok(Options {
            spec: self.spec.clone(),
            arch: self.arch.0,
            out,
            collectors: self.collector.clone(),
            pythons: self.python.clone(),
            wheelhouse: self.wheelhouse.clone(),
            offline: self.offline,
            no_bytecode: self.no_bytecode,
            source_root: self.source_root.clone(),
        })
    }
}

/// The spec must exist: without it there is nothing to build (a usage error, exit 2).
pub(super) fn require_spec(spec: &Path) -> Result<()> {
    if spec.exists() {
        return Ok(());
    }
    Err(usage(format!(
        "{}: no such file: pass --spec PATH or run in the folder holding layer.yaml",
        spec.display()
    )))
}

/// `--python RUNTIME=PATH` must name something that exists; whether it runs is checked when used.
pub(super) fn require_python(rt: Runtime, path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    Err(usage(format!(
        "--python {rt}={}: no such file: give the path of a {rt} interpreter, or leave the flag out to find one on PATH",
        path.display()
    )))
}

/// `--collector ARCH=PATH`: the file must exist (else a usage error) and be an executable for
/// ARCH; either failure names the flag as typed.
fn check_collector(arch: Arch, path: &Path) -> Result<()> {
    let flag = format!("--collector {arch}={}", path.display());
    // Read as every input is: a regular file only (a FIFO or a device is refused before any
    // read), and no more than a layer can hold.
    let data = match crate::support::input::read(path, crate::support::input::FILE_CAP, "collector") {
        Ok(d) => d,
        Err(e) if e.is_not_found() => {
            return Err(usage(format!(
                "{flag}: no such file: give the path of a collector binary built for {arch}"
            )));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("{flag}: cannot read it"))),
    };
    if !elf::is_elf(&data) {
        anyhow::bail!("{flag}: not an ELF file: give a collector program built for {arch}");
    }
    let info = elf::check_arch(&data, arch).with_context(|| flag.clone())?;
    if !info.is_executable() {
        anyhow::bail!("{flag}: an ELF library, not an executable: give the collector program built for {arch}");
    }
    Ok(())
}
