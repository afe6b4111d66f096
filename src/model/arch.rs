//! The two Lambda architectures and every name each one goes by.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A Lambda instruction set architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Arch {
    X86_64,
    Arm64,
}

/// A name that is no architecture Lambda has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown architecture `{0}`: use x86_64 (or amd64) or arm64 (or aarch64)")]
pub(crate) struct UnknownArch(pub String);

impl FromStr for Arch {
    type Err = UnknownArch;

    /// Accepts the Lambda API names and the aliases users type from other ecosystems.
    fn from_str(s: &str) -> Result<Arch, UnknownArch> {
        match s {
            "x86_64" | "amd64" | "x86-64" => Ok(Arch::X86_64),
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            _ => Err(UnknownArch(s.to_string())),
        }
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Arch, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Arch {
    /// [`FromStr`] for callers that say themselves what a bad name means.
    pub(crate) fn parse(s: &str) -> Option<Arch> {
        s.parse().ok()
    }

    /// The name in the Lambda API (`CompatibleArchitectures`).
    pub(crate) fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The name ADOT puts in its layer names (`aws-otel-python-amd64-ver-1-20-0`).
    pub(crate) fn adot_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    pub(crate) fn goarch(self) -> &'static str {
        self.adot_name()
    }

    /// The machine part of manylinux platform tags, and Lambda's `uname -m`.
    pub(crate) fn wheel_machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// `e_machine` of ELF files built for this architecture.
    pub(crate) fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => object::elf::EM_X86_64.0,
            Arch::Arm64 => object::elf::EM_AARCH64.0,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.lambda_name())
    }
}

/// A readable name for an ELF `e_machine` value, for error messages.
pub(crate) fn elf_machine_name(machine: u16) -> String {
    match machine {
        x if x == object::elf::EM_X86_64.0 => "x86_64 (EM_X86_64)".to_string(),
        x if x == object::elf::EM_AARCH64.0 => "arm64 (EM_AARCH64)".to_string(),
        x if x == object::elf::EM_386.0 => "i386 (EM_386)".to_string(),
        x if x == object::elf::EM_ARM.0 => "arm32 (EM_ARM)".to_string(),
        other => format!("machine {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_map_to_lambda_names() {
        assert_eq!("amd64".parse(), Ok(Arch::X86_64));
        assert_eq!("aarch64".parse(), Ok(Arch::Arm64));
        let e = "ppc64le".parse::<Arch>().unwrap_err();
        assert!(e.to_string().contains("unknown architecture `ppc64le`"), "{e}");
        assert_eq!(Arch::parse("ppc64le"), None);
        assert_eq!(Arch::X86_64.adot_name(), "amd64");
        assert_eq!(Arch::Arm64.to_string(), "arm64");
    }

    #[test]
    fn deserializes_through_the_same_parser() {
        let v: Vec<Arch> = serde_norway::from_str("[amd64, arm64]").unwrap();
        assert_eq!(v, [Arch::X86_64, Arch::Arm64]);
        let e = serde_norway::from_str::<Vec<Arch>>("[sparc]").unwrap_err();
        assert!(e.to_string().contains("unknown architecture `sparc`"), "{e}");
    }
}
