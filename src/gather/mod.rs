//! Inputs that go into a layer as they are: the spec's files (listed when planning), and the
//! collector binary and its config (read, built and checked when building).

pub(crate) mod collector;
pub(crate) mod files;
