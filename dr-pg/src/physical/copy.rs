//! Copying to a second repository: the archived WAL first, then the snapshots, so a base
//! backup that is in the copy always has the WAL it needs there.

use dr_core::progress::Progress;
use dr_core::repo::retention::Tier;
use dr_core::repo::{CopyReport, Repository, Selection, Snapshot, SnapshotRef};
use dr_core::Result;
use serde::{Deserialize, Serialize};

use crate::physical::wal::{self, WalCopyReport, WalSelection};
use crate::{BaseMetadata, KIND_BASE};

/// What a copy to another repository does: the same options from the CLI, Python and a
/// runbook's `repo.copy` step. The destination's secret is not an option: it comes from
/// `DRKIT_TO_PASSWORD` / `_PASSWORD_FILE` / `_KEY_FILE`, else the source's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyOptions {
    /// The destination repository's URL.
    pub to: String,
    /// Create the destination as a replica (same keys: chunks copy as stored bytes).
    #[serde(default)]
    pub init: bool,
    /// These snapshots only; every one when empty.
    #[serde(default)]
    pub snapshots: Vec<SnapshotRef>,
    /// Only snapshots of this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only the newest of each source and kind per calendar period (UTC).
    #[serde(default)]
    pub tier: Option<Tier>,
    /// Archived WAL to copy first; by default all when every snapshot is copied, else
    /// what the chosen base backups need.
    #[serde(default)]
    pub wal: Option<WalSelection>,
}

impl CopyOptions {
    /// Every snapshot and all WAL to `to`.
    #[must_use]
    pub fn to(to: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            init: false,
            snapshots: Vec::new(),
            kind: None,
            tier: None,
            wal: None,
        }
    }

    /// Which snapshots it takes.
    #[must_use]
    pub fn selection(&self) -> Selection {
        Selection {
            snapshots: self.snapshots.clone(),
            kind: self.kind.clone(),
            tier: self.tier,
        }
    }

    /// The WAL it takes.
    #[must_use]
    pub fn wal_selection(&self) -> WalSelection {
        self.wal
            .unwrap_or_else(|| WalSelection::default_for(self.selection().is_all()))
    }
}

/// What [`copy`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Copied {
    /// The snapshots.
    #[serde(flatten)]
    pub snapshots: CopyReport,
    /// The WAL.
    pub wal: WalCopyReport,
}

/// Copies `snapshots` and the `selection` of archived WAL from `source` to `dest`,
/// uploading only what `dest` lacks.
pub async fn copy(
    source: &Repository,
    dest: &Repository,
    snapshots: &[Snapshot],
    selection: WalSelection,
    progress: &dyn Progress,
) -> Result<Copied> {
    let bases = snapshots
        .iter()
        .filter(|s| s.kind.as_str() == KIND_BASE)
        .map(BaseMetadata::of)
        .collect::<Result<Vec<_>>>()?;
    let wal = wal::copy(source, dest, selection, &bases, progress).await?;
    let snapshots = source.copy_to(dest, snapshots, progress).await?;
    Ok(Copied { snapshots, wal })
}
