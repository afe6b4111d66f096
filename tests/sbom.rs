//! End to end: the CycloneDX SBOM `build` writes beside each zip, `verify` checks and `sbom`
//! prints for any zip; then the SBOMs of the default and the current layers against
//! CycloneDX's own validator and against what syft finds in the unpacked zips.

mod common;
// wheels.rs reaches the ELF helpers as `crate::elf`; common holds them already.
use common as elf;
#[path = "sbom/fixture.rs"]
mod fixture;
#[path = "sbom/tools.rs"]
mod tools;
#[path = "common/wheels.rs"]
mod wheels;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{AMD64_ZIP, layerbuild};
use fixture::*;
use predicates::str::contains;
use serde_json::Value;
use wheels::sha256_hex;

#[test]
fn build_writes_an_sbom_of_the_layer_and_its_wheels() {
    let d = tempfile::tempdir().unwrap();
    let wheels = fixture(d.path());
    build(d.path());
    let dist = d.path().join("dist");
    let doc = read_json(&dist.join(AMD64_SBOM));
    assert_eq!(
        (doc["bomFormat"].as_str(), doc["specVersion"].as_str()),
        (Some("CycloneDX"), Some("1.5"))
    );
    assert!(doc["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
    assert_eq!(doc["metadata"]["timestamp"], "1980-01-01T00:00:00Z");
    let layer = &doc["metadata"]["component"];
    assert_eq!(layer["purl"], "pkg:generic/demo-layer@1.2.3?arch=x86_64");
    assert_eq!(sha(layer), sha256_hex(&std::fs::read(dist.join(AMD64_ZIP)).unwrap()));

    let wheel_sha = |file: &str| wheels.iter().find(|(f, _)| f == file).unwrap().1.clone();
    let alpha = by_ref(&doc, "wheel:alpha-1.0-py3-none-any.whl");
    assert_eq!(alpha["purl"], "pkg:pypi/alpha@1.0");
    assert_eq!(sha(alpha), wheel_sha("alpha-1.0-py3-none-any.whl"));
    assert_eq!(alpha["licenses"][0]["license"]["id"], "MIT");
    assert_eq!(prop(alpha, "layerbuild:python:arch"), ["any"]);
    assert_eq!(prop(alpha, "layerbuild:python:runtimes"), ["python3.9"]);
    assert_eq!(
        prop(alpha, "layerbuild:python:dist-info"),
        ["python/alpha-1.0.dist-info"]
    );
    let beta = by_ref(&doc, "wheel:Beta_Pkg-2.0-py3-none-any.whl");
    assert_eq!(beta["purl"], "pkg:pypi/beta-pkg@2.0");
    assert_eq!(beta["licenses"][0]["license"]["name"], "Apache 2.0");
    let gamma = by_ref(&doc, "wheel:gamma-3.0-cp39-cp39-manylinux2014_x86_64.whl");
    assert_eq!(gamma["licenses"][0]["license"]["name"], "BSD License");
    assert_eq!(prop(gamma, "layerbuild:python:arch"), ["x86_64"]);
    assert_eq!(sha(gamma), wheel_sha("gamma-3.0-cp39-cp39-manylinux2014_x86_64.whl"));
    let arm = read_json(&dist.join(ARM64_SBOM));
    let gamma_arm = by_ref(&arm, "wheel:gamma-3.0-cp39-cp39-manylinux2014_aarch64.whl");
    assert_eq!(prop(gamma_arm, "layerbuild:python:arch"), ["arm64"]);
}

#[test]
fn the_sbom_names_the_collector_its_modules_and_the_layers_files() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    build(d.path());
    let dist = d.path().join("dist");
    let doc = read_json(&dist.join(AMD64_SBOM));

    let collector = by_ref(&doc, "file:extensions/collector");
    assert_eq!(
        (collector["name"].as_str(), collector["version"].as_str()),
        (Some("example.com/collector"), Some("(devel)"))
    );
    assert_eq!(
        sha(collector),
        sha256_hex(&std::fs::read(d.path().join("bin/collector-amd64")).unwrap())
    );
    assert_eq!(prop(collector, "layerbuild:go:version"), [GO_VERSION]);
    assert!(prop(collector, "layerbuild:go:build").contains(&"GOARCH=amd64".to_string()));
    let module = by_ref(&doc, "go:github.com/a/b@v1.2.3");
    assert_eq!(module["purl"], "pkg:golang/github.com/a/b@v1.2.3");
    assert_eq!(sha(module), EMPTY_SHA);
    assert_eq!(by_ref(&doc, "go:stdlib@go1.22.5")["purl"], "pkg:golang/stdlib@1.22.5");
    let edges = doc["dependencies"].as_array().unwrap();
    let from_collector = edges.iter().find(|e| e["ref"] == "file:extensions/collector").unwrap();
    assert_eq!(
        from_collector["dependsOn"],
        serde_json::json!([
            "go:github.com/a/b@v1.2.3",
            "go:go.opentelemetry.io/collector/otelcol@v0.109.0",
            "go:stdlib@go1.22.5"
        ])
    );

    let files: BTreeSet<&str> = components(&doc)
        .iter()
        .filter(|c| c["type"] == "file")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let expect = [
        "collector-config/config.yaml",
        "otel-instrument",
        "python/demo/__init__.py",
        "python/demo/_native.cpython-39-x86_64-linux-gnu.so.txt",
        "python/otel_wrapper.py",
    ];
    assert_eq!(files, BTreeSet::from(expect));
    assert_eq!(
        sha(by_ref(&doc, "file:otel-instrument")),
        sha256_hex(b"#!/bin/sh\nexec \"$@\"\n")
    );

    let sbom_sha = sha256_hex(&std::fs::read(dist.join(AMD64_SBOM)).unwrap());
    let manifest = read_json(&dist.join("demo-layer-amd64-ver-1-2-3.manifest.json"));
    assert_eq!(manifest["schema_version"], 2);
    assert_eq!(manifest["sbom"]["sha256"], sbom_sha.as_str());
    let sums = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&format!("{sbom_sha} *{AMD64_SBOM}\n")), "{sums}");
}

