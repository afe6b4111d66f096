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

/// Go build info as the Go 1.18+ linker lays it out: the 32-byte header (magic, pointer size,
/// flags with the inline bit), then the Go version and the module info, each as a varint
/// length and bytes; the module info framed by Go's two 16-byte sentinels.
pub fn go_buildinfo(go_version: &str, modinfo: &str) -> Vec<u8> {
    const START: &[u8] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    const END: &[u8] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";
    let mut blob = b"\xff Go buildinf:".to_vec();
    blob.extend_from_slice(&[8, 2]);
    blob.resize(32, 0);
    let framed = [START, modinfo.as_bytes(), END].concat();
    for s in [go_version.as_bytes(), framed.as_slice()] {
        let mut n = s.len();
        while n >= 0x80 {
            blob.push((n & 0x7f) as u8 | 0x80);
            n >>= 7;
        }
        blob.push(n as u8);
        blob.extend_from_slice(s);
    }
    blob
}

/// A 64-bit little-endian ELF executable whose only content is a `.go.buildinfo` section
/// holding `blob`, found through its section headers as Go's own reader finds it.
pub fn fake_go_elf(machine: u16, blob: &[u8]) -> Vec<u8> {
    let mut f = fake_elf(machine, ET_EXEC, 0);
    f.extend_from_slice(blob); // at offset 64, a 16-byte boundary
    let names_at = f.len();
    f.extend_from_slice(b"\0.go.buildinfo\0.shstrtab\0");
    while !f.len().is_multiple_of(8) {
        f.push(0);
    }
    let headers_at = f.len();
    // name, type, flags, addr, offset, size, align: the null section, the blob, the names.
    let sections: [(u32, u32, u64, u64, u64, u64, u64); 3] = [
        (0, 0, 0, 0, 0, 0, 0),
        (1, 1, 3, 0x40_0000, 64, blob.len() as u64, 16),
        (15, 3, 0, 0, names_at as u64, 25, 1),
    ];
    for (name, kind, flags, addr, offset, size, align) in sections {
        let mut h = Vec::with_capacity(64);
        h.extend_from_slice(&name.to_le_bytes());
        h.extend_from_slice(&kind.to_le_bytes());
        for v in [flags, addr, offset, size] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&[0; 8]); // link, info
        h.extend_from_slice(&align.to_le_bytes());
        h.extend_from_slice(&[0; 8]); // entry size
        f.extend_from_slice(&h);
    }
    f[40..48].copy_from_slice(&(headers_at as u64).to_le_bytes());
    f[58..60].copy_from_slice(&64u16.to_le_bytes()); // section header size
    f[60..62].copy_from_slice(&3u16.to_le_bytes()); // section count
    f[62..64].copy_from_slice(&2u16.to_le_bytes()); // names section index
    f
}
