//! Databases a runbook acts on: a self-managed Postgres, an RDS instance. Each
//! implementation says what it can do; everything else answers `Unsupported` with a
//! reason, so a planner can refuse a runbook before anything runs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::wait::Wait;
use crate::{err, Result};

/// Something a [`DatabaseTarget`] can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Report availability, role and endpoint.
    Health,
    /// Report how far a replica is behind its source.
    ReplicationLag,
    /// Turn a replica into a standalone primary.
    Promote,
    /// Make an old primary refuse writes.
    Fence,
    /// Restore to a moment into a new database or instance.
    PointInTimeRestore,
    /// Take a backup or snapshot.
    Backup,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Health => "health",
            Self::ReplicationLag => "replication lag",
            Self::Promote => "promotion",
            Self::Fence => "fencing",
            Self::PointInTimeRestore => "point-in-time restore",
            Self::Backup => "backup",
        })
    }
}

/// Whether a database takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes writes.
    Primary,
    /// Follows another database.
    Replica,
}

/// What a target says about itself now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// The target's name (instance id, cluster name).
    pub name: String,
    /// Whether it accepts connections.
    pub available: bool,
    /// The service's own word for its state (`available`, `modifying`, …).
    pub status: String,
    /// Primary or replica.
    pub role: Role,
    /// Whether it accepts writes now: false for a replica and for a fenced primary.
    #[serde(default)]
    pub writable: bool,
    /// Where clients connect (`host:port`), once known.
    pub endpoint: Option<String>,
    /// The database it replicates from, for a replica.
    pub replicating_from: Option<String>,
    /// How far behind its source a replica is, where the service reports it.
    #[serde(with = "crate::duration_secs::option", default)]
    pub replication_lag: Option<Duration>,
    /// The position it has replayed (a replica) or written (a primary) to, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Lsn>,
}

/// A position in a database's write-ahead log (`16/B374D848`), as Postgres prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `16/B374D848`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || err!(InvalidInput, "{s:?} is not an LSN like 0/3000028");
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
            return Err(err!(InvalidInput, "{s:?} is out of range for an LSN"));
        }
        Ok(Self(hi << 32 | lo))
    }

    /// The segment number holding this position.
    #[must_use]
    pub fn segment(self, segment_size: u64) -> u64 {
        self.0 / segment_size
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Lsn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Lsn".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-9A-Fa-f]+/[0-9A-Fa-f]+$", "x-type": "lsn"})
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// The moment to recover or restore to, for every kind of database: RDS takes a time or
/// the latest; self-managed Postgres also an LSN or a restore point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PointInTime {
    /// The latest moment that can be recovered.
    Latest,
    /// A moment in the window (`recovery_target_time`).
    Time(Timestamp),
    /// A WAL position (`recovery_target_lsn`).
    Lsn(Lsn),
    /// A restore point made with `pg_create_restore_point` (`recovery_target_name`).
    Name(String),
}

impl PointInTime {
    /// Builds one from the frontends' separate arguments: exactly one must be given.
    pub fn from_parts(
        time: Option<Timestamp>,
        lsn: Option<Lsn>,
        name: Option<String>,
        latest: bool,
    ) -> Result<Self> {
        match (time, lsn, name, latest) {
            (Some(t), None, None, false) => Ok(Self::Time(t)),
            (None, Some(l), None, false) => Ok(Self::Lsn(l)),
            (None, None, Some(n), false) => Ok(Self::Name(n)),
            (None, None, None, true) => Ok(Self::Latest),
            _ => Err(err!(
                InvalidInput,
                "give exactly one recovery target: a time, an LSN, a restore point name, or latest"
            )),
        }
    }
}

impl fmt::Display for PointInTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("the latest recoverable moment"),
            Self::Time(t) => write!(f, "time {t}"),
            Self::Lsn(l) => write!(f, "LSN {l}"),
            Self::Name(n) => write!(f, "restore point {n:?}"),
        }
    }
}

/// A database that a runbook can promote, fence, restore or ask for its health.
#[async_trait]
pub trait DatabaseTarget: Send + Sync + fmt::Debug {
    /// Its name, for messages and journals.
    fn name(&self) -> String;

    /// What it supports.
    fn capabilities(&self) -> Vec<Capability>;

    /// Availability, role, endpoint, lag.
    async fn health(&self) -> Result<Health>;

    /// Itself as its own type, for the adapter's actions that need more than this trait
    /// (a drill's canary needs a Postgres connection).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    /// Makes it a standalone primary and waits until it takes writes. Already a
    /// primary is success.
    async fn promote(&self, wait: &Wait) -> Result<Health> {
        let _ = wait;
        Err(unsupported(&self.name(), Capability::Promote))
    }

    /// Makes it refuse writes (an old primary, before its replica is promoted) and waits
    /// until it does. Already refusing writes is success.
    async fn fence(&self, wait: &Wait) -> Result<Health> {
        let _ = wait;
        Err(unsupported(&self.name(), Capability::Fence))
    }

    /// Restores it to `target` into a new database called `new_name`, and waits.
    async fn restore_to_point_in_time(
        &self,
        target: &PointInTime,
        new_name: &str,
        wait: &Wait,
    ) -> Result<Health> {
        let _ = (target, new_name, wait);
        Err(unsupported(&self.name(), Capability::PointInTimeRestore))
    }
}

/// The `Unsupported` error of a target lacking `what`.
#[must_use]
pub fn unsupported(name: &str, what: Capability) -> crate::Error {
    err!(Unsupported, "{name} does not support {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_as_text() {
        let l = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(serde_json::to_string(&l).unwrap(), "\"16/B374D848\"");
        assert!(Lsn::parse("nope").is_err());
    }

    #[test]
    fn points_in_time_read_as_runbooks_write_them() {
        let p: PointInTime = serde_json::from_str(r#""latest""#).unwrap();
        assert_eq!(p, PointInTime::Latest);
        let p: PointInTime = serde_json::from_str(r#"{"lsn": "0/3000028"}"#).unwrap();
        assert_eq!(p, PointInTime::Lsn(Lsn(0x300_0028)));
        let p: PointInTime = serde_json::from_str(r#"{"time": "2026-12-01T03:15:00Z"}"#).unwrap();
        assert!(matches!(p, PointInTime::Time(_)));
        assert!(PointInTime::from_parts(None, None, None, false).is_err());
    }
}
