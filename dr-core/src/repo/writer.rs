//! Writing snapshots: chunk, hash, compress, encrypt and upload on every core while the
//! source streams in, with a fixed number of chunks in flight.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use tokio::io::AsyncRead;
use tokio_util::io::SyncIoBridge;

use super::chunk::{self, ChunkId};
use super::manifest::{ChunkRef, FileEntry, Snapshot, SnapshotId, SnapshotKind, SnapshotStats};
use super::Repository;
use crate::progress::{NoProgress, Progress};
use crate::store::{BackupStoreExt, PutMode};
use crate::{err, Error, Result};

/// Stored sizes of the chunks already in the store, loaded once per writer.
type Known = Arc<Mutex<HashMap<ChunkId, u64>>>;

/// Builds one snapshot; dropped without [`commit`](Self::commit), it leaves only
/// unreferenced chunks, which prune removes.
pub struct SnapshotWriter {
    repo: Repository,
    kind: SnapshotKind,
    source: String,
    started_at: Timestamp,
    files: Vec<FileEntry>,
    stats: SnapshotStats,
    tags: BTreeMap<String, String>,
    known: Option<Known>,
    /// Chunks this snapshot uses without having uploaded them.
    reused: HashSet<ChunkId>,
    /// The in-flight marker that keeps a concurrent prune off this backup's chunks.
    marker: Option<String>,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for SnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

struct Processed {
    id: ChunkId,
    len: u32,
    stored: u64,
    new: bool,
}

impl SnapshotWriter {
    pub(crate) fn new(repo: Repository, kind: SnapshotKind, source: &str) -> Self {
        Self {
            repo,
            kind,
            source: source.to_owned(),
            started_at: Timestamp::now(),
            files: Vec::new(),
            stats: SnapshotStats::default(),
            tags: BTreeMap::new(),
            known: None,
            reused: HashSet::new(),
            marker: None,
            progress: Arc::new(NoProgress),
        }
    }

    /// Adds a tag to the manifest.
    pub fn tag(&mut self, key: &str, value: &str) -> &mut Self {
        self.tags.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sends progress events to `progress`.
    pub fn set_progress(&mut self, progress: Arc<dyn Progress>) -> &mut Self {
        self.progress = progress;
        self
    }

    /// Sizes so far.
    #[must_use]
    pub fn stats(&self) -> SnapshotStats {
        self.stats
    }

    async fn known(&mut self) -> Result<Known> {
        if let Some(k) = &self.known {
            return Ok(k.clone());
        }
        // Announce this backup before looking at what exists, so prune leaves it alone.
        self.marker = Some(self.repo.begin_inflight(self.started_at).await?);
        let mut map = HashMap::new();
        let mut list = self.repo.store().list("chunks/");
        while let Some(meta) = list.try_next().await? {
            if let Some(id) = ChunkId::from_key(&meta.key) {
                map.insert(id, meta.size);
            }
        }
        let known = Arc::new(Mutex::new(map));
        self.known = Some(known.clone());
        Ok(known)
    }

    /// Streams `reader` into the repository as file `name`.
    pub async fn add_file<R>(&mut self, name: &str, reader: R) -> Result<&FileEntry>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        self.add_reader(name, Box::new(OneSegment(SyncIoBridge::new(reader))))
            .await
    }

    /// The same from a blocking reader (a pipe from a child process, a file): read
    /// directly on the chunker's thread, with no hop through the async runtime per read.
    pub async fn add_file_blocking<R>(&mut self, name: &str, reader: R) -> Result<&FileEntry>
    where
        R: std::io::Read + Send + 'static,
    {
        self.add_reader(name, Box::new(OneSegment(reader))).await
    }

    /// The same from a reader made of segments that never share a chunk: the chunker
    /// starts afresh at each segment, so a segment's chunks depend on its bytes alone
    /// (one large file in a tree of files).
    pub async fn add_file_segmented<R>(&mut self, name: &str, reader: R) -> Result<&FileEntry>
    where
        R: Segmented + 'static,
    {
        self.add_reader(name, Box::new(reader)).await
    }

    async fn add_reader(&mut self, name: &str, reader: Box<dyn Segmented>) -> Result<&FileEntry> {
        self.check_name(name)?;
        let sink = self.files().await?;
        let stored = sink.store_reader(name, reader).await?;
        self.add_stored(stored)
    }

