//! End to end: `layerbuild diff` on two hermetic builds that differ by one package.

#[path = "common/elf.rs"]
mod elf;
#[path = "common/wheels.rs"]
mod wheels;

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use wheels::*;

const ZIP: &str = "sp-amd64-ver-1-0.zip";
const MANIFEST: &str = "sp-amd64-ver-1-0.manifest.json";

fn pure(name: &str, version: &str) -> Wheel {
    Wheel::new(name, version, "py3-none-any")
        .file(&format!("{name}/__init__.py"), format!("V = '{version}'\n").as_bytes())
}

/// Builds the x86_64 layer of `alpha` 1.0 and the given `beta` into `dir/out`.
fn build(dir: &Path, out: &str, beta: &Wheel, beta_version: &str) {
    std::fs::write(
        dir.join("layer.yaml"),
        "name: sp\nversion: '1.0'\narchitectures: [x86_64]\nruntimes: [python3.9]\npython:\n  lock: requirements.txt\n",
    )
    .unwrap();
    let house = dir.join("wheelhouse");
    let alpha = write_wheels(&house, &[&pure("alpha", "1.0")]);
    let b = write_wheels(&house, &[beta]);
    let lock = format!(
        "{}{}",
        pin("alpha", "1.0", None, &alpha),
        pin("beta", beta_version, None, &b)
    );
    std::fs::write(dir.join("requirements.txt"), lock).unwrap();
    layerbuild(dir)
        .args(["build", "--out", out, "--wheelhouse", "wheelhouse", "--no-bytecode"])
        .assert()
        .success();
}

fn layerbuild(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("layerbuild").unwrap();
    c.current_dir(dir)
        .env("LAYERBUILD_CACHE", dir.join("cache"))
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

fn two_builds() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    build(d.path(), "old", &pure("beta", "1.0"), "1.0");
    // 1.1 also ships a data file, the largest change of all.
    let newer = pure("beta", "1.1").file("beta/data.txt", &[b'x'; 5000]);
    build(d.path(), "new", &newer, "1.1");
    d
}

fn diff(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = layerbuild(dir).arg("diff").args(args).output().unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn one_package_bump_shows_as_that_package_and_its_files() {
    let d = two_builds();
    let (old, new) = (format!("old/{ZIP}"), format!("new/{ZIP}"));
    let (code, out, _) = diff(d.path(), &[&old, &new]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("packages:\n  ~ beta 1.0 -> 1.1\nentries: "), "{out}");
    assert!(!out.contains("alpha"), "{out}");
    let entries: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("entries:"))
        .skip(1)
        .take(2)
        .collect();
    assert!(
        entries[0].starts_with("  +") && entries[0].ends_with("python/beta/data.txt"),
        "{out}"
    );
    assert!(out.contains("python/beta-1.0.dist-info/METADATA") && out.contains("python/beta-1.1.dist-info/METADATA"));
    assert!(out.contains("  ~ ") && out.contains("python/beta/__init__.py"), "{out}");
    assert!(out.contains("\nzipped: ") && out.contains("\nunzipped: "), "{out}");

    let (code, json, _) = diff(
        d.path(),
        &[&format!("old/{MANIFEST}"), &format!("new/{MANIFEST}"), "--json"],
    );
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["same"], false);
    assert_eq!(
        v["diff"]["packages"],
        serde_json::json!([{"name": "beta", "old": "1.0", "new": "1.1"}])
    );
    let deltas: Vec<i64> = v["diff"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["delta"].as_i64().unwrap().abs())
        .collect();
    assert!(deltas.windows(2).all(|w| w[0] >= w[1]), "{deltas:?}");
    assert_eq!(v["diff"]["entries"][0]["change"], "added");
}

#[test]
fn a_zip_without_its_manifest_is_read_from_its_entries() {
    let d = two_builds();
    std::fs::create_dir(d.path().join("bare")).unwrap();
    std::fs::copy(d.path().join("old").join(ZIP), d.path().join("bare").join(ZIP)).unwrap();
    let (code, out, err) = diff(d.path(), &[&format!("bare/{ZIP}"), &format!("new/{ZIP}")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("  ~ beta 1.0 -> 1.1\n"), "{out}");
    assert!(err.contains("no manifest beside it"), "{err}");
    let (code, out, _) = diff(d.path(), &[&format!("bare/{ZIP}"), &format!("old/{ZIP}")]);
    assert_eq!((code, out.as_str()), (0, "no differences\n"));
}

#[test]
fn same_is_0_different_is_1_trouble_is_2() {
    let d = two_builds();
    let (code, out, _) = diff(d.path(), &[&format!("old/{ZIP}"), &format!("old/{MANIFEST}")]);
    assert_eq!((code, out.as_str()), (0, "no differences\n"));
    let (code, _, err) = diff(d.path(), &[&format!("old/{ZIP}"), "missing.zip"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("layerbuild: ") && err.contains("missing.zip"), "{err}");
    // Read as every zip of someone else's is: the canonical scan names what is wrong.
    std::fs::write(d.path().join("junk.zip"), b"not a zip, only some words of text").unwrap();
    let (code, _, err) = diff(d.path(), &[&format!("old/{ZIP}"), "junk.zip"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("junk.zip: has no end of central directory record: not a zip"),
        "{err}"
    );
}
