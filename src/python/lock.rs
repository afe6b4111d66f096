//! `layerbuild lock`: resolves the requirements with pip for every (architecture, runtime) target
//! and writes the hash-locked requirements file that `build` installs from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::fetch;
use crate::python::interpreter::{self, FindError, Sources};
use crate::python::lockfile::{self, Resolved};
use crate::python::tags::{self, normalize};
use crate::python::upgrade::{self, Upgrade};
use crate::spec::{self, LoadedSpec};
use crate::support::input;
use crate::support::progress::Progress;
use crate::support::tool::ToolFailed;
use crate::support::usage::usage;

#[derive(Debug, Clone)]
pub(crate) struct LockInput {
    pub spec: PathBuf,
    /// Interpreters whose pip resolves for a runtime, as `--python` gives them.
    pub pythons: Vec<(Runtime, PathBuf)>,
    /// Which pins of the lock being replaced may move.
    pub upgrade: Upgrade,
}

#[derive(Debug)]
/// What a `lock` run wrote, for its summary.
pub(crate) struct Summary {
    pub path: PathBuf,
    pub packages: usize,
    pub wheels: usize,
    pub warnings: Vec<String>,
    /// `name old -> new` per package whose pins changed, when a lock was there before.
    pub changes: Option<Vec<String>>,
}

/// `requirements.in` split at its `# --no-deps` line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Requirements {
    pub with_deps: Vec<String>,
    pub no_deps: Vec<String>,
}

pub(crate) fn parse_requirements(text: &str, file: &str) -> Result<Requirements> {
    let mut r = Requirements::default();
    let mut no_deps = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line == "# --no-deps" {
            no_deps = true;
            continue;
        }
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('-') {
            bail!(
                "{file}:{}: `{line}`: pip options do not belong in the requirements: layerbuild passes pip the target's own, and pip's configuration sets the index",
                i + 1
            );
        }
        if no_deps {
            r.no_deps.push(line.to_string());
        } else {
            r.with_deps.push(line.to_string());
        }
    }
    if r.with_deps.is_empty() && r.no_deps.is_empty() {
        bail!("{file}: names no requirement: list the packages the layer needs, one per line");
    }
    Ok(r)
}

/// One package pip would install, from its `--report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportItem {
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
}

pub(crate) fn parse_report(json: &str) -> Result<Vec<ReportItem>> {
    let v: Value = serde_json::from_str(json).context("pip's --report is not JSON")?;
    let items = v["install"]
        .as_array()
        .context("pip's --report has no `install` list")?;
    items
        .iter()
        .map(|it| {
            let name = it["metadata"]["name"]
                .as_str()
                .context("report item without metadata.name")?;
            let version = it["metadata"]["version"]
                .as_str()
                .with_context(|| format!("`{name}` has no metadata.version in pip's report"))?;
            let url = it["download_info"]["url"]
                .as_str()
                .with_context(|| format!("`{name}` has no download_info.url in pip's report"))?;
            let file = url.rsplit('/').next().unwrap_or(url);
            let file = file.split(['#', '?']).next().unwrap_or(file);
            let file = percent_encoding::percent_decode_str(file)
                .decode_utf8_lossy()
                .into_owned();
            if !file.ends_with(".whl") {
                bail!("`{name}=={version}` resolved to {file}, not a wheel: layers are built from wheels only");
            }
            let archive = &it["download_info"]["archive_info"];
            let sha = archive["hashes"]["sha256"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    archive["hash"]
                        .as_str()
                        .and_then(|h| h.strip_prefix("sha256="))
                        .map(str::to_string)
                })
                .with_context(|| format!("pip's report has no sha256 for {file}: the index must publish hashes"))?;
            Ok(ReportItem {
                name: name.to_string(),
                version: version.to_string(),
                file,
                sha256: sha.to_ascii_lowercase(),
            })
        })
        .collect()
}

/// Folds each target's resolution into pins: one per (package, version), with the targets that
/// use it and every wheel they use.
pub(crate) fn merge(results: &BTreeMap<(Arch, Runtime), Vec<ReportItem>>) -> Result<Vec<Resolved>> {
    let mut pins: BTreeMap<(String, String), Resolved> = BTreeMap::new();
    for (&target, items) in results {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for it in items {
            let key = normalize(&it.name);
            if let Some(v) = seen.insert(key.clone(), &it.version)
                && v != it.version
            {
                bail!(
                    "`{}` resolves to {v} with dependencies but to {} in the `# --no-deps` section for {} on {}: pin one version in the requirements",
                    it.name,
                    it.version,
                    target.1,
                    target.0
                );
            }
            let pin = pins.entry((key, it.version.clone())).or_insert_with(|| Resolved {
                name: it.name.clone(),
                version: it.version.clone(),
                ..Resolved::default()
            });
            pin.targets.insert(target);
            if let Some(old) = pin.wheels.insert(it.file.clone(), it.sha256.clone())
                && old != it.sha256
            {
                bail!(
                    "{} has two sha256 ({old} and {}) across targets: the index changed it, run `layerbuild lock` again",
                    it.file,
                    it.sha256
                );
            }
        }
    }
    Ok(pins.into_values().collect())
}

