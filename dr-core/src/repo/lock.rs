//! Store-based locks: create-only objects under `locks/<name>/`, one per generation.
//! Safe only where the store enforces create-only writes, which `repo init` probes and
//! records; elsewhere they refuse to run and point at a Kubernetes Lease.
//!
//! Taking a lock writes generation n + 1 create-only, where n is the newest generation
//! and has expired or was released: of two processes taking over the same expired lock
//! exactly one wins that write, and nothing is ever deleted out from under a holder. A
//! winner then checks that no newer generation appeared (a taker that paused between
//! listing and writing backs off), and removes the generations before its own.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{CreateOnly, Repository};
use crate::store::{BackupStoreExt, DynStore, PutMode};
use crate::{err, ErrorKind, Result};

/// What a lock object says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The lock's name.
    pub name: String,
    /// `host:pid` of the holder.
    pub holder: String,
    /// What the holder is doing.
    pub purpose: String,
    /// When it was taken.
    pub acquired: Timestamp,
    /// When it may be taken over if not released.
    pub expires: Timestamp,
}

/// A held lock; release it with [`RepoLock::release`].
#[derive(Debug)]
pub struct RepoLock {
    store: DynStore,
    key: String,
    info: LockInfo,
}

impl RepoLock {
    /// Who holds it and why.
    #[must_use]
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Removes this generation's object: the lock is free.
    pub async fn release(self) -> Result<()> {
        self.store.delete(&self.key).await
    }
}

/// Generation `n` of lock `name`: zero-padded so keys sort by generation.
fn generation_key(name: &str, n: u64) -> String {
    format!("locks/{name}/{n:020}")
}

/// The generations of lock `name` present in the store, oldest first.
async fn generations(store: &DynStore, name: &str) -> Result<Vec<u64>> {
    let prefix = format!("locks/{name}/");
    let mut found: Vec<u64> = store
        .list_all(&prefix)
        .await?
        .iter()
        .filter_map(|m| m.key.strip_prefix(&prefix)?.parse().ok())
        .collect();
    found.sort_unstable();
    Ok(found)
}

async fn read_info(store: &DynStore, key: &str) -> Option<LockInfo> {
    store
        .get_bytes(key)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn held_by(name: &str, url: &str, key: &str, h: &LockInfo) -> crate::Error {
    err!(
        Conflict,
        "lock {name:?} in {url} is held by {} for {:?} since {} (until {}); wait for it, or if that process is gone delete {url}/{key}",
        h.holder,
        h.purpose,
        h.acquired,
        h.expires
    )
}

impl Repository {
    /// Takes the lock `name` for `ttl`; fails with `Conflict` naming the holder if another
    /// process holds it, and with `Unsupported` on a store that does not enforce
    /// create-only writes.
    pub async fn lock(&self, name: &str, purpose: &str, ttl: Duration) -> Result<RepoLock> {
        let store = self.store().clone();
        let url = store.url();
        if self.config().create_only == Some(CreateOnly::Ignored) {
            return Err(err!(
                Unsupported,
                "cannot take lock {name:?} in {url}: this store does not enforce create-only writes (If-None-Match), so two processes could both take it; use a Kubernetes Lease for mutual exclusion, or a store that enforces them (AWS S3, a local folder)"
            ));
        }
        if name.is_empty() || name.contains('/') {
            return Err(err!(
                InvalidInput,
                "lock name {name:?} must be non-empty without '/'"
            ));
        }
        let newest = generations(&store, name).await?.last().copied();
        if let Some(n) = newest {
            let key = generation_key(name, n);
            // An unreadable lock object is taken over like an expired one.
            if let Some(h) = read_info(&store, &key).await {
                if h.expires > Timestamp::now() {
                    return Err(held_by(name, &url, &key, &h));
                }
                tracing::warn!(
                    "taking over lock {name:?} in {url}: {} ({:?}) let it expire at {}",
                    h.holder,
                    h.purpose,
                    h.expires
                );
            }
        }
        let mine = newest.map_or(1, |n| n + 1);
        let key = generation_key(name, mine);
        let now = Timestamp::now();
        let info = LockInfo {
            name: name.to_owned(),
            holder: format!("{}:{}", super::writer::hostname(), std::process::id()),
            purpose: purpose.to_owned(),
            acquired: now,
            expires: now + SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX),
        };
        let body = serde_json::to_vec(&info).expect("lock serializes");
        match store
            .put_bytes(&key, body.into(), PutMode::CreateOnly)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // Another process took this generation first.
                return Err(match read_info(&store, &key).await {
                    Some(h) => held_by(name, &url, &key, &h),
                    None => err!(
                        Conflict,
                        "lock {name:?} in {url} was just taken by another process"
                    ),
                });
            }
            Err(e) => return Err(e.context(format!("taking lock {name:?} in {url}"))),
        }
        let all = generations(&store, name).await?;
        if let Some(&newer) = all.iter().find(|&&n| n > mine) {
            // We paused between listing and writing, and someone took a newer generation.
            let _ = store.delete(&key).await;
            let newer_key = generation_key(name, newer);
            return Err(match read_info(&store, &newer_key).await {
                Some(h) => held_by(name, &url, &newer_key, &h),
                None => err!(
                    Conflict,
                    "lock {name:?} in {url} was just taken by another process"
                ),
            });
        }
        for old in all.into_iter().filter(|&n| n < mine) {
            let _ = store.delete(&generation_key(name, old)).await;
        }
        Ok(RepoLock { store, key, info })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::repo::InitOptions;
    use crate::store::LocalStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_takers_of_an_expired_lock_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(LocalStore::new(dir.path()));
        let repo = Repository::init(store.clone(), &InitOptions::unencrypted())
            .await
            .unwrap();
        for round in 0..5 {
            // A holder that crashed: its lock is never released and has expired.
            let crashed = repo.lock("prune", "crashed", Duration::ZERO).await.unwrap();
            drop(crashed);
            let takers: Vec<_> = (0..8)
                .map(|i| {
                    let repo = repo.clone();
                    tokio::spawn(async move {
                        repo.lock("prune", &format!("taker {i}"), Duration::from_hours(1))
                            .await
                    })
                })
                .collect();
            let mut won = Vec::new();
            for t in takers {
                match t.await.unwrap() {
                    Ok(l) => won.push(l),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
                }
            }
            assert_eq!(
                won.len(),
                1,
                "round {round}: exactly one taker holds the lock"
            );
            won.pop().unwrap().release().await.unwrap();
        }
        // A live lock is refused, naming its holder; released, it can be taken again.
        let live = repo
            .lock("prune", "live", Duration::from_hours(1))
            .await
            .unwrap();
        let e = repo
            .lock("prune", "second", Duration::from_hours(1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.to_string().contains("\"live\""), "{e}");
        live.release().await.unwrap();
        let again = repo
            .lock("prune", "again", Duration::from_hours(1))
            .await
            .unwrap();
        assert_eq!(
            generations(&store, "prune").await.unwrap().len(),
            1,
            "old generations removed"
        );
        again.release().await.unwrap();
    }
}
