//! Places installed wheels in the tree: into the folder every runtime shares when they agree,
//! else into each runtime's own site-packages; then one dist-info per project per runtime, and
//! a RECORD per package for the paths it ended up at.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};

use super::select::{Excludes, TreePlan, apart_note, by_project};
use super::tags::normalize;
use super::wheel::{self, Installed, Row, WheelFile};
use super::{TreeError, runtime_site};
use crate::check::rules;
use crate::model::runtime::Runtime;

/// Every file of the tree by zip path, with where it came from.
pub(crate) type TreeFiles = BTreeMap<String, (WheelFile, String)>;

/// One package version placed in one site folder, built from one or more wheels.
#[derive(Debug)]
pub(crate) struct Placed {
    /// `python` or `python/lib/python3.8/site-packages`.
    site: String,
    dist_info: String,
    files: BTreeMap<String, WheelFile>,
    scripts: BTreeMap<String, WheelFile>,
    origin: String,
}

/// Decides where each package goes: into the shared tree when every runtime installs the same
/// version and the runtimes' wheels agree on every shared file, else into each runtime's own
/// site-packages. `installed` is keyed by wheel sha256.
pub(crate) fn place(
    plan: &TreePlan,
    installed: &BTreeMap<String, Installed>,
    notes: &mut Vec<String>,
) -> Result<Vec<Placed>> {
    let dest = &plan.dest;
    let mut out = Vec::new();
    for (key, per_rt) in by_project(&plan.picks) {
        if !plan.apart.contains_key(&key) {
            let mut shas: Vec<&str> = Vec::new();
            for p in per_rt.values() {
                if !shas.contains(&p.sha256.as_str()) {
                    shas.push(&p.sha256);
                }
            }
            let wheels: Vec<&Installed> = shas.iter().map(|s| &installed[*s]).collect();
            match merge(dest, &wheels, &plan.exclude) {
                Ok(p) => {
                    out.extend(p);
                    continue;
                }
                Err(why) => {
                    let name = &per_rt.values().next().expect("a group has a pick").name;
                    notes.push(apart_note(dest, name, &why));
                }
            }
        }
        for (&rt, p) in &per_rt {
            let site = runtime_site(dest, rt);
            out.extend(merge(&site, &[&installed[&p.sha256]], &plan.exclude).map_err(anyhow::Error::msg)?);
        }
    }
    Ok(out)
}

/// Combines the wheels of one package version (one per ABI) into one install in `site`.
/// `Ok(None)` when exclusion leaves nothing of it; `Err` says why the wheels cannot share a folder.
fn merge(site: &str, wheels: &[&Installed], exclude: &Excludes) -> Result<Option<Placed>, String> {
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
            if top != w.dist_info && exclude.matches(top) {
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
pub(crate) fn check_dist_infos(dest: &str, runtimes: &[Runtime], placed: &[Placed]) -> Result<()> {
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
pub(crate) fn assemble(dest: &str, placed: &[Placed]) -> Result<TreeFiles> {
    let bin = format!("{dest}/bin");
    let mut out = TreeFiles::new();
    for p in placed {
        let record_path = format!("{}/RECORD", p.dist_info);
        add(
            &mut out,
            format!("{}/{record_path}", p.site),
            record(dest, p),
            &p.origin,
        )?;
        for f in p.files.values() {
            add(&mut out, format!("{}/{}", p.site, f.path), f.clone(), &p.origin)?;
        }
        for s in p.scripts.values() {
            add(&mut out, format!("{bin}/{}", s.path), s.clone(), &p.origin)?;
        }
    }
    Ok(out)
}

/// The package's RECORD: its files, its scripts (from the site folder, `../bin/`), itself.
fn record(dest: &str, p: &Placed) -> WheelFile {
    let up = "../".repeat(p.site.split('/').count() - dest.split('/').count());
    let record_path = format!("{}/RECORD", p.dist_info);
    let rows: Vec<Row> = p
        .files
        .values()
        .map(|f| Row::of(f.path.as_str(), &f.sha256, f.data.len()))
        .chain(
            p.scripts
                .values()
                .map(|s| Row::of(format!("{up}bin/{}", s.path), &s.sha256, s.data.len())),
        )
        .chain([Row::unhashed(record_path.as_str())])
        .collect();
    WheelFile::new(record_path, wheel::record::write(&rows), false)
}

/// Adds one file; the same path twice must be the same bytes.
fn add(out: &mut TreeFiles, path: String, f: WheelFile, origin: &str) -> Result<()> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
