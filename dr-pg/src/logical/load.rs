//! Restoring a streams snapshot straight from the repository: the schema before the data
//! (`pg_restore --section=pre-data`), then the tables' COPY streams loaded by several
//! sessions at once while `pg_restore --section=data` loads what pg_dump kept (large
//! objects, sequences, extension configuration), then indexes, constraints and triggers
//! built by `pg_restore --section=post-data --jobs`, in its dependency order.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use dr_core::progress::Progress;
use dr_core::repo::{Repository, Snapshot};
use dr_core::{err, Error, Result};
use futures::{SinkExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::connect::{ident, ConnInfo};
use crate::error::query_error;
use crate::logical::metadata::{DataFile, LogicalMetadata, TableCount};
use crate::logical::restore::{RestoreMode, RestoreOptions};
use crate::process::spawn;
use crate::tools::PgTools;

/// One table as a restore loaded it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TableLoad {
    /// `schema.table`.
    pub table: String,
    /// Rows loaded.
    pub rows: i64,
    /// Bytes of COPY data loaded.
    pub bytes: u64,
    /// Seconds spent loading it, summed over its ranges.
    pub secs: f64,
}

/// The `pg_restore` of one section of the schema archive at `archive`.
pub(crate) fn pg_restore(
    tools: &PgTools,
    into: &ConnInfo,
    options: &RestoreOptions,
    section: &str,
    archive: &Path,
) -> Command {
    let mut cmd = Command::new(tools.program("pg_restore"));
    into.apply_to(&mut cmd);
    cmd.args(["--exit-on-error", "--section", section, "--dbname"])
        .arg(into.dbname());
    if options.mode == RestoreMode::Clean && section == "pre-data" {
        cmd.args(["--clean", "--if-exists"]);
    }
    if options.no_owner {
        cmd.arg("--no-owner");
    }
    if options.no_privileges {
        cmd.arg("--no-privileges");
    }
    if section == "post-data" && options.jobs > 1 {
        cmd.arg(format!("--jobs={}", options.jobs));
    }
    cmd.arg(archive);
    cmd
}

/// Loads the schema, the streams and the post-data of `meta` into `into`, the schema
/// archive already spooled at `archive`.
#[allow(clippy::too_many_arguments)] // what `restore` resolved, passed on
pub(crate) async fn load(
    repo: &Repository,
    snapshot: &Snapshot,
    meta: &LogicalMetadata,
    tools: &PgTools,
    into: &ConnInfo,
    options: &RestoreOptions,
    archive: &Path,
    progress: Arc<dyn Progress>,
) -> Result<(u64, Vec<TableLoad>)> {
    if options.mode == RestoreMode::Clean {
        drop_foreign_keys(into, &meta.tables).await?;
    }
    progress.phase("schema");
    section(
        tools,
        into,
        options,
        "pre-data",
        archive,
        "creating the schema",
    )
    .await?;

    progress.phase("data");
    let mut files: Vec<DataFile> = meta.data.clone();
    files.sort_by_key(|f| std::cmp::Reverse(f.parts.iter().map(|p| p.bytes).sum::<u64>()));
    let sessions = options.jobs.max(1).min(files.len());
    let queue = Arc::new(Mutex::new(files.into_iter().collect::<VecDeque<_>>()));
    let tables = Arc::new(meta.tables.clone());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..sessions {
        workers.spawn(worker(
            repo.clone(),
            snapshot.clone(),
            into.clone(),
            queue.clone(),
            tables.clone(),
            progress.clone(),
        ));
    }
    let rest = section(
        tools,
        into,
        options,
        "data",
        archive,
        "loading large objects and sequences",
    );
    let all = async {
        let mut loads = Vec::new();
        while let Some(done) = workers.join_next().await {
            loads.extend(done.map_err(|e| err!(Io, "a restore session failed: {e}"))??);
        }
        Ok::<_, Error>(loads)
    };
    // The first failure stops the rest: pg_restore is killed, the sessions are aborted.
    let ((), loads) = tokio::try_join!(rest, all)?;

    progress.phase("indexes");
    section(
        tools,
        into,
        options,
        "post-data",
        archive,
        "building indexes, constraints and triggers",
    )
    .await?;

    let mut per_table: Vec<TableLoad> = meta
        .tables
        .iter()
        .map(|t| TableLoad {
            table: format!("{}.{}", t.schema, t.table),
            rows: 0,
            bytes: 0,
            secs: 0.0,
        })
        .collect();
    let mut total = 0;
    for (i, rows, bytes, secs) in loads {
        let t = &mut per_table[i];
        t.rows += rows;
        t.bytes += bytes;
        t.secs += secs;
        total += bytes;
    }
    Ok((total, per_table))
}

