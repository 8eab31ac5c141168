//! Streaming uploads: one PUT up to a part, else multipart with bounded memory.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream as SdkBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use dr_core::store::{ByteStream, PutMode};
use dr_core::{err, Result};
use futures::TryStreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::pool::PartPool;
use super::S3Store;
use crate::error::classify;

/// Cuts an incoming stream into parts of exactly `size` bytes (the last may be shorter).
struct Parts {
    input: ByteStream,
    /// Input not yet placed in a part.
    carry: Bytes,
    ended: bool,
    size: usize,
    pool: PartPool,
    first: bool,
}

impl Parts {
    async fn next(&mut self) -> Result<Option<Bytes>> {
        // The first part may be a whole small object: its buffer grows with the data.
        // Later parts are whole parts and take a part-sized buffer from the pool.
        let mut part = if self.first {
            Vec::new()
        } else {
            self.pool.take()
        };
        self.first = false;
        while part.len() < self.size {
            if self.carry.is_empty() {
                if self.ended {
                    break;
                }
                match self.input.try_next().await? {
                    Some(b) => self.carry = b,
                    None => self.ended = true,
                }
                continue;
            }
            let n = (self.size - part.len()).min(self.carry.len());
            part.extend_from_slice(&self.carry.split_to(n));
        }
        if part.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.pool.freeze(part)))
    }

    fn finished(&self) -> bool {
        self.ended && self.carry.is_empty()
    }
}

/// Writes `data` to `key`; returns the bytes written.
pub(super) async fn put(
    store: &S3Store,
    client: &Client,
    key: &str,
    data: ByteStream,
    mode: PutMode,
) -> Result<u64> {
    let config = store.config();
    let limit = Arc::new(Semaphore::new(config.concurrency));
    let mut parts = Parts {
        input: data,
        carry: Bytes::new(),
        ended: false,
        size: config.part_size as usize,
        pool: PartPool::new(config.part_size as usize, config.concurrency + 1),
        first: true,
    };
    let first_permit = limit.clone().acquire_owned().await.expect("never closed");
    let first = parts
        .next()
        .await
        .map_err(|e| e.context(format!("reading the data for {}", store.describe(key))))?
        .unwrap_or_default();
    if parts.finished() {
        drop(first_permit);
        return put_single(store, client, key, first, mode).await;
    }
    let (sse, kms_key) = config.server_side_encryption();
    let created = client
        .create_multipart_upload()
        .bucket(&config.bucket)
        .key(key)
        .set_storage_class(config.storage_class.clone())
        .set_server_side_encryption(sse)
        .set_ssekms_key_id(kms_key)
        .send()
        .await
        .map_err(|e| classify(format!("starting an upload to {}", store.describe(key)), e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| {
            err!(
                External,
                "{}: the server gave no upload id",
                store.describe(key)
            )
        })?
        .to_owned();
    let result = upload_parts(
        store,
        client,
        key,
        &upload_id,
        first,
        first_permit,
        &mut parts,
        &limit,
    )
    .await;
    let completed = match result {
        Ok(done) => done,
        Err(e) => {
            abort(store, client, key, &upload_id).await;
            return Err(e);
        }
    };
    let total = completed.1;
    let mut complete = client
        .complete_multipart_upload()
        .bucket(&config.bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed.0))
                .build(),
        );
    if mode == PutMode::CreateOnly {
        complete = complete.if_none_match("*");
    }
    if let Err(e) = complete.send().await {
        abort(store, client, key, &upload_id).await;
        return Err(classify(format!("writing {}", store.describe(key)), e));
    }
    Ok(total)
}

#[allow(clippy::too_many_arguments)]
async fn upload_parts(
    store: &S3Store,
    client: &Client,
    key: &str,
    upload_id: &str,
    first: Bytes,
    first_permit: tokio::sync::OwnedSemaphorePermit,
    parts: &mut Parts,
    limit: &Arc<Semaphore>,
) -> Result<(Vec<CompletedPart>, u64)> {
    let mut tasks: JoinSet<Result<CompletedPart>> = JoinSet::new();
    let mut done = Vec::new();
    let mut total = 0u64;
    let mut number = 0i32;
    let mut next = Some((first, first_permit));
    loop {
        let (body, permit) =
            if let Some(p) = next.take() {
                p
            } else {
                // Take a slot before reading: a part in memory is a part in flight.
                let permit = tokio::select! {
                    p = limit.clone().acquire_owned() => p.expect("never closed"),
                    Some(joined) = tasks.join_next() => {
                        done.push(joined.map_err(|e| err!(External, "upload task failed: {e}"))??);
                        continue;
                    }
                };
                match parts.next().await.map_err(|e| {
                    e.context(format!("reading the data for {}", store.describe(key)))
                })? {
                    Some(b) => (b, permit),
                    None => break,
                }
            };
        number += 1;
        if number > 10_000 {
            return Err(err!(
                InvalidInput,
                "{} needs more than 10,000 parts; raise part_size in the URL",
                store.describe(key)
            ));
        }
        total += body.len() as u64;
        let client = client.clone();
        let (bucket, key_owned, id) = (
            store.config().bucket.clone(),
            key.to_owned(),
            upload_id.to_owned(),
        );
        let what = format!("writing part {number} of {}", store.describe(key));
        tasks.spawn(async move {
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(key_owned)
                .upload_id(id)
                .part_number(number)
                .content_length(body.len() as i64)
                .body(SdkBody::from(body))
                .send()
                .await
                .map_err(|e| classify(what, e));
            drop(permit);
            let out = out?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build())
        });
        while let Some(joined) = tasks.try_join_next() {
            done.push(joined.map_err(|e| err!(External, "upload task failed: {e}"))??);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        done.push(joined.map_err(|e| err!(External, "upload task failed: {e}"))??);
    }
    done.sort_by_key(aws_sdk_s3::types::CompletedPart::part_number);
    Ok((done, total))
}

async fn put_single(
    store: &S3Store,
    client: &Client,
    key: &str,
    body: Bytes,
    mode: PutMode,
) -> Result<u64> {
    let config = store.config();
    let (sse, kms_key) = config.server_side_encryption();
    let size = body.len() as u64;
    let mut req = client
        .put_object()
        .bucket(&config.bucket)
        .key(key)
        .content_length(size as i64)
        .set_storage_class(config.storage_class.clone())
        .set_server_side_encryption(sse)
        .set_ssekms_key_id(kms_key)
        .body(SdkBody::from(body));
    if mode == PutMode::CreateOnly {
        req = req.if_none_match("*");
    }
    req.send()
        .await
        .map_err(|e| classify(format!("writing {}", store.describe(key)), e))?;
    Ok(size)
}

async fn abort(store: &S3Store, client: &Client, key: &str, upload_id: &str) {
    let res = client
        .abort_multipart_upload()
        .bucket(&store.config().bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(e) = res {
        tracing::warn!(
            "could not abort the upload {upload_id} of {}: {}; a bucket lifecycle rule for incomplete multipart uploads reclaims it",
            store.describe(key),
            aws_sdk_s3::error::DisplayErrorContext(&e)
        );
    }
}
