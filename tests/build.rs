//! End to end: `layerbuild build`, `plan` and `verify` on a tiny hermetic layer.

mod common;

use std::path::Path;
use std::process::Command as Std;

use common::*;
use predicates::prelude::*;
use predicates::str::contains;

fn build_ok(dir: &Path) -> std::process::Output {
    layerbuild(dir)
        .args(["--out", "dist"])
        .assert()
        .success()
        .get_output()
        .clone()
}

#[test]
fn two_builds_in_different_dirs_give_identical_zips() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    fixture(a.path());
    fixture(b.path());
    // Different mtimes on the inputs of the second tree must not matter.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    for f in ["src/otel-instrument", "src/pkg/otel_wrapper.py", "bin/collector-amd64"] {
        std::fs::File::options()
            .write(true)
            .open(b.path().join(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    build_ok(a.path());
    build_ok(b.path());
    for zip in [AMD64_ZIP, ARM64_ZIP] {
        let za = std::fs::read(a.path().join("dist").join(zip)).unwrap();
        let zb = std::fs::read(b.path().join("dist").join(zip)).unwrap();
        assert!(za == zb, "{zip} differs between builds");
    }
    assert_eq!(
        files_in(&a.path().join("dist")),
        [
            "SHA256SUMS",
            "demo-layer-amd64-ver-1-2-3.cdx.json",
            "demo-layer-amd64-ver-1-2-3.manifest.json",
            AMD64_ZIP,
            "demo-layer-amd64-ver-1-2-3.zip.sha256",
            "demo-layer-arm64-ver-1-2-3.cdx.json",
            "demo-layer-arm64-ver-1-2-3.manifest.json",
            ARM64_ZIP,
            "demo-layer-arm64-ver-1-2-3.zip.sha256",
        ]
    );
}

#[test]
fn source_date_epoch_sets_the_entry_time() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    build_ok(d.path());
    let fixed = std::fs::read(d.path().join("dist").join(AMD64_ZIP)).unwrap();
    layerbuild(d.path())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["--arch", "amd64"])
        .assert()
        .success();
    let dated = std::fs::read(d.path().join("dist").join(AMD64_ZIP)).unwrap();
    assert_ne!(fixed, dated);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(dated)).unwrap();
    let t = z.by_name("otel-instrument").unwrap().last_modified().unwrap();
    assert_eq!((t.year(), t.month(), t.day()), (2023, 11, 14));
}

#[test]
fn modes_as_stored_read_by_two_readers() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    build_ok(d.path());
    let zip = d.path().join("dist").join(ARM64_ZIP);
    let entries = read_zip(&zip);
    let modes: Vec<(String, u32)> = entries.iter().map(|(n, m, _)| (n.clone(), *m)).collect();
    let expect = [
        ("collector-config/", 0o40755),
        ("collector-config/config.yaml", 0o100644),
        ("extensions/", 0o40755),
        ("extensions/collector", 0o100755),
        ("otel-instrument", 0o100755),
        ("python/", 0o40755),
        ("python/demo/", 0o40755),
        ("python/demo/__init__.py", 0o100644),
        ("python/demo/_native.cpython-39-x86_64-linux-gnu.so.txt", 0o100644),
        ("python/otel_wrapper.py", 0o100644),
    ];
    let expect: Vec<(String, u32)> = expect.iter().map(|(n, m)| (n.to_string(), *m)).collect();
    assert_eq!(modes, expect);

    // Python's zipfile is an independent reader of the external attributes.
    let script = "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist():\n    print('%s %o' % (i.filename, i.external_attr >> 16))\n";
    let out = Std::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&zip)
        .output()
        .expect("python3 runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let by_python: Vec<(String, u32)> = text
        .lines()
        .map(|l| {
            let (n, m) = l.rsplit_once(' ').unwrap();
            (n.to_string(), u32::from_str_radix(m, 8).unwrap())
        })
        .collect();
    assert_eq!(by_python, expect);
}

