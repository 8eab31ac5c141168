//! Snapshot manifests: what a snapshot is made of, written last.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::chunk::ChunkId;
use crate::{err, Result};

/// Snapshot id: UTC start time then random hex, so ids sort by time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotId(String);

impl SnapshotId {
    pub(crate) fn new(at: Timestamp) -> Result<Self> {
        let rnd = super::crypto::random::<4>()?;
        Ok(Self(format!(
            "{}-{}",
            at.strftime("%Y%m%dT%H%M%SZ"),
            hex::encode(rnd)
        )))
    }

    /// Parses an id as listed by the store.
    pub fn parse(s: &str) -> Result<Self> {
        let ok = s.len() == 25 && s.as_bytes()[8] == b'T' && s.as_bytes()[16] == b'-';
        if ok && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Ok(Self(s.to_owned()))
        } else {
            Err(err!(
                InvalidInput,
                "{s:?} is not a snapshot id (like 20261122T061500Z-3f9a1c2b)"
            ))
        }
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The manifest's store key.
    #[must_use]
    pub fn key(&self) -> String {
        format!("snapshots/{}", self.0)
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What produced a snapshot, e.g. `pg-logical`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SnapshotKind(String);

impl SnapshotKind {
    /// A kind named `name`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self(name.to_owned())
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One chunk of a file, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Content address.
    pub id: ChunkId,
    /// Plain length in bytes.
    pub len: u32,
}

/// One stream stored in a snapshot (a dump, the globals, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Name inside the snapshot.
    pub name: String,
    /// Plain size in bytes.
    pub size: u64,
    /// BLAKE3 over the chunk ids in order (keyed like them): pins content and order.
    pub hash: ChunkId,
    /// Chunks in order.
    pub chunks: Vec<ChunkRef>,
}

/// Sizes of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    /// Bytes of source data.
    pub raw_bytes: u64,
    /// Stored (compressed, encrypted) bytes of all chunks the snapshot references.
    pub stored_bytes: u64,
    /// Stored bytes this snapshot added to the repository.
    pub new_bytes: u64,
    /// Chunks referenced.
    pub chunks: u64,
    /// Chunks this snapshot uploaded.
    pub new_chunks: u64,
}

impl SnapshotStats {
    /// Adds another part's figures to these.
    pub fn add(&mut self, other: &Self) {
        self.raw_bytes += other.raw_bytes;
        self.stored_bytes += other.stored_bytes;
        self.new_bytes += other.new_bytes;
        self.chunks += other.chunks;
        self.new_chunks += other.new_chunks;
    }
}

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Id.
    pub id: SnapshotId,
    /// What made it.
    pub kind: SnapshotKind,
    /// Where the data came from (never with a password).
    pub source: String,
    /// The machine that took it.
    pub host: String,
    /// When reading the source began.
    pub started_at: Timestamp,
    /// When the manifest was written.
    pub finished_at: Timestamp,
    /// The streams inside.
    pub files: Vec<FileEntry>,
    /// Sizes.
    pub stats: SnapshotStats,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// drkit version that wrote it.
    pub tool_version: String,
    /// Source-specific metadata (server version, row counts, LSNs, ...).
    pub metadata: serde_json::Value,
}

impl Snapshot {
    /// The file called `name`.
    pub fn file(&self, name: &str) -> Result<&FileEntry> {
        self.files.iter().find(|f| f.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
            err!(
                NotFound,
                "snapshot {} has no file {name:?} (it has {names:?})",
                self.id
            )
        })
    }

    /// How long taking it took.
    #[must_use]
    pub fn duration(&self) -> std::time::Duration {
        self.finished_at
            .duration_since(self.started_at)
            .unsigned_abs()
    }
}

/// A file inside a snapshot, without its chunk list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// Name inside the snapshot.
    pub name: String,
    /// Plain size in bytes.
    pub size: u64,
}

/// A snapshot without chunk lists: what listings and reports show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotSummary {
    /// Id.
    pub id: SnapshotId,
    /// What made it.
    pub kind: SnapshotKind,
    /// Where the data came from (never with a password).
    pub source: String,
    /// The machine that took it.
    pub host: String,
    /// When reading the source began.
    pub started_at: Timestamp,
    /// When the manifest was written.
    pub finished_at: Timestamp,
    /// Seconds between the two.
    pub duration_secs: f64,
    /// Sizes.
    #[serde(flatten)]
    pub stats: SnapshotStats,
    /// Files inside.
    pub files: Vec<FileSummary>,
    /// User tags.
    pub tags: BTreeMap<String, String>,
    /// Source-specific metadata.
    pub metadata: serde_json::Value,
}

impl Snapshot {
    /// The snapshot without its chunk lists.
    #[must_use]
    pub fn summary(&self) -> SnapshotSummary {
        SnapshotSummary {
            id: self.id.clone(),
            kind: self.kind.clone(),
            source: self.source.clone(),
            host: self.host.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            duration_secs: (self.duration().as_secs_f64() * 1000.0).round() / 1000.0,
            stats: self.stats,
            files: self
                .files
                .iter()
                .map(|f| FileSummary {
                    name: f.name.clone(),
                    size: f.size,
                })
                .collect(),
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
        }
    }
}
