//! Parallel logical backups: one transaction exports its snapshot, several sessions attach
//! to it and read the tables with `COPY … TO STDOUT` (large tables split into ranges of
//! heap pages, small ones packed together), each stream chunked, compressed and encrypted
//! on its own; `pg_dump` writes everything else (schema, large objects, sequences,
//! extension configuration) from the same snapshot into `schema.dump`.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use dr_core::progress::Progress;
use dr_core::repo::{FileSink, StoredFile};
use dr_core::{err, Result};
use futures::StreamExt;
use tokio::process::Command;
use tokio_postgres::Client;

use crate::connect::{ident, ConnInfo};
use crate::error::query_error;
use crate::logical::archive::ChannelReader;
use crate::logical::metadata::{DataFile, DataPart, TableCount};
use crate::logical::rows::RowCounter;
use crate::process::spawn;
use crate::tools::PgTools;

/// The `pg_dump -Fc` archive of everything but the streamed tables' rows.
pub const SCHEMA_FILE: &str = "schema.dump";

/// Tables smaller than this share a stream with others.
const PACK_BELOW: i64 = 4 << 20;
/// A shared stream holds up to this much (estimated from the tables' sizes).
const PACK_UP_TO: i64 = 64 << 20;
/// Bytes batched before they go to the chunker.
const BATCH: usize = 256 << 10;

/// A table as the backup reads it.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub schema: String,
    pub name: String,
    /// Main fork size: what a range split divides.
    pub heap_bytes: i64,
    pub total_bytes: i64,
    pub columns: Vec<String>,
    pub binary: bool,
}

impl Table {
    pub(crate) fn qualified(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    pub(crate) fn label(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The tables whose rows the streams carry: ordinary tables (partitions included) outside
/// the system schemas and not owned by an extension (pg_dump keeps those), without
/// generated columns (COPY neither writes nor reads them); built-in column types only
/// make a binary stream.
const TABLES: &str = "SELECT n.nspname::text, c.relname::text, pg_relation_size(c.oid), \
       pg_total_relation_size(c.oid), \
       coalesce(array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid \
               AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
               ORDER BY a.attnum), '{}'), \
       NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 \
               AND NOT a.attisdropped AND a.attgenerated = '' AND a.atttypid >= 16384::oid) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND c.relpersistence <> 't' \
       AND (c.relpersistence = 'p' OR NOT pg_is_in_recovery()) \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                       AND d.objid = c.oid AND d.deptype = 'e') \
     ORDER BY 1, 2";

pub(crate) async fn list_tables(client: &Client, conn: &ConnInfo) -> Result<Vec<Table>> {
    let rows = client
        .query(TABLES, &[])
        .await
        .map_err(|e| query_error(conn, "listing tables", e))?;
    Ok(rows
        .iter()
        .map(|r| Table {
            schema: r.get(0),
            name: r.get(1),
            heap_bytes: r.get(2),
            total_bytes: r.get(3),
            columns: r.get(4),
            binary: r.get(5),
        })
        .collect())
}

/// Tables at least this large are sampled in both COPY formats before they are read.
const SAMPLE_FROM: i64 = 32 << 20;
/// Heap pages a sample reads, picked at random (`TABLESAMPLE SYSTEM`).
const SAMPLE_PAGES: i64 = 64;

/// Keeps binary COPY unless text compresses much better: binary is cheaper for the server
/// to write and, above all, to load (restore time is the RTO), but for some rows the
/// spelled-out form compresses far smaller (values that repeat each other's text, long
/// runs of small numbers). Each large table that may be read in binary has the same
/// random sample of its pages read in both formats and compressed at the repository's
/// level; text wins if it is at least a fifth smaller — measured on the benchmark's 1 GB
/// mixed table, text was 8 % smaller but made the backup 10 % and the restore 15 %
/// slower. Runs in the exported snapshot's transaction, after the tables are locked.
pub(crate) async fn choose_formats(
    client: &Client,
    conn: &ConnInfo,
    tables: &mut [Table],
    level: i32,
    block_size: i64,
) -> Result<()> {
    for t in tables
        .iter_mut()
        .filter(|t| t.binary && t.heap_bytes >= SAMPLE_FROM)
    {
        let pages = (t.heap_bytes / block_size.max(1)).max(1);
        #[allow(clippy::cast_precision_loss)] // a percentage of pages
        let percent = (SAMPLE_PAGES as f64 * 100.0 / pages as f64).min(100.0);
        let select = format!(
            "SELECT {} FROM ONLY {} TABLESAMPLE SYSTEM ({percent:.6}) REPEATABLE (0)",
            t.column_list(),
            t.qualified()
        );
        let label = t.label();
        let binary = compressed_sample(
            client,
            conn,
            &format!("COPY ({select}) TO STDOUT (FORMAT binary)"),
            level,
            &label,
        )
        .await?;
        let text = compressed_sample(
            client,
            conn,
            &format!("COPY ({select}) TO STDOUT"),
            level,
            &label,
        )
        .await?;
        let keep_binary = text * 100 > binary * 80;
        tracing::debug!(table = %label, binary, text, keep_binary, "sampled COPY formats");
        t.binary = keep_binary;
    }
    Ok(())
}

