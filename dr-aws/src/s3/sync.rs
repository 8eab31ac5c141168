//! `s3.sync`: a local folder or a bucket prefix copied to a bucket prefix, only what is
//! missing or differs (size, and the MD5 the ETag of a single-part object is), in
//! parallel. Running it again after an interruption copies only what is still missing;
//! `delete` removes what the source no longer has; `dry_run` lists the copies and
//! deletions without making them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use dr_core::{err, Error, Result};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::replica::{listing_of, Listed, Objects};
use super::S3Store;
use crate::error::classify;

/// How to sync: `drkit s3 sync`, Python and `s3.sync`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncOptions {
    /// A local folder, or `s3://bucket/prefix?region=…`.
    pub source: String,
    /// `s3://bucket/prefix?region=…`.
    pub destination: String,
    /// Also delete objects under the destination prefix that the source lacks.
    #[serde(default)]
    pub delete: bool,
    /// List what would be copied and deleted; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Copies in flight at once.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Objects listed per kind in the report.
    #[serde(default = "default_listed")]
    pub list: usize,
}

fn default_parallel() -> usize {
    8
}

fn default_listed() -> usize {
    20
}

/// What a sync did (or, dry, would do).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SyncReport {
    /// The source, as given.
    pub source: String,
    /// The destination, as given.
    pub destination: String,
    /// Objects copied (missing or different at the destination).
    pub copied: Objects,
    /// Objects already there, the same.
    pub unchanged: u64,
    /// Objects deleted from the destination (with `delete`).
    pub deleted: Objects,
    /// Objects the destination has and the source does not, kept (without `delete`).
    pub kept: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// One object of the source: where its bytes come from.
enum From {
    File(PathBuf),
    Object(String),
}

struct Item {
    listed: Listed,
    from: From,
}

fn md5_hex(path: &Path) -> std::io::Result<String> {
    use md5::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn b64_of_hex(h: &str) -> Option<String> {
    use base64::Engine;
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect();
    bytes
        .filter(|b| b.len() == 16)
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
}

/// Every regular file under `root`, keyed by its path relative to it (`/`-separated),
/// with its size and MD5.
async fn local_files(root: &Path) -> Result<Vec<Item>> {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for e in walkdir::WalkDir::new(&root).follow_links(false) {
            let e = e.map_err(|e| err!(Io, "reading {}: {e}", root.display()))?;
            if !e.file_type().is_file() {
                continue;
            }
            let rel = e.path().strip_prefix(&root).unwrap_or(e.path());
            let key = rel
                .to_str()
                .ok_or_else(|| {
                    err!(
                        InvalidInput,
                        "{} is not UTF-8, and S3 keys must be",
                        e.path().display()
                    )
                })?
                .to_owned();
            let size = e
                .metadata()
                .map_err(|x| err!(Io, "{}: {x}", e.path().display()))?
                .len();
            let etag = md5_hex(e.path()).map_err(|x| Error::io(e.path().display(), x))?;
            out.push(Item {
                listed: Listed {
                    key,
                    size,
                    etag,
                    modified: None,
                },
                from: From::File(e.path().to_path_buf()),
            });
        }
        Ok(out)
    })
    .await
    .map_err(|e| err!(Io, "the listing worker failed: {e}"))?
}

/// Whether the destination's object is the source's: same size, and the same MD5 when
/// both ETags are one (multipart ETags are not: then the size decides).
fn same(src: &Listed, dst: &Listed) -> bool {
    let plain = |e: &str| !e.contains('-') && e.len() == 32;
    src.size == dst.size && (!(plain(&src.etag) && plain(&dst.etag)) || src.etag == dst.etag)
}

