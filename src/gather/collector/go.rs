//! A collector binary built with `go build` for one architecture, reproducibly, and kept in the
//! cache by everything that decides its bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::model::arch::Arch;
use crate::support::cache::Blobs;
use crate::support::input;
use crate::support::tool::ToolFailed;

/// Flags that make `go build` output depend only on its inputs: no paths, no VCS stamp, no
/// build id, stripped symbols and DWARF (smaller, and Lambda never debugs it).
const GO_BUILD_FLAGS: &[&str] = &["-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="];

/// Variables that decide the binary's bytes, fixed here whatever the user's environment or
/// `go env -w` file says. Everything else is cleared except [`PASSED`].
fn fixed_env(arch: Arch) -> [(&'static str, &'static str); 10] {
    [
        ("CGO_ENABLED", "0"),
        ("GOOS", "linux"),
        ("GOARCH", arch.goarch()),
        ("GOFLAGS", "-mod=readonly"),
        ("GOAMD64", "v1"),
        ("GOARM64", "v8.0"),
        // The installed Go builds, never one it would download; no workspace, no env file.
        ("GOTOOLCHAIN", "local"),
        ("GOWORK", "off"),
        ("GOENV", "off"),
        ("GOEXPERIMENT", ""),
    ]
}

/// Where Go finds modules and keeps its caches, and how it reaches the network: these change
/// where bytes come from, never which bytes (go.sum pins them). Taken from the environment,
/// else from the user's `go env -w` file, which the build itself does not read.
const PASSED: &[&str] = &[
    "GOPROXY",
    "GONOPROXY",
    "GOPRIVATE",
    "GONOSUMDB",
    "GOSUMDB",
    "GOINSECURE",
    "GOVCS",
    "GOAUTH",
    "GOMODCACHE",
    "GOCACHE",
    "GOPATH",
    "GOTMPDIR",
];

/// The host's own variables a Go build needs to run at all.
const HOST: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "XDG_CACHE_HOME",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NETRC",
];

fn go_env(cmd: &mut Command, arch: Arch) {
    cmd.env_clear();
    let file = user_go_env();
    for key in HOST {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    for key in PASSED {
        let value = std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .or_else(|| file.get(*key).map(Into::into));
        if let Some(v) = value {
            cmd.env(key, v);
        }
    }
    for (key, value) in fixed_env(arch) {
        cmd.env(key, value);
    }
}

/// The `KEY=VALUE` lines of the user's `go env -w` file (`$GOENV`, else the config folder's
/// `go/env`), or nothing.
fn user_go_env() -> std::collections::BTreeMap<String, String> {
    let path = match std::env::var_os("GOENV").filter(|v| !v.is_empty()) {
        Some(v) if v == "off" => return Default::default(),
        Some(v) => PathBuf::from(v),
        None => {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
            match config {
                Some(c) => c.join("go/env"),
                None => return Default::default(),
            }
        }
    };
    let text = input::read_to_string(&path, 1 << 20, "go env file").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
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
        return Err(ToolFailed {
            summary: format!(
                "`go {}` failed in {} ({}): go's output is above: fix the module, or use a `path:` collector source",
                args.first().copied().unwrap_or_default(),
                dir.display(),
                out.status
            ),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
        .into());
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
        h.update(Sha256::digest(input::read(&f, input::FILE_CAP, "Go source")?));
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

/// A collector Go built (or built before).
pub(super) struct GoBuild {
    pub data: Arc<[u8]>,
    /// Of `data`, hashed once where it was read or stored.
    pub sha256: String,
    pub version: Option<String>,
    /// Taken from the cache rather than built now.
    pub reused: bool,
}

/// Builds the collector with Go, reusing an earlier build with the same key.
pub(super) fn build(dir: &Path, package: &str, arch: Arch, cache_dir: &Path) -> Result<GoBuild> {
    if !dir.join("go.mod").is_file() {
        bail!("{}: no go.mod: `go:` must name a Go module folder", dir.display());
    }
    let go_version = run_go(dir, &["version"], arch)?;
    let key = build_key(dir, package, arch, go_version.trim())?;
    let parent = cache_dir.join("collector");
    let record = parent.join(format!("{}-{}.record", arch.goarch(), &key[..32]));
    let blobs = Blobs::new(cache_dir);
    // A hit is a binary stored under its own sha256, named by a record of this build's key.
    if let Some(hit) = blobs.get_record(&record, input::FILE_CAP)? {
        return Ok(GoBuild {
            data: hit.data.into(),
            sha256: hit.sha256,
            version: Some(hit.note).filter(|v| !v.is_empty()),
            reused: true,
        });
    }
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
    let bin = input::read(&out, input::FILE_CAP, "collector build")?;
    let version = module_version(dir, package, arch)?.trim().to_string();
    let sha = blobs.put(&bin)?;
    // Another build may write the same record meanwhile: both name the same bytes.
    blobs.put_record(&record, &sha, &version)?;
    Ok(GoBuild {
        data: bin.into(),
        sha256: sha,
        version: Some(version).filter(|v| !v.is_empty()),
        reused: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(cmd: &Command) -> std::collections::BTreeMap<String, Option<String>> {
        cmd.get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn the_build_environment_is_fixed_and_cleared() {
        let mut cmd = Command::new("go");
        go_env(&mut cmd, Arch::X86_64);
        let env = env_of(&cmd);
        for (k, v) in fixed_env(Arch::X86_64) {
            assert_eq!(env.get(k), Some(&Some(v.to_string())), "{k}");
        }
        for k in env.keys() {
            assert!(
                HOST.contains(&k.as_str())
                    || PASSED.contains(&k.as_str())
                    || fixed_env(Arch::X86_64).iter().any(|(f, _)| f == k),
                "{k} is passed to go build"
            );
        }
        assert_eq!(env["GOARCH"].as_deref(), Some("amd64"));
    }
}
