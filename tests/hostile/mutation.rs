//! Seeded mutations of a real layer zip and its manifest, thousands of them, each run through
//! `verify`: the only answers allowed are exit 0, 1 or 2, in bounded time and memory, never a
//! panic (issue 14). The generator is written here so the cases are the same on every machine.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::layer::{Layer, MANIFEST, ZIP};
use crate::run;

const SEED: u64 = 0x1a7e_b01d_0014_0001;
const CASES: usize = 3000;
const WORKERS: usize = 2;

/// SplitMix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 40,
    u64::MAX,
];

/// Offsets worth aiming at: every zip signature, where the header fields are.
fn header_offsets(zip: &[u8]) -> Vec<usize> {
    (0..zip.len().saturating_sub(3))
        .filter(|&i| zip[i] == b'P' && zip[i + 1] == b'K' && zip[i + 2] < 8 && zip[i + 3] < 9)
        .collect()
}

fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, hot: &[usize]) {
    for _ in 0..=rng.below(4) {
        if data.is_empty() {
            data.push(rng.next() as u8);
            continue;
        }
        let at = if !hot.is_empty() && rng.below(2) == 0 {
            (rng.pick(hot) + rng.below(46)).min(data.len() - 1)
        } else {
            rng.below(data.len())
        };
        match rng.below(7) {
            0 => data[at] ^= 1 << rng.below(8),
            1 => data[at] = *rng.pick(&INTERESTING) as u8,
            2 => {
                let v = rng.pick(&INTERESTING).to_le_bytes();
                let width = *rng.pick(&[2usize, 4, 8]);
                for (i, b) in v.iter().take(width).enumerate() {
                    if let Some(slot) = data.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            3 => {
                let n = 1 + rng.below(64);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            4 => {
                let end = (at + 1 + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            5 => data.truncate(at),
            _ => {
                let end = (at + 1 + rng.below(256)).min(data.len());
                let copy = data[at..end].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, copy);
            }
        }
    }
}

/// Edits the manifest as JSON: the fields verify trusts or checks.
fn mutate_manifest(rng: &mut Rng, m: &mut Value) {
    let entries = m["entries"].as_array().map_or(0, Vec::len);
    let i = rng.below(entries.max(1));
    let big = *rng.pick(&INTERESTING);
    match rng.below(9) {
        0 => m["entries"][i]["size"] = big.into(),
        1 => m["entries"][i]["mode"] = (*rng.pick(&["4755", "0777", "755", "", "0o755", "99999"])).into(),
        2 => {
            m["entries"][i]["path"] =
                (*rng.pick(&["../x", "/abs", "a\u{1b}b", "", "python/", "otel-instrument"])).into()
        }
        3 => m["entries"][i]["sha256"] = Value::Null,
        4 => {
            if let Some(a) = m["entries"].as_array_mut() {
                let dup = a.get(i).cloned().unwrap_or(Value::Null);
                a.push(dup);
            }
        }
        5 => m["limits"]["unzipped_bytes"] = big.into(),
        6 => m["layer"]["arch"] = (*rng.pick(&["arm64", "x86_64", "mips", ""])).into(),
        7 => m["collector"] = Value::Null,
        _ => m["zip"]["unzipped_size"] = big.into(),
    }
}

/// Makes the manifest's zip record and the `.sha256` describe `zip`, as a careful attacker would.
fn resync(m: &mut Value, zip: &[u8]) {
    let digest = Sha256::digest(zip);
    m["zip"]["sha256"] = hex::encode(digest).into();
    m["zip"]["code_sha256"] = base64::engine::general_purpose::STANDARD.encode(digest).into();
    m["zip"]["size"] = (zip.len() as u64).into();
}

/// One case: the files written into `dir`; returns a description for failure messages.
fn make_case(rng: &mut Rng, base_zip: &[u8], base_manifest: &[u8], dir: &Path) -> String {
    let mut zip = base_zip.to_vec();
    let mut manifest: Value = serde_json::from_slice(base_manifest).unwrap();
    let kind = rng.below(4);
    let hot = header_offsets(base_zip);
    if kind != 1 {
        mutate_bytes(rng, &mut zip, &hot);
    }
    if kind == 1 || kind == 3 {
        mutate_manifest(rng, &mut manifest);
    }
    if kind != 2 {
        resync(&mut manifest, &zip);
    }
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    if rng.below(8) == 0 {
        mutate_bytes(rng, &mut manifest_bytes, &[]);
    }
    std::fs::write(dir.join(ZIP), &zip).unwrap();
    std::fs::write(dir.join(MANIFEST), &manifest_bytes).unwrap();
    let sum = format!("{} *{ZIP}\n", hex::encode(Sha256::digest(&zip)));
    std::fs::write(dir.join(format!("{ZIP}.sha256")), sum).unwrap();
    format!("kind {kind}, zip {} bytes", zip.len())
}

#[test]
fn verify_answers_every_seeded_mutation_with_0_1_or_2() {
    let l = Layer::new();
    let base_zip = l.bytes();
    let base_manifest = std::fs::read(l.manifest_path()).unwrap();
    let started = Instant::now();
    let results: Vec<(usize, [usize; 3], Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (base_zip, base_manifest) = (&base_zip, &base_manifest);
                s.spawn(move || {
                    let dir = tempfile::tempdir().unwrap();
                    let mut counts = [0usize; 3];
                    let mut bad = Vec::new();
                    let mut ran = 0;
                    for case in (w..CASES).step_by(WORKERS) {
                        // Each case has its own stream, so a failing case replays alone.
                        let mut rng = Rng(SEED ^ (case as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
                        let what = make_case(&mut rng, base_zip, base_manifest, dir.path());
                        let mut cmd = run::layerbuild(dir.path());
                        cmd.args(["verify", ZIP]);
                        run::limit_memory(&mut cmd, 2 << 30);
                        let out = run::run(cmd, Duration::from_secs(20));
                        ran += 1;
                        match out.code() {
                            Some(c @ 0..=2) if !out.stderr.contains("panicked") && out.max_rss_kib < 256 << 10 => {
                                counts[c as usize] += 1
                            }
                            _ => bad.push(format!(
                                "case {case} ({what}): exit {:?}, signal {:?}, {:?}, {} KiB: {}",
                                out.code(),
                                out.signal(),
                                out.elapsed,
                                out.max_rss_kib,
                                out.stderr.chars().take(500).collect::<String>()
                            )),
                        }
                    }
                    (ran, counts, bad)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ran: usize = results.iter().map(|r| r.0).sum();
    let mut counts = [0usize; 3];
    for r in &results {
        for (total, n) in counts.iter_mut().zip(r.1) {
            *total += n;
        }
    }
    let bad: Vec<&String> = results.iter().flat_map(|r| &r.2).collect();
    eprintln!(
        "{ran} mutations in {:?}: {} ok, {} refused, {} usage",
        started.elapsed(),
        counts[0],
        counts[1],
        counts[2]
    );
    assert_eq!(ran, CASES);
    assert!(
        bad.is_empty(),
        "{} bad answers:\n{}",
        bad.len(),
        bad.iter().take(20).map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    // The generator must reach past the first checks: most cases are refused, some pass.
    assert!(counts[1] > CASES / 2, "{counts:?}");
}
