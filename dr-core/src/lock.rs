//! Mutual exclusion for runs and maintenance: one holder at a time per lock name, with a
//! lease that expires if the holder dies and a fencing token that grows with every
//! acquisition, so a holder that lost the lock can be told apart from the one that has it.
//! Implemented by a create-only store object ([`crate::repo::StoreLock`]), a Kubernetes
//! Lease, and [`crate::fake::MemoryLock`] for tests.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{err, Result};

/// Grows by at least one with every acquisition of a lock: a write carrying a smaller
/// token than the newest comes from a holder that lost the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A held lock, as its holder and everyone else sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The lock's name.
    pub name: String,
    /// Who holds it (`host:pid` by default).
    pub holder: String,
    /// What the holder is doing (`prune`, `run 0193…`).
    pub purpose: String,
    /// This acquisition's fencing token.
    pub token: FencingToken,
    /// When it was taken.
    pub acquired: Timestamp,
    /// When it may be taken over unless renewed.
    pub expires: Timestamp,
}

impl Lease {
    /// The `Conflict` error others get while this lease is live.
    #[must_use]
    pub fn held_error(&self, location: &str) -> crate::Error {
        err!(
            Conflict,
            "lock {:?}{location} is held by {} for {:?} since {} (until {}, token {}); wait for it to finish or expire",
            self.name,
            self.holder,
            self.purpose,
            self.acquired,
            self.expires,
            self.token
        )
    }
}

/// What to ask for when taking a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// Who is asking (`host:pid` by default).
    pub holder: String,
    /// What for.
    pub purpose: String,
    /// How long the lease lasts unless renewed.
    pub ttl: Duration,
    /// Take the lock over at once, even while live, when its holder's purpose is this
    /// (the same run resumed elsewhere after its process died).
    pub take_over_from: Option<String>,
}

impl LockRequest {
    /// A request by this process (`host:pid`) for `purpose`, lasting `ttl`.
    #[must_use]
    pub fn new(purpose: impl Into<String>, ttl: Duration) -> Self {
        Self {
            holder: format!("{}:{}", hostname(), std::process::id()),
            purpose: purpose.into(),
            ttl,
            take_over_from: None,
        }
    }

    /// The lease this request makes, with `token`, starting now.
    #[must_use]
    pub fn lease(&self, name: &str, token: FencingToken) -> Lease {
        let now = Timestamp::now();
        Lease {
            name: name.to_owned(),
            holder: self.holder.clone(),
            purpose: self.purpose.clone(),
            token,
            acquired: now,
            expires: expiry(now, self.ttl),
        }
    }

    /// Whether this request may take `current` over now: expired, or held by the purpose
    /// named in `take_over_from`.
    #[must_use]
    pub fn may_take_over(&self, current: &Lease) -> bool {
        current.expires <= Timestamp::now()
            || self.take_over_from.as_deref() == Some(current.purpose.as_str())
    }
}

/// `now + ttl`, saturating.
#[must_use]
pub fn expiry(now: Timestamp, ttl: Duration) -> Timestamp {
    now.checked_add(SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// This machine's name, for lock holders and journals: `DRKIT_HOSTNAME` when set (a pod
/// name, a stable identity), else the kernel's host name.
#[must_use]
pub fn hostname() -> String {
    std::env::var("DRKIT_HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// One named lock.
#[async_trait]
pub trait Lock: Send + Sync + fmt::Debug {
    /// Where it lives and its name, for messages.
    fn name(&self) -> String;

    /// Takes the lock: fails with `Conflict` naming the holder, since when, until when
    /// and for what while another live lease holds it. An expired lease is taken over
    /// with a higher fencing token.
    async fn acquire(&self, request: &LockRequest) -> Result<Lease>;

    /// Extends `lease` by `ttl` from now; fails with `Conflict` when it was lost (taken
    /// over, or released), after which the holder must stop acting.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease>;

    /// Gives the lock up; releasing a lock already lost is not an error.
    async fn release(&self, lease: &Lease) -> Result<()>;

    /// The live or expired lease that holds it now, if any.
    async fn holder(&self) -> Result<Option<Lease>>;

    /// Whether `token` is still the newest acquisition (a writer checks before it writes).
    async fn is_current(&self, token: FencingToken) -> Result<bool> {
        Ok(self.holder().await?.is_some_and(|l| l.token == token))
    }
}
