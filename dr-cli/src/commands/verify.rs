//! `drkit verify`.

use dr_core::repo::{SnapshotRef, VerifyReport};
use dr_core::Result;
use dr_pg::{ConnInfo, VerifyOptions, VerifyRestoreReport};

use crate::args::{Cli, VerifyArgs};
use crate::output::{bytes, secs, Output};
use crate::EXIT_CHECK_FAILED;

/// Re-reads snapshots, and optionally restores one and checks it.
pub async fn verify(cli: &Cli, a: &VerifyArgs, out: Output) -> Result<u8> {
    let options = VerifyOptions {
        snapshot: a.snapshot.as_deref().map(SnapshotRef::from),
        restore_into: a.restore_into.as_deref().map(ConnInfo::parse).transpose()?,
        source: a.source.clone(),
        checks: a.checks.clone(),
        jobs: None,
        keep: a.keep,
    };
    let repo = super::open_repo(cli).await?;
    let bar = out.progress(None);
    let outcome = dr_pg::verify(&repo, &options, bar.clone()).await;
    bar.finish();
    let outcome = outcome?;
    out.emit(&outcome, || {
        render(&outcome.snapshots, outcome.restore.as_ref(), outcome.ok)
    });
    Ok(if outcome.ok { 0 } else { EXIT_CHECK_FAILED })
}

fn render(reads: &[VerifyReport], restore: Option<&VerifyRestoreReport>, ok: bool) -> String {
    let mut lines = Vec::new();
    if reads.is_empty() {
        lines.push("no snapshots to verify".to_owned());
    }
    for r in reads {
        if r.is_ok() {
            lines.push(format!(
                "snapshot {}: {} chunks, {} read, all intact",
                r.snapshot,
                r.chunks_checked,
                bytes(r.bytes_checked)
            ));
        } else {
            lines.push(format!(
                "snapshot {}: {} of {} chunks DAMAGED",
                r.snapshot,
                r.problems.len(),
                r.chunks_checked
            ));
            for p in &r.problems {
                lines.push(format!("  chunk {}: {}", p.chunk, p.problem));
            }
        }
    }
    if let Some(r) = restore {
        lines.push(format!(
            "restored {} into scratch database {} on {} in {:.1}s",
            r.snapshot,
            r.scratch_database,
            r.server,
            secs(r.restore_duration)
        ));
        for t in &r.tables {
            let actual = t.actual.map_or("missing".to_owned(), |n| n.to_string());
            let mark = if t.ok { "ok  " } else { "FAIL" };
            lines.push(format!(
                "  {mark} {}: {actual} rows, expected {}",
                t.table, t.expected
            ));
        }
        for c in &r.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            lines.push(format!("  {mark} check {:?} returned {}", c.sql, c.result));
        }
        lines.push(format!(
            "  amcheck: {} ({} indexes, {} failures)",
            r.amcheck.status,
            r.amcheck.indexes_checked,
            r.amcheck.failures.len()
        ));
        for f in &r.amcheck.failures {
            lines.push(format!("  FAIL {f}"));
        }
    }
    lines.push(if ok {
        "verify: OK".into()
    } else {
        "verify: FAILED".into()
    });
    lines.join("\n")
}
