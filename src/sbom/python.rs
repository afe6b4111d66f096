//! Python distributions installed in a layer: each `*.dist-info` folder's METADATA (name,
//! version, license), WHEEL tags (the architecture it serves) and RECORD (the files it owns);
//! legacy `*.egg-info` and `*.egg/EGG-INFO` folders by their PKG-INFO and installed-files.txt.

use std::collections::BTreeSet;

use cyclonedx_bom::prelude::{SpdxExpression, SpdxIdentifier};

use super::SbomError;
use super::layer::LayerFiles;
use crate::python::wheel::record;

/// One distribution's metadata folder as found in the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dist {
    /// Zip path of the metadata folder (`*.dist-info`, `*.egg-info`, `EGG-INFO`), no `/` at
    /// the end.
    pub dist_info: String,
    /// The folder all of whose files belong to the distribution: the metadata folder, or the
    /// whole `*.egg` for an `EGG-INFO`.
    pub folder: String,
    pub name: String,
    pub version: String,
    pub licenses: Vec<LicenseRef>,
    /// `x86_64`, `arm64` or `any`, from the WHEEL file's tags.
    pub arch: String,
    /// The runtime whose own site-packages holds it; `None` in the folder every runtime shares.
    pub runtime: Option<String>,
    /// Zip paths of the files its RECORD lists.
    pub owns: Vec<String>,
}

/// A license as METADATA gives it: an SPDX id, an SPDX expression, or only a name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LicenseRef {
    Id(String),
    Expression(String),
    Name(String),
}

/// Metadata folders: `*.dist-info` with a METADATA file, `*.egg-info` or `EGG-INFO` with a
/// PKG-INFO file; sorted.
pub(crate) fn metadata_dirs<'a>(paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let dirs: BTreeSet<&str> = paths
        .into_iter()
        .filter_map(|p| {
            let dist = p.strip_suffix("/METADATA").filter(|d| d.ends_with(".dist-info"));
            let egg = p
                .strip_suffix("/PKG-INFO")
                .filter(|d| d.ends_with(".egg-info") || d.ends_with(".egg/EGG-INFO"));
            dist.or(egg)
        })
        .collect();
    dirs.into_iter().map(str::to_string).collect()
}

fn is_dist_info(dir: &str) -> bool {
    dir.ends_with(".dist-info")
}

/// Reads one dist-info folder.
pub(crate) fn read_dist(dir: &str, files: &mut dyn LayerFiles) -> Result<Dist, SbomError> {
    let text = |files: &mut dyn LayerFiles, name: &str| -> Result<Option<String>, SbomError> {
        let path = format!("{dir}/{name}");
        if files.paths().binary_search(&path).is_err() {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&files.read(&path)?).into_owned()))
    };
    let metadata_file = if is_dist_info(dir) { "METADATA" } else { "PKG-INFO" };
    let metadata = headers(&text(files, metadata_file)?.unwrap_or_default());
    let field = |key: &str| {
        metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (dir_name, dir_version) = name_version_of(dir);
    let folder = dir.strip_suffix("/EGG-INFO").unwrap_or(dir);
    let site = folder.rsplit_once('/').map(|(s, _)| s).unwrap_or("");
    let wheel = headers(&text(files, "WHEEL")?.unwrap_or_default());
    let platforms = wheel
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Tag"))
        .filter_map(|(_, t)| t.trim().splitn(3, '-').nth(2).map(str::to_string));
    // RECORD rows are relative to the site folder, installed-files.txt lines to the egg-info.
    let (list, base) = if is_dist_info(dir) {
        ("RECORD", site)
    } else {
        ("installed-files.txt", dir)
    };
    let owns = match text(files, list)? {
        Some(rows) => record_paths(base, &rows).map_err(|problem| SbomError::Read {
            path: format!("{dir}/{list}"),
            problem,
        })?,
        None => Vec::new(),
    };
    Ok(Dist {
        dist_info: dir.to_string(),
        folder: folder.to_string(),
        name: field("Name").unwrap_or(dir_name),
        version: field("Version").unwrap_or(dir_version),
        licenses: licenses(&metadata),
        arch: arch_of_platforms(platforms),
        runtime: site_runtime(site),
        owns,
    })
}

