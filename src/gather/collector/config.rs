//! Checks a collector config.yaml: it parses, and every component a pipeline names is defined.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_norway::Value;

use crate::support::input;

pub(crate) fn check_file(path: &Path) -> Result<()> {
    let text = input::read_to_string(path, input::YAML_CAP, "collector config")
        .context("the collector config is missing or unreadable: fix collector.config.src in the spec")?;
    check(&text).with_context(|| format!("{}: invalid collector config", path.display()))
}

fn names(doc: &Value, kind: &str) -> Vec<String> {
    match doc.get(kind) {
        Some(Value::Mapping(m)) => m.keys().filter_map(|k| k.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

fn list<'a>(v: Option<&'a Value>, what: &str) -> Result<Vec<&'a str>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .with_context(|| format!("{what}: every item must be a component name"))
            })
            .collect(),
        Some(_) => bail!("{what} must be a list of component names"),
    }
}

pub(crate) fn check(text: &str) -> Result<()> {
    crate::spec::check_flow_depth(text).map_err(anyhow::Error::msg)?;
    let doc: Value = serde_norway::from_str(text)?;
    if !doc.is_mapping() {
        bail!("the top level must be a mapping with receivers, exporters and service");
    }
    let service = doc
        .get("service")
        .context("no `service` section: add service.pipelines")?;
    let pipelines = match service.get("pipelines") {
        Some(Value::Mapping(m)) if !m.is_empty() => m,
        _ => bail!("`service.pipelines` is missing or empty: the collector would do nothing"),
    };
    for (name, pipeline) in pipelines {
        let name = name.as_str().unwrap_or("?");
        let mut has_receiver = false;
        let mut has_exporter = false;
        for kind in ["receivers", "processors", "exporters"] {
            let used = list(pipeline.get(kind), &format!("service.pipelines.{name}.{kind}"))?;
            let defined = if kind == "processors" {
                names(&doc, kind)
            } else {
                [names(&doc, kind), names(&doc, "connectors")].concat()
            };
            for id in used {
                if !defined.iter().any(|d| d == id) {
                    bail!(
                        "pipeline `{name}` uses {} `{id}`, which is not defined under `{kind}`: define it or remove it from the pipeline",
                        &kind[..kind.len() - 1]
                    );
                }
                has_receiver |= kind == "receivers";
                has_exporter |= kind == "exporters";
            }
        }
        if !has_receiver || !has_exporter {
            bail!("pipeline `{name}` needs at least one receiver and one exporter");
        }
    }
    let defined = names(&doc, "extensions");
    for id in list(service.get("extensions"), "service.extensions")? {
        if !defined.iter().any(|d| d == id) {
            bail!("service uses extension `{id}`, which is not defined under `extensions`: define it or remove it");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: localhost:4317\nexporters:\n  awsxray: {}\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [awsxray]\n    metrics:\n      receivers: [otlp]\n      exporters: [debug]\n";

    #[test]
    fn default_shape_passes() {
        check(GOOD).unwrap();
    }

    #[test]
    fn undefined_exporter_is_named() {
        let bad = GOOD.replace("exporters: [debug]", "exporters: [logging]");
        let e = format!("{:#}", check(&bad).unwrap_err());
        assert!(e.contains("pipeline `metrics` uses exporter `logging`"), "{e}");
    }

    #[test]
    fn syntax_errors_and_empty_pipelines() {
        assert!(check("receivers: [\n").is_err());
        assert!(check("receivers: {}\nservice: {}\n").is_err());
        let e = format!(
            "{:#}",
            check(&GOOD.replace("  pipelines:", "  extensions: [sigv4auth]\n  pipelines:")).unwrap_err()
        );
        assert!(e.contains("extension `sigv4auth`"), "{e}");
    }
}
