//! The one place the tests make and read ELF headers.
#![allow(dead_code)]

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;

/// A 64-bit little-endian ELF header with the given machine and type, padded with `extra` bytes.
pub fn fake_elf(machine: u16, e_type: u16, extra: usize) -> Vec<u8> {
    let mut h = vec![0u8; 64 + extra];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2;
    h[5] = 1;
    h[6] = 1;
    h[16..18].copy_from_slice(&e_type.to_le_bytes());
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes());
    h
}

/// `e_machine` of a 64-bit little-endian ELF file, read with the object crate.
pub fn machine_of(data: &[u8]) -> u16 {
    use object::read::elf::FileHeader;
    let header = object::elf::FileHeader64::<object::Endianness>::parse(data).expect("a 64-bit ELF header");
    header.e_machine(object::Endianness::Little).0
}
