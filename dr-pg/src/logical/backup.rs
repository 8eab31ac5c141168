//! Logical backups: parallel COPY streams from one exported snapshot (or one
//! `pg_dump -Fc -Z0` stream), roles beside them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::sync::Arc;

use dr_core::progress::Progress;
use dr_core::repo::{Repository, Snapshot, SnapshotKind};
use dr_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::connect::ConnInfo;
use crate::error::query_error;
use crate::logical::metadata::{
    count_rows, server_facts, LogicalFormat, LogicalMetadata, ServerFacts,
};
use crate::logical::roles::NeededRoles;
use crate::logical::streams;
use crate::process::spawn;
use crate::tools::PgTools;

/// Snapshot kind of logical dumps.
pub const KIND_LOGICAL: &str = "pg-logical";
/// The custom-format dump inside a logical snapshot.
pub const DUMP_FILE: &str = "database.dump";
/// The `pg_dumpall --globals-only` script inside a logical snapshot.
pub const GLOBALS_FILE: &str = "globals.sql";

/// Which tables get an exact `count(*)` recorded: `all`, `skip`, or `{up_to: bytes}`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RowCounts {
    /// Every table.
    #[default]
    All,
    /// Tables up to this many bytes on disk; larger ones record no count.
    UpTo(u64),
    /// None.
    Skip,
}

/// How to take a logical backup: the same options from the CLI, Python and a runbook's
/// `pg.backup` step.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BackupOptions {
    /// `streams` (parallel COPY streams, the default) or `pg-dump` (one `pg_dump -Fc`
    /// archive).
    pub format: LogicalFormat,
    /// Sessions reading tables at once (streams format); the number of cores when `None`.
    pub jobs: Option<usize>,
    /// Tables whose heap is larger than this many bytes are read as several ranges of
    /// pages, one session each (streams format).
    pub split_bytes: u64,
    /// Row counts to record for later verification (`pg-dump` format: the streams format
    /// counts every table's rows as it reads them).
    pub row_counts: RowCounts,
    /// Skip `pg_dumpall --globals-only`.
    pub skip_globals: bool,
    /// Tags for the manifest.
    pub tags: BTreeMap<String, String>,
    /// Give up (instead of waiting forever) when a table lock cannot be had this fast.
    #[serde(with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub lock_wait_timeout: Option<std::time::Duration>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            format: LogicalFormat::Streams,
            jobs: None,
            split_bytes: DEFAULT_SPLIT_BYTES,
            row_counts: RowCounts::All,
            skip_globals: false,
            tags: BTreeMap::new(),
            lock_wait_timeout: None,
        }
    }
}

/// Tables above this size are split into ranges by default: 256 MiB.
pub const DEFAULT_SPLIT_BYTES: u64 = 256 << 20;

/// The smallest range worth a COPY of its own: 64 KiB (eight pages).
pub const MIN_SPLIT_BYTES: u64 = 64 << 10;

impl BackupOptions {
    /// Refuses settings that cannot work, before anything is read.
    pub fn check(&self) -> Result<()> {
        if self.jobs == Some(0) {
            return Err(dr_core::err!(
                InvalidInput,
                "jobs must be at least 1 (the default is one per core)"
            ));
        }
        if self.split_bytes < MIN_SPLIT_BYTES {
            return Err(dr_core::err!(
                InvalidInput,
                "split_bytes {} is below {MIN_SPLIT_BYTES} (64 KiB); ranges smaller than that cost more than they gain",
                self.split_bytes
            ));
        }
        Ok(())
    }
}

