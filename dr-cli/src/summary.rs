//! One-line snapshot descriptions for people.

use std::fmt::Write as _;

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

/// The tables that took longest to read, for a streams snapshot (empty otherwise).
pub fn slowest_tables(s: &SnapshotSummary) -> String {
    let Some(tables) = s.metadata.get("tables").and_then(|t| t.as_array()) else {
        return String::new();
    };
    let mut timed: Vec<(f64, String, u64)> = tables
        .iter()
        .filter_map(|t| {
            let secs = t.get("secs")?.as_f64()?;
            let name = format!(
                "{}.{}",
                t.get("schema")?.as_str()?,
                t.get("table")?.as_str()?
            );
            let bytes = t.get("copied_bytes")?.as_u64()?;
            (secs > 0.0).then_some((secs, name, bytes))
        })
        .collect();
    if timed.is_empty() {
        return String::new();
    }
    timed.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out =
        String::from("\n  slowest tables (--json lists every table's bytes and seconds):");
    for (secs, name, b) in timed.iter().take(5) {
        let _ = write!(out, "\n    {name:<40} {:>10}  {secs:>6.1}s", bytes(*b));
    }
    out
}
