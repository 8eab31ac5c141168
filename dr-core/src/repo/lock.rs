//! Store-based locks: a create-only object under `locks/`. Safe only where the store
//! enforces create-only writes, which `repo init` probes and records; elsewhere they
//! refuse to run and point at a Kubernetes Lease.

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

    /// Removes the lock object.
    pub async fn release(self) -> Result<()> {
        self.store.delete(&self.key).await
    }
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
        let key = format!("locks/{name}");
        let now = Timestamp::now();
        let info = LockInfo {
            name: name.to_owned(),
            holder: format!("{}:{}", super::writer::hostname(), std::process::id()),
            purpose: purpose.to_owned(),
            acquired: now,
            expires: now + SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX),
        };
        let body = serde_json::to_vec(&info).expect("lock serializes");
        for attempt in 0..2 {
            match store
                .put_bytes(&key, body.clone().into(), PutMode::CreateOnly)
                .await
            {
                Ok(_) => return Ok(RepoLock { store, key, info }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let held: Option<LockInfo> = store
                        .get_bytes(&key)
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    match held {
                        Some(h) if h.expires > Timestamp::now() || attempt > 0 => {
                            return Err(err!(
                                Conflict,
                                "lock {name:?} in {url} is held by {} for {:?} since {} (until {}); wait for it, or if that process is gone delete {url}/{key}",
                                h.holder, h.purpose, h.acquired, h.expires
                            ));
                        }
                        // Expired (or unreadable): take it over; a racing taker loses the
                        // create-only put that follows.
                        _ => {
                            tracing::warn!("taking over expired lock {name:?} in {url}");
                            store.delete(&key).await?;
                        }
                    }
                }
                Err(e) => return Err(e.context(format!("taking lock {name:?} in {url}"))),
            }
        }
        unreachable!("the second attempt returns")
    }
}
