//! AWS SDK failures, turned into drkit errors that name the object and the fix.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use dr_core::{Error, ErrorKind};

/// What an SDK failure means for the caller, before it becomes a [`dr_core::Error`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum AwsError {
    #[error("{what}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where an instance or pod role is available ({cause})")]
    NoCredentials { what: String, cause: String },
    #[error("{what}: the credentials were refused ({code}); check the access key, its secret and its permissions ({cause})")]
    Refused {
        what: String,
        code: String,
        cause: String,
    },
    #[error("{what}: the request went to the wrong region ({cause}); set the region the resource lives in (region=… in the URL, --region or AWS_REGION)")]
    WrongRegion { what: String, cause: String },
    #[error(
        "{what}: bucket does not exist ({cause}); create it or fix the bucket name in the URL"
    )]
    NoBucket { what: String, cause: String },
    #[error("{what}: not found ({cause})")]
    NotFound { what: String, cause: String },
    #[error("{what}: already exists ({cause})")]
    AlreadyExists { what: String, cause: String },
    #[error("{what}: a concurrent change conflicts ({cause}); try again")]
    Conflict { what: String, cause: String },
    #[error("{what}: timed out ({cause}); check the endpoint and network, or raise the timeout")]
    Timeout { what: String, cause: String },
    #[error("{what}: the service is unavailable after every retry ({cause}); try again later")]
    Unavailable { what: String, cause: String },
    #[error("{what}: nothing answers at the endpoint ({cause}); check the endpoint (--endpoint, endpoint= in a URL, AWS_ENDPOINT_URL), the region and the network")]
    Unreachable { what: String, cause: String },
    #[error("{what}: rejected as invalid ({cause})")]
    Invalid { what: String, cause: String },
    #[error("{what} failed: {cause}")]
    Other { what: String, cause: String },
}

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        let kind = match &e {
            AwsError::NoCredentials { .. } | AwsError::Refused { .. } => {
                ErrorKind::PermissionDenied
            }
            AwsError::WrongRegion { .. } | AwsError::Invalid { .. } => ErrorKind::InvalidInput,
            AwsError::NoBucket { .. } | AwsError::NotFound { .. } => ErrorKind::NotFound,
            AwsError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            AwsError::Conflict { .. } => ErrorKind::Conflict,
            AwsError::Timeout { .. } => ErrorKind::Timeout,
            AwsError::Unavailable { .. } | AwsError::Unreachable { .. } => ErrorKind::Unavailable,
            AwsError::Other { .. } => ErrorKind::External,
        };
        Error::new(kind, e.to_string())
    }
}

/// Classifies an SDK error of any AWS service. `what` names the call and its object,
/// e.g. `reading s3://bucket/key`.
pub(crate) fn classify<E>(what: impl Into<String>, e: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let what = what.into();
    // The service's own code and message when it answered; the cause chain when it did not.
    let cause = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        _ => match &e {
            SdkError::ServiceError(s) => format!("HTTP {}", s.raw().status().as_u16()),
            _ => dr_core::error::chain(&e),
        },
    };
    let status = match &e {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        SdkError::ResponseError(r) => Some(r.raw().status().as_u16()),
        _ => None,
    };
    let code = e.code().unwrap_or_default().to_owned();
    let lower = cause.to_ascii_lowercase();
    let failure = match &e {
        SdkError::TimeoutError(_) => AwsError::Timeout { what, cause },
        SdkError::DispatchFailure(d) if d.is_timeout() => AwsError::Timeout { what, cause },
        SdkError::DispatchFailure(d) if d.is_io() => AwsError::Unreachable { what, cause },
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_)
            if lower.contains("credential") =>
        {
            AwsError::NoCredentials {
                what,
                cause:
                    "none in the environment, profile, web identity, container or instance metadata"
                        .into(),
            }
        }
        _ => match (status, code.as_str()) {
            (_, "NoSuchBucket") => AwsError::NoBucket { what, cause },
            (
                _,
                "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "IllegalLocationConstraintException",
            )
            | (Some(301), _) => AwsError::WrongRegion { what, cause },
            (
                _,
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "InvalidClientTokenId"
                | "UnrecognizedClientException",
            )
            | (Some(401 | 403), _) => AwsError::Refused { what, code, cause },
            (Some(404), _) | (_, "NoSuchKey" | "NotFound" | "NoSuchUpload") => {
                AwsError::NotFound { what, cause }
            }
            (Some(412), _) | (_, "PreconditionFailed") => AwsError::AlreadyExists { what, cause },
            (Some(409), _) | (_, "ConditionalRequestConflict") => {
                AwsError::Conflict { what, cause }
            }
            (Some(s), _) if s == 429 || s >= 500 => AwsError::Unavailable { what, cause },
            (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout") => {
                AwsError::Unavailable { what, cause }
            }
            (Some(400), _) => AwsError::Invalid { what, cause },
            _ if lower.contains("credential") => AwsError::NoCredentials { what, cause },
            _ => AwsError::Other { what, cause },
        },
    };
    // A service's own code and message say it all; the SDK's rendering of the same answer
    // (with its request id) would only repeat it.
    if matches!(e, SdkError::ServiceError(_)) && e.code().is_some() {
        return Error::from(failure);
    }
    Error::from(failure).with_source(e)
}
