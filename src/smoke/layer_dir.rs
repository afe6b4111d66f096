//! The layer on disk as Lambda sees it: unpacked read-only where /opt would be, and the folder of
//! one run beside it (task root with the handler, the bootstrap, the collector's config, logs).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{FUNCTION_NAME, HANDLER, REGION, SmokeError};
use crate::manifest::Manifest;
use crate::model::arch::Arch;
use crate::support::text::show;
use crate::support::{extract, input};

const BOOTSTRAP_PY: &str = include_str!("bootstrap.py");
const HANDLER_PY: &str = include_str!("handler.py");

/// The unpacked layer, read-only like /opt; made writable again so the temp folder can go.
pub(crate) struct Layer {
    work: tempfile::TempDir,
    /// What stands for /opt.
    pub(crate) root: PathBuf,
    /// The zip or folder it came from, as given.
    pub(crate) source: String,
    pub(crate) manifest: Option<Manifest>,
    pub(crate) notes: Vec<String>,
}

impl Layer {
    /// The folder for everything else of the runs (run folders, probes, logs).
    pub(crate) fn work(&self) -> &Path {
        self.work.path()
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        set_writable(&self.root, true);
        open_layers().retain(|p| p != self.work.path());
    }
}

/// The temp folders of the layers open now, for [`remove_open_layers`].
static OPEN_LAYERS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn open_layers() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    OPEN_LAYERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every open layer's temp folder, its read-only layer included: what a signal that
/// ends smoke does instead of the drops that will not run.
pub(crate) fn remove_open_layers() {
    for work in open_layers().drain(..) {
        set_writable(&work, true);
        let _ = std::fs::remove_dir_all(&work);
    }
}

/// Unpacks the zip (or copies the folder) by `deadline` and makes it read-only, as Lambda
/// mounts /opt.
pub(crate) fn open(zip: Option<&Path>, dir: Option<&Path>, deadline: Instant) -> Result<Layer, SmokeError> {
    let work = tempfile::Builder::new()
        .prefix("layerbuild-smoke-")
        .tempdir()
        .context("cannot create a temp folder for the layer")?;
    open_layers().push(work.path().to_path_buf());
    let root = work.path().join("opt");
    let mut notes = Vec::new();
    let (source, manifest) = match (zip, dir) {
        (Some(zip), _) => {
            unpack_zip(zip, &root, deadline)?;
            let mpath = crate::manifest::manifest_path(zip);
            let manifest = if mpath.exists() {
                Some(crate::manifest::read(&mpath)?)
            } else {
                notes.push(format!(
                    "no manifest at {}: runtimes from the flags (else python3.9)",
                    mpath.display()
                ));
                None
            };
            (zip.display().to_string(), manifest)
        }
        (None, Some(dir)) => {
            if !dir.join("otel-instrument").exists() && !dir.join("extensions").is_dir() {
                return Err(SmokeError::NotALayer(dir.to_path_buf()));
            }
            copy_tree(dir, &root, deadline)?;
            (dir.display().to_string(), None)
        }
        (None, None) => return Err(SmokeError::NoLayer),
    };
    set_writable(&root, false);
    Ok(Layer {
        work,
        root,
        source,
        manifest,
        notes,
    })
}

