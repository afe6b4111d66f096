//! What reaches the zip through real toolchains: Python's bytecode compiler and Go. These need
//! the interpreters and Go, so they are ignored by default (issue 14, items 2 and 12).

use std::path::Path;
use std::time::Duration;

use crate::common;
use crate::pyfix::{PyLayer, X86_ZIP, files_below, pure};
use crate::run;

/// Flips one byte in the middle of every file below `dir`; returns how many.
fn flip_all(dir: &Path) -> usize {
    let files = files_below(dir);
    for f in &files {
        let mut data = std::fs::read(f).unwrap();
        if data.is_empty() {
            data.push(b'x');
        } else {
            let mid = data.len() / 2;
            data[mid] ^= 0x01;
        }
        std::fs::write(f, data).unwrap();
    }
    files.len()
}

#[test]
#[ignore = "needs python3.12 (pyenv)"]
fn a_flood_of_compiler_warnings_does_not_hang_the_build() {
    // python3.12 comes from the binary's own finder; `always` fails the build without one.
    let extra = "  bytecode: always\nfiles:\n  - src: src\n    dest: python\n";
    let l = PyLayer::new(&["python3.12"], extra);
    // One SyntaxWarning per line, far past a pipe's 64 KiB.
    let module: String = (0..4000).map(|i| format!("pattern_{i} = \"\\d+\\.\\w\"\n")).collect();
    std::fs::create_dir_all(l.path().join("src")).unwrap();
    std::fs::write(l.path().join("src/flood.py"), module).unwrap();
    let out = run::run(l.cmd(&["--out", "dist"]), Duration::from_secs(120));
    out.expect_code(0, "a module full of invalid escapes");
    let zip = crate::wheels::read_zip(&l.path().join("dist").join(X86_ZIP));
    assert!(
        zip.contains_key("python/__pycache__/flood.cpython-312.pyc"),
        "{:?}",
        zip.keys()
    );
}

#[test]
#[ignore = "needs python3.9 (pyenv)"]
fn a_changed_bytecode_cache_changes_nothing_in_the_zip() {
    let mut l = PyLayer::new(&["python3.9"], "  bytecode: always\n");
    l.add("demo", "1.0", &[&pure("demo", "1.0", "def f(x):\n    return x + 1\n")]);
    l.build(&["--out", "clean", "--wheelhouse", "wheelhouse"])
        .expect_code(0, "clean");
    // Everything cached: bytecode, the records naming it, the wheels, compressed entries.
    let n = flip_all(&l.cache());
    assert!(n > 0, "no bytecode was cached");
    l.build(&["--out", "again", "--wheelhouse", "wheelhouse"])
        .expect_code(0, "again");
    assert!(
        l.zip_bytes("again") == l.zip_bytes("clean"),
        "a changed bytecode cache reached the zip"
    );
}

const GO_MAIN: &str = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"collector\") }\n";

/// The fixture with its amd64 collector built by Go from a tiny module.
fn go_fixture(d: &Path) {
    common::fixture(d);
    common::write(d, "gomod/go.mod", b"module example.com/collector\n\ngo 1.22\n");
    common::write(d, "gomod/main.go", GO_MAIN.as_bytes());
    let spec = common::SPEC.replace("    x86_64: {path: bin/collector-amd64}", "    x86_64: {go: gomod}");
    common::write(d, "layer.yaml", spec.as_bytes());
}

fn collector_of(zip: &Path) -> Vec<u8> {
    let entries = common::read_zip(zip);
    entries.into_iter().find(|e| e.0 == "extensions/collector").unwrap().2
}

#[test]
#[ignore = "needs Go"]
fn the_go_build_ignores_the_users_go_settings() {
    let d = tempfile::tempdir().unwrap();
    go_fixture(d.path());
    let build = |out: &str, cache: &str, env: &[(&str, &str)]| {
        let mut cmd = run::layerbuild(d.path());
        cmd.env("LAYERBUILD_CACHE", d.path().join(cache))
            .args(["build", "--quiet", "--arch", "x86_64", "--out", out]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run::run(cmd, Duration::from_secs(600))
    };
    build("clean", "cache-clean", &[]).expect_code(0, "clean Go environment");
    let goenv = d.path().join("goenv");
    std::fs::write(&goenv, "GOAMD64=v3\nGOFLAGS=-tags=evil\n").unwrap();
    let polluted = [
        ("GOAMD64", "v3"),
        ("GOEXPERIMENT", "nosuchexperiment"),
        ("GOTOOLCHAIN", "go1.99.0"),
        ("GOFLAGS", "-tags=evil -ldflags=-X=main.x=y"),
        ("CGO_ENABLED", "1"),
        ("GOENV", goenv.to_str().unwrap()),
    ];
    build("polluted", "cache-polluted", &polluted).expect_code(0, "a polluted Go environment");
    assert!(
        collector_of(&d.path().join("polluted").join(common::AMD64_ZIP))
            == collector_of(&d.path().join("clean").join(common::AMD64_ZIP)),
        "the user's Go settings changed the collector"
    );
}

#[test]
#[ignore = "needs Go"]
fn a_changed_collector_build_cache_changes_nothing_in_the_zip() {
    let d = tempfile::tempdir().unwrap();
    go_fixture(d.path());
    let build = |out: &str| {
        let mut cmd = run::layerbuild(d.path());
        cmd.args(["build", "--quiet", "--arch", "x86_64", "--out", out]);
        run::run(cmd, Duration::from_secs(600)).expect_code(0, out);
        std::fs::read(d.path().join(out).join(common::AMD64_ZIP)).unwrap()
    };
    let clean = build("clean");
    // Everything cached: the binary, the record naming it, compressed entries.
    let n = flip_all(&d.path().join(".cache"));
    assert!(n > 0, "no collector build was cached");
    assert!(build("again") == clean, "a changed collector cache reached the zip");
}
