//! Snapshot summaries: what `snapshots` and `backup` print (never the chunk lists).

use dr_core::repo::Snapshot;
use jiff::Timestamp;
use serde::Serialize;

use crate::output::{bytes, secs};

/// A file inside a snapshot.
#[derive(Debug, Serialize)]
pub struct FileSummary {
    pub name: String,
    pub size: u64,
}

/// One snapshot, for listing.
#[derive(Debug, Serialize)]
pub struct SnapshotSummary {
    pub id: String,
    pub kind: String,
    pub source: String,
    pub host: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub duration_secs: f64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub new_bytes: u64,
    pub chunks: u64,
    pub new_chunks: u64,
    pub files: Vec<FileSummary>,
    pub tags: std::collections::BTreeMap<String, String>,
    pub tables: Option<usize>,
    pub server_version: Option<String>,
}

impl From<&Snapshot> for SnapshotSummary {
    fn from(s: &Snapshot) -> Self {
        Self {
            id: s.id.to_string(),
            kind: s.kind.to_string(),
            source: s.source.clone(),
            host: s.host.clone(),
            started_at: s.started_at,
            finished_at: s.finished_at,
            duration_secs: secs(s.duration()),
            raw_bytes: s.stats.raw_bytes,
            stored_bytes: s.stats.stored_bytes,
            new_bytes: s.stats.new_bytes,
            chunks: s.stats.chunks,
            new_chunks: s.stats.new_chunks,
            files: s
                .files
                .iter()
                .map(|f| FileSummary {
                    name: f.name.clone(),
                    size: f.size,
                })
                .collect(),
            tags: s.tags.clone(),
            tables: s
                .metadata
                .get("tables")
                .and_then(|t| t.as_array())
                .map(Vec::len),
            server_version: s
                .metadata
                .get("server_version")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
        }
    }
}

impl SnapshotSummary {
    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "{}  {:<10}  {:>10} raw  {:>10} stored  {:>10} new  {:>6.1}s  {}",
            self.id,
            self.kind,
            bytes(self.raw_bytes),
            bytes(self.stored_bytes),
            bytes(self.new_bytes),
            self.duration_secs,
            self.source
        )
    }
}
