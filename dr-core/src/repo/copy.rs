//! Copying snapshots to a second repository (another region, another provider),
//! deduplicating against what is already there. Every chunk is checked before it is
//! written; each manifest is written last, create-only, so an interrupted copy leaves no
//! snapshot that looks complete.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde::Serialize;

use super::chunk::{self, ChunkId};
use super::manifest::{ChunkRef, Snapshot, SnapshotId};
use super::{probe_create_only, Repository, CONFIG_KEY};
use crate::progress::Progress;
use crate::store::{BackupStoreExt, DynStore, PutMode};
use crate::{err, Error, ErrorKind, Result};

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots written to the destination.
    pub copied: Vec<SnapshotId>,
    /// Snapshots the destination already had.
    pub already_there: Vec<SnapshotId>,
    /// Chunks uploaded.
    pub chunks_uploaded: u64,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Chunks the destination already had.
    pub chunks_present: u64,
    /// Whether chunks were copied as stored (same keys) or re-encrypted.
    pub reencrypted: bool,
}

impl Repository {
    /// Creates a repository in `store` that shares this one's id, keys and chunking, so
    /// snapshots copy into it as stored bytes and the same secret opens it.
    pub async fn init_replica(&self, store: DynStore) -> Result<Repository> {
        if store.head(CONFIG_KEY).await.is_ok() {
            return Err(err!(
                AlreadyExists,
                "a drkit repository already exists at {}; copy into it without --init",
                store.url()
            ));
        }
        let mut config = self.config().clone();
        config.created = Timestamp::now();
        config.create_only = Some(probe_create_only(&*store, &config.id).await?);
        let json = serde_json::to_vec_pretty(&config).expect("config serializes");
        store
            .put_bytes(CONFIG_KEY, json.into(), PutMode::CreateOnly)
            .await
            .map_err(|e| {
                e.context(format!(
                    "initialising replica repository at {}",
                    store.url()
                ))
            })?;
        // The same secrets open the replica: its key slots come along.
        super::keyslots::copy_slots(&**self.store(), &*store).await?;
        Ok(Repository::from_parts(
            store,
            config,
            self.keys().cloned(),
            self.parallelism(),
        ))
    }

    /// Copies `snapshots` into `dest`, uploading only chunks it lacks.
    pub async fn copy_to(
        &self,
        dest: &Repository,
        snapshots: &[Snapshot],
        progress: &dyn Progress,
    ) -> Result<CopyReport> {
        let same_keys = self.config().id == dest.config().id
            && self.config().encryption == dest.config().encryption;
        let known: HashSet<String> = dest
            .store()
            .list("chunks/")
            .map_ok(|m| m.key)
            .try_collect()
            .await?;
        let known = Arc::new(Mutex::new(known));
        let have: HashSet<String> = dest
            .store()
            .list("snapshots/")
            .map_ok(|m| m.key)
            .try_collect()
            .await?;
        let mut report = CopyReport {
            reencrypted: !same_keys,
            ..CopyReport::default()
        };
        for snap in snapshots {
            if have.contains(&snap.id.key()) {
                report.already_there.push(snap.id.clone());
                continue;
            }
            progress.phase(&format!("copy {}", snap.id));
            let mut distinct = HashSet::new();
            let chunks: Vec<ChunkRef> = snap
                .files
                .iter()
                .flat_map(|f| f.chunks.iter().copied())
                .filter(|c| distinct.insert(c.id))
                .collect();
            let results: Vec<(ChunkId, ChunkId, Option<u64>)> = futures::stream::iter(chunks)
                .map(|c| {
                    let known = known.clone();
                    async move {
                        self.copy_chunk(dest, c, same_keys, &known)
                            .await
                            .map(|(new, up)| (c.id, new, up))
                    }
                })
                .buffer_unordered(self.parallelism().max(dest.parallelism()))
                .inspect_ok(|(_, _, up)| progress.advance(up.unwrap_or(0), up.unwrap_or(0)))
                .try_collect()
                .await
                .map_err(|e: Error| {
                    e.context(format!(
                        "copying snapshot {} to {}",
                        snap.id,
                        dest.store().url()
                    ))
                })?;
            let mut map = BTreeMap::new();
            for (old, new, uploaded) in results {
                map.insert(old, new);
                match uploaded {
                    Some(n) => {
                        report.chunks_uploaded += 1;
                        report.bytes_uploaded += n;
                    }
                    None => report.chunks_present += 1,
                }
            }
            let mut copy = snap.clone();
            if !same_keys {
                for file in &mut copy.files {
                    let mut hash = match dest.keys() {
                        Some(k) => blake3::Hasher::new_keyed(k.id_key()),
                        None => blake3::Hasher::new(),
                    };
                    for c in &mut file.chunks {
                        c.id = map[&c.id];
                        hash.update(&c.id.0);
                    }
                    file.hash = ChunkId(*hash.finalize().as_bytes());
                }
            }
            dest.write_manifest(&copy).await?;
            report.copied.push(snap.id.clone());
        }
        Ok(report)
    }

    /// Copies one chunk if `dest` lacks it; returns its id there and the bytes uploaded.
    async fn copy_chunk(
        &self,
        dest: &Repository,
        c: ChunkRef,
        same_keys: bool,
        known: &Mutex<HashSet<String>>,
    ) -> Result<(ChunkId, Option<u64>)> {
        let claim = |id: &ChunkId| {
            known
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.key())
        };
        if same_keys {
            if !claim(&c.id) {
                return Ok((c.id, None));
            }
            let stored = self
                .store()
                .get_bytes(&c.id.key())
                .await
                .map_err(|e| missing(e, &c))?;
            // Check before writing: a damaged source chunk must not spread to the copy.
            let keys = self.keys().cloned();
            let check = stored.clone();
            tokio::task::spawn_blocking(move || {
                let plain = chunk::decode(&check, keys.as_ref(), &c.id.0, c.len as usize)?;
                if plain.len() != c.len as usize || ChunkId::of(keys.as_ref(), &plain) != c.id {
                    return Err(err!(Corrupt, "chunk {} failed its checksum", c.id.short()));
                }
                Ok(())
            })
            .await
            .map_err(|e| err!(Io, "chunk worker failed: {e}"))?
            .map_err(|e| err!(Corrupt, "chunk {} is damaged in the source ({}); nothing of this snapshot was committed to the copy", c.id.short(), e.message()))?;
            let n = stored.len() as u64;
            dest.store()
                .put_bytes(&c.id.key(), stored, PutMode::Overwrite)
                .await?;
            return Ok((c.id, Some(n)));
        }
        let plain = self.read_chunk(c).await?;
        let keys = dest.keys().cloned();
        let level = dest.config().compression_level;
        let (id, encoded) = tokio::task::spawn_blocking(move || -> Result<(ChunkId, Vec<u8>)> {
            let id = ChunkId::of(keys.as_ref(), &plain);
            Ok((id, chunk::encode(&plain, level, keys.as_ref(), &id.0)?))
        })
        .await
        .map_err(|e| err!(Io, "chunk worker failed: {e}"))??;
        if !claim(&id) {
            return Ok((id, None));
        }
        let n = encoded.len() as u64;
        dest.store()
            .put_bytes(&id.key(), Bytes::from(encoded), PutMode::Overwrite)
            .await?;
        Ok((id, Some(n)))
    }
}

fn missing(e: Error, c: &ChunkRef) -> Error {
    if e.kind() == ErrorKind::NotFound {
        err!(
            Corrupt,
            "chunk {} is missing from the source repository",
            c.id.short()
        )
    } else {
        e.context(format!("reading chunk {}", c.id.short()))
    }
}
