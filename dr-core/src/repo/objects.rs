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
}
