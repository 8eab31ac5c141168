//! Verification by restore: the snapshot goes into a scratch database, its row counts are
//! compared with those recorded at backup time, the user's SQL checks and `amcheck` run,
//! and the scratch database is dropped whatever happened.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dr_core::progress::Progress;
use dr_core::repo::{Repository, Snapshot, SnapshotRef, Verified, VerifyReport};
use dr_core::{err, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use crate::connect::{ident, ConnInfo};
use crate::error::db_message;
use crate::logical::metadata::LogicalMetadata;
use crate::logical::restore::{drop_database, restore, RestoreMode, RestoreOptions};

/// What `verify` does: re-read and authenticate every chunk of the chosen snapshots,
/// and with `restore_into` also restore one into a scratch database on that server and
/// check it. The same options from the CLI, Python and a runbook's `pg.verify` step.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyOptions {
    /// The snapshot to verify; every snapshot when `None` (the newest with
    /// `restore_into`).
    pub snapshot: Option<SnapshotRef>,
    /// Restore into a scratch database on this server and check it.
    pub restore_into: Option<ConnInfo>,
    /// With `restore_into` and `latest`: the source whose newest dump is restored, by URL
    /// or database name (needed when the repository holds dumps of several databases).
    pub source: Option<String>,
    /// SQL that must return `true` or a non-zero number in its first column.
    pub checks: Vec<String>,
    /// `pg_restore -j`.
    pub jobs: Option<usize>,
    /// Keep the scratch database for inspection instead of dropping it.
    pub keep: bool,
}

/// What `verify` proved. A passing check is recorded in the repository
/// (`verified/<id>`), where `status` and retention read it.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyOutcome {
    /// Every chunk intact and, with a restore, every check passed.
    pub ok: bool,
    /// The chunk re-read of each snapshot.
    pub snapshots: Vec<VerifyReport>,
    /// The restore and its checks, with `restore_into`.
    pub restore: Option<VerifyRestoreReport>,
}

/// Verifies snapshots as `options` says, recording what passed; `progress` gets a phase
/// per snapshot.
pub async fn verify(
    repo: &Repository,
    options: &VerifyOptions,
    progress: Arc<dyn Progress>,
) -> Result<VerifyOutcome> {
    let snaps = match (&options.snapshot, &options.restore_into) {
        // A restore takes a dump: `latest` is the newest dump of one source.
        (r, Some(_)) => {
            let pick = dr_core::repo::Pick {
                snapshot: r.clone().unwrap_or_default(),
                source: options.source.clone(),
                ..dr_core::repo::Pick::default()
            };
            vec![repo.pick(&pick, super::backup::KIND_LOGICAL, None).await?]
        }
        (Some(r), None) => vec![repo.find(r).await?],
        (None, None) => repo.snapshots().await?,
    };
    let mut ok = true;
    let mut reads = Vec::new();
    for snap in &snaps {
        progress.phase(&format!("read {}", snap.id));
        let report = repo.verify_snapshot(snap, progress.as_ref()).await?;
        ok &= report.is_ok();
        if report.is_ok() {
            repo.mark_verified(&snap.id, &Verified::chunks(Timestamp::now()))
                .await?;
        }
        reads.push(report);
    }
    let mut restore = None;
    if let Some(server) = &options.restore_into {
        let snap = &snaps[0];
        let report = verify_by_restore(repo, snap, server, options, progress.clone()).await?;
        ok &= report.ok;
        if ok {
            let v = Verified::restore(Timestamp::now(), report.restore_duration.as_secs_f64());
            repo.mark_verified(&snap.id, &v).await?;
        }
        restore = Some(report);
    }
    Ok(VerifyOutcome {
        ok,
        snapshots: reads,
        restore,
    })
}

/// One table's count, then and now.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    /// `schema.table`.
    pub table: String,
    /// Rows recorded at backup.
    pub expected: i64,
    /// Rows found after restore (`None` if the table is missing).
    pub actual: Option<i64>,
    /// Whether they agree.
    pub ok: bool,
}

/// One user check.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct SqlCheck {
    /// The SQL.
    pub sql: String,
    /// Whether it passed.
    pub ok: bool,
    /// What it returned, or its error.
    pub result: String,
}

/// What amcheck said.
#[derive(Debug, Clone, Serialize)]
pub struct AmcheckResult {
    /// `checked`, or why it did not run.
    pub status: String,
    /// B-tree indexes checked.
    pub indexes_checked: u64,
    /// Indexes that failed, with the error.
    pub failures: Vec<String>,
}

/// The outcome of verification by restore.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyRestoreReport {
    /// Snapshot verified.
    pub snapshot: String,
    /// Server used (no password).
    pub server: String,
    /// Scratch database name.
    pub scratch_database: String,
    /// Restore time.
    #[serde(rename = "restore_secs", with = "dr_core::duration_secs")]
    pub restore_duration: Duration,
    /// Row-count comparisons.
    pub tables: Vec<TableCheck>,
    /// User checks.
    pub checks: Vec<SqlCheck>,
    /// Index checks.
    pub amcheck: AmcheckResult,
    /// Whether everything passed.
    pub ok: bool,
}

