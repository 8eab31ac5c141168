//! Object stores: where repositories live. A [`BackupStore`] is a flat key space of
//! immutable-ish objects with streaming reads and writes and one atomic primitive,
//! create-only put, on which locks and commits stand.

mod ext;
mod local;
mod memory;
mod url;

use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use jiff::Timestamp;

pub use self::ext::BackupStoreExt;
pub use self::local::LocalStore;
pub use self::memory::MemoryStore;
pub use self::url::{open_url, StoreUrl};
use crate::{err, Result};

/// A stream of byte buffers, as every store reads and writes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A stream of listing entries.
pub type ListStream<'a> = Pin<Box<dyn Stream<Item = Result<ObjectMeta>> + Send + 'a>>;

/// How a put treats an existing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Fail with `AlreadyExists` if the key exists; atomic against concurrent writers.
    CreateOnly,
}

/// What a store knows of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, where the store knows.
    pub modified: Option<Timestamp>,
}

/// Object storage for repositories: local folder, memory, S3.
///
/// Keys are `/`-separated relative paths of printable characters without `..` segments.
#[async_trait]
pub trait BackupStore: Send + Sync + fmt::Debug {
    /// The store's URL, without secrets.
    fn url(&self) -> String;

    /// A URL that opens this same store again in another process (a recovered server's
    /// `restore_command`, a resumed run): the URL with the options that say where the
    /// store is (region, endpoint), never secrets. The same as [`BackupStore::url`] where
    /// there are no options.
    fn location(&self) -> String {
        self.url()
    }

    /// Writes `data` under `key`. The object becomes visible whole or not at all.
    async fn put(&self, key: &str, data: ByteStream, mode: PutMode) -> Result<ObjectMeta>;

    /// Reads `key`, or only `range` of it (clamped to the object's end).
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Size and time of `key`.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Every object whose key starts with `prefix`, in no promised order.
    fn list<'a>(&'a self, prefix: &'a str) -> ListStream<'a>;

    /// Removes `key`; removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Removes many keys; stores with a batch call override this.
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }

    /// How many requests to keep in flight for good throughput (round trips to a remote
    /// store hide behind parallelism); 0 lets the caller decide.
    fn concurrency_hint(&self) -> usize {
        0
    }
}

/// A shared store handle, as the repository and adapters hold it.
pub type DynStore = Arc<dyn BackupStore>;

/// Rejects keys that could escape a store's root or mean different things to different backends.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.ends_with('/')
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || key.chars().any(char::is_control)
        || key.contains('\\');
    if bad {
        return Err(err!(
            InvalidInput,
            "invalid object key {key:?}: keys are relative '/'-separated paths without empty, '.' or '..' segments"
        ));
    }
    Ok(())
}

/// Clamps a requested range to an object of `size` bytes.
pub(crate) fn clamp_range(range: Option<Range<u64>>, size: u64) -> Range<u64> {
    match range {
        None => 0..size,
        Some(r) => r.start.min(size)..r.end.min(size).max(r.start.min(size)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for bad in [
            "", "/a", "a/", "a//b", "../x", "a/../b", "a/./b", "a\\b", "a\nb",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["config", "chunks/ab/abcd", "snapshots/2026-x"] {
            validate_key(good).unwrap();
        }
    }

    #[test]
    fn ranges_clamp() {
        assert_eq!(clamp_range(None, 10), 0..10);
        assert_eq!(clamp_range(Some(2..5), 10), 2..5);
        assert_eq!(clamp_range(Some(8..50), 10), 8..10);
        assert_eq!(clamp_range(Some(20..30), 10), 10..10);
    }
}