#[test]
fn sboms_are_the_same_bytes_for_the_same_inputs() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    fixture(a.path());
    fixture(b.path());
    build(a.path());
    build(b.path());
    for name in [AMD64_SBOM, ARM64_SBOM] {
        let sa = std::fs::read(a.path().join("dist").join(name)).unwrap();
        assert!(
            sa == std::fs::read(b.path().join("dist").join(name)).unwrap(),
            "{name} differs"
        );
    }
    let first = read_json(&a.path().join("dist").join(AMD64_SBOM));
    layerbuild(b.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--out", "dist", "--wheelhouse", "wheelhouse", "--no-bytecode"])
        .assert()
        .success();
    let dated = read_json(&b.path().join("dist").join(AMD64_SBOM));
    assert_eq!(dated["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    assert_ne!(
        dated["serialNumber"], first["serialNumber"],
        "another zip, another serial number"
    );
}

/// Rewrites the amd64 SBOM with `change` applied, then `verify` must fail saying `message`.
/// With `rehash`, the manifest's record of the SBOM is rewritten to the new bytes too, as
/// anyone who can change the folder can: then what the SBOM says must refuse it.
fn tampered_fails(dir: &Path, message: &str, rehash: bool, change: impl FnOnce(&mut Value)) {
    let path = dir.join("dist").join(AMD64_SBOM);
    let manifest = dir.join("dist").join(AMD64_ZIP.replace(".zip", ".manifest.json"));
    let (original, original_manifest) = (std::fs::read(&path).unwrap(), std::fs::read(&manifest).unwrap());
    let mut doc: Value = serde_json::from_slice(&original).unwrap();
    change(&mut doc);
    let tampered = serde_json::to_vec_pretty(&doc).unwrap();
    std::fs::write(&path, &tampered).unwrap();
    if rehash {
        let mut m: Value = serde_json::from_slice(&original_manifest).unwrap();
        m["sbom"]["sha256"] = sha256_hex(&tampered).into();
        std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
    layerbuild(dir)
        .args(["verify", &format!("dist/{AMD64_ZIP}")])
        .assert()
        .code(1)
        .stderr(contains(AMD64_SBOM))
        .stderr(contains(message));
    std::fs::write(&path, original).unwrap();
    std::fs::write(&manifest, original_manifest).unwrap();
}

fn component_mut<'a>(doc: &'a mut Value, r: &str) -> &'a mut Value {
    doc["components"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["bom-ref"] == r)
        .unwrap()
}

