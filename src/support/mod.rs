//! Plumbing under every stage: the cache folder and progress display.

pub(crate) mod cache;
pub(crate) mod progress;
