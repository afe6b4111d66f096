//! Reads `layer.yaml`, the description of what goes into a layer, strictly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use crate::model::arch::Arch;
use crate::model::lambda;
use crate::model::runtime::Runtime;
use crate::support::input;

/// Deepest `[`/`{` nesting a spec may have: a layer spec nests a few levels, and the YAML
/// parser's time grows with the square of the depth.
const MAX_FLOW_DEPTH: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    /// Layer name, the first part of the zip name (`aws-otel-python`).
    pub name: String,
    /// Layer version; dots become dashes in the zip name.
    pub version: String,
    pub architectures: Vec<Arch>,
    /// Python runtimes in Lambda's spelling (`python3.9`).
    #[serde(default)]
    pub runtimes: Vec<Runtime>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub python: Option<PythonSpec>,
    #[serde(default)]
    pub collector: Option<CollectorSpec>,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSpec {
    /// File or folder, relative to the spec.
    pub src: PathBuf,
    /// Path inside the zip; a folder `src` lands below it.
    pub dest: String,
    #[serde(default)]
    pub executable: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PythonSpec {
    /// The hash-locked requirements written by `layerbuild lock`.
    pub lock: PathBuf,
    /// What `layerbuild lock` resolves.
    #[serde(default)]
    pub requirements: Option<PathBuf>,
    /// Folder in the zip that Lambda puts on `sys.path`.
    #[serde(default = "default_python_dest")]
    pub dest: String,
    /// Top-level names (glob patterns) removed from the tree: the runtime ships its own.
    #[serde(default = "default_exclude")]
    pub exclude: Vec<String>,
    /// `auto` compiles for every runtime whose interpreter is found, `true` requires all.
    #[serde(default)]
    pub bytecode: Bytecode,
    /// The runtimes that get bytecode (default: all of `runtimes`): each adds its own `.pyc` for
    /// every module, 6 to 10 MB for the 1.20.0 set, which near the unzipped limit adds up.
    #[serde(default)]
    pub bytecode_runtimes: Option<Vec<Runtime>>,
    /// Interpreters per runtime, for bytecode; overridden by `--python`.
    #[serde(default)]
    pub interpreters: BTreeMap<Runtime, PathBuf>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Bytecode {
    #[default]
    Auto,
    Always,
    Never,
}

fn default_python_dest() -> String {
    "python".to_string()
}

fn default_exclude() -> Vec<String> {
    vec!["boto*".into(), "urllib3*".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectorSpec {
    /// Where the binary goes in the zip; Lambda starts everything in `extensions/`.
    #[serde(default = "default_collector_dest")]
    pub dest: String,
    /// The source for every architecture not listed in `per_arch`.
    #[serde(default)]
    pub source: Option<CollectorSource>,
    #[serde(default)]
    pub per_arch: BTreeMap<Arch, CollectorSource>,
    /// The collector's default configuration, checked and placed in the zip.
    #[serde(default)]
    pub config: Option<FileSpec>,
}

fn default_collector_dest() -> String {
    "extensions/collector".to_string()
}

/// Where a collector binary comes from: exactly one of `path`, `go` or `zip`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectorSource {
    /// A binary on disk.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A Go module folder, built with `go build` for the layer's architecture.
    #[serde(default)]
    pub go: Option<PathBuf>,
    /// With `go`: the main package to build (default: the module folder itself).
    #[serde(default)]
    pub package: Option<String>,
    /// A collector layer zip to take the binary out of; needs `sha256`.
    #[serde(default)]
    pub zip: Option<PathBuf>,
    /// With `zip`: the zip's pinned sha256.
    #[serde(default)]
    pub sha256: Option<String>,
    /// With `zip`: the entry to take (default `extensions/collector`).
    #[serde(default)]
    pub member: Option<String>,
}

/// A collector source once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceKind {
    Path(PathBuf),
    Go {
        dir: PathBuf,
        package: String,
    },
    Zip {
        zip: PathBuf,
        sha256: String,
        member: String,
    },
}

impl CollectorSource {
    pub(crate) fn kind(&self) -> std::result::Result<SourceKind, String> {
        let set = [self.path.is_some(), self.go.is_some(), self.zip.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set != 1 {
            return Err("a collector source needs exactly one of `path`, `go` or `zip`".into());
        }
        if self.package.is_some() && self.go.is_none() {
            return Err("`package` goes with `go`".into());
        }
        if (self.sha256.is_some() || self.member.is_some()) && self.zip.is_none() {
            return Err("`sha256` and `member` go with `zip`".into());
        }
        if let Some(p) = &self.path {
            return Ok(SourceKind::Path(p.clone()));
        }
        if let Some(dir) = &self.go {
            return Ok(SourceKind::Go {
                dir: dir.clone(),
                package: self.package.clone().unwrap_or_else(|| ".".into()),
            });
        }
        let zip = self.zip.clone().expect("one source is set");
        let sha256 = self
            .sha256
            .clone()
            .ok_or("a `zip` collector source needs `sha256`: pin the zip you downloaded")?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`sha256: {sha256}` is not 64 hex digits"));
        }
        Ok(SourceKind::Zip {
            zip,
            sha256: sha256.to_ascii_lowercase(),
            member: self.member.clone().unwrap_or_else(|| "extensions/collector".into()),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    #[serde(default = "default_unzipped")]
    pub unzipped_bytes: u64,
    #[serde(default = "default_zipped")]
    pub zipped_warning_bytes: u64,
}

fn default_unzipped() -> u64 {
    lambda::UNZIPPED_BYTES
}

fn default_zipped() -> u64 {
    lambda::ZIPPED_DIRECT_BYTES
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            unzipped_bytes: lambda::UNZIPPED_BYTES,
            zipped_warning_bytes: lambda::ZIPPED_DIRECT_BYTES,
        }
    }
}

/// A spec read from disk, with the folder its relative paths start from.
#[derive(Debug)]
pub(crate) struct LoadedSpec {
    pub spec: Spec,
    pub path: PathBuf,
    pub dir: PathBuf,
}

impl LoadedSpec {
    pub(crate) fn resolve(&self, p: &Path) -> PathBuf {
        self.dir.join(p)
    }

    /// The spec's architectures, each once, in a fixed order.
    pub(crate) fn architectures(&self) -> Vec<Arch> {
        let mut out = self.spec.architectures.clone();
        out.sort();
        out.dedup();
        out
    }
}

/// Reads and checks a spec; errors carry the file name, line and column.
pub(crate) fn load(path: &Path) -> Result<LoadedSpec> {
    let text = input::read_to_string(path, input::YAML_CAP, "layer spec")
        .with_context(|| "cannot read the layer spec: pass --spec PATH or run in the folder holding layer.yaml")?;
    let spec = parse(&text).with_context(|| format!("{}: invalid layer spec", path.display()))?;
    let dir = path
        .parent()
        .map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p })
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let loaded = LoadedSpec {
        spec,
        path: path.to_path_buf(),
        dir,
    };
    validate(&loaded)?;
    Ok(loaded)
}

pub(crate) fn parse(text: &str) -> Result<Spec> {
    check_flow_depth(text).map_err(|e| anyhow!(e))?;
    Ok(serde_norway::from_str(text)?)
}

/// Refuses flow collections (`[...]`, `{...}`) nested deeper than [`MAX_FLOW_DEPTH`], before
/// the parser sees them. Quoted strings, comments and brackets inside plain words
/// (`a[1].txt`) do not count; block nesting is cheap for the parser and is left to it.
pub(crate) fn check_flow_depth(text: &str) -> Result<(), String> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut quote: Option<char> = None;
    // `prev` is the character before; `last` the last one outside quotes that was not a
    // space: a `[` opens a collection only after one of `:-,[{?` or at a line's start.
    let (mut prev, mut last) = ('\n', '\n');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
            if quote == Some('#') {
                quote = None;
            }
        }
        match (quote, c) {
            (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
            }
            (Some('"'), '\\') => {
                chars.next();
            }
            (Some(q), c) if q == c => quote = None,
            (Some(_), _) => {}
            (None, '#') if prev.is_whitespace() => quote = Some('#'),
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '{') if matches!(last, '\n' | ':' | '-' | ',' | '[' | '{' | '?') => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(format!(
                        "line {line}: `[` and `{{` nest more than {MAX_FLOW_DEPTH} levels deep: a layer spec needs a few"
                    ));
                }
            }
            (None, ']' | '}') if depth > 0 => depth -= 1,
            _ => {}
        }
        if c == '\n' || (quote.is_none() && !c.is_whitespace()) {
            last = c;
        }
        prev = c;
    }
    Ok(())
}

