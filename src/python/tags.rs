//! Wheel file names and their tags: which wheel of a package suits one runtime on one architecture.

use std::fmt;
use std::str::FromStr;

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::support::text::show;

/// A wheel file name taken apart: `name-version(-build)?-python-abi-platform.whl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WheelName {
    pub name: String,
    pub version: String,
    pub build: Option<String>,
    /// Each tag set is `.`-separated in the file name (PEP 425 compressed tag sets).
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{}` is not a wheel file name (name-version(-build)-python-abi-platform.whl)", show(.0))]
pub(crate) struct BadWheelName(pub String);

/// A wheel's file name is joined to the wheelhouse and cache folders: it must be a plain file
/// name there (no folder, no `..`, nothing hidden, nothing a terminal would act on).
pub(crate) fn is_plain_file_name(file: &str) -> bool {
    !file.is_empty() && !file.starts_with('.') && !file.contains(['/', '\\']) && !file.chars().any(char::is_control)
}

impl WheelName {
    pub(crate) fn parse(file: &str) -> Result<WheelName, BadWheelName> {
        let bad = || BadWheelName(file.to_string());
        if !is_plain_file_name(file) {
            return Err(bad());
        }
        let stem = file.strip_suffix(".whl").ok_or_else(bad)?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, tags) = match parts.as_slice() {
            [n, v, py, abi, plat] => (n, v, None, [py, abi, plat]),
            [n, v, b, py, abi, plat] => (n, v, Some(b.to_string()), [py, abi, plat]),
            _ => return Err(bad()),
        };
        if name.is_empty() || version.is_empty() || tags.iter().any(|t| t.is_empty()) {
            return Err(bad());
        }
        // A build tag must start with a digit (PEP 427).
        if build
            .as_ref()
            .is_some_and(|b| !b.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Err(bad());
        }
        let split = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        Ok(WheelName {
            name: name.to_string(),
            version: version.to_string(),
            build,
            python: split(tags[0]),
            abi: split(tags[1]),
            platform: split(tags[2]),
        })
    }

    /// How well this wheel suits a runtime on an architecture; `None` when it cannot run there.
    /// Higher is better: a wheel built for exactly this CPython beats a stable-ABI one, which
    /// beats pure Python; among equals, the newest glibc the runtime still has wins.
    pub(crate) fn score(&self, rt: Runtime, arch: Arch) -> Option<Score> {
        let interp = self
            .python
            .iter()
            .flat_map(|py| self.abi.iter().map(move |abi| interpreter_rank(py, abi, rt)))
            .max()
            .flatten()?;
        let platform = self.platform.iter().filter_map(|p| platform_rank(p, rt, arch)).max()?;
        Some(Score { interp, platform })
    }
}

impl fmt::Display for WheelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.name, self.version)?;
        if let Some(b) = &self.build {
            write!(f, "-{b}")?;
        }
        write!(
            f,
            "-{}-{}-{}.whl",
            self.python.join("."),
            self.abi.join("."),
            self.platform.join(".")
        )
    }
}

/// Ordered preference of a compatible wheel; see [`WheelName::score`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Score {
    interp: u32,
    platform: u32,
}

/// 3: `cp39-cp39`; 2: `cp3X-abi3` (newer X first); 1: pure (`py3-none`, `py39-none`, `cp39-none`).
fn interpreter_rank(py: &str, abi: &str, rt: Runtime) -> Option<u32> {
    let cp = rt.cp_tag();
    match abi {
        _ if py == cp && abi == cp => Some(3000),
        "abi3" => {
            let minor: u8 = py.strip_prefix("cp3")?.parse().ok()?;
            (rt.major == 3 && minor <= rt.minor).then(|| 2000 + u32::from(minor))
        }
        "none" => {
            let exact = format!("py{}{}", rt.major, rt.minor);
            let generic = format!("py{}", rt.major);
            if py == generic {
                Some(1000)
            } else if py == exact || py == cp {
                Some(1001)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// `any` is 0; a manylinux tag ranks by its glibc, and must not need a newer one than the runtime's.
fn platform_rank(tag: &str, rt: Runtime, arch: Arch) -> Option<u32> {
    if tag == "any" {
        return Some(0);
    }
    let (major, minor) = manylinux_glibc(tag, arch)?;
    ((major, minor) <= rt.glibc()).then_some(1 + major * 1000 + minor)
}

/// The glibc a manylinux platform tag needs, if it is one for this architecture.
pub(crate) fn manylinux_glibc(tag: &str, arch: Arch) -> Option<(u32, u32)> {
    let rest = tag.strip_suffix(arch.wheel_machine())?.strip_suffix('_')?;
    match rest {
        "manylinux1" if arch == Arch::X86_64 => Some((2, 5)),
        "manylinux2010" if arch == Arch::X86_64 => Some((2, 12)),
        "manylinux2014" => Some((2, 17)),
        _ => {
            let (major, minor) = rest.strip_prefix("manylinux_")?.split_once('_')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        }
    }
}

/// The `--platform` values that make pip pick the wheels this runtime can load on `arch`.
/// pip matches platform tags literally, so every `manylinux_2_N` up to the runtime's glibc is listed.
pub(crate) fn pip_platforms(rt: Runtime, arch: Arch) -> Vec<String> {
    let m = arch.wheel_machine();
    let mut out = Vec::new();
    if arch == Arch::X86_64 {
        out.push(format!("manylinux1_{m}"));
        out.push(format!("manylinux2010_{m}"));
    }
    out.push(format!("manylinux2014_{m}"));
    let (gmajor, gminor) = rt.glibc();
    let first = if arch == Arch::X86_64 { 5 } else { 17 };
    for minor in first..=gminor {
        out.push(format!("manylinux_{gmajor}_{minor}_{m}"));
    }
    out
}

/// Whether two spellings name one version by PEP 440 (`1.0` is `1.0.0`, `1.0-1` is
/// `1.0.post1`). A dist-info folder writes `-` as `_`, so that spelling is read too; strings
/// that are no PEP 440 version at all must match exactly.
pub(crate) fn same_version(a: &str, b: &str) -> bool {
    let parse = |v: &str| {
        pep440_rs::Version::from_str(v)
            .or_else(|_| pep440_rs::Version::from_str(&v.replace('_', "-")))
            .ok()
    };
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// PEP 503 normalized project name: lowercase, runs of `-_.` become one `-`.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> Runtime {
        Runtime::parse(s).unwrap()
    }

    #[test]
    fn parses_compressed_tags_and_build() {
        let w = WheelName::parse("grpcio-1.59.0-cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64.whl").unwrap();
        assert_eq!(w.name, "grpcio");
        assert_eq!(w.platform, vec!["manylinux_2_17_aarch64", "manylinux2014_aarch64"]);
        assert_eq!(
            w.to_string(),
            "grpcio-1.59.0-cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
        );
        let b = WheelName::parse("six-1.16.0-1-py2.py3-none-any.whl").unwrap();
        assert_eq!(b.build.as_deref(), Some("1"));
        assert_eq!(b.python, vec!["py2", "py3"]);
        assert!(WheelName::parse("six-1.16.0-x-py3-none-any.whl").is_err());
        assert!(WheelName::parse("six-1.16.0.tar.gz").is_err());
        assert!(WheelName::parse("six-py3-none-any.whl").is_err());
    }

    #[test]
    fn picks_by_abi_and_platform() {
        let s = |f: &str, r: &str, a: Arch| WheelName::parse(f).unwrap().score(rt(r), a);
        let cp39 = "w-1-cp39-cp39-manylinux2014_x86_64.whl";
        assert!(s(cp39, "python3.9", Arch::X86_64).is_some());
        assert!(s(cp39, "python3.8", Arch::X86_64).is_none());
        assert!(s(cp39, "python3.9", Arch::Arm64).is_none());
        let abi3 = "w-1-cp37-abi3-manylinux_2_17_aarch64.whl";
        assert!(s(abi3, "python3.8", Arch::Arm64).is_some());
        assert!(s("w-1-cp310-abi3-manylinux_2_17_aarch64.whl", "python3.9", Arch::Arm64).is_none());
        let pure = "w-1-py2.py3-none-any.whl";
        assert!(
            s(cp39, "python3.9", Arch::X86_64)
                > s(abi3.replace("aarch64", "x86_64").as_str(), "python3.9", Arch::X86_64)
        );
        assert!(s(abi3, "python3.9", Arch::Arm64) > s(pure, "python3.9", Arch::Arm64));
        // AL2 has glibc 2.26: a 2.28 wheel does not load there, but does on AL2023.
        let new = "w-1-cp39-cp39-manylinux_2_28_x86_64.whl";
        assert!(s(new, "python3.9", Arch::X86_64).is_none());
        assert!(s("w-1-cp312-cp312-manylinux_2_28_x86_64.whl", "python3.12", Arch::X86_64).is_some());
        assert!(
            s("w-1-cp39-cp39-manylinux_2_24_x86_64.whl", "python3.9", Arch::X86_64)
                > s("w-1-cp39-cp39-manylinux1_x86_64.whl", "python3.9", Arch::X86_64)
        );
        assert!(s("w-1-cp39-cp39-macosx_11_0_arm64.whl", "python3.9", Arch::Arm64).is_none());
        assert!(s("w-1-cp39-cp39-manylinux1_aarch64.whl", "python3.9", Arch::Arm64).is_none());
    }

    #[test]
    fn pip_platforms_reach_the_runtime_glibc() {
        let p = pip_platforms(rt("python3.9"), Arch::Arm64);
        assert_eq!(p.first().unwrap(), "manylinux2014_aarch64");
        assert_eq!(p.last().unwrap(), "manylinux_2_26_aarch64");
        assert!(pip_platforms(rt("python3.8"), Arch::X86_64).contains(&"manylinux1_x86_64".to_string()));
    }

    #[test]
    fn versions_compare_by_pep_440() {
        assert!(same_version("1.0", "1.0.0"));
        assert!(same_version("1.0-1", "1.0.post1"));
        assert!(same_version("1.0_1", "1.0-1"));
        assert!(same_version("0.41b0", "0.41.0b0"));
        assert!(same_version("1.0+LOCAL", "1.0+local"));
        assert!(!same_version("1.0", "1.0.1"));
        assert!(!same_version("0.41b0", "0.41"));
        assert!(!same_version("1.0+a", "1.0"));
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(normalize("Foo.Bar__baz"), "foo-bar-baz");
        assert_eq!(normalize("importlib_metadata"), "importlib-metadata");
    }
}