/// `python/foo_bar-1.0.dist-info` -> (`foo_bar`, `1.0`), also for `foo_bar-1.0-py3.9.egg-info`
/// and `foo_bar-1.0-py3.9.egg/EGG-INFO`: the escaped name never holds a `-`.
pub(crate) fn name_version_of(dir: &str) -> (String, String) {
    let dir = dir.strip_suffix("/EGG-INFO").unwrap_or(dir);
    let folder = dir.rsplit('/').next().unwrap_or(dir);
    let stem = [".dist-info", ".egg-info", ".egg"]
        .iter()
        .find_map(|s| folder.strip_suffix(s))
        .unwrap_or(folder);
    let mut parts = stem.split('-');
    let name = parts.next().unwrap_or_default();
    (name.to_string(), parts.next().unwrap_or_default().to_string())
}

/// `python/lib/python3.9/site-packages` -> `python3.9`.
fn site_runtime(site: &str) -> Option<String> {
    let rest = site.strip_suffix("/site-packages")?;
    let py = rest.rsplit('/').next()?;
    let lib = rest.strip_suffix(py)?.strip_suffix('/')?;
    (lib.ends_with("/lib") || lib == "lib")
        .then_some(py)
        .filter(|py| py.starts_with("python3."))
        .map(str::to_string)
}

/// One architecture name for a set of wheel platform tags: `any` for pure Python.
pub(crate) fn arch_of_platforms(platforms: impl IntoIterator<Item = String>) -> String {
    let arches: BTreeSet<String> = platforms
        .into_iter()
        .map(|p| {
            if p == "any" {
                "any".to_string()
            } else if p.ends_with("x86_64") {
                "x86_64".to_string()
            } else if p.ends_with("aarch64") {
                "arm64".to_string()
            } else {
                p
            }
        })
        .collect();
    if arches.is_empty() {
        return "unknown".to_string();
    }
    arches.into_iter().collect::<Vec<_>>().join(",")
}

/// The email-style header fields of METADATA or WHEEL, in order; continuation lines are joined
/// with a newline. The body after the first blank line is not read.
pub(crate) fn headers(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The licenses METADATA states, SPDX first: `License-Expression`, then a `License` field or
/// license classifier that is an SPDX id or expression, else the `License` field's one line of
/// text, else the classifiers' names.
pub(crate) fn licenses(metadata: &[(String, String)]) -> Vec<LicenseRef> {
    let all = |key: &str| -> Vec<&str> {
        metadata
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("UNKNOWN"))
            .collect()
    };
    let classifiers: Vec<&str> = all("Classifier")
        .into_iter()
        .filter_map(|c| c.strip_prefix("License ::"))
        .filter_map(|c| c.rsplit("::").next().map(str::trim))
        .collect();
    let field = all("License").into_iter().next();
    let candidates = all("License-Expression")
        .into_iter()
        .chain(field)
        .chain(classifiers.iter().copied());
    if let Some(spdx) = candidates.filter_map(spdx).next() {
        return vec![spdx];
    }
    // A multi-line License field is the license text itself, not its name.
    if let Some(name) = field.filter(|f| !f.contains('\n') && f.len() <= 120) {
        return vec![LicenseRef::Name(name.to_string())];
    }
    let names: BTreeSet<&str> = classifiers.into_iter().collect();
    names.into_iter().map(|n| LicenseRef::Name(n.to_string())).collect()
}

/// An SPDX license id, or an expression of several, when `s` is one.
fn spdx(s: &str) -> Option<LicenseRef> {
    if SpdxIdentifier::try_from(s.to_string()).is_ok() {
        return Some(LicenseRef::Id(s.to_string()));
    }
    let compound = s.contains(" OR ") || s.contains(" AND ") || s.contains(" WITH ");
    (compound && SpdxExpression::try_from(s.to_string()).is_ok()).then(|| LicenseRef::Expression(s.to_string()))
}

