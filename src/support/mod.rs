//! Plumbing under every stage: the cache folder, atomic writes, progress display, and the
//! guards for input layerbuild did not make (files, zips, text).

pub(crate) mod cache;
// Wired into the commands in the next steps; until then only their tests use them.
#[allow(dead_code)]
pub(crate) mod extract;
#[allow(dead_code)]
pub(crate) mod input;
pub(crate) mod fs;
pub(crate) mod progress;
#[allow(dead_code)]
pub(crate) mod text;
