//! `published.json`: which layer version serves each region and architecture, written atomically.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::support::text::show;

pub(crate) const FILE_NAME: &str = "published.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Published {
    pub schema_version: u32,
    pub layers: Vec<Record>,
    /// Regions and architectures whose publish failed in the run that wrote the file.
    #[serde(default)]
    pub failed: Vec<Failure>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub region: String,
    /// Lambda's name: `x86_64` or `arm64`.
    pub arch: String,
    pub layer_name: String,
    pub version: i64,
    pub layer_version_arn: String,
    pub code_sha256: String,
    pub runtimes: Vec<String>,
    pub zip: String,
    /// `published` (a new version) or `reused` (the latest version already had this zip).
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Failure {
    pub region: String,
    pub arch: String,
    pub layer_name: String,
    pub error: String,
}

impl Published {
    /// Records in a stable order: by region, then architecture, then name.
    pub fn new(mut layers: Vec<Record>, failed: Vec<Failure>) -> Published {
        sort(&mut layers);
        Published {
            schema_version: 1,
            layers,
            failed,
        }
    }

    /// Keeps the records of `previous` for these layer names in regions this run did not touch,
    /// so that `--region` on a rerun adds to the file instead of shrinking it.
    pub fn merge_previous(&mut self, previous: Published) {
        let touched = |r: &Record| {
            self.layers
                .iter()
                .any(|n| n.region == r.region && n.layer_name == r.layer_name)
                || self
                    .failed
                    .iter()
                    .any(|f| f.region == r.region && f.layer_name == r.layer_name)
        };
        let names: Vec<&str> = self
            .layers
            .iter()
            .map(|r| r.layer_name.as_str())
            .chain(self.failed.iter().map(|f| f.layer_name.as_str()))
            .collect();
        let kept: Vec<Record> = previous
            .layers
            .into_iter()
            .filter(|r| names.contains(&r.layer_name.as_str()) && !touched(r))
            .collect();
        self.layers.extend(kept);
        sort(&mut self.layers);
    }

    /// The record serving `region` and `arch`, if any.
    pub fn find(&self, region: &str, arch: &str) -> Vec<&Record> {
        self.layers
            .iter()
            .filter(|r| r.region == region && r.arch == arch)
            .collect()
    }
}

fn sort(v: &mut [Record]) {
    v.sort_by(|a, b| (&a.region, &a.arch, &a.layer_name).cmp(&(&b.region, &b.arch, &b.layer_name)));
}

/// A published.json lists a few regions and architectures: a megabyte is far more.
const PUBLISHED_CAP: u64 = 1 << 20;

pub(crate) fn read(path: &Path) -> Result<Published> {
    let text = crate::support::input::read_to_string(path, PUBLISHED_CAP, "published.json")?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a published.json written by `layerbuild publish`: publish again to rewrite it",
            path.display()
        )
    })
}

/// Writes through a temp file in the same folder, so readers never see half a file.
pub(crate) fn write(path: &Path, p: &Published) -> Result<()> {
    crate::support::fs::write_atomic(path, to_json(p).as_bytes())
}

pub(crate) fn to_json(p: &Published) -> String {
    let mut s = serde_json::to_string_pretty(p).expect("published.json serializes");
    s.push('\n');
    s
}

/// One line per region and architecture, as people read them. The ARN is AWS's answer, shown
/// escaped: a line break in it cannot forge another line.
pub(crate) fn line(r: &Record) -> String {
    let how = if r.status == "reused" {
        "reused (the latest version already has this CodeSha256)"
    } else {
        "published"
    };
    format!("{} {} {} {how}", show(&r.region), r.arch, show(&r.layer_version_arn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(region: &str, arch: &str, name: &str, version: i64) -> Record {
        Record {
            region: region.into(),
            arch: arch.into(),
            layer_name: name.into(),
            version,
            layer_version_arn: format!("arn:aws:lambda:{region}:123456789012:layer:{name}:{version}"),
            code_sha256: "x".into(),
            runtimes: vec!["python3.9".into()],
            zip: format!("{name}.zip"),
            status: "published".into(),
        }
    }

    #[test]
    fn merge_keeps_untouched_regions_of_the_same_layers_only() {
        let previous = Published::new(
            vec![
                rec("us-east-1", "arm64", "l-arm64", 1),
                rec("eu-west-1", "arm64", "l-arm64", 4),
                rec("eu-west-1", "arm64", "old-arm64", 9),
            ],
            vec![],
        );
        let mut now = Published::new(vec![rec("eu-west-1", "arm64", "l-arm64", 5)], vec![]);
        now.merge_previous(previous);
        let got: Vec<(&str, i64)> = now.layers.iter().map(|r| (r.region.as_str(), r.version)).collect();
        assert_eq!(got, [("eu-west-1", 5), ("us-east-1", 1)]);
    }

    #[test]
    fn written_file_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let p = Published::new(
            vec![rec("us-east-1", "x86_64", "l-amd64", 2)],
            vec![Failure {
                region: "eu-west-1".into(),
                arch: "x86_64".into(),
                layer_name: "l-amd64".into(),
                error: "boom".into(),
            }],
        );
        let path = d.path().join(FILE_NAME);
        write(&path, &p).unwrap();
        assert_eq!(read(&path).unwrap(), p);
        assert_eq!(p.find("us-east-1", "x86_64").len(), 1);
        assert!(p.find("us-east-1", "arm64").is_empty());
        assert!(line(&p.layers[0]).ends_with(":2 published"));
    }
}