/// The zip paths of RECORD's rows, which are relative to the site folder (scripts sit at
/// `../../bin/x` from a runtime's site-packages).
fn record_paths(site: &str, record: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = record::paths(record)?
        .iter()
        .filter_map(|rel| resolve(site, rel))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// `site` joined with `rel`, `..` and `.` resolved; `None` for absolute paths or ones that
/// climb out of the layer.
fn resolve(site: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = site.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(text: &str) -> Vec<LicenseRef> {
        licenses(&headers(text))
    }

    #[test]
    fn license_expression_first() {
        let m = "Metadata-Version: 2.4\nName: idna\nLicense-Expression: BSD-3-Clause\nLicense: Whatever\n";
        assert_eq!(meta(m), [LicenseRef::Id("BSD-3-Clause".into())]);
        let m = "License-Expression: MIT OR Apache-2.0\n";
        assert_eq!(meta(m), [LicenseRef::Expression("MIT OR Apache-2.0".into())]);
    }

    #[test]
    fn license_field_when_it_is_an_spdx_id_else_its_name() {
        assert_eq!(
            meta("License: MPL-2.0\nClassifier: License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)\n"),
            [LicenseRef::Id("MPL-2.0".into())]
        );
        assert_eq!(
            meta("License: Apache 2.0\nClassifier: License :: OSI Approved :: Apache Software License\n"),
            [LicenseRef::Name("Apache 2.0".into())]
        );
        assert_eq!(meta("License: BSD\n"), [LicenseRef::Name("BSD".into())]);
    }

    #[test]
    fn classifiers_when_there_is_no_license_field() {
        assert_eq!(
            meta("Classifier: License :: OSI Approved :: MIT License\nClassifier: Programming Language :: Python\n"),
            [LicenseRef::Name("MIT License".into())]
        );
        // A classifier that happens to be an SPDX id is used as one.
        assert_eq!(meta("Classifier: License :: MIT\n"), [LicenseRef::Id("MIT".into())]);
        assert_eq!(meta("License: UNKNOWN\n"), []);
        assert_eq!(meta("Name: x\n\nLicense: MIT\n"), [], "the body is not a header");
    }

    #[test]
    fn a_license_text_is_not_a_name() {
        let m = "License: Copyright (c) 2020 Someone\n        Permission is hereby granted\nClassifier: License :: OSI Approved :: MIT License\n";
        assert_eq!(meta(m), [LicenseRef::Name("MIT License".into())]);
    }

    #[test]
    fn record_rows_become_zip_paths() {
        let record = "wrapt/__init__.py,sha256=abc,10\n\"we,ird.py\",sha256=x,1\n../../../bin/tool,sha256=y,2\nwrapt-1.0.dist-info/RECORD,,\n/abs/path,,\n";
        let got = record_paths("python/lib/python3.9/site-packages", record).unwrap();
        assert_eq!(
            got,
            [
                "python/bin/tool",
                "python/lib/python3.9/site-packages/we,ird.py",
                "python/lib/python3.9/site-packages/wrapt-1.0.dist-info/RECORD",
                "python/lib/python3.9/site-packages/wrapt/__init__.py",
            ]
        );
        assert_eq!(resolve("python", "../../x"), None);
    }

    #[test]
    fn where_and_what_for() {
        assert_eq!(
            site_runtime("python/lib/python3.9/site-packages").as_deref(),
            Some("python3.9")
        );
        assert_eq!(site_runtime("python"), None);
        assert_eq!(site_runtime("python/site-packages"), None);
        assert_eq!(
            name_version_of("python/foo_bar-1.0b1.dist-info"),
            ("foo_bar".into(), "1.0b1".into())
        );
        assert_eq!(
            name_version_of("python/old-2.0-py3.9.egg-info"),
            ("old".into(), "2.0".into())
        );
        assert_eq!(
            name_version_of("t/my_pkg-1.0-py3.7.egg/EGG-INFO"),
            ("my_pkg".into(), "1.0".into())
        );
        let tags = ["manylinux_2_5_x86_64", "manylinux1_x86_64"].map(String::from);
        assert_eq!(arch_of_platforms(tags), "x86_64");
        assert_eq!(arch_of_platforms(["any".to_string()]), "any");
        assert_eq!(arch_of_platforms(["manylinux2014_aarch64".to_string()]), "arm64");
        let paths = [
            "python/a-1.dist-info/METADATA",
            "python/a-1.dist-info/RECORD",
            "python/b/METADATA",
            "python/c-2-py3.9.egg-info/PKG-INFO",
            "python/d-3.egg/EGG-INFO/PKG-INFO",
            "python/e-4.dist-info/PKG-INFO",
        ];
        assert_eq!(
            metadata_dirs(paths),
            [
                "python/a-1.dist-info",
                "python/c-2-py3.9.egg-info",
                "python/d-3.egg/EGG-INFO"
            ]
        );
    }
}
