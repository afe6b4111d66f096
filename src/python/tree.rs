//! The install step: fetches one architecture's planned wheels, installs each once on all cores,
//! and places them in the tree per runtime.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, bail};
use rayon::prelude::*;

use super::fetch::{self, Want};
use super::place::{self, TreeFiles};
use super::select::TreePlan;
use super::tags::{normalize, same_version};
use super::wheel::{self, Installed};
use crate::manifest::PackageRecord;

/// The installed tree, and what went into it.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub files: TreeFiles,
    pub packages: Vec<PackageRecord>,
}

/// Installs the tree `plan` describes; notes why any package went into per-runtime folders.
pub(crate) fn install(plan: &TreePlan, cache: &Path, notes: &mut Vec<String>) -> Result<Tree> {
    let wheels = fetch::ensure(
        cache,
        plan.sources.wheelhouse.as_deref(),
        plan.sources.offline,
        &plan.wants,
    )?;
    let installed = install_wheels(&plan.wants, &wheels)?;
    let placed = place::place(plan, &installed, notes)?;
    place::check_dist_infos(&plan.dest, &plan.runtimes, &placed)?;
    Ok(Tree {
        files: place::assemble(&plan.dest, &placed)?,
        packages: package_records(plan),
    })
}

/// Each wanted wheel installed in memory, keyed by its sha256; each must be what its pin says.
fn install_wheels(wants: &[Want], wheels: &BTreeMap<String, Vec<u8>>) -> Result<BTreeMap<String, Installed>> {
    wants
        .par_iter()
        .map(|w| -> Result<(String, Installed)> {
            let got = wheel::install(&w.file, &wheels[&w.sha256])?;
            if normalize(&got.name) != normalize(&w.package) || !same_version(&got.version, &w.version) {
                bail!(
                    "{}: holds {} {}, but the lock pins it as `{}=={}`: run `layerbuild lock` again",
                    w.file,
                    got.name,
                    got.version,
                    w.package,
                    w.version
                );
            }
            Ok((w.sha256.clone(), got))
        })
        .collect()
}

/// One record per wheel, with the runtimes that install it.
fn package_records(plan: &TreePlan) -> Vec<PackageRecord> {
    plan.wants
        .iter()
        .map(|w| PackageRecord {
            name: w.package.clone(),
            version: w.version.clone(),
            wheel: w.file.clone(),
            sha256: w.sha256.clone(),
            runtimes: plan
                .picks
                .iter()
                .filter(|(_, ps)| ps.iter().any(|p| p.sha256 == w.sha256))
                .map(|(rt, _)| rt.to_string())
                .collect(),
        })
        .collect()
}
