//! Go build info of an ELF program: the `.go.buildinfo` blob (header, Go version, module info)
//! and its `path`/`mod`/`dep`/`=>`/`build` lines, the facts `go version -m` prints.

use object::{BinaryFormat, Object, ObjectSection};

/// What the Go toolchain recorded about how a program was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BuildInfo {
    /// `go1.26.8`.
    pub go_version: String,
    /// Import path of the main package.
    pub path: Option<String>,
    /// The module holding the main package; its version is `(devel)` for a local build.
    pub main: Option<Module>,
    /// Every other module linked in, in the order Go lists them (sorted by path).
    pub deps: Vec<Module>,
    /// `build` settings: `GOARCH`, `CGO_ENABLED`, `-ldflags`...
    pub settings: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Module {
    pub path: String,
    pub version: String,
    /// The go.sum hash, `h1:<base64 of sha256>`, absent for the main module and replacements
    /// by a local folder.
    pub sum: Option<String>,
    /// The module actually compiled in, when go.mod replaced this one.
    pub replace: Option<Box<Module>>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum GoInfoError {
    #[error("not an ELF file")]
    NotElf,
    #[error("no Go build info in it: not a Go program")]
    Missing,
    #[error("its Go build info is in the format of Go before 1.18, which layerbuild does not read")]
    OldFormat,
    #[error("its Go build info is damaged: {0}")]
    Damaged(String),
}

/// Every Go build info blob starts with these 14 bytes, at a 16-byte boundary.
const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const ALIGN: usize = 16;
/// Header flag (byte 15): Go 1.18 and later put both strings right after the header.
const FLAG_INLINE: u8 = 0x2;
/// The module info is framed by two 16-byte sentinels, the last one after a newline.
const SENTINEL_LEN: usize = 16;

/// Reads the build info of an ELF program: from its `.go.buildinfo` section, or, when the
/// section headers were stripped, from the first aligned blob found in the file.
pub(crate) fn read_elf(data: &[u8]) -> Result<BuildInfo, GoInfoError> {
    let file = object::File::parse(data).map_err(|_| GoInfoError::NotElf)?;
    if file.format() != BinaryFormat::Elf {
        return Err(GoInfoError::NotElf);
    }
    match file.section_by_name(".go.buildinfo") {
        Some(section) => {
            let blob = section
                .data()
                .map_err(|e| GoInfoError::Damaged(format!("cannot read its section ({e})")))?;
            parse_blob(blob)
        }
        None => parse_blob(scan(data).ok_or(GoInfoError::Missing)?),
    }
}

fn scan(data: &[u8]) -> Option<&[u8]> {
    (0..data.len())
        .step_by(ALIGN)
        .find(|&i| data[i..].starts_with(MAGIC))
        .map(|i| &data[i..])
}

/// Parses a blob that starts with the build info header.
pub(crate) fn parse_blob(blob: &[u8]) -> Result<BuildInfo, GoInfoError> {
    if !blob.starts_with(MAGIC) {
        return Err(GoInfoError::Missing);
    }
    if blob.len() < HEADER_LEN {
        return Err(GoInfoError::Damaged("the header is cut short".into()));
    }
    if blob[15] & FLAG_INLINE == 0 {
        return Err(GoInfoError::OldFormat);
    }
    let (version, rest) = varint_string(&blob[HEADER_LEN..])?;
    let (modinfo, _) = varint_string(rest)?;
    let version = String::from_utf8_lossy(version).into_owned();
    if version.is_empty() {
        return Err(GoInfoError::Damaged("the Go version is empty".into()));
    }
    let modinfo = String::from_utf8_lossy(unframe(modinfo));
    let mut info = parse_modinfo(&modinfo)?;
    info.go_version = version;
    Ok(info)
}

/// A string stored as its length (unsigned LEB128 varint) then its bytes.
fn varint_string(data: &[u8]) -> Result<(&[u8], &[u8]), GoInfoError> {
    let mut len: u64 = 0;
    for (i, &b) in data.iter().enumerate().take(10) {
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let rest = &data[i + 1..];
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= rest.len())
                .ok_or_else(|| GoInfoError::Damaged(format!("a string of {len} bytes runs past the end")))?;
            return Ok(rest.split_at(len));
        }
    }
    Err(GoInfoError::Damaged("a string length is not a valid varint".into()))
}

/// The module info without its sentinels; empty when it has none (a build outside module mode).
fn unframe(modinfo: &[u8]) -> &[u8] {
    let n = modinfo.len();
    if n > 2 * SENTINEL_LEN && modinfo[n - SENTINEL_LEN - 1] == b'\n' {
        &modinfo[SENTINEL_LEN..n - SENTINEL_LEN]
    } else {
        &[]
    }
}

