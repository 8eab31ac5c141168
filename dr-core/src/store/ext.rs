//! Conveniences every store gets for free.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};

use super::{BackupStore, ObjectMeta, PutMode};
use crate::Result;

/// Helpers on top of [`BackupStore`]; implementors never write these.
#[async_trait]
pub trait BackupStoreExt: BackupStore {
    /// Writes a small object from memory.
    async fn put_bytes(&self, key: &str, data: Bytes, mode: PutMode) -> Result<ObjectMeta> {
        let stream = futures::stream::once(async move { Ok(data) }).boxed();
        self.put(key, stream, mode).await
    }

    /// Reads a whole object into memory; for manifests and configs, not for dumps.
    async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        let mut stream = self.get(key, None).await?;
        let mut buf = BytesMut::new();
        while let Some(part) = stream.try_next().await? {
            buf.extend_from_slice(&part);
        }
        Ok(buf.freeze())
    }

    /// Every key under `prefix`, collected.
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.list(prefix).try_collect().await
    }
}

impl<T: BackupStore + ?Sized> BackupStoreExt for T {}
