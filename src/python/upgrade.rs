//! What `lock` keeps of the lock it replaces, as pip-tools and uv do: every pin stays as it was
//! (a pip constraint) unless `--upgrade` or `--upgrade-package NAME` frees it, or
//! `requirements.in` names the package itself; and the pins a run changed, old -> new.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::arch::Arch;
use crate::model::runtime::Runtime;
use crate::python::lockfile::{Lock, Resolved};
use crate::python::tags::normalize;

/// Which kept pins a lock run may move.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Upgrade {
    /// Keep every pin `requirements.in` still allows.
    #[default]
    Nothing,
    /// Resolve every package afresh (`--upgrade`).
    All,
    /// Resolve these afresh (`--upgrade-package`, normalized names).
    Packages(BTreeSet<String>),
}

impl Upgrade {
    fn frees(&self, name: &str) -> bool {
        match self {
            Upgrade::Nothing => false,
            Upgrade::All => true,
            Upgrade::Packages(names) => names.contains(&normalize(name)),
        }
    }
}

/// The project name a requirement line starts with, normalized (`Foo_Bar[x]>=1` -> `foo-bar`).
pub(crate) fn requirement_name(line: &str) -> Option<String> {
    line.parse::<pep508_rs::Requirement>()
        .ok()
        .map(|r| normalize(r.name.as_ref()))
}

/// `name==version` constraints for one target: the old lock's pins for it, minus those the
/// requirements name themselves (their own specifier rules) and those the run frees.
pub(crate) fn constraints(
    old: &Lock,
    direct: &BTreeSet<String>,
    upgrade: &Upgrade,
    arch: Arch,
    rt: Runtime,
) -> Vec<String> {
    if *upgrade == Upgrade::All {
        return Vec::new();
    }
    old.for_target(arch, rt)
        .filter(|p| !direct.contains(&normalize(&p.name)) && !upgrade.frees(&p.name))
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect()
}

/// `--upgrade-package` names that neither the old lock nor the requirements know: a typo.
pub(crate) fn unknown_packages(upgrade: &Upgrade, old: Option<&Lock>, direct: &BTreeSet<String>) -> Vec<String> {
    let Upgrade::Packages(names) = upgrade else {
        return Vec::new();
    };
    let locked: BTreeSet<String> = old
        .map(|l| l.packages.iter().map(|p| normalize(&p.name)).collect())
        .unwrap_or_default();
    names
        .iter()
        .filter(|n| !locked.contains(*n) && !direct.contains(*n))
        .cloned()
        .collect()
}

/// One line per package whose versions changed: `name 1.0 -> 1.1`, `name (new) -> 2.0`,
/// `name 1.0 -> (removed)`; several versions (per target) joined with `, `.
pub(crate) fn changes(old: &Lock, new: &[Resolved]) -> Vec<String> {
    let mut before: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for p in &old.packages {
        let e = before
            .entry(normalize(&p.name))
            .or_insert_with(|| (p.name.clone(), BTreeSet::new()));
        e.1.insert(p.version.clone());
    }
    let mut after: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for r in new {
        let e = after
            .entry(normalize(&r.name))
            .or_insert_with(|| (r.name.clone(), BTreeSet::new()));
        e.1.insert(r.version.clone());
    }
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let show = |v: Option<&(String, BTreeSet<String>)>, none: &str| {
        v.map_or(none.to_string(), |(_, vs)| {
            vs.iter().cloned().collect::<Vec<_>>().join(", ")
        })
    };
    names
        .into_iter()
        .filter_map(|key| {
            let (b, a) = (before.get(key), after.get(key));
            if b.map(|x| &x.1) == a.map(|x| &x.1) {
                return None;
            }
            let name = a.or(b).map(|x| x.0.clone()).unwrap_or_default();
            Some(format!("{name} {} -> {}", show(b, "(new)"), show(a, "(removed)")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::python::lockfile;

    const OLD: &str = "requests==2.32.4 \\\n    --hash=sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
        idna==3.15 \\\n    --hash=sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n\
        wrapt==1.17.0 ; python_version == \"3.12\" \\\n    --hash=sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\n\
        wrapt==2.0.0 ; python_version == \"3.13\" \\\n    --hash=sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\n";

    fn old() -> Lock {
        lockfile::parse(OLD, "old.txt").unwrap()
    }

    fn rt(s: &str) -> Runtime {
        s.parse().unwrap()
    }

    fn resolved(name: &str, version: &str) -> Resolved {
        Resolved {
            name: name.into(),
            version: version.into(),
            ..Resolved::default()
        }
    }

    #[test]
    fn names_come_from_pep508_requirements() {
        assert_eq!(
            requirement_name("Foo_Bar[extra]>=1.0; python_version < '3.11'").as_deref(),
            Some("foo-bar")
        );
        assert_eq!(
            requirement_name("opentelemetry-distro==0.66b1").as_deref(),
            Some("opentelemetry-distro")
        );
        assert_eq!(requirement_name("==1.0"), None);
    }

    #[test]
    fn kept_pins_are_per_target_minus_direct_and_freed_ones() {
        let direct = BTreeSet::from(["requests".to_string()]);
        let c = constraints(&old(), &direct, &Upgrade::Nothing, Arch::X86_64, rt("python3.12"));
        assert_eq!(c, ["idna==3.15", "wrapt==1.17.0"]);
        let c = constraints(&old(), &direct, &Upgrade::Nothing, Arch::Arm64, rt("python3.13"));
        assert_eq!(c, ["idna==3.15", "wrapt==2.0.0"]);
        let freed = Upgrade::Packages(BTreeSet::from(["wrapt".to_string()]));
        assert_eq!(
            constraints(&old(), &direct, &freed, Arch::X86_64, rt("python3.12")),
            ["idna==3.15"]
        );
        assert!(constraints(&old(), &direct, &Upgrade::All, Arch::X86_64, rt("python3.12")).is_empty());
    }

    #[test]
    fn unknown_upgrade_packages_are_named() {
        let direct = BTreeSet::from(["opentelemetry-distro".to_string()]);
        let up = Upgrade::Packages(BTreeSet::from([
            "idna".into(),
            "opentelemetry-distro".into(),
            "idan".into(),
        ]));
        assert_eq!(unknown_packages(&up, Some(&old()), &direct), ["idan"]);
        assert!(unknown_packages(&Upgrade::All, None, &direct).is_empty());
    }

    #[test]
    fn changes_say_old_and_new_and_nothing_else() {
        let new = [
            resolved("requests", "2.32.4"),
            resolved("idna", "3.21"),
            resolved("wrapt", "2.0.0"),
            resolved("certifi", "2026.1.1"),
        ];
        assert_eq!(
            changes(&old(), &new),
            [
                "certifi (new) -> 2026.1.1",
                "idna 3.15 -> 3.21",
                "wrapt 1.17.0, 2.0.0 -> 2.0.0",
            ]
        );
        let same = [
            resolved("requests", "2.32.4"),
            resolved("idna", "3.15"),
            resolved("wrapt", "1.17.0"),
            resolved("wrapt", "2.0.0"),
        ];
        assert!(changes(&old(), &same).is_empty());
        assert_eq!(changes(&old(), &same[..3]), ["wrapt 1.17.0, 2.0.0 -> 1.17.0"]);
        assert_eq!(changes(&old(), &same[1..]), ["requests 2.32.4 -> (removed)"]);
    }
}
