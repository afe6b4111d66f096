//! Installs the locked Python packages into the layer's `python/` tree for one architecture and
//! every runtime: picks each runtime's wheel by tags, installs them natively, merges what the
//! runtimes share, and adds checked-hash bytecode.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use crate::check::rules;
use crate::manifest::PackageRecord;
use crate::model::arch::Arch;
use crate::model::entry::{Content, Entry};
use crate::model::runtime::Runtime;
use crate::python::bytecode;
use crate::python::fetch::{self, Want};
use crate::python::interpreter::{self, FindError, Sources};
use crate::python::lockfile::{self, Locked};
use crate::python::tags::{WheelName, normalize};
use crate::python::wheel::{self, Installed, WheelFile};
use crate::spec::{Bytecode, PythonSpec};

/// How wheels are fetched and bytecode is compiled; from the command line and environment.
#[derive(Debug, Clone, Default)]
pub struct PythonOptions {
    pub wheelhouse: Option<PathBuf>,
    pub offline: bool,
    pub cache: PathBuf,
    /// Where each runtime's interpreter is looked for: `--python`, the spec, the host.
    pub interpreters: BTreeMap<Runtime, Sources>,
    pub bytecode: Bytecode,
}

/// The installed tree, as entries for the archive, and what went into it.
#[derive(Debug, Default)]
pub struct PythonTree {
    pub entries: Vec<Entry>,
    pub packages: Vec<PackageRecord>,
    pub bytecode_runtimes: Vec<Runtime>,
    /// Facts the user should see in `plan` and the build summary.
    pub notes: Vec<String>,
}

/// Failures tests and scripts tell apart.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(
        "no wheel of `{package}=={version}` suits {runtime} on {arch} (the lock has: {candidates}): run `layerbuild lock` again, or pin a version with a wheel for that target"
    )]
    NoWheel {
        package: String,
        version: String,
        runtime: Runtime,
        arch: Arch,
        candidates: String,
    },
    #[error(
        "two `*.dist-info` of `{package}` would be installed for {runtime} ({first} and {second}): keep one version of it in the lock"
    )]
    DuplicateDistInfo {
        package: String,
        runtime: Runtime,
        first: String,
        second: String,
    },
    #[error(
        "`{path}` is installed by both {first} and {second} with different content: remove one of them from the lock"
    )]
    Conflict {
        path: String,
        first: String,
        second: String,
    },
    #[error(
        "{source} (python.bytecode is `always`, so {runtime} needs bytecode): pass --python {runtime}=PATH or set python.interpreters"
    )]
    NoInterpreter { runtime: Runtime, source: FindError },
}

/// The wheel a runtime installs for one pin.
#[derive(Debug, Clone)]
struct Pick<'a> {
    pin: &'a Locked,
    file: String,
    sha256: String,
}

/// One package version placed in one site folder, built from one or more wheels.
#[derive(Debug)]
struct Placed {
    /// `python` or `python/lib/python3.8/site-packages`.
    site: String,
    dist_info: String,
    files: BTreeMap<String, WheelFile>,
    scripts: BTreeMap<String, WheelFile>,
    origin: String,
}

