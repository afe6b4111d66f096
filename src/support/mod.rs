//! Plumbing under every stage: the cache folder, atomic writes, progress display, usage errors,
//! failed programs' output, and the guards for input layerbuild did not make (files, zips, text)
//! and for its output folder.

pub(crate) mod cache;
pub(crate) mod date;
pub(crate) mod extract;
pub(crate) mod fs;
pub(crate) mod input;
pub(crate) mod outdir;
pub(crate) mod proctree;
pub(crate) mod progress;
#[cfg(test)]
pub(crate) mod testenv;
pub(crate) mod text;
pub(crate) mod tool;
pub(crate) mod usage;
