//! Checks the GLIBC_/GLIBCXX_/CXXABI_ symbol versions an ELF file needs (its `.gnu.version_r`)
//! against what the runtime's Amazon Linux provides: code that cannot run here is still proven
//! loadable there, or not.

use std::fmt;

use object::Endianness;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader};

use crate::model::runtime::Runtime;

/// What a runtime's operating system offers, as the newest version of each symbol set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    /// `Amazon Linux 2`.
    pub os: &'static str,
    /// glibc: `GLIBC_2.26`.
    pub glibc: (u32, u32),
    /// libstdc++ of the distribution's GCC: `GLIBCXX_3.4.24` (GCC 7) is `24`.
    pub glibcxx: u32,
    /// `CXXABI_1.3.11` (GCC 7) is `11`.
    pub cxxabi: u32,
}

impl Baseline {
    /// python3.8 to python3.11 run on Amazon Linux 2 (glibc 2.26, GCC 7.3); python3.12 and later
    /// on Amazon Linux 2023 (glibc 2.34, GCC 11).
    pub fn for_runtime(rt: Runtime) -> Baseline {
        let glibc = rt.glibc();
        if glibc <= (2, 26) {
            Baseline {
                os: "Amazon Linux 2",
                glibc,
                glibcxx: 24,
                cxxabi: 11,
            }
        } else {
            Baseline {
                os: "Amazon Linux 2023",
                glibc,
                glibcxx: 29,
                cxxabi: 13,
            }
        }
    }

    /// The newest version of `set` this baseline provides.
    fn limit(&self, set: Set) -> Vec<u32> {
        match set {
            Set::Glibc => vec![self.glibc.0, self.glibc.1],
            Set::Glibcxx => vec![3, 4, self.glibcxx],
            Set::Cxxabi => vec![1, 3, self.cxxabi],
        }
    }
}

impl fmt::Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (GLIBC_{}.{}, GLIBCXX_3.4.{}, CXXABI_1.3.{})",
            self.os, self.glibc.0, self.glibc.1, self.glibcxx, self.cxxabi
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Glibc,
    Glibcxx,
    Cxxabi,
}

/// One version an ELF file needs from a library: `libc.so.6` `GLIBC_2.17`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    pub file: String,
    pub version: String,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.version, self.file)
    }
}

/// Which set a needed version belongs to and its numbers; `None` when this check has no say.
/// glibc's versions are judged whatever file names them (libc, libm, libpthread, ld.so); the
/// C++ ones only against the system `libstdc++.so.6`: a wheel's vendored, renamed copy
/// (`libstdc++-1a2b3c4d.so.6.0.28`) brings its own.
fn classify(need: &Need) -> Option<(Set, Vec<u32>)> {
    let (set, number) = if let Some(n) = need.version.strip_prefix("GLIBC_") {
        (Set::Glibc, n)
    } else if let Some(n) = need.version.strip_prefix("GLIBCXX_") {
        (Set::Glibcxx, n)
    } else if let Some(n) = need.version.strip_prefix("CXXABI_") {
        (Set::Cxxabi, n)
    } else {
        return None;
    };
    if set != Set::Glibc && need.file != "libstdc++.so.6" {
        return None;
    }
    let parts: Option<Vec<u32>> = number.split('.').map(|p| p.parse().ok()).collect();
    parts.map(|p| (set, p))
}

/// Every version in the file's `.gnu.version_r`, sorted; empty for a file without one (static
/// binaries, objects that need no versioned symbol).
pub fn needed_versions(data: &[u8]) -> Result<Vec<Need>, String> {
    let header = elf::FileHeader64::<Endianness>::parse(data).map_err(|e| format!("not a 64-bit ELF file: {e}"))?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let sections = header
        .sections(endian, data)
        .map_err(|e| format!("unreadable section headers: {e}"))?;
    let mut needs = Vec::new();
    for section in sections.iter() {
        let Some((mut files, _)) = section.gnu_verneed(endian, data).map_err(|e| e.to_string())? else {
            continue;
        };
        let strings = sections
            .strings(endian, data, section.link(endian))
            .map_err(|e| format!("unreadable version strings: {e}"))?;
        while let Some((verneed, mut versions)) = files.next().map_err(|e| e.to_string())? {
            let file = verneed.file(endian, strings).map_err(|e| e.to_string())?;
            while let Some(aux) = versions.next().map_err(|e| e.to_string())? {
                let version = aux.name(endian, strings).map_err(|e| e.to_string())?;
                needs.push(Need {
                    file: String::from_utf8_lossy(file).into_owned(),
                    version: String::from_utf8_lossy(version).into_owned(),
                });
            }
        }
    }
    needs.sort();
    needs.dedup();
    Ok(needs)
}

