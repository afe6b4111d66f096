//! `layerbuild plan`: print the steps each zip's build would take, starting no process and
//! writing nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use super::input::InputArgs;
use crate::gather::collector;
use crate::manifest::format_mode;
use crate::model::entry::Entry;
use crate::model::runtime::Runtime;
use crate::plan::{LayerPlan, Plan, Step};
use crate::python::compile::BytecodePlan;
use crate::python::fetch;
use crate::python::select::TreePlan;
use crate::python::sizes::{self, TreeSizes};
use crate::support::text::show;

#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &PlanArgs) -> Result<ExitCode> {
    let plan = Plan::new(&args.input.options(PathBuf::from("dist"))?)?;
    let zips: Vec<Value> = plan
        .layers
        .iter()
        .map(|layer| describe(&plan, layer))
        .collect::<Result<_>>()?;
    if args.json {
        println!("{}", crate::support::text::json_pretty(&json!({ "zips": zips }))?);
    } else {
        for zip in &zips {
            print_layer(zip);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One zip's steps as data; the text form is printed from it.
fn describe(plan: &Plan, layer: &LayerPlan) -> Result<Value> {
    let mut notes = Vec::new();
    let mut steps = Vec::new();
    let bytecode_runtimes: Vec<Runtime> = layer
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Bytecode(b) => Some(b.runtimes.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let mut sizes = Value::Null;
    for step in &layer.steps {
        steps.push(match step {
            Step::Files(entries) => {
                json!({"step": "files", "entries": entries.iter().map(entry).collect::<Result<Vec<_>>>()?})
            }
            Step::CheckConfig(path) => json!({"step": "check_config", "path": path}),
            Step::Collector { source, dest } => json!({
                "step": "collector",
                "path": dest,
                "mode": format_mode(crate::check::rules::MODE_EXEC),
                "source": collector::describe(source, &plan.spec.dir),
            }),
            Step::Python(tree) => {
                notes.extend(tree.notes.iter().cloned());
                sizes = runtime_sizes(&sizes::from_cache(tree, &bytecode_runtimes, &plan.cache));
                python(plan, tree)
            }
            Step::Bytecode(b) => bytecode(b),
        });
    }
    Ok(json!({
        "arch": layer.arch.lambda_name(),
        "zip": layer.zip_name,
        "steps": steps,
        "python_sizes": sizes,
        "notes": notes,
    }))
}

fn entry(e: &Entry) -> Result<Value> {
    Ok(json!({"path": e.path, "mode": format_mode(e.mode), "size": e.size()?, "source": e.origin}))
}

fn python(plan: &Plan, tree: &TreePlan) -> Value {
    let wheels: Vec<Value> = tree
        .wants
        .iter()
        .map(|w| {
            let runtimes: Vec<String> = tree
                .picks
                .iter()
                .filter(|(_, ps)| ps.iter().any(|p| p.sha256 == w.sha256))
                .map(|(rt, _)| rt.to_string())
                .collect();
            let cached = fetch::path(&plan.cache, &w.sha256, &w.file).is_file();
            json!({"name": w.package, "version": w.version, "file": w.file, "sha256": w.sha256, "runtimes": runtimes, "cached": cached})
        })
        .collect();
    let from = match (&tree.sources.wheelhouse, tree.sources.offline) {
        (Some(dir), _) => format!("the wheelhouse {}", dir.display()),
        (None, true) => "the cache only (--offline)".to_string(),
        (None, false) => "the cache, else pip download".to_string(),
    };
    json!({
        "step": "python",
        "dest": tree.dest,
        "runtimes": tree.runtimes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "from": from,
        "wheels": wheels,
    })
}

/// The Python tree's unpacked bytes: shared, and what each runtime adds.
fn runtime_sizes(s: &TreeSizes) -> Value {
    let runtimes: serde_json::Map<String, Value> = s
        .runtimes
        .iter()
        .map(|(rt, r)| {
            let v = json!({"own_wheels": r.own_wheels, "bytecode_estimate": r.bytecode, "gets_bytecode": r.gets_bytecode, "added": r.own_wheels + r.bytecode});
            (rt.to_string(), v)
        })
        .collect();
    json!({"shared": s.shared, "runtimes": runtimes, "total": s.total(), "uncached_wheels": s.uncached})
}

fn bytecode(b: &BytecodePlan) -> Value {
    let interpreters: serde_json::Map<String, Value> = b
        .interpreters
        .iter()
        .map(|(rt, s)| {
            let how = match (&s.flag, &s.spec) {
                (Some(p), _) => format!("--python {}", p.display()),
                (None, Some(p)) => format!("python.interpreters {}", p.display()),
                (None, None) => "found on the host at build time".to_string(),
            };
            (rt.to_string(), Value::String(how))
        })
        .collect();
    json!({
        "step": "bytecode",
        "runtimes": b.runtimes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "required": b.always,
        "interpreters": interpreters,
    })
}

fn print_layer(zip: &Value) {
    println!("{} ({})", text(&zip["zip"]), text(&zip["arch"]));
    for step in zip["steps"].as_array().into_iter().flatten() {
        match text(&step["step"]).as_str() {
            "files" => {
                println!("  files:");
                for e in step["entries"].as_array().into_iter().flatten() {
                    print_entry(e);
                }
            }
            "check_config" => println!("  check the collector config {}", text(&step["path"])),
            "collector" => println!(
                "  collector: {} {}  <- {}",
                text(&step["mode"]),
                text(&step["path"]),
                text(&step["source"])
            ),
            "python" => print_python(step),
            _ => print_bytecode(step),
        }
    }
    print_sizes(&zip["python_sizes"]);
    for n in zip["notes"].as_array().into_iter().flatten() {
        println!("  note: {}", text(n));
    }
}

fn mb(v: &Value) -> String {
    format!("{:.1} MB", v.as_u64().unwrap_or(0) as f64 / 1e6)
}

fn print_sizes(s: &Value) {
    let Some(runtimes) = s["runtimes"].as_object() else {
        return;
    };
    let uncached = s["uncached_wheels"].as_array().map(Vec::len).unwrap_or(0);
    let known = if uncached == 0 {
        String::new()
    } else {
        format!(", without {uncached} wheels not cached yet (their size is known once fetched)")
    };
    println!("  python size, unpacked{known}:");
    println!("    shared by every runtime: {}", mb(&s["shared"]));
    for (rt, r) in runtimes {
        let bytecode = if r["gets_bytecode"] == true {
            format!("{} bytecode (estimated)", mb(&r["bytecode_estimate"]))
        } else {
            "no bytecode".to_string()
        };
        println!(
            "    {rt} adds {}: {} of its own wheels, {bytecode}",
            mb(&r["added"]),
            mb(&r["own_wheels"])
        );
    }
    println!("    python tree in all: {}", mb(&s["total"]));
}

fn print_entry(e: &Value) {
    let size = e["size"].as_u64().map(|s| s.to_string()).unwrap_or_default();
    println!(
        "    {} {size:>10} {}  <- {}",
        text(&e["mode"]),
        text(&e["path"]),
        text(&e["source"])
    );
}

fn print_python(step: &Value) {
    let wheels = step["wheels"].as_array().map(Vec::as_slice).unwrap_or_default();
    let missing = wheels.iter().filter(|w| w["cached"] != true).count();
    println!(
        "  python: {} wheels into {}/ for {}, {missing} not cached yet, from {}",
        wheels.len(),
        text(&step["dest"]),
        list(&step["runtimes"]),
        text(&step["from"])
    );
    for w in wheels {
        let cached = if w["cached"] == true { "cached" } else { "to fetch" };
        println!("    {}  ({}; {cached})", text(&w["file"]), list(&w["runtimes"]));
    }
}

fn print_bytecode(step: &Value) {
    let when = if step["required"] == true {
        "every runtime must have an interpreter"
    } else {
        "runtimes without an interpreter get none"
    };
    println!("  bytecode: checked-hash .pyc for {} ({when})", list(&step["runtimes"]));
    for (rt, how) in step["interpreters"].as_object().into_iter().flatten() {
        println!("    {rt}: {}", text(how));
    }
}

/// A value of the plan for the terminal: paths and names come from specs, locks and wheels,
/// so they are escaped and cut.
fn text(v: &Value) -> String {
    show(v.as_str().unwrap_or_default()).to_string()
}

fn list(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    items.join(", ")
}
