//! Locks and wheels written by someone else: names that are paths, sizes that lie, bombs
//! (issue 14, items 3 and 4).

use std::time::Duration;

use crate::layer::sha;
use crate::pyfix::{PyLayer, pure};
use crate::rawzip::{self, Layout, RawEntry};
use crate::run;
use crate::wheels::pin;

/// A layer whose lock names the one wheel `demo` as `name`, with the wheel's true hash.
fn lock_naming(l: &mut PyLayer, name: &str, wheel: &[u8]) {
    l.lock
        .push_str(&pin("demo", "1.0", None, &[(name.to_string(), sha(wheel))]));
}

#[test]
fn lock_wheel_names_that_are_paths_are_refused() {
    let wheel = pure("demo", "1.0", "V = 1\n").bytes();
    let file = "demo-1.0-py3-none-any.whl";
    let mut failures = Vec::new();
    for (what, name) in [
        ("climbing", format!("../../../x/{file}")),
        ("in a folder", format!("sub/{file}")),
        ("absolute", String::new()),
    ] {
        let mut l = PyLayer::new(&["python3.9"], "");
        // The wheelhouse three folders down, so `../../../x` stays inside the test's folder.
        let house = l.path().join("w1/w2/w3/wheelhouse");
        std::fs::create_dir_all(&house).unwrap();
        std::fs::create_dir_all(l.path().join("w1/x")).unwrap();
        std::fs::write(l.path().join("w1/x").join(file), &wheel).unwrap();
        std::fs::create_dir_all(house.join("sub")).unwrap();
        std::fs::write(house.join("sub").join(file), &wheel).unwrap();
        let name = if name.is_empty() {
            l.path().join("w1/x").join(file).display().to_string()
        } else {
            name
        };
        lock_naming(&mut l, &name, &wheel);
        let mut cmd = l.cmd(&["--out", "dist", "--no-bytecode", "--wheelhouse"]);
        cmd.arg(&house).env("LAYERBUILD_CACHE", l.path().join("c1/cache"));
        let out = run::run(cmd, Duration::from_secs(120));
        let outside = l.path().join("c1/x");
        if out.code() != Some(1) || !out.stderr.contains("requirements.txt:") || outside.exists() {
            failures.push(format!(
                "{what} (`{name}`): exit {:?}, wrote outside the cache: {}, stderr: {}",
                out.code(),
                outside.exists(),
                out.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `demo`'s wheel with `demo/__init__.py` declared as `size` bytes in the central directory.
fn wheel_declaring(size: u64) -> Vec<u8> {
    let honest = pure("demo", "1.0", "V = 1\n").bytes();
    let mut entries = rawzip::read(&honest);
    let e = entries.iter_mut().find(|e| e.name == b"demo/__init__.py").unwrap();
    e.central_size = Some(size);
    rawzip::write(&entries, &Layout::default())
}

/// A clean failure: exit 1, an error naming `names`, under 300 MiB peak memory; else why not.
fn clean_failure(what: &str, out: &run::Outcome, names: &str) -> Option<String> {
    eprintln!("{what}: exit {:?}, peak RSS {} KiB", out.code(), out.max_rss_kib);
    let clean = out.code() == Some(1) && out.stderr.contains(names) && out.max_rss_kib <= 300 << 10;
    (!clean).then(|| {
        format!(
            "{what}: exit {:?} (signal {:?}), peak RSS {} KiB, stderr: {}",
            out.code(),
            out.signal(),
            out.max_rss_kib,
            out.stderr.trim()
        )
    })
}

#[test]
fn wheels_with_forged_or_huge_sizes_fail_cleanly() {
    let mut failures = Vec::new();
    let bomb = {
        // 1 GiB of zeros in about 1 MiB: an honest size, far over anything a layer can hold.
        let honest = pure("demo", "1.0", "V = 1\n").bytes();
        let mut entries = rawzip::read(&honest);
        entries.insert(0, rawzip::big_entry("demo/zeros.bin", 0o644, &vec![0u8; 1 << 20], 1024));
        rawzip::write(&entries, &Layout::default())
    };
    for (what, wheel) in [
        ("declared 2^62 bytes", wheel_declaring(1 << 62)),
        ("declared 2^64-2 bytes", wheel_declaring(u64::MAX - 1)),
        ("1 GiB of zeros", bomb),
    ] {
        let mut l = PyLayer::new(&["python3.9"], "");
        std::fs::create_dir_all(l.house()).unwrap();
        let file = "demo-1.0-py3-none-any.whl";
        std::fs::write(l.house().join(file), &wheel).unwrap();
        lock_naming(&mut l, file, &wheel);
        let mut cmd = l.cmd(&["--out", "dist", "--no-bytecode", "--wheelhouse", "wheelhouse"]);
        run::limit_memory(&mut cmd, 8 << 30);
        let out = run::run(cmd, Duration::from_secs(120));
        failures.extend(clean_failure(what, &out, file));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_collector_zip_with_a_bomb_or_a_forged_size_fails_cleanly() {
    let mut failures = Vec::new();
    let elf = crate::common::fake_elf(crate::common::EM_X86_64, crate::common::ET_EXEC, 4096);
    let mut forged = RawEntry::stored("extensions/collector", 0o755, &elf);
    forged.central_size = Some(1 << 62);
    let cases = [
        ("declared 2^62 bytes", forged),
        (
            "1 GiB of zeros",
            rawzip::big_entry("extensions/collector", 0o755, &vec![0u8; 1 << 20], 1024),
        ),
    ];
    for (what, member) in cases {
        let d = tempfile::tempdir().unwrap();
        crate::common::fixture(d.path());
        let zip = rawzip::write(&[member], &Layout::default());
        std::fs::write(d.path().join("collector.zip"), &zip).unwrap();
        let spec = crate::common::SPEC.replace(
            "    x86_64: {path: bin/collector-amd64}",
            &format!("    x86_64: {{zip: collector.zip, sha256: {}}}", sha(&zip)),
        );
        std::fs::write(d.path().join("layer.yaml"), spec).unwrap();
        let mut cmd = run::layerbuild(d.path());
        cmd.args(["build", "--quiet", "--arch", "x86_64", "--out", "dist"]);
        run::limit_memory(&mut cmd, 8 << 30);
        let out = run::run(cmd, Duration::from_secs(120));
        failures.extend(clean_failure(&format!("collector {what}"), &out, "collector.zip"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
