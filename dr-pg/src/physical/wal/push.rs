//! `wal-push`: one WAL file into the archive, never overwriting different contents.

use std::path::Path;

use super::{WalFile, MAX_FILE, MIN_SEGMENT_SIZE};
use dr_core::repo::Repository;
use dr_core::store::PutMode;
use dr_core::{err, Error, ErrorKind, Result};
use serde::Serialize;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pushed {
    /// Stored now.
    Stored,
    /// The same bytes were already archived.
    AlreadyArchived,
}

/// Archives the file at `path` (PostgreSQL's `%p`).
pub async fn push(repo: &Repository, path: &Path) -> Result<Pushed> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| err!(InvalidInput, "{} has no file name", path.display()))?;
    // Only the timeline goes into the key, and parsing with the smallest segment size
    // accepts every well-formed name.
    let file = WalFile::parse(name, MIN_SEGMENT_SIZE)?;
    let key = file.key(name);
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    // Look first: a store that ignores create-only writes must not overwrite either.
    match repo.get_object(&key, MAX_FILE).await {
        Ok(existing) if existing == data => return Ok(Pushed::AlreadyArchived),
        Ok(_) => {
            return Err(err!(
                AlreadyExists,
                "{name} is already archived in {} with different contents; refusing to overwrite it (two servers may be archiving into one repository: give each its own)",
                repo.store().url()
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.context(format!("checking whether {name} is archived"))),
    }
    match repo.put_object(&key, data, PutMode::CreateOnly).await {
        Ok(_) => Ok(Pushed::Stored),
        // A concurrent push of the same file won the race: check it is the same.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Box::pin(push(repo, path)).await,
        Err(e) => Err(e.context(format!("archiving {name}"))),
    }
}