pub fn gather(
    spec: &PythonSpec,
    spec_dir: &Path,
    arch: Arch,
    runtimes: &[Runtime],
    opts: &PythonOptions,
) -> Result<PythonTree> {
    let lock_path = spec_dir.join(&spec.lock);
    let lock = lockfile::read(&lock_path)?;
    let dest = spec.dest.trim_matches('/').to_string();
    rules::check_path(&dest).with_context(|| format!("python.dest `{}` is not a safe zip folder", spec.dest))?;
    let mut tree = PythonTree::default();

    let mut excluded = BTreeSet::new();
    let mut picks: BTreeMap<Runtime, Vec<Pick>> = BTreeMap::new();
    for &rt in runtimes {
        let mut seen: BTreeMap<String, &Locked> = BTreeMap::new();
        for pin in lock.for_target(arch, rt) {
            if excludes(&spec.exclude, &pin.name) {
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
    }
    if !excluded.is_empty() {
        tree.notes.push(format!(
            "left out by python.exclude (the Lambda runtime ships its own): {}",
            excluded.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }

    // Fetch and install each distinct wheel once, on all cores.
    let mut wants: Vec<Want> = Vec::new();
    for (&rt, ps) in &picks {
        for p in ps {
            if !wants.iter().any(|w| w.sha256 == p.sha256) {
                wants.push(Want {
                    package: p.pin.name.clone(),
                    version: p.pin.version.clone(),
                    file: p.file.clone(),
                    sha256: p.sha256.clone(),
                    arch,
                    runtime: rt,
                });
            }
        }
    }
    let paths = fetch::ensure(&opts.cache, opts.wheelhouse.as_deref(), opts.offline, &wants)?;
    let installed: BTreeMap<String, Installed> = wants
        .par_iter()
        .map(|w| -> Result<(String, Installed)> {
            let data = fs_err::read(&paths[&w.sha256])?;
            let got = wheel::install(&w.file, &data)?;
            if normalize(&got.name) != normalize(&w.package) || loose_version(&got.version) != loose_version(&w.version)
            {
                bail!(
                    "{}: holds {} {}, but the lock pins it as `{}=={}`: run `layerbuild lock` again",
                    w.file,
                    got.name,
                    got.version,
                    w.package,
                    w.version
                );
            }
            Ok((w.sha256.clone(), got))
        })
        .collect::<Result<_>>()?;

    for w in &wants {
        let used: Vec<String> = picks
            .iter()
            .filter(|(_, ps)| ps.iter().any(|p| p.sha256 == w.sha256))
            .map(|(rt, _)| rt.to_string())
            .collect();
        tree.packages.push(PackageRecord {
            name: w.package.clone(),
            version: w.version.clone(),
            wheel: w.file.clone(),
            sha256: w.sha256.clone(),
            runtimes: used,
        });
    }

    let placed = place(&dest, runtimes, &picks, &installed, &spec.exclude, &mut tree.notes)?;
    check_dist_infos(&dest, runtimes, &placed)?;
    let files = assemble(&dest, &placed)?;
    let files = add_bytecode(&dest, runtimes, files, opts, &mut tree)?;
    tree.entries = files
        .into_iter()
        .map(|(path, (f, origin))| Entry::file(path, f.executable, Content::Bytes(f.data), origin))
        .collect();
    Ok(tree)
}

/// Versions as dist-info folder names and pins may spell them (`1.0-1` is `1.0_1` there).
fn loose_version(v: &str) -> String {
    v.to_ascii_lowercase().replace(['-', '_'], ".")
}

/// Whether a project or top-level name matches one of the `python.exclude` globs.
fn excludes(patterns: &[String], name: &str) -> bool {
    let underscored = name.replace('-', "_");
    patterns.iter().any(|p| glob(p, name) || glob(p, &underscored))
}

/// `*` and `?` globbing, enough for top-level names.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

fn pick<'a>(pin: &'a Locked, rt: Runtime, arch: Arch) -> Result<Pick<'a>> {
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
        pin,
        file: file.clone(),
        sha256: sha.clone(),
    })
}

/// The folder a runtime's own packages go to; Lambda puts it on that runtime's `sys.path`.
fn runtime_site(dest: &str, rt: Runtime) -> String {
    format!("{dest}/lib/python{}/site-packages", rt.dotted())
}

