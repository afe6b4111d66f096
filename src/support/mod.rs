//! Plumbing under every stage: the cache folder, atomic writes, progress display.

pub(crate) mod cache;
pub(crate) mod fs;
pub(crate) mod progress;
