//! Plumbing under every stage: the cache folder, atomic writes, progress display, and the
//! guards for input layerbuild did not make (files, zips, text) and for its output folder.

// Wired into the commands in the next steps; until then only their tests use them.
#[allow(dead_code)]
pub(crate) mod cache;
#[allow(dead_code)]
pub(crate) mod extract;
pub(crate) mod fs;
#[allow(dead_code)]
pub(crate) mod input;
#[allow(dead_code)]
pub(crate) mod outdir;
#[allow(dead_code)]
pub(crate) mod proctree;
pub(crate) mod progress;
#[allow(dead_code)]
pub(crate) mod text;