/// Copies what `options.source` has and `options.destination` lacks or holds otherwise.
#[allow(clippy::too_many_lines)] // listings, the comparison, the copies and the deletions, in order
pub async fn sync(options: &SyncOptions) -> Result<SyncReport> {
    let dst = S3Store::from_url(&options.destination)?;
    let dc = dst.client().await?;
    let counter = std::sync::atomic::AtomicU64::new(0);
    let have: HashMap<String, Listed> = listing_of(dc, dst.config(), &counter)
        .map_ok(|o| (o.key.clone(), o))
        .try_collect()
        .await?;
    let src_store;
    let items: Vec<Item> = if options.source.starts_with("s3://") {
        src_store = Some(S3Store::from_url(&options.source)?);
        let s = src_store.as_ref().expect("set");
        listing_of(s.client().await?, s.config(), &counter)
            .map_ok(|o| Item {
                from: From::Object(full(s, &o.key)),
                listed: o,
            })
            .try_collect()
            .await?
    } else {
        src_store = None;
        let root = Path::new(&options.source);
        if !root.is_dir() {
            return Err(err!(
                NotFound,
                "{} is not a folder (or an s3:// URL) to sync from",
                root.display()
            ));
        }
        local_files(root).await?
    };
    let mut report = SyncReport {
        source: options.source.clone(),
        destination: options.destination.clone(),
        copied: Objects::default(),
        unchanged: 0,
        deleted: Objects::default(),
        kept: 0,
        dry_run: options.dry_run,
    };
    let mut todo = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in items {
        seen.insert(item.listed.key.clone());
        match have.get(&item.listed.key) {
            Some(d) if same(&item.listed, d) => report.unchanged += 1,
            _ => {
                report.copied.add(&item.listed, options.list);
                todo.push(item);
            }
        }
    }
    let mut gone: Vec<&Listed> = have.values().filter(|d| !seen.contains(&d.key)).collect();
    gone.sort_by(|a, b| a.key.cmp(&b.key));
    if options.delete {
        for d in &gone {
            report.deleted.add(d, options.list);
        }
    } else {
        report.kept = gone.len() as u64;
    }
    if options.dry_run {
        return Ok(report);
    }
    let src_client = match &src_store {
        Some(s) => Some((s.client().await?.clone(), s.config().bucket.clone())),
        None => None,
    };
    let bucket = dst.config().bucket.clone();
    let tasks: Vec<_> = todo
        .into_iter()
        .map(|item| {
            let key = full(&dst, &item.listed.key);
            (item, key, dc.clone(), bucket.clone(), src_client.clone())
        })
        .collect();
    futures::stream::iter(
        tasks
            .into_iter()
            .map(|(item, key, dc, bucket, src_client)| {
                async move {
                    let (body, len) =
                        match &item.from {
                            From::File(p) => (
                                ByteStream::from_path(p)
                                    .await
                                    .map_err(|e| err!(Io, "reading {}: {e}", p.display()))?,
                                item.listed.size,
                            ),
                            From::Object(k) => {
                                let (c, b) = src_client.as_ref().expect("an S3 source");
                                let got =
                                    c.get_object().bucket(b).key(k).send().await.map_err(|e| {
                                        classify(format!("reading s3://{b}/{k}"), e)
                                    })?;
                                (got.body, item.listed.size)
                            }
                        };
                    let mut put = dc
                        .put_object()
                        .bucket(&bucket)
                        .key(&key)
                        .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                        .body(body);
                    // The server checks what arrives against the source's MD5.
                    if let Some(md5) = b64_of_hex(&item.listed.etag) {
                        put = put.content_md5(md5);
                    }
                    put.send()
                        .await
                        .map_err(|e| classify(format!("writing s3://{bucket}/{key}"), e))?;
                    Ok::<_, Error>(())
                }
            }),
    )
    .buffer_unordered(options.parallel.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    if options.delete {
        for batch in gone.chunks(1000) {
            let ids: Vec<ObjectIdentifier> = batch
                .iter()
                .map(|d| ObjectIdentifier::builder().key(full(&dst, &d.key)).build())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| err!(InvalidInput, "delete batch: {e}"))?;
            dc.delete_objects()
                .bucket(&bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(ids))
                        .build()
                        .map_err(|e| err!(InvalidInput, "delete batch: {e}"))?,
                )
                .send()
                .await
                .map_err(|e| classify(format!("deleting from s3://{bucket}"), e))?;
        }
    }
    Ok(report)
}

fn full(store: &S3Store, key: &str) -> String {
    let prefix = &store.config().prefix;
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}