/// Parses the tab-separated lines of module info.
pub(crate) fn parse_modinfo(text: &str) -> Result<BuildInfo, GoInfoError> {
    let mut info = BuildInfo::default();
    let mut last: Option<&mut Module> = None;
    for (n, line) in text.lines().enumerate() {
        let bad = |why: &str| GoInfoError::Damaged(format!("module info line {}: {why}: `{line}`", n + 1));
        let (kind, rest) = line.split_once('\t').unwrap_or((line, ""));
        match kind {
            "" => {}
            "go" => {}
            "path" => info.path = Some(rest.to_string()),
            "mod" => {
                info.main = Some(module(rest).ok_or_else(|| bad("not `mod PATH VERSION [SUM]`"))?);
                last = info.main.as_mut();
            }
            "dep" => {
                info.deps
                    .push(module(rest).ok_or_else(|| bad("not `dep PATH VERSION [SUM]`"))?);
                last = info.deps.last_mut();
            }
            "=>" => {
                let m = module(rest).ok_or_else(|| bad("not `=> PATH VERSION [SUM]`"))?;
                let replaced = last.take().ok_or_else(|| bad("a replacement of no module"))?;
                replaced.replace = Some(Box::new(m));
            }
            "build" => info
                .settings
                .push(setting(rest).ok_or_else(|| bad("not `build KEY=VALUE`"))?),
            _ => return Err(bad("unknown line")),
        }
    }
    Ok(info)
}

fn module(fields: &str) -> Option<Module> {
    let mut it = fields.split('\t');
    let path = it.next().filter(|p| !p.is_empty())?.to_string();
    // The column is there but empty for a replacement by a local folder.
    let version = it.next()?.to_string();
    let sum = it.next().filter(|s| !s.is_empty()).map(str::to_string);
    if it.next().is_some() {
        return None;
    }
    Some(Module {
        path,
        version,
        sum,
        replace: None,
    })
}

/// `KEY=VALUE`, where either side is a Go quoted string when it holds a space, tab, quote,
/// newline or `=`.
fn setting(s: &str) -> Option<(String, String)> {
    let (key, rest) = if s.starts_with('"') {
        let (k, rest) = unquote_prefix(s)?;
        (k, rest.strip_prefix('=')?)
    } else {
        let (k, v) = s.split_once('=')?;
        (k.to_string(), v)
    };
    if key.is_empty() {
        return None;
    }
    let value = if rest.starts_with('"') {
        let (v, tail) = unquote_prefix(rest)?;
        if !tail.is_empty() {
            return None;
        }
        v
    } else {
        rest.to_string()
    };
    Some((key, value))
}