/// Decides where each package goes: into the shared tree when every runtime installs the same
/// version and the runtimes' wheels agree on every shared file, else into each runtime's own
/// site-packages.
fn place(
    dest: &str,
    runtimes: &[Runtime],
    picks: &BTreeMap<Runtime, Vec<Pick>>,
    installed: &BTreeMap<String, Installed>,
    exclude: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<Placed>> {
    let mut by_name: BTreeMap<String, BTreeMap<Runtime, &Pick>> = BTreeMap::new();
    for (&rt, ps) in picks {
        for p in ps {
            by_name.entry(normalize(&p.pin.name)).or_default().insert(rt, p);
        }
    }
    let mut out = Vec::new();
    for per_rt in by_name.values() {
        let name = &per_rt.values().next().expect("a group has a pick").pin.name;
        let versions: BTreeSet<&str> = per_rt.values().map(|p| p.pin.version.as_str()).collect();
        let every = runtimes.iter().all(|rt| per_rt.contains_key(rt));
        let why_apart = if !every {
            let only: Vec<String> = per_rt.keys().map(|r| r.to_string()).collect();
            Some(format!("only {} need it", only.join(" and ")))
        } else if versions.len() > 1 {
            let vs: Vec<String> = per_rt
                .iter()
                .map(|(r, p)| format!("{} for {r}", p.pin.version))
                .collect();
            Some(format!("the runtimes need different versions ({})", vs.join(", ")))
        } else {
            let mut shas: Vec<&str> = Vec::new();
            for p in per_rt.values() {
                if !shas.contains(&p.sha256.as_str()) {
                    shas.push(&p.sha256);
                }
            }
            let wheels: Vec<&Installed> = shas.iter().map(|s| &installed[*s]).collect();
            match merge(dest, &wheels, exclude) {
                Ok(p) => {
                    out.extend(p);
                    None
                }
                Err(why) => Some(why),
            }
        };
        if let Some(why) = why_apart {
            for (&rt, p) in per_rt {
                out.extend(
                    merge(&runtime_site(dest, rt), &[&installed[&p.sha256]], exclude).map_err(anyhow::Error::msg)?,
                );
            }
            notes.push(format!(
                "`{name}` is installed per runtime in {dest}/lib/python3.X/site-packages: {why}"
            ));
        }
    }
    Ok(out)
}

/// Combines the wheels of one package version (one per ABI) into one install in `site`.
/// `Ok(None)` when exclusion leaves nothing of it; `Err` says why the wheels cannot share a folder.
fn merge(site: &str, wheels: &[&Installed], exclude: &[String]) -> Result<Option<Placed>, String> {
    let first = wheels[0];
    let wheel_meta = format!("{}/WHEEL", first.dist_info);
    let mut files: BTreeMap<String, WheelFile> = BTreeMap::new();
    let mut scripts: BTreeMap<String, WheelFile> = BTreeMap::new();
    for w in wheels {
        if w.dist_info != first.dist_info {
            return Err(format!(
                "its wheels name their metadata differently ({} and {})",
                first.dist_info, w.dist_info
            ));
        }
        for f in &w.site {
            let top = f.path.split('/').next().unwrap_or("");
            if top != w.dist_info && excludes(exclude, top) {
                continue;
            }
            match files.get(&f.path) {
                None => {
                    files.insert(f.path.clone(), f.clone());
                }
                Some(g) if g.sha256 == f.sha256 => {}
                Some(g) if f.path == wheel_meta => {
                    let merged = merge_wheel_tags(&g.data, &f.data);
                    files.insert(f.path.clone(), WheelFile::new(f.path.clone(), merged, false));
                }
                Some(_) => {
                    return Err(format!(
                        "`{}` differs between {} and {}",
                        f.path, first.file_name, w.file_name
                    ));
                }
            }
        }
        for s in &w.scripts {
            match scripts.get(&s.path) {
                Some(g) if g.sha256 != s.sha256 => {
                    return Err(format!(
                        "script `{}` differs between {} and {}",
                        s.path, first.file_name, w.file_name
                    ));
                }
                Some(_) => {}
                None => {
                    scripts.insert(s.path.clone(), s.clone());
                }
            }
        }
    }
    // A package whose every module was excluded is gone entirely, metadata and scripts too.
    if files.keys().all(|p| p.starts_with(&format!("{}/", first.dist_info))) && files.len() < first.site.len() {
        return Ok(None);
    }
    Ok(Some(Placed {
        site: site.to_string(),
        dist_info: first.dist_info.clone(),
        files,
        scripts,
        origin: wheels
            .iter()
            .map(|w| w.file_name.as_str())
            .collect::<Vec<_>>()
            .join(" + "),
    }))
}

/// The WHEEL file of the first wheel, listing the `Tag:` lines of all of them.
fn merge_wheel_tags(a: &[u8], b: &[u8]) -> Vec<u8> {
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    let mut tags = BTreeSet::new();
    let mut out = String::new();
    for line in a.lines() {
        if line.starts_with("Tag:") {
            tags.insert(line.to_string());
        } else if !line.is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    tags.extend(b.lines().filter(|l| l.starts_with("Tag:")).map(str::to_string));
    for t in tags {
        out.push_str(&t);
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

/// Each runtime sees the shared tree plus its own folder: one dist-info per project there.
fn check_dist_infos(dest: &str, runtimes: &[Runtime], placed: &[Placed]) -> Result<()> {
    for &rt in runtimes {
        let own = runtime_site(dest, rt);
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for p in placed.iter().filter(|p| p.site == dest || p.site == own) {
            let tops: BTreeSet<&str> = p
                .files
                .keys()
                .filter_map(|f| f.split('/').next())
                .filter(|t| t.ends_with(".dist-info"))
                .collect();
            for d in tops {
                let project = d.trim_end_matches(".dist-info").split('-').next().unwrap_or(d);
                if let Some(first) = seen.insert(normalize(project), format!("{}/{d}", p.site)) {
                    bail!(TreeError::DuplicateDistInfo {
                        package: project.to_string(),
                        runtime: rt,
                        first,
                        second: format!("{}/{d}", p.site),
                    });
                }
            }
        }
    }
    Ok(())
}

/// All files of the tree by zip path, with a RECORD per package for its final paths.
fn assemble(dest: &str, placed: &[Placed]) -> Result<BTreeMap<String, (WheelFile, String)>> {
    let bin = format!("{dest}/bin");
    let mut out: BTreeMap<String, (WheelFile, String)> = BTreeMap::new();
    let mut add = |path: String, f: WheelFile, origin: &str| -> Result<()> {
        rules::check_path(&path).with_context(|| format!("{origin}: unsafe install path"))?;
        match out.get(&path) {
            Some((g, _)) if g.sha256 == f.sha256 => Ok(()),
            Some((_, first)) => bail!(TreeError::Conflict {
                path,
                first: first.clone(),
                second: origin.to_string(),
            }),
            None => {
                out.insert(path, (f, origin.to_string()));
                Ok(())
            }
        }
    };
    for p in placed {
        let up = "../".repeat(p.site.split('/').count() - dest.split('/').count());
        let mut record = String::new();
        for f in p.files.values() {
            record.push_str(&wheel::record_line(
                &f.path,
                &format!("sha256={}", wheel::urlsafe(&f.sha256)),
                &f.data.len().to_string(),
            ));
        }
        for s in p.scripts.values() {
            record.push_str(&wheel::record_line(
                &format!("{up}bin/{}", s.path),
                &format!("sha256={}", wheel::urlsafe(&s.sha256)),
                &s.data.len().to_string(),
            ));
        }
        let record_path = format!("{}/RECORD", p.dist_info);
        record.push_str(&wheel::record_line(&record_path, "", ""));
        add(
            format!("{}/{record_path}", p.site),
            WheelFile::new(record_path.clone(), record.into_bytes(), false),
            &p.origin,
        )?;
        for f in p.files.values() {
            add(format!("{}/{}", p.site, f.path), f.clone(), &p.origin)?;
        }
        for s in p.scripts.values() {
            add(format!("{bin}/{}", s.path), s.clone(), &p.origin)?;
        }
    }
    Ok(out)
}

/// A runtime's `.pyc` files by zip path.
type Compiled = Vec<(String, Arc<[u8]>)>;

/// Adds `__pycache__/*.cpython-3X.pyc` next to every `.py` a runtime can import, for each
/// runtime whose interpreter is at hand (or required).
fn add_bytecode(
    dest: &str,
    runtimes: &[Runtime],
    mut files: BTreeMap<String, (WheelFile, String)>,
    opts: &PythonOptions,
    tree: &mut PythonTree,
) -> Result<BTreeMap<String, (WheelFile, String)>> {
    if opts.bytecode == Bytecode::Never {
        return Ok(files);
    }
    let mut interpreters = Vec::new();
    for &rt in runtimes {
        match interpreter::find(rt, &opts.interpreters[&rt]) {
            Ok(i) => interpreters.push((rt, i)),
            Err(e @ FindError::Configured { .. }) => return Err(e.into()),
            Err(source) if opts.bytecode == Bytecode::Always => {
                bail!(TreeError::NoInterpreter { runtime: rt, source })
            }
            Err(_) => tree.notes.push(format!(
                "no {rt} interpreter found: no bytecode for it (pass --python {rt}=PATH)"
            )),
        }
    }
    let others: Vec<String> = runtimes
        .iter()
        .map(|&r| format!("{}/", runtime_site(dest, r)))
        .collect();
    let compiled: Vec<(Runtime, Compiled)> = interpreters
        .par_iter()
        .map(|(rt, interp)| -> Result<_> {
            let own = format!("{}/", runtime_site(dest, *rt));
            let chosen: Vec<(&String, &WheelFile)> = files
                .iter()
                .filter(|(p, _)| p.ends_with(".py"))
                .filter(|(p, _)| p.starts_with(&own) || !others.iter().any(|o| p.starts_with(o.as_str())))
                .map(|(p, (f, _))| (p, f))
                .collect();
            let sources: Vec<bytecode::Source> = chosen
                .iter()
                .map(|(p, f)| bytecode::Source {
                    dfile: format!("/opt/{p}"),
                    data: f.data.clone(),
                    sha256: f.sha256,
                })
                .collect();
            let pycs = bytecode::compile(interp, &sources, &opts.cache)?;
            let out = chosen
                .iter()
                .zip(pycs)
                .filter_map(|((p, _), pyc)| Some((bytecode::pyc_path(p, *rt)?, pyc?)))
                .collect();
            Ok((*rt, out))
        })
        .collect::<Result<_>>()?;
    for (rt, pycs) in compiled {
        for (path, data) in pycs {
            let sha256 = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&data)).into();
            let f = WheelFile {
                path: path.clone(),
                data,
                sha256,
                executable: false,
            };
            files.insert(path, (f, format!("bytecode for {rt}")));
        }
        tree.bytecode_runtimes.push(rt);
    }
    Ok(files)
}

/// Bytecode for `.py` files the spec itself places in the Python tree (the handler shim): they
/// are imported on every cold start too. Only for runtimes the tree got bytecode for.
pub fn bytecode_for_files(
    files: &[Entry],
    dest: &str,
    runtimes: &[Runtime],
    opts: &PythonOptions,
) -> Result<Vec<Entry>> {
    let prefix = format!("{}/", dest.trim_matches('/'));
    let py: Vec<&Entry> = files
        .iter()
        .filter(|e| e.path.starts_with(&prefix) && e.path.ends_with(".py"))
        .collect();
    if py.is_empty() {
        return Ok(Vec::new());
    }
    let sources = py
        .iter()
        .map(|e| -> Result<bytecode::Source> {
            let data = e.read()?;
            let sha256 = <sha2::Sha256 as sha2::Digest>::digest(&data).into();
            Ok(bytecode::Source {
                dfile: format!("/opt/{}", e.path),
                data,
                sha256,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for &rt in runtimes {
        let interp = interpreter::find(rt, &opts.interpreters[&rt])?;
        for (e, pyc) in py.iter().zip(bytecode::compile(&interp, &sources, &opts.cache)?) {
            match (bytecode::pyc_path(&e.path, rt), pyc) {
                (Some(path), Some(pyc)) => out.push(Entry::file(
                    path,
                    false,
                    Content::Bytes(pyc),
                    format!("bytecode for {rt}"),
                )),
                _ => bail!("{}: {rt} cannot compile it: fix its syntax for {rt}", e.origin),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_globs() {
        let pats = vec!["boto*".to_string(), "urllib3*".to_string()];
        assert!(excludes(&pats, "boto3"));
        assert!(excludes(&pats, "botocore"));
        assert!(excludes(&pats, "urllib3-1.26.18.dist-info"));
        assert!(!excludes(&pats, "opentelemetry-instrumentation-boto"));
        assert!(!excludes(&pats, "requests"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
    }

    #[test]
    fn wheel_tags_merge() {
        let a = b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp38-cp38-manylinux2014_x86_64\n\n";
        let b = b"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp39-cp39-manylinux2014_x86_64\n\n";
        let m = String::from_utf8(merge_wheel_tags(a, b)).unwrap();
        assert_eq!(
            m,
            "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp38-cp38-manylinux2014_x86_64\nTag: cp39-cp39-manylinux2014_x86_64\n\n"
        );
    }
}
