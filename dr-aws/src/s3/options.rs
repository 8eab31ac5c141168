//! `s3://` URL options.

use aws_sdk_s3::types::{ServerSideEncryption, StorageClass};
use dr_core::store::StoreUrl;
use dr_core::{err, Result};

use crate::config::{parse_duration, AwsConfig};

/// Server-side encryption requested on every object written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// `AES256`: S3-managed keys.
    S3,
    /// `aws:kms`, with a key id or the account's default key.
    Kms {
        /// KMS key id or ARN.
        key_id: Option<String>,
    },
}

/// What an `s3://` store needs.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`.
    pub prefix: String,
    /// Region, endpoint, credentials, deadlines, retries.
    pub aws: AwsConfig,
    /// Path-style addressing; `None` means on with a custom endpoint, off on AWS.
    pub path_style: Option<bool>,
    /// Storage class of written objects (`STANDARD_IA`, `GLACIER_IR`, …).
    pub storage_class: Option<StorageClass>,
    /// Server-side encryption of written objects.
    pub sse: Option<Sse>,
    /// Multipart part size and ranged-read size, bytes (5 MiB ..= 5 GiB).
    pub part_size: u64,
    /// Parts (and chunk uploads) in flight at once.
    pub concurrency: usize,
}

const OPTIONS: &str = "region, endpoint, profile, path_style, storage_class, sse, sse_kms_key_id, part_size, concurrency, timeout, connect_timeout, read_timeout, attempts";

