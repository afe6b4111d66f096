//! What a layer holds, sorted out for its SBOM: Python distributions (matched to the wheels
//! they came from when the build knows them), programs with their Go build info, and the
//! layer's own files (everything no distribution owns).

use std::collections::{BTreeSet, HashSet};

use super::SbomError;
use super::gobuild::{self, BuildInfo, GoInfoError};
use super::layer::LayerFiles;
use super::python::{self, Dist, LicenseRef};
use crate::manifest::PackageRecord;
use crate::python::tags::{WheelName, normalize, same_version};

/// The layer itself.
#[derive(Debug, Clone)]
pub(crate) struct LayerId {
    pub name: String,
    pub version: Option<String>,
    /// Lambda's name: `x86_64` or `arm64`.
    pub arch: Option<String>,
    pub runtimes: Vec<String>,
    pub zip_sha256: String,
    /// ISO 8601, UTC: the time stored in the zip.
    pub time: String,
    /// What the document was made from, `build` or `zip`: part of its serial number.
    pub made_from: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct Inventory {
    pub layer: LayerId,
    pub python: Vec<PythonDist>,
    pub programs: Vec<Program>,
    pub files: Vec<OwnFile>,
}

/// One Python distribution: one wheel when the build knows it, else one dist-info folder.
#[derive(Debug, Clone)]
pub(crate) struct PythonDist {
    pub name: String,
    pub version: String,
    pub licenses: Vec<LicenseRef>,
    /// The runtimes it is installed for; empty when it sits in the folder every runtime of a
    /// layer shares and the layer does not say which runtimes those are.
    pub runtimes: Vec<String>,
    pub arch: String,
    pub dist_infos: Vec<String>,
    pub wheel: Option<Wheel>,
}

#[derive(Debug, Clone)]
pub(crate) struct Wheel {
    pub file: String,
    pub sha256: String,
}

/// An executable the layer ships, such as the collector extension.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    pub path: String,
    pub sha256: String,
    pub go: Result<BuildInfo, GoInfoError>,
}

#[derive(Debug, Clone)]
pub(crate) struct OwnFile {
    pub path: String,
    pub sha256: String,
}

/// What the build knows beyond the zip: the wheels and the collector's path.
#[derive(Default)]
pub(crate) struct Known<'a> {
    pub packages: Option<&'a [PackageRecord]>,
    pub collector: Option<&'a str>,
}

/// Sorts every file of the layer into distributions, programs and own files.
pub(crate) fn gather(files: &mut dyn LayerFiles, known: &Known, layer: LayerId) -> Result<Inventory, SbomError> {
    let paths = files.paths().to_vec();
    let dists = python::metadata_dirs(paths.iter().map(String::as_str))
        .iter()
        .map(|d| python::read_dist(d, files))
        .collect::<Result<Vec<Dist>, _>>()?;
    let owned = owned_paths(&paths, &dists);
    let mut programs = Vec::new();
    let mut own = Vec::new();
    for path in paths.iter().filter(|p| !owned.contains(p.as_str())) {
        let maybe_program = known.collector == Some(path.as_str()) || is_extension(path);
        let data = if maybe_program { Some(files.read(path)?) } else { None };
        match data.filter(|d| d.starts_with(b"\x7fELF")) {
            Some(data) => programs.push(Program {
                path: path.clone(),
                sha256: files.sha256(path)?,
                go: gobuild::read_elf(&data),
            }),
            None => own.push(OwnFile {
                path: path.clone(),
                sha256: files.sha256(path)?,
            }),
        }
    }
    let mut python = match known.packages {
        Some(packages) => from_wheels(packages, &dists, &layer.runtimes)?,
        None => dists.iter().map(|d| from_dist(d, Vec::new())).collect(),
    };
    python.sort_by_cached_key(|d| {
        let wheel = d.wheel.as_ref().map(|w| w.file.clone());
        (normalize(&d.name), d.version.clone(), d.dist_infos.clone(), wheel)
    });
    Ok(Inventory {
        layer,
        python,
        programs,
        files: own,
    })
}

/// Lambda starts every file in `/opt/extensions`.
fn is_extension(path: &str) -> bool {
    path.strip_prefix("extensions/").is_some_and(|rest| !rest.contains('/'))
}