/// What pip would install for one target, and a warning when the kept pins had to go.
type TargetReport = ((Arch, Runtime), Vec<ReportItem>, Option<String>);

/// The lock being replaced, and the requirements' own project names.
struct Previous {
    lock: Option<lockfile::Lock>,
    direct: BTreeSet<String>,
    upgrade: Upgrade,
}

/// Runs the resolution and writes the lock.
pub(crate) fn run(input: &LockInput, progress: &Progress) -> Result<Summary> {
    let loaded = spec::load(&input.spec)?;
    let py = loaded.spec.python.as_ref().with_context(|| {
        format!(
            "{}: has no `python` section: there is nothing to lock",
            loaded.path.display()
        )
    })?;
    let req_rel = py.requirements.as_ref().with_context(|| {
        format!(
            "{}: python.requirements is not set: point it at the requirements file to lock (e.g. layer-src/requirements.in)",
            loaded.path.display()
        )
    })?;
    let req_path = loaded.resolve(req_rel);
    let req_text = input::read_to_string(&req_path, input::LOCK_CAP, "requirements file")?;
    let reqs = parse_requirements(&req_text, &req_path.display().to_string())?;
    let arches = loaded.architectures();
    let runtimes = &loaded.spec.runtimes;
    let mut warnings = Vec::new();
    let lock_path = loaded.resolve(&py.lock);
    let previous = previous(&lock_path, &req_path, &reqs, &input.upgrade)?;
    let resolvers = resolvers(&loaded, input, &mut warnings)?;
    let resolved = merge(&resolve_all(
        &reqs,
        &arches,
        &resolvers,
        &previous,
        progress,
        &mut warnings,
    )?)?;
    for &arch in &arches {
        for &rt in runtimes {
            let pins = resolved
                .iter()
                .filter(|r| r.targets.contains(&(arch, rt)))
                .map(|r| (r.name.as_str(), r.version.as_str()));
            crate::python::needs::check_pkg_resources(pins, arch, rt)
                .map_err(|e| anyhow::Error::new(e).context(format!("{} not written", lock_path.display())))?;
        }
    }
    let text = lockfile::render(&resolved, &arches, runtimes, &req_rel.display().to_string());
    // The written text must read back as what was resolved.
    lockfile::parse(&text, &lock_path.display().to_string())
        .context("layerbuild wrote a lock it cannot read (a bug)")?;
    crate::support::fs::write_atomic(&lock_path, text.as_bytes())?;
    let wheels: BTreeSet<&String> = resolved.iter().flat_map(|r| r.wheels.keys()).collect();
    Ok(Summary {
        path: lock_path,
        packages: resolved.len(),
        wheels: wheels.len(),
        warnings,
        changes: previous.lock.as_ref().map(|old| upgrade::changes(old, &resolved)),
    })
}

/// Reads the lock `run` replaces. Unreadable, it is an error unless every pin is freed anyway.
fn previous(lock_path: &Path, req_path: &Path, reqs: &Requirements, upgrade: &Upgrade) -> Result<Previous> {
    let direct: BTreeSet<String> = reqs
        .with_deps
        .iter()
        .chain(&reqs.no_deps)
        .filter_map(|l| upgrade::requirement_name(l))
        .collect();
    let lock = match lock_path.exists() {
        false => None,
        true => match lockfile::read(lock_path) {
            Ok(l) => Some(l),
            Err(_) if *upgrade == Upgrade::All => None,
            Err(e) => {
                return Err(e.context(format!(
                    "cannot keep the pins of {}: fix it, or pass --upgrade to resolve every package afresh",
                    lock_path.display()
                )));
            }
        },
    };
    let unknown = upgrade::unknown_packages(upgrade, lock.as_ref(), &direct);
    if !unknown.is_empty() {
        return Err(usage(format!(
            "--upgrade-package {}: not in {} nor in {}: check the name",
            unknown.join(", "),
            lock_path.display(),
            req_path.display()
        )));
    }
    Ok(Previous {
        lock,
        direct,
        upgrade: upgrade.clone(),
    })
}

