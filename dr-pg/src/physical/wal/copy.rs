//! Copying archived WAL to another repository, before the snapshots that need it.

use super::{WalFile, MAX_FILE, WAL_PREFIX};
use dr_core::repo::Repository;
use dr_core::{err, Error, Result};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

/// Which archived WAL [`copy`] takes to another repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalSelection {
    /// Every archived file the destination lacks: point-in-time recovery works there.
    All,
    /// What the given base backups need to become consistent (their first to last
    /// segment, their `.backup` file) and every timeline history file.
    Needed,
    /// None.
    None,
}

impl WalSelection {
    /// What a copy takes when not told: everything when every snapshot is copied (the
    /// copy can then recover to any point), else what the chosen base backups need.
    #[must_use]
    pub fn default_for(every_snapshot: bool) -> Self {
        if every_snapshot {
            Self::All
        } else {
            Self::Needed
        }
    }
}

impl std::str::FromStr for WalSelection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(Self::All),
            "needed" => Ok(Self::Needed),
            "none" => Ok(Self::None),
            other => Err(err!(
                InvalidInput,
                "{other:?} is not a WAL selection; use all, needed or none"
            )),
        }
    }
}

/// What a WAL copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WalCopyReport {
    /// Files written to the destination.
    pub files_copied: u64,
    /// Bytes written.
    pub bytes_copied: u64,
    /// Files the destination already had.
    pub files_present: u64,
}

/// Copies archived WAL from `source` to `dest` (as stored when they share keys, else
/// sealed again), each file checked before it is written and never overwriting. For
/// [`WalSelection::Needed`], `bases` are the base backups being copied. Copy WAL before
/// the base backups' manifests, so a copied base backup never lacks its WAL.
pub async fn copy(
    source: &Repository,
    dest: &Repository,
    selection: WalSelection,
    bases: &[crate::BaseMetadata],
    progress: &dyn dr_core::progress::Progress,
) -> Result<WalCopyReport> {
    let mut report = WalCopyReport::default();
    if selection == WalSelection::None {
        return Ok(report);
    }
    let present: std::collections::HashSet<String> = dest
        .store()
        .list(WAL_PREFIX)
        .map_ok(|m| m.key)
        .try_collect()
        .await?;
    let listed: Vec<String> = source
        .store()
        .list(WAL_PREFIX)
        .map_ok(|m| m.key)
        .try_collect()
        .await?;
    let wanted = |key: &str| -> bool {
        if selection == WalSelection::All {
            return true;
        }
        let name = key.rsplit('/').next().unwrap_or(key);
        if name.ends_with(".history") {
            return true;
        }
        bases.iter().any(|b| {
            let size = b.wal_segment_size;
            let range = |n: &str| match WalFile::parse(n, size) {
                Ok(WalFile::Segment { timeline, number }) => Some((timeline, number)),
                _ => None,
            };
            let (Some((tli, first)), Some((_, last))) = (range(&b.first_wal), range(&b.last_wal))
            else {
                return false;
            };
            match WalFile::parse(name, size) {
                Ok(WalFile::Segment { timeline, number }) => {
                    timeline == tli && (first..=last).contains(&number)
                }
                Ok(WalFile::Backup { .. }) => name.starts_with(&b.first_wal),
                _ => false,
            }
        })
    };
    let todo: Vec<String> = listed
        .into_iter()
        .filter(|k| wanted(k))
        .filter(|k| {
            let have = present.contains(k);
            if have {
                report.files_present += 1;
            }
            !have
        })
        .collect();
    progress.phase(&format!("copy {} WAL files", todo.len()));
    let parallel = source.parallelism().max(dest.parallelism());
    let copied: Vec<Option<u64>> = futures::stream::iter(todo)
        .map(|key| async move {
            source
                .copy_object(dest, &key, MAX_FILE)
                .await
                .map_err(|e| e.context(format!("copying WAL to {}", dest.store().url())))
        })
        .buffer_unordered(parallel)
        .inspect_ok(|n| progress.advance(n.unwrap_or(0), n.unwrap_or(0)))
        .try_collect()
        .await?;
    for n in copied {
        match n {
            Some(b) => {
                report.files_copied += 1;
                report.bytes_copied += b;
            }
            None => report.files_present += 1,
        }
    }
    Ok(report)
}
