//! `layerbuild diff OLD NEW`: what changed between two layers, biggest entry changes first.
//! Exit 0 when they are the same, 1 when they differ, 2 when an input cannot be read.

use std::collections::BTreeSet;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::json;

use super::DiffArgs;
use super::summary::{self, Collector, Summary};
use crate::support::progress::bytes;
use crate::support::text::{MAX_MESSAGE_CHARS, json_pretty, show, show_max};

/// Entries listed in the text report; `--json` lists them all.
const TEXT_ENTRIES: usize = 50;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PackageChange {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct EntryChange {
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
    pub delta: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CollectorChange {
    pub old: Option<CollectorSide>,
    pub new: Option<CollectorSide>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CollectorSide {
    pub sha256: String,
    pub module_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Diff {
    pub packages: Vec<PackageChange>,
    pub collector: Option<CollectorChange>,
    pub runtimes: Option<(Vec<String>, Vec<String>)>,
    pub architectures: Option<(String, String)>,
    pub entries: Vec<EntryChange>,
    pub zipped: (Option<u64>, Option<u64>),
    pub unzipped: (u64, u64),
}

impl Diff {
    pub fn is_same(&self) -> bool {
        self.packages.is_empty()
            && self.collector.is_none()
            && self.runtimes.is_none()
            && self.architectures.is_none()
            && self.entries.is_empty()
            && self.zipped.0 == self.zipped.1
    }
}

pub(crate) fn command(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    // Errors and notes quote the inputs: each is one line with everything in it escaped.
    let line = |text: &str| show_max(text, MAX_MESSAGE_CHARS).to_string();
    let load = |p: &std::path::Path| {
        summary::load(p).map_err(|e| {
            eprintln!("layerbuild: {}", line(&format!("{e:#}")));
        })
    };
    let (Ok(old), Ok(new)) = (load(&args.old), load(&args.new)) else {
        return Ok(ExitCode::from(2));
    };
    for n in old.notes.iter().chain(&new.notes) {
        eprintln!("layerbuild: note: {}", line(n));
    }
    let d = compare(&old, &new);
    if args.json {
        let v = json!({"old": args.old, "new": args.new, "same": d.is_same(), "diff": d});
        println!("{}", json_pretty(&v)?);
    } else {
        print!("{}", render(&d));
    }
    Ok(if d.is_same() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) fn compare(old: &Summary, new: &Summary) -> Diff {
    let both = |a: &Option<Vec<String>>, b: &Option<Vec<String>>| match (a, b) {
        (Some(a), Some(b)) if a != b => Some((a.clone(), b.clone())),
        _ => None,
    };
    Diff {
        packages: packages(old, new),
        collector: collector(old.collector.as_ref(), new.collector.as_ref()),
        runtimes: both(&old.runtimes, &new.runtimes),
        architectures: match (&old.arch, &new.arch) {
            (Some(a), Some(b)) if a != b => Some((a.clone(), b.clone())),
            _ => None,
        },
        entries: entries(old, new),
        zipped: (old.zipped, new.zipped),
        unzipped: (old.unzipped, new.unzipped),
    }
}

fn packages(old: &Summary, new: &Summary) -> Vec<PackageChange> {
    let keys: BTreeSet<&String> = old.packages.keys().chain(new.packages.keys()).collect();
    let versions = |v: &BTreeSet<String>| v.iter().cloned().collect::<Vec<_>>().join(", ");
    keys.into_iter()
        .filter_map(|k| {
            let o = old.packages.get(k);
            let n = new.packages.get(k);
            if o.map(|p| &p.1) == n.map(|p| &p.1) {
                return None;
            }
            let name = n.or(o).map(|p| p.0.clone()).unwrap_or_default();
            Some(PackageChange {
                name,
                old: o.map(|p| versions(&p.1)),
                new: n.map(|p| versions(&p.1)),
            })
        })
        .collect()
}

fn collector(old: Option<&Collector>, new: Option<&Collector>) -> Option<CollectorChange> {
    let side = |c: &Collector| CollectorSide {
        sha256: c.sha256.clone(),
        module_version: c.module_version.clone(),
    };
    let same = match (old, new) {
        (None, None) => true,
        // A zip without its manifest knows no module version: the digest decides then.
        (Some(a), Some(b)) => {
            a.sha256 == b.sha256
                && (a.module_version.is_none() || b.module_version.is_none() || a.module_version == b.module_version)
        }
        _ => false,
    };
    (!same).then(|| CollectorChange {
        old: old.map(side),
        new: new.map(side),
    })
}

/// Added, removed and changed entries, the largest size change first, then by path.
fn entries(old: &Summary, new: &Summary) -> Vec<EntryChange> {
    let mut v = Vec::new();
    for (path, o) in &old.entries {
        match new.entries.get(path) {
            None => v.push(entry(path, "removed", Some(o.size), None)),
            Some(n) if n != o => v.push(entry(path, "changed", Some(o.size), Some(n.size))),
            Some(_) => {}
        }
    }
    for (path, n) in &new.entries {
        if !old.entries.contains_key(path) {
            v.push(entry(path, "added", None, Some(n.size)));
        }
    }
    v.sort_by(|a, b| {
        b.delta
            .unsigned_abs()
            .cmp(&a.delta.unsigned_abs())
            .then_with(|| a.path.cmp(&b.path))
    });
    v
}

fn entry(path: &str, change: &'static str, old_size: Option<u64>, new_size: Option<u64>) -> EntryChange {
    EntryChange {
        path: path.to_string(),
        change,
        old_size,
        new_size,
        delta: new_size.unwrap_or(0) as i64 - old_size.unwrap_or(0) as i64,
    }
}

fn signed(d: i64) -> String {
    let sign = if d < 0 { '-' } else { '+' };
    format!("{sign}{}", bytes(d.unsigned_abs()))
}

/// The first 12 characters of a digest (a manifest's, which may hold anything), escaped.
fn short(sha: &str) -> String {
    let end = sha.char_indices().nth(12).map_or(sha.len(), |(i, _)| i);
    show(&sha[..end]).to_string()
}

/// Values from the inputs, escaped, joined.
fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| show(v).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn render(d: &Diff) -> String {
    if d.is_same() {
        return "no differences\n".to_string();
    }
    let mut s = String::new();
    render_packages(d, &mut s);
    if let Some(c) = &d.collector {
        let side = |c: &Option<CollectorSide>| match c {
            None => "none".to_string(),
            Some(c) => format!(
                "{} ({})",
                short(&c.sha256),
                show(c.module_version.as_deref().unwrap_or("module version unknown"))
            ),
        };
        s.push_str(&format!("collector: {} -> {}\n", side(&c.old), side(&c.new)));
    }
    if let Some((a, b)) = &d.runtimes {
        s.push_str(&format!("runtimes: {} -> {}\n", list(a), list(b)));
    }
    if let Some((a, b)) = &d.architectures {
        s.push_str(&format!("architecture: {} -> {}\n", show(a), show(b)));
    }
    render_entries(d, &mut s);
    if let (Some(a), Some(b)) = d.zipped {
        s.push_str(&format!(
            "zipped: {} -> {} ({})\n",
            bytes(a),
            bytes(b),
            signed(b as i64 - a as i64)
        ));
    }
    let (a, b) = d.unzipped;
    s.push_str(&format!(
        "unzipped: {} -> {} ({})\n",
        bytes(a),
        bytes(b),
        signed(b as i64 - a as i64)
    ));
    s
}

fn render_packages(d: &Diff, s: &mut String) {
    if d.packages.is_empty() {
        return;
    }
    s.push_str("packages:\n");
    for p in &d.packages {
        let name = show(&p.name);
        match (p.old.as_deref().map(show), p.new.as_deref().map(show)) {
            (None, Some(n)) => s.push_str(&format!("  + {name} {n}\n")),
            (Some(o), None) => s.push_str(&format!("  - {name} {o}\n")),
            (Some(o), Some(n)) => s.push_str(&format!("  ~ {name} {o} -> {n}\n")),
            (None, None) => {}
        }
    }
}

fn render_entries(d: &Diff, s: &mut String) {
    if d.entries.is_empty() {
        return;
    }
    let count = |c: &str| d.entries.iter().filter(|e| e.change == c).count();
    s.push_str(&format!(
        "entries: {} added, {} removed, {} changed\n",
        count("added"),
        count("removed"),
        count("changed")
    ));
    for e in d.entries.iter().take(TEXT_ENTRIES) {
        let mark = match e.change {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        s.push_str(&format!("  {mark} {:>11}  {}\n", signed(e.delta), show(&e.path)));
    }
    if d.entries.len() > TEXT_ENTRIES {
        s.push_str(&format!(
            "  ... and {} more (--json lists all)\n",
            d.entries.len() - TEXT_ENTRIES
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::summary::Entry;

    fn summary(entries: &[(&str, u64, &str)], packages: &[(&str, &str)]) -> Summary {
        let mut s = Summary {
            arch: Some("arm64".into()),
            runtimes: Some(vec!["python3.9".into()]),
            zipped: Some(100),
            ..Summary::default()
        };
        for (p, size, sha) in entries {
            let e = Entry {
                mode: "0644".into(),
                size: *size,
                sha256: Some(sha.to_string()),
            };
            s.entries.insert(p.to_string(), e);
            s.unzipped += size;
        }
        for (n, v) in packages {
            s.packages
                .insert(summary::normalize(n), (n.to_string(), [v.to_string()].into()));
        }
        s
    }

    #[test]
    fn identical_layers_are_the_same() {
        let a = summary(&[("a", 1, "x")], &[("p", "1")]);
        let d = compare(&a, &a.clone());
        assert!(d.is_same());
        assert_eq!(render(&d), "no differences\n");
    }

    #[test]
    fn entries_come_largest_change_first_then_by_path() {
        let old = summary(
            &[
                ("same", 5, "s"),
                ("grow", 10, "a"),
                ("gone", 300, "g"),
                ("tweak", 7, "t"),
            ],
            &[],
        );
        let new = summary(
            &[
                ("same", 5, "s"),
                ("grow", 110, "b"),
                ("new", 100, "n"),
                ("tweak", 7, "u"),
            ],
            &[],
        );
        let d = compare(&old, &new);
        let order: Vec<(&str, &str, i64)> = d.entries.iter().map(|e| (e.path.as_str(), e.change, e.delta)).collect();
        assert_eq!(
            order,
            [
                ("gone", "removed", -300),
                ("grow", "changed", 100),
                ("new", "added", 100),
                ("tweak", "changed", 0)
            ]
        );
    }

    #[test]
    fn packages_added_removed_and_changed_with_versions() {
        let old = summary(&[], &[("Keep", "1"), ("Bump", "1.0"), ("Gone", "2")]);
        let new = summary(&[], &[("keep", "1"), ("bump", "1.1"), ("Fresh", "3")]);
        let d = compare(&old, &new);
        let text = render(&d);
        assert!(text.contains("  ~ bump 1.0 -> 1.1\n"), "{text}");
        assert!(
            text.contains("  + Fresh 3\n") && text.contains("  - Gone 2\n"),
            "{text}"
        );
        assert!(!text.contains("eep"), "{text}");
    }

    #[test]
    fn collector_module_version_counts_only_when_both_sides_know_it() {
        let c = |sha: &str, v: Option<&str>| Collector {
            sha256: sha.into(),
            module_version: v.map(str::to_string),
        };
        assert!(collector(Some(&c("a", Some("v1"))), Some(&c("a", None))).is_none());
        assert!(collector(Some(&c("a", Some("v1"))), Some(&c("a", Some("v2")))).is_some());
        assert!(collector(Some(&c("a", None)), Some(&c("b", None))).is_some());
        assert!(collector(None, Some(&c("b", None))).is_some());
    }

    #[test]
    fn runtimes_and_arch_changes_are_reported() {
        let old = summary(&[], &[]);
        let mut new = old.clone();
        new.arch = Some("x86_64".into());
        new.runtimes = Some(vec!["python3.8".into(), "python3.9".into()]);
        new.zipped = Some(2148);
        let text = render(&compare(&old, &new));
        assert!(text.contains("architecture: arm64 -> x86_64"), "{text}");
        assert!(text.contains("runtimes: python3.9 -> python3.8, python3.9"), "{text}");
        assert!(text.contains("zipped: 100 B -> 2.1 KiB (+2.0 KiB)"), "{text}");
    }
}
