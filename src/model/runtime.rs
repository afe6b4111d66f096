//! Python runtimes: Lambda's names, CPython tags and the glibc each one runs on.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Runtime {
    pub major: u8,
    pub minor: u8,
}

impl Runtime {
    /// Parses Lambda's runtime name, `python3.9`.
    pub fn parse(s: &str) -> Option<Runtime> {
        let rest = s.strip_prefix("python")?;
        let (major, minor) = rest.split_once('.')?;
        let major: u8 = major.parse().ok()?;
        let minor: u8 = minor.parse().ok()?;
        (major == 3 && minor >= 6).then_some(Runtime { major, minor })
    }

    /// `cp39`: the interpreter and ABI tag of CPython wheels.
    pub fn cp_tag(self) -> String {
        format!("cp{}{}", self.major, self.minor)
    }

    /// `3.9`, as pip's `--python-version` wants it.
    pub fn dotted(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// The glibc of the Amazon Linux the runtime runs on: AL2 up to 3.11, AL2023 after.
    pub fn glibc(self) -> (u32, u32) {
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
        let r = Runtime::parse("python3.9").unwrap();
        assert_eq!(r.cp_tag(), "cp39");
        assert_eq!(r.glibc(), (2, 26));
        assert_eq!(Runtime::parse("python3.12").unwrap().glibc(), (2, 34));
        assert_eq!(Runtime::parse("nodejs18.x"), None);
        assert_eq!(r.to_string(), "python3.9");
    }
}
