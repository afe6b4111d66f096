//! The hash-locked requirements file: written by `layerbuild lock`, read by `build`.
//!
//! It is a pip requirements file (`pip install --no-deps --require-hashes -r` accepts it), plus
//! one `#   wheel: FILE sha256=HEX` comment per wheel so `build` can pick each target's wheel by
//! its tags without asking an index.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::tags::{is_plain_file_name, normalize};
use crate::support::input;
use crate::support::text::show;

/// One `name==version` pin with its hashes and wheel file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pin {
    pub name: String,
    pub version: String,
    pub marker: Option<Marker>,
    /// Lowercase hex sha256 of every wheel any target may use.
    pub hashes: Vec<String>,
    /// Wheel file name -> its sha256, from the `# wheel:` comments.
    pub wheels: BTreeMap<String, String>,
    /// 1-based line of the pin, for error messages.
    pub line: usize,
}

impl Pin {
    pub(crate) fn applies(&self, arch: Arch, rt: Runtime) -> bool {
        self.marker.as_ref().is_none_or(|m| m.eval(arch, rt))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lock {
    pub packages: Vec<Pin>,
}

impl Lock {
    /// The pins one target installs.
    pub(crate) fn for_target(&self, arch: Arch, rt: Runtime) -> impl Iterator<Item = &Pin> {
        self.packages.iter().filter(move |p| p.applies(arch, rt))
    }
}

/// An environment marker of the small form `lock` writes: `or` of `and` of comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    any: Vec<Vec<Compare>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Compare {
    var: Var,
    equal: bool,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    PythonVersion,
    PlatformMachine,
}

impl Marker {
    pub(crate) fn parse(text: &str) -> Result<Marker, String> {
        let mut any = Vec::new();
        for alt in text.split(" or ") {
            let mut all = Vec::new();
            for cmp in alt.split(" and ") {
                let cmp = cmp.trim().trim_start_matches('(').trim_end_matches(')').trim();
                let (var, equal, value) = if let Some((l, r)) = cmp.split_once("==") {
                    (l, true, r)
                } else if let Some((l, r)) = cmp.split_once("!=") {
                    (l, false, r)
                } else {
                    return Err(format!("`{cmp}` is not `variable == \"value\"`"));
                };
                let var = match var.trim() {
                    "python_version" => Var::PythonVersion,
                    "platform_machine" => Var::PlatformMachine,
                    other => return Err(format!("marker variable `{other}` is not one `layerbuild lock` writes")),
                };
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .ok_or_else(|| format!("`{value}` is not a quoted string"))?;
                all.push(Compare {
                    var,
                    equal,
                    value: value.to_string(),
                });
            }
            any.push(all);
        }
        Ok(Marker { any })
    }

