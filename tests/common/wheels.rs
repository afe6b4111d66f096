//! Builds real wheel files (dist-info with METADATA, WHEEL, RECORD) and locks naming them, for
//! the site-packages tests.
#![allow(dead_code)]

use std::io::{Cursor, Read, Write};
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;

/// One wheel to build.
pub struct Wheel {
    pub name: String,
    pub version: String,
    pub tag: String,
    pub files: Vec<(String, Vec<u8>)>,
    pub entry_points: Option<String>,
    /// Replace one file's RECORD hash with this value.
    pub bad_record: Option<(String, String)>,
}

impl Wheel {
    pub fn new(name: &str, version: &str, tag: &str) -> Wheel {
        Wheel {
            name: name.into(),
            version: version.into(),
            tag: tag.into(),
            files: Vec::new(),
            entry_points: None,
            bad_record: None,
        }
    }

    pub fn file(mut self, path: &str, data: &[u8]) -> Wheel {
        self.files.push((path.into(), data.to_vec()));
        self
    }

    pub fn file_name(&self) -> String {
        format!("{}-{}-{}.whl", self.name.replace('-', "_"), self.version, self.tag)
    }

    pub fn dist_info(&self) -> String {
        format!("{}-{}.dist-info", self.name.replace('-', "_"), self.version)
    }

    pub fn bytes(&self) -> Vec<u8> {
        let di = self.dist_info();
        let mut files = self.files.clone();
        files.push((
            format!("{di}/METADATA"),
            format!(
                "Metadata-Version: 2.1\nName: {}\nVersion: {}\n",
                self.name, self.version
            )
            .into_bytes(),
        ));
        let pure = self.tag.ends_with("-none-any");
        let tags: String = expand(&self.tag).iter().map(|t| format!("Tag: {t}\n")).collect();
        files.push((
            format!("{di}/WHEEL"),
            format!("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {pure}\n{tags}\n").into_bytes(),
        ));
        if let Some(ep) = &self.entry_points {
            files.push((format!("{di}/entry_points.txt"), ep.clone().into_bytes()));
        }
        let mut record = String::new();
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (path, data) in &files {
            w.start_file(path.as_str(), SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
            let mut hash = format!("sha256={}", urlsafe(data));
            if let Some((p, h)) = &self.bad_record
                && p == path
            {
                hash = h.clone();
            }
            record.push_str(&format!("{path},{hash},{}\n", data.len()));
        }
        record.push_str(&format!("{di}/RECORD,,\n"));
        w.start_file(format!("{di}/RECORD"), SimpleFileOptions::default())
            .unwrap();
        w.write_all(record.as_bytes()).unwrap();
        w.finish().unwrap().into_inner()
    }
}

/// `cp39-cp39-a.b` -> every tag it stands for.
fn expand(tag: &str) -> Vec<String> {
    let parts: Vec<&str> = tag.splitn(3, '-').collect();
    let mut out = Vec::new();
    for py in parts[0].split('.') {
        for abi in parts[1].split('.') {
            for plat in parts[2].split('.') {
                out.push(format!("{py}-{abi}-{plat}"));
            }
        }
    }
    out
}

pub fn urlsafe(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes the wheels into `wheelhouse` and returns (file name, sha256) of each.
pub fn write_wheels(wheelhouse: &Path, wheels: &[&Wheel]) -> Vec<(String, String)> {
    std::fs::create_dir_all(wheelhouse).unwrap();
    wheels
        .iter()
        .map(|w| {
            let data = w.bytes();
            std::fs::write(wheelhouse.join(w.file_name()), &data).unwrap();
            (w.file_name(), sha256_hex(&data))
        })
        .collect()
}

/// One lock pin over the given wheels, with an optional marker, in `layerbuild lock`'s format.
pub fn pin(name: &str, version: &str, marker: Option<&str>, wheels: &[(String, String)]) -> String {
    let mut s = format!("{name}=={version}");
    if let Some(m) = marker {
        s.push_str(&format!(" ; {m}"));
    }
    for (_, sha) in wheels {
        s.push_str(&format!(" \\\n    --hash=sha256:{sha}"));
    }
    s.push('\n');
    for (file, sha) in wheels {
        s.push_str(&format!("    #   wheel: {file} sha256={sha}\n"));
    }
    s
}

/// The 64-byte ELF header of a shared object for the given machine.
pub fn elf_so(machine: u16) -> Vec<u8> {
    crate::elf::fake_elf(machine, crate::elf::ET_DYN, 0)
}

/// Every file of a zip: name -> (unix mode, bytes).
pub fn read_zip(path: &Path) -> std::collections::BTreeMap<String, (u32, Vec<u8>)> {
    let data = std::fs::read(path).unwrap();
    let mut z = zip::ZipArchive::new(Cursor::new(data)).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        if f.is_dir() {
            continue;
        }
        let mode = f.unix_mode().unwrap_or(0);
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        out.insert(f.name().unwrap().to_string(), (mode, buf));
    }
    out
}
