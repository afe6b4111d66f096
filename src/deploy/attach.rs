//! `layerbuild attach`: put a layer version on a function, replacing its older version and
//! keeping every other layer and variable.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use aws_sdk_lambda::types::{Environment, PackageType};

use super::aws::{self, Aws, classify};
use super::change::{self, Function, Layer, LayerArn};
use super::published;
use super::{AttachArgs, DeployError};
use crate::support::text::show;
use crate::support::usage::usage;

pub(crate) fn command(args: &AttachArgs) -> Result<ExitCode> {
    aws::runtime()?.block_on(run(args))
}

async fn run(args: &AttachArgs) -> Result<ExitCode> {
    let aws = Aws::load(std::time::Duration::from_secs(args.timeout)).await;
    let region = aws.regions(args.region.as_slice())?.remove(0);
    let lambda = aws.lambda(&region);
    let what = format!("attach to function `{}` in {region}", args.function);
    let (function, revision) = read_function(&lambda, &args.function, &region, &what).await?;
    let arn = match (&args.layer, &args.from) {
        (Some(arn), _) => arn.clone(),
        (None, Some(path)) => pick_from(path, &function)?,
        (None, None) => bail!("name the layer: --layer ARN or --from published.json"),
    };
    let parsed = LayerArn::parse(&arn).ok_or_else(|| {
        anyhow!(
            "`{}` is not a layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION)",
            show(&arn)
        )
    })?;
    if parsed.region != region {
        return Err(usage(format!(
            "layer {} is in {} but function `{}` is in {region}: layers are regional, publish it in {region}",
            show(&arn),
            show(&parsed.region),
            show(&function.name)
        )));
    }
    let layer = read_layer(&lambda, &parsed, &arn, &what).await?;
    change::check_compatible(&function, &layer)?;
    let change = change::plan(&function, &parsed, &arn).map_err(|e| anyhow!(e))?;
    print!("{}", change::render(&function, &change));
    if change.is_empty() {
        println!("nothing to change: {} and the wrapper are already in place", show(&arn));
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        println!("dry run: function `{}` was not changed", show(&function.name));
        return Ok(ExitCode::SUCCESS);
    }
    let env = change.wrapper_was.is_some().then(|| {
        Environment::builder()
            .set_variables(Some(change.env_after.clone().into_iter().collect()))
            .build()
    });
    lambda
        .update_function_configuration()
        .function_name(&args.function)
        .set_layers(Some(change.layers_after.clone()))
        .set_environment(env)
        // Fails instead of overwriting when someone changed the function since it was read.
        .set_revision_id(revision)
        .send()
        .await
        .map_err(|e| classify(&what, "lambda:UpdateFunctionConfiguration", e))?;
    println!("attached {} to function `{}`", show(&arn), show(&function.name));
    Ok(ExitCode::SUCCESS)
}

async fn read_function(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    region: &str,
    what: &str,
) -> Result<(Function, Option<String>)> {
    let c = lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .map_err(|e| classify(what, "lambda:GetFunctionConfiguration", e))?;
    if c.package_type() == Some(&PackageType::Image) {
        bail!(
            "function `{name}` is a container image: Lambda puts no layers on those; add the layer's files to the image"
        );
    }
    let env = c.environment();
    if let Some(err) = env.and_then(|e| e.error()) {
        // The variables could not be read back: writing them would erase them.
        bail!(
            "{what}: the function's variables cannot be read ({}: {}): fix that first, attaching would erase them",
            show(err.error_code().unwrap_or("error")),
            show(err.message().unwrap_or(""))
        );
    }
    let vars: BTreeMap<String, String> = env
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let function = Function {
        name: c.function_name().unwrap_or(name).to_string(),
        region: region.to_string(),
        arch: c.architectures().first().map_or("x86_64", |a| a.as_str()).to_string(),
        runtime: c.runtime().map(|r| r.as_str().to_string()),
        layers: c.layers().iter().filter_map(|l| l.arn().map(str::to_string)).collect(),
        env: vars,
    };
    Ok((function, c.revision_id().map(str::to_string)))
}

async fn read_layer(lambda: &aws_sdk_lambda::Client, parsed: &LayerArn, arn: &str, what: &str) -> Result<Layer> {
    let got = lambda
        .get_layer_version()
        .layer_name(parsed.unversioned())
        .version_number(parsed.version)
        .send()
        .await
        .map_err(|e| classify(what, "lambda:GetLayerVersion", e))?;
    Ok(Layer {
        arn: arn.to_string(),
        arches: got
            .compatible_architectures()
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
        runtimes: got
            .compatible_runtimes()
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
    })
}

/// The layer version published.json names for the function's region and architecture.
fn pick_from(path: &Path, f: &Function) -> Result<String> {
    let doc = published::read(path)?;
    let found = doc.find(&f.region, &f.arch);
    match found.as_slice() {
        [one] => Ok(one.layer_version_arn.clone()),
        [] => {
            let have: Vec<String> = doc
                .layers
                .iter()
                .map(|r| format!("{} {}", show(&r.region), show(&r.arch)))
                .collect();
            Err(DeployError::NotPublishedFor {
                path: path.display().to_string(),
                function: show(&f.name).to_string(),
                region: show(&f.region).to_string(),
                arch: show(&f.arch).to_string(),
                have: if have.is_empty() {
                    "nothing".into()
                } else {
                    have.join(", ")
                },
            }
            .into())
        }
        many => bail!(
            "{}: {} layers serve {} {}: pass --layer with the one you want",
            path.display(),
            many.len(),
            show(&f.region),
            show(&f.arch)
        ),
    }
}