    pub(crate) fn eval(&self, arch: Arch, rt: Runtime) -> bool {
        self.any.iter().any(|all| {
            all.iter().all(|c| {
                let actual = match c.var {
                    Var::PythonVersion => rt.dotted(),
                    // Lambda's `uname -m`, which is what `platform_machine` reads.
                    Var::PlatformMachine => arch.wheel_machine().to_string(),
                };
                (actual == c.value) == c.equal
            })
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {problem}: run `layerbuild lock` again rather than editing the lock by hand")]
pub(crate) struct LockError {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

pub(crate) fn read(path: &Path) -> Result<Lock> {
    let text = match input::read_to_string(path, input::LOCK_CAP, "Python lock") {
        Ok(t) => t,
        Err(e) if e.is_not_found() => bail!(
            "{}: the Python lock is missing: run `layerbuild lock` to write it from the requirements",
            path.display()
        ),
        Err(e) => return Err(e.into()),
    };
    Ok(parse(&text, &path.display().to_string())?)
}

pub(crate) fn parse(text: &str, file: &str) -> Result<Lock, LockError> {
    let err = |line: usize, problem: String| LockError {
        file: file.to_string(),
        line,
        problem,
    };
    let mut packages: Vec<Pin> = Vec::new();
    let mut logical = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = raw.trim();
        if logical.is_empty() {
            if trimmed.is_empty() {
                continue;
            }
            if let Some(comment) = trimmed.strip_prefix('#') {
                if let Some(w) = comment.trim().strip_prefix("wheel:") {
                    let last = packages
                        .last_mut()
                        .ok_or_else(|| err(n, "a `# wheel:` comment before any requirement".into()))?;
                    let (file_name, sha) = parse_wheel_comment(w).map_err(|p| err(n, p))?;
                    last.wheels.insert(file_name, sha);
                }
                continue;
            }
            start = n;
        }
        let (body, more) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        logical.push_str(body);
        logical.push(' ');
        if !more {
            packages.push(parse_pin(&logical, start).map_err(|p| err(start, p))?);
            logical.clear();
        }
    }
    if !logical.is_empty() {
        return Err(err(start, "the last requirement ends with a `\\`".into()));
    }
    for p in &packages {
        if p.hashes.is_empty() {
            return Err(err(p.line, format!("`{}` has no --hash", p.name)));
        }
        for (w, sha) in &p.wheels {
            if !p.hashes.contains(sha) {
                return Err(err(
                    p.line,
                    format!(
                        "wheel {w} of `{}` has sha256 {sha}, which is not one of its --hash values",
                        p.name
                    ),
                ));
            }
        }
    }
    Ok(Lock { packages })
}

/// `FILE sha256=HEX`, where FILE is a plain wheel file name: it is joined to folders later.
fn parse_wheel_comment(s: &str) -> Result<(String, String), String> {
    let shape = || format!("`# wheel:{}` is not `# wheel: FILE sha256=HEX`", show(s));
    let mut it = s.split_whitespace();
    let file = it.next().ok_or_else(shape)?;
    let sha = it.next().and_then(|h| h.strip_prefix("sha256=")).ok_or_else(shape)?;
    if it.next().is_some() || !file.ends_with(".whl") || !is_sha256(sha) {
        return Err(shape());
    }
    if !is_plain_file_name(file) {
        return Err(format!(
            "`# wheel:` names `{}`, which is not a plain file name (no folders, no `..`, no leading `.`)",
            show(file)
        ));
    }
    Ok((file.to_string(), sha.to_ascii_lowercase()))
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_pin(line: &str, n: usize) -> Result<Pin, String> {
    let mut hashes = Vec::new();
    let mut req = String::new();
    for word in line.split_whitespace() {
        if let Some(h) = word.strip_prefix("--hash=") {
            let hex = h
                .strip_prefix("sha256:")
                .filter(|h| is_sha256(h))
                .ok_or_else(|| format!("`{word}` is not --hash=sha256:<64 hex digits>"))?;
            hashes.push(hex.to_ascii_lowercase());
        } else if word.starts_with('-') {
            return Err(format!(
                "option `{word}` is not allowed in a lock (it must name no index)"
            ));
        } else {
            req.push_str(word);
            req.push(' ');
        }
    }
    let (spec, marker) = match req.split_once(';') {
        Some((s, m)) => (s.trim(), Some(Marker::parse(m)?)),
        None => (req.trim(), None),
    };
    let (name, version) = spec
        .split_once("==")
        .filter(|(n, v)| !n.trim().is_empty() && !v.trim().is_empty() && !v.contains(['*', ',', '=']))
        .ok_or_else(|| format!("`{spec}` is not pinned as name==version"))?;
    Ok(Pin {
        name: name.trim().to_string(),
        version: version.trim().to_string(),
        marker,
        hashes,
        wheels: BTreeMap::new(),
        line: n,
    })
}

/// One pin as `lock` found it, before it is written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub name: String,
    pub version: String,
    pub targets: BTreeSet<(Arch, Runtime)>,
    /// Wheel file name -> sha256.
    pub wheels: BTreeMap<String, String>,
}

/// The marker that selects exactly `used` among `all` targets; `None` when every target uses it.
pub(crate) fn marker_for(used: &BTreeSet<(Arch, Runtime)>, arches: &[Arch], runtimes: &[Runtime]) -> Option<String> {
    let all: BTreeSet<_> = arches
        .iter()
        .flat_map(|&a| runtimes.iter().map(move |&r| (a, r)))
        .collect();
    if used.is_superset(&all) {
        return None;
    }
    let py = |r: Runtime| format!("python_version == \"{}\"", r.dotted());
    let machine = |a: Arch| format!("platform_machine == \"{}\"", a.wheel_machine());
    // Whole architectures first: a package only one arch needs reads best as one comparison.
    let whole_arches: Vec<Arch> = arches
        .iter()
        .copied()
        .filter(|&a| runtimes.iter().all(|&r| used.contains(&(a, r))))
        .collect();
    let whole_runtimes: Vec<Runtime> = runtimes
        .iter()
        .copied()
        .filter(|&r| arches.iter().all(|&a| used.contains(&(a, r))))
        .collect();
    let mut alts = Vec::new();
    let mut covered = BTreeSet::new();
    if whole_arches.len() >= whole_runtimes.len() {
        for &a in &whole_arches {
            alts.push(machine(a));
            covered.extend(runtimes.iter().map(|&r| (a, r)));
        }
    } else {
        for &r in &whole_runtimes {
            alts.push(py(r));
            covered.extend(arches.iter().map(|&a| (a, r)));
        }
    }
    for &(a, r) in used.difference(&covered) {
        alts.push(format!("{} and {}", py(r), machine(a)));
    }
    Some(alts.join(" or "))
}

/// Writes the lock text: sorted by normalized name, one wheel comment per wheel.
pub(crate) fn render(resolved: &[Resolved], arches: &[Arch], runtimes: &[Runtime], source: &str) -> String {
    let mut out = String::new();
    let targets = runtimes.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
    let arch_names = arches.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
    let _ = writeln!(
        out,
        "# Generated by `layerbuild lock` from {source}: do not edit by hand, run `layerbuild lock` again."
    );
    let _ = writeln!(out, "# Targets: {targets} on {arch_names}.");
    let _ = writeln!(
        out,
        "# `layerbuild build` picks each target's wheel by the tags of the `# wheel:` file names below."
    );
    let mut sorted: Vec<&Resolved> = resolved.iter().collect();
    sorted.sort_by(|a, b| (normalize(&a.name), &a.version).cmp(&(normalize(&b.name), &b.version)));
    for r in sorted {
        out.push('\n');
        let _ = write!(out, "{}=={}", r.name, r.version);
        if let Some(m) = marker_for(&r.targets, arches, runtimes) {
            let _ = write!(out, " ; {m}");
        }
        let hashes: BTreeSet<&String> = r.wheels.values().collect();
        for h in hashes {
            let _ = write!(out, " \\\n    --hash=sha256:{h}");
        }
        out.push('\n');
        for (file, sha) in &r.wheels {
            let _ = writeln!(out, "    #   wheel: {file} sha256={sha}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> Runtime {
        Runtime::parse(s).unwrap()
    }

    #[test]
    fn roundtrip_with_markers() {
        let h = |c: char| c.to_string().repeat(64);
        let all = [Arch::X86_64, Arch::Arm64];
        let rts = [rt("python3.8"), rt("python3.9")];
        let every: BTreeSet<_> = all.iter().flat_map(|&a| rts.iter().map(move |&r| (a, r))).collect();
        let only38: BTreeSet<_> = all.iter().map(|&a| (a, rt("python3.8"))).collect();
        let resolved = vec![
            Resolved {
                name: "zipp".into(),
                version: "3.1".into(),
                targets: only38.clone(),
                wheels: [("zipp-3.1-py3-none-any.whl".to_string(), h('a'))].into(),
            },
            Resolved {
                name: "Grpcio".into(),
                version: "1.70.0".into(),
                targets: every,
                wheels: [
                    ("grpcio-1.70.0-cp38-cp38-manylinux_2_17_aarch64.whl".to_string(), h('b')),
                    ("grpcio-1.70.0-cp39-cp39-manylinux_2_17_aarch64.whl".to_string(), h('c')),
                ]
                .into(),
            },
        ];
        let text = render(&resolved, &all, &rts, "layer-src/requirements.in");
        assert!(text.starts_with("# Generated by `layerbuild lock`"), "{text}");
        assert!(text.contains("zipp==3.1 ; python_version == \"3.8\" \\\n"), "{text}");
        assert!(
            text.find("Grpcio").unwrap() < text.find("zipp").unwrap(),
            "sorted: {text}"
        );
        let lock = parse(&text, "lock.txt").unwrap();
        assert_eq!(lock.packages.len(), 2);
        assert_eq!(lock.packages[0].hashes, vec![h('b'), h('c')]);
        assert_eq!(lock.packages[0].wheels.len(), 2);
        assert_eq!(lock.for_target(Arch::Arm64, rt("python3.9")).count(), 1);
        assert_eq!(lock.for_target(Arch::Arm64, rt("python3.8")).count(), 2);
    }

    #[test]
    fn markers_select_targets() {
        let rts = [rt("python3.8"), rt("python3.9")];
        let arches = [Arch::X86_64, Arch::Arm64];
        let used: BTreeSet<_> = rts.iter().map(|&r| (Arch::Arm64, r)).collect();
        assert_eq!(
            marker_for(&used, &arches, &rts).unwrap(),
            "platform_machine == \"aarch64\""
        );
        let one: BTreeSet<_> = [(Arch::X86_64, rt("python3.9"))].into();
        let m = Marker::parse(&marker_for(&one, &arches, &rts).unwrap()).unwrap();
        assert!(m.eval(Arch::X86_64, rt("python3.9")));
        assert!(!m.eval(Arch::Arm64, rt("python3.9")));
        assert!(!m.eval(Arch::X86_64, rt("python3.8")));
        assert!(Marker::parse("sys_platform == \"linux\"").is_err());
        assert!(
            Marker::parse("python_version != '3.8'")
                .unwrap()
                .eval(Arch::Arm64, rt("python3.9"))
        );
    }

    #[test]
    fn rejects_unpinned_unhashed_and_index_options() {
        let h = "a".repeat(64);
        let e = parse("foo>=1 --hash=sha256:".to_string().as_str(), "l").unwrap_err();
        assert!(e.to_string().contains("l:1"), "{e}");
        assert!(parse("foo==1\n", "l").unwrap_err().problem.contains("no --hash"));
        let e = parse(&format!("--index-url http://x\nfoo==1 --hash=sha256:{h}\n"), "l").unwrap_err();
        assert!(e.problem.contains("--index-url"), "{e}");
        let e = parse(
            &format!(
                "foo==1 --hash=sha256:{h}\n#   wheel: foo-1-py3-none-any.whl sha256={}\n",
                "b".repeat(64)
            ),
            "l",
        )
        .unwrap_err();
        assert!(e.problem.contains("not one of its --hash"), "{e}");
    }

    #[test]
    fn wheel_names_are_plain_file_names() {
        let h = "a".repeat(64);
        for name in [
            "../../x/foo-1-py3-none-any.whl",
            "sub/foo-1-py3-none-any.whl",
            "/abs/foo-1-py3-none-any.whl",
            ".foo-1-py3-none-any.whl",
            "a\\foo-1-py3-none-any.whl",
        ] {
            let text = format!("foo==1 --hash=sha256:{h}\n#   wheel: {name} sha256={h}\n");
            let e = parse(&text, "l").unwrap_err();
            assert_eq!(e.line, 2, "{name}");
            assert!(e.problem.contains("not a plain file name"), "{name}: {e}");
        }
        let ok = format!("foo==1 --hash=sha256:{h}\n#   wheel: foo-1-py3-none-any.whl sha256={h}\n");
        assert_eq!(parse(&ok, "l").unwrap().packages[0].wheels.len(), 1);
    }
}
