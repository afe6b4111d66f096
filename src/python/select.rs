//! Chooses from the lock alone, before anything is fetched: the wheel each runtime installs for
//! each pin, what `python.exclude` leaves out, and which packages the lock already says cannot
//! share one folder between the runtimes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::TreeError;
use super::fetch::Want;
use super::lockfile::{self, Pin};
use super::tags::{WheelName, normalize};
use crate::check::rules;
use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::spec::PythonSpec;

/// The wheel a runtime installs for one pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pick {
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
}

/// Where wheels may come from: the flags `--wheelhouse` and `--offline`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    pub wheelhouse: Option<PathBuf>,
    pub offline: bool,
}

/// One architecture's Python tree, decided.
#[derive(Debug, Clone)]
pub(crate) struct TreePlan {
    /// The tree's folder in the zip, `python`.
    pub dest: String,
    pub runtimes: Vec<Runtime>,
    pub exclude: Excludes,
    /// Each runtime's wheels, one per pin; a runtime with no pins has no key.
    pub picks: BTreeMap<Runtime, Vec<Pick>>,
    /// Every distinct wheel once, in first-use order.
    pub wants: Vec<Want>,
    /// Normalized project name -> why its runtimes each get their own copy.
    pub apart: BTreeMap<String, String>,
    /// What the user should see in `plan` and the build summary.
    pub notes: Vec<String>,
    pub sources: Sources,
}

