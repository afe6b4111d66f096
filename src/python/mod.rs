//! The layer's Python tree: the lock, the wheels it pins, their install per runtime, bytecode.

pub(crate) mod bytecode;
pub(crate) mod fetch;
pub(crate) mod interpreter;
pub(crate) mod lock;
pub(crate) mod lockfile;
pub(crate) mod tags;
pub(crate) mod tree;
pub(crate) mod wheel;
