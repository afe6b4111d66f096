//! End to end: the collector sources `path`, `zip` and `go`, and the real reduced collector.

mod common;

use std::path::Path;

use common::*;
use predicates::prelude::*;
use predicates::str::contains;
use sha2::{Digest, Sha256};

fn spec_with_source(dir: &Path, source: &str) {
    let spec = format!(
        "name: c\nversion: 1.0.0\narchitectures: [x86_64, arm64]\ncollector:\n  source: {source}\n  config:\n    src: config.yaml\n    dest: collector-config/config.yaml\n"
    );
    write(dir, "layer.yaml", spec.as_bytes());
    write(dir, "config.yaml", CONFIG.as_bytes());
}

fn zip_entry(zip: &Path, name: &str) -> Vec<u8> {
    read_zip(zip)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, _, d)| d)
        .expect("entry present")
}

#[test]
fn zip_source_takes_the_binary_out_of_a_pinned_zip() {
    let d = tempfile::tempdir().unwrap();
    let upstream = d.path().join("upstream.zip");
    let elf = fake_elf(EM_X86_64, ET_EXEC, 100);
    write_zip(
        &upstream,
        &[
            ("extensions/".into(), 0o40755, vec![]),
            ("extensions/collector".into(), 0o100755, elf.clone()),
        ],
    );
    let sha = hex::encode(Sha256::digest(std::fs::read(&upstream).unwrap()));
    spec_with_source(d.path(), &format!("{{zip: upstream.zip, sha256: {sha}}}"));
    layerbuild(d.path()).args(["--arch", "x86_64"]).assert().success();
    assert_eq!(
        zip_entry(&d.path().join("dist/c-amd64-ver-1-0-0.zip"), "extensions/collector"),
        elf
    );
    // The same zip for arm64 holds an x86_64 binary: the ELF check must refuse it.
    layerbuild(d.path())
        .args(["--arch", "arm64"])
        .assert()
        .code(1)
        .stderr(contains("but the layer is arm64"));

    let wrong = "0".repeat(64);
    spec_with_source(d.path(), &format!("{{zip: upstream.zip, sha256: {wrong}}}"));
    layerbuild(d.path())
        .args(["--arch", "x86_64", "--out", "out2"])
        .assert()
        .code(1)
        .stderr(contains(format!(
            "upstream.zip: sha256 is {sha} but the spec pins {wrong}"
        )));
    assert!(!d.path().join("out2/c-amd64-ver-1-0-0.zip").exists());
}

#[test]
fn zip_source_without_the_member_fails() {
    let d = tempfile::tempdir().unwrap();
    let upstream = d.path().join("upstream.zip");
    write_zip(&upstream, &[("README".into(), 0o100644, b"hi".to_vec())]);
    let sha = hex::encode(Sha256::digest(std::fs::read(&upstream).unwrap()));
    spec_with_source(d.path(), &format!("{{zip: upstream.zip, sha256: {sha}}}"));
    layerbuild(d.path())
        .assert()
        .code(1)
        .stderr(contains("has no `extensions/collector`"));
}

const HELLO_GO: &str =
    "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from the collector stand-in\") }\n";

fn go_module(dir: &Path, main: &str) {
    write(dir, "gomod/go.mod", b"module example.com/standin\n\ngo 1.21\n");
    write(dir, "gomod/main.go", main.as_bytes());
}

