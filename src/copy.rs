//! Copies to a repository at another URL (another region or provider).

use dr_core::progress::Progress;
use dr_core::repo::{OpenOptions, Repository, Secret};
use dr_core::Result;
use dr_pg::{Copied, CopyOptions};
use serde::Serialize;

/// What a copy did, and where to.
#[derive(Debug, Clone, Serialize)]
pub struct CopyOutcome {
    /// The destination (its URL without options).
    pub destination: String,
    /// Snapshots and WAL copied.
    #[serde(flatten)]
    pub copied: Copied,
}

/// Copies what `options` selects from `source` to the repository at `options.to`,
/// archived WAL first. The destination is created as a replica with `init`; otherwise it
/// opens with `secret`, else `DRKIT_TO_PASSWORD` / `_PASSWORD_FILE` / `_KEY_FILE`, else
/// the source's secret from the environment.
pub async fn copy(
    source: &Repository,
    options: &CopyOptions,
    secret: Option<Secret>,
    progress: &dyn Progress,
) -> Result<CopyOutcome> {
    let store = crate::open_store(&options.to)?;
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
    let copied = dr_pg::copy(source, &dest, &chosen, options.wal_selection(), progress).await?;
    Ok(CopyOutcome {
        destination: dest.store().url(),
        copied,
    })
}
