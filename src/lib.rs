//! layerbuild: builds AWS Lambda layer zips for the ADOT Python layer, deterministic and checked.
//!
//! The pipeline, one module per stage:
//!
//! ```text
//! cli      flags -> options                      (one file per command)
//! spec     layer.yaml -> typed Spec
//! plan     Spec + options -> Plan                (pure data: reads, never writes or runs)
//! build    executes a Plan, step by step, per architecture:
//!            gather   spec files; the collector (path, go build, zip); its config checked
//!            python   lock -> wheels fetched -> installed -> placed per runtime -> bytecode
//!            check    paths, duplicates, ELF machines, size     (rules shared with verify)
//!            archive  the zip, same bytes for same inputs
//!            sbom     the CycloneDX SBOM of the zip (also `layerbuild sbom ZIP` for any zip)
//!            manifest the manifest and checksums beside it
//!            verify   the zip re-read and re-checked before anything is moved into place
//! ```
//!
//! `model` holds the types every stage shares (architecture, runtime, layer entry), `support`
//! the plumbing (cache folder, atomic writes, progress). `smoke` runs a finished layer;
//! `deploy` publishes it, attaches it to a function, and diffs two layers.

mod archive;
mod build;
mod check;
mod cli;
mod deploy;
mod gather;
mod manifest;
mod model;
mod plan;
mod python;
mod sbom;
mod smoke;
mod spec;
mod support;
mod verify;

pub use cli::{Cli, argument_error, exit_code, output_of, run};
pub use support::text::terminal_safe;