#[test]
fn verify_fails_on_a_tampered_sbom() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    build(d.path());
    let verify_ok = || {
        let out = layerbuild(d.path())
            .args(["verify", &format!("dist/{AMD64_ZIP}")])
            .assert()
            .success();
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    };
    // The report names what it checked beside the zip.
    let said = verify_ok();
    assert!(
        said.contains(&format!("also checked {AMD64_ZIP}.sha256, {AMD64_SBOM})")),
        "{said}"
    );
    tampered_fails(
        d.path(),
        "says `python/alpha-1.0.dist-info` is alpha 1.1",
        true,
        |doc| {
            component_mut(doc, "wheel:alpha-1.0-py3-none-any.whl")["version"] = "1.1".into();
        },
    );
    tampered_fails(
        d.path(),
        "lists no component for `python/gamma-3.0.dist-info`",
        true,
        |doc| {
            let list = doc["components"].as_array_mut().unwrap();
            list.retain(|c| !c["name"].as_str().unwrap().starts_with("gamma"));
        },
    );
    tampered_fails(
        d.path(),
        "gives the collector `extensions/collector` sha256 0000",
        true,
        |doc| {
            component_mut(doc, "file:extensions/collector")["hashes"][0]["content"] = "0".repeat(64).into();
        },
    );
    tampered_fails(d.path(), "describes a zip with sha256", true, |doc| {
        doc["metadata"]["component"]["hashes"][0]["content"] = "1".repeat(64).into();
    });
    // Still a true description, but not the bytes the manifest hashed.
    tampered_fails(d.path(), "it was changed after the build", false, |doc| {
        doc["metadata"]["timestamp"] = "2001-01-01T00:00:00Z".into();
    });
    verify_ok();
    // Like the `.sha256`, the SBOM is checked when it travels with the zip.
    std::fs::remove_file(d.path().join("dist").join(AMD64_SBOM)).unwrap();
    let said = verify_ok();
    assert!(said.contains(&format!("also checked {AMD64_ZIP}.sha256)")), "{said}");
    std::fs::remove_file(d.path().join("dist").join(format!("{AMD64_ZIP}.sha256"))).unwrap();
    let said = verify_ok();
    assert!(said.contains("; no .sha256 or SBOM beside it)"), "{said}");
    std::fs::create_dir(d.path().join("dist").join(AMD64_SBOM)).unwrap();
    layerbuild(d.path())
        .args(["verify", &format!("dist/{AMD64_ZIP}")])
        .assert()
        .code(1)
        .stderr(contains("cannot be read"));
}

#[test]
fn sbom_of_our_own_zip_names_what_the_build_named() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    build(d.path());
    let out = layerbuild(d.path())
        .args(["sbom", &format!("dist/{AMD64_ZIP}")])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let read: Value = serde_json::from_slice(&out).unwrap();
    let built = read_json(&d.path().join("dist").join(AMD64_SBOM));
    let names = |doc: &Value| -> BTreeSet<(String, String, String)> {
        components(doc)
            .iter()
            .map(|c| {
                let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                (s("name"), s("version"), s("purl"))
            })
            .collect()
    };
    assert_eq!(names(&read), names(&built));
    assert_eq!(
        read["metadata"]["component"]["purl"],
        built["metadata"]["component"]["purl"]
    );
    assert_eq!(read["metadata"]["timestamp"], built["metadata"]["timestamp"]);
    // From the zip alone there is no wheel to hash.
    let alpha = components(&read).iter().find(|c| c["name"] == "alpha").unwrap();
    assert!(alpha.get("hashes").is_none(), "{alpha}");
}

