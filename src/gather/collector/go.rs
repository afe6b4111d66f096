//! A collector binary built with `go build` for one architecture, reproducibly, and kept in the
//! cache by everything that decides its bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::model::arch::Arch;

/// Flags that make `go build` output depend only on its inputs: no paths, no VCS stamp, no
/// build id, stripped symbols and DWARF (smaller, and Lambda never debugs it).
const GO_BUILD_FLAGS: &[&str] = &["-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="];

fn go_env(cmd: &mut Command, arch: Arch) {
    cmd.env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", arch.goarch())
        .env("GOFLAGS", "-mod=readonly");
}

fn run_go(dir: &Path, args: &[&str], arch: Arch) -> Result<String> {
    let mut cmd = Command::new("go");
    cmd.current_dir(dir).args(args);
    go_env(&mut cmd, arch);
    let out = cmd.output().with_context(|| {
        format!(
            "cannot run `go` in {}: install Go or use a `path:` collector source",
            dir.display()
        )
    })?;
    if !out.status.success() {
        bail!(
            "`go {}` failed in {} ({}):\n{}",
            args.join(" "),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Hash of everything that decides the binary: module sources, Go version, target, flags.
fn build_key(dir: &Path, package: &str, arch: Arch, go_version: &str) -> Result<String> {
    let mut h = Sha256::new();
    for part in [go_version, package, arch.goarch(), &GO_BUILD_FLAGS.join(" ")] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        if e.file_type().is_file() {
            files.push(e.into_path());
        }
    }
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(Sha256::digest(fs_err::read(&f)?));
    }
    Ok(hex::encode(h.finalize()))
}

/// Which collector the binary is: the version of the module holding the main package, or,
/// when that is the local module itself (no version), the OpenTelemetry Collector it links.
fn module_version(dir: &Path, package: &str, arch: Arch) -> Result<String> {
    let main = run_go(
        dir,
        &["list", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", package],
        arch,
    )?;
    let main = main.trim();
    if main.split_whitespace().count() == 2 {
        return Ok(main.to_string());
    }
    let otelcol = run_go(
        dir,
        &["list", "-m", "-f", "{{.Path}} {{.Version}}", OTELCOL_MODULE],
        arch,
    )
    .unwrap_or_default();
    Ok(otelcol.trim().to_string())
}

/// The collector core every distribution is built on.
const OTELCOL_MODULE: &str = "go.opentelemetry.io/collector/otelcol";

/// Builds the collector with Go, reusing an earlier build with the same key.
pub(super) fn build(dir: &Path, package: &str, arch: Arch, cache_dir: &Path) -> Result<(Arc<[u8]>, Option<String>)> {
    if !dir.join("go.mod").is_file() {
        bail!("{}: no go.mod: `go:` must name a Go module folder", dir.display());
    }
    let go_version = run_go(dir, &["version"], arch)?;
    let key = build_key(dir, package, arch, go_version.trim())?;
    let slot = cache_dir
        .join("collector")
        .join(format!("{}-{}", arch.goarch(), &key[..32]));
    let bin = slot.join("collector");
    let version_file = slot.join("module-version");
    if bin.is_file() && version_file.is_file() {
        let version = fs_err::read_to_string(&version_file)?.trim().to_string();
        return Ok((fs_err::read(&bin)?.into(), Some(version).filter(|v| !v.is_empty())));
    }
    let parent = cache_dir.join("collector");
    fs_err::create_dir_all(&parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot create a build folder in {}", parent.display()))?;
    let out = tmp.path().join("collector");
    let out_arg = out.to_string_lossy().into_owned();
    let mut args = vec!["build"];
    args.extend_from_slice(GO_BUILD_FLAGS);
    args.extend_from_slice(&["-o", &out_arg, package]);
    run_go(dir, &args, arch)?;
    fs_err::write(tmp.path().join("module-version"), module_version(dir, package, arch)?)?;
    // Another build may have filled the slot meanwhile: both results are the same bytes.
    match fs_err::rename(tmp.path(), &slot) {
        Ok(()) => {
            let _ = tmp.keep();
        }
        Err(_) if bin.is_file() => {}
        Err(e) => return Err(e).with_context(|| format!("cannot move the collector build into {}", slot.display())),
    }
    let version = fs_err::read_to_string(&version_file)?.trim().to_string();
    Ok((fs_err::read(&bin)?.into(), Some(version).filter(|v| !v.is_empty())))
}