/// Restores `snapshot` into a scratch database on `server` and checks it.
pub async fn verify_by_restore(
    repo: &Repository,
    snapshot: &Snapshot,
    server: &ConnInfo,
    options: &VerifyOptions,
    progress: Arc<dyn Progress>,
) -> Result<VerifyRestoreReport> {
    let meta: LogicalMetadata = serde_json::from_value(snapshot.metadata.clone()).map_err(|e| {
        err!(
            InvalidInput,
            "snapshot {} has no Postgres metadata to verify against: {e}",
            snapshot.id
        )
    })?;
    let rnd = &snapshot.id.as_str()[17..];
    let scratch = format!("drkit_verify_{}_{}", rnd, std::process::id());
    let target = server.with_dbname(&scratch);
    let started = Instant::now();
    let restore_options = RestoreOptions {
        mode: RestoreMode::Create,
        no_owner: true,
        no_privileges: true,
        jobs: options.jobs.unwrap_or(RestoreOptions::default().jobs),
        ..RestoreOptions::default()
    };
    restore(repo, snapshot, &target, &restore_options, progress).await?;
    let restore_duration = started.elapsed();

    let checked = check(&target, &meta, &options.checks).await;
    if !options.keep {
        let admin = server.with_dbname(if server.dbname() == scratch {
            "postgres"
        } else {
            server.dbname()
        });
        if let Ok(client) = admin.connect().await {
            let _ = drop_database(&client, &admin, &scratch).await;
        }
    }
    let (tables, checks, amcheck) = checked?;
    let ok =
        tables.iter().all(|t| t.ok) && checks.iter().all(|c| c.ok) && amcheck.failures.is_empty();
    Ok(VerifyRestoreReport {
        snapshot: snapshot.id.to_string(),
        server: server.server(),
        scratch_database: scratch,
        restore_duration,
        tables,
        checks,
        amcheck,
        ok,
    })
}

/// What the checks of a live server found.
#[derive(Debug, Clone, Serialize)]
pub struct ServerChecks {
    /// User checks.
    pub checks: Vec<SqlCheck>,
    /// amcheck over every valid B-tree index.
    pub amcheck: AmcheckResult,
    /// Every check passed and amcheck found nothing.
    pub ok: bool,
}

/// Runs `checks` (SQL returning true or a non-zero count) and amcheck against a live
/// server, as `verify` does after a restore.
pub async fn check_server(target: &ConnInfo, checks: &[String]) -> Result<ServerChecks> {
    let client = target.connect().await?;
    let mut results = Vec::new();
    for sql in checks {
        results.push(run_check(&client, sql).await);
    }
    let amcheck = amcheck(&client).await;
    let ok = results.iter().all(|c| c.ok) && amcheck.failures.is_empty();
    Ok(ServerChecks {
        checks: results,
        amcheck,
        ok,
    })
}

async fn check(
    target: &ConnInfo,
    meta: &LogicalMetadata,
    checks: &[String],
) -> Result<(Vec<TableCheck>, Vec<SqlCheck>, AmcheckResult)> {
    let client = target.connect().await?;
    let mut tables = Vec::new();
    for t in &meta.tables {
        let Some(expected) = t.rows else { continue };
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            ident(&t.schema),
            ident(&t.table)
        );
        let actual = client
            .query_one(&sql, &[])
            .await
            .ok()
            .map(|r| r.get::<_, i64>(0));
        tables.push(TableCheck {
            table: format!("{}.{}", t.schema, t.table),
            expected,
            actual,
            ok: actual == Some(expected),
        });
    }
    let mut results = Vec::new();
    for sql in checks {
        results.push(run_check(&client, sql).await);
    }
    let amcheck = amcheck(&client).await;
    Ok((tables, results, amcheck))
}

async fn run_check(client: &tokio_postgres::Client, sql: &str) -> SqlCheck {
    let row = match client.query_opt(sql, &[]).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return SqlCheck {
                sql: sql.to_owned(),
                ok: false,
                result: "no rows".into(),
            }
        }
        Err(e) => {
            return SqlCheck {
                sql: sql.to_owned(),
                ok: false,
                result: format!("error: {}", db_message(&e)),
            }
        }
    };
    if row.is_empty() {
        return SqlCheck {
            sql: sql.to_owned(),
            ok: false,
            result: "no columns".into(),
        };
    }
    let ty = row.columns()[0].type_().clone();
    let (ok, result) = match ty {
        Type::BOOL => row
            .get::<_, Option<bool>>(0)
            .map_or((false, "NULL".into()), |b| (b, b.to_string())),
        Type::INT2 => num(row.get::<_, Option<i16>>(0).map(i64::from)),
        Type::INT4 => num(row.get::<_, Option<i32>>(0).map(i64::from)),
        Type::INT8 => num(row.get::<_, Option<i64>>(0)),
        other => (
            false,
            format!("first column is {other}; a check must return a boolean or an integer"),
        ),
    };
    SqlCheck {
        sql: sql.to_owned(),
        ok,
        result,
    }
}

fn num(v: Option<i64>) -> (bool, String) {
    v.map_or((false, "NULL".into()), |n| (n != 0, n.to_string()))
}

async fn amcheck(client: &tokio_postgres::Client) -> AmcheckResult {
    if let Err(e) = client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        .await
    {
        return AmcheckResult {
            status: format!("skipped: amcheck is not available ({})", db_message(&e)),
            indexes_checked: 0,
            failures: vec![],
        };
    }
    let indexes = match client
        .query(
            "SELECT c.oid, n.nspname || '.' || c.relname FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_am am ON am.oid = c.relam \
             WHERE am.amname = 'btree' AND i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%'",
            &[],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return AmcheckResult { status: format!("skipped: {}", db_message(&e)), indexes_checked: 0, failures: vec![] },
    };
    let mut result = AmcheckResult {
        status: "checked".into(),
        indexes_checked: 0,
        failures: vec![],
    };
    for row in indexes {
        let oid: u32 = row.get(0);
        let name: String = row.get(1);
        result.indexes_checked += 1;
        if let Err(e) = client
            .execute("SELECT bt_index_check($1::oid::regclass, true)", &[&oid])
            .await
        {
            result.failures.push(format!("{name}: {}", db_message(&e)));
        }
    }
    result
}
