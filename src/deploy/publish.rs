//! `layerbuild publish`: verified zips become layer versions in each region, never twice.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::aws::{self, Aws};
use super::published::{self, Failure, Published, Record};
use super::upload::{self, Grant, Local};
use super::{DeployError, PublishArgs};
use crate::manifest;
use crate::model::arch::Arch;
use crate::model::lambda::ZIPPED_DIRECT_BYTES;
use crate::support::usage::usage;
use crate::verify;

pub(crate) fn command(args: &PublishArgs) -> Result<ExitCode> {
    let (zips, out_dir) = inputs(args)?;
    verify::run(&zips, None).context("refusing to publish: a zip failed verification, nothing was uploaded")?;
    let layers = local_layers(args, &zips)?;
    if args.s3_bucket.is_none()
        && let Some(big) = layers.iter().find(|l| l.size > ZIPPED_DIRECT_BYTES)
    {
        return Err(DeployError::TooLargeForDirectUpload {
            zip: big.zip.display().to_string(),
            size: big.size,
            limit: ZIPPED_DIRECT_BYTES,
        }
        .into());
    }
    let grants = grants(args);
    let (records, failures) = aws::runtime()?.block_on(publish_all(args, &layers, &grants))?;
    let succeeded = records.len();
    let failed_names: Vec<String> = failures
        .iter()
        .map(|(f, _)| format!("{} ({})", f.region, f.arch))
        .collect();
    let mut doc = Published::new(records, failures.iter().map(|(f, _)| f.clone()).collect());
    let path = out_dir.join(published::FILE_NAME);
    if path.exists() {
        match published::read(&path) {
            Ok(previous) => doc.merge_previous(previous),
            Err(e) => eprintln!("layerbuild: warning: {e:#}: replacing it"),
        }
    }
    // With nothing published now or before there is nothing to keep.
    if !doc.layers.is_empty() || path.exists() {
        published::write(&path, &doc)?;
    }
    if args.json {
        print!("{}", published::to_json(&doc));
    } else {
        for r in &doc.layers {
            println!("{}", published::line(r));
        }
    }
    if succeeded == 0 && failures.len() == 1 {
        // Nothing else happened: the one failure is the whole story.
        return Err(failures.into_iter().next().map(|(_, e)| e).expect("one failure").into());
    }
    for (_, e) in &failures {
        eprintln!("layerbuild: {e}");
    }
    if !failures.is_empty() {
        return Err(DeployError::PartlyFailed {
            failed: failed_names.join(", "),
        }
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The zips to publish and the folder published.json goes in.
fn inputs(args: &PublishArgs) -> Result<(Vec<PathBuf>, PathBuf)> {
    if !args.zips.is_empty() {
        let dir = args.zips[0]
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        return Ok((args.zips.clone(), dir));
    }
    let dir = args.out.clone().unwrap_or_else(|| PathBuf::from("dist"));
    let mut zips: Vec<PathBuf> = fs_err::read_dir(&dir)
        .map_err(|e| usage(format!("nothing to publish: {e}: build first, or name the zips")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "zip"))
        .collect();
    zips.sort();
    if zips.is_empty() {
        bail!(
            "{}: no zips to publish: run `layerbuild build --out {}` first",
            dir.display(),
            dir.display()
        );
    }
    Ok((zips, dir))
}

/// Reads each zip's manifest and works out the layer name, runtimes and architecture.
fn local_layers(args: &PublishArgs, zips: &[PathBuf]) -> Result<Vec<Local>> {
    let mut layers: Vec<Local> = Vec::new();
    for zip in zips {
        let m = manifest::read(&manifest::manifest_path(zip))?;
        let arch = Arch::parse(&m.layer.arch).with_context(|| {
            format!(
                "{}: manifest names unknown architecture `{}`",
                zip.display(),
                m.layer.arch
            )
        })?;
        let stem = zip
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let layer_name = match &args.layer_name {
            Some(n) => n.replace("{arch}", arch.adot_name()),
            None => stem,
        };
        check_layer_name(&layer_name)?;
        if let Some(other) = layers.iter().find(|l| l.layer_name == layer_name) {
            return Err(usage(format!(
                "{} and {} would both be published as layer `{layer_name}`: put {{arch}} in --layer-name, or publish them one at a time",
                other.zip.display(),
                zip.display()
            )));
        }
        let description = args
            .description
            .clone()
            .unwrap_or_else(|| format!("{} {} for {}, built by layerbuild", m.layer.name, m.layer.version, arch));
        layers.push(Local {
            zip: zip.clone(),
            layer_name,
            arch,
            runtimes: m.layer.runtimes.clone(),
            code_sha256: m.zip.code_sha256.clone(),
            sha256: m.zip.sha256.clone(),
            size: m.zip.size,
            description,
            license_info: args.license_info.clone(),
        });
    }
    Ok(layers)
}

/// Lambda's rule for layer names: letters, digits, `-` and `_`, at most 64 characters.
fn check_layer_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(usage(format!(
            "`{name}` is not a valid layer name: use 1 to 64 letters, digits, - and _ (pass --layer-name)"
        )));
    }
    Ok(())
}

fn grants(args: &PublishArgs) -> Vec<Grant> {
    let mut v = Vec::new();
    if args.public {
        v.push(Grant::public());
    }
    v.extend(args.principal.iter().map(|p| Grant::principal(p)));
    v
}

type Outcome = (Vec<Record>, Vec<(Failure, DeployError)>);

/// Publishes every layer in every region; a region that fails does not stop the others.
async fn publish_all(args: &PublishArgs, layers: &[Local], grants: &[Grant]) -> Result<Outcome, DeployError> {
    let aws = Aws::load(std::time::Duration::from_secs(args.timeout)).await;
    let regions = aws.regions(&args.regions)?;
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for region in &regions {
        let lambda = aws.lambda(region);
        let s3 = args
            .s3_bucket
            .as_ref()
            .map(|b| (aws.s3(region), b.replace("{region}", region)));
        for layer in layers {
            let staged = s3.as_ref().filter(|_| layer.size > ZIPPED_DIRECT_BYTES);
            let step = upload::Step {
                lambda: &lambda,
                s3: staged.map(|(c, b)| (c, b.as_str())),
                region,
                force: args.force,
                grants,
            };
            match upload::publish_one(&step, layer).await {
                Ok(r) => records.push(r),
                // Credentials are not regional: every further request would fail the same way.
                Err(e @ (DeployError::NoCredentials { .. } | DeployError::BadCredentials { .. })) => return Err(e),
                Err(e) => failures.push((
                    Failure {
                        region: region.clone(),
                        arch: layer.arch.lambda_name().to_string(),
                        layer_name: layer.layer_name.clone(),
                        error: e.to_string(),
                    },
                    e,
                )),
            }
        }
    }
    Ok((records, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_follow_lambda_rules() {
        assert!(check_layer_name("aws-otel-python-arm64-ver-1-20-0").is_ok());
        assert!(check_layer_name("a.b").is_err());
        assert!(check_layer_name("").is_err());
        assert!(check_layer_name(&"x".repeat(65)).is_err());
    }
}