#[test]
fn checksum_files_pass_sha256sum_and_manifest_is_complete() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let out = layerbuild(d.path())
        .args(["build", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let dist = d.path().join("dist");
    for file in [
        "SHA256SUMS",
        "demo-layer-amd64-ver-1-2-3.zip.sha256",
        "demo-layer-arm64-ver-1-2-3.zip.sha256",
    ] {
        let st = Std::new("sha256sum")
            .arg("-c")
            .arg("--strict")
            .arg(file)
            .current_dir(&dist)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "sha256sum -c {file}: {}",
            String::from_utf8_lossy(&st.stdout)
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let zips = summary["zips"].as_array().unwrap();
    assert_eq!(zips.len(), 2);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("demo-layer-arm64-ver-1-2-3.manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["layer"]["arch"], "arm64");
    assert_eq!(manifest["layer"]["runtimes"], serde_json::json!(["python3.9"]));
    assert_eq!(manifest["collector"]["elf_machine"], "arm64 (EM_AARCH64)");
    let arm = zips.iter().find(|z| z["arch"] == "arm64").unwrap();
    assert_eq!(arm["code_sha256"], manifest["zip"]["code_sha256"]);
    let paths: Vec<&str> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert!(paths.contains(&"extensions/collector"));
}

#[test]
fn default_subcommand_builds_one_arch() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    layerbuild(d.path())
        .args(["--arch", "aarch64"])
        .assert()
        .success()
        .stdout(contains("demo-layer-arm64-ver-1-2-3.zip"));
    assert!(d.path().join("dist").join(ARM64_ZIP).exists());
    assert!(!d.path().join("dist").join(AMD64_ZIP).exists());
    layerbuild(d.path())
        .args(["verify", "dist/demo-layer-arm64-ver-1-2-3.zip"])
        .assert()
        .success()
        .stdout(contains("ok "));
}

#[test]
fn plan_lists_entries_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    layerbuild(d.path())
        .args(["plan", "--arch", "x86_64"])
        .assert()
        .success()
        .stdout(
            contains("0755")
                .and(contains("extensions/collector"))
                .and(contains("bin/collector-amd64")),
        );
    assert!(!d.path().join("dist").exists());
}

/// Every file below `dir` with its size and mtime: any write shows up as a difference.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        out.push((e.path().display().to_string(), m.len(), m.modified().unwrap()));
    }
    out
}

#[test]
fn plan_starts_no_process_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let sha = "a".repeat(64);
    write(
        dir,
        "layer.yaml",
        b"name: pure\nversion: '1.0'\narchitectures: [x86_64, arm64]\nruntimes: [python3.8, python3.9]\n\
files:\n  - src: shim.py\n    dest: python/shim.py\n\
python:\n  lock: requirements.txt\n  bytecode: always\n\
collector:\n  source:\n    go: collector\n  config:\n    src: config.yaml\n    dest: collector-config/config.yaml\n",
    );
    write(dir, "shim.py", b"def handler(e, c):\n    return e\n");
    write(dir, "config.yaml", CONFIG.as_bytes());
    write(dir, "collector/go.mod", b"module example.com/collector\n\ngo 1.22\n");
    write(
        dir,
        "requirements.txt",
        format!("demo==1.0 \\\n    --hash=sha256:{sha}\n    #   wheel: demo-1.0-py3-none-any.whl sha256={sha}\n")
            .as_bytes(),
    );
    write(dir, "cache/keep", b"an existing cache\n");
    // Every program a build would run, and a pyenv install, as traps that leave a mark.
    let trap = format!("#!/bin/sh\necho \"$0 $*\" >> {}/ran.log\n", dir.display());
    for name in ["go", "python3", "python3.8", "python3.9", "pip", "uv", "pyenv", "asdf"] {
        write(dir, &format!("bin/{name}"), trap.as_bytes());
    }
    write(dir, "home/.pyenv/versions/3.9.18/bin/python", trap.as_bytes());
    Std::new("chmod")
        .arg("-R")
        .arg("755")
        .arg(dir.join("bin"))
        .arg(dir.join("home"))
        .status()
        .unwrap();
    let before = snapshot(dir);
    for json in [false, true] {
        let mut cmd = layerbuild(dir);
        cmd.args(["plan", "--python", "python3.8=bin/python3.8"])
            .env("PATH", dir.join("bin"))
            .env("HOME", dir.join("home"))
            .env("LAYERBUILD_CACHE", dir.join("cache"))
            .env_remove("PYENV_ROOT")
            .env_remove("XDG_CACHE_HOME");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.assert().success().get_output().stdout.clone();
        let text = String::from_utf8(out).unwrap();
        for want in [
            "go build . in ./collector",
            "demo-1.0-py3-none-any.whl",
            "bytecode",
            "python/shim.py",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }
    assert!(
        !dir.join("ran.log").exists(),
        "plan ran a program: {:?}",
        std::fs::read_to_string(dir.join("ran.log"))
    );
    assert_eq!(snapshot(dir), before, "plan wrote below its folder");
}

