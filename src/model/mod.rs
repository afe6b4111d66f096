//! The types every stage shares: architectures, Python runtimes, layer entries.

pub(crate) mod arch;
pub(crate) mod entry;
pub(crate) mod runtime;