/// Files a distribution owns: its metadata folder (or whole `.egg`), its RECORD's rows, and
/// the bytecode of its Python files (compiled after install, so RECORD does not list it).
fn owned_paths<'a>(paths: &'a [String], dists: &[Dist]) -> BTreeSet<&'a str> {
    let listed: HashSet<&str> = dists.iter().flat_map(|d| d.owns.iter().map(String::as_str)).collect();
    let folders: HashSet<&str> = dists.iter().map(|d| d.folder.as_str()).collect();
    // A prefix is hashed only when some folder is that long: a path thousands of folders deep
    // costs a walk along it, not a hash of every prefix (which grew with the square).
    let lengths: HashSet<usize> = folders.iter().map(|f| f.len()).collect();
    let in_folder = |p: &str| {
        p.match_indices('/')
            .any(|(n, _)| lengths.contains(&n) && folders.contains(&p[..n]))
    };
    paths
        .iter()
        .map(String::as_str)
        .filter(|p| {
            listed.contains(p) || in_folder(p) || pyc_source(p).is_some_and(|src| listed.contains(src.as_str()))
        })
        .collect()
}

/// `a/__pycache__/b.cpython-39.pyc` -> `a/b.py`.
fn pyc_source(path: &str) -> Option<String> {
    let (dir, file) = path.rsplit_once("/__pycache__/")?;
    let stem = file.strip_suffix(".pyc")?.split('.').next()?;
    Some(format!("{dir}/{stem}.py"))
}

/// One component per wheel the build installed, with the dist-info folders it ended up in;
/// dist-info folders no wheel accounts for follow as found.
fn from_wheels(
    packages: &[PackageRecord],
    dists: &[Dist],
    layer_runtimes: &[String],
) -> Result<Vec<PythonDist>, SbomError> {
    let mut used = vec![false; dists.len()];
    let names: Vec<String> = dists.iter().map(|d| normalize(&d.name)).collect();
    let mut out = Vec::new();
    for p in packages {
        let name = normalize(&p.name);
        let serves = |d: &Dist| match &d.runtime {
            Some(rt) => p.runtimes.contains(rt),
            None => true,
        };
        let matched: Vec<usize> = (0..dists.len())
            .filter(|&i| names[i] == name && same_version(&dists[i].version, &p.version) && serves(&dists[i]))
            .collect();
        let Some(&first) = matched.first() else {
            return Err(SbomError::Read {
                path: p.wheel.clone(),
                problem: "was installed, but no dist-info folder of it is in the layer".into(),
            });
        };
        let platforms = WheelName::parse(&p.wheel).map(|w| w.platform).unwrap_or_default();
        let mut dist = from_dist(&dists[first], p.runtimes.clone());
        dist.version = p.version.clone();
        dist.arch = python::arch_of_platforms(platforms);
        dist.dist_infos = matched.iter().map(|&i| dists[i].dist_info.clone()).collect();
        dist.wheel = Some(Wheel {
            file: p.wheel.clone(),
            sha256: p.sha256.clone(),
        });
        for i in matched {
            used[i] = true;
        }
        out.push(dist);
    }
    let rest = dists.iter().zip(used).filter(|(_, u)| !u).map(|(d, _)| d);
    out.extend(rest.map(|d| {
        let runtimes = match &d.runtime {
            Some(rt) => vec![rt.clone()],
            None => layer_runtimes.to_vec(),
        };
        from_dist(d, runtimes)
    }));
    Ok(out)
}

/// A component from a dist-info folder alone; no `runtimes` means the folder's own.
fn from_dist(d: &Dist, runtimes: Vec<String>) -> PythonDist {
    let runtimes = if runtimes.is_empty() {
        d.runtime.iter().cloned().collect()
    } else {
        runtimes
    };
    PythonDist {
        name: d.name.clone(),
        version: d.version.clone(),
        licenses: d.licenses.clone(),
        runtimes,
        arch: d.arch.clone(),
        dist_infos: vec![d.dist_info.clone()],
        wheel: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytecode_belongs_to_its_source() {
        assert_eq!(
            pyc_source("python/opentelemetry/__pycache__/version.cpython-39.pyc").as_deref(),
            Some("python/opentelemetry/version.py")
        );
        assert_eq!(pyc_source("python/x.pyc"), None);
        assert!(is_extension("extensions/collector"));
        assert!(!is_extension("extensions/lib/x.so"));
    }
}
