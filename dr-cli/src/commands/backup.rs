//! `drkit backup` and `drkit snapshots`.

use dr_core::repo::{Snapshot, SnapshotSummary};
use dr_core::Result;
use dr_pg::{BackupOptions, ConnInfo, RowCounts};

use crate::args::{BackupArgs, Cli};
use crate::output::{bytes, Output};
use crate::summary;

/// Backs up one database.
pub async fn backup(cli: &Cli, a: &BackupArgs, out: Output) -> Result<u8> {
    if a.database.starts_with("redis://") || a.database.starts_with("rediss://") {
        return super::redis::backup(cli, a, out).await;
    }
    let conn = ConnInfo::parse(&a.database)?;
    let repo = super::open_repo(cli).await?;
    let options = BackupOptions {
        format: a.format,
        jobs: a.jobs,
        split_bytes: a.split_bytes,
        row_counts: match (a.no_row_counts, a.count_max_bytes) {
            (true, _) => RowCounts::Skip,
            (false, Some(b)) => RowCounts::UpTo(b),
            (false, None) => RowCounts::All,
        },
        skip_globals: a.skip_globals,
        tags: a.tags.iter().cloned().collect(),
        lock_wait_timeout: a.lock_wait_timeout,
    };
    out.note(&format!("backing up {conn} to {}", repo.store().url()));
    let bar = out.progress(None);
    let snap = dr_pg::backup(&repo, &conn, &options, bar.clone()).await;
    bar.finish();
    let snap = snap?;
    let s = snap.summary();
    out.emit(&s, || {
        let st = s.stats;
        let ratio = if st.raw_bytes > 0 { st.stored_bytes as f64 / st.raw_bytes as f64 * 100.0 } else { 0.0 };
        format!(
            "snapshot {}\n  {} read, {} stored ({ratio:.1} %), {} new in {} new chunks of {}\n  {} tables counted, took {:.1}s\n  {}{}",
            s.id,
            bytes(st.raw_bytes),
            bytes(st.stored_bytes),
            bytes(st.new_bytes),
            st.new_chunks,
            st.chunks,
            summary::tables(&s),
            s.duration_secs,
            summary::tools(&s),
            summary::slowest_tables(&s)
        )
    });
    Ok(0)
}

/// Lists snapshots, oldest first.
pub async fn snapshots(cli: &Cli, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let list: Vec<SnapshotSummary> = repo
        .snapshots()
        .await?
        .iter()
        .map(Snapshot::summary)
        .collect();
    out.emit(&list, || {
        if list.is_empty() {
            return format!("no snapshots in {}", repo.store().url());
        }
        list.iter()
            .map(summary::line)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}
