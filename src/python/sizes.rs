//! What each runtime adds to a layer, from the plan alone: the unpacked size of the wheels only
//! some runtimes use (read from the central directory of each wheel already in the cache) and of
//! its bytecode (estimated from the `.py` bytes it imports). `plan` shows it before a build, so
//! that a spec near the unzipped limit can drop runtimes from `python.bytecode_runtimes`.

use std::collections::BTreeMap;
use std::path::Path;

use super::fetch;
use super::select::TreePlan;
use crate::check::zipcanon;
use crate::model::runtime::Runtime;
use crate::support::input;

/// Checked-hash `.pyc` bytes per `.py` byte, measured on the 1.20.0 set (7.8 MB of `.py`):
/// 0.77 for 3.8 and 3.9, 0.79 for 3.10, 1.22 for 3.11 (its wider bytecode and exception
/// tables), 1.12 for 3.12 and 3.13. Newer runtimes are taken as 3.13.
pub(crate) fn pyc_ratio(rt: Runtime) -> f64 {
    match (rt.major, rt.minor) {
        (3, ..=9) => 0.77,
        (3, 10) => 0.79,
        (3, 11) => 1.22,
        _ => 1.12,
    }
}

/// One wheel's unpacked bytes, and how many of them are `.py` sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Unpacked {
    pub bytes: u64,
    pub py_bytes: u64,
}

/// Reads a wheel's central directory: no member is decompressed. Only a regular file that is
/// one unambiguous archive counts (a cache entry is not trusted to be either); sizes saturate.
pub(crate) fn unpacked(wheel: &Path) -> Option<Unpacked> {
    let mut file = input::open_regular(wheel).ok()?;
    let len = file.metadata().ok()?.len();
    let entries = zipcanon::scan(&mut file, len).ok()?;
    let mut u = Unpacked::default();
    for e in &entries {
        u.bytes = u.bytes.saturating_add(e.size);
        if e.name.ends_with(b".py") {
            u.py_bytes = u.py_bytes.saturating_add(e.size);
        }
    }
    Some(u)
}

/// What one runtime adds on top of what every runtime shares.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RuntimeSize {
    /// Wheels this runtime uses that not every runtime does (its native builds, mostly).
    pub own_wheels: u64,
    /// Its `.pyc`, estimated; 0 when it gets none.
    pub bytecode: u64,
    pub gets_bytecode: bool,
}

/// The Python tree's sizes for one architecture.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TreeSizes {
    /// Wheels every runtime uses, unpacked once.
    pub shared: u64,
    pub runtimes: BTreeMap<Runtime, RuntimeSize>,
    /// Wheels not in the cache yet: their sizes are unknown until fetched.
    pub uncached: Vec<String>,
}

impl TreeSizes {
    pub(crate) fn total(&self) -> u64 {
        self.shared + self.runtimes.values().map(|r| r.own_wheels + r.bytecode).sum::<u64>()
    }
}

/// Sizes from `tree`'s picks, with each wheel's contents from `size_of` (the cache, in `plan`).
pub(crate) fn estimate(
    tree: &TreePlan,
    bytecode_runtimes: &[Runtime],
    size_of: impl Fn(&str, &str) -> Option<Unpacked>,
) -> TreeSizes {
    let mut sizes = TreeSizes::default();
    let mut users: BTreeMap<&str, Vec<Runtime>> = BTreeMap::new();
    for (rt, picks) in &tree.picks {
        for p in picks {
            users.entry(p.sha256.as_str()).or_default().push(*rt);
        }
    }
    let mut py_bytes: BTreeMap<Runtime, u64> = BTreeMap::new();
    for w in &tree.wants {
        let rts = users.get(w.sha256.as_str()).cloned().unwrap_or_default();
        let Some(u) = size_of(&w.sha256, &w.file) else {
            sizes.uncached.push(w.file.clone());
            continue;
        };
        if rts.len() == tree.picks.len() {
            sizes.shared += u.bytes;
        }
        for rt in rts.iter().copied() {
            *py_bytes.entry(rt).or_default() += u.py_bytes;
            if rts.len() < tree.picks.len() {
                sizes.runtimes.entry(rt).or_default().own_wheels += u.bytes;
            }
        }
    }
    for &rt in tree.picks.keys() {
        let entry = sizes.runtimes.entry(rt).or_default();
        entry.gets_bytecode = bytecode_runtimes.contains(&rt);
        if entry.gets_bytecode {
            let py = py_bytes.get(&rt).copied().unwrap_or(0) as f64;
            entry.bytecode = (py * pyc_ratio(rt)).round() as u64;
        }
    }
    sizes
}

