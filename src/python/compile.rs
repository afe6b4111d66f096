//! The bytecode step: `__pycache__/*.cpython-3X.pyc` beside every `.py` a runtime imports from
//! the layer, for each runtime whose interpreter is found (or must be, with `always`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::bytecode::{self, Source};
use super::interpreter::{self, FindError, Interpreter, Sources};
use super::place::TreeFiles;
use super::wheel::WheelFile;
use super::{TreeError, runtime_site};
use crate::model::entry::{Content, Entry};
use crate::model::runtime::Runtime;

/// Bytecode for one architecture's layer, decided.
#[derive(Debug, Clone)]
pub(crate) struct BytecodePlan {
    /// The Python tree's folder in the zip.
    pub dest: String,
    pub runtimes: Vec<Runtime>,
    /// `python.bytecode: always`: a runtime without an interpreter fails the build.
    pub always: bool,
    /// Where each runtime's interpreter is looked for.
    pub interpreters: BTreeMap<Runtime, Sources>,
}

/// What the step added besides the tree's own `.pyc`.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    /// Runtimes whose bytecode is in the layer.
    pub runtimes: Vec<Runtime>,
    /// Bytecode of the `.py` files the spec itself puts in the tree (the handler shim).
    pub spec_files: Vec<Entry>,
    /// `.py` files compiled now, and those whose `.pyc` came from the cache (all runtimes).
    pub compiled: usize,
    pub reused: usize,
}

/// Compiles the tree's `.py` files into `tree`, and the spec's own ones under `dest` into entries.
pub(crate) fn run(
    plan: &BytecodePlan,
    cache: &std::path::Path,
    tree: &mut TreeFiles,
    spec_files: &[Entry],
    notes: &mut Vec<String>,
) -> Result<Compiled> {
    let mut found = Vec::new();
    for &rt in &plan.runtimes {
        match interpreter::find(rt, &plan.interpreters[&rt]) {
            Ok(i) => found.push((rt, i)),
            Err(e @ FindError::Configured { .. }) => return Err(e.into()),
            Err(source) if plan.always => bail!(TreeError::NoInterpreter { runtime: rt, source }),
            Err(_) => notes.push(no_interpreter_note(rt)),
        }
    }
    let mut tally = Tally::default();
    compile_tree(plan, cache, &found, tree, &mut tally)?;
    let spec_files = compile_spec_files(&plan.dest, cache, &found, spec_files, &mut tally)?;
    Ok(Compiled {
        runtimes: found.into_iter().map(|(rt, _)| rt).collect(),
        spec_files,
        compiled: tally.compiled,
        reused: tally.total - tally.compiled,
    })
}

/// The one warning line of `bytecode: auto` for a runtime left without bytecode.
fn no_interpreter_note(rt: Runtime) -> String {
    let fetch = crate::python::debian_root::suite_for(rt)
        .map(|s| format!(", or `layerbuild python fetch {rt}` for Debian {}'s", s.name))
        .unwrap_or_default();
    format!("no {rt} interpreter found: no bytecode for it (pass --python {rt}=PATH{fetch})")
}

/// A runtime's `.pyc` files by zip path.
type Pycs = Vec<(String, bytecode::Pyc)>;

/// Sources handed to the compiler, and how many of them it compiled rather than found cached.
#[derive(Debug, Default)]
struct Tally {
    total: usize,
    compiled: usize,
}

/// Every `.py` a runtime can import: the shared tree and its own site-packages, not another's.
fn compile_tree(
    plan: &BytecodePlan,
    cache: &std::path::Path,
    found: &[(Runtime, Interpreter)],
    tree: &mut TreeFiles,
    tally: &mut Tally,
) -> Result<()> {
    let others: Vec<String> = plan
        .runtimes
        .iter()
        .map(|&r| format!("{}/", runtime_site(&plan.dest, r)))
        .collect();
    let compiled: Vec<(Runtime, Pycs, usize, usize)> = found
        .par_iter()
        .map(|(rt, interp)| -> Result<_> {
            let own = format!("{}/", runtime_site(&plan.dest, *rt));
            let chosen: Vec<(&String, &WheelFile)> = tree
                .iter()
                .filter(|(p, _)| p.ends_with(".py"))
                .filter(|(p, _)| p.starts_with(&own) || !others.iter().any(|o| p.starts_with(o.as_str())))
                .map(|(p, (f, _))| (p, f))
                .collect();
            let sources: Vec<Source> = chosen
                .iter()
                .map(|(p, f)| Source {
                    dfile: format!("/opt/{p}"),
                    data: f.data.clone(),
                    sha256: f.sha256,
                })
                .collect();
            let (pycs, fresh) = bytecode::compile(interp, &sources, cache)?;
            // A file this Python cannot compile is one it never imports (newer syntax).
            let out = chosen
                .iter()
                .zip(pycs)
                .filter_map(|((p, _), pyc)| Some((bytecode::pyc_path(p, *rt)?, pyc?)))
                .collect();
            Ok((*rt, out, sources.len(), fresh))
        })
        .collect::<Result<_>>()?;
    for (rt, pycs, total, fresh) in compiled {
        tally.total += total;
        tally.compiled += fresh;
        for (path, pyc) in pycs {
            let f = WheelFile {
                path: path.clone(),
                sha256: pyc.sha256,
                data: pyc.data,
                executable: false,
            };
            tree.insert(path, (f, format!("bytecode for {rt}")));
        }
    }
    Ok(())
}

/// The spec's own `.py` files in the tree are imported on every cold start too; unlike a
/// wheel's, each must compile for every runtime.
fn compile_spec_files(
    dest: &str,
    cache: &std::path::Path,
    found: &[(Runtime, Interpreter)],
    files: &[Entry],
    tally: &mut Tally,
) -> Result<Vec<Entry>> {
    let prefix = format!("{}/", dest.trim_matches('/'));
    let py: Vec<&Entry> = files
        .iter()
        .filter(|e| e.path.starts_with(&prefix) && e.path.ends_with(".py"))
        .collect();
    if py.is_empty() {
        return Ok(Vec::new());
    }
    let sources = py
        .iter()
        .map(|e| -> Result<Source> {
            let data = e.read()?;
            Ok(Source {
                dfile: format!("/opt/{}", e.path),
                sha256: Sha256::digest(&data).into(),
                data,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for (rt, interp) in found {
        let (pycs, fresh) = bytecode::compile(interp, &sources, cache)?;
        tally.total += sources.len();
        tally.compiled += fresh;
        for (e, pyc) in py.iter().zip(pycs) {
            match (bytecode::pyc_path(&e.path, *rt), pyc) {
                (Some(path), Some(pyc)) => out.push(Entry::file(
                    path,
                    false,
                    Content::Hashed(pyc.data, pyc.sha256),
                    format!("bytecode for {rt}"),
                )),
                _ => bail!("{}: {rt} cannot compile it: fix its syntax for {rt}", e.origin),
            }
        }
    }
    Ok(out)
}
