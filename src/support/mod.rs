//! Plumbing under every stage: the cache folder, atomic writes, progress display, usage errors.

pub(crate) mod cache;
pub(crate) mod fs;
pub(crate) mod progress;
pub(crate) mod usage;