/// Decodes the Go double-quoted string at the start of `s`; returns it and what follows.
fn unquote_prefix(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    'x' | 'u' | 'U' => {
                        let digits = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = (0..digits)
                            .map(|_| chars.next().map(|(_, h)| h))
                            .collect::<Option<_>>()?;
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}

impl Module {
    /// The module compiled in: the replacement when there is one.
    pub(crate) fn effective(&self) -> &Module {
        self.replace.as_deref().unwrap_or(self)
    }
}

/// The SHA-256 digest an `h1:` go.sum hash holds, as hex; `None` for other hash kinds.
pub(crate) fn h1_sha256(sum: &str) -> Option<String> {
    use base64::Engine;
    let b64 = sum.strip_prefix("h1:")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (raw.len() == 32).then(|| hex::encode(raw))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const START: &[u8; 16] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    pub(crate) const END: &[u8; 16] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

    /// A blob as the Go 1.18+ linker lays it out: header, then the two varint strings.
    pub(crate) fn blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut b = Vec::from(MAGIC);
        b.push(8); // pointer size, unused by the inline format
        b.push(FLAG_INLINE);
        b.resize(HEADER_LEN, 0);
        let mut framed = Vec::from(&START[..]);
        framed.extend_from_slice(modinfo.as_bytes());
        framed.extend_from_slice(END);
        for s in [version.as_bytes(), &framed] {
            let mut n = s.len();
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                b.push(if n == 0 { byte } else { byte | 0x80 });
                if n == 0 {
                    break;
                }
            }
            b.extend_from_slice(s);
        }
        b
    }

    const MODINFO: &str = "path\texample.com/app/cmd/app\n\
        mod\texample.com/app\t(devel)\t\n\
        dep\tgithub.com/a/b\tv1.2.3\th1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\
        dep\tgolang.org/x/sys\tv0.1.0\th1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
        =>\tgolang.org/x/sys\tv0.2.0\th1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\
        dep\texample.com/local\tv0.0.0\n\
        =>\t../local\t\n\
        build\t-buildmode=exe\n\
        build\t-ldflags=\"-s -w -buildid=\"\n\
        build\tCGO_ENABLED=0\n\
        build\tGOARCH=arm64\n";

    #[test]
    fn parses_a_hand_made_blob() {
        let info = parse_blob(&blob("go1.26.8", MODINFO)).unwrap();
        assert_eq!(info.go_version, "go1.26.8");
        assert_eq!(info.path.as_deref(), Some("example.com/app/cmd/app"));
        let main = info.main.unwrap();
        assert_eq!(
            (main.path.as_str(), main.version.as_str(), main.sum),
            ("example.com/app", "(devel)", None)
        );
        assert_eq!(info.deps.len(), 3);
        assert_eq!(info.deps[0].path, "github.com/a/b");
        assert_eq!(
            info.deps[0].sum.as_deref(),
            Some("h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        );
        let sys = info.deps[1].effective();
        assert_eq!(
            (sys.path.as_str(), sys.version.as_str()),
            ("golang.org/x/sys", "v0.2.0")
        );
        assert_eq!(info.deps[2].effective().path, "../local");
        assert_eq!(info.deps[2].effective().version, "");
        assert_eq!(
            info.settings,
            [
                ("-buildmode".to_string(), "exe".to_string()),
                ("-ldflags".into(), "-s -w -buildid=".into()),
                ("CGO_ENABLED".into(), "0".into()),
                ("GOARCH".into(), "arm64".into()),
            ]
        );
    }

    #[test]
    fn h1_is_base64_of_a_sha256() {
        // sha256 of the empty string, base64.
        assert_eq!(
            h1_sha256("h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(h1_sha256("h2:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="), None);
        assert_eq!(h1_sha256("h1:AAAA"), None);
    }

    #[test]
    fn found_without_section_headers_and_refused_when_broken() {
        let mut data = vec![0u8; 48];
        data.extend(blob("go1.22.0", "mod\tx.test/m\t(devel)\t\n"));
        let found = scan(&data).unwrap();
        assert_eq!(parse_blob(found).unwrap().main.unwrap().path, "x.test/m");
        // Not at a 16-byte boundary: not a blob.
        let mut shifted = vec![0u8; 3];
        shifted.extend(blob("go1.22.0", ""));
        assert!(scan(&shifted).is_none());

        let mut old = blob("go1.17", "");
        old[15] = 0;
        assert_eq!(parse_blob(&old), Err(GoInfoError::OldFormat));
        let cut = blob("go1.22.0", MODINFO);
        assert!(matches!(parse_blob(&cut[..40]), Err(GoInfoError::Damaged(_))));
        assert!(matches!(
            parse_blob(&blob("go1.22.0", "dep\tonly-a-path\n")),
            Err(GoInfoError::Damaged(_))
        ));
        assert_eq!(read_elf(b"#!/bin/sh\n"), Err(GoInfoError::NotElf));
    }

    #[test]
    fn module_info_without_sentinels_is_empty() {
        let mut b = blob("go1.22.0", "");
        // Replace the framed module info by a bare string of 5 bytes.
        b.truncate(HEADER_LEN + 1 + "go1.22.0".len());
        b.push(5);
        b.extend_from_slice(b"hello");
        let info = parse_blob(&b).unwrap();
        assert_eq!(info.main, None);
        assert!(info.deps.is_empty());
    }

    /// A real program with a module replaced by a local folder, read by us and by Go.
    #[test]
    #[ignore = "needs go"]
    fn reads_what_go_version_m_reads() {
        use std::process::Command;
        let d = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("lib/go.mod", "module example.com/lib\n\ngo 1.21\n");
        w("lib/lib.go", "package lib\n\nfunc Hello() string { return \"hi\" }\n");
        w(
            "app/go.mod",
            "module example.com/app\n\ngo 1.21\n\nrequire example.com/lib v0.0.0\n\nreplace example.com/lib => ../lib\n",
        );
        w(
            "app/main.go",
            "package main\n\nimport \"example.com/lib\"\n\nfunc main() { println(lib.Hello()) }\n",
        );
        let go = |args: &[&str]| {
            let out = Command::new("go")
                .args(args)
                .current_dir(d.path().join("app"))
                .env("CGO_ENABLED", "0")
                .env("GOPROXY", "off")
                .env("GOFLAGS", "-mod=mod")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "go {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        go(&["build", "-trimpath", "-o", "app.bin", "."]);
        let info = read_elf(&std::fs::read(d.path().join("app/app.bin")).unwrap()).unwrap();
        assert_eq!(info.go_version, go(&["env", "GOVERSION"]).trim());
        assert_eq!(info.path.as_deref(), Some("example.com/app"));
        assert_eq!(info.main.as_ref().unwrap().path, "example.com/app");
        let lib = &info.deps[0];
        assert_eq!((lib.path.as_str(), lib.version.as_str()), ("example.com/lib", "v0.0.0"));
        assert_eq!(lib.effective().path, "../lib");
        let printed = go(&["version", "-m", "app.bin"]);
        let settings: Vec<String> = printed
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("build\t"))
            .map(str::to_string)
            .collect();
        let ours: Vec<String> = info.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert!(settings.contains(&"-trimpath=true".to_string()), "{printed}");
        assert_eq!(ours, settings);
    }

    #[test]
    fn quoted_settings() {
        assert_eq!(
            setting("\"we=ird\"=\"a\\tb\\x41\\u00e9\""),
            Some(("we=ird".to_string(), "a\tbAé".to_string()))
        );
        assert_eq!(setting("noequals"), None);
        assert_eq!(setting("\"open=x"), None);
    }
}