/// Plans the tree of `spec` for one architecture and every runtime.
pub(crate) fn plan(
    spec: &PythonSpec,
    spec_dir: &Path,
    arch: Arch,
    runtimes: &[Runtime],
    sources: Sources,
) -> Result<TreePlan> {
    let lock = lockfile::read(&spec_dir.join(&spec.lock))?;
    let dest = spec.dest.trim_matches('/').to_string();
    rules::check_path(&dest).with_context(|| format!("python.dest `{}` is not a safe zip folder", spec.dest))?;
    let exclude = Excludes::new(&spec.exclude)?;
    let mut notes = Vec::new();
    let mut picks: BTreeMap<Runtime, Vec<Pick>> = BTreeMap::new();
    let mut excluded = BTreeSet::new();
    for &rt in runtimes {
        let mut seen: BTreeMap<String, &Pin> = BTreeMap::new();
        for pin in lock.for_target(arch, rt) {
            if exclude.matches(&pin.name) {
                excluded.insert(pin.name.clone());
                continue;
            }
            if let Some(first) = seen.insert(normalize(&pin.name), pin) {
                bail!(TreeError::DuplicateDistInfo {
                    package: pin.name.clone(),
                    runtime: rt,
                    first: format!("{} {} (line {})", first.name, first.version, first.line),
                    second: format!("{} {} (line {})", pin.name, pin.version, pin.line),
                });
            }
            picks.entry(rt).or_default().push(pick(pin, rt, arch)?);
        }
        let pins = lock.for_target(arch, rt).map(|p| (p.name.as_str(), p.version.as_str()));
        super::needs::check_pkg_resources(pins, arch, rt)
            .map_err(|e| anyhow::Error::new(e).context(format!("{}", spec_dir.join(&spec.lock).display())))?;
    }
    if !excluded.is_empty() {
        notes.push(format!(
            "left out by python.exclude (the Lambda runtime ships its own): {}",
            excluded.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let apart = apart(&dest, runtimes, &picks, &mut notes);
    Ok(TreePlan {
        wants: wants(&picks, arch),
        dest,
        runtimes: runtimes.to_vec(),
        exclude,
        picks,
        apart,
        notes,
        sources,
    })
}

/// The best wheel of a pin for a runtime on an architecture, by its tags.
fn pick(pin: &Pin, rt: Runtime, arch: Arch) -> Result<Pick> {
    let best = pin
        .wheels
        .iter()
        .filter_map(|(file, sha)| {
            let score = WheelName::parse(file).ok()?.score(rt, arch)?;
            Some((score, file, sha))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)));
    let Some((_, file, sha)) = best else {
        let candidates = if pin.wheels.is_empty() {
            "no `# wheel:` lines".to_string()
        } else {
            pin.wheels.keys().cloned().collect::<Vec<_>>().join(", ")
        };
        bail!(TreeError::NoWheel {
            package: pin.name.clone(),
            version: pin.version.clone(),
            runtime: rt,
            arch,
            candidates,
        });
    };
    Ok(Pick {
        name: pin.name.clone(),
        version: pin.version.clone(),
        file: file.clone(),
        sha256: sha.clone(),
    })
}

/// Each pick, grouped by project, then by runtime.
pub(crate) fn by_project(picks: &BTreeMap<Runtime, Vec<Pick>>) -> BTreeMap<String, BTreeMap<Runtime, &Pick>> {
    let mut by_name: BTreeMap<String, BTreeMap<Runtime, &Pick>> = BTreeMap::new();
    for (&rt, ps) in picks {
        for p in ps {
            by_name.entry(normalize(&p.name)).or_default().insert(rt, p);
        }
    }
    by_name
}

/// Packages the lock alone keeps out of the shared tree: some runtime does without them, or
/// the runtimes pin different versions. (Wheels that disagree on a file are found at install.)
fn apart(
    dest: &str,
    runtimes: &[Runtime],
    picks: &BTreeMap<Runtime, Vec<Pick>>,
    notes: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, per_rt) in by_project(picks) {
        let name = &per_rt.values().next().expect("a group has a pick").name;
        let versions: BTreeSet<&str> = per_rt.values().map(|p| p.version.as_str()).collect();
        let why = if !runtimes.iter().all(|rt| per_rt.contains_key(rt)) {
            let only: Vec<String> = per_rt.keys().map(|r| r.to_string()).collect();
            format!("only {} need it", only.join(" and "))
        } else if versions.len() > 1 {
            let vs: Vec<String> = per_rt.iter().map(|(r, p)| format!("{} for {r}", p.version)).collect();
            format!("the runtimes need different versions ({})", vs.join(", "))
        } else {
            continue;
        };
        notes.push(apart_note(dest, name, &why));
        out.insert(key, why);
    }
    out
}

/// The note for a package installed once per runtime.
pub(crate) fn apart_note(dest: &str, name: &str, why: &str) -> String {
    format!("`{name}` is installed per runtime in {dest}/lib/python3.X/site-packages: {why}")
}

/// Every distinct wheel once, with a target pip can fetch it for.
fn wants(picks: &BTreeMap<Runtime, Vec<Pick>>, arch: Arch) -> Vec<Want> {
    let mut wants: Vec<Want> = Vec::new();
    for (&rt, ps) in picks {
        for p in ps {
            if !wants.iter().any(|w| w.sha256 == p.sha256) {
                wants.push(Want {
                    package: p.name.clone(),
                    version: p.version.clone(),
                    file: p.file.clone(),
                    sha256: p.sha256.clone(),
                    arch,
                    runtime: rt,
                });
            }
        }
    }
    wants
}

/// The `python.exclude` patterns: top-level names the tree leaves out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Excludes(Vec<glob::Pattern>);

/// Project names differ in case from their folders (`PyYAML`, `yaml`): patterns ignore case.
const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: false,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl Excludes {
    pub(crate) fn new(patterns: &[String]) -> Result<Excludes> {
        patterns
            .iter()
            .map(|p| {
                glob::Pattern::new(p)
                    .with_context(|| format!("python.exclude: `{p}` is not a glob pattern (`*`, `?`, `[abc]`)"))
            })
            .collect::<Result<_>>()
            .map(Excludes)
    }

    /// Whether a project or top-level name matches a pattern, its `-` read as `_` too.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let underscored = name.replace('-', "_");
        self.0
            .iter()
            .any(|p| p.matches_with(name, MATCH) || p.matches_with(&underscored, MATCH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_globs() {
        let ex = Excludes::new(&["boto*".to_string(), "urllib3*".to_string(), "a?c".to_string()]).unwrap();
        assert!(ex.matches("boto3"));
        assert!(ex.matches("Botocore"));
        assert!(ex.matches("urllib3-1.26.18.dist-info"));
        assert!(!ex.matches("opentelemetry-instrumentation-boto"));
        assert!(!ex.matches("requests"));
        assert!(ex.matches("abc") && !ex.matches("ac"));
        let e = Excludes::new(&["[boto".to_string()]).unwrap_err();
        assert!(format!("{e:#}").contains("`[boto` is not a glob pattern"), "{e:#}");
    }
}