/// The zstd-compressed size of what `copy` writes.
async fn compressed_sample(
    client: &Client,
    conn: &ConnInfo,
    copy: &str,
    level: i32,
    label: &str,
) -> Result<usize> {
    let stream = client
        .copy_out(copy)
        .await
        .map_err(|e| query_error(conn, &format!("sampling table {label}"), e))?;
    let mut stream = std::pin::pin!(stream);
    let mut data = Vec::new();
    while let Some(part) = stream.next().await {
        let part = part.map_err(|e| query_error(conn, &format!("sampling table {label}"), e))?;
        data.extend_from_slice(&part);
    }
    zstd::bulk::compress(&data, level)
        .map(|c| c.len())
        .map_err(|e| err!(Io, "compressing a sample of table {label}: {e}"))
}

/// Takes ACCESS SHARE locks on every table, as pg_dump does, so none is dropped or
/// truncated while the streams read it.
pub(crate) async fn lock_tables(client: &Client, conn: &ConnInfo, tables: &[Table]) -> Result<()> {
    for batch in tables.chunks(500) {
        let names = batch
            .iter()
            .map(Table::qualified)
            .collect::<Vec<_>>()
            .join(", ");
        client
            .batch_execute(&format!("LOCK TABLE ONLY {names} IN ACCESS SHARE MODE"))
            .await
            .map_err(|e| {
                let timeout = e
                    .as_db_error()
                    .is_some_and(|d| d.code() == &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE);
                let mut e = query_error(conn, "locking the tables to back up", e);
                if timeout {
                    e = e.context("another session holds a conflicting lock (a migration?); retry later or raise --lock-wait-timeout".to_owned());
                }
                e
            })?;
    }
    Ok(())
}

/// One part of a job: a table, or a range of its heap pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece {
    pub table: usize,
    pub from_page: Option<u32>,
    pub to_page: Option<u32>,
}

/// One stream: the pieces one session reads into one file.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub file: String,
    pub pieces: Vec<Piece>,
    pub estimate: i64,
}

