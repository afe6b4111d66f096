//! The types every stage shares: architectures, Python runtimes, layer entries, Lambda's limits.

pub(crate) mod arch;
pub(crate) mod entry;
pub(crate) mod lambda;
pub(crate) mod runtime;
