//! Named objects beside the snapshots (WAL segments, markers): each compressed and,
//! in an encrypted repository, sealed with its key as associated data, so an object
//! moved to another key fails its check.

use bytes::Bytes;

use super::chunk;
use super::Repository;
use crate::store::{BackupStoreExt, PutMode};
use crate::{err, ErrorKind, Result};

impl Repository {
    /// Stores `plain` under `key`; returns the stored size.
    pub async fn put_object(&self, key: &str, plain: Vec<u8>, mode: PutMode) -> Result<u64> {
        let keys = self.keys().cloned();
        let level = self.config().compression_level;
        let aad = format!("object:{key}");
        let encoded = tokio::task::spawn_blocking(move || {
            chunk::encode(&plain, level, keys.as_ref(), aad.as_bytes())
        })
        .await
        .map_err(|e| err!(Io, "compression worker failed: {e}"))??;
        let n = encoded.len() as u64;
        self.store()
            .put_bytes(key, Bytes::from(encoded), mode)
            .await?;
        Ok(n)
    }

    /// Reads and checks what [`Repository::put_object`] stored; at most `max_len` bytes
    /// once decompressed.
    pub async fn get_object(&self, key: &str, max_len: usize) -> Result<Vec<u8>> {
        let stored = self.store().get_bytes(key).await?;
        let keys = self.keys().cloned();
        let aad = format!("object:{key}");
        let shown = format!("{}/{key}", self.store().url());
        tokio::task::spawn_blocking(move || {
            chunk::decode(&stored, keys.as_ref(), aad.as_bytes(), max_len).map_err(|e| {
                if e.kind() == ErrorKind::WrongKey || e.kind() == ErrorKind::Corrupt {
                    err!(Corrupt, "{shown} failed its check: {}", e.message())
                } else {
                    e
                }
            })
        })
        .await
        .map_err(|e| err!(Io, "decompression worker failed: {e}"))?
    }

    /// Copies the object at `key` into `dest` under the same key, create-only: as stored
    /// when both repositories share their keys (checked before it is written, so damage
    /// does not spread), else decrypted and sealed again with `dest`'s keys. Returns the
    /// bytes written, or `None` when `dest` already holds the key.
    pub async fn copy_object(
        &self,
        dest: &Repository,
        key: &str,
        max_len: usize,
    ) -> Result<Option<u64>> {
        let same_keys = self.config().id == dest.config().id
            && self.config().encryption == dest.config().encryption;
        let stored = self.store().get_bytes(key).await?;
        let keys = self.keys().cloned();
        let dest_keys = dest.keys().cloned();
        let level = dest.config().compression_level;
        let aad = format!("object:{key}");
        let shown = format!("{}/{key}", self.store().url());
        let check = stored.clone();
        let reencoded = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>> {
            let plain =
                chunk::decode(&check, keys.as_ref(), aad.as_bytes(), max_len).map_err(|e| {
                    err!(
                        Corrupt,
                        "{shown} failed its check ({}); it was not copied",
                        e.message()
                    )
                })?;
            if same_keys {
                return Ok(None);
            }
            chunk::encode(&plain, level, dest_keys.as_ref(), aad.as_bytes()).map(Some)
        })
        .await
        .map_err(|e| err!(Io, "object worker failed: {e}"))??;
        let body = reencoded.map_or(stored, Bytes::from);
        let n = body.len() as u64;
        match dest.store().put_bytes(key, body, PutMode::CreateOnly).await {
            Ok(_) => Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e),
        }
    }
}
