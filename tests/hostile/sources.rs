//! A spec someone else wrote names what goes into the layer: its `files:` sources stay in the
//! spec's folder, and a `dest` cannot put a control character into an entry name (issue 25,
//! finding 15).

use std::time::Duration;

use crate::common;
use crate::run;

/// Builds the fixture with one more `files:` item; returns the outcome and the output folder.
fn build_with(item: &str, outside: &std::path::Path) -> (run::Outcome, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let spec = common::fixture(d.path());
    let text = std::fs::read_to_string(&spec).unwrap();
    let item = item.replace("OUTSIDE", &outside.display().to_string());
    let text = text.replace("files:\n", &format!("files:\n{item}"));
    std::fs::write(&spec, text).unwrap();
    let mut cmd = run::layerbuild(d.path());
    cmd.args(["build", "--arch", "x86_64", "--out", "dist", "--quiet"]);
    (run::run(cmd, Duration::from_secs(120)), d)
}

#[test]
fn spec_sources_outside_its_folder_and_hidden_dests_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, b"not for a layer\n").unwrap();
    let climb = format!(
        "{}{}",
        "../".repeat(12),
        secret.display().to_string().trim_start_matches('/')
    );
    let cases = [
        (
            "absolute",
            "  - src: /etc/passwd\n    dest: passwd\n".to_string(),
            "/etc/passwd",
        ),
        (
            "climbing",
            format!("  - src: {climb}\n    dest: secret\n"),
            "secret.txt",
        ),
        (
            "absolute folder",
            "  - src: OUTSIDE\n    dest: out\n".to_string(),
            "outside",
        ),
        (
            "escape in dest",
            "  - src: src/otel-instrument\n    dest: \"a\\e[2Kb\"\n".to_string(),
            "dest",
        ),
        (
            "newline in dest",
            "  - src: src/otel-instrument\n    dest: \"a\\nok b\"\n".to_string(),
            "dest",
        ),
    ];
    let mut failures = Vec::new();
    for (what, item, names) in cases {
        let (out, d) = build_with(&item, outside.path());
        let err = out.stderr.trim_end();
        let one_line = err.lines().count() == 1;
        let clean = !err.chars().any(|c| c.is_control() && c != '\n');
        let zips = d.path().join("dist").join(common::AMD64_ZIP).exists();
        if out.code() != Some(1) || !err.contains("layer.yaml") || !err.contains(names) || !one_line || !clean || zips {
            failures.push(format!(
                "{what}: exit {:?}, zip written {zips}, stderr {err:?}",
                out.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "not refused as they should be:\n{}",
        failures.join("\n")
    );
    // A source below the spec's folder, through `..` that stays inside, is fine.
    let (out, _d) = build_with("  - src: src/../src/otel-instrument\n    dest: again\n", outside.path());
    out.expect_code(0, "a source that stays inside");
}
