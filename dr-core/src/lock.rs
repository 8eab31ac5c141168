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
    /// The holding process, precisely enough for a taker on the same machine to tell
    /// whether it is gone (absent in leases written by older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessId>,
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

    /// Whether the lease has run out (or was released) by this machine's clock.
    #[must_use]
    pub fn expired(&self) -> bool {
        self.expires <= Timestamp::now()
    }
}

/// A process, named precisely enough that a process on the same machine can tell whether
/// it still runs: the host, the kernel's boot id, the PID namespace, the pid and the
/// process's start time (so a reused pid is not mistaken for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// [`hostname`].
    pub host: String,
    /// `/proc/sys/kernel/random/boot_id`: changes with every boot.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// The PID namespace (`/proc/self/ns/pid`): containers on one kernel have their own.
    #[serde(default)]
    pub pid_namespace: Option<String>,
    /// The process id.
    pub pid: u32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat`).
    #[serde(default)]
    pub start: Option<u64>,
}

/// Whether a process is there, as far as this machine can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs on this machine.
    Alive,
    /// It ran on this machine (same host, boot and PID namespace) and no longer does.
    Gone,
    /// It runs, or ran, elsewhere: only its lease can tell.
    Unknown,
}

impl ProcessId {
    /// This process.
    #[must_use]
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            host: hostname(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|b| b.trim().to_owned()),
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
            pid,
            start: start_ticks(pid),
        }
    }

    /// A process of this machine that has exited: a crashed holder, for tests of
    /// take-overs.
    #[must_use]
    pub fn exited() -> Self {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("`true` runs");
        let pid = child.id();
        let _ = child.wait();
        Self {
            pid,
            start: Some(0),
            ..Self::current()
        }
    }

    /// Process `pid` of this machine (its start time read now).
    #[must_use]
    pub fn of_pid(pid: u32) -> Self {
        Self {
            pid,
            start: start_ticks(pid),
            ..Self::current()
        }
    }

    /// Whether it names a process of this machine (same host, boot and PID namespace).
    #[must_use]
    pub fn here(&self) -> bool {
        let here = Self::current();
        self.host == here.host
            && self.boot_id.is_some()
            && self.boot_id == here.boot_id
            && self.pid_namespace.is_some()
            && self.pid_namespace == here.pid_namespace
    }

    /// Whether this process still runs, judged from this machine.
    #[must_use]
    pub fn liveness(&self) -> Liveness {
        if !self.here() {
            return Liveness::Unknown;
        }
        match (start_ticks(self.pid), self.start) {
            (Some(now), Some(then)) if now == then => Liveness::Alive,
            (Some(_), None) => Liveness::Unknown,
            _ => Liveness::Gone,
        }
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

/// The start time of process `pid` (ticks since boot), `None` when it does not exist or
/// is a zombie.
pub(crate) fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    if matches!(fields.first(), Some(&("Z" | "X"))) {
        return None;
    }
    fields.get(19)?.parse().ok()
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
    /// Take the lock over while live when its holder's purpose is this (the same run,
    /// resumed) and its holder's process is provably gone (same machine, pid no longer
    /// there). A holder elsewhere is waited out like any other.
    pub take_over_from: Option<String>,
    /// The asking process.
    pub process: ProcessId,
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
            process: ProcessId::current(),
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
            process: Some(self.process.clone()),
        }
    }

    /// Whether `current` is held for the purpose in `take_over_from` by a process that is
    /// provably gone: the one case a live lease may be taken over at once.
    #[must_use]
    pub fn holder_is_dead(&self, current: &Lease) -> bool {
        self.take_over_from.as_deref() == Some(current.purpose.as_str())
            && current
                .process
                .as_ref()
                .is_some_and(|p| p.liveness() == Liveness::Gone)
    }

    /// Whether this request may take `current` over now: expired (or released), or held
    /// by a dead process of the purpose named in `take_over_from`.
    #[must_use]
    pub fn may_take_over(&self, current: &Lease) -> bool {
        current.expired() || self.holder_is_dead(current)
    }
}

/// The names [`check_name`] takes, as a regular expression (for JSON Schemas).
pub const NAME_PATTERN: &str = r"^(?!\.{1,2}$)[^/\\\u0000-\u001f\u007f-\u009f]{1,200}$";

/// Refuses a lock name no lock can be stored under: empty, `.` or `..`, with `/`, `\\`
/// or a control character, or over 200 characters.
pub fn check_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 200
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(err!(
            InvalidInput,
            "lock name {name:?} cannot be used: give 1 to 200 characters without '/', '\\' or control characters, other than '.' and '..'"
        ));
    }
    Ok(())
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

    /// Gives the lock up, keeping its fencing token for the next taker to exceed;
    /// releasing a lock already lost is not an error.
    async fn release(&self, lease: &Lease) -> Result<()>;

    /// The live or expired lease that holds it now, if any.
    async fn holder(&self) -> Result<Option<Lease>>;

    /// Whether `token` is still the newest acquisition (a writer checks before it writes).
    async fn is_current(&self, token: FencingToken) -> Result<bool> {
        Ok(self.holder().await?.is_some_and(|l| l.token == token))
    }
}
