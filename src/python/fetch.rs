//! The content-addressed wheel cache, `<cache>/wheels/<sha256>/<file>`, filled from a wheelhouse
//! or by `pip download`; nothing enters it before its hash is checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::tags;
use crate::support;
use crate::support::fs::write_atomic;
use crate::support::input;
use crate::support::text::show;
use crate::support::tool::ToolFailed;

/// One wheel a build needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Want {
    pub package: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
    /// A target the wheel is for: pip needs one to accept a platform wheel.
    pub arch: Arch,
    pub runtime: Runtime,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error(
        "wheel {file} of `{package}` has sha256 {got}, but the lock lists {expected}: the file is not the one that was locked; if the change is wanted, run `layerbuild lock` again"
    )]
    HashMismatch {
        package: String,
        file: String,
        expected: String,
        got: String,
    },
    #[error(
        "wheel {file} of `{package}` is not in the wheelhouse {wheelhouse}: add it there or build without --wheelhouse"
    )]
    NotInWheelhouse {
        package: String,
        file: String,
        wheelhouse: String,
    },
    #[error(
        "wheel {file} of `{package}` is not in the cache and --offline forbids downloading it: run once without --offline, or pass --wheelhouse DIR"
    )]
    Offline { package: String, file: String },
}

/// Where a cached wheel lives.
pub(crate) fn path(cache: &Path, sha256: &str, file: &str) -> PathBuf {
    cache.join("wheels").join(sha256).join(file)
}

/// Serializes filling the cache within this process: the architectures build in parallel and
/// share their pure wheels, which should be downloaded once.
static FILLING: Mutex<()> = Mutex::new(());

