//! An in-memory store for tests, doctests and dry runs.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use jiff::Timestamp;

use super::{clamp_range, validate_key, BackupStore, ByteStream, ListStream, ObjectMeta, PutMode};
use crate::{err, Result};

/// A [`BackupStore`] held in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    name: String,
    objects: Mutex<BTreeMap<String, (Bytes, Timestamp)>>,
}

impl MemoryStore {
    /// A new, empty, unnamed store.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The store called `name` in this process, created empty on first use.
    pub fn named(name: &str) -> Arc<Self> {
        static NAMED: OnceLock<Mutex<HashMap<String, Arc<MemoryStore>>>> = OnceLock::new();
        let mut map = NAMED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Self {
                    name: name.to_owned(),
                    ..Self::default()
                })
            })
            .clone()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (Bytes, Timestamp)>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the bytes of `key` in place, bypassing every check; for corruption tests.
    pub fn tamper(&self, key: &str, f: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        let mut objects = self.objects();
        let entry = objects
            .get_mut(key)
            .ok_or_else(|| err!(NotFound, "object {key} not found"))?;
        let mut data = entry.0.to_vec();
        f(&mut data);
        entry.0 = Bytes::from(data);
        Ok(())
    }
}

#[async_trait]
impl BackupStore for MemoryStore {
    fn url(&self) -> String {
        format!("memory://{}", self.name)
    }

    async fn put(&self, key: &str, mut data: ByteStream, mode: PutMode) -> Result<ObjectMeta> {
        validate_key(key)?;
        let mut buf = BytesMut::new();
        while let Some(part) = data.next().await {
            buf.extend_from_slice(&part?);
        }
        let size = buf.len() as u64;
        let now = Timestamp::now();
        let mut objects = self.objects();
        if mode == PutMode::CreateOnly && objects.contains_key(key) {
            return Err(err!(AlreadyExists, "object {key} already exists"));
        }
        objects.insert(key.to_owned(), (buf.freeze(), now));
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
            modified: Some(now),
        })
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        validate_key(key)?;
        let data = self
            .objects()
            .get(key)
            .map(|(d, _)| d.clone())
            .ok_or_else(|| err!(NotFound, "object {key} not found in {}", self.url()))?;
        let r = clamp_range(range, data.len() as u64);
        let slice = data.slice(r.start as usize..r.end as usize);
        let parts: Vec<Result<Bytes>> = if slice.is_empty() {
            vec![]
        } else {
            vec![Ok(slice)]
        };
        Ok(futures::stream::iter(parts).boxed())
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        self.objects()
            .get(key)
            .map(|(d, t)| ObjectMeta {
                key: key.to_owned(),
                size: d.len() as u64,
                modified: Some(*t),
            })
            .ok_or_else(|| err!(NotFound, "object {key} not found in {}", self.url()))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> ListStream<'a> {
        let items: Vec<Result<ObjectMeta>> = self
            .objects()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (d, t))| {
                Ok(ObjectMeta {
                    key: k.clone(),
                    size: d.len() as u64,
                    modified: Some(*t),
                })
            })
            .collect();
        futures::stream::iter(items).boxed()
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.objects().remove(key);
        Ok(())
    }
}
