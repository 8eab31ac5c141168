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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Opens the store at a URL (`file://`, `s3://`, …): the composition root knows which
/// schemes it links.
pub type OpenStore = std::sync::Arc<dyn Fn(&str) -> Result<dr_core::store::DynStore> + Send + Sync>;

/// What a copy did, and where to.
#[derive(Debug, Clone, Serialize)]
pub struct CopyOutcome {
    /// The destination (its URL without options).
    pub destination: String,
    /// Snapshots and WAL copied.
    #[serde(flatten)]
    pub copied: Copied,
}

/// Copies what `options` selects from `source` to the repository at `options.to`
/// (opened with `open`), archived WAL first. The destination is created as a replica
/// with `init`; otherwise it opens with `secret`, else `DRKIT_TO_PASSWORD` /
/// `_PASSWORD_FILE` / `_KEY_FILE`, else the source's secret from the environment.
pub async fn copy_to(
    source: &Repository,
    options: &CopyOptions,
    secret: Option<dr_core::repo::Secret>,
    open: &OpenStore,
    progress: &dyn Progress,
) -> Result<CopyOutcome> {
    use dr_core::repo::{OpenOptions, Secret};
    let store = open(&options.to)?;
    let dest = if options.init {
        source.init_replica(store).await?
    } else {
        let secret = match secret {
            Some(s) => Some(s),
            None => match Secret::from_env_prefixed("DRKIT_TO_")? {
                Some(s) => Some(s),
                None => Secret::from_env()?,
            },
        };
        let open = OpenOptions {
            secret,
            parallelism: 0,
        };
        Repository::open(store, &open).await?
    };
    let chosen = source.select(&options.selection()).await?;
    let copied = copy(source, &dest, &chosen, options.wal_selection(), progress).await?;
    Ok(CopyOutcome {
        destination: dest.store().url(),
        copied,
    })
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
