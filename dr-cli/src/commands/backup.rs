//! `drkit backup` and `drkit snapshots`.

use dr_core::Result;
use dr_pg::{BackupOptions, ConnInfo, RowCounts};

use crate::args::{BackupArgs, Cli};
use crate::output::{bytes, Output};
use crate::summary::SnapshotSummary;

/// Backs up one database.
pub async fn backup(cli: &Cli, a: &BackupArgs, out: Output) -> Result<u8> {
    let conn = ConnInfo::parse(&a.database)?;
    let repo = super::open_repo(cli).await?;
    let options = BackupOptions {
        row_counts: match (a.no_row_counts, a.count_max_bytes) {
            (true, _) => RowCounts::Skip,
            (false, Some(b)) => RowCounts::UpTo(b),
            (false, None) => RowCounts::All,
        },
        skip_globals: a.skip_globals,
        tags: a.tags.clone(),
    };
    out.note(&format!("backing up {conn} to {}", repo.store().url()));
    let bar = out.progress(None);
    let snap = dr_pg::backup(&repo, &conn, &options, bar.clone()).await;
    bar.finish();
    let snap = snap?;
    let s = SnapshotSummary::from(&snap);
    out.emit(&s, || {
        let ratio = if s.raw_bytes > 0 { s.stored_bytes as f64 / s.raw_bytes as f64 * 100.0 } else { 0.0 };
        format!(
            "snapshot {}\n  {} read, {} stored ({ratio:.1} %), {} new in {} new chunks of {}\n  {} tables counted, took {:.1}s",
            s.id,
            bytes(s.raw_bytes),
            bytes(s.stored_bytes),
            bytes(s.new_bytes),
            s.new_chunks,
            s.chunks,
            s.tables.unwrap_or(0),
            s.duration_secs
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
        .map(SnapshotSummary::from)
        .collect();
    out.emit(&list, || {
        if list.is_empty() {
            return format!("no snapshots in {}", repo.store().url());
        }
        list.iter()
            .map(SnapshotSummary::line)
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}
