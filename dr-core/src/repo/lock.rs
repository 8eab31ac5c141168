//! Store-based locks: create-only objects under `locks/<name>/`, one per generation.
//! Safe only where the store enforces create-only writes, which `repo init` probes and
//! records; elsewhere they refuse to run and point at a Kubernetes Lease.
//!
//! Taking a lock writes generation n + 1 create-only, where n is the newest generation
//! and has expired or was released: of two processes taking over the same expired lock
//! exactly one wins that write, and nothing is ever deleted out from under a holder. A
//! winner then checks that no newer generation appeared (a taker that paused between
//! listing and writing backs off), and removes the generations before its own. Releasing
//! marks the newest generation expired instead of deleting it, so fencing tokens grow for
//! ever: the next holder's is always above every earlier one.

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use super::{CreateOnly, Repository};
use crate::lock::{FencingToken, Lease, Lock, LockRequest};
use crate::store::{BackupStoreExt, DynStore, PutMode};
use crate::{err, ErrorKind, Result};

/// A lock in a store: generation `n` of lock `name` is the object `locks/<name>/<n>`,
/// and `n` is the fencing token.
#[derive(Debug, Clone)]
pub struct StoreLock {
    store: DynStore,
    name: String,
    enforced: bool,
}

/// A held lock (the store's, or another such as a Kubernetes Lease); release it with
/// [`RepoLock::release`].
#[derive(Debug)]
pub struct RepoLock {
    lock: std::sync::Arc<dyn Lock>,
    lease: Lease,
}

impl RepoLock {
    /// Who holds it and why.
    #[must_use]
    pub fn info(&self) -> &Lease {
        &self.lease
    }