/// Splits tables larger than `split_bytes` into page ranges, packs small ones together,
/// and orders the streams largest first so the last to finish are short.
pub(crate) fn plan(tables: &[Table], jobs: usize, split_bytes: u64, block_size: i64) -> Vec<Job> {
    let split = i64::try_from(split_bytes.max(1)).unwrap_or(i64::MAX);
    let mut out: Vec<Job> = Vec::new();
    let mut small: Vec<usize> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        if t.heap_bytes > split {
            let pages = (t.heap_bytes / block_size.max(1)).max(1);
            let n = ((t.heap_bytes + split - 1) / split).min(pages);
            let step = u32::try_from((pages + n - 1) / n)
                .unwrap_or(u32::MAX)
                .max(1);
            let mut from = 0u32;
            for k in 0..n {
                let last = k == n - 1;
                let to = (!last).then(|| from.saturating_add(step));
                out.push(Job {
                    file: String::new(),
                    pieces: vec![Piece {
                        table: i,
                        from_page: Some(from),
                        to_page: to,
                    }],
                    estimate: t.heap_bytes / n,
                });
                from = from.saturating_add(step);
            }
        } else if t.heap_bytes < PACK_BELOW {
            small.push(i);
        } else {
            out.push(Job {
                file: String::new(),
                pieces: vec![Piece {
                    table: i,
                    from_page: None,
                    to_page: None,
                }],
                estimate: t.heap_bytes,
            });
        }
    }
    let small_total: i64 = small.iter().map(|&i| tables[i].heap_bytes).sum();
    let target = (small_total / jobs.max(1) as i64).clamp(PACK_BELOW, PACK_UP_TO);
    let mut current: Option<Job> = None;
    for i in small {
        let job = current.get_or_insert_with(|| Job {
            file: String::new(),
            pieces: Vec::new(),
            estimate: 0,
        });
        job.pieces.push(Piece {
            table: i,
            from_page: None,
            to_page: None,
        });
        job.estimate += tables[i].heap_bytes.max(8192);
        if job.estimate >= target {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out.sort_by_key(|j| std::cmp::Reverse(j.estimate));
    for (n, job) in out.iter_mut().enumerate() {
        job.file = format!("data/{n:05}.copy");
    }
    out
}

/// The COPY that reads one piece.
pub(crate) fn copy_out_sql(table: &Table, piece: &Piece) -> String {
    let format = if table.binary { " (FORMAT binary)" } else { "" };
    let columns = table.column_list();
    match (piece.from_page, piece.to_page) {
        (None, _) => format!("COPY {} ({columns}) TO STDOUT{format}", table.qualified()),
        (Some(from), to) => {
            let upper = to.map_or(String::new(), |to| format!(" AND ctid < '({to},0)'::tid"));
            format!(
                "COPY (SELECT {columns} FROM ONLY {} WHERE ctid >= '({from},0)'::tid{upper}) TO STDOUT{format}",
                table.qualified()
            )
        }
    }
}

/// Session settings for reading and loading COPY data the way pg_dump and pg_restore
/// do: no timeouts, ISO dates, exact floats, row security refused rather than applied.
pub(crate) const SESSION: &str = "SET statement_timeout = 0; SET lock_timeout = 0; \
    SET idle_in_transaction_session_timeout = 0; SET DateStyle = ISO; \
    SET IntervalStyle = postgres; SET extra_float_digits = 3; SET row_security = off";

/// What one session read: its files (not yet in the snapshot) and their parts.
pub(crate) struct WorkerOutput {
    pub files: Vec<(StoredFile, DataFile)>,
    /// Seconds per table index.
    pub secs: Vec<(usize, f64)>,
}

/// Reads jobs from `queue` until it is empty, in a session attached to `snapshot`.
pub(crate) async fn worker(
    conn: ConnInfo,
    snapshot: String,
    queue: Arc<Mutex<VecDeque<Job>>>,
    tables: Arc<Vec<Table>>,
    sink: FileSink,
    progress: Arc<dyn Progress>,
) -> Result<WorkerOutput> {
    let client = conn.connect().await?;
    client
        .batch_execute(&format!(
            "{SESSION}; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))
        .await
        .map_err(|e| query_error(&conn, "attaching a backup session to the exported snapshot", e))?;
    let mut out = WorkerOutput {
        files: Vec::new(),
        secs: Vec::new(),
    };
    loop {
        let job = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        let Some(job) = job else { break };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let store = sink.store_blocking(&job.file, ChannelReader::new(rx));
        let produce = read_job(&client, &conn, &job, &tables, tx, &*progress, &mut out.secs);
        let (stored, parts) = tokio::join!(store, produce);
        // A read that failed explains a short stream better than the store does.
        let parts = parts?;
        let stored = stored?;
        out.files.push((
            stored,
            DataFile {
                file: job.file,
                parts,
            },
        ));
    }
    let _ = client.batch_execute("COMMIT").await;
    Ok(out)
}

async fn read_job(
    client: &Client,
    conn: &ConnInfo,
    job: &Job,
    tables: &[Table],
    tx: tokio::sync::mpsc::Sender<Bytes>,
    progress: &dyn Progress,
    secs: &mut Vec<(usize, f64)>,
) -> Result<Vec<DataPart>> {
    let mut parts = Vec::with_capacity(job.pieces.len());
    let mut batch = BytesMut::with_capacity(BATCH);
    for piece in &job.pieces {
        let table = &tables[piece.table];
        let label = table.label();
        let shown = match piece.from_page {
            Some(from) => format!("{label} from page {from}"),
            None => label.clone(),
        };
        progress.item_started(&shown);
        let started = Instant::now();
        let sql = copy_out_sql(table, piece);
        let stream = client
            .copy_out(sql.as_str())
            .await
            .map_err(|e| query_error(conn, &format!("reading table {label}"), e))?;
        let mut stream = std::pin::pin!(stream);
        let mut counter = RowCounter::new(table.binary);
        let mut bytes = 0u64;
        while let Some(data) = stream.next().await {
            let data = data.map_err(|e| query_error(conn, &format!("reading table {label}"), e))?;
            counter.feed(&data);
            bytes += data.len() as u64;
            batch.extend_from_slice(&data);
            if batch.len() >= BATCH {
                send(&tx, batch.split().freeze()).await?;
            }
        }
        progress.item_finished(&shown);
        secs.push((piece.table, started.elapsed().as_secs_f64()));
        parts.push(DataPart {
            table: piece.table,
            from_page: piece.from_page,
            to_page: piece.to_page,
            bytes,
            rows: counter.rows(),
        });
    }
    if !batch.is_empty() {
        send(&tx, batch.freeze()).await?;
    }
    Ok(parts)
}

async fn send(tx: &tokio::sync::mpsc::Sender<Bytes>, data: Bytes) -> Result<()> {
    tx.send(data)
        .await
        .map_err(|_| err!(Io, "the repository stopped taking data"))
}

/// `pg_dump -Fc` of everything except the streamed tables' rows, from `snapshot`,
/// stored as [`SCHEMA_FILE`].
pub(crate) async fn dump_rest(
    tools: &PgTools,
    conn: &ConnInfo,
    snapshot: &str,
    lock_wait: Option<std::time::Duration>,
    tables: &[Table],
    sink: &FileSink,
) -> Result<StoredFile> {
    let mut cmd = Command::new(tools.program("pg_dump"));
    conn.apply_to(&mut cmd);
    cmd.args(["--format=custom", "--compress=0", "--no-sync"])
        .arg(format!("--snapshot={snapshot}"));
    if let Some(t) = lock_wait {
        cmd.arg(format!("--lock-wait-timeout={}", t.as_millis()));
    }
    for t in tables {
        cmd.arg(format!("--exclude-table-data={}", pattern(t)));
    }
    cmd.arg("--dbname").arg(conn.dbname());
    let mut dump = spawn(cmd, "pg_dump", Stdio::null(), Stdio::piped())?;
    let stdout = crate::process::blocking_stdout(&mut dump)?;
    let stored = sink.store_blocking(SCHEMA_FILE, stdout).await;
    dump.finish()
        .await
        .map_err(|e| e.context(format!("dumping the schema of {}", conn.redacted())))?;
    stored
}

/// A pg_dump pattern that matches exactly this table: both names quoted, so `*`, `?`,
/// `.` and capitals are literal.
fn pattern(t: &Table) -> String {
    format!(
        "\"{}\".\"{}\"",
        t.schema.replace('"', "\"\""),
        t.name.replace('"', "\"\"")
    )
}

/// Folds the sessions' figures into per-table counts.
pub(crate) fn table_counts(
    tables: &[Table],
    files: &[DataFile],
    secs: &[(usize, f64)],
) -> Vec<TableCount> {
    let mut out: Vec<TableCount> = tables
        .iter()
        .map(|t| TableCount {
            schema: t.schema.clone(),
            table: t.name.clone(),
            rows: Some(0),
            bytes: t.total_bytes,
            columns: t.columns.clone(),
            binary: t.binary,
            copied_bytes: 0,
            secs: 0.0,
        })
        .collect();
    for part in files.iter().flat_map(|f| &f.parts) {
        let t = &mut out[part.table];
        t.rows = Some(t.rows.unwrap_or(0) + part.rows);
        t.copied_bytes += part.bytes;
    }
    for &(i, s) in secs {
        out[i].secs += s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, heap: i64) -> Table {
        Table {
            schema: "public".into(),
            name: name.into(),
            heap_bytes: heap,
            total_bytes: heap,
            columns: vec!["id".into()],
            binary: true,
        }
    }

    #[test]
    fn large_tables_split_into_ranges_that_cover_every_page() {
        let tables = vec![table("big", 4000 * 8192), table("mid", 5 << 20)];
        let jobs = plan(&tables, 2, 10_000_000, 8192);
        let big: Vec<_> = jobs
            .iter()
            .flat_map(|j| &j.pieces)
            .filter(|p| p.table == 0)
            .collect();
        assert_eq!(big.len(), 4);
        let mut ranges: Vec<_> = big
            .iter()
            .map(|p| (p.from_page.unwrap(), p.to_page))
            .collect();
        ranges.sort();
        assert_eq!(ranges[0].0, 0);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1, Some(w[1].0), "ranges meet");
        }
        assert_eq!(ranges.last().unwrap().1, None, "the last range is open");
        assert!(jobs.iter().any(|j| j.pieces.len() == 1
            && j.pieces[0].table == 1
            && j.pieces[0].from_page.is_none()));
    }

    #[test]
    fn small_tables_share_streams() {
        let tables: Vec<_> = (0..2000).map(|i| table(&format!("t{i}"), 16384)).collect();
        let jobs = plan(&tables, 2, 256 << 20, 8192);
        assert!(jobs.len() < 20, "{} streams", jobs.len());
        let mut seen: Vec<_> = jobs
            .iter()
            .flat_map(|j| j.pieces.iter().map(|p| p.table))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..2000).collect::<Vec<_>>());
    }

    #[test]
    fn patterns_quote_names() {
        let mut t = table("Odd*\"name", 0);
        t.schema = "s.x".into();
        assert_eq!(pattern(&t), "\"s.x\".\"Odd*\"\"name\"");
    }
}