    fn check_name(&self, name: &str) -> Result<()> {
        if self.files.iter().any(|f| f.name == name) {
            return Err(err!(
                InvalidInput,
                "snapshot already has a file named {name:?}"
            ));
        }
        Ok(())
    }

    /// A handle that stores files concurrently (one table per task, say); each file it
    /// stores joins this snapshot through [`add_stored`](Self::add_stored).
    pub async fn files(&mut self) -> Result<FileSink> {
        Ok(FileSink {
            repo: self.repo.clone(),
            known: self.known().await?,
            progress: self.progress.clone(),
        })
    }

    /// Adds a file stored through [`files`](Self::files).
    pub fn add_stored(&mut self, stored: StoredFile) -> Result<&FileEntry> {
        self.check_name(&stored.entry.name)?;
        self.stats.add(&stored.stats);
        self.reused.extend(stored.reused);
        self.files.push(stored.entry);
        Ok(self.files.last().expect("just pushed"))
    }

    /// Writes the manifest (create-only), making the snapshot visible.
    pub async fn commit(mut self, metadata: serde_json::Value) -> Result<Snapshot> {
        let finished_at = Timestamp::now();
        let snap = Snapshot {
            id: SnapshotId::new(self.started_at)?,
            kind: self.kind.clone(),
            source: std::mem::take(&mut self.source),
            host: hostname(),
            started_at: self.started_at,
            finished_at,
            files: std::mem::take(&mut self.files),
            stats: self.stats,
            tags: std::mem::take(&mut self.tags),
            tool_version: format!("drkit {}", env!("CARGO_PKG_VERSION")),
            metadata,
        };
        self.repo
            .check_reused(self.started_at, &self.reused)
            .await?;
        self.repo.write_manifest(&snap).await?;
        if let Some(marker) = self.marker.take() {
            let _ = self.repo.store().delete(&marker).await;
        }
        Ok(snap)
    }
}

/// Stores files for one [`SnapshotWriter`] from several tasks at once; cheap to clone.
#[derive(Clone)]
pub struct FileSink {
    repo: Repository,
    known: Known,
    progress: Arc<dyn Progress>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink").finish_non_exhaustive()
    }
}

/// A file stored by a [`FileSink`], not yet part of a snapshot.
#[derive(Debug)]
pub struct StoredFile {
    entry: FileEntry,
    stats: SnapshotStats,
    reused: HashSet<ChunkId>,
}

impl StoredFile {
    /// Its entry (name, size, chunks).
    #[must_use]
    pub fn entry(&self) -> &FileEntry {
        &self.entry
    }

    /// What storing it cost and saved.
    #[must_use]
    pub fn stats(&self) -> SnapshotStats {
        self.stats
    }
}

