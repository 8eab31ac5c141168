//! `drkit prune` and `drkit status`.

use std::fmt::Write as _;

use dr_core::repo::retention::{self, Policy};
use dr_core::repo::PruneOptions;
use dr_core::Result;
use dr_pg::Objectives;
use jiff::Timestamp;

use crate::args::{Cli, PruneArgs, StatusArgs};
use crate::output::Output;
use crate::EXIT_CHECK_FAILED;

/// `drkit prune`.
pub async fn prune(cli: &Cli, a: &PruneArgs, out: Output) -> Result<u8> {
    let policy = Policy {
        keep_last: a.keep_last,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_within: a.keep_within,
        time_zone: retention::time_zone(&a.time_zone)?,
    };
    let options = PruneOptions {
        policy,
        dry_run: a.dry_run,
        grace: a.grace,
    };
    let repo = super::open_repo(cli).await?;
    let lock = match &a.lock {
        Some(spec) => Some(drkit::open_lock(spec).await?),
        None => None,
    };
    let outcome = dr_pg::prune_under(&repo, &options, Timestamp::now(), lock).await?;
    let (report, wal_removed) = (&outcome.report, outcome.wal_files_removed);
    out.emit(&outcome, || {
        let mut t = String::new();
        for d in &report.decisions {
            let what = if d.keep { "keep  " } else { "remove" };
            let _ = writeln!(
                t,
                "{what} {}  {}  {}  {}",
                d.id,
                d.kind,
                d.source,
                d.reasons.join(", ")
            );
        }
        if report.dry_run {
            t.push_str("dry run: nothing was changed");
        } else {
            let _ = write!(
                t,
                "removed {} snapshots, {} chunks ({} bytes), {} WAL files",
                report.removed.len(),
                report.chunks_deleted,
                report.bytes_freed,
                wal_removed
            );
            if let Some(n) = &report.note {
                let _ = write!(t, "\nnote: {n}");
            }
        }
        t
    });
    Ok(0)
}

/// `drkit status`: exit 3 when an objective is missed.
pub async fn status(cli: &Cli, a: &StatusArgs, out: Output) -> Result<u8> {
    let objectives = match &a.objectives {
        Some(path) => Objectives::load(path)?,
        None => Vec::new(),
    };
    let repo = super::open_repo(cli).await?;
    let doc = dr_pg::status(&repo, &objectives, Timestamp::now()).await?;
    let (ok, list, misses) = (doc.ok, &doc.sources, &doc.objectives_missed);
    out.emit(&doc, || {
        let mut t = String::new();
        for s in list {
            let _ = writeln!(
                t,
                "{}\n  newest {} ({}) {:.0} s ago; verified: {}; data at risk now: {:.0} s (since the {})",
                s.source,
                s.newest,
                s.newest_kind,
                s.newest_age_seconds,
                s.verified_age_seconds.map_or("never".to_owned(), |a| format!("{a:.0} s ago")),
                s.at_risk_seconds,
                s.at_risk_basis
            );
        }
        for d in &doc.drills {
            let figure = |m: &dr_core::runbook::drill::Measure| {
                m.achieved_seconds.map_or_else(
                    || m.verdict.as_str().to_owned(),
                    |s| format!("{} {}", dr_core::runbook::report::seconds(s), m.verdict.as_str()),
                )
            };
            let _ = writeln!(
                t,
                "drill {}\n  last {} (run {}): {}; RTO {}, RPO {}",
                d.runbook,
                d.started,
                d.run,
                d.outcome,
                figure(&d.rto),
                figure(&d.rpo)
            );
        }
        for m in misses {
            let _ = writeln!(t, "MISSED {m}");
        }
        t.trim_end().to_owned()
    });
    Ok(if ok { 0 } else { EXIT_CHECK_FAILED })
}