#[test]
#[ignore = "toolchain: needs Go"]
fn go_source_builds_both_arches_reproducibly() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        go_module(d.path(), HELLO_GO);
        spec_with_source(d.path(), "{go: gomod}");
        // Separate caches: the second build really runs go build again.
        layerbuild(d.path()).assert().success();
    }
    for (zip, machine) in [
        ("c-amd64-ver-1-0-0.zip", EM_X86_64),
        ("c-arm64-ver-1-0-0.zip", EM_AARCH64),
    ] {
        let bin_a = zip_entry(&a.path().join("dist").join(zip), "extensions/collector");
        let bin_b = zip_entry(&b.path().join("dist").join(zip), "extensions/collector");
        assert!(bin_a == bin_b, "{zip}: two go builds differ");
        assert_eq!(machine_of(&bin_a), machine);
    }
    let bin = zip_entry(&a.path().join("dist/c-amd64-ver-1-0-0.zip"), "extensions/collector");
    let exe = a.path().join("collector-x86_64");
    std::fs::write(&exe, bin).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&exe).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the collector stand-in\n"
    );
    // A second build with the same inputs comes from the cache, byte for byte.
    let before = std::fs::read(a.path().join("dist/c-arm64-ver-1-0-0.zip")).unwrap();
    layerbuild(a.path()).args(["--arch", "arm64"]).assert().success();
    assert_eq!(
        before,
        std::fs::read(a.path().join("dist/c-arm64-ver-1-0-0.zip")).unwrap()
    );
}

#[test]
#[ignore = "toolchain: needs Go"]
fn go_build_failure_shows_go_message() {
    let d = tempfile::tempdir().unwrap();
    go_module(d.path(), "package main\n\nfunc main() { undefinedThing() }\n");
    spec_with_source(d.path(), "{go: gomod}");
    layerbuild(d.path())
        .args(["--arch", "x86_64"])
        .assert()
        .code(1)
        .stderr(contains("`go build").and(contains("undefined: undefinedThing")));
    assert_eq!(files_in(&d.path().join("dist")), Vec::<String>::new());
}

/// The components the reduced ADOT collector must have, as `components` prints them.
const COMPONENTS: [(&str, &[&str]); 4] = [
    ("receivers", &["otlp", "telemetryapi"]),
    ("processors", &["lambdabuffer"]),
    (
        "exporters",
        &[
            "awsemf",
            "awsxray",
            "debug",
            "logging",
            "otlp",
            "otlphttp",
            "prometheusremotewrite",
        ],
    ),
    ("extensions", &["sigv4auth"]),
];

#[test]
#[ignore = "slow: builds the real collector from the pinned Go modules"]
fn real_collector_has_the_reduced_component_set() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = tempfile::tempdir().unwrap();
    let spec = format!(
        "name: c\nversion: 1.0.0\narchitectures: [x86_64, arm64]\ncollector:\n  source: {{go: {}}}\n  config:\n    src: {}\n    dest: collector-config/config.yaml\n",
        root.join("collector").display(),
        root.join("collector-config/config.yaml").display()
    );
    write(d.path(), "layer.yaml", spec.as_bytes());
    // The real collector build is slow: share the developer's cache instead of a private one.
    // The sources are the repository's, outside the spec's folder: the user names that root.
    layerbuild_shared_cache(d.path())
        .arg("--source-root")
        .arg(root)
        .assert()
        .success();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("dist/c-arm64-ver-1-0-0.manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["collector"]["elf_machine"], "arm64 (EM_AARCH64)");
    assert!(
        manifest["collector"]["module_version"]
            .as_str()
            .unwrap()
            .contains(" v0."),
        "{manifest}"
    );

    let bin = zip_entry(&d.path().join("dist/c-amd64-ver-1-0-0.zip"), "extensions/collector");
    let exe = d.path().join("collector");
    std::fs::write(&exe, bin).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&exe).arg("components").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_norway::Value = serde_norway::from_slice(&out.stdout).unwrap();
    for (kind, want) in COMPONENTS {
        let mut got: Vec<String> = listed[kind]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .map(|c| c["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        got.sort();
        assert_eq!(got, want, "{kind}");
    }
    // The layer's default config and docs/layer.md's logs config load in this binary.
    let docs = std::fs::read_to_string(root.join("docs/layer.md")).unwrap();
    let logs = docs
        .split_once("<!-- telemetryapi-logs-config")
        .and_then(|(_, rest)| rest.split_once("```yaml\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("docs/layer.md lost its telemetryapi logs config");
    write(d.path(), "logs.yaml", logs.as_bytes());
    for config in [d.path().join("logs.yaml"), root.join("collector-config/config.yaml")] {
        let out = std::process::Command::new(&exe)
            .args(["validate", "--config"])
            .arg(&config)
            .env("OTLP_TOKEN", "t")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
