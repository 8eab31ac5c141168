//! Choosing snapshots: by reference (`latest`, an id or a unique prefix), by kind, and by
//! calendar tier (the newest of each period, on retention's calendar).

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::manifest::Snapshot;
use super::retention::Tier;
use super::Repository;
use crate::Result;

/// `latest`, a whole snapshot id, or a unique prefix of one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotRef(String);

impl SnapshotRef {
    /// The newest snapshot.
    #[must_use]
    pub fn latest() -> Self {
        Self("latest".to_owned())
    }

    /// The reference as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SnapshotRef {
    fn default() -> Self {
        Self::latest()
    }
}

impl fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SnapshotRef {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(Self::from(s))
    }
}

impl From<&str> for SnapshotRef {
    fn from(s: &str) -> Self {
        Self(s.trim().to_owned())
    }
}

/// Which snapshots an operation takes: every one when nothing is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Selection {
    /// These snapshots only (references); all when empty.
    pub snapshots: Vec<SnapshotRef>,
    /// Only snapshots of this kind (`pg_dump`, `pg_basebackup`).
    pub kind: Option<String>,
    /// Only the newest of each source and kind per calendar period (UTC).
    pub tier: Option<Tier>,
}

impl Selection {
    /// Whether it takes every snapshot.
    #[must_use]
    pub fn is_all(&self) -> bool {
        self.snapshots.is_empty() && self.kind.is_none() && self.tier.is_none()
    }
}

impl Repository {
    /// The snapshot `reference` names.
    pub async fn find(&self, reference: &SnapshotRef) -> Result<Snapshot> {
        self.find_snapshot(reference.as_str()).await
    }

    /// The snapshots `selection` takes, oldest first.
    pub async fn select(&self, selection: &Selection) -> Result<Vec<Snapshot>> {
        let mut chosen = if selection.snapshots.is_empty() {
            self.snapshots().await?
        } else {
            let mut v = Vec::new();
            for r in &selection.snapshots {
                v.push(self.find(r).await?);
            }
            v
        };
        if let Some(kind) = &selection.kind {
            chosen.retain(|s| s.kind.as_str() == kind);
        }
        if let Some(tier) = selection.tier {
            chosen = tier.newest_per_period(chosen, &TimeZone::UTC);
        }
        chosen.sort_by_key(|s| s.finished_at);
        Ok(chosen)
    }
}
