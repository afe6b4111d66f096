//! The two Lambda architectures and every name each one goes by.

use std::fmt;

/// A Lambda instruction set architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// Accepts the Lambda API names and the aliases users type from other ecosystems.
    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "amd64" | "x86-64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The name in the Lambda API (`CompatibleArchitectures`).
    pub fn lambda_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The name ADOT puts in its layer names (`aws-otel-python-amd64-ver-1-20-0`).
    pub fn adot_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn goarch(self) -> &'static str {
        self.adot_name()
    }

    /// The machine part of manylinux platform tags.
    pub fn wheel_machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// `e_machine` of ELF files built for this architecture.
    pub fn elf_machine(self) -> u16 {
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
pub fn elf_machine_name(machine: u16) -> String {
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
        assert_eq!(Arch::parse("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::parse("ppc64le"), None);
        assert_eq!(Arch::X86_64.adot_name(), "amd64");
        assert_eq!(Arch::Arm64.to_string(), "arm64");
    }
}
