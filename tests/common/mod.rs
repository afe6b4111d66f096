//! Fixtures for end-to-end tests: a tiny layer spec, fake ELF collectors, zip rewriting.
#![allow(dead_code)]

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use assert_cmd::Command;

mod elf;
pub use elf::*;

pub const CONFIG: &str = "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: localhost:4318\nexporters:\n  debug:\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n";

pub const SPEC: &str = "\
name: demo-layer
version: 1.2.3
architectures: [x86_64, arm64]
runtimes: [python3.9]
files:
  - src: src/otel-instrument
    dest: otel-instrument
    executable: true
  - src: src/pkg
    dest: python
collector:
  dest: extensions/collector
  per_arch:
    x86_64: {path: bin/collector-amd64}
    arm64: {path: bin/collector-arm64}
  config:
    src: config/config.yaml
    dest: collector-config/config.yaml
";

/// Writes the fixture layer sources into `dir` and returns the spec path.
pub fn fixture(dir: &Path) -> PathBuf {
    write(dir, "layer.yaml", SPEC.as_bytes());
    write(dir, "src/otel-instrument", b"#!/bin/sh\nexec \"$@\"\n");
    write(
        dir,
        "src/pkg/otel_wrapper.py",
        b"def lambda_handler(event, context):\n    return event\n",
    );
    write(dir, "src/pkg/demo/__init__.py", b"VALUE = 1\n");
    write(
        dir,
        "src/pkg/demo/_native.cpython-39-x86_64-linux-gnu.so.txt",
        b"not a shared object, just a name\n",
    );
    write(dir, "config/config.yaml", CONFIG.as_bytes());
    write(dir, "bin/collector-amd64", &fake_elf(EM_X86_64, ET_EXEC, 4096));
    write(dir, "bin/collector-arm64", &fake_elf(EM_AARCH64, ET_EXEC, 4096));
    dir.join("layer.yaml")
}

pub fn write(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// The binary, run in `dir`, with a private cache.
pub fn layerbuild(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("layerbuild").unwrap();
    cmd.current_dir(dir)
        .env("LAYERBUILD_CACHE", dir.join(".cache"))
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// The binary, run in `dir`, with the cache of whoever runs the tests (`LAYERBUILD_CACHE`,
/// else `$XDG_CACHE_HOME/layerbuild`, else `~/.cache/layerbuild`, as they set it): for tests on
/// the real layer, whose interpreters and runtime packages are slow to fetch again.
pub fn layerbuild_shared_cache(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("layerbuild").unwrap();
    cmd.current_dir(dir).env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// What the fake `go` does when asked to build.
pub enum GoBuild {
    /// Touch `go-started` in the test folder, sleep this many seconds, then copy a fake ELF.
    After(u32),
    /// Print compiler errors on stderr and exit 1, as a broken module does.
    Fails,
}

/// Switches the fixture's collector to a `go:` source and puts a fake `go` first on a PATH
/// (returned): it answers `version` and `list` like Go and "builds" as `build` says.
pub fn fake_go(dir: &Path, build: GoBuild) -> std::ffi::OsString {
    write(dir, "elf/elf-amd64", &fake_elf(EM_X86_64, ET_EXEC, 64));
    write(dir, "elf/elf-arm64", &fake_elf(EM_AARCH64, ET_EXEC, 64));
    let body = match build {
        GoBuild::After(secs) => format!(
            "touch '{d}/go-started'; sleep {secs}; while [ \"$1\" != -o ]; do shift; done; cp \"{d}/elf/elf-$GOARCH\" \"$2\"",
            d = dir.display()
        ),
        GoBuild::Fails => {
            "echo './main.go:3:2: undefined: collectr' >&2; echo './main.go:4:2: undefined: run' >&2; exit 1"
                .to_string()
        }
    };
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\nversion) echo 'go version go0.0-fake linux/amd64' ;;\nlist) echo 'example.com/fakecollector v0.0.1' ;;\nbuild) {body} ;;\n*) echo \"fake go: $*\" >&2; exit 2 ;;\nesac\n"
    );
    write(dir, "fakebin/go", script.as_bytes());
    std::fs::set_permissions(
        dir.join("fakebin/go"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    write(dir, "gomod/go.mod", b"module example.com/fakecollector\n\ngo 1.22\n");
    write(dir, "gomod/main.go", b"package main\n\nfunc main() {}\n");
    let spec = std::fs::read_to_string(dir.join("layer.yaml")).unwrap().replace(
        "  per_arch:\n    x86_64: {path: bin/collector-amd64}\n    arm64: {path: bin/collector-arm64}\n",
        "  source: {go: gomod}\n",
    );
    write(dir, "layer.yaml", spec.as_bytes());
    let mut paths = vec![dir.join("fakebin")];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).unwrap()
}

pub const AMD64_ZIP: &str = "demo-layer-amd64-ver-1-2-3.zip";
pub const ARM64_ZIP: &str = "demo-layer-arm64-ver-1-2-3.zip";

/// Every file left in `dir` (not folders), sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// One zip entry: name, unix mode (with file type), data.
pub type ZipEntry = (String, u32, Vec<u8>);

pub fn read_zip(path: &Path) -> Vec<ZipEntry> {
    let mut z = zip::ZipArchive::new(Cursor::new(std::fs::read(path).unwrap())).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), f.unix_mode().unwrap(), data)
        })
        .collect()
}

/// Writes entries back as a zip, the way a tool that "fixes" a layer would.
pub fn write_zip(path: &Path, entries: &[ZipEntry]) {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, mode, data) in entries {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode & 0o7777);
        if name.ends_with('/') {
            w.add_directory(name.as_str(), opts).unwrap();
        } else {
            w.start_file(name.as_str(), opts).unwrap();
            w.write_all(data).unwrap();
        }
    }
    std::fs::write(path, w.finish().unwrap().into_inner()).unwrap();
}

/// The `name` of every object in a JSON list, e.g. the checks of a smoke report.
pub fn names(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .expect("a JSON list")
        .iter()
        .map(|c| c["name"].as_str().expect("a name"))
        .collect()
}
