//! Third-party tools the SBOM is checked with, installed once into the layerbuild cache's
//! `tools/` folder and reused: CycloneDX's Python library (its strict JSON schema validator)
//! in a venv, and syft built with `go install`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub const CYCLONEDX_PYTHON_LIB: &str = "11.12.0";
pub const SYFT: &str = "v1.57.1";

/// `$LAYERBUILD_CACHE`, else `$XDG_CACHE_HOME/layerbuild`, else `~/.cache/layerbuild`: the
/// same root layerbuild uses, plus `tools/`.
pub fn tools_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let root = var("LAYERBUILD_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("layerbuild")))
        .unwrap_or_else(|| var("HOME").unwrap_or_else(std::env::temp_dir).join(".cache/layerbuild"));
    root.join("tools")
}

/// Makes `dir` by running `fill` on a private folder beside it, then renaming that into
/// place, so that two test runs at once never see half a tool.
fn install(dir: &Path, what: &str, fill: impl FnOnce(&Path)) {
    if dir.exists() {
        return;
    }
    let parent = dir.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    let tmp = parent.join(format!(
        ".{}.{}",
        dir.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let started = Instant::now();
    fill(&tmp);
    eprintln!("installed {what} into {} in {:.0?}", dir.display(), started.elapsed());
    if std::fs::rename(&tmp, dir).is_err() {
        // Another run finished first: keep its copy.
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The venv's Python, with `cyclonedx-python-lib[json-validation]` installed.
pub fn cyclonedx_python() -> PathBuf {
    let dir = tools_dir().join(format!("cyclonedx-python-lib-{CYCLONEDX_PYTHON_LIB}"));
    install(&dir, "cyclonedx-python-lib", |tmp| {
        run(Command::new("python3").args(["-m", "venv"]).arg(tmp));
        // Only `bin/python` is used: the venv still works after the rename, its scripts do not.
        run(Command::new(tmp.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("cyclonedx-python-lib[json-validation]=={CYCLONEDX_PYTHON_LIB}"),
        ]));
    });
    dir.join("bin/python")
}

/// The syft binary.
pub fn syft() -> PathBuf {
    let dir = tools_dir().join(format!("syft-{SYFT}"));
    install(&dir, "syft", |tmp| {
        run(Command::new("go")
            .args(["install", &format!("github.com/anchore/syft/cmd/syft@{SYFT}")])
            .env("GOBIN", tmp)
            .env("CGO_ENABLED", "0"));
    });
    dir.join("syft")
}

/// Strictly validates each CycloneDX 1.5 JSON file; returns each file's complaint, if any.
pub fn validate(files: &[PathBuf]) -> Vec<(PathBuf, Option<String>)> {
    const SCRIPT: &str = "\
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
validator = JsonStrictValidator(SchemaVersion.V1_5)
for path in sys.argv[1:]:
    with open(path) as f:
        error = validator.validate_str(f.read())
    print('invalid' if error else 'valid', path, repr(error) if error else '', sep='\\t')
";
    let out = Command::new(cyclonedx_python())
        .args(["-c", SCRIPT])
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let results: Vec<_> = text
        .lines()
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let verdict = f.next().unwrap();
            let path = PathBuf::from(f.next().unwrap());
            (path, (verdict != "valid").then(|| f.next().unwrap_or("").to_string()))
        })
        .collect();
    assert_eq!(results.len(), files.len(), "the validator skipped files:\n{text}");
    results
}

/// syft's JSON report of a folder.
pub fn syft_scan(dir: &Path) -> serde_json::Value {
    let out = Command::new(syft())
        .arg("scan")
        .arg(format!("dir:{}", dir.display()))
        .args(["-o", "syft-json", "-q"])
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "syft failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