/// What one file needs beyond the baseline, and the newest glibc version it needs (for the
/// report, even when it fits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub too_new: Vec<Need>,
    pub newest_glibc: Option<String>,
}

pub fn check(data: &[u8], baseline: &Baseline) -> Result<Verdict, String> {
    let mut verdict = Verdict::default();
    let mut newest: Option<Vec<u32>> = None;
    for need in needed_versions(data)? {
        let Some((set, number)) = classify(&need) else {
            continue;
        };
        if set == Set::Glibc && newest.as_ref().is_none_or(|n| number > *n) {
            newest = Some(number.clone());
            verdict.newest_glibc = Some(need.version.clone());
        }
        if number > baseline.limit(set) {
            verdict.too_new.push(need);
        }
    }
    Ok(verdict)
}

#[cfg(test)]
/// A 64-bit little-endian ELF file whose only content is a `.gnu.version_r` section (and the
/// string tables it needs): `needs` lists, per library file, the versions needed from it.
pub(crate) fn elf_with_needs(machine: u16, needs: &[(&str, &[&str])]) -> Vec<u8> {
    let mut dynstr = vec![0u8];
    let mut add = |s: &str| {
        let at = dynstr.len() as u32;
        dynstr.extend_from_slice(s.as_bytes());
        dynstr.push(0);
        at
    };
    let mut verneed = Vec::new();
    for (i, (file, versions)) in needs.iter().enumerate() {
        let file_at = add(file);
        let last = i + 1 == needs.len();
        let size = 16 + 16 * versions.len() as u32;
        verneed.extend_from_slice(&1u16.to_le_bytes()); // vn_version
        verneed.extend_from_slice(&(versions.len() as u16).to_le_bytes());
        verneed.extend_from_slice(&file_at.to_le_bytes());
        verneed.extend_from_slice(&16u32.to_le_bytes()); // vn_aux: right after this entry
        verneed.extend_from_slice(&(if last { 0 } else { size }).to_le_bytes());
        for (j, v) in versions.iter().enumerate() {
            let name_at = add(v);
            verneed.extend_from_slice(&0u32.to_le_bytes()); // vna_hash (unchecked here)
            verneed.extend_from_slice(&0u16.to_le_bytes());
            verneed.extend_from_slice(&(j as u16 + 2).to_le_bytes());
            verneed.extend_from_slice(&name_at.to_le_bytes());
            let next = if j + 1 == versions.len() { 0u32 } else { 16 };
            verneed.extend_from_slice(&next.to_le_bytes());
        }
    }
    let shstrtab = b"\0.dynstr\0.gnu.version_r\0.shstrtab\0".to_vec();
    let mut data = crate::check::elf::fake_elf(machine, elf::ET_DYN.0);
    let place = |data: &mut Vec<u8>, bytes: &[u8]| {
        while !data.len().is_multiple_of(8) {
            data.push(0);
        }
        let at = data.len() as u64;
        data.extend_from_slice(bytes);
        at
    };
    let dynstr_at = place(&mut data, &dynstr);
    let verneed_at = place(&mut data, &verneed);
    let shstrtab_at = place(&mut data, &shstrtab);
    let shoff = place(&mut data, &[]);
    // (name, type, offset, size, link, info)
    let sections: [(u32, u32, u64, u64, u32, u32); 4] = [
        (0, 0, 0, 0, 0, 0),
        (1, elf::SHT_STRTAB.0, dynstr_at, dynstr.len() as u64, 0, 0),
        (
            9,
            elf::SHT_GNU_VERNEED.0,
            verneed_at,
            verneed.len() as u64,
            1,
            needs.len() as u32,
        ),
        (24, elf::SHT_STRTAB.0, shstrtab_at, shstrtab.len() as u64, 0, 0),
    ];
    for (name, kind, offset, size, link, info) in sections {
        let mut sh = Vec::with_capacity(64);
        sh.extend_from_slice(&name.to_le_bytes());
        sh.extend_from_slice(&kind.to_le_bytes());
        sh.extend_from_slice(&0u64.to_le_bytes()); // flags
        sh.extend_from_slice(&0u64.to_le_bytes()); // addr
        sh.extend_from_slice(&offset.to_le_bytes());
        sh.extend_from_slice(&size.to_le_bytes());
        sh.extend_from_slice(&link.to_le_bytes());
        sh.extend_from_slice(&info.to_le_bytes());
        sh.extend_from_slice(&8u64.to_le_bytes()); // addralign
        sh.extend_from_slice(&0u64.to_le_bytes()); // entsize
        data.extend_from_slice(&sh);
    }
    data[40..48].copy_from_slice(&shoff.to_le_bytes()); // e_shoff
    data[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    data[60..62].copy_from_slice(&4u16.to_le_bytes()); // e_shnum
    data[62..64].copy_from_slice(&3u16.to_le_bytes()); // e_shstrndx
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(minor: u8) -> Runtime {
        Runtime { major: 3, minor }
    }

    const CYGRPC: &[(&str, &[&str])] = &[
        ("libstdc++.so.6", &["CXXABI_1.3", "GLIBCXX_3.4.19"]),
        ("libm.so.6", &["GLIBC_2.17"]),
        ("libc.so.6", &["GLIBC_2.17", "GLIBC_2.2.5", "GLIBC_PRIVATE"]),
    ];

    #[test]
    fn reads_every_needed_version() {
        let data = elf_with_needs(elf::EM_AARCH64.0, CYGRPC);
        let needs = needed_versions(&data).unwrap();
        let text: Vec<String> = needs.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            text,
            [
                "GLIBC_2.17 from libc.so.6",
                "GLIBC_2.2.5 from libc.so.6",
                "GLIBC_PRIVATE from libc.so.6",
                "GLIBC_2.17 from libm.so.6",
                "CXXABI_1.3 from libstdc++.so.6",
                "GLIBCXX_3.4.19 from libstdc++.so.6",
            ]
        );
        assert!(
            needed_versions(&crate::check::elf::fake_elf(elf::EM_X86_64.0, elf::ET_DYN.0))
                .unwrap()
                .is_empty()
        );
        assert!(needed_versions(b"#!/bin/sh\n").is_err());
    }

    #[test]
    fn manylinux2014_fits_amazon_linux_2() {
        let v = check(
            &elf_with_needs(elf::EM_AARCH64.0, CYGRPC),
            &Baseline::for_runtime(rt(9)),
        )
        .unwrap();
        assert_eq!(v.too_new, vec![]);
        // 2.17 > 2.2.5 as versions, though not as text.
        assert_eq!(v.newest_glibc.as_deref(), Some("GLIBC_2.17"));
    }

    #[test]
    fn manylinux_2_28_does_not_fit_amazon_linux_2_but_fits_2023() {
        let needs: &[(&str, &[&str])] = &[
            ("libc.so.6", &["GLIBC_2.17", "GLIBC_2.28"]),
            ("libstdc++.so.6", &["GLIBCXX_3.4.26", "CXXABI_1.3.12"]),
        ];
        let data = elf_with_needs(elf::EM_X86_64.0, needs);
        let v = check(&data, &Baseline::for_runtime(rt(11))).unwrap();
        let text: Vec<String> = v.too_new.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            text,
            [
                "GLIBC_2.28 from libc.so.6",
                "CXXABI_1.3.12 from libstdc++.so.6",
                "GLIBCXX_3.4.26 from libstdc++.so.6"
            ]
        );
        assert_eq!(check(&data, &Baseline::for_runtime(rt(12))).unwrap().too_new, vec![]);
        let beyond: &[(&str, &[&str])] = &[("libc.so.6", &["GLIBC_2.35"])];
        let v = check(
            &elf_with_needs(elf::EM_X86_64.0, beyond),
            &Baseline::for_runtime(rt(13)),
        )
        .unwrap();
        assert_eq!(v.too_new.len(), 1);
    }

    #[test]
    fn vendored_cxx_runtime_is_not_judged() {
        let needs: &[(&str, &[&str])] = &[("libstdc++-1a2b3c4d.so.6.0.32", &["GLIBCXX_3.4.32"])];
        let v = check(&elf_with_needs(elf::EM_X86_64.0, needs), &Baseline::for_runtime(rt(9))).unwrap();
        assert_eq!(v, Verdict::default());
    }

    #[test]
    fn baselines_name_their_os() {
        assert_eq!(
            Baseline::for_runtime(rt(11)).to_string(),
            "Amazon Linux 2 (GLIBC_2.26, GLIBCXX_3.4.24, CXXABI_1.3.11)"
        );
        assert_eq!(Baseline::for_runtime(rt(12)).os, "Amazon Linux 2023");
    }

    /// This test program itself: a glibc host's linker gives it versioned libc needs, none newer
    /// than the glibc it runs on.
    #[test]
    fn a_real_executable_reads_like_readelf_says() {
        let data = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let needs = needed_versions(&data).unwrap();
        assert!(
            needs
                .iter()
                .any(|n| n.file == "libc.so.6" && n.version.starts_with("GLIBC_2.")),
            "{needs:?}"
        );
        let host: Vec<u32> = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) }
            .to_str()
            .unwrap()
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect();
        let glibc = Baseline {
            os: "host",
            glibc: (host[0], host[1]),
            glibcxx: 0,
            cxxabi: 0,
        };
        let v = check(&data, &glibc).unwrap();
        assert!(v.too_new.iter().all(|n| !n.version.starts_with("GLIBC_")), "{v:?}");
    }
}
