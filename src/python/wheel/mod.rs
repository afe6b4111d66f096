//! Installs one wheel in memory, following the wheel spec (PEP 427) the way an installer does:
//! check every file against RECORD, map the `.data` folders, write console scripts and INSTALLER.
//!
//! Where files go, relative to the site folder they are installed into:
//! - purelib and platlib: the site folder itself (both are on `sys.path` on Lambda);
//! - `.data/scripts` and console scripts: the layer's `bin/` (returned apart, the caller places them);
//! - `.data/data`: the site folder, as `pip install --target` does;
//! - `.data/headers`: dropped, nothing on Lambda compiles against a layer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::sync::Arc;

use base64::Engine;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use crate::check::rules;
use crate::python::tags::{WheelName, normalize};

/// What the `bin/` launchers run: the function's Python, whatever host built the layer.
pub const SHEBANG: &str = "#!/usr/bin/env python3";

/// One installed file.
#[derive(Debug, Clone)]
pub struct WheelFile {
    /// Relative to the site folder, or to `bin/` for scripts.
    pub path: String,
    pub data: Arc<[u8]>,
    pub sha256: [u8; 32],
    pub executable: bool,
}

impl WheelFile {
    pub fn new(path: String, data: Vec<u8>, executable: bool) -> WheelFile {
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
pub struct Installed {
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
pub enum WheelError {
    #[error("{wheel}: not a readable wheel ({problem}): delete it from the cache or wheelhouse and build again")]
    Unreadable { wheel: String, problem: String },
    #[error("{wheel}: {problem}")]
    Invalid { wheel: String, problem: String },
    #[error("{wheel}: unsafe path `{file}` ({problem}): refusing to install a wheel that writes outside its folder")]
    UnsafePath {
        wheel: String,
        file: String,
        problem: String,
    },
    #[error("{wheel}: `{file}` is not listed in the wheel's RECORD: the wheel is broken or was tampered with")]
    NotInRecord { wheel: String, file: String },
    #[error(
        "{wheel}: `{file}` does not match the wheel's RECORD (expected {expected}, got {got}): the wheel is broken or was tampered with"
    )]
    RecordMismatch {
        wheel: String,
        file: String,
        expected: String,
        got: String,
    },
}

/// Unpacks `data` (the bytes of the wheel called `file_name`) into files under their install paths.
pub fn install(file_name: &str, data: &[u8]) -> Result<Installed, WheelError> {
    let wheel = file_name.to_string();
    let invalid = |problem: String| WheelError::Invalid {
        wheel: wheel.clone(),
        problem,
    };
    let parsed = WheelName::parse(file_name).map_err(|e| invalid(e.to_string()))?;
    let archive = ZipArchive::new(Cursor::new(data)).map_err(|e| WheelError::Unreadable {
        wheel: wheel.clone(),
        problem: e.to_string(),
    })?;

    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| WheelError::Unreadable {
            wheel: wheel.clone(),
            problem: e.to_string(),
        })?;
    for n in &names {
        rules::check_path(n).map_err(|e| WheelError::UnsafePath {
            wheel: wheel.clone(),
            file: n.clone(),
            problem: e.to_string(),
        })?;
    }
    let dist_infos: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .collect();
    let dist_info = match dist_infos.iter().collect::<Vec<_>>().as_slice() {
        [one] => one.to_string(),
        [] => return Err(invalid("no `*.dist-info` folder: not a wheel".into())),
        many => {
            return Err(invalid(format!(
                "two `*.dist-info` folders in one wheel ({}): the wheel is broken",
                many.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let (name, version) = dist_info
        .strip_suffix(".dist-info")
        .and_then(|s| s.split_once('-'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .ok_or_else(|| invalid(format!("`{dist_info}` is not `name-version.dist-info`")))?;
    if normalize(&name) != normalize(&parsed.name) {
        return Err(invalid(format!(
            "its dist-info `{dist_info}` is for another project than the file name says"
        )));
    }

    // Read and hash every file on all cores: the big native wheels are most of the build's work.
    let read: Vec<(String, Vec<u8>, bool)> = (0..names.len())
        .into_par_iter()
        .map_init(
            || archive.clone(),
            |ar, i| -> Result<Option<(String, Vec<u8>, bool)>, WheelError> {
                let mut f = ar.by_index(i).map_err(|e| WheelError::Unreadable {
                    wheel: wheel.clone(),
                    problem: e.to_string(),
                })?;
                if f.is_dir() {
                    return Ok(None);
                }
                let executable = f.unix_mode().is_some_and(|m| m & 0o111 != 0);
                let mut buf = Vec::with_capacity(f.size() as usize);
                f.read_to_end(&mut buf).map_err(|e| WheelError::Unreadable {
                    wheel: wheel.clone(),
                    problem: format!("{}: {e}", names[i]),
                })?;
                Ok(Some((names[i].clone(), buf, executable)))
            },
        )
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;

    let get = |path: &str| read.iter().find(|(n, _, _)| n == path).map(|(_, d, _)| d.as_slice());
    let wheel_meta = get(&format!("{dist_info}/WHEEL")).ok_or_else(|| invalid(format!("no {dist_info}/WHEEL")))?;
    check_wheel_version(&String::from_utf8_lossy(wheel_meta)).map_err(invalid)?;
    let record_text = get(&format!("{dist_info}/RECORD")).ok_or_else(|| invalid(format!("no {dist_info}/RECORD")))?;
    let record = parse_record(&String::from_utf8_lossy(record_text)).map_err(invalid)?;

    let data_dir = format!("{}.data/", dist_info.trim_end_matches(".dist-info"));
    let mut site = Vec::new();
    let mut scripts = Vec::new();
    let record_path = format!("{dist_info}/RECORD");
    let unsigned = [
        record_path.clone(),
        format!("{dist_info}/RECORD.jws"),
        format!("{dist_info}/RECORD.p7s"),
    ];
    let checked: Vec<WheelFile> = read
        .into_par_iter()
        .filter(|(n, _, _)| !unsigned.contains(n))
        .map(|(n, data, executable)| {
            let sha: [u8; 32] = Sha256::digest(&data).into();
            let Some((algo_hash, size)) = record.get(&n) else {
                return Err(WheelError::NotInRecord {
                    wheel: wheel.clone(),
                    file: n,
                });
            };
            let got = format!("sha256={},{}", urlsafe(&sha), data.len());
            let expected = format!("{algo_hash},{size}");
            if got != expected {
                return Err(WheelError::RecordMismatch {
                    wheel: wheel.clone(),
                    file: n,
                    expected,
                    got,
                });
            }
            Ok(WheelFile {
                path: n,
                data: data.into(),
                sha256: sha,
                executable,
            })
        })
        .collect::<Result<_, _>>()?;

    for f in checked {
        // Bytecode in a wheel is for whatever Python built it; ours is compiled per runtime.
        if f.path.split('/').any(|p| p == "__pycache__") {
            continue;
        }
        if f.path == format!("{dist_info}/INSTALLER") {
            continue;
        }
        let Some(rest) = f.path.strip_prefix(&data_dir) else {
            site.push(f);
            continue;
        };
        let (key, rel) = rest
            .split_once('/')
            .ok_or_else(|| invalid(format!("`{}` is directly in the .data folder", f.path)))?;
        match key {
            "purelib" | "platlib" | "data" => site.push(WheelFile { path: rel.into(), ..f }),
            "scripts" => {
                let data = rewrite_shebang(&f.data);
                scripts.push(WheelFile::new(rel.into(), data, true));
            }
            "headers" => {}
            other => {
                return Err(invalid(format!(
                    "unknown .data folder `{other}` (the wheel spec knows purelib, platlib, scripts, data, headers)"
                )));
            }
        }
    }
    site.push(WheelFile::new(
        format!("{dist_info}/INSTALLER"),
        b"layerbuild\n".to_vec(),
        false,
    ));
    if let Some(ep) = site.iter().find(|f| f.path == format!("{dist_info}/entry_points.txt")) {
        for (script, target) in console_scripts(&String::from_utf8_lossy(&ep.data)).map_err(invalid)? {
            if scripts.iter().any(|s| s.path == script) {
                return Err(invalid(format!(
                    "console script `{script}` is also a file in .data/scripts"
                )));
            }
            scripts.push(WheelFile::new(
                script,
                launcher(&target).map_err(invalid)?.into_bytes(),
                true,
            ));
        }
    }
    site.sort_by(|a, b| a.path.cmp(&b.path));
    scripts.sort_by(|a, b| a.path.cmp(&b.path));
    for w in site.windows(2) {
        if w[0].path == w[1].path {
            return Err(invalid(format!(
                "`{}` is installed twice (from .data and the root)",
                w[0].path
            )));
        }
    }
    Ok(Installed {
        file_name: wheel,
        name,
        version,
        dist_info,
        site,
        scripts,
    })
}

/// RECORD's hash form: urlsafe base64 without padding.
pub fn urlsafe(sha: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha)
}

fn check_wheel_version(meta: &str) -> Result<(), String> {
    let v = meta
        .lines()
        .find_map(|l| l.strip_prefix("Wheel-Version:"))
        .map(str::trim)
        .ok_or("WHEEL has no Wheel-Version")?;
    if v.split('.').next() != Some("1") {
        return Err(format!(
            "Wheel-Version {v} is not 1.x: this wheel needs a newer installer"
        ));
    }
    Ok(())
}

/// RECORD lines as path -> (`sha256=...`, size). The RECORD itself has empty fields.
fn parse_record(text: &str) -> Result<BTreeMap<String, (String, String)>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields = csv_fields(line);
        let [path, hash, size] = fields.as_slice() else {
            return Err(format!("RECORD line {} is not `path,hash,size`", i + 1));
        };
        if hash.is_empty() {
            continue;
        }
        if !hash.starts_with("sha256=") {
            return Err(format!(
                "RECORD line {} uses `{}`: only sha256 hashes are checked",
                i + 1,
                hash.split('=').next().unwrap_or("")
            ));
        }
        out.insert(path.clone(), (hash.clone(), size.clone()));
    }
    Ok(out)
}

/// Splits one CSV line, honouring double quotes (paths with commas are quoted).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field").push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            _ => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

/// Writes one RECORD line, quoting like Python's csv module when needed.
pub fn record_line(path: &str, hash: &str, size: &str) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    format!("{},{},{}\n", quote(path), hash, size)
}

/// `#!python` is the wheel spec's placeholder for "the interpreter this is installed for".
fn rewrite_shebang(data: &[u8]) -> Vec<u8> {
    for placeholder in [&b"#!pythonw"[..], b"#!python"] {
        if let Some(rest) = data.strip_prefix(placeholder) {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            // Only the bare placeholder: `#!python3.9-config`-like lines are left alone.
            if rest[..end].iter().all(|b| b.is_ascii_whitespace()) {
                let mut out = SHEBANG.as_bytes().to_vec();
                out.extend_from_slice(&rest[end..]);
                return out;
            }
        }
    }
    data.to_vec()
}

/// `[console_scripts]` (and `[gui_scripts]`, the same on Linux) as (script name, `module:attr`).
fn console_scripts(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut section = "";
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim();
            continue;
        }
        if section != "console_scripts" && section != "gui_scripts" {
            continue;
        }
        let (name, target) = line
            .split_once('=')
            .ok_or_else(|| format!("entry_points.txt: `{line}` is not `name = module:function`"))?;
        let name = name.trim();
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(format!(
                "entry_points.txt: console script name `{name}` is not a file name"
            ));
        }
        // Extras (`[extra]`) only matter to installers that resolve; the launcher ignores them.
        let target = target.split('[').next().unwrap_or("").trim();
        out.push((name.to_string(), target.to_string()));
    }
    Ok(out)
}

