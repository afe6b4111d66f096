//! Python runtimes: Lambda's names, CPython tags and the glibc each one runs on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A Lambda Python runtime, `python3.9`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Runtime {
    pub major: u8,
    pub minor: u8,
}

/// A name that is no Lambda Python runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown runtime `{0}`: use Lambda's names, e.g. python3.9")]
pub(crate) struct UnknownRuntime(pub String);

impl FromStr for Runtime {
    type Err = UnknownRuntime;

    /// The one parser of Lambda's runtime names: the spec, the flags and the lock all use it.
    fn from_str(s: &str) -> Result<Runtime, UnknownRuntime> {
        let bad = || UnknownRuntime(s.to_string());
        let (major, minor) = s
            .strip_prefix("python")
            .and_then(|v| v.split_once('.'))
            .ok_or_else(bad)?;
        let major: u8 = major.parse().map_err(|_| bad())?;
        let minor: u8 = minor.parse().map_err(|_| bad())?;
        if major != 3 || minor < 6 {
            return Err(bad());
        }
        Ok(Runtime { major, minor })
    }
}

impl<'de> Deserialize<'de> for Runtime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Runtime, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Runtime {
    /// [`FromStr`] for callers that say themselves what a bad name means.
    pub(crate) fn parse(s: &str) -> Option<Runtime> {
        s.parse().ok()
    }

    /// `cp39`: the interpreter and ABI tag of CPython wheels.
    pub(crate) fn cp_tag(self) -> String {
        format!("cp{}{}", self.major, self.minor)
    }

    /// `3.9`, as pip's `--python-version` wants it.
    pub(crate) fn dotted(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// The glibc of the Amazon Linux the runtime runs on: AL2 up to 3.11, AL2023 after.
    pub(crate) fn glibc(self) -> (u32, u32) {
        if (self.major, self.minor) <= (3, 11) {
            (2, 26)
        } else {
            (2, 34)
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "python{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_glibc() {
        let r: Runtime = "python3.9".parse().unwrap();
        assert_eq!(r.cp_tag(), "cp39");
        assert_eq!(r.glibc(), (2, 26));
        assert_eq!(Runtime::parse("python3.12").unwrap().glibc(), (2, 34));
        assert_eq!(Runtime::parse("nodejs18.x"), None);
        assert_eq!(Runtime::parse("python2.7"), None);
        assert_eq!(r.to_string(), "python3.9");
    }

    #[test]
    fn deserializes_through_the_same_parser() {
        let e = serde_norway::from_str::<Runtime>("python3").unwrap_err();
        assert!(e.to_string().contains("unknown runtime `python3`"), "{e}");
    }
}
