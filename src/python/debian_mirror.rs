//! Finds the Debian mirror this machine's apt already uses, for debootstrap to fetch roots from.

use std::path::{Path, PathBuf};

/// Overrides the apt sources (a mirror URI as debootstrap takes it).
pub const MIRROR_ENV: &str = "LAYERBUILD_DEBIAN_MIRROR";

/// Suite names of the Debian archive proper: a source naming none of them is another vendor's
/// repository (a `nodistro` suite, an Ubuntu codename) or a side archive (`-security`, `-updates`).
const DEBIAN_SUITES: &[&str] = &[
    "stable",
    "oldstable",
    "oldoldstable",
    "testing",
    "unstable",
    "sid",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
];

/// A mirror and where it was found (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub uri: String,
    pub from: String,
}

/// `override_uri` when set, else the first Debian source in `apt_dir`'s
/// `sources.list.d/*.sources` (deb822), `sources.list.d/*.list` and `sources.list`.
/// `Err` lists the files looked at, for the message that says how to fix it.
pub fn find(apt_dir: &Path, override_uri: Option<&str>) -> Result<Mirror, Vec<PathBuf>> {
    if let Some(uri) = override_uri.filter(|v| !v.trim().is_empty()) {
        return Ok(Mirror {
            uri: uri.trim().to_string(),
            from: format!("${MIRROR_ENV}"),
        });
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(apt_dir.join("sources.list.d"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files.push(apt_dir.join("sources.list"));
    let mut looked = Vec::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parse: fn(&str) -> Option<String> = if name.ends_with(".sources") {
            from_deb822
        } else if name.ends_with(".list") {
            from_one_line
        } else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        looked.push(file.clone());
        if let Some(uri) = parse(&text) {
            return Ok(Mirror {
                uri,
                from: file.display().to_string(),
            });
        }
    }
    Err(looked)
}

fn usable(types: &[&str], uri: &str, suites: &[&str]) -> bool {
    let scheme_ok = ["http://", "https://", "file:/", "ftp://"]
        .iter()
        .any(|s| uri.starts_with(s));
    types.contains(&"deb") && scheme_ok && suites.iter().any(|s| DEBIAN_SUITES.contains(s))
}

/// The first enabled `deb` stanza of a deb822 `.sources` file naming a Debian suite.
pub fn from_deb822(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |key: &str| -> Vec<&str> {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case(key))
                .flat_map(|(_, v)| v.split_whitespace())
                .collect()
        };
        if field("Enabled").first().is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            return None;
        }
        let (types, suites) = (field("Types"), field("Suites"));
        field("URIs")
            .into_iter()
            .find(|uri| usable(&types, uri, &suites))
            .map(str::to_string)
    })
}

/// The first `deb [options] URI suite ...` line of a one-line-style `sources.list` naming a
/// Debian suite.
pub fn from_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let rest = line.strip_prefix("deb")?;
        if !rest.starts_with([' ', '\t']) {
            return None; // `deb-src`
        }
        let rest = rest.trim_start();
        // Options in brackets may hold spaces: `[ arch=amd64 signed-by=/k.gpg ]`.
        let rest = match rest.strip_prefix('[') {
            Some(opts) => opts.split_once(']')?.1,
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let (uri, suite) = (words.next()?, words.next()?);
        usable(&["deb"], uri, &[suite]).then(|| uri.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# a snapshot, commented out\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
        Types: deb\nURIs: http://vendor.invalid/node\nSuites: nodistro\n\n\
        Types: deb\nURIs: http://off.invalid/debian\nSuites: bookworm\nEnabled: no\n\n\
        Types: deb deb-src\nURIs: http://mirror.invalid/debian http://second.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n";

    #[test]
    fn deb822_picks_the_enabled_debian_archive() {
        assert_eq!(from_deb822(DEB822).as_deref(), Some("http://mirror.invalid/debian"));
        assert_eq!(
            from_deb822("Types: deb-src\nURIs: http://m.invalid/debian\nSuites: bookworm\n"),
            None
        );
        assert_eq!(
            from_deb822("Types: deb\nURIs: cdrom:[Debian]/\nSuites: bookworm\n"),
            None
        );
    }

    #[test]
    fn one_line_skips_options_sources_and_other_suites() {
        let text = "# deb http://commented.invalid/debian bookworm main\n\
            deb-src http://src.invalid/debian bookworm main\n\
            deb http://security.invalid/debian-security bookworm-security main\n\
            deb [ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ] http://mirror.invalid/debian bookworm main\n";
        assert_eq!(from_one_line(text).as_deref(), Some("http://mirror.invalid/debian"));
        assert_eq!(from_one_line("deb http://ports.invalid/ubuntu jammy main\n"), None);
    }

    #[test]
    fn apt_folder_is_searched_in_order_and_misses_are_listed() {
        let apt = tempfile::tempdir().unwrap();
        let d = apt.path().join("sources.list.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("a.sources.disabled"),
            "Types: deb\nURIs: http://no.invalid/debian\nSuites: bookworm\n",
        )
        .unwrap();
        std::fs::write(d.join("b.list"), "deb http://ports.invalid/ubuntu jammy main\n").unwrap();
        let looked = find(apt.path(), None).unwrap_err();
        assert_eq!(looked, vec![d.join("b.list")]);
        std::fs::write(d.join("c.sources"), DEB822).unwrap();
        let m = find(apt.path(), Some(" ")).unwrap();
        assert_eq!(m.uri, "http://mirror.invalid/debian");
        assert!(m.from.ends_with("c.sources"), "{}", m.from);
        let m = find(apt.path(), Some("file:///srv/mirror ")).unwrap();
        assert_eq!(
            (m.uri.as_str(), m.from.as_str()),
            ("file:///srv/mirror", "$LAYERBUILD_DEBIAN_MIRROR")
        );
    }
}
