//! Installs one wheel in memory, following the wheel spec (PEP 427) step by step, the way an
//! installer does: parse the file name, read the archive, find the one `.dist-info`, check
//! WHEEL, verify every file against RECORD, spread the `.data` folders, write INSTALLER and the
//! console scripts.
//!
//! Where files go, relative to the site folder they are installed into:
//! - purelib and platlib: the site folder itself (both are on `sys.path` on Lambda);
//! - `.data/scripts` and console scripts: the layer's `bin/` (returned apart, the caller places them);
//! - `.data/data`: the site folder, as `pip install --target` does;
//! - `.data/headers`: dropped, nothing on Lambda compiles against a layer.

pub(crate) mod record;
mod scripts;

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::Arc;

use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use crate::check::{rules, zipcanon};
use crate::model::lambda;
use crate::python::tags::{WheelName, normalize};
use crate::support::extract;
use crate::support::text::show;
pub(crate) use record::Row;

/// One installed file.
#[derive(Debug, Clone)]
pub(crate) struct WheelFile {
    /// Relative to the site folder, or to `bin/` for scripts.
    pub path: String,
    pub data: Arc<[u8]>,
    pub sha256: [u8; 32],
    pub executable: bool,
}

impl WheelFile {
    pub(crate) fn new(path: String, data: Vec<u8>, executable: bool) -> WheelFile {
        let sha256 = Sha256::digest(&data).into();
        WheelFile {
            path,
            data: data.into(),
            sha256,
            executable,
        }
    }
}

/// A wheel unpacked and checked, ready to be placed in the tree.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    pub file_name: String,
    /// The project name as the dist-info folder spells it.
    pub name: String,
    pub version: String,
    /// `name-version.dist-info`.
    pub dist_info: String,
    /// Sorted by path; no RECORD (the caller writes it for the final paths).
    pub site: Vec<WheelFile>,
    pub scripts: Vec<WheelFile>,
}

/// Failures tests and users tell apart; every one names the wheel.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WheelError {
    #[error(
        "{}: not a readable wheel ({problem}): delete it from the cache or wheelhouse and build again",
        show(wheel)
    )]
    Unreadable { wheel: String, problem: String },
    #[error("{}: {problem}", show(wheel))]
    Invalid { wheel: String, problem: String },
    #[error(
        "{}: unsafe path `{}` ({problem}): refusing to install a wheel that writes outside its folder",
        show(wheel),
        show(file)
    )]
    UnsafePath {
        wheel: String,
        file: String,
        problem: String,
    },
    #[error(
        "{}: `{}` is not listed in the wheel's RECORD: the wheel is broken or was tampered with",
        show(wheel),
        show(file)
    )]
    NotInRecord { wheel: String, file: String },
    #[error(
        "{}: `{}` does not match the wheel's RECORD (expected {}, got {got}): the wheel is broken or was tampered with",
        show(wheel),
        show(file),
        show(expected)
    )]
    RecordMismatch {
        wheel: String,
        file: String,
        expected: String,
        got: String,
    },
}

/// Unpacks `data` (the bytes of the wheel called `file_name`) into files under their install paths.
pub(crate) fn install(file_name: &str, data: &[u8]) -> Result<Installed, WheelError> {
    let w = Wheel(file_name);
    let parsed = WheelName::parse(file_name).map_err(|e| w.invalid(e.to_string()))?;
    // One unambiguous archive (what pip would read is what is read here), whose declared
    // sizes together fit in a layer before anything is inflated.
    let raw = zipcanon::scan(&mut Cursor::new(data), data.len() as u64).map_err(|e| w.unreadable(e))?;
    let declared = raw.iter().fold(0u64, |t, e| t.saturating_add(e.size));
    if declared > lambda::UNZIPPED_BYTES {
        return Err(w.invalid(format!(
            "unpacks to {declared} bytes, more than a whole layer may hold ({})",
            lambda::UNZIPPED_BYTES
        )));
    }
    let archive = ZipArchive::new(Cursor::new(data)).map_err(|e| w.unreadable(e))?;
    let names = list_names(&w, &archive)?;
    let dist_info = find_dist_info(&w, &names)?;
    let (name, version) = name_and_version(&w, &dist_info, &parsed)?;
    let files = read_files(&w, &archive, &names)?;
    check_wheel_metadata(&w, &files, &dist_info)?;
    let files = verify_record(&w, files, &dist_info)?;
    let (mut site, mut scripts) = spread(&w, files, &dist_info)?;
    site.push(installer(&dist_info));
    add_console_scripts(&w, &site, &mut scripts, &dist_info)?;
    site.sort_by(|a, b| a.path.cmp(&b.path));
    scripts.sort_by(|a, b| a.path.cmp(&b.path));
    if let Some(twice) = site.windows(2).find(|p| p[0].path == p[1].path) {
        return Err(w.invalid(format!(
            "`{}` is installed twice (from .data and the root)",
            twice[0].path
        )));
    }
    Ok(Installed {
        file_name: file_name.to_string(),
        name,
        version,
        dist_info,
        site,
        scripts,
    })
}

