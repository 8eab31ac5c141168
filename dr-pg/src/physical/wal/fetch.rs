//! `wal-fetch`: one WAL file out of the archive, and the next segments prefetched in parallel.

use std::path::{Path, PathBuf};

use super::{segment_name, WalFile, MAX_FILE, MIN_SEGMENT_SIZE};
use dr_core::repo::Repository;
use dr_core::{err, Error, ErrorKind, Result};
use futures::StreamExt;

/// Fetches `name` into `dest` (PostgreSQL's `%f` and `%p`), written atomically. Also
/// fetches the next `prefetch` segments in parallel into a spool folder beside `dest`,
/// from which later calls take them. A file never archived fails with `NotFound` at once.
///
/// The names of the next segments depend on the cluster's segment size: it is learnt
/// from the first segment fetched (its length) and remembered in the spool folder.
pub async fn fetch(repo: &Repository, name: &str, dest: &Path, prefetch: usize) -> Result<()> {
    WalFile::parse(name, MIN_SEGMENT_SIZE)?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let spool = dir.join(".drkit-prefetch");
    if tokio::fs::rename(spool.join(name), dest).await.is_ok() {
        return Ok(());
    }
    let memo = spool.join("segment-size");
    let known = tokio::fs::read_to_string(&memo)
        .await
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .and_then(segment_size_of);
    let ahead = match known {
        Some(size) => following(name, size, prefetch, &spool).await,
        None => Vec::new(),
    };
    let mut wanted = vec![name.to_owned()];
    wanted.extend(ahead);
    let mut fetched = fetch_many(repo, wanted, prefetch).await;
    let bytes = fetched
        .remove(name)
        .expect("the asked-for file is always fetched")
        .map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                err!(
                    NotFound,
                    "{name} is not in the WAL archive at {}",
                    repo.store().url()
                )
            } else {
                e.context(format!("fetching {name}"))
            }
        })?;
    // No fsync: PostgreSQL reads the file at once, and after a crash fetches it again.
    write_atomic(dest, &bytes).await?;
    if known.is_none() && prefetch > 0 {
        // The first segment of this recovery: now its size says what comes next.
        if let Some(size) = segment_size_of(bytes.len() as u64).filter(|_| {
            matches!(
                WalFile::parse(name, MIN_SEGMENT_SIZE),
                Ok(WalFile::Segment { .. })
            )
        }) {
            tokio::fs::create_dir_all(&spool)
                .await
                .map_err(|e| Error::io(format!("creating {}", spool.display()), e))?;
            write_atomic(&memo, size.to_string().as_bytes()).await?;
            let ahead = following(name, size, prefetch, &spool).await;
            fetched = fetch_many(repo, ahead, prefetch).await;
        }
    }
    for (n, got) in fetched {
        if let Ok(bytes) = got {
            tokio::fs::create_dir_all(&spool)
                .await
                .map_err(|e| Error::io(format!("creating {}", spool.display()), e))?;
            write_atomic(&spool.join(&n), &bytes).await?;
        }
    }
    Ok(())
}

/// A WAL segment size PostgreSQL allows (a power of two from 1 MiB to 1 GiB).
pub(super) fn segment_size_of(len: u64) -> Option<u64> {
    (len.is_power_of_two() && (MIN_SEGMENT_SIZE..=1 << 30).contains(&len)).then_some(len)
}

/// The `count` segments after segment `name` that are not spooled yet.
pub(super) async fn following(name: &str, size: u64, count: usize, spool: &Path) -> Vec<String> {
    let Ok(WalFile::Segment { timeline, number }) = WalFile::parse(name, size) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in 1..=count as u64 {
        let next = segment_name(timeline, number + n, size);
        if !tokio::fs::try_exists(spool.join(&next))
            .await
            .unwrap_or(false)
        {
            out.push(next);
        }
    }
    out
}

/// Fetches archived files in parallel, by name.
pub(super) async fn fetch_many(
    repo: &Repository,
    names: Vec<String>,
    prefetch: usize,
) -> std::collections::HashMap<String, Result<Vec<u8>>> {
    futures::stream::iter(names)
        .map(|n| async move {
            let key = WalFile::parse(&n, MIN_SEGMENT_SIZE)
                .expect("valid names")
                .key(&n);
            let got = repo.get_object(&key, MAX_FILE).await;
            (n, got)
        })
        .buffer_unordered(prefetch.max(1) + 1)
        .collect()
        .await
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub(super) async fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.drkit-tmp", dest.display()));
    let result = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut f, bytes).await?;
        // tokio writes in the background: wait until the bytes are in the file.
        tokio::io::AsyncWriteExt::flush(&mut f).await?;
        drop(f);
        tokio::fs::rename(&tmp, dest).await
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(Error::io(format!("writing {}", dest.display()), e));
    }
    Ok(())
}
