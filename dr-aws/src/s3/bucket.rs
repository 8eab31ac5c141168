//! Reading back how a bucket is protected: versioning, replication to another bucket,
//! lifecycle rules — what a DR plan configures once and nobody looks at again.

use dr_core::Result;
use serde::{Deserialize, Serialize};

use super::S3Store;
use crate::error::classify;

/// What a bucket must have: `drkit s3 check-bucket`, Python and `s3.check_bucket`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBucketOptions {
    /// The bucket: `s3://bucket?region=…` (a prefix is ignored).
    pub bucket: String,
    /// Versioning must be enabled.
    #[serde(default = "yes")]
    pub versioning: bool,
    /// Replication must be configured and enabled to this bucket (its name or ARN).
    #[serde(default)]
    pub replicates_to: Option<String>,
    /// At least one lifecycle rule must be enabled.
    #[serde(default)]
    pub lifecycle: bool,
}

fn yes() -> bool {
    true
}

/// A replication rule as read back.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplicationRule {
    /// Its id.
    pub id: Option<String>,
    /// `Enabled` or `Disabled`.
    pub status: String,
    /// The destination bucket's ARN.
    pub destination: String,
}

/// What the bucket has, and what it lacks.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BucketReport {
    /// The bucket.
    pub bucket: String,
    /// `Enabled`, `Suspended`, or `Off` (never enabled).
    pub versioning: String,
    /// Replication rules.
    pub replication: Vec<ReplicationRule>,
    /// Enabled lifecycle rules, by id.
    pub lifecycle_rules: Vec<String>,
    /// What the options asked for and the bucket lacks.
    pub problems: Vec<String>,
    /// No problems.
    pub ok: bool,
}

/// Reads `options.bucket`'s protection back and checks it.
pub async fn check_bucket(options: &CheckBucketOptions) -> Result<BucketReport> {
    let store = S3Store::from_url(&options.bucket)?;
    let client = store.client().await?;
    let bucket = store.config().bucket.clone();
    let shown = format!("s3://{bucket}");
    let versioning = client
        .get_bucket_versioning()
        .bucket(&bucket)
        .send()
        .await
        .map_err(|e| classify(format!("reading the versioning of {shown}"), e))?
        .status()
        .map_or_else(|| "Off".to_owned(), |s| s.as_str().to_owned());
    let replication = match client.get_bucket_replication().bucket(&bucket).send().await {
        Ok(out) => out
            .replication_configuration()
            .map(|c| {
                c.rules()
                    .iter()
                    .map(|r| ReplicationRule {
                        id: r.id().map(str::to_owned),
                        status: r.status().as_str().to_owned(),
                        destination: r
                            .destination()
                            .map(|d| d.bucket().to_owned())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) if not_configured(&e) => Vec::new(),
        Err(e) => return Err(classify(format!("reading the replication of {shown}"), e)),
    };
    let lifecycle_rules = match client
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
    {
        Ok(out) => out
            .rules()
            .iter()
            .filter(|r| r.status().as_str() == "Enabled")
            .map(|r| r.id().unwrap_or("(no id)").to_owned())
            .collect(),
        Err(e) if not_configured(&e) => Vec::new(),
        Err(e) => return Err(classify(format!("reading the lifecycle of {shown}"), e)),
    };
    let mut problems = Vec::new();
    if options.versioning && versioning != "Enabled" {
        problems.push(format!("versioning is {versioning}, not Enabled: a deleted or overwritten object cannot be recovered, and replication needs it"));
    }
    if let Some(to) = &options.replicates_to {
        let arn_of = |b: &str| {
            if b.starts_with("arn:") {
                b.to_owned()
            } else {
                format!("arn:aws:s3:::{b}")
            }
        };
        let want = arn_of(
            to.trim_start_matches("s3://")
                .split(['/', '?'])
                .next()
                .unwrap_or(to),
        );
        match replication.iter().find(|r| r.destination == want) {
            None => problems.push(format!(
                "no replication rule to {want} (rules: {})",
                if replication.is_empty() {
                    "none".to_owned()
                } else {
                    replication
                        .iter()
                        .map(|r| r.destination.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )),
            Some(r) if r.status != "Enabled" => {
                problems.push(format!("the replication rule to {want} is {}", r.status));
            }
            Some(_) => {}
        }
    }
    if options.lifecycle && lifecycle_rules.is_empty() {
        problems.push("no enabled lifecycle rule".to_owned());
    }
    Ok(BucketReport {
        bucket: shown,
        versioning,
        replication,
        lifecycle_rules,
        ok: problems.is_empty(),
        problems,
    })
}

/// A bucket without that configuration answers with an error code saying so.
fn not_configured<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E>,
) -> bool {
    e.as_service_error()
        .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
        .is_some_and(|c| {
            matches!(
                c,
                "ReplicationConfigurationNotFoundError" | "NoSuchLifecycleConfiguration"
            )
        })
}