/// A failed build exits 1 with a message and leaves nothing in the output folder.
fn build_fails(dir: &Path, args: &[&str], message: &str) {
    layerbuild(dir)
        .args(["--out", "dist", "--progress", "never"])
        .args(args)
        .assert()
        .code(1)
        .stderr(contains(message).and(predicate::str::starts_with("layerbuild: ")));
    assert_eq!(files_in(&dir.join("dist")), Vec::<String>::new(), "{message}");
}

#[test]
fn wrong_arch_collector_fails() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    write(d.path(), "bin/collector-arm64", &fake_elf(EM_X86_64, ET_EXEC, 10));
    build_fails(d.path(), &[], "built for x86_64 (EM_X86_64), but the layer is arm64");
}

#[test]
fn non_elf_collector_fails() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    write(d.path(), "bin/collector-amd64", b"#!/bin/sh\necho not a binary\n");
    build_fails(d.path(), &[], "collector-amd64: not an ELF file");
}

#[test]
fn library_as_collector_fails() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    write(d.path(), "bin/collector-amd64", &fake_elf(EM_X86_64, ET_DYN, 10));
    build_fails(d.path(), &["--arch", "x86_64"], "not an executable");
}

#[test]
fn collector_override_from_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    write(d.path(), "other/arm", &fake_elf(EM_X86_64, ET_EXEC, 10));
    build_fails(d.path(), &["--collector", "arm64=other/arm"], "other/arm");
    write(d.path(), "other/arm", &fake_elf(EM_AARCH64, ET_EXEC, 10));
    layerbuild(d.path())
        .args(["--collector", "arm64=other/arm", "--arch", "arm64"])
        .assert()
        .success();
}

#[test]
fn missing_input_fails() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    std::fs::remove_file(d.path().join("src/otel-instrument")).unwrap();
    build_fails(
        d.path(),
        &[],
        "layer.yaml: `files` entry `src/otel-instrument`: the input is missing",
    );
}

#[test]
fn bad_collector_config_fails() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    write(
        d.path(),
        "config/config.yaml",
        CONFIG.replace("exporters: [debug]", "exporters: [awsxray]").as_bytes(),
    );
    build_fails(
        d.path(),
        &[],
        "pipeline `traces` uses exporter `awsxray`, which is not defined",
    );
    write(d.path(), "config/config.yaml", b"receivers: [\n");
    build_fails(d.path(), &[], "config.yaml: invalid collector config");
}

#[test]
fn oversize_layer_fails() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let spec = std::fs::read_to_string(d.path().join("layer.yaml")).unwrap() + "limits:\n  unzipped_bytes: 1000\n";
    write(d.path(), "layer.yaml", spec.as_bytes());
    build_fails(d.path(), &[], "over the limit of 1000 bytes");
}

#[test]
fn two_sources_for_one_destination_fail() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let spec = std::fs::read_to_string(d.path().join("layer.yaml")).unwrap().replace(
        "files:\n",
        "files:\n  - src: src/pkg/otel_wrapper.py\n    dest: otel-instrument\n",
    );
    write(d.path(), "layer.yaml", spec.as_bytes());
    build_fails(d.path(), &[], "`otel-instrument` comes from two sources");
}

#[test]
fn spec_errors_name_file_line_and_column() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let spec = std::fs::read_to_string(d.path().join("layer.yaml")).unwrap() + "colector: {}\n";
    write(d.path(), "layer.yaml", spec.as_bytes());
    build_fails(d.path(), &[], "unknown field `colector`");
    layerbuild(d.path())
        .assert()
        .code(1)
        .stderr(contains("layer.yaml: invalid layer spec").and(contains("line 19 column 1")));
    // A spec that is not there is a usage error (tests/errors.rs pins the message).
    layerbuild(d.path())
        .args(["--spec", "nope.yaml"])
        .assert()
        .code(2)
        .stderr(contains("nope.yaml"));
}

#[test]
fn usage_errors_exit_2() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    layerbuild(d.path())
        .args(["--arch", "ppc64le"])
        .assert()
        .code(2)
        .stderr(contains("unknown architecture `ppc64le`"));
    layerbuild(d.path())
        .args(["--collector", "arm64"])
        .assert()
        .code(2)
        .stderr(contains("ARCH=PATH"));
    layerbuild(d.path()).args(["verify"]).assert().code(2);
    layerbuild(d.path()).args(["--bogus"]).assert().code(2);
}

