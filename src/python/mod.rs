//! The layer's Python tree: planned from the lock alone (`select`), then at build time fetched
//! (`fetch`), installed (`wheel`), placed per runtime (`place`, `tree`) and compiled (`compile`,
//! `bytecode`) with the interpreter `interpreter` finds. `lock` writes the lock in the first place.

mod bytecode;
pub(crate) mod compile;
pub(crate) mod debian_mirror;
pub(crate) mod debian_root;
pub(crate) mod fetch;
pub(crate) mod interpreter;
pub(crate) mod lock;
mod lockfile;
pub(crate) mod needs;
mod place;
pub(crate) mod select;
pub(crate) mod sizes;
pub(crate) mod tags;
pub(crate) mod tree;
pub(crate) mod upgrade;
pub(crate) mod wheel;

pub(crate) use place::TreeFiles;

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use interpreter::FindError;

/// Failures of the Python tree that tests and scripts tell apart.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeError {
    #[error(
        "no wheel of `{package}=={version}` suits {runtime} on {arch} (the lock has: {candidates}): run `layerbuild lock` again, or pin a version with a wheel for that target"
    )]
    NoWheel {
        package: String,
        version: String,
        runtime: Runtime,
        arch: Arch,
        candidates: String,
    },
    #[error(
        "two `*.dist-info` of `{package}` would be installed for {runtime} ({first} and {second}): keep one version of it in the lock"
    )]
    DuplicateDistInfo {
        package: String,
        runtime: Runtime,
        first: String,
        second: String,
    },
    #[error(
        "`{path}` is installed by both {first} and {second} with different content: remove one of them from the lock"
    )]
    Conflict {
        path: String,
        first: String,
        second: String,
    },
    #[error(
        "{source} (python.bytecode is `always`, so {runtime} needs bytecode): pass --python {runtime}=PATH, set python.interpreters, or run `layerbuild python fetch {runtime}` where a Debian suite has it"
    )]
    NoInterpreter { runtime: Runtime, source: FindError },
}

/// The folder a runtime's own packages go to; Lambda puts it on that runtime's `sys.path`.
pub(crate) fn runtime_site(dest: &str, rt: Runtime) -> String {
    format!("{dest}/lib/python{}/site-packages", rt.dotted())
}
