//! One layer in one region: reuse the latest version when it holds this zip, else upload
//! (directly or through S3), check AWS's CodeSha256, then grant access.

use std::path::PathBuf;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, LayerVersionContentInput, Runtime};
use aws_sdk_s3::primitives::ByteStream;

use super::DeployError;
use super::aws::{classify, code};
use super::published::Record;
use crate::model::arch::Arch;
use crate::support::text::show;

/// A verified zip and what its manifest says about it.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    pub zip: PathBuf,
    pub layer_name: String,
    pub arch: Arch,
    pub runtimes: Vec<String>,
    pub code_sha256: String,
    pub sha256: String,
    pub size: u64,
    pub description: String,
    pub license_info: Option<String>,
}

/// Who may use the layer version: AddLayerVersionPermission's principal and organization.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// Fixed per principal, so that granting again finds the statement already there.
    statement_id: String,
    principal: String,
    organization: Option<String>,
}

impl Grant {
    pub fn public() -> Grant {
        Grant {
            statement_id: "layerbuild-public".into(),
            principal: "*".into(),
            organization: None,
        }
    }

    /// An account id, or an organization id (`o-...`): everyone in that organization.
    pub fn principal(p: &str) -> Grant {
        if p.starts_with("o-") {
            Grant {
                statement_id: format!("layerbuild-{p}"),
                principal: "*".into(),
                organization: Some(p.to_string()),
            }
        } else {
            Grant {
                statement_id: format!("layerbuild-account-{p}"),
                principal: p.to_string(),
                organization: None,
            }
        }
    }
}

/// Where and how one layer is published.
pub(crate) struct Step<'a> {
    pub lambda: &'a aws_sdk_lambda::Client,
    /// S3 client and bucket, when this zip goes through S3.
    pub s3: Option<(&'a aws_sdk_s3::Client, &'a str)>,
    pub region: &'a str,
    pub force: bool,
    pub grants: &'a [Grant],
}

/// What AWS holds as the newest version of a layer name.
#[derive(Debug)]
struct Existing {
    version: i64,
    arn: String,
    code_sha256: String,
    runtimes: Vec<String>,
    arches: Vec<String>,
}

pub(crate) async fn publish_one(step: &Step<'_>, layer: &Local) -> Result<Record, DeployError> {
    let what = format!("publish {} in {}", layer.layer_name, step.region);
    let latest = latest_version(step.lambda, &layer.layer_name, &what).await?;
    let reusable = latest.filter(|e| !step.force && same_layer(e, layer));
    let (version, arn, status) = match reusable {
        Some(e) => (e.version, e.arn, "reused"),
        None => {
            let (version, arn) = upload(step, layer, &what).await?;
            (version, arn, "published")
        }
    };
    if !step.grants.is_empty() {
        let have = statement_ids(step.lambda, &layer.layer_name, version, &what).await?;
        for g in step.grants.iter().filter(|g| !have.contains(&g.statement_id)) {
            grant(step.lambda, &layer.layer_name, version, g, &what).await?;
        }
    }
    Ok(Record {
        region: step.region.to_string(),
        arch: layer.arch.lambda_name().to_string(),
        layer_name: layer.layer_name.clone(),
        version,
        layer_version_arn: arn,
        code_sha256: layer.code_sha256.clone(),
        runtimes: layer.runtimes.clone(),
        zip: layer
            .zip
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        status: status.to_string(),
    })
}

/// True when the existing version holds this zip for the same runtimes and architecture.
fn same_layer(e: &Existing, layer: &Local) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    e.code_sha256 == layer.code_sha256
        && sorted(&e.runtimes) == sorted(&layer.runtimes)
        && sorted(&e.arches) == [layer.arch.lambda_name().to_string()]
}

async fn latest_version(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    what: &str,
) -> Result<Option<Existing>, DeployError> {
    let listed = match lambda.list_layer_versions().layer_name(name).send().await {
        Ok(out) => out,
        Err(e) if code(&e) == Some("ResourceNotFoundException") => return Ok(None),
        Err(e) => return Err(classify(what, "lambda:ListLayerVersions", e)),
    };
    // The list comes newest first, so the newest version is on the first page.
    let Some(newest) = listed.layer_versions().iter().map(|v| v.version()).max() else {
        return Ok(None);
    };
    let got = lambda
        .get_layer_version()
        .layer_name(name)
        .version_number(newest)
        .send()
        .await
        .map_err(|e| classify(what, "lambda:GetLayerVersion", e))?;
    Ok(Some(Existing {
        version: got.version(),
        arn: got.layer_version_arn().unwrap_or_default().to_string(),
        code_sha256: got
            .content()
            .and_then(|c| c.code_sha256())
            .unwrap_or_default()
            .to_string(),
        runtimes: got
            .compatible_runtimes()
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        arches: got
            .compatible_architectures()
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
    }))
}

