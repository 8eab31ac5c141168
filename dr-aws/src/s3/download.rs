//! Ranged, parallel downloads that survive broken and stalled bodies.

use std::ops::Range;
use std::sync::Arc;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::Client;
use bytes::Bytes;
use dr_core::store::{BackupStore, ByteStream};
use dr_core::{err, ErrorKind, Result};
use futures::StreamExt;

use super::pool::PartPool;
use super::S3Store;
use crate::error::classify;

/// One object being read: enough to fetch any range of it.
struct Reader {
    client: Client,
    bucket: String,
    key: String,
    shown: String,
    etag: Option<String>,
    attempts: u32,
    read_timeout: std::time::Duration,
    pool: PartPool,
}

impl Reader {
    /// Fetches `range` whole, resuming from where a broken or stalled body stopped.
    async fn fetch(&self, range: Range<u64>) -> Result<Bytes> {
        let mut buf = self.pool.take();
        let mut broken = 0;
        loop {
            let from = range.start + buf.len() as u64;
            if from >= range.end {
                return Ok(self.pool.freeze(buf));
            }
            let mut req = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .range(format!("bytes={from}-{}", range.end - 1));
            if let Some(etag) = &self.etag {
                req = req.if_match(etag);
            }
            let resp = req.send().await.map_err(|e| self.failed(e))?;
            let mut body = resp.body;
            let cause = loop {
                match tokio::time::timeout(self.read_timeout, body.try_next()).await {
                    Ok(Ok(Some(b))) => buf.extend_from_slice(&b),
                    Ok(Ok(None)) => break None,
                    Ok(Err(e)) => break Some(e.to_string()),
                    Err(_) => {
                        break Some(format!("no data for {} s", self.read_timeout.as_secs_f32()))
                    }
                }
            };
            if let Some(cause) = cause {
                broken += 1;
                if broken >= self.attempts {
                    return Err(err!(
                        Unavailable,
                        "reading {} broke off {broken} times (last: {cause}); check the network and try again",
                        self.shown
                    ));
                }
                tracing::debug!(
                    "reading {} broke off ({cause}); resuming at byte {}",
                    self.shown,
                    range.start + buf.len() as u64
                );
            } else if range.start + (buf.len() as u64) < range.end {
                return Err(err!(
                    Corrupt,
                    "{} ended early: got {} of bytes {}..{}",
                    self.shown,
                    buf.len(),
                    range.start,
                    range.end
                ));
            }
        }
    }

    fn failed(
        &self,
        e: SdkError<GetObjectError, aws_sdk_s3::config::http::HttpResponse>,
    ) -> dr_core::Error {
        let mapped = classify(format!("reading {}", self.shown), e);
        if mapped.kind() == ErrorKind::AlreadyExists {
            // 412 on If-Match: the object was replaced while it was being read.
            return err!(
                Conflict,
                "{} changed while it was being read; read it again",
                self.shown
            );
        }
        mapped
    }
}

/// Reads `key` (or `range` of it) as a stream of parts.
pub(super) async fn get(
    store: &S3Store,
    client: Client,
    key: String,
    range: Option<Range<u64>>,
) -> Result<ByteStream> {
    let config = store.config();
    let part = config.part_size;
    // One part is always with the reader: keep the total at `concurrency` parts.
    let concurrency = config.concurrency.saturating_sub(1).max(1);
    let shown = store.describe(&key);
    let start = range.as_ref().map_or(0, |r| r.start);
    let wanted_end = range.as_ref().map(|r| r.end);
    let mut reader = Reader {
        client,
        bucket: config.bucket.clone(),
        key,
        shown,
        etag: None,
        attempts: config.aws.attempts,
        read_timeout: config.aws.read_timeout,
        pool: PartPool::new(part as usize, config.concurrency + 1),
    };
    if wanted_end.is_some_and(|end| end <= start) {
        // An empty range still tells a missing object from a present one.
        store.head(store.store_key(&reader.key)).await?;
        return Ok(futures::stream::empty().boxed());
    }
    let first_end = wanted_end.map_or(start + part, |end| end.min(start + part));
    let first = reader
        .client
        .get_object()
        .bucket(&reader.bucket)
        .key(&reader.key)
        .range(format!("bytes={start}-{}", first_end - 1))
        .send()
        .await;
    let first = match first {
        Ok(resp) => resp,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
            // The range starts at or past the end (or the object is empty): nothing to read.
            store.head(store.store_key(&reader.key)).await?;
            return Ok(futures::stream::empty().boxed());
        }
        Err(e) => return Err(reader.failed(e)),
    };
    let total = first
        .content_range()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|t| t.parse::<u64>().ok())
        .or_else(|| first.content_length().map(|l| start + l.max(0) as u64))
        .unwrap_or(first_end);
    reader.etag = first.e_tag().map(str::to_owned);
    let end = wanted_end.map_or(total, |e| e.min(total));
    let first_end = first_end.min(end);
    // The first response is already open: read it through the same resuming path.
    let reader = Arc::new(reader);
    let mut head = reader.pool.take();
    let mut body = first.body;
    let mut broke = false;
    loop {
        match tokio::time::timeout(reader.read_timeout, body.try_next()).await {
            Ok(Ok(Some(b))) => head.extend_from_slice(&b),
            Ok(Ok(None)) => break,
            Ok(Err(_)) | Err(_) => {
                broke = true;
                break;
            }
        }
    }
    if broke || (head.len() as u64) < first_end - start {
        let rest = reader.fetch(start + head.len() as u64..first_end).await?;
        head.extend_from_slice(&rest);
    }
    let head = reader.pool.freeze(head);
    let ranges: Vec<Range<u64>> = (first_end..end)
        .step_by(part as usize)
        .map(|s| s..(s + part).min(end))
        .collect();
    let rest = futures::stream::iter(ranges)
        .map(move |r| {
            let reader = reader.clone();
            async move { reader.fetch(r).await }
        })
        .buffered(concurrency);
    Ok(futures::stream::once(async move { Ok(head) })
        .chain(rest)
        .boxed())
}
