//! Checking a bucket's replica: both listings streamed in key order and merged, so memory
//! stays flat however many objects there are. Every object of the source must be in the
//! replica with the same size and ETag; what is missing, differs or is extra is named, and
//! the oldest object not yet replicated says how far behind the replica is.

use std::cmp::Ordering;

use aws_sdk_s3::Client;
use dr_core::{err, Result};
use futures::{Stream, StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{S3Config, S3Store};
use crate::config::to_timestamp;
use crate::error::classify;

/// How to check a replica: `drkit s3 verify-replica`, Python and `s3.verify_replica`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyReplicaOptions {
    /// The source: `s3://bucket/prefix?region=…` (every object under the prefix).
    pub source: String,
    /// The replica: `s3://bucket/prefix?region=…`.
    pub replica: String,
    /// Objects listed per problem kind (the counts are always whole).
    #[serde(default = "default_listed")]
    pub list: usize,
}

fn default_listed() -> usize {
    20
}

/// One object, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Listed {
    /// Its key under the prefix.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// Its ETag.
    pub etag: String,
    /// When it was last written.
    pub modified: Option<Timestamp>,
}

/// Objects of one kind of problem: how many, and the first few.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Objects {
    /// How many.
    pub count: u64,
    /// Their bytes (of the source's objects; of the replica's for `extra`).
    pub bytes: u64,
    /// The first ones, in key order.
    pub first: Vec<Listed>,
}

impl Objects {
    pub(crate) fn add(&mut self, o: &Listed, list: usize) {
        self.count += 1;
        self.bytes += o.size;
        if self.first.len() < list {
            self.first.push(o.clone());
        }
    }
}

/// What the check found.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplicaReport {
    /// The source, as given.
    pub source: String,
    /// The replica, as given.
    pub replica: String,
    /// Objects in the source.
    pub source_objects: u64,
    /// Their bytes.
    pub source_bytes: u64,
    /// Objects in the replica.
    pub replica_objects: u64,
    /// In the source, not in the replica.
    pub missing: Objects,
    /// In both, with another size or ETag.
    pub differing: Objects,
    /// In the replica only (deleted from the source, or written to the replica).
    pub extra: Objects,
    /// The oldest source object the replica lacks or holds another version of: the
    /// replica has nothing written since (at most) then.
    pub oldest_unreplicated: Option<Listed>,
    /// The newest such object.
    pub newest_unreplicated: Option<Listed>,
    /// Seconds from the oldest unreplicated object's write to now: the data at risk if
    /// the source were lost now.
    pub lag_seconds: Option<f64>,
    /// Requests made (list pages).
    pub requests: u64,
    /// Whether every source object is in the replica as it is in the source.
    pub in_sync: bool,
}

/// Every object under `config`'s prefix, in key order, keys relative to the prefix.
pub(crate) fn listing_of<'a>(
    client: &'a Client,
    config: &'a S3Config,
    requests: &'a std::sync::atomic::AtomicU64,
) -> impl Stream<Item = Result<Listed>> + 'a {
    let prefix = if config.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", config.prefix)
    };
    futures::stream::try_unfold((None::<String>, false), move |(token, done)| {
        let prefix = prefix.clone();
        async move {
            if done {
                return Ok::<_, dr_core::Error>(None);
            }
            requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let out = client
                .list_objects_v2()
                .bucket(&config.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify(format!("listing s3://{}/{prefix}", config.bucket), e))?;
            let items: Vec<Result<Listed>> = out
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(Ok(Listed {
                        key: o.key()?.strip_prefix(prefix.as_str())?.to_owned(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        etag: o.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                        modified: o.last_modified().and_then(to_timestamp),
                    }))
                })
                .collect();
            let next = out.next_continuation_token().map(str::to_owned);
            let done = next.is_none();
            Ok(Some((futures::stream::iter(items), (next, done))))
        }
    })
    .try_flatten()
}

/// A bucket prefix is not its own replica.
fn not_the_same(s: &S3Config, d: &S3Config) -> Result<()> {
    if s.bucket == d.bucket && s.prefix == d.prefix && s.aws.endpoint == d.aws.endpoint {
        return Err(err!(
            InvalidInput,
            "the source and the replica are the same place (s3://{}/{}); name the replica's bucket",
            s.bucket,
            s.prefix
        ));
    }
    Ok(())
}

