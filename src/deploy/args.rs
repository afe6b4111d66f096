//! The flags of `publish`, `attach` and `diff`, as clap parses them.

use std::path::PathBuf;

use clap::Args;

/// `layerbuild publish [--out DIR | ZIP...]`.
#[cfg(feature = "publish")]
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// Zips to publish, each with the manifest `build` wrote beside it.
    #[arg(value_name = "ZIP", conflicts_with = "out")]
    pub zips: Vec<PathBuf>,
    /// Publish every zip in this folder (the `--out` of `build`); published.json is written here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Region to publish in (repeatable). Default: the SDK's (AWS_REGION, then the profile).
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Layer name instead of the zip's stem; `{arch}` stands for amd64 or arm64.
    #[arg(long, value_name = "NAME")]
    pub layer_name: Option<String>,
    /// Description of the new layer versions (default: name, version and architecture).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// License of the layer, e.g. an SPDX identifier such as Apache-2.0.
    #[arg(long, value_name = "TEXT")]
    pub license_info: Option<String>,
    /// Let every AWS account use the layer versions (lambda:GetLayerVersion for `*`).
    #[arg(long)]
    pub public: bool,
    /// Let one account (12 digits) or organization (o-...) use the layer versions (repeatable).
    #[arg(long, value_name = "ACCOUNT|o-ORG", value_parser = parse_principal)]
    pub principal: Vec<String>,
    /// Publish a new version even when the latest one already has this zip's CodeSha256.
    #[arg(long)]
    pub force: bool,
    /// Bucket to stage zips over the direct-upload limit in; `{region}` stands for the region.
    #[arg(long, value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// Print the result as JSON (the content of published.json).
    #[arg(long)]
    pub json: bool,
    /// Give up on an AWS call (an upload included, with its retries) after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// `layerbuild attach --function NAME --layer ARN | --from published.json`.
#[cfg(feature = "publish")]
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["layer", "from"])))]
pub(crate) struct AttachArgs {
    /// The function's name or ARN.
    #[arg(long, value_name = "NAME")]
    pub function: String,
    /// The function's region. Default: the SDK's (AWS_REGION, then the profile).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The layer version to attach.
    #[arg(long, value_name = "ARN")]
    pub layer: Option<String>,
    /// Take the layer version for the function's region and architecture from this file.
    #[arg(long, value_name = "PUBLISHED_JSON")]
    pub from: Option<PathBuf>,
    /// Print the change and leave the function as it is.
    #[arg(long)]
    pub dry_run: bool,
    /// Give up on an AWS call (with its retries) after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// `layerbuild diff OLD NEW`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The old layer: a zip (with or without its manifest beside it) or a manifest.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The new layer, likewise.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Print the differences as JSON.
    #[arg(long)]
    pub json: bool,
}

#[cfg(feature = "publish")]
fn parse_principal(s: &str) -> Result<String, String> {
    let account = s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    let org = s.strip_prefix("o-").is_some_and(|id| {
        (10..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if account || org {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is neither an account id (12 digits) nor an organization id (o-...): use --public for everyone"
        ))
    }
}

#[cfg(all(test, feature = "publish"))]
mod tests {
    use super::*;

    #[test]
    fn principals_are_accounts_or_organizations() {
        assert!(parse_principal("123456789012").is_ok());
        assert!(parse_principal("o-a1b2c3d4e5").is_ok());
        assert!(parse_principal("12345").is_err());
        assert!(parse_principal("*").is_err());
        assert!(parse_principal("o-UPPER12345").is_err());
    }
}