/// Runs `pg_restore` for one section; its error says what the section was doing.
async fn section(
    tools: &PgTools,
    into: &ConnInfo,
    options: &RestoreOptions,
    name: &str,
    archive: &Path,
    doing: &str,
) -> Result<()> {
    spawn(
        pg_restore(tools, into, options, name, archive),
        "pg_restore",
        Stdio::null(),
        Stdio::null(),
    )?
    .finish()
    .await
    .map(|_| ())
    .map_err(|e| e.context(format!("{doing} (pg_restore --section={name})")))
}

/// In `--clean` mode, drops the foreign keys between the snapshot's tables first: the
/// post-data section recreates them, and while they exist the pre-data section cannot
/// drop the tables they tie together.
async fn drop_foreign_keys(into: &ConnInfo, tables: &[TableCount]) -> Result<()> {
    let client = into.connect().await?;
    let schemas: Vec<String> = tables.iter().map(|t| t.schema.clone()).collect();
    let names: Vec<String> = tables.iter().map(|t| t.table.clone()).collect();
    let rows = client
        .query(
            "WITH snap AS (SELECT * FROM unnest($1::text[], $2::text[]) AS s(schema, name)), \
                  rel AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                          JOIN snap ON snap.schema = n.nspname AND snap.name = c.relname) \
             SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', k.conrelid::regclass, k.conname) \
             FROM pg_constraint k WHERE k.contype = 'f' \
               AND k.conrelid IN (SELECT oid FROM rel) AND k.confrelid IN (SELECT oid FROM rel)",
            &[&schemas, &names],
        )
        .await
        .map_err(|e| query_error(into, "listing foreign keys to drop before --clean", e))?;
    if rows.is_empty() {
        return Ok(());
    }
    let sql: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    client
        .batch_execute(&format!("BEGIN; {}; COMMIT", sql.join("; ")))
        .await
        .map_err(|e| query_error(into, "dropping foreign keys before --clean", e))
}

/// (table index, rows, bytes, seconds) of one loaded part.
type Loaded = (usize, i64, u64, f64);

async fn worker(
    repo: Repository,
    snapshot: Snapshot,
    into: ConnInfo,
    queue: Arc<Mutex<VecDeque<DataFile>>>,
    tables: Arc<Vec<TableCount>>,
    progress: Arc<dyn Progress>,
) -> Result<Vec<Loaded>> {
    let client = into.connect().await?;
    client
        .batch_execute(&format!(
            "{}; SET synchronous_commit = off",
            crate::logical::streams::SESSION
        ))
        .await
        .map_err(|e| query_error(&into, "setting up a restore session", e))?;
    let mut out = Vec::new();
    loop {
        let file = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let Some(file) = file else { break };
        let mut stream = repo.read_file(&snapshot, &file.file)?;
        let mut pending = Bytes::new();
        for part in &file.parts {
            let t = tables.get(part.table).ok_or_else(|| {
                err!(
                    Corrupt,
                    "snapshot {} names table #{} in {}, which its metadata lacks",
                    snapshot.id,
                    part.table,
                    file.file
                )
            })?;
            let label = format!("{}.{}", t.schema, t.table);
            progress.item_started(&label);
            let started = Instant::now();
            let format = if t.binary { " (FORMAT binary)" } else { "" };
            let columns = t
                .columns
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "COPY {}.{} ({columns}) FROM STDIN{format}",
                ident(&t.schema),
                ident(&t.table)
            );
            let loading =
                |e: tokio_postgres::Error| query_error(&into, &format!("loading table {label}"), e);
            let sink = client
                .copy_in::<_, Bytes>(sql.as_str())
                .await
                .map_err(loading)?;
            let mut sink = std::pin::pin!(sink);
            let mut left = part.bytes;
            while left > 0 {
                if pending.is_empty() {
                    pending = stream.try_next().await?.ok_or_else(|| {
                        err!(
                            Corrupt,
                            "snapshot {}: {} ends before table {label}'s data does",
                            snapshot.id,
                            file.file
                        )
                    })?;
                }
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(pending.len());
                let piece = pending.split_to(n);
                sink.send(piece).await.map_err(loading)?;
                left -= n as u64;
                progress.advance(n as u64, 0);
            }
            let rows = sink.as_mut().finish().await.map_err(loading)?;
            if i64::try_from(rows).ok() != Some(part.rows) {
                return Err(err!(
                    Corrupt,
                    "table {label}: {rows} rows loaded from snapshot {}, which recorded {}",
                    snapshot.id,
                    part.rows
                ));
            }
            progress.item_finished(&label);
            out.push((
                part.table,
                part.rows,
                part.bytes,
                started.elapsed().as_secs_f64(),
            ));
        }
    }
    Ok(out)
}