/// The launcher pip writes, with a portable shebang.
fn launcher(target: &str) -> Result<String, String> {
    let (module, attr) = target
        .split_once(':')
        .map(|(m, a)| (m.trim(), a.trim()))
        .filter(|(m, a)| !m.is_empty() && !a.is_empty())
        .ok_or_else(|| format!("entry_points.txt: `{target}` is not `module:function`"))?;
    let ident = |s: &str| {
        s.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
    };
    if !ident(module) || !ident(attr) {
        return Err(format!("entry_points.txt: `{target}` is not `module:function`"));
    }
    let import = attr.split('.').next().expect("split yields one part");
    Ok(format!(
        "{SHEBANG}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom {module} import {import}\nif __name__ == \"__main__\":\n    sys.argv[0] = re.sub(r\"(-script\\.pyw|\\.exe)?$\", \"\", sys.argv[0])\n    sys.exit({attr}())\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn build(files: &[(&str, &[u8])], record_override: Option<(&str, &str)>) -> Vec<u8> {
        let mut record = String::new();
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default();
        for (path, data) in files {
            w.start_file(*path, opts).unwrap();
            w.write_all(data).unwrap();
            let mut hash = format!("sha256={}", urlsafe(&Sha256::digest(data)));
            if let Some((p, h)) = record_override
                && p == *path
            {
                hash = h.to_string();
            }
            record.push_str(&record_line(path, &hash, &data.len().to_string()));
        }
        record.push_str("demo-1.0.dist-info/RECORD,,\n");
        w.start_file("demo-1.0.dist-info/RECORD", opts).unwrap();
        w.write_all(record.as_bytes()).unwrap();
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
        let whl = build(&base, Some(("demo/__init__.py", "sha256=AAAA")));
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

    #[test]
    fn csv_quoting_roundtrips() {
        let line = record_line("a,b\"c.py", "sha256=x", "1");
        assert_eq!(csv_fields(line.trim_end()), vec!["a,b\"c.py", "sha256=x", "1"]);
    }
}
