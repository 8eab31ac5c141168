//! WAL archiving, base backups and point-in-time recovery.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use dr_core::repo::SnapshotRef;
use dr_core::target::PointInTime;
use dr_core::{ErrorKind, Result};
use dr_pg::wal::{self, Pushed};
use dr_pg::{BaseMetadata, ConnInfo, PitrOptions};
use serde_json::json;

use crate::args::{Cli, PitrArgs};
use crate::output::{bytes, Output};
use crate::EXIT_CHECK_FAILED;

/// `drkit wal-push %p`: exit 0 only once the file is stored.
pub async fn wal_push(cli: &Cli, path: &Path, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let pushed = wal::push(&repo, path).await?;
    if cli.json {
        out.emit(&json!({"file": path, "result": pushed}), String::new);
    } else if pushed == Pushed::AlreadyArchived {
        tracing::info!(
            "{} was already archived with the same contents",
            path.display()
        );
    }
    Ok(0)
}

/// `drkit wal-fetch %f %p`: exit 1 at once for a file never archived.
pub async fn wal_fetch(cli: &Cli, name: &str, dest: &Path, prefetch: usize) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    match wal::fetch(&repo, name, dest, prefetch).await {
        Ok(()) => Ok(0),
        // PostgreSQL asks for files that may not exist (the next timeline's history, the
        // segment after the last): one quiet line, exit 1.
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("drkit wal-fetch: {name} is not archived");
            Ok(1)
        }
        Err(e) => Err(e),
    }
}

/// `drkit basebackup`.
pub async fn basebackup(
    cli: &Cli,
    server: &str,
    archive_timeout: Duration,
    out: Output,
) -> Result<u8> {
    let conn = ConnInfo::parse(server)?;
    let repo = super::open_repo(cli).await?;
    out.note(&format!("base backup of {conn} to {}", repo.store().url()));
    let bar = out.progress(None);
    let snap = dr_pg::basebackup(&repo, &conn, archive_timeout, bar.clone()).await;
    bar.finish();
    let snap = snap?;
    let s = snap.summary();
    let meta = BaseMetadata::of(&snap)?;
    out.emit(&s, || {
        format!(
            "base backup {}\n  {} read, {} new in {} new chunks of {}, took {:.1}s\n  WAL {} .. {} (timeline {}), replay needs {} onwards",
            s.id,
            bytes(s.stats.raw_bytes),
            bytes(s.stats.new_bytes),
            s.stats.new_chunks,
            s.stats.chunks,
            s.duration_secs,
            meta.start_lsn,
            meta.end_lsn,
            meta.timeline,
            meta.first_wal
        )
    });
    Ok(0)
}

/// `drkit pitr`.
pub async fn pitr(cli: &Cli, a: &PitrArgs, out: Output) -> Result<u8> {
    let target =
        PointInTime::from_parts(a.target_time, a.target_lsn, a.target_name.clone(), a.latest)?;
    let mut options = PitrOptions::new(
        std::path::absolute(&a.pgdata).map_err(|e| dr_core::Error::io("resolving --pgdata", e))?,
        target,
    );
    options.snapshot = a.snapshot.as_deref().map(SnapshotRef::from);
    // The recovered server runs this very binary as its restore_command.
    options.drkit = std::env::current_exe().ok();
    options.settings = a.settings.iter().cloned().collect();
    options.postgresql_conf.clone_from(&a.postgresql_conf);
    options.start = a.start;
    options.timeout = a.timeout;
    options.check_dsn = a.check_dsn.as_deref().map(ConnInfo::parse).transpose()?;
    options.checks.clone_from(&a.checks);
    options.tablespace_mapping = a.tablespace_mapping.iter().cloned().collect();
    let repo = super::open_repo(cli).await?;
    let bar = out.progress(None);
    let report = dr_pg::pitr(&repo, &options, bar.clone()).await;
    bar.finish();
    let r = report?;
    let checks_ok = r.checks.as_ref().is_none_or(|c| c.ok);
    out.emit(&r, || {
        let mut t = format!(
            "recovered base backup {} (finished {}) into {} to {}\n  WAL from {} to {}; window {}\n  unpacked in {:.1}s{}",
            r.plan.snapshot,
            r.plan.base_finished,
            r.pgdata.display(),
            r.target,
            r.plan.wal_from,
            r.plan.wal_to.as_deref().unwrap_or("-"),
            r.plan.window,
            r.unpack_seconds,
            if r.manifest_verified { ", checked against backup_manifest" } else { "" }
        );
        match r.replay_seconds {
            Some(s) => _ = write!(t, "\n  started, replayed and promoted in {s:.1}s"),
            None => _ = write!(t, "\n  start it with: pg_ctl -D {} start", r.pgdata.display()),
        }
        if let Some(c) = &r.checks {
            _ = write!(t, "\n  amcheck: {} indexes, {} failures", c.amcheck.indexes_checked, c.amcheck.failures.len());
            for check in &c.checks {
                _ = write!(t, "\n  {} {} -> {}", if check.ok { "ok  " } else { "FAIL" }, check.sql, check.result);
            }
        }
        t
    });
    Ok(if checks_ok { 0 } else { EXIT_CHECK_FAILED })
}

/// `drkit wal-verify`: exit 3 when a gap cuts a base backup's replay short.
pub async fn wal_verify(cli: &Cli, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let report = dr_pg::wal_verify(&repo).await?;
    out.emit(&report, || {
        let mut t = format!(
            "WAL archive: {} files; recovery window {}",
            report.files, report.window
        );
        for b in &report.base_backups {
            match &b.stops_at_missing {
                None => {
                    _ = write!(
                        t,
                        "\n  base {}: WAL unbroken to the newest segment",
                        b.snapshot
                    );
                }
                Some(g) => {
                    _ = write!(
                        t,
                        "\n  base {}: replay stops at missing segment {g}",
                        b.snapshot
                    );
                }
            }
        }
        t
    });
    Ok(if report.ok { 0 } else { EXIT_CHECK_FAILED })
}