fn built(dir: &Path) -> std::path::PathBuf {
    fixture(dir);
    build_ok(dir);
    dir.join("dist").join(AMD64_ZIP)
}

fn verify_fails(dir: &Path, zip: &Path, message: &str) {
    layerbuild(dir)
        .arg("verify")
        .arg(zip)
        .assert()
        .code(1)
        .stderr(contains(message));
}

/// Rewrites the zip with `change` applied and drops the checksum file, so that the
/// manifest check itself must find the problem.
fn tamper(zip: &Path, change: impl FnOnce(&mut Vec<ZipEntry>)) {
    let mut entries = read_zip(zip);
    change(&mut entries);
    write_zip(zip, &entries);
    std::fs::remove_file(zip.with_file_name(format!("{}.sha256", zip.file_name().unwrap().to_string_lossy()))).unwrap();
}

#[test]
fn verify_catches_a_changed_byte() {
    let d = tempfile::tempdir().unwrap();
    let zip = built(d.path());
    tamper(&zip, |e| {
        let f = e.iter_mut().find(|(n, _, _)| n == "python/otel_wrapper.py").unwrap();
        f.2[0] ^= 1;
    });
    verify_fails(d.path(), &zip, "entry `python/otel_wrapper.py`: sha256");
}

#[test]
fn verify_catches_a_flipped_byte_in_the_file() {
    let d = tempfile::tempdir().unwrap();
    let zip = built(d.path());
    let mut bytes = std::fs::read(&zip).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x40;
    std::fs::write(&zip, bytes).unwrap();
    verify_fails(d.path(), &zip, AMD64_ZIP);
}

#[test]
fn verify_catches_a_removed_exec_bit() {
    let d = tempfile::tempdir().unwrap();
    let zip = built(d.path());
    tamper(&zip, |e| {
        e.iter_mut().find(|(n, _, _)| n == "extensions/collector").unwrap().1 = 0o100644
    });
    verify_fails(
        d.path(),
        &zip,
        "entry `extensions/collector`: mode 0644 lacks the exec bit",
    );
    let d2 = tempfile::tempdir().unwrap();
    let zip = built(d2.path());
    tamper(&zip, |e| {
        e.iter_mut().find(|(n, _, _)| n == "otel-instrument").unwrap().1 = 0o100644
    });
    verify_fails(
        d2.path(),
        &zip,
        "entry `otel-instrument`: mode 0644 but the manifest says 0755",
    );
}

#[test]
fn verify_catches_an_extra_entry() {
    let d = tempfile::tempdir().unwrap();
    let zip = built(d.path());
    tamper(&zip, |e| {
        e.push(("python/evil.py".into(), 0o100644, b"import os\n".to_vec()))
    });
    verify_fails(d.path(), &zip, "entry `python/evil.py`: is not in the manifest");
}

#[test]
fn verify_catches_a_changed_zip_by_its_checksum() {
    let d = tempfile::tempdir().unwrap();
    let zip = built(d.path());
    // Same entries, rewritten by another zip tool: the manifest entries still match,
    // but the checksum file does not.
    let entries = read_zip(&zip);
    write_zip(&zip, &entries);
    verify_fails(d.path(), &zip, "sha256 is");
}

#[test]
fn verify_never_panics_on_truncated_zips() {
    let d = tempfile::tempdir().unwrap();
    let zip = built(d.path());
    let bytes = std::fs::read(&zip).unwrap();
    for cut in [0, 1, 30, bytes.len() / 2, bytes.len() - 23, bytes.len() - 1] {
        std::fs::write(&zip, &bytes[..cut]).unwrap();
        layerbuild(d.path())
            .arg("verify")
            .arg(&zip)
            .assert()
            .code(1)
            .stderr(contains(AMD64_ZIP).and(contains("panicked").not()));
    }
}

#[test]
fn verify_needs_the_manifest() {
    let d = tempfile::tempdir().unwrap();
    let zip = built(d.path());
    std::fs::remove_file(d.path().join("dist/demo-layer-amd64-ver-1-2-3.manifest.json")).unwrap();
    verify_fails(d.path(), &zip, "no manifest at");
    // A zip that is not there is a usage error (tests/errors.rs pins the message).
    layerbuild(d.path())
        .args(["verify", "dist/missing.zip"])
        .assert()
        .code(2)
        .stderr(contains("dist/missing.zip"));
}