/// The number of cores, the default for parallel sessions.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// Backs up the database `conn` names into `repo` and returns the committed snapshot.
///
/// Everything is read from one MVCC snapshot (exported from a repeatable-read
/// transaction): the streams, the schema and the row counts describe the same moment.
pub async fn backup(
    repo: &Repository,
    conn: &ConnInfo,
    options: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<Snapshot> {
    options.check()?;
    let tools = PgTools::discover()?;
    let client = conn.connect().await?;
    let source = Source {
        facts: server_facts(&client, conn).await?,
        roles: NeededRoles::read(&client, conn).await?,
        tools,
    };
    if options.format == LogicalFormat::Streams {
        return Box::pin(backup_streams(
            repo, conn, options, progress, client, source,
        ))
        .await;
    }
    Box::pin(backup_pg_dump(
        repo, conn, options, progress, client, source,
    ))
    .await
}

/// What `backup` learnt of the source before reading it, for the metadata.
struct Source {
    tools: PgTools,
    facts: ServerFacts,
    roles: NeededRoles,
}

/// The pg-dump format: one `pg_dump -Fc -Z0` stream; the row counts read the same
/// exported snapshot.
async fn backup_pg_dump(
    repo: &Repository,
    conn: &ConnInfo,
    options: &BackupOptions,
    progress: Arc<dyn Progress>,
    client: tokio_postgres::Client,
    source: Source,
) -> Result<Snapshot> {
    let tools = &source.tools;
    // An exported snapshot lets pg_dump and our counts see the same data.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| query_error(conn, "starting the backup transaction", e))?;
    let exported: Option<String> = client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .ok()
        .map(|r| r.get(0));
    if exported.is_none() {
        // The failed call aborted the transaction; counts then come from a fresh one.
        let _ = client
            .batch_execute("ROLLBACK; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await;
    }

    let mut writer = repo.begin_snapshot(SnapshotKind::new(KIND_LOGICAL), &conn.redacted());
    for (k, v) in &options.tags {
        writer.tag(k, v);
    }
    writer.set_progress(progress.clone());

    let mut cmd = Command::new(tools.program("pg_dump"));
    conn.apply_to(&mut cmd);
    cmd.args(["--format=custom", "--compress=0", "--no-sync"]);
    if let Some(snap) = &exported {
        cmd.arg(format!("--snapshot={snap}"));
    }
    if let Some(t) = options.lock_wait_timeout {
        cmd.arg(format!("--lock-wait-timeout={}", t.as_millis()));
    }
    cmd.arg("--dbname").arg(conn.dbname());
    progress.phase("dump");
    let mut dump = spawn(cmd, "pg_dump", Stdio::null(), Stdio::piped())?;
    let stdout = crate::process::blocking_stdout(&mut dump)?;

    let max = match options.row_counts {
        RowCounts::All => Some(None),
        RowCounts::UpTo(b) => Some(Some(b)),
        RowCounts::Skip => None,
    };
    let counting = async {
        match max {
            Some(limit) => count_rows(&client, conn, limit).await,
            None => Ok(Vec::new()),
        }
    };
    let (stored, tables) =
        tokio::join!(writer.add_file_blocking(crate::DUMP_FILE, stdout), counting);
    let dump_result = dump.finish().await;
    // pg_dump's own error explains a short stream better than the stream does.
    dump_result.map_err(|e| e.context(format!("dumping {}", conn.redacted())))?;
    stored?;
    let tables = tables?;
    let _ = client.batch_execute("COMMIT").await;

    let read = Read {
        tables,
        consistent_counts: exported.is_some(),
        format: LogicalFormat::PgDump,
        data: Vec::new(),
        jobs: 1,
    };
    finish(writer, conn, options, &*progress, source, read).await
}

/// The streams format: see [`streams`].
#[allow(clippy::too_many_lines)] // one sequence: snapshot, plan, streams, metadata, commit
async fn backup_streams(
    repo: &Repository,
    conn: &ConnInfo,
    options: &BackupOptions,
    progress: Arc<dyn Progress>,
    client: tokio_postgres::Client,
    source: Source,
) -> Result<Snapshot> {
    let tools = &source.tools;
    let mut session = streams::SESSION.to_owned();
    if let Some(t) = options.lock_wait_timeout {
        let _ = write!(session, "; SET lock_timeout = {}", t.as_millis().max(1));
    }
    client
        .batch_execute(&format!(
            "{session}; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        ))
        .await
        .map_err(|e| query_error(conn, "starting the backup transaction", e))?;
    let exported: String = client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| {
            query_error(conn, "exporting a snapshot for parallel sessions", e)
                .context("the streams format needs pg_export_snapshot(); use format pg-dump (--format pg-dump) on this server".to_owned())
        })?;
    progress.phase("tables");
    let mut tables = streams::list_tables(&client, conn).await?;
    streams::lock_tables(&client, conn, &tables).await?;
    let block_size: i64 = client
        .query_one("SELECT current_setting('block_size')::int8", &[])
        .await
        .map_err(|e| query_error(conn, "reading block_size", e))?
        .get(0);
    streams::choose_formats(
        &client,
        conn,
        &mut tables,
        repo.config().compression_level,
        block_size,
    )
    .await?;
    let jobs = options.jobs.unwrap_or_else(cores).max(1);
    // Before PostgreSQL 14 a ctid range is a filter over a whole-table scan, not a TID
    // range scan: every range would read the whole table, so tables are not split.
    let split_bytes = if source.facts.version_num >= 140_000 {
        options.split_bytes
    } else {
        u64::MAX
    };
    let plan = streams::plan(&tables, jobs, split_bytes, block_size);
    tracing::info!(
        tables = tables.len(),
        streams = plan.len(),
        jobs,
        "reading tables in parallel streams"
    );

    let mut writer = repo.begin_snapshot(SnapshotKind::new(KIND_LOGICAL), &conn.redacted());
    for (k, v) in &options.tags {
        writer.tag(k, v);
    }
    writer.set_progress(progress.clone());
    let sink = writer.files().await?;
    progress.phase("data");
    let sessions = jobs.min(plan.len());
    let queue = Arc::new(std::sync::Mutex::new(
        plan.into_iter().collect::<std::collections::VecDeque<_>>(),
    ));
    let shared = Arc::new(tables.clone());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..sessions {
        workers.spawn(streams::worker(
            conn.clone(),
            exported.clone(),
            queue.clone(),
            shared.clone(),
            sink.clone(),
            progress.clone(),
        ));
    }
    let rest = streams::dump_rest(
        tools,
        conn,
        &exported,
        options.lock_wait_timeout,
        &tables,
        &sink,
    );
    let read_all = async {
        let mut outputs = Vec::new();
        while let Some(done) = workers.join_next().await {
            // The first failure stops the others (dropping the set aborts them).
            outputs.push(done.map_err(|e| dr_core::err!(Io, "a backup session failed: {e}"))??);
        }
        Ok::<_, Error>(outputs)
    };
    // The first failure stops the rest: pg_dump is killed, the sessions are aborted.
    let (rest, outputs) = tokio::try_join!(rest, read_all)?;
    let _ = client.batch_execute("COMMIT").await;

    writer.add_stored(rest)?;
    let mut data = Vec::new();
    let mut secs = Vec::new();
    for out in outputs {
        for (stored, file) in out.files {
            writer.add_stored(stored)?;
            data.push(file);
        }
        secs.extend(out.secs);
    }
    data.sort_by(|a, b| a.file.cmp(&b.file));
    let counts = streams::table_counts(&tables, &data, &secs);

    let read = Read {
        tables: counts,
        consistent_counts: true,
        format: LogicalFormat::Streams,
        data,
        jobs: sessions,
    };
    finish(writer, conn, options, &*progress, source, read).await
}

/// What a format read, for the metadata.
struct Read {
    tables: Vec<crate::logical::metadata::TableCount>,
    consistent_counts: bool,
    format: LogicalFormat,
    data: Vec<crate::logical::metadata::DataFile>,
    jobs: usize,
}

/// Saves the roles beside the data and commits the snapshot with its metadata.
async fn finish(
    mut writer: dr_core::repo::SnapshotWriter,
    conn: &ConnInfo,
    options: &BackupOptions,
    progress: &dyn Progress,
    source: Source,
    read: Read,
) -> Result<Snapshot> {
    let Source {
        tools,
        facts,
        roles,
    } = source;
    let tools = &tools;
    let globals = if options.skip_globals {
        "skipped (--skip-globals)".to_owned()
    } else {
        progress.phase("globals");
        match dump_globals(tools, conn, &mut writer).await {
            Ok(note) => note,
            Err(e) => format!("not saved: {}", e.message()),
        }
    };
    let meta = LogicalMetadata {
        database: conn.dbname().to_owned(),
        server: conn.server(),
        server_version: facts.version,
        server_version_num: facts.version_num,
        database_size: facts.size,
        start_lsn: facts.lsn,
        in_recovery: facts.in_recovery,
        consistent_counts: read.consistent_counts,
        tables: read.tables,
        pg_dump_version: tools.version(),
        tools: format!("{} (found by {})", tools.bindir.display(), tools.found_by),
        globals,
        roles,
        format: read.format,
        data: read.data,
        jobs: read.jobs,
    };
    progress.phase("commit");
    writer
        .commit(serde_json::to_value(&meta).expect("metadata serializes"))
        .await
}

/// Saves roles and tablespaces; without superuser rights, retries without passwords.
async fn dump_globals(
    tools: &PgTools,
    conn: &ConnInfo,
    writer: &mut dr_core::repo::SnapshotWriter,
) -> Result<String> {
    let (bytes, note) = match run_dumpall(tools, conn, false).await {
        Ok(bytes) => (bytes, "saved"),
        Err(_) => (
            run_dumpall(tools, conn, true).await?,
            "saved without role passwords (the backup user cannot read pg_authid)",
        ),
    };
    writer
        .add_file(crate::GLOBALS_FILE, std::io::Cursor::new(bytes))
        .await?;
    Ok(note.to_owned())
}

async fn run_dumpall(tools: &PgTools, conn: &ConnInfo, no_passwords: bool) -> Result<Vec<u8>> {
    let mut cmd = Command::new(tools.program("pg_dumpall"));
    conn.apply_to(&mut cmd);
    cmd.args(["--globals-only", "--no-sync"])
        .arg("--database")
        .arg(conn.dbname());
    if no_passwords {
        cmd.arg("--no-role-passwords");
    }
    let mut run = spawn(cmd, "pg_dumpall", Stdio::null(), Stdio::piped())?;
    let mut stdout = run.child.stdout.take().expect("stdout is piped");
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut buf)
        .await
        .map_err(|e| Error::io("reading pg_dumpall output", e))?;
    run.finish().await?;
    Ok(buf)
}