/// The architectures of the ELF files directly in `extensions/` (what Lambda starts), each with
/// the names of its files; empty when there are none.
pub(crate) fn extension_arches(root: &Path) -> BTreeMap<Arch, Vec<String>> {
    let mut found: BTreeMap<Arch, Vec<String>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(root.join("extensions")) else {
        return found;
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let mut head = Vec::with_capacity(64);
        if std::fs::File::open(e.path())
            .and_then(|f| f.take(64).read_to_end(&mut head))
            .is_err()
        {
            continue;
        }
        let machine = crate::check::elf::machine(&head);
        if let Some(arch) = [Arch::X86_64, Arch::Arm64]
            .into_iter()
            .find(|a| Some(a.elf_machine()) == machine)
        {
            found
                .entry(arch)
                .or_default()
                .push(e.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

fn set_writable(root: &Path, writable: bool) {
    // Folders last when locking (so the walk can still list them), first when unlocking.
    let entries: Vec<_> = walkdir::WalkDir::new(root)
        .contents_first(!writable)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| !e.path_is_symlink())
        .collect();
    for e in entries {
        if let Ok(md) = e.metadata() {
            let mode = md.permissions().mode();
            let new = if writable { mode | 0o200 } else { mode & !0o222 };
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(new));
        }
    }
}

/// Unpacks through the crate's one safe extraction: names enclosed, no link created or
/// followed, sizes within what Lambda unpacks, special bits refused.
fn unpack_zip(zip_path: &Path, dest: &Path, deadline: Instant) -> Result<()> {
    let opts = extract::Options {
        deadline: Some(deadline),
        ..extract::Options::default()
    };
    extract::extract(zip_path, dest, &opts).context(
        "cannot unpack the layer: give a layer zip built by `layerbuild build` (regular files and folders only)",
    )?;
    Ok(())
}

/// Copies an unpacked layer, creating no link: a symlink or special file in it is refused
/// (a layer holds regular files and folders), and modes keep their permission bits only.
fn copy_tree(src: &Path, dest: &Path, deadline: Instant) -> Result<()> {
    for e in walkdir::WalkDir::new(src) {
        if Instant::now() >= deadline {
            bail!(
                "{}: copying the layer did not finish within --timeout",
                show(&src.display().to_string())
            );
        }
        let e = e.with_context(|| format!("cannot read {}", src.display()))?;
        let rel = e.path().strip_prefix(src)?;
        let target = dest.join(rel);
        let kind = e.file_type();
        if kind.is_dir() {
            fs_err::create_dir_all(&target)?;
        } else if kind.is_file() {
            let data = input::read(e.path(), input::FILE_CAP, "layer file")?;
            fs_err::write(&target, data)?;
            let mode = e.metadata()?.permissions().mode() & 0o777;
            fs_err::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
        } else {
            bail!(
                "{}: not a regular file or folder (a symlink?): a layer holds regular files only",
                show(&e.path().display().to_string())
            );
        }
    }
    Ok(())
}

/// Files Lambda would start as extensions: every regular file in `extensions/`, by name.
pub(crate) fn extension_files(layer: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(layer.join("extensions"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The folder of one run, filled: task root with the handler, the bootstrap, the collector config.
pub(crate) struct RunDir {
    pub(crate) root: PathBuf,
    pub(crate) logs: PathBuf,
    pub(crate) task: PathBuf,
    pub(crate) bootstrap: PathBuf,
    pub(crate) config: PathBuf,
}

impl RunDir {
    pub(crate) fn create(parent: &Path, name: &str, handler: Option<&Path>, config: &str) -> Result<RunDir> {
        let root = parent.join(name);
        let dir = RunDir {
            logs: root.join("logs"),
            task: root.join("task"),
            bootstrap: root.join("bootstrap.py"),
            config: root.join("collector-config.yaml"),
            root,
        };
        fs_err::create_dir_all(&dir.logs)?;
        fs_err::create_dir_all(&dir.task)?;
        match handler {
            Some(h) => {
                fs_err::write(dir.task.join("handler.py"), input::read(h, input::FILE_CAP, "handler")?)?;
            }
            None => fs_err::write(dir.task.join("handler.py"), HANDLER_PY)?,
        }
        fs_err::write(&dir.bootstrap, BOOTSTRAP_PY)?;
        fs_err::write(&dir.config, config)?;
        Ok(dir)
    }

    /// The environment Lambda gives the runtime and extensions, pointing at this run's APIs.
    pub(crate) fn lambda_env(&self, layer: &Path, api: &str) -> BTreeMap<String, OsString> {
        let mut env: BTreeMap<String, OsString> = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            env.insert(k.to_string(), OsString::from(v));
        };
        set("LANG", "C.UTF-8");
        set("TZ", ":UTC");
        set("HOME", &self.root.display().to_string());
        set("_HANDLER", HANDLER);
        set("LAMBDA_TASK_ROOT", &self.task.display().to_string());
        set("AWS_REGION", REGION);
        set("AWS_DEFAULT_REGION", REGION);
        set("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME);
        set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
        set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128");
        set("AWS_LAMBDA_LOG_GROUP_NAME", &format!("/aws/lambda/{FUNCTION_NAME}"));
        set(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2024/01/01/[$LATEST]00000000000000000000000000000000",
        );
        set("AWS_LAMBDA_RUNTIME_API", api);
        set(
            "AWS_LAMBDA_EXEC_WRAPPER",
            &layer.join("otel-instrument").display().to_string(),
        );
        set("OPENTELEMETRY_COLLECTOR_CONFIG_URI", &self.config.display().to_string());
        // Lambda's sandbox resolves sandbox.localdomain, the Telemetry API listener's default
        // host; this host does not, so the collector is told to listen on loopback instead.
        set("OPENTELEMETRY_EXTENSION_TELEMETRY_LISTENER_HOST", "127.0.0.1");
        set("PATH", "/usr/local/bin:/usr/bin:/bin");
        env
    }
}

/// The collector config smoke points the extension at: OTLP in, OTLP/HTTP JSON out to the receiver.
pub(crate) fn collector_config(grpc_port: u16, http_port: u16, receiver_endpoint: &str) -> String {
    format!(
        "# Written by `layerbuild smoke`: the layer's collector forwards traces, and the function's
# log lines from the Telemetry API, to smoke's receiver.
receivers:
  telemetryapi:
    types: [function]
  otlp:
    protocols:
      grpc:
        endpoint: \"localhost:{grpc_port}\"
      http:
        endpoint: \"localhost:{http_port}\"
exporters:
  otlphttp:
    endpoint: \"{receiver_endpoint}\"
    encoding: json
    compression: none
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlphttp]
    logs:
      receivers: [telemetryapi]
      exporters: [otlphttp]
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + std::time::Duration::from_secs(600)
    }

    #[test]
    fn the_sample_handler_prints_the_line_smoke_checks() {
        assert!(HANDLER_PY.contains(&format!("LOG_LINE = \"{}\"", crate::smoke::checks::HANDLER_LOG_LINE)));
    }

    #[test]
    fn config_points_at_the_receiver() {
        let c = collector_config(4317, 4318, "http://127.0.0.1:9");
        let v: serde_norway::Value = serde_norway::from_str(&c).unwrap();
        assert_eq!(
            v["exporters"]["otlphttp"]["endpoint"].as_str(),
            Some("http://127.0.0.1:9")
        );
        assert_eq!(v["exporters"]["otlphttp"]["encoding"].as_str(), Some("json"));
        assert_eq!(
            v["service"]["pipelines"]["logs"]["receivers"][0].as_str(),
            Some("telemetryapi")
        );
        assert_eq!(
            v["receivers"]["otlp"]["protocols"]["http"]["endpoint"].as_str(),
            Some("localhost:4318")
        );
    }

    #[test]
    fn a_folder_that_is_not_a_layer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        match open(None, Some(dir.path()), far()) {
            Err(SmokeError::NotALayer(p)) => assert_eq!(p, dir.path()),
            other => panic!("{:?}", other.map(|l| l.root.clone())),
        }
    }

    #[test]
    fn the_unpacked_layer_is_read_only_and_keeps_modes() {
        let dir = tempfile::tempdir().unwrap();
        let zip_path = dir.path().join("l.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let opts = |mode| zip::write::SimpleFileOptions::default().unix_permissions(mode);
        zip.start_file("otel-instrument", opts(0o755)).unwrap();
        std::io::Write::write_all(&mut zip, b"#!/bin/sh\n").unwrap();
        zip.start_file("python/x.py", opts(0o644)).unwrap();
        zip.finish().unwrap();
        let layer = open(Some(&zip_path), None, far()).unwrap();
        let mode = |rel: &str| std::fs::metadata(layer.root.join(rel)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("otel-instrument"), 0o555);
        assert_eq!(mode("python/x.py"), 0o444);
        assert!(layer.notes[0].contains("no manifest"), "{:?}", layer.notes);
        let root = layer.root.clone();
        drop(layer);
        assert!(!root.exists(), "the temp folder goes with the layer");
    }
}
