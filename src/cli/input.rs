//! Flags `build` and `plan` share: where the layer is described and which parts to build.

use std::path::PathBuf;

use clap::Args;

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::plan::Options;

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
    pub(super) fn options(&self, out: PathBuf) -> Options {
        Options {
            spec: self.spec.clone(),
            arch: self.arch.0,
            out,
            collectors: self.collector.clone(),
            pythons: self.python.clone(),
            wheelhouse: self.wheelhouse.clone(),
            offline: self.offline,
            no_bytecode: self.no_bytecode,
        }
    }
}