#[test]
fn sbom_reads_a_foreign_zip_alone() {
    let d = tempfile::tempdir().unwrap();
    foreign_zip(&d.path().join("foreign.zip"));
    let run = || {
        layerbuild(d.path())
            .args(["sbom", "foreign.zip"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let out = run();
    assert_eq!(out, run(), "same zip, same bytes");
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["metadata"]["component"]["purl"], "pkg:generic/foreign?arch=arm64");
    let tool = by_ref(&doc, "python:python/lib/python3.11/site-packages/tool-0.5.dist-info");
    assert_eq!(tool["licenses"][0]["expression"], "Apache-2.0 OR MIT");
    assert_eq!(prop(tool, "layerbuild:python:runtimes"), ["python3.11"]);
    let old = by_ref(&doc, "python:python/old_lib-1.2-py3.11.egg-info");
    assert_eq!(
        (old["purl"].as_str(), old["licenses"][0]["license"]["id"].as_str()),
        (Some("pkg:pypi/old-lib@1.2"), Some("GPL-2.0-only"))
    );
    let agent = by_ref(&doc, "file:extensions/agent");
    assert_eq!(prop(agent, "layerbuild:go:version"), ["go1.21.0"]);
    let files: BTreeSet<&str> = components(&doc)
        .iter()
        .filter(|c| c["type"] == "file")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(files, BTreeSet::from(["bootstrap-notes.txt", "extensions/hello.sh"]));

    std::fs::write(d.path().join("broken.zip"), b"PK\x03\x04 not really").unwrap();
    layerbuild(d.path())
        .args(["sbom", "broken.zip"])
        .assert()
        .code(1)
        .stderr(contains("broken.zip: cannot make its SBOM"));
}

/// The default layers `make layers` builds into dist/.
fn default_zips() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let zips: Vec<PathBuf> = [
        "aws-otel-python-amd64-ver-1-20-0.zip",
        "aws-otel-python-arm64-ver-1-20-0.zip",
    ]
    .iter()
    .map(|z| root.join("dist").join(z))
    .collect();
    for z in &zips {
        assert!(z.is_file(), "{} is missing: run `make layers` first", z.display());
    }
    zips
}

/// The current layer's zips (examples/current/layer.yaml), both architectures: those in
/// `$LAYERBUILD_CURRENT_DIST`, else in dist/current/, which `make current` fills.
fn current_zips() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("LAYERBUILD_CURRENT_DIST")
        .filter(|v| !v.is_empty())
        .map_or_else(|| root.join("dist/current"), PathBuf::from);
    let mut zips: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run `make current` first", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    zips.sort();
    let names: Vec<String> = zips
        .iter()
        .map(|z| z.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for arch in ["-amd64-", "-arm64-"] {
        let n = names.iter().filter(|n| n.contains(arch)).count();
        assert_eq!(
            n,
            1,
            "{}: want one {arch} zip, found {names:?}: run `make current`",
            dir.display()
        );
    }
    assert_eq!(zips.len(), 2, "{}: want two zips, found {names:?}", dir.display());
    zips
}

/// Every layer the SBOM is proven on: the default one and the current one.
fn proven_zips() -> Vec<PathBuf> {
    default_zips().into_iter().chain(current_zips()).collect()
}

fn sbom_beside(zip: &Path) -> PathBuf {
    let stem = zip.file_stem().unwrap().to_string_lossy();
    zip.with_file_name(format!("{stem}.cdx.json"))
}

#[test]
#[ignore = "needs pip (cyclonedx-python-lib), the default layers in dist/ and the current ones in dist/current/"]
fn cyclonedx_python_lib_accepts_our_sboms() {
    let d = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = proven_zips().iter().map(|z| sbom_beside(z)).collect();
    foreign_zip(&d.path().join("foreign.zip"));
    let zips = [d.path().join("foreign.zip"), default_zips()[0].clone()];
    for (i, zip) in zips.iter().enumerate() {
        let out = d.path().join(format!("read-{i}.cdx.json"));
        layerbuild(d.path())
            .arg("sbom")
            .arg(zip)
            .arg("--output")
            .arg(&out)
            .assert()
            .success();
        files.push(out);
    }
    let results = tools::validate(&files);
    let invalid: Vec<_> = results.iter().filter(|(_, e)| e.is_some()).collect();
    assert!(invalid.is_empty(), "{invalid:#?}");
}

/// `(devel)`: Go's version for the main module of a local build; syft reports it as
/// `UNKNOWN` (see README.md, "The SBOM").
fn same_version(ours: &str, syft: &str) -> bool {
    ours == syft || (ours == "(devel)" && syft == "UNKNOWN")
}

#[test]
#[ignore = "needs go (builds syft), the default layers in dist/ and the current ones in dist/current/"]
fn syft_finds_nothing_our_sbom_misses() {
    for zip in proven_zips() {
        let tree = tempfile::tempdir().unwrap();
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
        archive.extract(tree.path()).unwrap();
        let report = tools::syft_scan(tree.path());
        let ours = read_json(&sbom_beside(&zip));
        let normalize = |n: &str| n.to_ascii_lowercase().replace(['_', '.'], "-");
        let listed: Vec<(String, String)> = components(&ours)
            .iter()
            .map(|c| {
                (
                    normalize(c["name"].as_str().unwrap()),
                    c["version"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let mut seen = BTreeSet::new();
        let mut missing = Vec::new();
        for a in report["artifacts"].as_array().unwrap() {
            let kind = a["type"].as_str().unwrap();
            if kind != "python" && kind != "go-module" {
                continue;
            }
            let (name, version) = (normalize(a["name"].as_str().unwrap()), a["version"].as_str().unwrap());
            match listed.iter().find(|(n, v)| *n == name && same_version(v, version)) {
                Some(found) => {
                    seen.insert(found.clone());
                }
                None => missing.push(format!("{kind} {name} {version}")),
            }
        }
        assert!(
            missing.is_empty(),
            "{}: syft finds what our SBOM lacks: {missing:#?}",
            zip.display()
        );
        // What we list beyond syft: each kind is explained in README.md.
        let extra: Vec<_> = components(&ours)
            .iter()
            .filter(|c| c["type"] != "file")
            .filter(|c| {
                let key = (
                    normalize(c["name"].as_str().unwrap()),
                    c["version"].as_str().unwrap_or("").to_string(),
                );
                !seen.contains(&key)
            })
            .map(|c| c["bom-ref"].as_str().unwrap().to_string())
            .collect();
        eprintln!("{}: listed by us, not by syft: {extra:?}", zip.display());
        assert!(
            extra.is_empty(),
            "{}: components syft does not find: {extra:#?}",
            zip.display()
        );
    }
}

#[test]
#[ignore = "needs go and the default layers in dist/"]
fn collector_build_info_is_what_go_version_m_reads() {
    let zip = &default_zips()[0];
    let tree = tempfile::tempdir().unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    archive.extract(tree.path()).unwrap();
    let out = std::process::Command::new("go")
        .args(["version", "-m"])
        .arg(tree.path().join("extensions/collector"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let go_version = text.lines().next().unwrap().rsplit(": ").next().unwrap().trim();
    let ours = read_json(&sbom_beside(zip));
    let collector = by_ref(&ours, "file:extensions/collector");
    assert_eq!(prop(collector, "layerbuild:go:version"), [go_version]);
    let deps: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("dep\t"))
        .map(|l| {
            let mut f = l.split('\t');
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect();
    let listed: BTreeSet<(String, String)> = components(&ours)
        .iter()
        .filter(|c| c["bom-ref"].as_str().unwrap().starts_with("go:") && c["name"] != "stdlib")
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(deps.len() > 100, "the collector links many modules: {}", deps.len());
    assert_eq!(listed, deps);
    let settings: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("build\t"))
        .map(str::to_string)
        .collect();
    assert_eq!(prop(collector, "layerbuild:go:build"), settings);
}

#[test]
#[ignore = "needs the default layers in dist/ and their toolchain (a warm rebuild)"]
fn the_default_layers_rebuild_to_the_same_sbom() {
    let zips = default_zips();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("layerbuild").unwrap();
    cmd.current_dir(root)
        .arg("--out")
        .arg(out.path())
        .arg("-q")
        .assert()
        .success();
    for zip in zips {
        let name = sbom_beside(&zip).file_name().unwrap().to_owned();
        let again = std::fs::read(out.path().join(&name)).unwrap();
        assert!(
            again == std::fs::read(sbom_beside(&zip)).unwrap(),
            "{name:?} differs from dist/"
        );
    }
}

#[test]
fn verify_takes_manifests_from_before_sboms() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    build(d.path());
    let path = d.path().join("dist/demo-layer-amd64-ver-1-2-3.manifest.json");
    let mut manifest = read_json(&path);
    manifest["schema_version"] = 1.into();
    manifest.as_object_mut().unwrap().remove("sbom");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    // A schema 1 manifest names no SBOM: the one beside the zip is not checked.
    std::fs::write(d.path().join("dist").join(AMD64_SBOM), b"{}").unwrap();
    layerbuild(d.path())
        .args(["verify", &format!("dist/{AMD64_ZIP}")])
        .assert()
        .success();
}
