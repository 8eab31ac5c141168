//! The S3 [`BackupStore`]: `s3://bucket/prefix?region=…&endpoint=…`.
//!
//! Puts stream: up to one part is sent as a single PUT, anything larger as a multipart
//! upload with at most `concurrency` parts in memory and in flight (so memory stays at or
//! under `concurrency × part_size` plus a small constant), aborted on any failure.
//! Gets fetch part-sized ranges in parallel and deliver them in order, pinned to the ETag
//! of the first response, re-fetching the rest of a range whose body breaks or stalls.
//! Create-only puts send `If-None-Match: *`.

mod bucket;
mod download;
mod options;
mod pool;
mod replica;
mod sync;
mod upload;

use std::ops::Range;

use async_trait::async_trait;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use dr_core::store::{validate_key, BackupStore, ByteStream, ListStream, ObjectMeta, PutMode};
use dr_core::{err, Result};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

pub use self::bucket::{check_bucket, BucketReport, CheckBucketOptions, ReplicationRule};
pub use self::options::{S3Config, Sse};
pub use self::replica::{
    replica_summary, verify_replica, Listed, Objects, ReplicaReport, VerifyReplicaOptions,
};
pub use self::sync::{sync, SyncOptions, SyncReport};
use crate::config::to_timestamp;
use crate::error::classify;

/// An S3 bucket and prefix as a drkit store.
#[derive(Debug)]
pub struct S3Store {
    config: S3Config,
    client: OnceCell<Client>,
    location: String,
}

/// A URL that opens `config` again: bucket, prefix and the options that say where it is.
fn location_of(config: &S3Config) -> String {
    let mut url = format!("s3://{}/{}", config.bucket, config.prefix);
    let mut options = Vec::new();
    for (name, value) in [
        ("region", config.aws.region.clone()),
        ("endpoint", config.aws.endpoint.clone()),
        ("profile", config.aws.profile.clone()),
        ("path_style", config.path_style.map(|p| p.to_string())),
    ] {
        if let Some(v) = value {
            let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            options.push(format!("{name}={v}"));
        }
    }
    if !options.is_empty() {
        url.push('?');
        url.push_str(&options.join("&"));
    }
    url
}

impl S3Store {
    /// A store for `config`; the client is built on first use.
    pub fn new(config: S3Config) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            location: location_of(&config),
            config,
            client: OnceCell::new(),
        })
    }

    /// Opens an `s3://` URL with its query options (see [`S3Config::from_url`]).
    pub fn from_url(url: &str) -> Result<Self> {
        let mut store = Self::new(S3Config::from_url(url)?)?;
        // S3 URLs carry no secrets: the URL as given opens the same store elsewhere.
        url.trim().clone_into(&mut store.location);
        Ok(store)
    }

    /// The settings in use.
    #[must_use]
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    pub(crate) async fn client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                let sdk = self.config.aws.load().await?;
                let mut b = aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(self.config.path_style())
                    // Chunks carry their own hashes; skip a second checksum pass per request.
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
                if let Some(ep) = &self.config.aws.endpoint {
                    b = b.endpoint_url(ep);
                }
                Ok(Client::from_conf(b.build()))
            })
            .await
    }

    fn full_key(&self, key: &str) -> String {
        if self.config.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.config.prefix)
        }
    }

    fn store_key<'k>(&self, full: &'k str) -> &'k str {
        if self.config.prefix.is_empty() {
            full
        } else {
            full.strip_prefix(&self.config.prefix)
                .and_then(|k| k.strip_prefix('/'))
                .unwrap_or(full)
        }
    }

    /// `s3://bucket/full/key`, for messages.
    pub(crate) fn describe(&self, full_key: &str) -> String {
        format!("s3://{}/{full_key}", self.config.bucket)
    }
}

#[async_trait]
impl BackupStore for S3Store {
    fn url(&self) -> String {
        if self.config.prefix.is_empty() {
            format!("s3://{}", self.config.bucket)
        } else {
            format!("s3://{}/{}", self.config.bucket, self.config.prefix)
        }
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn put(&self, key: &str, data: ByteStream, mode: PutMode) -> Result<ObjectMeta> {
        validate_key(key)?;
        let client = self.client().await?;
        let full = self.full_key(key);
        let size = upload::put(self, client, &full, data, mode).await?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
            modified: Some(jiff::Timestamp::now()),
        })
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        validate_key(key)?;
        let client = self.client().await?;
        download::get(self, client.clone(), self.full_key(key), range).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let client = self.client().await?;
        let full = self.full_key(key);
        let out = client
            .head_object()
            .bucket(&self.config.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| classify(format!("reading {}", self.describe(&full)), e))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            modified: out.last_modified().and_then(to_timestamp),
        })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> ListStream<'a> {
        struct Page {
            token: Option<String>,
            done: bool,
        }
        let full_prefix = self.full_key(prefix);
        let pages = futures::stream::try_unfold(
            Page {
                token: None,
                done: false,
            },
            move |page| {
                let full_prefix = full_prefix.clone();
                async move {
                    if page.done {
                        return Ok::<_, dr_core::Error>(None);
                    }
                    let client = self.client().await?;
                    let out = client
                        .list_objects_v2()
                        .bucket(&self.config.bucket)
                        .prefix(&full_prefix)
                        .set_continuation_token(page.token)
                        .send()
                        .await
                        .map_err(|e| {
                            classify(format!("listing {}", self.describe(&full_prefix)), e)
                        })?;
                    let items: Vec<Result<ObjectMeta>> = out
                        .contents()
                        .iter()
                        .filter_map(|o| {
                            let key = o.key()?;
                            Some(Ok(ObjectMeta {
                                key: self.store_key(key).to_owned(),
                                size: o.size().unwrap_or(0).max(0) as u64,
                                modified: o.last_modified().and_then(to_timestamp),
                            }))
                        })
                        .collect();
                    let token = out.next_continuation_token().map(str::to_owned);
                    let done = !out.is_truncated().unwrap_or(false) || token.is_none();
                    Ok(Some((items, Page { token, done })))
                }
            },
        );
        pages.map_ok(futures::stream::iter).try_flatten().boxed()
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let client = self.client().await?;
        let full = self.full_key(key);
        client
            .delete_object()
            .bucket(&self.config.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| classify(format!("deleting {}", self.describe(&full)), e))?;
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let client = self.client().await?;
        for batch in keys.chunks(1000) {
            let mut ids = Vec::with_capacity(batch.len());
            for key in batch {
                validate_key(key)?;
                ids.push(
                    ObjectIdentifier::builder()
                        .key(self.full_key(key))
                        .build()
                        .map_err(|e| err!(InvalidInput, "object key {key:?}: {e}"))?,
                );
            }
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| err!(InvalidInput, "batch delete: {e}"))?;
            let out = client
                .delete_objects()
                .bucket(&self.config.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| {
                    classify(
                        format!("deleting {} objects under {}", batch.len(), self.url()),
                        e,
                    )
                })?;
            if let Some(first) = out.errors().first() {
                return Err(err!(
                    Unavailable,
                    "deleting {} failed for {} of {} objects (first: {} {}); run the command again",
                    self.url(),
                    out.errors().len(),
                    batch.len(),
                    first.key().unwrap_or("?"),
                    first
                        .message()
                        .unwrap_or_else(|| first.code().unwrap_or("?"))
                ));
            }
        }
        Ok(())
    }

    fn concurrency_hint(&self) -> usize {
        self.config.concurrency
    }
}
