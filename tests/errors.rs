//! End to end: every error is one line, `layerbuild: <what>: <why>: <how to fix>`, usage errors
//! exit 2, and each message names the real cause (pinned by insta snapshots).

mod common;

use std::path::Path;

use common::{AMD64_ZIP, EM_AARCH64, EM_X86_64, ET_EXEC, fake_elf, fixture, layerbuild, write};

/// Runs the binary in `dir` and returns its exit code and its stderr, which must be one line.
fn fails(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = layerbuild(dir).args(args).output().unwrap();
    let code = out.status.code().expect("exited, not killed");
    assert_ne!(code, 0, "{args:?} succeeded");
    let stderr = String::from_utf8(out.stderr).unwrap();
    // Progress lines may come first; the error is the last line, and the only one of its kind.
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("layerbuild: ")).collect();
    assert_eq!(errors.len(), 1, "one error line for {args:?}, got:\n{stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    assert!(!errors[0].starts_with("layerbuild: error:"), "{stderr}");
    (code, errors[0].to_string())
}

/// The temp folder's path, which varies, as `<tmp>`.
fn redact(dir: &Path, text: &str) -> String {
    text.replace(&dir.display().to_string(), "<tmp>")
}

#[test]
fn a_missing_spec_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = fails(d.path(), &[]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: layer.yaml: no such file: pass --spec PATH or run in the folder holding layer.yaml");
    let (code, err) = fails(d.path(), &["plan", "--spec", "nope.yaml"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: nope.yaml: no such file: pass --spec PATH or run in the folder holding layer.yaml");
    let (code, err) = fails(d.path(), &["lock", "--spec", "nope.yaml"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: nope.yaml: no such file: pass --spec PATH or run in the folder holding layer.yaml");
}

#[test]
fn argument_errors_are_one_line_with_the_help_hint() {
    let d = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--frobnicate"],
            "layerbuild: --frobnicate: unexpected argument: try 'layerbuild --help'",
        ),
        (
            &["--ofline"],
            "layerbuild: --ofline: unexpected argument, did you mean --offline?: try 'layerbuild --help'",
        ),
        (
            &["--arch", "sparc"],
            "layerbuild: --arch sparc: unknown architecture `sparc`: use x86_64 (or amd64) or arm64 (or aarch64), or all: try 'layerbuild --help'",
        ),
        (
            &["--collector", "arm64"],
            "layerbuild: --collector arm64: `arm64` is not ARCH=PATH, e.g. arm64=bin/collector: try 'layerbuild --help'",
        ),
        (
            &["--progress", "loud"],
            "layerbuild: --progress loud: invalid value, use auto, bar, plain or never: try 'layerbuild --help'",
        ),
        (
            &["verify"],
            "layerbuild: <ZIP>...: required, missing: try 'layerbuild verify --help'",
        ),
        (
            &["smoke", "--bogus"],
            "layerbuild: --bogus: unexpected argument: try 'layerbuild smoke --help'",
        ),
        (
            &["smoke", "layer.zip", "--dir", "opt"],
            "layerbuild: [ZIP]: cannot be used with --dir <DIR>: try 'layerbuild smoke --help'",
        ),
        (
            &["lock", "--python", "python2.7=/usr/bin/python2"],
            "layerbuild: --python python2.7=/usr/bin/python2: unknown runtime `python2.7`: use Lambda's names, e.g. python3.9: try 'layerbuild lock --help'",
        ),
        (
            &["cache", "empty"],
            "layerbuild: empty: unknown command, use dir, size or clean: try 'layerbuild cache --help'",
        ),
    ];
    for (args, want) in cases {
        let (code, err) = fails(d.path(), args);
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(&err, want, "{args:?}");
    }
    // Pinned as one snapshot too, so a change to any of them shows as one reviewable diff.
    let all: Vec<String> = cases.iter().map(|(args, _)| fails(d.path(), args).1).collect();
    insta::assert_snapshot!(all.join("\n"), @r"
    layerbuild: --frobnicate: unexpected argument: try 'layerbuild --help'
    layerbuild: --ofline: unexpected argument, did you mean --offline?: try 'layerbuild --help'
    layerbuild: --arch sparc: unknown architecture `sparc`: use x86_64 (or amd64) or arm64 (or aarch64), or all: try 'layerbuild --help'
    layerbuild: --collector arm64: `arm64` is not ARCH=PATH, e.g. arm64=bin/collector: try 'layerbuild --help'
    layerbuild: --progress loud: invalid value, use auto, bar, plain or never: try 'layerbuild --help'
    layerbuild: <ZIP>...: required, missing: try 'layerbuild verify --help'
    layerbuild: --bogus: unexpected argument: try 'layerbuild smoke --help'
    layerbuild: [ZIP]: cannot be used with --dir <DIR>: try 'layerbuild smoke --help'
    layerbuild: --python python2.7=/usr/bin/python2: unknown runtime `python2.7`: use Lambda's names, e.g. python3.9: try 'layerbuild lock --help'
    layerbuild: empty: unknown command, use dir, size or clean: try 'layerbuild cache --help'
    ");
}

#[test]
fn help_and_version_still_print_and_succeed() {
    let d = tempfile::tempdir().unwrap();
    let out = layerbuild(d.path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("layerbuild {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = layerbuild(d.path()).args(["verify", "--help"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("Usage: layerbuild verify")
    );
}

#[test]
fn verify_says_a_file_that_is_not_a_zip_is_not_a_zip() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "README.md", b"# not a layer\n\nJust text.\n");
    let (code, err) = fails(d.path(), &["verify", "README.md"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(err, @"layerbuild: README.md: not a zip file: give a layer zip written by `layerbuild build`");
    let (code, err) = fails(d.path(), &["verify", "dist/missing.zip"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: dist/missing.zip: no such file: give the path of a layer zip written by `layerbuild build`");
}

#[test]
fn a_bad_collector_flag_is_named_not_the_spec() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let (code, err) = fails(d.path(), &["--collector", "arm64=bin/nope"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: --collector arm64=bin/nope: no such file: give the path of a collector binary built for arm64");
    write(d.path(), "other/arm", &fake_elf(EM_X86_64, ET_EXEC, 10));
    let (code, err) = fails(d.path(), &["--collector", "arm64=other/arm"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(err, @"layerbuild: --collector arm64=other/arm: built for x86_64 (EM_X86_64), but the layer is arm64: use a binary built for arm64 (EM_AARCH64)");
    write(d.path(), "other/text", b"#!/bin/sh\n");
    let (code, err) = fails(d.path(), &["--collector", "x86_64=other/text", "--arch", "x86_64"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!(err, @"layerbuild: --collector x86_64=other/text: not an ELF file: give a collector program built for x86_64");
    // The spec's own collector still names the spec's file.
    write(d.path(), "bin/collector-arm64", &fake_elf(EM_X86_64, ET_EXEC, 10));
    let (code, err) = fails(d.path(), &["--progress", "never"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bin/collector-arm64") && !err.contains("--collector"),
        "{err}"
    );
}

#[test]
fn a_bad_python_flag_names_the_path_and_what_to_do() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let (code, err) = fails(d.path(), &["--python", "python3.9=/nope/python3.9"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: --python python3.9=/nope/python3.9: no such file: give the path of a python3.9 interpreter, or leave the flag out to find one on PATH");
    let (code, err) = fails(d.path(), &["--python", "python3.12=/usr/bin/python3"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: --python python3.12=/usr/bin/python3: python3.12 is not one of the spec's runtimes (python3.9): add it to `runtimes` in layer.yaml or drop the flag");
    let (code, err) = fails(d.path(), &["lock", "--python", "python3.9=/nope/python3.9"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: --python python3.9=/nope/python3.9: no such file: give the path of a python3.9 interpreter, or leave the flag out to find one on PATH");
}

#[test]
fn an_arch_the_spec_does_not_list_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let spec = std::fs::read_to_string(d.path().join("layer.yaml"))
        .unwrap()
        .replace("[x86_64, arm64]", "[x86_64]");
    write(d.path(), "layer.yaml", spec.as_bytes());
    let (code, err) = fails(d.path(), &["--arch", "arm64"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: --arch arm64: layer.yaml does not list arm64: pick one of x86_64, or add arm64 to `architectures`");
}

#[test]
fn a_failed_build_leaves_no_out_folder_it_created() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    std::fs::remove_file(d.path().join("src/otel-instrument")).unwrap();
    let (code, _) = fails(d.path(), &["--out", "new/dist"]);
    assert_eq!(code, 1);
    assert!(!d.path().join("new/dist").exists(), "the failed build left new/dist");
    assert!(!d.path().join("new").exists(), "the failed build left new/");
    // A folder that was there before stays, with what it held.
    write(d.path(), "kept/notes.txt", b"mine\n");
    let (code, _) = fails(d.path(), &["--out", "kept"]);
    assert_eq!(code, 1);
    assert_eq!(std::fs::read(d.path().join("kept/notes.txt")).unwrap(), b"mine\n");
}

#[test]
fn lock_help_says_which_file_it_writes() {
    let d = tempfile::tempdir().unwrap();
    let out = layerbuild(d.path()).args(["lock", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    // clap wraps the help to the terminal: the first paragraph, as one line.
    let first: Vec<&str> = help.lines().take_while(|l| !l.is_empty()).collect();
    insta::assert_snapshot!(first.join(" "), @"Resolve python.requirements with pip for every architecture and runtime, and write the lock file named by the spec's `python.lock` key (e.g. layer-src/requirements.txt)");
    let top = layerbuild(d.path()).arg("--help").output().unwrap();
    let top = String::from_utf8(top.stdout).unwrap();
    let top = top.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        top.contains("write the lock file named by the spec's `python.lock` key"),
        "{top}"
    );
}

/// A built fixture layer: its zip and manifest in `dir/dist`.
fn built(dir: &Path) -> std::path::PathBuf {
    fixture(dir);
    layerbuild(dir).args(["--out", "dist", "--quiet"]).assert().success();
    dir.join("dist").join(AMD64_ZIP)
}

#[test]
fn smoke_refuses_a_runtime_the_layer_was_not_built_for() {
    let d = tempfile::tempdir().unwrap();
    let zip = built(d.path());
    let zip = zip.to_str().unwrap();
    let (code, err) = fails(d.path(), &["smoke", zip, "--runtime", "python3.12"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(redact(d.path(), &err), @"layerbuild: --runtime python3.12: not one of the layer's runtimes (python3.9, from <tmp>/dist/demo-layer-amd64-ver-1-2-3.manifest.json): pick one of them, or build the layer for python3.12");
}

#[test]
fn smoke_usage_names_both_ways_to_give_a_layer() {
    let d = tempfile::tempdir().unwrap();
    let (code, err) = fails(d.path(), &["smoke"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: <ZIP|--dir <DIR>>: required, missing: try 'layerbuild smoke --help'");
    let out = layerbuild(d.path()).args(["smoke", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("Usage: layerbuild smoke [OPTIONS] <ZIP|--dir DIR>"),
        "{help}"
    );
}

#[test]
fn smoke_takes_the_arch_of_a_zip_without_manifest_from_its_extensions() {
    let d = tempfile::tempdir().unwrap();
    built(d.path());
    // The arm64 zip alone, as someone would download it.
    let zip = d.path().join("alone.zip");
    std::fs::copy(d.path().join("dist").join(common::ARM64_ZIP), &zip).unwrap();
    let report = |extra: &[&str]| -> serde_json::Value {
        let out = layerbuild(d.path())
            .arg("smoke")
            .arg(&zip)
            // Only the extensions: a Debian root for arm64 Python is no part of this test.
            .args(["--json", "--offline", "--client", "builtin", "--timeout", "5"])
            .args(["--foreign-python", "never"])
            .args(extra)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    let r = report(&[]);
    assert_eq!(r["arch"], "arm64", "{r:#}");
    let notes = r["notes"].to_string();
    assert!(notes.contains("arm64, from the ELF files in extensions/"), "{notes}");
    let r = report(&["--arch", "x86_64"]);
    assert_eq!(r["arch"], "x86_64", "--arch overrides the ELF files: {r:#}");
}

#[test]
fn smoke_refuses_extensions_of_two_architectures_without_arch() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "opt/extensions/one", &fake_elf(EM_X86_64, ET_EXEC, 10));
    write(d.path(), "opt/extensions/two", &fake_elf(EM_AARCH64, ET_EXEC, 10));
    let (code, err) = fails(d.path(), &["smoke", "--dir", "opt", "--offline"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err, @"layerbuild: opt: extensions/ holds ELF files for x86_64 (one) and arm64 (two): pass --arch to say which layer this is");
}

#[test]
fn a_failed_go_build_shows_go_output_above_a_one_line_error() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let path = common::fake_go(d.path(), common::GoBuild::Fails);
    let out = layerbuild(d.path())
        .env("PATH", &path)
        .args(["--arch", "x86_64", "--progress", "never"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    insta::assert_snapshot!(text, @r"
      | ./main.go:3:2: undefined: collectr
      | ./main.go:4:2: undefined: run
    layerbuild: cannot build the x86_64 layer: `go build` failed in ./gomod (exit status: 1): go's output is above: fix the module, or use a `path:` collector source
    ");
}