impl FileSink {
    /// Streams `reader` into the repository as file `name`.
    pub async fn store<R>(&self, name: &str, reader: R) -> Result<StoredFile>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        self.store_reader(name, Box::new(OneSegment(SyncIoBridge::new(reader))))
            .await
    }

    /// The same from a blocking reader, read on the chunker's thread.
    pub async fn store_blocking<R>(&self, name: &str, reader: R) -> Result<StoredFile>
    where
        R: std::io::Read + Send + 'static,
    {
        self.store_reader(name, Box::new(OneSegment(reader))).await
    }

    async fn store_reader(&self, name: &str, reader: Box<dyn Segmented>) -> Result<StoredFile> {
        let params = self.repo.config().chunker;
        let workers = self.repo.parallelism();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>>>(workers);

        // The chunker reads the source on a blocking thread; CDC itself is cheap.
        let chunker = tokio::task::spawn_blocking(move || {
            let mut reader = reader;
            loop {
                let cdc =
                    fastcdc::v2020::StreamCDC::new(&mut reader, params.min, params.avg, params.max);
                for item in cdc {
                    let msg = item
                        .map(|c| c.data)
                        .map_err(|e| err!(Io, "reading the source stream: {e}"));
                    let stop = msg.is_err();
                    if tx.blocking_send(msg).is_err() || stop {
                        return;
                    }
                }
                if !reader.next_segment() {
                    return;
                }
            }
        });

        let repo = self.repo.clone();
        let known = self.known.clone();
        let mut results = tokio_stream_of(rx)
            .map(move |data| {
                let repo = repo.clone();
                let known = known.clone();
                async move { process(repo, known, data?).await }
            })
            .buffered(workers);

        let keys = self.repo.keys().cloned();
        let mut file_hash = match &keys {
            Some(k) => blake3::Hasher::new_keyed(k.id_key()),
            None => blake3::Hasher::new(),
        };
        let mut stored = StoredFile {
            entry: FileEntry {
                name: name.to_owned(),
                size: 0,
                hash: ChunkId([0; 32]),
                chunks: Vec::new(),
            },
            stats: SnapshotStats::default(),
            reused: HashSet::new(),
        };
        let outcome: Result<()> = async {
            while let Some(p) = results.next().await {
                let (p, data_hash) = p?;
                file_hash.update(&data_hash);
                stored.entry.size += u64::from(p.len);
                stored.entry.chunks.push(ChunkRef {
                    id: p.id,
                    len: p.len,
                });
                let st = &mut stored.stats;
                st.raw_bytes += u64::from(p.len);
                st.chunks += 1;
                st.stored_bytes += p.stored;
                if p.new {
                    st.new_bytes += p.stored;
                    st.new_chunks += 1;
                } else {
                    stored.reused.insert(p.id);
                }
                self.progress
                    .advance(u64::from(p.len), if p.new { p.stored } else { 0 });
            }
            Ok(())
        }
        .await;
        drop(results);
        chunker.await.map_err(|e| err!(Io, "chunker failed: {e}"))?;
        outcome.map_err(|e| e.context(format!("storing {name}")))?;
        stored.entry.hash = ChunkId(*file_hash.finalize().as_bytes());
        Ok(stored)
    }
}

impl Drop for SnapshotWriter {
    /// A backup that failed or was stopped takes its in-flight marker away (in the
    /// background: a process that exits at once leaves it, and prune takes a marker older
    /// than a day for a killed backup's).
    fn drop(&mut self) {
        if let Some(marker) = self.marker.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let store = self.repo.store().clone();
                handle.spawn(async move {
                    let _ = store.delete(&marker).await;
                });
            }
        }
    }
}

/// A reader whose end-of-file marks the end of a segment: [`next_segment`](Self::next_segment)
/// says whether another follows.
pub trait Segmented: std::io::Read + Send {
    /// Moves past a segment's end; false when there is no further segment.
    fn next_segment(&mut self) -> bool;
}

struct OneSegment<R>(R);

impl<R: std::io::Read + Send> std::io::Read for OneSegment<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: std::io::Read + Send> Segmented for OneSegment<R> {
    fn next_segment(&mut self) -> bool {
        false
    }
}

/// The file hash is over chunk ids in order: cheap, and it pins content and order.
async fn process(repo: Repository, known: Known, data: Vec<u8>) -> Result<(Processed, [u8; 32])> {
    let level = repo.config().compression_level;
    let keys = repo.keys().cloned();
    let len = data.len() as u32;
    let (id, encoded, stored_known) = tokio::task::spawn_blocking(move || -> Result<_> {
        let id = ChunkId::of(keys.as_ref(), &data);
        let mut map = known.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(size) = map.get(&id) {
            return Ok((id, None, *size));
        }
        // Claim the id before uploading so a duplicate chunk in flight is not sent twice.
        map.insert(id, 0);
        drop(map);
        let encoded = chunk::encode(&data, level, keys.as_ref(), &id.0)?;
        let size = encoded.len() as u64;
        known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, size);
        Ok((id, Some(encoded), size))
    })
    .await
    .map_err(|e| err!(Io, "chunk worker failed: {e}"))??;
    let new = encoded.is_some();
    if let Some(bytes) = encoded {
        repo.store()
            .put_bytes(&id.key(), bytes.into(), PutMode::Overwrite)
            .await
            .map_err(|e: Error| e.context(format!("uploading chunk {}", id.short())))?;
    }
    Ok((
        Processed {
            id,
            len,
            stored: stored_known,
            new,
        },
        id.0,
    ))
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub(crate) fn hostname() -> String {
    crate::lock::hostname()
}
