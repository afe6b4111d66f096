//! Checks a gathered layer before it is archived: paths, duplicates, ELF machines, size.

pub(crate) mod elf;
pub(crate) mod rules;
pub(crate) mod zipcanon;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use crate::model::arch::Arch;
use crate::model::entry::Entry;

pub mod glibc;

/// Failures scripts and tests tell apart.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    #[error("`{path}` comes from two sources, {first} and {second}: keep one of them in the spec")]
    Duplicate {
        path: String,
        first: String,
        second: String,
    },
    #[error("{origin}: `{path}` {problem}")]
    Elf {
        path: String,
        origin: String,
        problem: String,
    },
    #[error(
        "the {arch} layer is {total} bytes unzipped, over the limit of {limit} bytes (Lambda allows 262,144,000 for a function and all its layers); the largest entry is `{largest}` ({largest_size} bytes): remove packages or raise limits.unzipped_bytes"
    )]
    TooBig {
        arch: Arch,
        total: u64,
        limit: u64,
        largest: String,
        largest_size: u64,
    },
}

/// Returns the unzipped total on success.
pub(crate) fn check(entries: &[Entry], arch: Arch, limit: u64) -> Result<u64> {
    let mut by_path: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries {
        rules::check_path(&e.path).with_context(|| format!("{}: unsafe path in the layer", e.origin))?;
        if let Some(first) = by_path.insert(&e.path, e) {
            bail!(CheckError::Duplicate {
                path: e.path.clone(),
                first: first.origin.clone(),
                second: e.origin.clone()
            });
        }
    }
    // A file cannot also be a folder: `a` and `a/b` would clash on unpack.
    for dir in rules::parent_dirs(entries.iter().map(|e| e.path.as_str())) {
        if let Some(e) = by_path.get(dir.trim_end_matches('/')) {
            bail!(
                "`{}` ({}) is a file, but other entries sit below it as a folder: rename one of them",
                e.path,
                e.origin
            );
        }
    }
    entries.par_iter().try_for_each(|e| -> Result<()> {
        let data = e.read()?;
        if elf::is_elf(&data) || elf::looks_like_shared_object(&e.path) {
            elf::check_arch(&data, arch).map_err(|err| CheckError::Elf {
                path: e.path.clone(),
                origin: e.origin.clone(),
                problem: err.to_string(),
            })?;
        }
        Ok(())
    })?;
    let sizes: Vec<u64> = entries.iter().map(Entry::size).collect::<Result<_>>()?;
    let total: u64 = sizes.iter().sum();
    if total > limit {
        let (i, largest_size) = sizes
            .iter()
            .enumerate()
            .max_by_key(|(_, s)| **s)
            .map(|(i, s)| (i, *s))
            .unwrap_or((0, 0));
        bail!(CheckError::TooBig {
            arch,
            total,
            limit,
            largest: entries[i].path.clone(),
            largest_size
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::bytes;

    fn file(path: &str, data: &[u8]) -> Entry {
        Entry::file(path, false, bytes(data), format!("src/{path}"))
    }

    #[test]
    fn duplicates_and_clashes() {
        let e = check(&[file("a", b"1"), file("a", b"2")], Arch::X86_64, 100).unwrap_err();
        assert!(matches!(
            e.downcast_ref::<CheckError>(),
            Some(CheckError::Duplicate { .. })
        ));
        let e = check(&[file("a", b"1"), file("a/b", b"2")], Arch::X86_64, 100).unwrap_err();
        assert!(e.to_string().contains("is a file"), "{e}");
    }

    #[test]
    fn wrong_machine_so_fails() {
        let so = elf::fake_elf(object::elf::EM_AARCH64.0, object::elf::ET_DYN.0);
        let e = check(
            &[file("python/x.cpython-39-x86_64-linux-gnu.so", &so)],
            Arch::X86_64,
            1 << 20,
        )
        .unwrap_err();
        assert!(
            matches!(e.downcast_ref::<CheckError>(), Some(CheckError::Elf { .. })),
            "{e}"
        );
        let e = check(&[file("python/fake.so", b"not elf")], Arch::X86_64, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("not an ELF"), "{e}");
    }

    #[test]
    fn size_limit() {
        let e = check(&[file("a", &[0; 10]), file("b", &[0; 20])], Arch::Arm64, 25).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("30 bytes unzipped") && msg.contains("`b` (20 bytes)"),
            "{msg}"
        );
        assert_eq!(check(&[file("a", &[0; 10])], Arch::Arm64, 25).unwrap(), 10);
    }
}