/// The Python whose pip resolves each runtime. pip evaluates environment markers
/// (`python_version < "3.9"`) for the Python running it, whatever --python-version says; so
/// each runtime's own interpreter resolves when it is here.
fn resolvers(loaded: &LoadedSpec, input: &LockInput, warnings: &mut Vec<String>) -> Result<BTreeMap<Runtime, PathBuf>> {
    let flags: BTreeMap<Runtime, PathBuf> = input.pythons.iter().cloned().collect();
    for (rt, path) in &flags {
        if !loaded.spec.runtimes.contains(rt) {
            let listed: Vec<String> = loaded.spec.runtimes.iter().map(ToString::to_string).collect();
            return Err(usage(format!(
                "--python {rt}={}: {rt} is not one of the spec's runtimes ({}): add it to `runtimes` in {} or drop the flag",
                path.display(),
                listed.join(", "),
                loaded.path.display()
            )));
        }
    }
    let configured = loaded.spec.python.as_ref().map(|p| &p.interpreters);
    let cache = crate::support::cache::dir()?;
    crate::support::cache::ensure_private(&cache)?;
    let mut resolvers = BTreeMap::new();
    for &rt in &loaded.spec.runtimes {
        let chosen = if std::env::var_os("LAYERBUILD_PYTHON").is_some_and(|v| !v.is_empty()) {
            fetch::python()
        } else {
            let sources = Sources::new(
                flags.get(&rt).cloned(),
                configured.and_then(|c| c.get(&rt)).map(|p| loaded.resolve(p)),
                Some(cache.clone()),
            );
            match interpreter::find(rt, &sources) {
                Ok(i) if has_pip(&i.path) => i.path,
                Err(e @ FindError::Configured { .. }) => return Err(e.into()),
                Ok(_) | Err(FindError::NotFound { .. }) => {
                    warnings.push(format!(
                        "no {rt} interpreter with pip found: resolving with python3, so markers are evaluated for the host's Python (pass --python {rt}=PATH)"
                    ));
                    fetch::python()
                }
            }
        };
        resolvers.insert(rt, chosen);
    }
    Ok(resolvers)
}

/// Asks pip what it would install for every (architecture, runtime), all targets at once:
/// pip spends its time waiting on the index.
fn resolve_all(
    reqs: &Requirements,
    arches: &[Arch],
    resolvers: &BTreeMap<Runtime, PathBuf>,
    previous: &Previous,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<(Arch, Runtime), Vec<ReportItem>>> {
    let work = tempfile::tempdir().context("cannot create a temp folder")?;
    let write_reqs = |name: &str, lines: &[String]| -> Result<Option<PathBuf>> {
        if lines.is_empty() {
            return Ok(None);
        }
        let p = work.path().join(name);
        fs_err::write(&p, lines.join("\n") + "\n")?;
        Ok(Some(p))
    };
    let deps_file = write_reqs("with-deps.txt", &reqs.with_deps)?;
    let nodeps_file = write_reqs("no-deps.txt", &reqs.no_deps)?;
    let targets: Vec<(Arch, Runtime)> = arches
        .iter()
        .flat_map(|&a| resolvers.keys().map(move |&r| (a, r)))
        .collect();
    let results: Vec<Result<TargetReport>> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&(arch, rt)| {
                let python = &resolvers[&rt];
                let work = work.path();
                let (deps_file, nodeps_file) = (&deps_file, &nodeps_file);
                s.spawn(move || -> Result<_> {
                    let stage = progress.stage(format!("{arch} {rt}"), "resolve");
                    stage.set_message(format!("pip install --dry-run with {}", python.display()));
                    let pip = Pip { python, arch, rt, work };
                    let kept = match &previous.lock {
                        Some(old) => upgrade::constraints(old, &previous.direct, &previous.upgrade, arch, rt),
                        None => Vec::new(),
                    };
                    let (items, warning) = match pip.resolve_both(deps_file, nodeps_file, &kept) {
                        Err(e) if !kept.is_empty() => {
                            let items = pip.resolve_both(deps_file, nodeps_file, &[])?;
                            let why = format!("{e:#}");
                            let first = why.lines().next().unwrap_or_default().to_string();
                            (items, Some(format!(
                                "{rt} on {arch}: the kept pins do not resolve with the requirements ({first}); every package was resolved afresh there"
                            )))
                        }
                        other => (other?, None),
                    };
                    stage.done(format!("{} packages", items.len()));
                    Ok(((arch, rt), items, warning))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a resolver thread does not panic"))
            .collect()
    });
    let mut out = BTreeMap::new();
    for r in results {
        let (target, items, warning) = r?;
        warnings.extend(warning);
        out.insert(target, items);
    }
    Ok(out)
}

/// One target's pip.
struct Pip<'a> {
    python: &'a Path,
    arch: Arch,
    rt: Runtime,
    work: &'a Path,
}

impl Pip<'_> {
    /// Both sections of the requirements, with `kept` pins as constraints.
    fn resolve_both(
        &self,
        deps: &Option<PathBuf>,
        nodeps: &Option<PathBuf>,
        kept: &[String],
    ) -> Result<Vec<ReportItem>> {
        let constraints = if kept.is_empty() {
            None
        } else {
            let p = self.work.join(format!("constraints-{}-{}.txt", self.arch, self.rt));
            fs_err::write(&p, kept.join("\n") + "\n")?;
            Some(p)
        };
        let mut items = Vec::new();
        for (file, no_deps) in [(deps, false), (nodeps, true)] {
            if let Some(f) = file {
                items.extend(resolve(
                    self.python,
                    f,
                    no_deps,
                    self.arch,
                    self.rt,
                    self.work,
                    constraints.as_deref(),
                )?);
            }
        }
        Ok(items)
    }
}

