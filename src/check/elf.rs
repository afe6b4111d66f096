//! Checks ELF files against the layer's architecture: the wrong machine fails on Lambda.

use anyhow::{Result, bail};
use object::Endianness;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

use crate::model::arch::{Arch, elf_machine_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    pub machine: u16,
    pub e_type: u16,
    pub has_interp: bool,
}

impl ElfInfo {
    /// A program the kernel can start: `ET_EXEC`, or a PIE (`ET_DYN` with an interpreter).
    pub(crate) fn is_executable(&self) -> bool {
        self.e_type == elf::ET_EXEC.0 || (self.e_type == elf::ET_DYN.0 && self.has_interp)
    }
}

pub(crate) fn is_elf(data: &[u8]) -> bool {
    data.starts_with(&elf::ELFMAG)
}

/// Shared objects by name (`x.so`, `libz.so.1`): they must be ELF.
pub(crate) fn looks_like_shared_object(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".so") {
        return true;
    }
    // Versioned sonames: `libz.so.1`, `libssl.so.1.1`; not `notes.so.txt`.
    name.split_once(".so.").is_some_and(|(_, v)| {
        !v.is_empty()
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The identification bytes at the start of every ELF file, read through the smaller (32-bit)
/// header, which begins with them as the 64-bit one does.
fn ident(data: &[u8]) -> Option<&elf::Ident> {
    let (header, _) = object::pod::from_bytes::<elf::FileHeader32<Endianness>>(data).ok()?;
    (header.e_ident.magic == elf::ELFMAG).then_some(&header.e_ident)
}

/// `e_machine` of a little-endian ELF file, 32- or 64-bit, from its first 64 bytes or more.
pub(crate) fn machine(head: &[u8]) -> Option<u16> {
    let ident = ident(head)?;
    let little = Endianness::Little;
    if ident.data != elf::ELFDATA2LSB {
        return None;
    }
    if ident.class == elf::ELFCLASS64 {
        Some(elf::FileHeader64::<Endianness>::parse(head).ok()?.e_machine(little).0)
    } else if ident.class == elf::ELFCLASS32 {
        Some(elf::FileHeader32::<Endianness>::parse(head).ok()?.e_machine(little).0)
    } else {
        None
    }
}

/// Reads the header of a 64-bit little-endian ELF file; anything else is an error.
pub(crate) fn inspect(data: &[u8]) -> Result<ElfInfo> {
    let Some(ident) = ident(data) else {
        if is_elf(data) {
            bail!("truncated or malformed ELF header: {} bytes", data.len());
        }
        bail!("not an ELF file");
    };
    if ident.class != elf::ELFCLASS64 {
        match machine(data) {
            Some(m) => bail!("not a 64-bit ELF file (a 32-bit one for {})", elf_machine_name(m)),
            None => bail!("not a 64-bit ELF file"),
        }
    }
    if ident.data != elf::ELFDATA2LSB {
        bail!("not a little-endian ELF file");
    }
    let header = match elf::FileHeader64::<Endianness>::parse(data) {
        Ok(h) => h,
        Err(e) => bail!("truncated or malformed ELF header: {e}"),
    };
    let endian = Endianness::Little;
    let has_interp = header
        .program_headers(endian, data)
        .map(|phs| phs.iter().any(|ph| ph.p_type(endian) == elf::PT_INTERP))
        .unwrap_or(false);
    Ok(ElfInfo {
        machine: header.e_machine(endian).0,
        e_type: header.e_type(endian).0,
        has_interp,
    })
}

/// Fails unless `data` is 64-bit little-endian ELF for `arch`.
pub(crate) fn check_arch(data: &[u8], arch: Arch) -> Result<ElfInfo> {
    let info = inspect(data)?;
    if info.machine != arch.elf_machine() {
        bail!(
            "built for {}, but the layer is {}: use a binary built for {}",
            elf_machine_name(info.machine),
            arch,
            elf_machine_name(arch.elf_machine())
        );
    }
    Ok(info)
}

/// Minimal ELF headers for tests: just enough for `inspect` to read.
#[cfg(test)]
pub(crate) fn fake_elf(machine: u16, e_type: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(&elf::ELFMAG);
    h[4] = elf::ELFCLASS64.0;
    h[5] = elf::ELFDATA2LSB.0;
    h[6] = 1;
    h[16..18].copy_from_slice(&e_type.to_le_bytes());
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_checked() {
        let x = fake_elf(elf::EM_X86_64.0, elf::ET_EXEC.0);
        assert!(check_arch(&x, Arch::X86_64).unwrap().is_executable());
        let err = check_arch(&x, Arch::Arm64).unwrap_err().to_string();
        assert!(err.contains("built for x86_64"), "{err}");
        let so = fake_elf(elf::EM_AARCH64.0, elf::ET_DYN.0);
        assert!(!check_arch(&so, Arch::Arm64).unwrap().is_executable());
    }

    #[test]
    fn machine_of_a_header() {
        let x = fake_elf(elf::EM_AARCH64.0, elf::ET_EXEC.0);
        assert_eq!(machine(&x), Some(elf::EM_AARCH64.0));
        assert_eq!(machine(b"#!/bin/sh\n"), None);
        let mut x32 = x.clone();
        x32[4] = elf::ELFCLASS32.0;
        x32[18..20].copy_from_slice(&elf::EM_386.0.to_le_bytes());
        assert_eq!(machine(&x32[..52]), Some(elf::EM_386.0));
        assert!(inspect(&x32).unwrap_err().to_string().contains("a 32-bit one for i386"));
    }

    #[test]
    fn non_elf_and_truncated_are_errors() {
        assert!(inspect(b"#!/bin/sh\n").is_err());
        assert!(inspect(&elf::ELFMAG).unwrap_err().to_string().contains("truncated"));
        let mut x = fake_elf(elf::EM_X86_64.0, elf::ET_EXEC.0);
        x[4] = elf::ELFCLASS32.0;
        assert!(inspect(&x).unwrap_err().to_string().contains("64-bit"));
    }

    #[test]
    fn shared_object_names() {
        assert!(looks_like_shared_object(
            "python/wrapt/_wrappers.cpython-39-x86_64-linux-gnu.so"
        ));
        assert!(looks_like_shared_object("python/grpcio.libs/libz.so.1"));
        assert!(!looks_like_shared_object("python/sos.py"));
        assert!(!looks_like_shared_object("python/x.so.txt"));
        assert!(looks_like_shared_object("python/libssl.so.1.1"));
    }
}
