//! From zip to function: `publish` and `attach` (through the AWS SDK) and `diff` (offline).

mod args;
mod diff;
mod summary;

#[cfg(feature = "publish")]
mod attach;
#[cfg(feature = "publish")]
mod aws;
#[cfg(feature = "publish")]
mod change;
#[cfg(feature = "publish")]
mod publish;
#[cfg(feature = "publish")]
mod published;
#[cfg(feature = "publish")]
mod upload;

pub(crate) use args::DiffArgs;
#[cfg(feature = "publish")]
pub(crate) use args::{AttachArgs, PublishArgs};
#[cfg(feature = "publish")]
pub(crate) use attach::command as attach;
pub(crate) use diff::command as diff;
#[cfg(feature = "publish")]
pub(crate) use publish::command as publish;

/// Failures of publish and attach that tests and scripts match on. Each message is one line:
/// what was being done, why it failed, and how to fix it.
#[cfg(feature = "publish")]
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeployError {
    #[error(
        "{what}: no AWS credentials found: set AWS_PROFILE (after `aws sso login` for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role is available (CI OIDC, container or instance role)"
    )]
    NoCredentials { what: String },
    #[error(
        "{what}: AWS rejected the credentials ({detail}): refresh them (`aws sso login`, a new session token) or check AWS_PROFILE"
    )]
    BadCredentials { what: String, detail: String },
    #[error("{what}: access denied ({detail}): allow {permission} to the caller's role or user")]
    AccessDenied {
        what: String,
        detail: String,
        permission: String,
    },
    #[error("{what}: throttled by AWS even after the SDK's retries ({detail}): rerun later, or raise AWS_MAX_ATTEMPTS")]
    Throttled { what: String, detail: String },
    #[error(
        "{what}: cannot reach AWS ({detail}): check the network and the region, and AWS_ENDPOINT_URL if you set it"
    )]
    Network { what: String, detail: String },
    #[error("{what}: not found ({detail}): check the name, and the region (--region)")]
    NotFound { what: String, detail: String },
    #[error("{what}: AWS said {code}: {message}")]
    Service {
        what: String,
        code: String,
        message: String,
    },
    #[error("{what}: {detail}")]
    Sdk { what: String, detail: String },
    #[error("no AWS region: pass --region, or set AWS_REGION or a region in your AWS profile")]
    NoRegion,
    #[error(
        "{zip}: {size} bytes zipped is over Lambda's direct-upload limit of {limit} bytes: pass --s3-bucket BUCKET to upload it through S3 (the bucket must be in the layer's region)"
    )]
    TooLargeForDirectUpload { zip: String, size: u64, limit: u64 },
    #[error(
        "{arn}: AWS reports CodeSha256 {aws} but the manifest says {manifest}: the upload was altered; delete that version and publish again"
    )]
    CodeSha256Mismatch { arn: String, aws: String, manifest: String },
    #[error(
        "function `{function}` is {function_arch} but layer {layer} is for {layer_arches}: attach the {function_arch} layer instead"
    )]
    ArchMismatch {
        function: String,
        function_arch: String,
        layer: String,
        layer_arches: String,
    },
    #[error(
        "function `{function}` runs {runtime} but layer {layer} supports {layer_runtimes}: rebuild the layer with {runtime} in `runtimes`, or pick another layer"
    )]
    RuntimeMismatch {
        function: String,
        runtime: String,
        layer: String,
        layer_runtimes: String,
    },
    #[error(
        "{path} has no layer for {region} {arch}, where function `{function}` runs (it has {have}): publish the {arch} zip in {region}"
    )]
    NotPublishedFor {
        path: String,
        function: String,
        region: String,
        arch: String,
        have: String,
    },
    #[error(
        "publish failed for {failed} (the errors are above): rerun the same command to finish; what is already published is reused, not duplicated"
    )]
    PartlyFailed { failed: String },
}
