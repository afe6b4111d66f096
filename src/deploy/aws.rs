//! The AWS SDK: one shared configuration (every call bounded in time, every answer in size), a
//! client per region, and SDK errors as one clear line.

use std::error::Error as StdError;
use std::fmt::Debug;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_lambda::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_lambda::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::SdkBody;

use super::DeployError;
use crate::support::text::show;

/// How long a connection may take to open; the rest of a request is bounded by `--timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of one response body read into memory. AWS's answers to our calls are a few KiB
/// (a layer version, a function's configuration with its variables: Lambda caps those at 4 KiB);
/// anything near this is not AWS.
pub(crate) const RESPONSE_CAP: u64 = 8 << 20;

/// The SDK's own configuration chain: credentials (environment, profile, SSO, web identity,
/// container and instance roles), region, endpoints (`AWS_ENDPOINT_URL*`) and retries, with
/// every call bounded in time and every answer in size.
pub(crate) struct Aws {
    base: SdkConfig,
}

impl Aws {
    /// `timeout` bounds each call, its retries included (an upload is one call).
    pub async fn load(timeout: Duration) -> Aws {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .operation_timeout(timeout)
            .build();
        Aws {
            base: aws_config::defaults(BehaviorVersion::latest())
                .timeout_config(timeouts)
                .load()
                .await,
        }
    }

    /// The regions asked for, else the one the SDK resolves.
    pub fn regions(&self, asked: &[String]) -> Result<Vec<String>, DeployError> {
        if !asked.is_empty() {
            let mut v = asked.to_vec();
            v.dedup();
            return Ok(v);
        }
        self.base
            .region()
            .map(|r| vec![r.to_string()])
            .ok_or(DeployError::NoRegion)
    }

    pub fn lambda(&self, region: &str) -> aws_sdk_lambda::Client {
        let conf = aws_sdk_lambda::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(BoundedResponse)
            .build();
        aws_sdk_lambda::Client::from_conf(conf)
    }

    pub fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .interceptor(BoundedResponse)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

/// Caps every response body at [`RESPONSE_CAP`] before the SDK reads it whole: one that says
/// it is longer is refused at once, and one of unknown length fails once it passes the cap.
#[derive(Debug)]
struct BoundedResponse;

impl Intercept for BoundedResponse {
    fn name(&self) -> &'static str {
        "BoundedResponse"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn StdError + Send + Sync>> {
        let response = context.response_mut();
        let declared = response
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared.filter(|&n| n > RESPONSE_CAP) {
            return Err(format!(
                "the endpoint answered with a {n}-byte body, over the {RESPONSE_CAP} bytes layerbuild reads: it is not AWS's answer"
            )
            .into());
        }
        let body = std::mem::replace(response.body_mut(), SdkBody::taken());
        *response.body_mut() = SdkBody::from_body_1_x(http_body_util::Limited::new(body, RESPONSE_CAP as usize));
        Ok(())
    }
}

/// A current-thread runtime: requests go one after another, so one thread is enough.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// The error code of a service error, e.g. `ResourceNotFoundException`.
pub(crate) fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// Turns an SDK error into one line: `what` is the step, `permission` the IAM action it needs.
pub(crate) fn classify<E, R>(what: &str, permission: &str, err: SdkError<E, R>) -> DeployError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let what = what.to_string();
    if let SdkError::ServiceError(s) = &err {
        // The service's words, escaped: whoever answers at the endpoint wrote them.
        let code = show(s.err().code().unwrap_or("unknown error")).to_string();
        let message = show(s.err().message().unwrap_or("no message")).to_string();
        return classify_code(what, permission, code, message);
    }
    if credentials_missing(&err) {
        return DeployError::NoCredentials { what };
    }
    let detail = chain(&err);
    match &err {
        SdkError::TimeoutError(_) => DeployError::Network { what, detail },
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => DeployError::Network { what, detail },
        _ => DeployError::Sdk { what, detail },
    }
}

fn classify_code(what: String, permission: &str, code: String, message: String) -> DeployError {
    let detail = format!("{code}: {message}");
    match code.as_str() {
        "AccessDeniedException" | "AccessDenied" | "AuthorizationError" => DeployError::AccessDenied {
            what,
            detail,
            permission: permission.to_string(),
        },
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidAccessKeyId" => DeployError::BadCredentials { what, detail },
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "SlowDown" | "RequestLimitExceeded" => {
            DeployError::Throttled { what, detail }
        }
        "ResourceNotFoundException" | "NoSuchBucket" | "NoSuchKey" => DeployError::NotFound { what, detail },
        _ => DeployError::Service { what, code, message },
    }
}

/// True when the chain holds the credential provider's "found nothing" error.
fn credentials_missing(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return matches!(c, CredentialsError::CredentialsNotLoaded(_));
        }
        cur = e.source();
    }
    false
}

/// Each cause's own message, outermost first, on one line.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = show(&e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")).to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_right_advice() {
        let e = classify_code(
            "publish x in r".into(),
            "lambda:PublishLayerVersion",
            "AccessDeniedException".into(),
            "no".into(),
        );
        assert!(e.to_string().contains("allow lambda:PublishLayerVersion"), "{e}");
        let e = classify_code("w".into(), "p", "TooManyRequestsException".into(), "slow".into());
        assert!(matches!(e, DeployError::Throttled { .. }));
        let e = classify_code("w".into(), "p", "UnrecognizedClientException".into(), "bad".into());
        assert!(matches!(e, DeployError::BadCredentials { .. }));
        let e = classify_code(
            "w".into(),
            "p",
            "InvalidParameterValueException".into(),
            "bad name".into(),
        );
        assert_eq!(e.to_string(), "w: AWS said InvalidParameterValueException: bad name");
    }
}