fn validate(l: &LoadedSpec) -> Result<()> {
    let s = &l.spec;
    let p = l.path.display();
    if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
        bail!("{p}: `name` must be letters, digits, `-` or `_`, got `{}`", s.name);
    }
    if s.version.is_empty()
        || !s
            .version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
    {
        bail!(
            "{p}: `version` must be letters, digits, `.`, `-` or `_`, got `{}`",
            s.version
        );
    }
    if s.architectures.is_empty() {
        bail!("{p}: `architectures` is empty: list x86_64, arm64 or both");
    }
    if s.limits.unzipped_bytes > lambda::UNZIPPED_BYTES {
        bail!(
            "{p}: limits.unzipped_bytes is {}, over Lambda's own limit of {}: a limit may only be lowered",
            s.limits.unzipped_bytes,
            lambda::UNZIPPED_BYTES
        );
    }
    if s.python.is_some() && s.runtimes.is_empty() {
        bail!("{p}: `python` needs at least one entry in `runtimes`");
    }
    let named = |rts: &mut dyn Iterator<Item = Runtime>, key: &str| -> Result<()> {
        for rt in rts {
            if !s.runtimes.contains(&rt) {
                bail!(
                    "{p}: python.{key} names {rt}, which is not one of the spec's runtimes ({}): add it to `runtimes` or drop it",
                    s.runtimes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(())
    };
    if let Some(py) = &s.python {
        named(&mut py.bytecode_runtimes.iter().flatten().copied(), "bytecode_runtimes")?;
        named(&mut py.interpreters.keys().copied(), "interpreters")?;
    }
    if let Some(c) = &s.collector {
        for (key, src) in &c.per_arch {
            src.kind().map_err(|e| anyhow!("{p}: collector.per_arch.{key}: {e}"))?;
        }
        if let Some(src) = &c.source {
            src.kind().map_err(|e| anyhow!("{p}: collector.source: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name: demo\nversion: 1.0.0\narchitectures: [x86_64]\n";

    #[test]
    fn defaults_fill_limits_and_collector_dest() {
        let s = parse(&format!("{MINIMAL}collector:\n  source:\n    path: bin/collector\n")).unwrap();
        assert_eq!(s.limits.unzipped_bytes, lambda::UNZIPPED_BYTES);
        let c = s.collector.unwrap();
        assert_eq!(c.dest, "extensions/collector");
        assert_eq!(c.source.unwrap().kind(), Ok(SourceKind::Path("bin/collector".into())));
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("name: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let e = parse(&deep).unwrap_err().to_string();
        assert!(e.contains("nest more than 32 levels"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let fine = format!(
            "{MINIMAL}# a comment with [[[[ brackets\nfiles:\n  - {{src: 'a[1].txt', dest: \"x{{{{\"}}\n  - src: b[2]\n    dest: y\n"
        );
        let s = parse(&fine).unwrap();
        assert_eq!(s.files[0].src, Path::new("a[1].txt"));
        assert_eq!(s.files[1].src, Path::new("b[2]"));
        let flat = format!("{MINIMAL}runtimes: {}\n", "[".repeat(32) + &"]".repeat(32));
        assert!(!parse(&flat).unwrap_err().to_string().contains("nest"));
    }

    #[test]
    fn a_limit_may_only_be_lowered() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("layer.yaml");
        std::fs::write(&p, format!("{MINIMAL}limits:\n  unzipped_bytes: 300000000\n")).unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("over Lambda's own limit of 262144000"), "{e}");
        std::fs::write(&p, format!("{MINIMAL}limits:\n  unzipped_bytes: 100000000\n")).unwrap();
        assert_eq!(load(&p).unwrap().spec.limits.unzipped_bytes, 100_000_000);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse(&format!("{MINIMAL}colector: {{}}\n")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("unknown field `colector`"), "{msg}");
        assert!(msg.contains("line 4 column 1"), "{msg}");
    }

    #[test]
    fn python_keys_name_only_the_spec_runtimes() {
        let dir = tempfile::tempdir().unwrap();
        let load_with = |python: &str| {
            let path = dir.path().join("layer.yaml");
            let text = format!("{MINIMAL}runtimes: [python3.12, python3.13]\npython:\n  lock: r.txt\n{python}");
            std::fs::write(&path, text).unwrap();
            load(&path)
        };
        let l = load_with("  bytecode_runtimes: [python3.13]\n").unwrap();
        let py = l.spec.python.unwrap();
        assert_eq!(py.bytecode_runtimes, Some(vec![Runtime::parse("python3.13").unwrap()]));
        let e = load_with("  bytecode_runtimes: [python3.9]\n").unwrap_err().to_string();
        assert!(
            e.ends_with("python.bytecode_runtimes names python3.9, which is not one of the spec's runtimes (python3.12, python3.13): add it to `runtimes` or drop it"),
            "{e}"
        );
        let e = load_with("  interpreters: {python3.11: /usr/bin/python3.11}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("python.interpreters names python3.11"), "{e}");
        assert!(load_with("").unwrap().spec.python.unwrap().bytecode_runtimes.is_none());
    }

    #[test]
    fn collector_source_shapes() {
        let src = |y: &str| {
            parse(&format!("{MINIMAL}collector:\n  source: {y}\n"))
                .unwrap()
                .collector
                .unwrap()
                .source
                .unwrap()
                .kind()
        };
        assert!(src("{zip: c.zip}").unwrap_err().contains("sha256"));
        assert!(src("{path: a, go: b}").unwrap_err().contains("exactly one"));
        assert_eq!(
            src("{go: collector}").unwrap(),
            SourceKind::Go {
                dir: "collector".into(),
                package: ".".into()
            }
        );
        let hash = "ab".repeat(32);
        assert_eq!(
            src(&format!("{{zip: c.zip, sha256: {hash}}}")).unwrap(),
            SourceKind::Zip {
                zip: "c.zip".into(),
                sha256: hash,
                member: "extensions/collector".into()
            }
        );
    }
}
