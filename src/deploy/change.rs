//! What attach changes on a function, worked out without AWS: the layer list, the wrapper
//! variable, the compatibility checks, and the change as people read it.

use std::collections::BTreeMap;

use super::DeployError;
use crate::support::text::show;

pub(crate) const WRAPPER_VAR: &str = "AWS_LAMBDA_EXEC_WRAPPER";
pub(crate) const WRAPPER: &str = "/opt/otel-instrument";
/// Lambda allows at most five layers on a function.
pub(crate) const MAX_LAYERS: usize = 5;

/// `arn:aws:lambda:us-east-1:123456789012:layer:NAME:VERSION`, in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub name: String,
    pub version: i64,
}

impl LayerArn {
    pub fn parse(s: &str) -> Option<LayerArn> {
        let p: Vec<&str> = s.split(':').collect();
        if p.len() != 8 || p[0] != "arn" || p[2] != "lambda" || p[5] != "layer" || p[6].is_empty() {
            return None;
        }
        Some(LayerArn {
            partition: p[1].to_string(),
            region: p[3].to_string(),
            account: p[4].to_string(),
            name: p[6].to_string(),
            version: p[7].parse().ok()?,
        })
    }

    /// The layer's ARN without the version, which GetLayerVersion takes as the layer name.
    pub fn unversioned(&self) -> String {
        format!(
            "arn:{}:lambda:{}:{}:layer:{}",
            self.partition, self.region, self.account, self.name
        )
    }

    /// True for another version of the same layer. ADOT's names carry the release
    /// (`aws-otel-python-arm64-ver-1-20-0`), so a name differing only after `-ver-` counts too.
    fn same_layer(&self, other: &LayerArn) -> bool {
        let family = |n: &str| n.rsplit_once("-ver-").map(|(f, _)| f.to_string());
        let place = (&self.partition, &self.region, &self.account) == (&other.partition, &other.region, &other.account);
        place && (self.name == other.name || family(&self.name).is_some_and(|f| Some(f) == family(&other.name)))
    }
}

/// The function as attach needs it.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub name: String,
    pub region: String,
    pub arch: String,
    pub runtime: Option<String>,
    pub layers: Vec<String>,
    pub env: BTreeMap<String, String>,
}

/// The layer version as attach needs it: what AWS says it is compatible with.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub arn: String,
    pub arches: Vec<String>,
    pub runtimes: Vec<String>,
}

/// Refuses a layer built for another architecture or runtime, naming both sides.
pub(crate) fn check_compatible(f: &Function, l: &Layer) -> Result<(), DeployError> {
    if !l.arches.is_empty() && !l.arches.contains(&f.arch) {
        return Err(DeployError::ArchMismatch {
            function: show(&f.name).to_string(),
            function_arch: show(&f.arch).to_string(),
            layer: show(&l.arn).to_string(),
            layer_arches: show(&l.arches.join(", ")).to_string(),
        });
    }
    if let Some(rt) = &f.runtime
        && !l.runtimes.is_empty()
        && !l.runtimes.contains(rt)
    {
        return Err(DeployError::RuntimeMismatch {
            function: show(&f.name).to_string(),
            runtime: show(rt).to_string(),
            layer: show(&l.arn).to_string(),
            layer_runtimes: show(&l.runtimes.join(", ")).to_string(),
        });
    }
    Ok(())
}

/// The function's layers and variables before and after.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub layers_before: Vec<String>,
    pub layers_after: Vec<String>,
    pub env_after: BTreeMap<String, String>,
    /// The wrapper variable's old value, when it changes (`None` inside: it was not set).
    pub wrapper_was: Option<Option<String>>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.layers_before == self.layers_after && self.wrapper_was.is_none()
    }
}

