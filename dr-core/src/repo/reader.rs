//! Reading snapshots back: fetch chunks in parallel, check every one, deliver in order.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::chunk::{self, ChunkId};
use super::manifest::{ChunkRef, Snapshot, SnapshotId};
use super::Repository;
use crate::progress::Progress;
use crate::store::{BackupStoreExt, ByteStream};
use crate::{err, Error, ErrorKind, Result};

/// A chunk that failed verification.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkProblem {
    /// The chunk.
    pub chunk: String,
    /// What is wrong.
    pub problem: String,
}

/// The result of re-reading a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Which snapshot.
    pub snapshot: SnapshotId,
    /// Distinct chunks read.
    pub chunks_checked: u64,
    /// Plain bytes they hold.
    pub bytes_checked: u64,
    /// Chunks that failed.
    pub problems: Vec<ChunkProblem>,
}

impl VerifyReport {
    /// True when every chunk passed.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Repository {
    /// Fetches one chunk and checks tag, length and id.
    pub(crate) async fn read_chunk(&self, c: ChunkRef) -> Result<Bytes> {
        let stored = self.store().get_bytes(&c.id.key()).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                err!(Corrupt, "chunk {} is missing from the store", c.id.short())
            } else {
                e.context(format!("reading chunk {}", c.id.short()))
            }
        })?;
        let keys = self.keys().cloned();
        tokio::task::spawn_blocking(move || {
            let stored_len = stored.len();
            let plain =
                chunk::decode(&stored, keys.as_ref(), &c.id.0, c.len as usize).map_err(|e| {
                    err!(
                        Corrupt,
                        "chunk {} failed its check ({} stored bytes): {}",
                        c.id.short(),
                        stored_len,
                        e.message()
                    )
                })?;
            if plain.len() != c.len as usize || ChunkId::of(keys.as_ref(), &plain) != c.id {
                return Err(err!(
                    Corrupt,
                    "chunk {} failed its checksum ({} stored bytes, {} plain, expected {})",
                    c.id.short(),
                    stored_len,
                    plain.len(),
                    c.len
                ));
            }
            Ok(Bytes::from(plain))
        })
        .await
        .map_err(|e| err!(Io, "chunk worker failed: {e}"))?
    }

    /// Streams file `name` of `snapshot`, every chunk checked, in order.
    pub fn read_file(&self, snapshot: &Snapshot, name: &str) -> Result<ByteStream> {
        let entry = snapshot.file(name)?.clone();
        let id = snapshot.id.clone();
        let this = self.clone();
        let stream = futures::stream::iter(entry.chunks)
            .map(move |c| {
                let this = this.clone();
                let id = id.clone();
                async move {
                    this.read_chunk(c)
                        .await
                        .map_err(|e: Error| e.context(format!("snapshot {id}")).corrupt_hint())
                }
            })
            .buffered(self.parallelism());
        Ok(stream.boxed())
    }

    /// Writes file `name` of `snapshot` to `out`, reporting progress.
    pub async fn restore_file<W>(
        &self,
        snapshot: &Snapshot,
        name: &str,
        out: &mut W,
        progress: &dyn Progress,
    ) -> Result<u64>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let mut stream = self.read_file(snapshot, name)?;
        let mut written = 0u64;
        while let Some(part) = stream.try_next().await? {
            out.write_all(&part)
                .await
                .map_err(|e| Error::io(format!("writing {name} of snapshot {}", snapshot.id), e))?;
            written += part.len() as u64;
            progress.advance(part.len() as u64, 0);
        }
        out.flush()
            .await
            .map_err(|e| Error::io(format!("writing {name}"), e))?;
        Ok(written)
    }

    /// Reads a whole file into memory; for small files and tests.
    pub async fn read_file_to_vec(&self, snapshot: &Snapshot, name: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.restore_file(snapshot, name, &mut out, &crate::progress::NoProgress)
            .await?;
        Ok(out)
    }

    /// Re-reads every distinct chunk of `snapshot` and reports each one that fails.
    pub async fn verify_snapshot(
        &self,
        snapshot: &Snapshot,
        progress: &dyn Progress,
    ) -> Result<VerifyReport> {
        let mut seen = BTreeSet::new();
        let chunks: Vec<ChunkRef> = snapshot
            .files
            .iter()
            .flat_map(|f| f.chunks.iter().copied())
            .filter(|c| seen.insert(c.id))
            .collect();
        let mut report = VerifyReport {
            snapshot: snapshot.id.clone(),
            chunks_checked: 0,
            bytes_checked: 0,
            problems: Vec::new(),
        };
        let mut results = futures::stream::iter(chunks)
            .map(|c| async move { (c, self.read_chunk(c).await) })
            .buffer_unordered(self.parallelism());
        while let Some((c, res)) = results.next().await {
            report.chunks_checked += 1;
            match res {
                Ok(b) => {
                    report.bytes_checked += b.len() as u64;
                    progress.advance(b.len() as u64, 0);
                }
                Err(e) if e.kind() == ErrorKind::Corrupt => {
                    report.problems.push(ChunkProblem {
                        chunk: c.id.to_string(),
                        problem: e.message().to_owned(),
                    });
                }
                Err(e) => return Err(e.context(format!("verifying snapshot {}", snapshot.id))),
            }
        }
        Ok(report)
    }
}

impl Error {
    /// Corrupt data: says to verify the repository and restore from elsewhere.
    fn corrupt_hint(self) -> Self {
        if self.kind() == ErrorKind::Corrupt {
            self.with_hint(crate::Hint::VerifyRepository)
        } else {
            self
        }
    }
}
