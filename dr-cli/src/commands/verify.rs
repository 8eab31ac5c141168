//! `drkit verify`.

use dr_core::progress::Progress;
use dr_core::repo::Verified;
use dr_core::repo::VerifyReport;
use dr_core::Result;
use dr_pg::{ConnInfo, VerifyOptions, VerifyRestoreReport};
use serde_json::json;

use crate::args::{Cli, VerifyArgs};
use crate::output::{bytes, secs, Output};
use crate::EXIT_CHECK_FAILED;

/// Re-reads snapshots, and optionally restores one and checks it.
pub async fn verify(cli: &Cli, a: &VerifyArgs, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let snaps = match (&a.snapshot, &a.restore_into) {
        (Some(r), _) => vec![repo.find_snapshot(r).await?],
        (None, Some(_)) => vec![repo.find_snapshot("latest").await?],
        (None, None) => repo.snapshots().await?,
    };
    let mut ok = true;
    let mut reads = Vec::new();
    for snap in &snaps {
        let bar = out.progress(Some(snap.stats.raw_bytes));
        bar.phase("read");
        let report = repo.verify_snapshot(snap, &*bar).await;
        bar.finish();
        let report = report?;
        ok &= report.is_ok();
        if report.is_ok() {
            let v = Verified {
                at: jiff::Timestamp::now(),
                level: "chunks".into(),
                restore_seconds: None,
            };
            repo.mark_verified(&snap.id, &v).await?;
        }
        reads.push(report);
    }
    let mut restore_report = None;
    if let Some(server) = &a.restore_into {
        let server = ConnInfo::parse(server)?;
        let options = VerifyOptions {
            checks: a.checks.clone(),
            jobs: None,
            keep: a.keep,
        };
        let snap = &snaps[0];
        let bar = out.progress(Some(snap.stats.raw_bytes));
        let report = dr_pg::verify_by_restore(&repo, snap, &server, &options, bar.clone()).await;
        bar.finish();
        let report = report?;
        ok &= report.ok;
        if ok {
            let v = Verified {
                at: jiff::Timestamp::now(),
                level: "restore".into(),
                restore_seconds: Some(report.restore_duration.as_secs_f64()),
            };
            repo.mark_verified(&snap.id, &v).await?;
        }
        restore_report = Some(report);
    }
    let doc = json!({ "ok": ok, "snapshots": reads, "restore": restore_report });
    out.emit(&doc, || render(&reads, restore_report.as_ref(), ok));
    Ok(if ok { 0 } else { EXIT_CHECK_FAILED })
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
