//! Copying to a second repository: the archived WAL first, then the snapshots, so a base
//! backup that is in the copy always has the WAL it needs there.

use dr_core::progress::Progress;
use dr_core::repo::{CopyReport, Repository, Snapshot};
use dr_core::Result;
use serde::Serialize;

use crate::wal::{self, WalCopyReport, WalSelection};
use crate::{BaseMetadata, KIND_BASE};

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
