//! A small real layer built by the binary, and the edits an attacker who controls the output
//! folder makes: rewrite the zip, then bring its manifest and checksum file in line with it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common;
use crate::run::{self, Outcome};

pub const ZIP: &str = common::AMD64_ZIP;
pub const MANIFEST: &str = "demo-layer-amd64-ver-1-2-3.manifest.json";

/// The fixture's amd64 zip and manifest, built once per test process.
fn template() -> &'static (Vec<u8>, Vec<u8>) {
    static BUILT: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        common::fixture(d.path());
        let mut cmd = run::layerbuild(d.path());
        cmd.args(["build", "--arch", "x86_64", "--out", "dist", "--quiet"]);
        run::run(cmd, Duration::from_secs(120)).expect_code(0, "fixture build");
        let dist = d.path().join("dist");
        (
            std::fs::read(dist.join(ZIP)).unwrap(),
            std::fs::read(dist.join(MANIFEST)).unwrap(),
        )
    })
}

/// A folder holding the built zip, its manifest and its `.sha256`.
pub struct Layer {
    pub dir: tempfile::TempDir,
}

impl Layer {
    pub fn new() -> Layer {
        let dir = tempfile::tempdir().unwrap();
        let (zip, manifest) = template();
        std::fs::write(dir.path().join(ZIP), zip).unwrap();
        std::fs::write(dir.path().join(MANIFEST), manifest).unwrap();
        let layer = Layer { dir };
        layer.write_checksum(zip);
        layer
    }

    pub fn zip(&self) -> PathBuf {
        self.dir.path().join(ZIP)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.path().join(MANIFEST)
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(self.zip()).unwrap()
    }

    pub fn manifest(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.manifest_path()).unwrap()).unwrap()
    }

    pub fn set_manifest(&self, m: &Value) {
        std::fs::write(self.manifest_path(), serde_json::to_string_pretty(m).unwrap()).unwrap();
    }

    pub fn edit_manifest(&self, f: impl FnOnce(&mut Value)) {
        let mut m = self.manifest();
        f(&mut m);
        self.set_manifest(&m);
    }

    fn write_checksum(&self, zip: &[u8]) {
        std::fs::write(
            self.dir.path().join(format!("{ZIP}.sha256")),
            format!("{} *{ZIP}\n", hex::encode(Sha256::digest(zip))),
        )
        .unwrap();
    }

    /// Replaces the zip and makes the manifest's zip record and the `.sha256` agree with it, as
    /// anyone able to change the zip can.
    pub fn replace_zip(&self, zip: &[u8]) {
        std::fs::write(self.zip(), zip).unwrap();
        self.write_checksum(zip);
        let digest = Sha256::digest(zip);
        self.edit_manifest(|m| {
            m["zip"]["sha256"] = hex::encode(digest).into();
            m["zip"]["code_sha256"] = base64::engine::general_purpose::STANDARD.encode(digest).into();
            m["zip"]["size"] = (zip.len() as u64).into();
        });
    }

    /// Sets one entry's fields in the manifest (path, then what to change).
    pub fn edit_entry(&self, path: &str, f: impl FnOnce(&mut Value)) {
        self.edit_manifest(|m| {
            let e = m["entries"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|e| e["path"] == path)
                .unwrap_or_else(|| panic!("{path} is in the manifest"));
            f(e);
        });
    }

    pub fn verify_cmd(&self) -> Command {
        let mut cmd = run::layerbuild(self.dir.path());
        cmd.arg("verify").arg(self.zip());
        cmd
    }

    pub fn verify(&self) -> Outcome {
        run::run(self.verify_cmd(), Duration::from_secs(60))
    }
}

/// sha256 hex of bytes.
pub fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The manifest entry record for a file: path, mode, size, sha256.
pub fn entry_record(path: &str, mode: &str, data: &[u8]) -> Value {
    serde_json::json!({"path": path, "mode": mode, "size": data.len(), "sha256": sha(data)})
}

pub fn dir_of(p: &Path) -> &Path {
    p.parent().unwrap()
}
