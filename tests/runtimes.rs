//! End to end: runtimes a layer was not made for are usage errors (exit 2) in `lock` and
//! `smoke`; the real arm64 layer's Python runs under qemu-user on an x86_64 host.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{AMD64_ZIP, fixture, layerbuild, write};

/// Exit code and stderr of a run expected to fail.
fn fails(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = layerbuild(dir).args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    let code = out.status.code().expect("exited, not killed");
    (code, String::from_utf8(out.stderr).unwrap())
}

#[test]
fn lock_refuses_an_interpreter_for_a_runtime_the_spec_lacks() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let spec = std::fs::read_to_string(d.path().join("layer.yaml")).unwrap();
    let spec = format!("{spec}python:\n  requirements: req.in\n  lock: req.txt\n");
    write(d.path(), "layer.yaml", spec.as_bytes());
    write(d.path(), "req.in", b"demo==1.0\n");
    let (code, err) = fails(d.path(), &["lock", "--python", "python3.12=/usr/bin/python3"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "--python python3.12=/usr/bin/python3: python3.12 is not one of the spec's runtimes (python3.9): add it to `runtimes` in layer.yaml or drop the flag"
        ),
        "{err}"
    );
}

#[test]
fn smoke_refuses_a_runtime_the_layer_was_not_built_for() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    layerbuild(d.path())
        .args(["--out", "dist", "--quiet"])
        .assert()
        .success();
    let zip = d.path().join("dist").join(AMD64_ZIP);
    let (code, err) = fails(d.path(), &["smoke", zip.to_str().unwrap(), "--runtime", "python3.12"]);
    assert_eq!(code, 2, "{err}");
    let manifest = d.path().join("dist/demo-layer-amd64-ver-1-2-3.manifest.json");
    let want = format!(
        "--runtime python3.12: not one of the layer's runtimes (python3.9, from {}): pick one of them, or build the layer for python3.12",
        manifest.display()
    );
    assert!(err.contains(&want), "{err}");
}

#[test]
fn a_spec_cannot_give_bytecode_to_a_runtime_it_lacks() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let spec = std::fs::read_to_string(d.path().join("layer.yaml")).unwrap();
    let spec = format!("{spec}python:\n  lock: req.txt\n  bytecode_runtimes: [python3.13]\n");
    write(d.path(), "layer.yaml", spec.as_bytes());
    let (_, err) = fails(d.path(), &["plan"]);
    assert!(
        err.contains("python.bytecode_runtimes names python3.13, which is not one of the spec's runtimes (python3.9)"),
        "{err}"
    );
}

/// `smoke --json` of a real layer in dist/, with the user's cache (where roots are kept).
fn smoke_real(zip: &str, extra: &[&str]) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let zip = root.join("dist").join(zip);
    assert!(zip.exists(), "{} is missing: run make layers first", zip.display());
    let out = layerbuild(root)
        .env_remove("LAYERBUILD_CACHE")
        .arg("smoke")
        .arg(&zip)
        .args(["--free-ports", "--json"])
        .args(extra)
        .timeout(std::time::Duration::from_secs(1800))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

fn check<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(name))
        .unwrap_or_else(|| panic!("no check `{name}` in {run:#}"))
}

#[test]
#[ignore = "needs the real default layers (make layers), qemu-user, debootstrap, root and apt's Debian mirror"]
fn the_real_arm64_layer_runs_python_3_9_under_qemu() {
    let report = smoke_real(
        "aws-otel-python-arm64-ver-1-20-0.zip",
        &[
            "--foreign-python",
            "require",
            "--warm-invokes",
            "0",
            "--late-backend-ms",
            "0",
        ],
    );
    assert!(std::env::consts::ARCH == "x86_64", "this test is about an x86_64 host");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(
        runs.len(),
        1,
        "python3.9 alone runs (3.8 has no Debian CPython): {report:#}"
    );
    let run = &runs[0];
    assert_eq!(run["runtime"], "python3.9");
    assert!(
        run["python"].as_str().unwrap().contains("Debian bullseye CPython 3.9"),
        "{run:#}"
    );
    for name in [
        "invoke result",
        "server span",
        "client span",
        "native modules loaded (python3.9 on aarch64)",
    ] {
        assert_eq!(check(run, name)["ok"], true, "{:#}", check(run, name));
    }
    assert!(
        check(run, "native modules loaded")["detail"]
            .as_str()
            .unwrap()
            .contains("grpc._cython.cygrpc"),
        "{run:#}"
    );
    let statics = common::names(&report["static_checks"]);
    assert!(
        statics.contains(
            &"glibc symbol versions for python3.8 (Amazon Linux 2) (static only: no Debian suite has CPython 3.8)"
        ),
        "{statics:?}"
    );
    assert_eq!(report["passed"], true, "{report:#}");
}

/// A stand-in interpreter on a PATH of its own: a script answering the finder's probe as
/// CPython `version` would.
fn fake_python_path(dir: &Path, name: &str, version: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join(name);
    std::fs::write(&p, format!("#!/bin/sh\nprintf '%s\\n' {version} cb0d0d0a \"$0\"\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn python_find_prints_what_the_finder_picks_and_where_it_looked() {
    let d = tempfile::tempdir().unwrap();
    let bin = fake_python_path(d.path(), "python3.12", "3.12.7");
    let out = layerbuild(d.path())
        .args(["python", "find", "python3.12"])
        .env("PATH", &bin)
        .env("HOME", d.path())
        .env_remove("PYENV_ROOT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!("python3.12 3.12.7 {}\n", bin.join("python3.12").display())
    );

    // Nothing for 3.14 on this PATH and no Debian root in this private cache: exit 1, and the
    // message says what would prepare one.
    let out = layerbuild(d.path())
        .args(["python", "find", "python3.14"])
        .env("PATH", &bin)
        .env("HOME", d.path())
        .env_remove("PYENV_ROOT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("layerbuild: no python3.14 interpreter found; looked at"),
        "{err}"
    );
    assert!(
        err.contains("(none: `layerbuild python fetch python3.14` prepares one)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn python_fetch_of_a_runtime_no_debian_suite_has_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = fails(d.path(), &["python", "fetch", "python3.12"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("python3.12: no Debian suite has it (they have python3.9 (bullseye), python3.11 (bookworm), python3.13 (trixie), python3.14 (forky))"),
        "{err}"
    );
    let (code, err) = fails(d.path(), &["python", "fetch", "python2.7"]);
    assert_eq!(code, 2, "{err}");
}