/// [`estimate`] with wheel contents read from the cache.
pub(crate) fn from_cache(tree: &TreePlan, bytecode_runtimes: &[Runtime], cache: &Path) -> TreeSizes {
    estimate(tree, bytecode_runtimes, |sha, file| {
        unpacked(&fetch::path(cache, sha, file))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::arch::Arch;
    use crate::python::fetch::Want;
    use crate::python::select::{Excludes, Pick, Sources};
    use std::io::Write;

    fn rt(minor: u8) -> Runtime {
        Runtime { major: 3, minor }
    }

    fn pick(file: &str) -> Pick {
        Pick {
            name: file.split('-').next().unwrap().into(),
            version: "1".into(),
            file: file.into(),
            sha256: format!("sha-{file}"),
        }
    }

    fn tree(picks: &[(Runtime, &[&str])]) -> TreePlan {
        let mut wants = Vec::new();
        for (r, files) in picks {
            for f in *files {
                if !wants.iter().any(|w: &Want| w.file == *f) {
                    wants.push(Want {
                        package: f.split('-').next().unwrap().into(),
                        version: "1".into(),
                        file: (*f).into(),
                        sha256: format!("sha-{f}"),
                        arch: Arch::X86_64,
                        runtime: *r,
                    });
                }
            }
        }
        TreePlan {
            dest: "python".into(),
            runtimes: picks.iter().map(|(r, _)| *r).collect(),
            exclude: Excludes::new(&[]).unwrap(),
            picks: picks
                .iter()
                .map(|(r, files)| (*r, files.iter().map(|f| pick(f)).collect()))
                .collect(),
            wants,
            apart: BTreeMap::new(),
            notes: Vec::new(),
            sources: Sources::default(),
        }
    }

    #[test]
    fn shared_own_and_bytecode_per_runtime() {
        let t = tree(&[
            (
                rt(11),
                &[
                    "sdk-1-py3-none-any.whl",
                    "grpcio-1-cp311-cp311-manylinux_2_17_x86_64.whl",
                ],
            ),
            (
                rt(12),
                &[
                    "sdk-1-py3-none-any.whl",
                    "grpcio-1-cp312-cp312-manylinux_2_17_x86_64.whl",
                ],
            ),
        ]);
        let sizes = estimate(&t, &[rt(12)], |_, file| {
            Some(if file.starts_with("sdk") {
                Unpacked {
                    bytes: 1000,
                    py_bytes: 800,
                }
            } else {
                Unpacked {
                    bytes: 5000,
                    py_bytes: 100,
                }
            })
        });
        assert_eq!(sizes.shared, 1000);
        assert_eq!(
            sizes.runtimes[&rt(11)],
            RuntimeSize {
                own_wheels: 5000,
                bytecode: 0,
                gets_bytecode: false
            }
        );
        // (800 + 100) .py bytes at 1.12 for 3.12.
        assert_eq!(
            sizes.runtimes[&rt(12)],
            RuntimeSize {
                own_wheels: 5000,
                bytecode: 1008,
                gets_bytecode: true
            }
        );
        assert_eq!(sizes.total(), 1000 + 5000 + 5000 + 1008);
        assert!(sizes.uncached.is_empty());

        let missing = estimate(&t, &[], |_, file| {
            file.starts_with("sdk").then_some(Unpacked::default())
        });
        assert_eq!(missing.uncached.len(), 2);
    }

    #[test]
    fn central_directory_gives_unpacked_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo-1-py3-none-any.whl");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        w.start_file("demo/__init__.py", opts).unwrap();
        w.write_all(&[b'#'; 300]).unwrap();
        w.start_file("demo/_speedups.so", opts).unwrap();
        w.write_all(&[0u8; 1200]).unwrap();
        w.finish().unwrap();
        assert_eq!(
            unpacked(&path),
            Some(Unpacked {
                bytes: 1500,
                py_bytes: 300
            })
        );
        assert_eq!(unpacked(&dir.path().join("absent.whl")), None);
    }
}