/// The wheel being installed, for errors that name it.
struct Wheel<'a>(&'a str);

impl Wheel<'_> {
    fn invalid(&self, problem: String) -> WheelError {
        WheelError::Invalid {
            wheel: self.0.to_string(),
            problem,
        }
    }

    fn unreadable(&self, problem: impl std::fmt::Display) -> WheelError {
        WheelError::Unreadable {
            wheel: self.0.to_string(),
            problem: problem.to_string(),
        }
    }
}

/// Every member's name, each a safe relative path.
fn list_names(w: &Wheel, archive: &ZipArchive<Cursor<&[u8]>>) -> Result<Vec<String>, WheelError> {
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| w.unreadable(e))?;
    for n in &names {
        rules::check_path(n).map_err(|e| WheelError::UnsafePath {
            wheel: w.0.to_string(),
            file: n.clone(),
            problem: e.to_string(),
        })?;
    }
    Ok(names)
}

/// The one `name-version.dist-info` folder at the top.
fn find_dist_info(w: &Wheel, names: &[String]) -> Result<String, WheelError> {
    let dist_infos: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    match dist_infos.iter().collect::<Vec<_>>().as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(w.invalid("no `*.dist-info` folder: not a wheel".into())),
        many => Err(w.invalid(format!(
            "two `*.dist-info` folders in one wheel ({}): the wheel is broken",
            many.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The project and version the dist-info folder names; the project must be the file name's.
fn name_and_version(w: &Wheel, dist_info: &str, parsed: &WheelName) -> Result<(String, String), WheelError> {
    let (name, version) = dist_info
        .strip_suffix(".dist-info")
        .and_then(|s| s.split_once('-'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .ok_or_else(|| w.invalid(format!("`{dist_info}` is not `name-version.dist-info`")))?;
    if normalize(&name) != normalize(&parsed.name) {
        return Err(w.invalid(format!(
            "its dist-info `{dist_info}` is for another project than the file name says"
        )));
    }
    Ok((name, version))
}

/// A member's path, bytes, and whether its unix mode has an exec bit.
type Member = (String, Vec<u8>, bool);

/// Reads every file on all cores: the big native wheels are most of the build's work.
fn read_files(w: &Wheel, archive: &ZipArchive<Cursor<&[u8]>>, names: &[String]) -> Result<Vec<Member>, WheelError> {
    (0..names.len())
        .into_par_iter()
        .map_init(
            || archive.clone(),
            |ar, i| -> Result<Option<Member>, WheelError> {
                let mut f = ar.by_index(i).map_err(|e| w.unreadable(e))?;
                if f.is_dir() {
                    return Ok(None);
                }
                let executable = f.unix_mode().is_some_and(|m| m & 0o111 != 0);
                let buf = extract::read_entry(&mut f, lambda::UNZIPPED_BYTES)
                    .map_err(|e| w.unreadable(format!("{}: {e}", show(&names[i]))))?;
                Ok(Some((names[i].clone(), buf, executable)))
            },
        )
        .filter_map(Result::transpose)
        .collect()
}

fn member<'a>(files: &'a [Member], path: &str) -> Option<&'a [u8]> {
    files.iter().find(|(n, _, _)| n == path).map(|(_, d, _)| d.as_slice())
}

/// WHEEL must be there and say `Wheel-Version: 1.x`: a 2.x wheel needs another installer.
fn check_wheel_metadata(w: &Wheel, files: &[Member], dist_info: &str) -> Result<(), WheelError> {
    let meta =
        member(files, &format!("{dist_info}/WHEEL")).ok_or_else(|| w.invalid(format!("no {dist_info}/WHEEL")))?;
    let meta = String::from_utf8_lossy(meta);
    let v = meta
        .lines()
        .find_map(|l| l.strip_prefix("Wheel-Version:"))
        .map(str::trim)
        .ok_or_else(|| w.invalid("WHEEL has no Wheel-Version".into()))?;
    if v.split('.').next() != Some("1") {
        return Err(w.invalid(format!(
            "Wheel-Version {v} is not 1.x: this wheel needs a newer installer"
        )));
    }
    Ok(())
}

/// Every file but RECORD and its signatures must be listed in RECORD with its hash and size.
fn verify_record(w: &Wheel, files: Vec<Member>, dist_info: &str) -> Result<Vec<WheelFile>, WheelError> {
    let record_path = format!("{dist_info}/RECORD");
    let text = member(&files, &record_path).ok_or_else(|| w.invalid(format!("no {record_path}")))?;
    let record = record::parse(&String::from_utf8_lossy(text)).map_err(|e| w.invalid(e))?;
    let unsigned = [
        record_path.clone(),
        format!("{dist_info}/RECORD.jws"),
        format!("{dist_info}/RECORD.p7s"),
    ];
    files
        .into_par_iter()
        .filter(|(n, _, _)| !unsigned.contains(n))
        .map(|(n, data, executable)| {
            let sha: [u8; 32] = Sha256::digest(&data).into();
            let Some(listed) = record.get(&n) else {
                return Err(WheelError::NotInRecord {
                    wheel: w.0.to_string(),
                    file: n,
                });
            };
            let got = Row::of(n.as_str(), &sha, data.len());
            if got != *listed {
                return Err(WheelError::RecordMismatch {
                    wheel: w.0.to_string(),
                    expected: listed.to_string(),
                    got: got.to_string(),
                    file: n,
                });
            }
            Ok(WheelFile {
                path: n,
                data: data.into(),
                sha256: sha,
                executable,
            })
        })
        .collect()
}

/// Sorts the files into the site folder and `bin/`, by the `.data` folder they are in.
fn spread(w: &Wheel, files: Vec<WheelFile>, dist_info: &str) -> Result<(Vec<WheelFile>, Vec<WheelFile>), WheelError> {
    let data_dir = format!("{}.data/", dist_info.trim_end_matches(".dist-info"));
    let installer = format!("{dist_info}/INSTALLER");
    let mut site = Vec::new();
    let mut bin = Vec::new();
    for f in files {
        // Bytecode in a wheel is for whatever Python built it; ours is compiled per runtime.
        if f.path.split('/').any(|p| p == "__pycache__") || f.path == installer {
            continue;
        }
        let Some(rest) = f.path.strip_prefix(&data_dir) else {
            site.push(f);
            continue;
        };
        let (key, rel) = rest
            .split_once('/')
            .ok_or_else(|| w.invalid(format!("`{}` is directly in the .data folder", f.path)))?;
        match key {
            "purelib" | "platlib" | "data" => site.push(WheelFile { path: rel.into(), ..f }),
            "scripts" => bin.push(WheelFile::new(rel.into(), scripts::rewrite_shebang(&f.data), true)),
            "headers" => {}
            other => {
                return Err(w.invalid(format!(
                    "unknown .data folder `{other}` (the wheel spec knows purelib, platlib, scripts, data, headers)"
                )));
            }
        }
    }
    Ok((site, bin))
}

/// `INSTALLER` names who installed the package; the wheel's own is replaced.
fn installer(dist_info: &str) -> WheelFile {
    WheelFile::new(format!("{dist_info}/INSTALLER"), b"layerbuild\n".to_vec(), false)
}

/// A launcher in `bin/` for every `console_scripts` entry point.
fn add_console_scripts(
    w: &Wheel,
    site: &[WheelFile],
    bin: &mut Vec<WheelFile>,
    dist_info: &str,
) -> Result<(), WheelError> {
    let Some(ep) = site.iter().find(|f| f.path == format!("{dist_info}/entry_points.txt")) else {
        return Ok(());
    };
    for (script, target) in scripts::console_scripts(&String::from_utf8_lossy(&ep.data)).map_err(|e| w.invalid(e))? {
        if bin.iter().any(|s| s.path == script) {
            return Err(w.invalid(format!("console script `{script}` is also a file in .data/scripts")));
        }
        let launcher = scripts::launcher(&target).map_err(|e| w.invalid(e))?;
        bin.push(WheelFile::new(script, launcher.into_bytes(), true));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    /// A wheel of `files` and its RECORD; `sha256_override` lists one file with another hash.
    fn build(files: &[(&str, &[u8])], sha256_override: Option<(&str, &str)>) -> Vec<u8> {
        let mut rows = Vec::new();
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default();
        for (path, data) in files {
            w.start_file(*path, opts).unwrap();
            w.write_all(data).unwrap();
            let mut row = Row::of(*path, &Sha256::digest(data), data.len());
            if let Some((p, h)) = sha256_override
                && p == *path
            {
                row.sha256 = Some(h.to_string());
            }
            rows.push(row);
        }
        rows.push(Row::unhashed("demo-1.0.dist-info/RECORD"));
        w.start_file("demo-1.0.dist-info/RECORD", opts).unwrap();
        w.write_all(&record::write(&rows)).unwrap();
        w.finish().unwrap().into_inner()
    }

    const WHEEL: &[u8] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n";

    #[test]
    fn installs_data_scripts_and_console_scripts() {
        let whl = build(
            &[
                ("demo/__init__.py", b"x = 1\n"),
                ("demo/__pycache__/__init__.cpython-311.pyc", b"junk"),
                ("demo-1.0.dist-info/WHEEL", WHEEL),
                ("demo-1.0.dist-info/METADATA", b"Name: demo\nVersion: 1.0\n"),
                (
                    "demo-1.0.dist-info/entry_points.txt",
                    b"[console_scripts]\ndemo-run = demo.cli:main.run [extra]\n",
                ),
                ("demo-1.0.data/scripts/tool", b"#!python\nprint(1)\n"),
                ("demo-1.0.data/platlib/_demo.so", b"\x7fELF"),
                ("demo-1.0.data/headers/demo.h", b"int x;"),
            ],
            None,
        );
        let got = install("demo-1.0-py3-none-any.whl", &whl).unwrap();
        let paths: Vec<&str> = got.site.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "_demo.so",
                "demo-1.0.dist-info/INSTALLER",
                "demo-1.0.dist-info/METADATA",
                "demo-1.0.dist-info/WHEEL",
                "demo-1.0.dist-info/entry_points.txt",
                "demo/__init__.py"
            ]
        );
        let tool = got.scripts.iter().find(|s| s.path == "tool").unwrap();
        assert_eq!(&*tool.data, b"#!/usr/bin/env python3\nprint(1)\n");
        let run = got.scripts.iter().find(|s| s.path == "demo-run").unwrap();
        let text = String::from_utf8_lossy(&run.data);
        assert!(text.starts_with("#!/usr/bin/env python3\n"), "{text}");
        assert!(
            text.contains("from demo.cli import main\n") && text.contains("sys.exit(main.run())"),
            "{text}"
        );
        assert!(run.executable);
    }

    #[test]
    fn record_is_enforced() {
        let base = [
            ("demo/__init__.py", &b"x = 1\n"[..]),
            ("demo-1.0.dist-info/WHEEL", WHEEL),
        ];
        let whl = build(&base, Some(("demo/__init__.py", "AAAA")));
        let e = install("demo-1.0-py3-none-any.whl", &whl).unwrap_err();
        assert!(
            matches!(e, WheelError::RecordMismatch { ref file, .. } if file == "demo/__init__.py"),
            "{e}"
        );

        // A file the RECORD does not list.
        let whl = {
            let mut z = zip::ZipWriter::new_append(Cursor::new(build(&base, None))).unwrap();
            z.start_file("demo/extra.py", SimpleFileOptions::default()).unwrap();
            z.write_all(b"").unwrap();
            z.finish().unwrap().into_inner()
        };
        let e = install("demo-1.0-py3-none-any.whl", &whl).unwrap_err();
        assert!(
            matches!(e, WheelError::NotInRecord { ref file, .. } if file == "demo/extra.py"),
            "{e}"
        );
    }

    #[test]
    fn unsafe_paths_and_bad_versions() {
        let whl = build(&[("../evil.py", b""), ("demo-1.0.dist-info/WHEEL", WHEEL)], None);
        let e = install("demo-1.0-py3-none-any.whl", &whl).unwrap_err();
        assert!(matches!(e, WheelError::UnsafePath { .. }), "{e}");
        let whl = build(&[("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 2.0\n")], None);
        let e = install("demo-1.0-py3-none-any.whl", &whl).unwrap_err();
        assert!(e.to_string().contains("not 1.x"), "{e}");
        let e = install(
            "other-1.0-py3-none-any.whl",
            &build(&[("demo-1.0.dist-info/WHEEL", WHEEL)], None),
        )
        .unwrap_err();
        assert!(e.to_string().contains("another project"), "{e}");
    }
}