    /// Gives the lock up.
    pub async fn release(self) -> Result<()> {
        self.lock.release(&self.lease).await
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

async fn read_lease(store: &DynStore, key: &str) -> Option<Lease> {
    store
        .get_bytes(key)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

impl StoreLock {
    /// Lock `name` in `store`. `enforced` says whether the store enforces create-only
    /// writes; where it does not, taking the lock is refused.
    pub fn new(store: DynStore, name: &str, enforced: bool) -> Result<Self> {
        crate::lock::check_name(name)?;
        Ok(Self {
            store,
            name: name.to_owned(),
            enforced,
        })
    }

    fn location(&self) -> String {
        format!(" in {}", self.store.url())
    }

    fn held(&self, h: &Lease) -> crate::Error {
        h.held_error(&self.location())
    }

    async fn newest(&self) -> Result<Option<(u64, Option<Lease>)>> {
        let Some(n) = generations(&self.store, &self.name).await?.last().copied() else {
            return Ok(None);
        };
        let key = generation_key(&self.name, n);
        Ok(Some((n, read_lease(&self.store, &key).await)))
    }
}

#[async_trait]
impl Lock for StoreLock {
    fn name(&self) -> String {
        format!("{}/locks/{}", self.store.url(), self.name)
    }

    async fn acquire(&self, request: &LockRequest) -> Result<Lease> {
        let (store, name, url) = (&self.store, self.name.as_str(), self.store.url());
        if !self.enforced {
            return Err(err!(
                Unsupported,
                "cannot take lock {name:?} in {url}: this store does not enforce create-only writes (If-None-Match), so two processes could both take it; take it on a Kubernetes Lease instead (--lock k8s:CONTEXT/NAMESPACE/NAME), or use a store that enforces them (AWS S3, a local folder)"
            ));
        }
        let newest = self.newest().await?;
        // An unreadable lock object is taken over like an expired one.
        if let Some((_, Some(h))) = &newest {
            if !request.may_take_over(h) {
                return Err(self.held(h));
            }
            tracing::warn!(
                "taking over lock {name:?} in {url} from {} ({:?}, expires {})",
                h.holder,
                h.purpose,
                h.expires
            );
        }
        let mine = newest.map_or(1, |(n, _)| n + 1);
        let key = generation_key(name, mine);
        let lease = request.lease(name, FencingToken(mine));
        let body = serde_json::to_vec(&lease).expect("lease serializes");
        match store
            .put_bytes(&key, body.into(), PutMode::CreateOnly)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                // Another process took this generation first.
                return Err(match read_lease(store, &key).await {
                    Some(h) => self.held(&h),
                    None => err!(
                        Conflict,
                        "lock {name:?} in {url} was just taken by another process"
                    ),
                });
            }
            Err(e) => return Err(e.context(format!("taking lock {name:?} in {url}"))),
        }
        let all = generations(store, name).await?;
        if let Some(&newer) = all.iter().find(|&&n| n > mine) {
            // We paused between listing and writing, and someone took a newer generation.
            let _ = store.delete(&key).await;
            let newer_key = generation_key(name, newer);
            return Err(match read_lease(store, &newer_key).await {
                Some(h) => self.held(&h),
                None => err!(
                    Conflict,
                    "lock {name:?} in {url} was just taken by another process"
                ),
            });
        }
        for old in all.into_iter().filter(|&n| n < mine) {
            let _ = store.delete(&generation_key(name, old)).await;
        }
        Ok(lease)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let lost = |why: &str| {
            err!(
                Conflict,
                "lock {:?} in {} was lost ({why}); the holder with token {} must stop",
                self.name,
                self.store.url(),
                lease.token
            )
        };
        match self.newest().await? {
            Some((n, Some(current))) if n == lease.token.0 && current.holder == lease.holder => {
                let renewed = Lease {
                    expires: crate::lock::expiry(Timestamp::now(), ttl),
                    ..current
                };
                let body = serde_json::to_vec(&renewed).expect("lease serializes");
                self.store
                    .put_bytes(
                        &generation_key(&self.name, n),
                        body.into(),
                        PutMode::Overwrite,
                    )
                    .await?;
                Ok(renewed)
            }
            Some((n, _)) if n > lease.token.0 => Err(lost(&format!("taken over with token {n}"))),
            _ => Err(lost("released")),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        // Kept, expired: deleting it would hand the next taker token 1 again.
        let key = generation_key(&self.name, lease.token.0);
        match read_lease(&self.store, &key).await {
            Some(current) if current.holder == lease.holder && !current.expired() => {
                let released = Lease {
                    expires: Timestamp::now(),
                    ..current
                };
                let body = serde_json::to_vec(&released).expect("lease serializes");
                self.store
                    .put_bytes(&key, body.into(), PutMode::Overwrite)
                    .await
                    .map(|_| ())
            }
            _ => Ok(()),
        }
    }

    async fn holder(&self) -> Result<Option<Lease>> {
        Ok(self.newest().await?.and_then(|(_, l)| l))
    }
}

impl Repository {
    /// The store lock `name` of this repository (refused on stores that ignore
    /// create-only writes when taken).
    pub fn store_lock(&self, name: &str) -> Result<StoreLock> {
        StoreLock::new(
            self.store().clone(),
            name,
            self.config().create_only != Some(CreateOnly::Ignored),
        )
    }

    /// Takes the lock `name` for `ttl`; fails with `Conflict` naming the holder if another
    /// process holds it, and with `Unsupported` on a store that does not enforce
    /// create-only writes.
    pub async fn lock(&self, name: &str, purpose: &str, ttl: Duration) -> Result<RepoLock> {
        let lock = std::sync::Arc::new(self.store_lock(name)?);
        Self::lock_with(lock, purpose, ttl).await
    }

    /// Takes `lock` (a Kubernetes Lease, for a store that ignores create-only writes)
    /// for `ttl`; fails with `Conflict` naming the holder.
    pub async fn lock_with(
        lock: std::sync::Arc<dyn Lock>,
        purpose: &str,
        ttl: Duration,
    ) -> Result<RepoLock> {
        let lease = lock.acquire(&LockRequest::new(purpose, ttl)).await?;
        Ok(RepoLock { lock, lease })
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

    #[tokio::test]
    async fn tokens_grow_renewal_fails_once_lost_and_the_same_run_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(LocalStore::new(dir.path()));
        let repo = Repository::init(store.clone(), &InitOptions::unencrypted())
            .await
            .unwrap();
        let lock = repo.store_lock("run").unwrap();
        let first = lock
            .acquire(&LockRequest::new("run A", Duration::ZERO))
            .await
            .unwrap();
        // Expired: taken over by another holder with a higher token.
        let mut other = LockRequest::new("run B", Duration::from_hours(1));
        other.holder = "elsewhere:1".into();
        let second = lock.acquire(&other).await.unwrap();
        assert!(second.token > first.token);
        let e = lock
            .renew(&first, Duration::from_hours(1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.to_string().contains("taken over"), "{e}");
        assert!(!lock.is_current(first.token).await.unwrap());
        assert!(lock.is_current(second.token).await.unwrap());
        // Live: a stranger is refused, naming the holder, and so is the same run while
        // its process is alive (here: this one).
        let e = lock
            .acquire(&LockRequest::new("run C", Duration::from_hours(1)))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("elsewhere:1") && e.to_string().contains("run B"),
            "{e}"
        );
        assert!(
            !e.to_string().contains("delete"),
            "no advice to delete: {e}"
        );
        let mut resumed = LockRequest::new("run B", Duration::from_hours(1));
        resumed.take_over_from = Some("run B".into());
        let e = lock.acquire(&resumed).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        // Once its process is gone (same machine, pid no longer there): taken over.
        let mut dead = LockRequest::new("run D", Duration::from_hours(1));
        dead.process = crate::lock::ProcessId::exited();
        let dead_lease = lock.acquire(&dead).await;
        assert!(dead_lease.is_err(), "run B still holds it");
        lock.release(&lock.holder().await.unwrap().unwrap())
            .await
            .unwrap();
        let d = lock.acquire(&dead).await.unwrap();
        let mut resumed = LockRequest::new("run D", Duration::from_hours(1));
        resumed.take_over_from = Some("run D".into());
        let third = lock.acquire(&resumed).await.unwrap();
        assert!(third.token > d.token && d.token > second.token);
        let renewed = lock.renew(&third, Duration::from_hours(2)).await.unwrap();
        assert!(renewed.expires > third.expires);
        // Released, the lock is free but keeps its token: the next one is higher.
        lock.release(&renewed).await.unwrap();
        assert!(lock.holder().await.unwrap().unwrap().expired());
        let fourth = lock
            .acquire(&LockRequest::new("run E", Duration::from_hours(1)))
            .await
            .unwrap();
        assert!(fourth.token > third.token, "tokens never restart");
        lock.release(&fourth).await.unwrap();
    }
}