/// Makes every wanted wheel present in the cache; returns sha256 -> its bytes. Every byte
/// returned was hashed here against the sha256 the lock names it by: a cached wheel changed
/// since it was stored is dropped and fetched again like a missing one.
pub(crate) fn ensure(
    cache: &Path,
    wheelhouse: Option<&Path>,
    offline: bool,
    wants: &[Want],
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for w in wants {
        if found.contains_key(&w.sha256) {
            continue;
        }
        match cached(cache, w)? {
            Some(data) => {
                found.insert(w.sha256.clone(), data);
            }
            None => missing.push(w.clone()),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let _guard = FILLING.lock().unwrap_or_else(|e| e.into_inner());
    missing.dedup_by(|a, b| a.sha256 == b.sha256);
    let mut fetched = Vec::new();
    for w in missing {
        // Another architecture's build may have filled it while this one waited.
        match cached(cache, &w)? {
            Some(data) => {
                found.insert(w.sha256.clone(), data);
            }
            None => fetched.push(w),
        }
    }
    if fetched.is_empty() {
        return Ok(found);
    }
    if let Some(dir) = wheelhouse {
        for w in &fetched {
            let data = from_wheelhouse(dir, w)?;
            admit(cache, w, &data)?;
            found.insert(w.sha256.clone(), data);
        }
    } else if offline {
        let w = &fetched[0];
        bail!(FetchError::Offline {
            package: w.package.clone(),
            file: w.file.clone(),
        });
    } else {
        found.extend(download(cache, &fetched)?);
    }
    Ok(found)
}

/// The cached wheel, if present and still the locked bytes.
fn cached(cache: &Path, w: &Want) -> Result<Option<Vec<u8>>> {
    if !tags::is_plain_file_name(&w.file) {
        bail!("`{}` is not a plain wheel file name", show(&w.file));
    }
    support::cache::read_checked(&path(cache, &w.sha256, &w.file), &w.sha256, input::ARCHIVE_CAP)
}

fn from_wheelhouse(dir: &Path, w: &Want) -> Result<Vec<u8>> {
    match input::read(&dir.join(&w.file), input::ARCHIVE_CAP, "wheel") {
        Ok(data) => Ok(data),
        Err(e) if e.is_not_found() => bail!(FetchError::NotInWheelhouse {
            package: w.package.clone(),
            file: w.file.clone(),
            wheelhouse: dir.display().to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Checks `data` against the lock and renames it into the cache in one step.
fn admit(cache: &Path, w: &Want, data: &[u8]) -> Result<()> {
    let got = hex::encode(Sha256::digest(data));
    if got != w.sha256 {
        bail!(FetchError::HashMismatch {
            package: w.package.clone(),
            file: w.file.clone(),
            expected: w.sha256.clone(),
            got,
        });
    }
    // Two builds racing here write identical bytes, so whichever rename lands last is as good
    // as the first.
    write_atomic(&path(cache, &w.sha256, &w.file), data)
}

/// One `pip download` per target for all the wheels it is the first to need, so pip's own
/// configuration (index, credentials, proxy) applies; hashes in the requirements make pip pick
/// exactly the locked file and refuse any other.
fn download(cache: &Path, missing: &[Want]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut got_all = BTreeMap::new();
    let mut by_target: BTreeMap<(Arch, Runtime), Vec<&Want>> = BTreeMap::new();
    for w in missing {
        by_target.entry((w.arch, w.runtime)).or_default().push(w);
    }
    let tmp_root = cache.join("tmp");
    fs_err::create_dir_all(&tmp_root)?;
    for ((arch, rt), wants) in by_target {
        let dest = tempfile::Builder::new()
            .prefix("download-")
            .tempdir_in(&tmp_root)
            .with_context(|| format!("cannot create a folder in {}", tmp_root.display()))?;
        let mut reqs = String::new();
        for w in &wants {
            reqs.push_str(&format!("{}=={} --hash=sha256:{}\n", w.package, w.version, w.sha256));
        }
        let req_file = dest.path().join("requirements.txt");
        fs_err::write(&req_file, reqs)?;
        let wheels = dest.path().join("wheels");
        let mut cmd = Command::new(python());
        cmd.args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .arg("--dest")
        .arg(&wheels)
        .args(["--python-version", &rt.dotted(), "--implementation", "cp"]);
        for p in tags::pip_platforms(rt, arch) {
            cmd.args(["--platform", &p]);
        }
        cmd.arg("-r").arg(&req_file);
        let out = cmd
            .output()
            .context("cannot run `python3 -m pip download`: install Python 3 with pip, or pass --wheelhouse DIR")?;
        if !out.status.success() {
            return Err(ToolFailed {
                summary: format!(
                    "`pip download` for {rt} on {arch} failed ({}): pip's output is above: fix pip's access to the package index, or pass --wheelhouse DIR",
                    out.status
                ),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
            .into());
        }
        for w in &wants {
            let got = wheels.join(&w.file);
            if !got.is_file() {
                bail!(
                    "`pip download` did not produce {} for `{}=={}` ({rt}, {arch}): run `layerbuild lock` again",
                    w.file,
                    w.package,
                    w.version
                );
            }
            let data = input::read(&got, input::ARCHIVE_CAP, "wheel")?;
            admit(cache, w, &data)?;
            got_all.insert(w.sha256.clone(), data);
        }
    }
    Ok(got_all)
}

/// The Python that runs pip: `$LAYERBUILD_PYTHON`, else `python3`.
pub(crate) fn python() -> PathBuf {
    std::env::var_os("LAYERBUILD_PYTHON")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(data: &[u8], file: &str) -> Want {
        Want {
            package: "demo".into(),
            version: "1.0".into(),
            file: file.into(),
            sha256: hex::encode(Sha256::digest(data)),
            arch: Arch::X86_64,
            runtime: Runtime::parse("python3.9").unwrap(),
        }
    }

    #[test]
    fn wheelhouse_fills_cache_and_checks_hash() {
        let cache = tempfile::tempdir().unwrap();
        let house = tempfile::tempdir().unwrap();
        let file = "demo-1.0-py3-none-any.whl";
        fs_err::write(house.path().join(file), b"wheel bytes").unwrap();
        let w = want(b"wheel bytes", file);
        let got = ensure(cache.path(), Some(house.path()), false, std::slice::from_ref(&w)).unwrap();
        assert_eq!(got[&w.sha256], b"wheel bytes");
        // Warm: found without the wheelhouse, even offline.
        let warm = ensure(cache.path(), None, true, std::slice::from_ref(&w)).unwrap();
        assert_eq!(warm[&w.sha256], b"wheel bytes");
        // Changed in the cache: no longer a hit, so offline it is missing...
        fs_err::write(path(cache.path(), &w.sha256, file), b"wheel bytez").unwrap();
        let e = ensure(cache.path(), None, true, std::slice::from_ref(&w)).unwrap_err();
        assert!(e.to_string().contains("--offline"), "{e}");
        // ...and with the wheelhouse it is fetched again.
        let again = ensure(cache.path(), Some(house.path()), true, std::slice::from_ref(&w)).unwrap();
        assert_eq!(again[&w.sha256], b"wheel bytes");

        let bad = want(b"other bytes", file);
        let e = ensure(cache.path(), Some(house.path()), false, std::slice::from_ref(&bad)).unwrap_err();
        match e.downcast_ref::<FetchError>() {
            Some(FetchError::HashMismatch { expected, got, .. }) => {
                assert_eq!(expected, &bad.sha256);
                assert_eq!(got, &w.sha256);
            }
            other => panic!("{other:?}"),
        }
        assert!(!path(cache.path(), &bad.sha256, file).exists());
        let e = ensure(cache.path(), None, true, &[bad]).unwrap_err();
        assert!(e.to_string().contains("--offline"), "{e}");
    }
}