impl S3Config {
    /// A bucket and prefix with default settings.
    #[must_use]
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
            aws: AwsConfig::from_env(),
            path_style: None,
            storage_class: None,
            sse: None,
            part_size: 16 << 20,
            concurrency: 8,
        }
    }

    /// Parses `s3://bucket/prefix?option=value&…`. Options: region, endpoint, profile,
    /// path_style (true/false), storage_class, sse (AES256 | aws:kms), sse_kms_key_id,
    /// part_size (bytes, or with KiB/MiB/GiB), concurrency, timeout, connect_timeout,
    /// read_timeout (30s, 2m, 500ms), attempts. `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL` set the endpoint when the URL does not.
    pub fn from_url(input: &str) -> Result<Self> {
        let StoreUrl::S3 { bucket, prefix, .. } = StoreUrl::parse(input)? else {
            return Err(err!(
                InvalidInput,
                "{input:?} is not an s3:// URL; use s3://bucket/prefix"
            ));
        };
        let mut config = Self::new(bucket, prefix);
        if let Ok(ep) = std::env::var("AWS_ENDPOINT_URL_S3") {
            if !ep.is_empty() {
                config.aws.endpoint = Some(ep);
            }
        }
        let parsed = url::Url::parse(input.trim())
            .map_err(|e| err!(InvalidInput, "invalid repository URL {input:?}: {e}"))?;
        for (name, value) in parsed.query_pairs() {
            config.set(&name, &value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets one option by name, as in the URL's query string.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let bad = |what: &str| {
            err!(
                InvalidInput,
                "S3 option {name}={value:?} is invalid: {what}"
            )
        };
        match name {
            "region" => self.aws.region = Some(value.to_owned()),
            "endpoint" => self.aws.endpoint = Some(value.to_owned()),
            "profile" => self.aws.profile = Some(value.to_owned()),
            "path_style" => {
                self.path_style = Some(parse_bool(value).ok_or_else(|| bad("use true or false"))?);
            }
            "storage_class" => {
                let upper = value.to_ascii_uppercase();
                if !StorageClass::values().contains(&upper.as_str()) {
                    return Err(bad("use STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR or REDUCED_REDUNDANCY"));
                }
                let class = StorageClass::from(upper.as_str());
                if matches!(class, StorageClass::Glacier | StorageClass::DeepArchive) {
                    return Err(bad("objects in GLACIER or DEEP_ARCHIVE need a restore before every read, so backups could not be verified or restored in a disaster; use GLACIER_IR or STANDARD_IA"));
                }
                self.storage_class = Some(class);
            }
            "sse" => {
                self.sse = Some(match value {
                    "AES256" | "aes256" => Sse::S3,
                    "aws:kms" | "kms" => Sse::Kms {
                        key_id: match &self.sse {
                            Some(Sse::Kms { key_id }) => key_id.clone(),
                            _ => None,
                        },
                    },
                    _ => return Err(bad("use AES256 or aws:kms")),
                });
            }
            "sse_kms_key_id" => {
                self.sse = Some(Sse::Kms {
                    key_id: Some(value.to_owned()),
                });
            }
            "part_size" => {
                self.part_size = parse_size(value).ok_or_else(|| bad("use bytes or e.g. 16MiB"))?;
            }
            "concurrency" => {
                self.concurrency = value.parse().map_err(|_| bad("use a whole number"))?;
            }
            "timeout" => self.aws.attempt_timeout = parse_duration(name, value)?,
            "connect_timeout" => self.aws.connect_timeout = parse_duration(name, value)?,
            "read_timeout" => self.aws.read_timeout = parse_duration(name, value)?,
            "attempts" => {
                self.aws.attempts = value.parse().map_err(|_| bad("use a whole number"))?;
            }
            _ => {
                return Err(err!(
                    InvalidInput,
                    "unknown S3 option {name:?}; known options: {OPTIONS}"
                ))
            }
        }
        Ok(())
    }

    /// Checks sizes and the connection settings.
    pub fn validate(&self) -> Result<()> {
        let valid_bucket = (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_bucket {
            return Err(err!(
                InvalidInput,
                "{:?} is not a valid bucket name (3–63 lowercase letters, digits, '-' or '.')",
                self.bucket
            ));
        }
        if !(5 << 20..=5 << 30).contains(&self.part_size) {
            return Err(err!(
                InvalidInput,
                "S3 part_size {} is out of range: S3 needs 5 MiB to 5 GiB",
                self.part_size
            ));
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(err!(
                InvalidInput,
                "S3 concurrency {} is out of range 1..=64",
                self.concurrency
            ));
        }
        self.aws.validate()
    }

    /// Whether requests use path-style addressing.
    #[must_use]
    pub fn path_style(&self) -> bool {
        self.path_style.unwrap_or(self.aws.endpoint.is_some())
    }

    pub(crate) fn server_side_encryption(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.sse {
            None => (None, None),
            Some(Sse::S3) => (Some(ServerSideEncryption::Aes256), None),
            Some(Sse::Kms { key_id }) => (Some(ServerSideEncryption::AwsKms), key_id.clone()),
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let mult = match v[split..].trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" | "m" => 1 << 20,
        "GiB" | "G" | "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let c = S3Config::from_url(
            "s3://backups/prod/db?region=eu-west-1&endpoint=http://127.0.0.1:3900&part_size=8MiB&concurrency=4&storage_class=standard_ia&sse=aws:kms&sse_kms_key_id=alias/dr&timeout=10s",
        )
        .unwrap();
        assert_eq!(c.bucket, "backups");
        assert_eq!(c.prefix, "prod/db");
        assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.part_size, 8 << 20);
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.storage_class, Some(StorageClass::StandardIa));
        assert_eq!(
            c.sse,
            Some(Sse::Kms {
                key_id: Some("alias/dr".into())
            })
        );
        assert!(c.path_style(), "a custom endpoint defaults to path style");
        assert_eq!(c.aws.attempt_timeout, std::time::Duration::from_secs(10));
    }

    #[test]
    fn bad_options_are_named() {
        for (url, needle) in [
            ("s3://b-b-b/p?colour=blue", "colour"),
            ("s3://b-b-b/p?part_size=1MiB", "part_size"),
            ("s3://b-b-b/p?storage_class=GLACIER", "GLACIER"),
            ("s3://b-b-b/p?sse=rot13", "sse"),
            ("s3://Bad_Bucket/p", "Bad_Bucket"),
            ("s3://b-b-b/p?endpoint=nowhere", "nowhere"),
        ] {
            let e = S3Config::from_url(url).unwrap_err();
            assert_eq!(e.kind(), dr_core::ErrorKind::InvalidInput, "{url}");
            assert!(e.to_string().contains(needle), "{url}: {e}");
        }
    }
}
