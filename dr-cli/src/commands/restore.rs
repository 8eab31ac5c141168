//! `drkit restore`.

use std::fmt::Write as _;

use dr_core::Result;
use dr_pg::{ConnInfo, RestoreMode, RestoreOptions};

use crate::args::{Cli, RestoreArgs};
use crate::output::{bytes, secs, Output};

/// Restores a snapshot into a database.
pub async fn restore(cli: &Cli, a: &RestoreArgs, out: Output) -> Result<u8> {
    let target = ConnInfo::parse(&a.to)?;
    let repo = super::open_repo(cli).await?;
    let pick = dr_core::repo::Pick {
        snapshot: a.snapshot.as_str().into(),
        source: a.source.clone(),
        before: a.before,
        tags: a.tags.iter().cloned().collect(),
        random_within: a.random_within,
    };
    let snap = dr_pg::dump_for(&repo, &pick, &target).await?;
    let mode = match (a.swap, a.clean, a.create) {
        (true, _, _) => RestoreMode::Swap,
        (_, true, _) => RestoreMode::Clean,
        (_, _, true) => RestoreMode::Create,
        _ => RestoreMode::Auto,
    };
    let defaults = RestoreOptions::default();
    let options = RestoreOptions {
        mode,
        jobs: a.jobs.unwrap_or(defaults.jobs),
        globals: a.globals,
        create_roles: a.create_roles,
        no_owner: a.no_owner,
        no_privileges: a.no_privileges,
        terminate_connections: a.terminate_connections,
        scratch_dir: a.scratch_dir.clone(),
    };
    out.note(&format!("restoring snapshot {} into {target}", snap.id));
    // What the restore reads: every file but the roles script.
    let total = Some(
        snap.files
            .iter()
            .filter(|f| f.name != dr_pg::GLOBALS_FILE)
            .map(|f| f.size)
            .sum(),
    );
    let bar = out.progress(total);
    let report = dr_pg::restore(&repo, &snap, &target, &options, bar.clone()).await;
    bar.finish();
    let report = report?;
    out.emit(&report, || {
        let mut t = format!(
            "restored snapshot {} into {} ({} in {:.1}s, {} session{})",
            report.snapshot,
            report.target,
            bytes(report.bytes),
            secs(report.duration),
            report.jobs,
            if report.jobs == 1 { "" } else { "s" }
        );
        if !report.tables.is_empty() {
            let mut slow: Vec<&dr_pg::TableLoad> = report.tables.iter().collect();
            slow.sort_by(|a, b| b.secs.total_cmp(&a.secs));
            let _ = write!(
                t,
                "\n  {} tables; slowest (--json lists every table's bytes and seconds):",
                report.tables.len()
            );
            for l in slow.iter().take(5) {
                let _ = write!(
                    t,
                    "\n    {:<40} {:>10} rows {:>10}  {:>6.1}s",
                    l.table,
                    l.rows,
                    bytes(l.bytes),
                    l.secs
                );
            }
        }
        if let Some(left) = &report.dropped_leftover {
            let _ = write!(
                t,
                "\ndropped {left:?}, which an interrupted restore had left"
            );
        }
        if let Some(old) = &report.previous_database {
            let _ = write!(t, "\nthe previous database is kept as {old:?}");
        }
        t
    });
    Ok(0)
}