/// Puts `new` in place of any other version of the same layer (else last), keeps every other
/// layer in order, and sets the wrapper variable, keeping every other variable.
pub(crate) fn plan(f: &Function, new: &LayerArn, new_arn: &str) -> Result<Change, String> {
    let mut after: Vec<String> = Vec::new();
    let mut placed = false;
    for old in &f.layers {
        let same = LayerArn::parse(old).is_some_and(|o| o.same_layer(new));
        if !same {
            after.push(old.clone());
        } else if !placed {
            after.push(new_arn.to_string());
            placed = true;
        }
    }
    if !placed {
        after.push(new_arn.to_string());
    }
    if after.len() > MAX_LAYERS {
        return Err(format!(
            "function `{}` would have {} layers and Lambda allows {MAX_LAYERS}: remove one of its layers first",
            show(&f.name),
            after.len()
        ));
    }
    let mut env_after = f.env.clone();
    let old = env_after.insert(WRAPPER_VAR.to_string(), WRAPPER.to_string());
    let wrapper_was = (old.as_deref() != Some(WRAPPER)).then_some(old);
    Ok(Change {
        layers_before: f.layers.clone(),
        layers_after: after,
        env_after,
        wrapper_was,
    })
}

/// The change as a short report: layers marked kept, removed (-) or added (+), and the
/// variables by name only, since their values may be secrets. Names and ARNs come from AWS (or
/// whoever answers at its endpoint): each is shown escaped, so none can forge a line.
pub(crate) fn render(f: &Function, c: &Change) -> String {
    let mut s = format!(
        "function {} ({}, {}, {})\nlayers:\n",
        show(&f.name),
        show(&f.region),
        show(&f.arch),
        show(f.runtime.as_deref().unwrap_or("no runtime"))
    );
    for old in c.layers_before.iter().filter(|l| !c.layers_after.contains(l)) {
        s.push_str(&format!("  - {}\n", show(old)));
    }
    for l in &c.layers_after {
        let mark = if c.layers_before.contains(l) { ' ' } else { '+' };
        s.push_str(&format!("  {mark} {}\n", show(l)));
    }
    s.push_str("environment:\n");
    match &c.wrapper_was {
        None => s.push_str(&format!("    {WRAPPER_VAR}={WRAPPER} (already set)\n")),
        Some(None) => s.push_str(&format!("  + {WRAPPER_VAR}={WRAPPER}\n")),
        Some(Some(_)) => s.push_str(&format!("  ~ {WRAPPER_VAR}={WRAPPER} (was set to another value)\n")),
    }
    let others: Vec<String> = f
        .env
        .keys()
        .filter(|k| *k != WRAPPER_VAR)
        .map(|k| show(k).to_string())
        .collect();
    if !others.is_empty() {
        s.push_str(&format!("    kept: {}\n", others.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACC: &str = "arn:aws:lambda:us-east-1:123456789012:layer";

    fn function(layers: &[&str], env: &[(&str, &str)]) -> Function {
        Function {
            name: "fn".into(),
            region: "us-east-1".into(),
            arch: "arm64".into(),
            runtime: Some("python3.9".into()),
            layers: layers.iter().map(|l| format!("{ACC}:{l}")).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn arn(s: &str) -> (LayerArn, String) {
        let full = format!("{ACC}:{s}");
        (LayerArn::parse(&full).unwrap(), full)
    }

    fn names(v: &[String]) -> Vec<&str> {
        v.iter()
            .map(|l| l.strip_prefix(ACC).unwrap().trim_start_matches(':'))
            .collect()
    }

    #[test]
    fn parses_layer_version_arns_only() {
        let (a, _) = arn("otel:7");
        assert_eq!(
            (a.name.as_str(), a.version, a.region.as_str()),
            ("otel", 7, "us-east-1")
        );
        assert_eq!(a.unversioned(), format!("{ACC}:otel"));
        assert!(LayerArn::parse(&format!("{ACC}:otel")).is_none());
        assert!(LayerArn::parse("arn:aws:lambda:us-east-1:1:function:f:1").is_none());
        assert!(LayerArn::parse(&format!("{ACC}:otel:x")).is_none());
    }

    #[test]
    fn older_version_is_replaced_in_place_and_others_keep_their_order() {
        let f = function(&["a:1", "otel:2", "b:4"], &[]);
        let (new, full) = arn("otel:3");
        let c = plan(&f, &new, &full).unwrap();
        assert_eq!(names(&c.layers_after), ["a:1", "otel:3", "b:4"]);
    }

    #[test]
    fn new_layer_goes_last_and_duplicates_go() {
        let f = function(&["a:1", "b:4"], &[]);
        let (new, full) = arn("otel:1");
        assert_eq!(
            names(&plan(&f, &new, &full).unwrap().layers_after),
            ["a:1", "b:4", "otel:1"]
        );
        let f = function(&["otel:1", "a:1", "otel:2"], &[]);
        let (new, full) = arn("otel:3");
        assert_eq!(names(&plan(&f, &new, &full).unwrap().layers_after), ["otel:3", "a:1"]);
    }

    #[test]
    fn adot_release_names_count_as_one_layer_but_other_arches_do_not() {
        let f = function(&["aws-otel-python-arm64-ver-1-19-0:1", "x-ver-1:1"], &[]);
        let (new, full) = arn("aws-otel-python-arm64-ver-1-20-0:1");
        let after = plan(&f, &new, &full).unwrap().layers_after;
        assert_eq!(names(&after), ["aws-otel-python-arm64-ver-1-20-0:1", "x-ver-1:1"]);
        let f = function(&["aws-otel-python-amd64-ver-1-20-0:1"], &[]);
        assert_eq!(plan(&f, &new, &full).unwrap().layers_after.len(), 2);
    }

    #[test]
    fn another_accounts_layer_of_the_same_name_stays() {
        let mut f = function(&["a:1"], &[]);
        f.layers
            .push("arn:aws:lambda:us-east-1:999999999999:layer:otel:9".into());
        let (new, full) = arn("otel:3");
        assert_eq!(plan(&f, &new, &full).unwrap().layers_after.len(), 3);
    }

    #[test]
    fn more_than_five_layers_is_refused() {
        let f = function(&["a:1", "b:1", "c:1", "d:1", "e:1"], &[]);
        let (new, full) = arn("otel:1");
        assert!(plan(&f, &new, &full).unwrap_err().contains("would have 6 layers"));
        let f = function(&["a:1", "b:1", "c:1", "d:1", "otel:1"], &[]);
        assert!(plan(&f, &new, &full).is_ok());
    }

    #[test]
    fn wrapper_is_set_and_every_other_variable_kept() {
        let f = function(&[], &[("A", "1"), ("B", "2"), (WRAPPER_VAR, "/opt/other")]);
        let (new, full) = arn("otel:1");
        let c = plan(&f, &new, &full).unwrap();
        assert_eq!(c.env_after.len(), 3);
        assert_eq!(c.env_after["A"], "1");
        assert_eq!(c.env_after[WRAPPER_VAR], WRAPPER);
        assert_eq!(c.wrapper_was, Some(Some("/opt/other".into())));
        let text = render(&f, &c);
        assert!(text.contains("kept: A, B") && !text.contains("=1"), "{text}");
        // Variables by name only: the wrapper's old value may be a secret too.
        assert!(!text.contains("/opt/other"), "{text}");
        assert!(text.contains("(was set to another value)"), "{text}");
    }

    #[test]
    fn attaching_what_is_there_changes_nothing() {
        let f = function(&["otel:3"], &[(WRAPPER_VAR, WRAPPER)]);
        let (new, full) = arn("otel:3");
        assert!(plan(&f, &new, &full).unwrap().is_empty());
    }

    #[test]
    fn mismatches_name_both_sides() {
        let f = function(&[], &[]);
        let l = Layer {
            arn: "L".into(),
            arches: vec!["x86_64".into()],
            runtimes: vec![],
        };
        let e = check_compatible(&f, &l).unwrap_err().to_string();
        assert!(e.contains("is arm64") && e.contains("for x86_64"), "{e}");
        let l = Layer {
            arn: "L".into(),
            arches: vec!["arm64".into()],
            runtimes: vec!["python3.8".into()],
        };
        let e = check_compatible(&f, &l).unwrap_err().to_string();
        assert!(e.contains("runs python3.9") && e.contains("supports python3.8"), "{e}");
    }
}
