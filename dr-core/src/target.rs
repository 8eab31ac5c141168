//! Databases a runbook acts on: a self-managed Postgres, an RDS instance. Each
//! implementation says what it can do; everything else answers `Unsupported` with a
//! reason, so a planner can refuse a runbook before anything runs.

use std::fmt;
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
    /// Turn a replica into a standalone primary.
    Promote,
    /// Restore to a moment into a new database or instance.
    PointInTimeRestore,
    /// Take a backup or snapshot.
    Backup,
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
    /// Where clients connect (`host:port`), once known.
    pub endpoint: Option<String>,
    /// The database it replicates from, for a replica.
    pub replicating_from: Option<String>,
    /// How far behind its source a replica is, where the service reports it.
    #[serde(with = "crate::duration_secs::option", default)]
    pub replication_lag: Option<Duration>,
}

/// The moment to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PitrTarget {
    /// The latest restorable moment.
    Latest,
    /// A moment in the retention window.
    Time(Timestamp),
}

impl fmt::Display for PitrTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("the latest restorable time"),
            Self::Time(t) => write!(f, "{t}"),
        }
    }
}

/// A database that a runbook can promote, restore or ask for its health.
#[async_trait]
pub trait DatabaseTarget: Send + Sync + fmt::Debug {
    /// Its name, for messages and journals.
    fn name(&self) -> String;

    /// What it supports.
    fn capabilities(&self) -> Vec<Capability>;

    /// Availability, role, endpoint.
    async fn health(&self) -> Result<Health>;

    /// Makes it a standalone primary and waits until it takes writes. Already a
    /// primary is success.
    async fn promote(&self, wait: &Wait) -> Result<Health> {
        let _ = wait;
        Err(unsupported(&self.name(), "promotion"))
    }

    /// Restores it to `target` into a new database called `new_name`, and waits.
    async fn restore_to_point_in_time(
        &self,
        target: PitrTarget,
        new_name: &str,
        wait: &Wait,
    ) -> Result<Health> {
        let _ = (target, new_name, wait);
        Err(unsupported(&self.name(), "point-in-time restore"))
    }
}

fn unsupported(name: &str, what: &str) -> crate::Error {
    err!(Unsupported, "{name} does not support {what}")
}
