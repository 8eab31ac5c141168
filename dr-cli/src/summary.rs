//! One-line snapshot descriptions for people.

use dr_core::repo::SnapshotSummary;

use crate::output::bytes;

/// `id kind raw stored new duration source`.
pub fn line(s: &SnapshotSummary) -> String {
    format!(
        "{}  {:<10}  {:>10} raw  {:>10} stored  {:>10} new  {:>6.1}s  {}",
        s.id,
        s.kind,
        bytes(s.stats.raw_bytes),
        bytes(s.stats.stored_bytes),
        bytes(s.stats.new_bytes),
        s.duration_secs,
        s.source
    )
}

/// How many tables a Postgres snapshot counted rows in, if it is one.
pub fn tables(s: &SnapshotSummary) -> usize {
    s.metadata
        .get("tables")
        .and_then(|t| t.as_array())
        .map_or(0, Vec::len)
}

/// Which PostgreSQL programs made a Postgres snapshot, as recorded in it.
pub fn tools(s: &SnapshotSummary) -> String {
    let version = s
        .metadata
        .get("pg_dump_version")
        .and_then(|v| v.as_str())
        .unwrap_or("pg_dump");
    let from = s
        .metadata
        .get("tools")
        .and_then(|v| v.as_str())
        .unwrap_or("unknown folder");
    format!("{version} from {from}")
}