/// Compares `options.source` with `options.replica`.
pub async fn verify_replica(options: &VerifyReplicaOptions) -> Result<ReplicaReport> {
    let src = S3Store::from_url(&options.source)?;
    let dst = S3Store::from_url(&options.replica)?;
    not_the_same(src.config(), dst.config())?;
    let (sc, dc) = (src.client().await?, dst.client().await?);
    let requests = std::sync::atomic::AtomicU64::new(0);
    let mut source = Box::pin(listing_of(sc, src.config(), &requests).peekable());
    let mut copy = Box::pin(listing_of(dc, dst.config(), &requests).peekable());
    let list = options.list;
    let mut r = ReplicaReport {
        source: options.source.clone(),
        replica: options.replica.clone(),
        source_objects: 0,
        source_bytes: 0,
        replica_objects: 0,
        missing: Objects::default(),
        differing: Objects::default(),
        extra: Objects::default(),
        oldest_unreplicated: None,
        newest_unreplicated: None,
        lag_seconds: None,
        requests: 0,
        in_sync: true,
    };
    let behind = |o: &Listed, r: &mut ReplicaReport| {
        let older = |x: &Option<Listed>, newer: bool| match (x, o.modified) {
            (None, _) => true,
            (Some(prev), Some(m)) => prev
                .modified
                .is_none_or(|p| if newer { m > p } else { m < p }),
            (Some(_), None) => false,
        };
        if older(&r.oldest_unreplicated, false) {
            r.oldest_unreplicated = Some(o.clone());
        }
        if older(&r.newest_unreplicated, true) {
            r.newest_unreplicated = Some(o.clone());
        }
    };
    loop {
        let order = match (source.as_mut().peek().await, copy.as_mut().peek().await) {
            (None, None) => break,
            (Some(Err(_)), _) => {
                return Err(source.next().await.expect("peeked").expect_err("an error"));
            }
            (_, Some(Err(_))) => {
                return Err(copy.next().await.expect("peeked").expect_err("an error"));
            }
            (Some(Ok(ours)), Some(Ok(theirs))) => ours.key.as_bytes().cmp(theirs.key.as_bytes()),
            (Some(Ok(_)), None) => Ordering::Less,
            (None, Some(Ok(_))) => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                let obj = source.next().await.expect("peeked")?;
                r.source_objects += 1;
                r.source_bytes += obj.size;
                r.missing.add(&obj, list);
                behind(&obj, &mut r);
            }
            Ordering::Greater => {
                let obj = copy.next().await.expect("peeked")?;
                r.replica_objects += 1;
                r.extra.add(&obj, list);
            }
            Ordering::Equal => {
                let ours = source.next().await.expect("peeked")?;
                let theirs = copy.next().await.expect("peeked")?;
                r.source_objects += 1;
                r.source_bytes += ours.size;
                r.replica_objects += 1;
                if ours.size != theirs.size || ours.etag != theirs.etag {
                    r.differing.add(&ours, list);
                    behind(&ours, &mut r);
                }
            }
        }
    }
    r.requests = requests.load(std::sync::atomic::Ordering::Relaxed);
    r.in_sync = r.missing.count == 0 && r.differing.count == 0;
    r.lag_seconds = r
        .oldest_unreplicated
        .as_ref()
        .and_then(|o| o.modified)
        .map(|m| Timestamp::now().duration_since(m).as_secs_f64().max(0.0));
    if r.source_objects == 0 && r.replica_objects == 0 {
        return Err(err!(
            NotFound,
            "{} and {} hold no objects; check the bucket names and prefixes",
            options.source,
            options.replica
        ));
    }
    Ok(r)
}

/// One paragraph on a report: in sync, or what is behind and by how much.
#[must_use]
pub fn replica_summary(r: &ReplicaReport) -> String {
    use std::fmt::Write as _;
    let mut t = if r.in_sync {
        format!(
            "{} is in sync with {}: {} object(s), {} bytes",
            r.replica, r.source, r.source_objects, r.source_bytes
        )
    } else {
        format!(
            "{} is behind {}: {} of {} objects missing, {} differing",
            r.replica, r.source, r.missing.count, r.source_objects, r.differing.count
        )
    };
    for (what, objects) in [
        ("missing", &r.missing),
        ("differing", &r.differing),
        ("extra", &r.extra),
    ] {
        if objects.count > 0 {
            let keys: Vec<&str> = objects.first.iter().map(|o| o.key.as_str()).collect();
            let more = objects.count - objects.first.len() as u64;
            let listed = match (keys.is_empty(), more) {
                (true, n) => format!("{n} object{}", if n == 1 { "" } else { "s" }),
                (false, 0) => keys.join(", "),
                (false, n) => format!("{} and {n} more", keys.join(", ")),
            };
            let _ = write!(t, "\n  {what}: {listed}");
        }
    }
    if let (Some(o), Some(lag)) = (&r.oldest_unreplicated, r.lag_seconds) {
        let _ = write!(t,
            "\n  oldest unreplicated: {} written {:.0}s ago (the data at risk if the source were lost now)",
            o.key, lag
        );
    }
    if let Some(n) = &r.newest_unreplicated {
        let _ = write!(t, "\n  newest unreplicated: {}", n.key);
    }
    t
}
