//! Hostile input (issues 14 and 25): zips, wheels, locks, specs, caches, output folders and extensions
//! made by an attacker, run through the binary. Helpers live in `tests/hostile/`.

#[path = "hostile/cache.rs"]
mod cache;
mod common;
#[cfg(feature = "publish")]
#[path = "hostile/deploy.rs"]
mod deploy;
// `common/wheels.rs` names the fake-ELF helpers `crate::elf`; `common` re-exports them.
use common as elf;
#[path = "hostile/inputs.rs"]
mod inputs;
#[path = "hostile/layer.rs"]
mod layer;
#[path = "hostile/mutation.rs"]
mod mutation;
#[path = "hostile/output.rs"]
mod output;
#[path = "hostile/pyfix.rs"]
mod pyfix;
#[path = "hostile/rawzip.rs"]
mod rawzip;
#[path = "hostile/readers.rs"]
mod readers;
#[path = "hostile/run.rs"]
mod run;
#[path = "hostile/smoke.rs"]
mod smoke;
#[path = "hostile/smoke_tree.rs"]
mod smoke_tree;
#[path = "hostile/sources.rs"]
mod sources;
#[path = "hostile/toolchains.rs"]
mod toolchains;
#[path = "hostile/verify.rs"]
mod verify;
#[path = "hostile/wheelin.rs"]
mod wheelin;
#[path = "common/wheels.rs"]
mod wheels;
