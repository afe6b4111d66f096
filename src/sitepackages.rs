//! Installs the locked Python packages into the layer's `python/` tree for one architecture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::arch::Arch;
use crate::layout::Entry;
use crate::manifest::PackageRecord;
use crate::runtime::Runtime;
use crate::spec::{Bytecode, PythonSpec};

/// How wheels are fetched and bytecode is compiled; from the command line and environment.
#[derive(Debug, Clone, Default)]
pub struct PythonOptions {
    pub wheelhouse: Option<PathBuf>,
    pub offline: bool,
    pub cache: PathBuf,
    /// `--python python3.9=PATH` and the spec's `interpreters`, the flag winning.
    pub interpreters: BTreeMap<Runtime, PathBuf>,
    pub bytecode: Bytecode,
}

/// The installed tree, as entries for the archive, and what went into it.
#[derive(Debug, Default)]
pub struct PythonTree {
    pub entries: Vec<Entry>,
    pub packages: Vec<PackageRecord>,
    pub bytecode_runtimes: Vec<Runtime>,
    /// Facts the user should see in `plan` and the build summary.
    pub notes: Vec<String>,
}

pub fn gather(
    spec: &PythonSpec,
    spec_dir: &Path,
    arch: Arch,
    runtimes: &[Runtime],
    opts: &PythonOptions,
) -> Result<PythonTree> {
    let _ = (spec_dir, arch, runtimes, opts);
    bail!(
        "{}: installing Python packages is not available in this build of layerbuild",
        spec.lock.display()
    )
}
