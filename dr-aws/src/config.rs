//! Connection settings shared by the S3, RDS and Route 53 clients: region, endpoint,
//! credentials, deadlines and retries. One typed path: URL options, CLI flags and Python
//! keyword arguments all fill an [`AwsConfig`].

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use dr_core::{err, Result};

/// An access key given explicitly instead of through the standard AWS chain.
///
/// Its `Debug` shows only the key id; it is never serialized.
#[derive(Clone)]
pub struct StaticCredentials {
    /// The access key id (not secret).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What a frontend or a runbook target says about where AWS is: each field given
/// replaces what the environment says. Credentials never come this way (they come from
/// the standard chain, or [`AwsConfig::with_key_pair`]).
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct AwsOverrides {
    /// Region (`us-west-2`).
    pub region: Option<String>,
    /// Endpoint override (`http://127.0.0.1:5000`).
    pub endpoint: Option<String>,
    /// Named profile from `~/.aws/config`.
    pub profile: Option<String>,
}

/// Where and how to reach AWS (or an S3-compatible server, or moto).
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// Region; `None` takes it from `AWS_REGION` / the profile, else `us-east-1`.
    pub region: Option<String>,
    /// Endpoint override (`http://127.0.0.1:3900` for a local server).
    pub endpoint: Option<String>,
    /// A named profile from `~/.aws/config`.
    pub profile: Option<String>,
    /// Explicit credentials; `None` uses the standard chain (env, profile, SSO, web
    /// identity, container, IMDS).
    pub credentials: Option<StaticCredentials>,
    /// Deadline of one attempt of one request, until its response starts.
    pub attempt_timeout: Duration,
    /// Deadline of one request across all its attempts.
    pub operation_timeout: Duration,
    /// Deadline to open a connection.
    pub connect_timeout: Duration,
    /// Longest silence while a response body is read before the read is retried.
    pub read_timeout: Duration,
    /// Attempts per request (first try included); 5xx, throttling and timeouts are retried
    /// with exponential backoff and jitter.
    pub attempts: u32,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint: None,
            profile: None,
            credentials: None,
            attempt_timeout: Duration::from_mins(1),
            operation_timeout: Duration::from_mins(5),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            attempts: 5,
        }
    }
}

impl AwsConfig {
    /// Defaults plus `AWS_ENDPOINT_URL` when set (the SDK reads the rest of the
    /// environment itself).
    #[must_use]
    pub fn from_env() -> Self {
        Self {
            endpoint: std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|v| !v.is_empty()),
            ..Self::default()
        }
    }

    /// The environment's settings ([`AwsConfig::from_env`]) with `overrides` on top,
    /// validated.
    pub fn resolve(overrides: &AwsOverrides) -> Result<Self> {
        let mut c = Self::from_env();
        if overrides.region.is_some() {
            c.region.clone_from(&overrides.region);
        }
        if overrides.endpoint.is_some() {
            c.endpoint.clone_from(&overrides.endpoint);
        }
        if overrides.profile.is_some() {
            c.profile.clone_from(&overrides.profile);
        }
        c.validate()?;
        Ok(c)
    }

    /// With an explicit access key when both halves are given; neither keeps the
    /// standard chain; one alone is refused.
    pub fn with_key_pair(self, key_id: Option<String>, secret: Option<String>) -> Result<Self> {
        match (key_id, secret) {
            (Some(k), Some(s)) => Ok(self.with_credentials(&k, &s)),
            (None, None) => Ok(self),
            _ => Err(err!(
                InvalidInput,
                "give both access_key_id and secret_access_key, or neither (the standard AWS chain is used then)"
            )),
        }
    }

    /// With an endpoint override.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// With a region.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// With explicit credentials.
    #[must_use]
    pub fn with_credentials(mut self, key_id: &str, secret: &str) -> Self {
        self.credentials = Some(StaticCredentials {
            access_key_id: key_id.to_owned(),
            secret_access_key: secret.to_owned(),
            session_token: None,
        });
        self
    }

    /// Checks the values the SDK would otherwise reject late or obscurely.
    pub fn validate(&self) -> Result<()> {
        if let Some(ep) = &self.endpoint {
            let ok = url::Url::parse(ep)
                .ok()
                .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(err!(
                    InvalidInput,
                    "endpoint {ep:?} is not an http(s) URL; use e.g. http://127.0.0.1:3900"
                ));
            }
        }
        if self.attempts == 0 || self.attempts > 20 {
            return Err(err!(
                InvalidInput,
                "attempts {} is out of range 1..=20",
                self.attempts
            ));
        }
        for (name, d) in [
            ("timeout", self.attempt_timeout),
            ("operation timeout", self.operation_timeout),
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
        ] {
            if d.is_zero() {
                return Err(err!(InvalidInput, "{name} must be more than zero"));
            }
        }
        Ok(())
    }

    /// Loads the SDK config: the standard chain, then these overrides.
    pub async fn load(&self) -> Result<SdkConfig> {
        self.validate()?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .read_timeout(self.read_timeout)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .operation_timeout(self.operation_timeout)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.attempts)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(5)),
            );
        if let Some(profile) = &self.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(c) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                c.session_token.clone(),
                None,
                "drkit-static",
            ));
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            // Region-less setups (a local server, moto) still need one to sign with.
            return Ok(config
                .into_builder()
                .region(Region::from_static("us-east-1"))
                .build());
        }
        Ok(config)
    }
}

/// An SDK timestamp as a `jiff` one.
pub(crate) fn to_timestamp(t: &aws_sdk_s3::primitives::DateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

/// A `jiff` timestamp as an SDK one.
pub(crate) fn from_timestamp(t: jiff::Timestamp) -> aws_sdk_s3::primitives::DateTime {
    aws_sdk_s3::primitives::DateTime::from_secs_and_nanos(
        t.as_second(),
        t.subsec_nanosecond().max(0) as u32,
    )
}

/// Parses a URL option's duration in drkit's one grammar ([`dr_core::duration`]).
pub(crate) fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    dr_core::duration::parse(value)
        .map_err(|e| err!(InvalidInput, "{name}={value:?}: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("t", "30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("t", "2m").unwrap(), Duration::from_mins(2));
        assert_eq!(
            parse_duration("t", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert!(parse_duration("t", "5 parsecs").is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = AwsConfig::default().with_credentials("AKIDEXAMPLE", "very-secret-value");
        let shown = format!("{c:?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("very-secret-value"), "{shown}");
    }

    #[test]
    fn bad_endpoints_are_named() {
        let e = AwsConfig::default()
            .with_endpoint("localhost:9000")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("localhost:9000"), "{e}");
    }
}