/// Publishes a new version and checks that AWS hashed the same bytes the manifest did.
async fn upload(step: &Step<'_>, layer: &Local, what: &str) -> Result<(i64, String), DeployError> {
    let content = match step.s3 {
        Some((s3, bucket)) => stage(s3, bucket, layer, what).await?,
        None => {
            let bytes = fs_err::read(&layer.zip).map_err(|e| DeployError::Sdk {
                what: what.to_string(),
                detail: e.to_string(),
            })?;
            LayerVersionContentInput::builder().zip_file(Blob::new(bytes)).build()
        }
    };
    let out = step
        .lambda
        .publish_layer_version()
        .layer_name(&layer.layer_name)
        .description(&layer.description)
        .set_license_info(layer.license_info.clone())
        .content(content)
        .compatible_architectures(Architecture::from(layer.arch.lambda_name()))
        .set_compatible_runtimes(Some(layer.runtimes.iter().map(|r| Runtime::from(r.as_str())).collect()))
        .send()
        .await
        .map_err(|e| classify(what, "lambda:PublishLayerVersion", e))?;
    let arn = out.layer_version_arn().unwrap_or_default().to_string();
    let aws_sha = out.content().and_then(|c| c.code_sha256()).unwrap_or_default();
    if aws_sha != layer.code_sha256 {
        return Err(DeployError::CodeSha256Mismatch {
            arn: show(&arn).to_string(),
            aws: show(aws_sha).to_string(),
            manifest: layer.code_sha256.clone(),
        });
    }
    Ok((out.version(), arn))
}

/// Puts the zip in the bucket under a key named by its digest, and points Lambda at it.
async fn stage(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    layer: &Local,
    what: &str,
) -> Result<LayerVersionContentInput, DeployError> {
    let key = format!("layerbuild/{}/{}.zip", layer.layer_name, layer.sha256);
    let body = ByteStream::from_path(&layer.zip).await.map_err(|e| DeployError::Sdk {
        what: what.to_string(),
        detail: format!("{}: {e}", layer.zip.display()),
    })?;
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            classify(
                &format!("{what}: staging in s3://{bucket}"),
                "s3:PutObject on the bucket",
                e,
            )
        })?;
    Ok(LayerVersionContentInput::builder()
        .s3_bucket(bucket)
        .s3_key(key)
        .build())
}

/// The statement ids in the version's policy, so that a rerun grants nothing twice.
async fn statement_ids(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    version: i64,
    what: &str,
) -> Result<Vec<String>, DeployError> {
    let policy = match lambda
        .get_layer_version_policy()
        .layer_name(name)
        .version_number(version)
        .send()
        .await
    {
        Ok(out) => out.policy().unwrap_or_default().to_string(),
        // No policy yet.
        Err(e) if code(&e) == Some("ResourceNotFoundException") => return Ok(Vec::new()),
        Err(e) => return Err(classify(what, "lambda:GetLayerVersionPolicy", e)),
    };
    let doc: serde_json::Value = serde_json::from_str(&policy).unwrap_or_default();
    let statements = doc["Statement"].as_array().cloned().unwrap_or_default();
    Ok(statements
        .iter()
        .filter_map(|s| s["Sid"].as_str().map(str::to_string))
        .collect())
}

/// Grants lambda:GetLayerVersion; a statement already there from an earlier run is kept.
async fn grant(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    version: i64,
    g: &Grant,
    what: &str,
) -> Result<(), DeployError> {
    let res = lambda
        .add_layer_version_permission()
        .layer_name(name)
        .version_number(version)
        .statement_id(&g.statement_id)
        .action("lambda:GetLayerVersion")
        .principal(&g.principal)
        .set_organization_id(g.organization.clone())
        .send()
        .await;
    match res {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some("ResourceConflictException") => Ok(()),
        Err(e) => Err(classify(what, "lambda:AddLayerVersionPermission", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            zip: PathBuf::from("dist/l.zip"),
            layer_name: "l".into(),
            arch: Arch::Arm64,
            runtimes: vec!["python3.8".into(), "python3.9".into()],
            code_sha256: "abc=".into(),
            sha256: "00".into(),
            size: 1,
            description: "d".into(),
            license_info: None,
        }
    }

    fn existing(sha: &str, runtimes: &[&str], arches: &[&str]) -> Existing {
        Existing {
            version: 3,
            arn: "arn".into(),
            code_sha256: sha.into(),
            runtimes: runtimes.iter().map(|s| s.to_string()).collect(),
            arches: arches.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reuse_needs_same_digest_runtimes_and_arch() {
        let l = local();
        assert!(same_layer(
            &existing("abc=", &["python3.9", "python3.8"], &["arm64"]),
            &l
        ));
        assert!(!same_layer(
            &existing("abd=", &["python3.8", "python3.9"], &["arm64"]),
            &l
        ));
        assert!(!same_layer(&existing("abc=", &["python3.9"], &["arm64"]), &l));
        assert!(!same_layer(
            &existing("abc=", &["python3.8", "python3.9"], &["x86_64"]),
            &l
        ));
        assert!(!same_layer(&existing("abc=", &["python3.8", "python3.9"], &[]), &l));
    }

    #[test]
    fn organizations_are_granted_through_the_organization_id() {
        let g = Grant::principal("o-a1b2c3d4e5");
        assert_eq!(
            (g.principal.as_str(), g.organization.as_deref()),
            ("*", Some("o-a1b2c3d4e5"))
        );
        let g = Grant::principal("123456789012");
        assert_eq!((g.principal.as_str(), g.organization), ("123456789012", None));
    }
}
