//! `layerbuild lock`: the real 1.20.0 set for both arches, and per-target answers merged into markers.

use super::*;

/// Locks the real `layer-src/requirements.in` and builds its tree for both architectures.
#[test]
#[ignore = "network: locks and builds the real 1.20.0 set"]
fn real_set_locks_and_builds_for_both_arches() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path().join("layer-src")).unwrap();
    std::fs::copy(
        repo.join("layer-src/requirements.in"),
        dir.path().join("layer-src/requirements.in"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("layer.yaml"),
        "name: real\nversion: '1.20.0'\narchitectures: [x86_64, arm64]\nruntimes: [python3.8, python3.9]\npython:\n  requirements: layer-src/requirements.in\n  lock: layer-src/requirements.txt\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::cargo_bin("layerbuild")
            .unwrap()
            .current_dir(dir.path())
            .env("LAYERBUILD_CACHE", dir.path().join("cache"))
            .args(args)
            .assert()
            .success()
    };
    run(&["lock"]);
    let lock = std::fs::read_to_string(dir.path().join("layer-src/requirements.txt")).unwrap();
    assert!(lock.contains("opentelemetry-distro==0.41b0"), "{lock}");
    assert!(!lock.contains("://"), "the lock must name no index");
    run(&["build", "--out", "dist"]);

    for (zip, machine, em) in [
        ("real-amd64-ver-1-20-0.zip", "x86_64", EM_X86_64),
        ("real-arm64-ver-1-20-0.zip", "aarch64", EM_AARCH64),
    ] {
        let z = read_zip(&dir.path().join("dist").join(zip));
        let site = |p: &str| -> String {
            for v in ["3.8", "3.9"] {
                if let Some(rest) = p.strip_prefix(&format!("python/lib/python{v}/site-packages/")) {
                    return rest.to_string();
                }
            }
            p.strip_prefix("python/").unwrap_or(p).to_string()
        };
        let mut abis: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
        for (path, (_, data)) in &z {
            if path.ends_with(".so") {
                assert_eq!(machine_of(data), em, "{zip}: {path}");
                // A stable-ABI module serves every runtime; CPython prefers its own tag first.
                for (abi, tag) in [
                    ("38", format!(".cpython-38-{machine}-linux-gnu.so")),
                    ("39", format!(".cpython-39-{machine}-linux-gnu.so")),
                    ("abi3", ".abi3.so".to_string()),
                ] {
                    if let Some(module) = site(path).strip_suffix(&tag) {
                        abis.entry(module.to_string()).or_default().push(abi);
                    }
                }
            }
            assert!(!path.contains("cpython-311"), "{zip}: {path} is for the host's Python");
        }
        assert!(abis.keys().any(|m| m.starts_with("grpc/")), "{zip}: {abis:?}");
        for (module, found) in &abis {
            for rt in ["38", "39"] {
                assert!(
                    found.contains(&rt) || found.contains(&"abi3"),
                    "{zip}: {module} has native code for {found:?}, none for cpython-{rt}"
                );
            }
        }
        let (mode, script) = &z["python/bin/opentelemetry-instrument"];
        assert!(script.starts_with(b"#!/usr/bin/env python3\n"));
        assert_eq!(mode & 0o777, 0o755);
        for v in ["3.8", "3.9"] {
            let own = format!("python/lib/python{v}/site-packages/");
            let mut seen = std::collections::BTreeSet::new();
            for path in z.keys().filter(|p| p.ends_with(".dist-info/METADATA")) {
                if path.starts_with("python/lib/") && !path.starts_with(&own) {
                    continue;
                }
                let dist = site(path);
                let project = dist.split('-').next().unwrap().to_lowercase().replace(['-', '.'], "_");
                assert!(
                    seen.insert(project.clone()),
                    "{zip}: two dist-info of {project} for python{v}"
                );
            }
        }
    }
}

/// A stand-in for `python3 -m pip install --dry-run --report`: it "resolves" a fixed set per
/// target, so the lock's merging, markers and hashes are tested without an index.
const FAKE_PIP: &str = r#"#!/bin/sh
report=""; pyv=""; machine=""; nodeps=0
while [ $# -gt 0 ]; do
  case "$1" in
    --report) report="$2"; shift;;
    --python-version) pyv="$2"; shift;;
    --platform) case "$2" in *x86_64) machine=x86_64;; *aarch64) machine=aarch64;; esac; shift;;
    --no-deps) nodeps=1;;
  esac
  shift
done
cp=$(echo "$pyv" | tr -d .)
item() { printf '{"metadata":{"name":"%s","version":"%s"},"download_info":{"url":"https://index.invalid/p/%s","archive_info":{"hashes":{"sha256":"%s"}}}}' "$1" "$2" "$3" "$4"; }
h() { printf '%s' "$1" | sha256sum | cut -c1-64; }
if [ "$nodeps" = 1 ]; then
  body=$(item plugin 2.0 plugin-2.0-py3-none-any.whl "$(h plugin)")
else
  nat="nat-1.0-cp$cp-cp$cp-manylinux2014_$machine.whl"
  body="$(item common 1.0 common-1.0-py3-none-any.whl "$(h common)"),$(item nat 1.0 "$nat" "$(h "$nat")")"
  if [ "$pyv" = 3.8 ]; then body="$body,$(item only38 0.5 only38-0.5-py3-none-any.whl "$(h only38)")"; fi
fi
printf '{"version":"1","install":[%s]}' "$body" > "$report"
"#;

#[test]
fn lock_merges_targets_into_markers_and_hashes() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new(&["python3.8", "python3.9"]);
    let spec = std::fs::read_to_string(f.path().join("layer.yaml")).unwrap();
    std::fs::write(f.path().join("layer.yaml"), spec + "  requirements: requirements.in\n").unwrap();
    std::fs::write(f.path().join("requirements.in"), "common\nnat\n# --no-deps\nplugin\n").unwrap();
    let pip = f.path().join("fake-python");
    std::fs::write(&pip, FAKE_PIP).unwrap();
    std::fs::set_permissions(&pip, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = Command::cargo_bin("layerbuild").unwrap();
    c.current_dir(f.path())
        .env("LAYERBUILD_CACHE", f.path().join("cache"))
        .env("LAYERBUILD_PYTHON", &pip)
        .arg("lock")
        .assert()
        .success();
    let lock = std::fs::read_to_string(f.path().join("requirements.txt")).unwrap();
    assert!(lock.starts_with("# Generated by `layerbuild lock`"), "{lock}");
    assert!(!lock.contains("://"), "no index URL in the lock: {lock}");
    assert!(lock.contains("common==1.0 \\\n"), "{lock}");
    assert!(lock.contains("only38==0.5 ; python_version == \"3.8\" \\\n"), "{lock}");
    assert!(lock.contains("plugin==2.0 \\\n"), "{lock}");
    let nat = lock.split("\n\n").find(|b| b.starts_with("nat==")).unwrap();
    assert_eq!(nat.matches("--hash=sha256:").count(), 4, "{nat}");
    for (cp, m) in [("38", "x86_64"), ("39", "x86_64"), ("38", "aarch64"), ("39", "aarch64")] {
        assert!(
            nat.contains(&format!(
                "#   wheel: nat-1.0-cp{cp}-cp{cp}-manylinux2014_{m}.whl sha256="
            )),
            "{nat}"
        );
    }
    let names: Vec<&str> = lock
        .lines()
        .filter(|l| !l.starts_with([' ', '#']) && !l.is_empty())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "pins are sorted");
}