fn has_pip(python: &Path) -> bool {
    Command::new(python)
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn resolve(
    python: &Path,
    reqs: &Path,
    no_deps: bool,
    arch: Arch,
    rt: Runtime,
    work: &Path,
    constraints: Option<&Path>,
) -> Result<Vec<ReportItem>> {
    let tag = format!("{}-{}-{}", arch, rt, if no_deps { "nodeps" } else { "deps" });
    let report = work.join(format!("report-{tag}.json"));
    let target = work.join(format!("target-{tag}"));
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--ignore-installed",
        "--disable-pip-version-check",
        "--quiet",
    ])
    .arg("--report")
    .arg(&report)
    .arg("--target")
    .arg(&target)
    .args([
        "--python-version",
        &rt.dotted(),
        "--implementation",
        "cp",
        "--only-binary=:all:",
    ]);
    for p in tags::pip_platforms(rt, arch) {
        cmd.args(["--platform", &p]);
    }
    if no_deps {
        cmd.arg("--no-deps");
    }
    if let Some(c) = constraints {
        cmd.arg("-c").arg(c);
    }
    cmd.arg("-r").arg(reqs);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {} -m pip: install pip for it", python.display()))?;
    if !out.status.success() {
        return Err(ToolFailed {
            summary: format!(
                "pip could not resolve the requirements for {rt} on {arch}{}: pip's output is above: fix the requirements (a version with wheels for every target) or pip's access to the index",
                if no_deps { " (the `# --no-deps` section)" } else { "" }
            ),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
        .into());
    }
    parse_report(&fs_err::read_to_string(&report)?)
        .with_context(|| format!("reading pip's resolution for {rt} on {arch}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_split_at_no_deps() {
        let r = parse_requirements("# top\na==1\n\nb~=2  # why\n# --no-deps\nc==3\n", "r.in").unwrap();
        assert_eq!(r.with_deps, vec!["a==1", "b~=2"]);
        assert_eq!(r.no_deps, vec!["c==3"]);
        let e = parse_requirements("--index-url x\n", "r.in").unwrap_err();
        assert!(e.to_string().contains("r.in:1"), "{e}");
    }

    #[test]
    fn report_and_merge() {
        let sha = "A".repeat(64);
        let json = format!(
            r#"{{"install":[{{"metadata":{{"name":"Wrapt","version":"1.0"}},"download_info":{{"url":"https://h/p/wrapt-1.0-cp39-cp39-manylinux2014_x86_64.whl","archive_info":{{"hash":"sha256={sha}"}}}}}}]}}"#
        );
        let items = parse_report(&json).unwrap();
        assert_eq!(items[0].file, "wrapt-1.0-cp39-cp39-manylinux2014_x86_64.whl");
        assert_eq!(items[0].sha256, "a".repeat(64));
        let rt = Runtime::parse("python3.9").unwrap();
        let mut other = items[0].clone();
        other.file = "wrapt-1.0-cp39-cp39-manylinux2014_aarch64.whl".into();
        other.sha256 = "b".repeat(64);
        let results = BTreeMap::from([((Arch::X86_64, rt), items.clone()), ((Arch::Arm64, rt), vec![other])]);
        let pins = merge(&results).unwrap();
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].wheels.len(), 2);
        assert_eq!(pins[0].targets.len(), 2);

        let mut newer = items[0].clone();
        newer.version = "2.0".into();
        let clash = BTreeMap::from([((Arch::X86_64, rt), vec![items[0].clone(), newer])]);
        assert!(merge(&clash).unwrap_err().to_string().contains("pin one version"));
        assert!(parse_report(r#"{"install":[{"metadata":{"name":"x","version":"1"},"download_info":{"url":"x-1.tar.gz","archive_info":{}}}]}"#).is_err());
        // Index URLs percent-encode the `+` of local versions; the file name has the `+`.
        let encoded = json
            .replace("wrapt-1.0-cp39", "wrapt-1.0%2Blocal-cp39")
            .replace(".whl", ".whl#sha256=x");
        assert_eq!(
            parse_report(&encoded).unwrap()[0].file,
            "wrapt-1.0+local-cp39-cp39-manylinux2014_x86_64.whl"
        );
    }
}
