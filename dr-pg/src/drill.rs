//! The Postgres adapter's drill actions: the canary writer a drill measures its RPO
//! with (`canary.start`, `canary.stop`, `canary.read`, `canary.drop`) and the
//! disasters it breaks a sandbox server with (`disaster.pg_stop`,
//! `disaster.drop_database`, `disaster.delete_rows`, `disaster.replica_disconnect`,
//! `disaster.corrupt_table`).
//!
//! The canary writes one row at a time into `drkit_canary.writes` of its target's
//! database: the run, a sequence number, the server's `clock_timestamp()` and its WAL
//! insert position. It stops at the first write that fails (or times out: that write's
//! outcome is unknown) or when `canary.stop` asks; what it had acknowledged is
//! `canary.stop`'s outputs, journaled, so the RPO is read from the journal alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use dr_core::clock::Moment;
use dr_core::runbook::drill::{CanaryFound, CanaryLog, CanaryWrite, DisasterEffect};
use dr_core::runbook::{Outcome, ParamError, Provides, Registry, StepContext, TypedAction};
use dr_core::{err, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::error::query_error;
use crate::{ConnInfo, PgTarget};

/// Adds the canary and disaster actions.
pub fn register(r: &mut Registry) {
    r.typed(CanaryStart)
        .typed(CanaryStop)
        .typed(CanaryRead)
        .typed(CanaryDrop)
        .typed(PgStop)
        .typed(DropDatabase)
        .typed(DeleteRows)
        .typed(ReplicaDisconnect)
        .typed(CorruptTable);
}

/// The schema the canary's rows live in (dropped at the drill's teardown).
pub const CANARY_SCHEMA: &str = "drkit_canary";

/// How long one canary write may take before its outcome counts as unknown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

const CREATE: &str = "CREATE SCHEMA IF NOT EXISTS drkit_canary; \
    CREATE TABLE IF NOT EXISTS drkit_canary.writes (run text NOT NULL, seq bigint NOT NULL, \
    written_at timestamptz NOT NULL DEFAULT clock_timestamp(), lsn pg_lsn, PRIMARY KEY (run, seq))";

const INSERT: &str = "INSERT INTO drkit_canary.writes (run, seq, lsn) \
    VALUES ($1, $2, pg_current_wal_insert_lsn()) \
    RETURNING written_at::text, lsn::text";

/// The key of a run's canary writer in the run's scratch.
const WRITER: &str = "postgres canary writer";

fn pg_conn(ctx: &StepContext, target: Option<&str>, url: Option<&ConnInfo>) -> Result<ConnInfo> {
    match (target, url) {
        (Some(name), _) => {
            let db = ctx.database(name)?;
            db.as_any()
                .and_then(|a| a.downcast_ref::<PgTarget>())
                .map(|t| t.conn().clone())
                .ok_or_else(|| {
                    err!(
                        InvalidInput,
                        "step {:?}: target {name:?} is not a PostgreSQL server; this action needs one (kind: postgres)",
                        ctx.step
                    )
                })
        }
        (None, Some(url)) => Ok(url.clone()),
        (None, None) => Err(err!(
            InvalidInput,
            "step {:?}: says neither `target:` nor `url:`; give one",
            ctx.step
        )),
    }
}

fn one_of(target: Option<&String>, url: Option<&ConnInfo>) -> std::result::Result<(), ParamError> {
    match (target, url) {
        (Some(_), Some(_)) => Err(ParamError::at(
            "target",
            "give `target:` or `url:`, not both",
        )),
        (None, None) => Err(ParamError::at(
            "",
            "name the server: `target:` (a declared postgres target) or `url:`",
        )),
        _ => Ok(()),
    }
}

/// A canary's parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryParams {
    /// The PostgreSQL target written to (or read from): its database holds the canary.
    pub target: String,
    /// Time between writes (`canary.start` only).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub interval: Option<Duration>,
}

struct Writer {
    stop: CancellationToken,
    done: tokio::task::JoinHandle<CanaryLog>,
}

async fn canary_client(conn: &ConnInfo, what: &str) -> Result<Client> {
    let client = conn.connect().await?;
    client
        .batch_execute(CREATE)
        .await
        .map_err(|e| query_error(conn, what, e))?;
    Ok(client)
}

async fn write_canaries(
    client: Client,
    run: String,
    first: i64,
    interval: Duration,
    stop: CancellationToken,
    first_ack: tokio::sync::oneshot::Sender<std::result::Result<(), String>>,
) -> CanaryLog {
    let mut log = CanaryLog {
        acknowledged: Vec::new(),
        unknown: Vec::new(),
        stopped: String::new(),
        interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
    };
    let mut first_ack = Some(first_ack);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = first;
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                log.stopped = "stopped by canary.stop after the disaster; its last write had been acknowledged".into();
                break;
            }
            _ = tick.tick() => {}
        }
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&run, &seq];
        let write = tokio::time::timeout(WRITE_TIMEOUT, client.query_one(INSERT, &params));
        let answer = tokio::select! {
            () = stop.cancelled() => {
                // Sent, never answered: it may or may not have committed.
                log.unknown.push(seq.unsigned_abs());
                log.stopped = "stopped by canary.stop after the disaster, with a write sent and not answered".into();
                break;
            }
            a = write => a,
        };
        match answer {
            Ok(Ok(row)) => {
                let acked = Moment::now();
                log.acknowledged.push(CanaryWrite {
                    seq: seq.unsigned_abs(),
                    acked,
                    server_time: row.get(0),
                    lsn: row.get::<_, Option<String>>(1).unwrap_or_default(),
                });
                if let Some(tx) = first_ack.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Ok(Err(e)) => {
                // A write the server refused (read-only, gone) did not commit, unless
                // the connection broke after the commit: count those as unknown.
                if e.as_db_error().is_none() {
                    log.unknown.push(seq.unsigned_abs());
                }
                log.stopped = format!("writes failed: {}", crate::error::db_message(&e));
                if let Some(tx) = first_ack.take() {
                    let _ = tx.send(Err(log.stopped.clone()));
                }
                break;
            }
            Err(_) => {
                log.unknown.push(seq.unsigned_abs());
                log.stopped = format!("a write got no answer within {}s", WRITE_TIMEOUT.as_secs());
                if let Some(tx) = first_ack.take() {
                    let _ = tx.send(Err(log.stopped.clone()));
                }
                break;
            }
        }
        seq += 1;
    }
    log
}

struct CanaryStart;

#[async_trait]
impl TypedAction for CanaryStart {
    type Params = CanaryParams;
    type Outputs = serde_json::Map<String, serde_json::Value>;
    const NAME: &'static str = "canary.start";
    const SUMMARY: &'static str = "Starts a drill's canary writer: a row committed to the target every `interval` (default 100ms) until writes fail or `canary.stop`; a drill adds it from its `canary:` section.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Database);

    async fn plan(&self, ctx: &StepContext, p: CanaryParams) -> Result<Vec<String>> {
        let conn = pg_conn(ctx, Some(&p.target), None)?;
        Ok(vec![format!(
            "writes a canary row to {CANARY_SCHEMA}.writes on {conn} every {}",
            dr_core::duration::format(p.interval.unwrap_or(DEFAULT_INTERVAL))
        )])
    }

    async fn run(&self, ctx: &StepContext, p: CanaryParams) -> Result<Outcome<Self::Outputs>> {
        let conn = pg_conn(ctx, Some(&p.target), None)?;
        let interval = p.interval.unwrap_or(DEFAULT_INTERVAL);
        let client = canary_client(&conn, "creating the canary's table").await?;
        // A resumed drill goes on after the writes of the run it continues.
        let first: i64 = client
            .query_one(
                "SELECT coalesce(max(seq), 0) + 1 FROM drkit_canary.writes WHERE run = $1",
                &[&ctx.run_id],
            )
            .await
            .map_err(|e| query_error(&conn, "reading the canary's last write", e))?
            .get(0);
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = tokio::spawn(write_canaries(
            client,
            ctx.run_id.clone(),
            first,
            interval,
            stop.clone(),
            tx,
        ));
        match rx.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                return Err(err!(
                    Unavailable,
                    "step {:?}: the canary's first write to {conn} failed: {why}",
                    ctx.step
                ))
            }
            Err(_) => {
                return Err(err!(
                    Unavailable,
                    "step {:?}: the canary writer stopped before its first write",
                    ctx.step
                ))
            }
        }
        ctx.scratch.put(WRITER, Writer { stop, done });
        let mut out = serde_json::Map::new();
        out.insert("first_seq".into(), first.into());
        out.insert(
            "interval_ms".into(),
            u64::try_from(interval.as_millis())
                .unwrap_or(u64::MAX)
                .into(),
        );
        Ok(Outcome::Done(out))
    }
}

const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// `canary.stop` takes nothing.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

struct CanaryStop;

#[async_trait]
impl TypedAction for CanaryStop {
    type Params = NoParams;
    type Outputs = CanaryLog;
    const NAME: &'static str = "canary.stop";
    const SUMMARY: &'static str = "Stops the drill's canary writer (if the disaster has not) and journals every write it had acknowledged, with when, and those whose outcome is unknown.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, _: NoParams) -> Result<Vec<String>> {
        Ok(vec![
            "stops the canary writer and journals its acknowledged writes".into(),
        ])
    }

    async fn run(&self, ctx: &StepContext, _: NoParams) -> Result<Outcome<CanaryLog>> {
        let Some(w) = ctx.scratch.take::<Writer>(WRITER) else {
            return Err(err!(
                Unavailable,
                "step {:?}: the canary writer is not running in this process (the drill was resumed after the process that ran it ended): its writes were not journaled, so the RPO is inconclusive",
                ctx.step
            ));
        };
        w.stop.cancel();
        let log = w.done.await.map_err(|e| {
            err!(
                External,
                "step {:?}: the canary writer failed: {e}",
                ctx.step
            )
        })?;
        Ok(Outcome::Done(log))
    }
}

/// `canary.read`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryReadParams {
    /// The PostgreSQL target read (the recovered database).
    pub target: String,
    /// The canary's first sequence number (`${steps.canary.outputs.first_seq}`): null
    /// when the writer never started, and there is nothing to read.
    #[serde(default = "not_given")]
    pub started: serde_json::Value,
}

/// `started:` left out: read what is there.
fn not_given() -> serde_json::Value {
    serde_json::Value::Bool(true)
}

struct CanaryRead;

#[async_trait]
impl TypedAction for CanaryRead {
    type Params = CanaryReadParams;
    type Outputs = CanaryFound;
    const NAME: &'static str = "canary.read";
    const SUMMARY: &'static str = "Reads which of this run's canary writes a database holds (none when it has no canary table); the drill's RPO is measured from it.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Database);

    async fn plan(&self, ctx: &StepContext, p: CanaryReadParams) -> Result<Vec<String>> {
        let conn = pg_conn(ctx, Some(&p.target), None)?;
        Ok(vec![format!("reads the canary's writes on {conn}")])
    }

    async fn run(&self, ctx: &StepContext, p: CanaryReadParams) -> Result<Outcome<CanaryFound>> {
        if p.started.is_null() {
            return Err(err!(
                Conflict,
                "step {:?}: the canary never started (the drill stopped before it): there is nothing to read",
                ctx.step
            ));
        }
        let conn = pg_conn(ctx, Some(&p.target), None)?;
        let client = conn.connect().await?;
        let rows = match client
            .query(
                "SELECT seq FROM drkit_canary.writes WHERE run = $1",
                &[&ctx.run_id],
            )
            .await
        {
            Ok(rows) => rows,
            // No canary table: the recovered database has none of the writes.
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE)
                    || e.code() == Some(&tokio_postgres::error::SqlState::INVALID_SCHEMA_NAME) =>
            {
                Vec::new()
            }
            Err(e) => return Err(query_error(&conn, "reading the canary's writes", e)),
        };
        let seqs = rows
            .iter()
            .map(|r| r.get::<_, i64>(0).unsigned_abs())
            .collect();
        Ok(Outcome::Done(CanaryFound::from_seqs(seqs)))
    }
}

/// `canary.drop`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryDropParams {
    /// The PostgreSQL target whose database holds the canary (the recovered one).
    pub target: String,
    /// Another target to drop it on when `target` cannot take writes (a replica never
    /// promoted, a server gone): the one the canary wrote to.
    #[serde(default)]
    pub fallback: Option<String>,
}

struct CanaryDrop;

#[async_trait]
impl TypedAction for CanaryDrop {
    type Params = CanaryDropParams;
    type Outputs = serde_json::Map<String, serde_json::Value>;
    const NAME: &'static str = "canary.drop";
    const SUMMARY: &'static str = "Drops the canary's schema (drkit_canary) from a database that takes writes: `target`, else `fallback` (a drill's teardown, unless --keep-canary).";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Database);

    async fn plan(&self, ctx: &StepContext, p: CanaryDropParams) -> Result<Vec<String>> {
        let conn = pg_conn(ctx, Some(&p.target), None)?;
        Ok(vec![format!("drops schema {CANARY_SCHEMA} on {conn}")])
    }

    async fn run(&self, ctx: &StepContext, p: CanaryDropParams) -> Result<Outcome<Self::Outputs>> {
        let mut tried = Vec::new();
        for name in std::iter::once(&p.target).chain(p.fallback.as_ref()) {
            let conn = pg_conn(ctx, Some(name), None)?;
            match drop_canary(&conn).await {
                Ok(()) => {
                    let mut out = serde_json::Map::new();
                    out.insert("dropped_on".into(), name.clone().into());
                    return Ok(Outcome::Done(out));
                }
                Err(why) => tried.push(format!("{name} ({conn}): {why}")),
            }
        }
        Err(err!(
            Unavailable,
            "step {:?}: the canary's schema {CANARY_SCHEMA} was dropped nowhere: {}; drop it by hand once a server takes writes",
            ctx.step,
            tried.join("; ")
        ))
    }
}

/// Drops the canary's schema on `conn`, unless it cannot take writes (then why).
async fn drop_canary(conn: &ConnInfo) -> std::result::Result<(), String> {
    let client = conn.connect().await.map_err(|e| e.message().to_owned())?;
    let replica: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(|e| crate::error::db_message(&e))?
        .get(0);
    if replica {
        return Err("a replica, read-only".into());
    }
    client
        .batch_execute("DROP SCHEMA IF EXISTS drkit_canary CASCADE")
        .await
        .map_err(|e| crate::error::db_message(&e))
}

/// `disaster.pg_stop`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgStopParams {
    /// A PostgreSQL target declared `sandbox: true`.
    #[serde(default)]
    pub target: Option<String>,
    /// Or the server's URL, from a setup step's outputs.
    #[serde(default)]
    pub url: Option<ConnInfo>,
    /// Also delete its data folder, as a lost machine would.
    #[serde(default)]
    pub remove_data: bool,
}

async fn current_lsn(client: &Client, conn: &ConnInfo) -> Result<Option<String>> {
    let row = client
        .query_one(
            "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
             ELSE pg_current_wal_lsn() END::text",
            &[],
        )
        .await
        .map_err(|e| query_error(conn, "reading the WAL position", e))?;
    Ok(row.get(0))
}

/// The postmaster's pid from `data/postmaster.pid`, checked to be a running postgres.
fn postmaster(data: &Path, conn: &ConnInfo) -> Result<i32> {
    let pidfile = data.join("postmaster.pid");
    let text = std::fs::read_to_string(&pidfile).map_err(|e| {
        err!(
            InvalidInput,
            "the server {conn} keeps its data in {} but {} cannot be read here ({e}): disaster.pg_stop stops a server on this machine",
            data.display(),
            pidfile.display()
        )
    })?;
    let pid: i32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| {
            err!(
                External,
                "{} has no pid on its first line",
                pidfile.display()
            )
        })?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    if !exe.to_string_lossy().contains("postgres") {
        return Err(err!(
            Conflict,
            "{} names process {pid}, which is not a running postgres ({}): the server is not on this machine or not running",
            pidfile.display(),
            exe.display()
        ));
    }
    Ok(pid)
}

fn alive(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
}

struct PgStop;

#[async_trait]
impl TypedAction for PgStop {
    type Params = PgStopParams;
    type Outputs = DisasterEffect;
    const NAME: &'static str = "disaster.pg_stop";
    const SUMMARY: &'static str = "Drills only: stops a sandbox PostgreSQL server on this machine at once, as `pg_ctl stop -m immediate` does (no checkpoint, no goodbye to replicas), and with `remove_data` deletes its data folder; journals the moment and the WAL position.";
    const IDEMPOTENT: bool = false;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Database);

    fn check(&self, p: &PgStopParams) -> std::result::Result<(), ParamError> {
        one_of(p.target.as_ref(), p.url.as_ref())
    }

    async fn plan(&self, ctx: &StepContext, p: PgStopParams) -> Result<Vec<String>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        Ok(vec![format!(
            "stops the server {} immediately{}",
            conn.server(),
            if p.remove_data {
                " and deletes its data folder"
            } else {
                ""
            }
        )])
    }

    async fn run(&self, ctx: &StepContext, p: PgStopParams) -> Result<Outcome<DisasterEffect>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        let client = conn.connect().await?;
        let data: String = client
            .query_one("SELECT current_setting('data_directory')", &[])
            .await
            .map_err(|e| query_error(&conn, "reading the data folder", e))?
            .get(0);
        let data = PathBuf::from(data);
        let pid = postmaster(&data, &conn)?;
        let lsn = current_lsn(&client, &conn).await?;
        drop(client);
        let raw = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| err!(External, "pid {pid} is not a process id"))?;
        // SIGQUIT to the postmaster is PostgreSQL's immediate shutdown.
        rustix::process::kill_process(raw, rustix::process::Signal::QUIT)
            .map_err(|e| err!(External, "signalling postgres (pid {pid}): {e}"))?;
        let signalled = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while alive(pid) {
            if tokio::time::Instant::now() > deadline {
                rustix::process::kill_process(raw, rustix::process::Signal::KILL)
                    .map_err(|e| err!(External, "killing postgres (pid {pid}): {e}"))?;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The server is gone now: the moment the RTO runs from (the folder's deletion
        // after it is bookkeeping, not the disaster).
        let took_effect = Moment::now();
        let stopping = signalled.elapsed();
        if p.remove_data {
            let d = data.clone();
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&d))
                .await
                .map_err(|e| err!(Io, "deleting {}: {e}", data.display()))?
                .map_err(|e| dr_core::Error::io(format!("deleting {}", data.display()), e))?;
        }
        Ok(Outcome::Done(DisasterEffect {
            took_effect,
            lsn,
            what: format!(
                "stopped the server {} immediately (pid {pid}, gone {}ms after SIGQUIT){}",
                conn.server(),
                stopping.as_millis(),
                if p.remove_data {
                    ", its data folder deleted"
                } else {
                    ""
                }
            ),
        }))
    }
}

/// `disaster.drop_database`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropDatabaseParams {
    /// A PostgreSQL target declared `sandbox: true`: its database is dropped.
    #[serde(default)]
    pub target: Option<String>,
    /// Or a database URL, from a setup step's outputs.
    #[serde(default)]
    pub url: Option<ConnInfo>,
}

struct DropDatabase;

#[async_trait]
impl TypedAction for DropDatabase {
    type Params = DropDatabaseParams;
    type Outputs = DisasterEffect;
    const NAME: &'static str = "disaster.drop_database";
    const SUMMARY: &'static str = "Drills only: drops a sandbox server's database (its sessions ended first), as an operator's mistake would; journals the moment and the WAL position.";
    const IDEMPOTENT: bool = false;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Database);

    fn check(&self, p: &DropDatabaseParams) -> std::result::Result<(), ParamError> {
        one_of(p.target.as_ref(), p.url.as_ref())
    }

    async fn plan(&self, ctx: &StepContext, p: DropDatabaseParams) -> Result<Vec<String>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        Ok(vec![format!(
            "drops database {:?} on {}",
            conn.dbname(),
            conn.server()
        )])
    }

    async fn run(
        &self,
        ctx: &StepContext,
        p: DropDatabaseParams,
    ) -> Result<Outcome<DisasterEffect>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        let db = conn.dbname().to_owned();
        let admin = conn.with_dbname(if db == "postgres" {
            "template1"
        } else {
            "postgres"
        });
        let client = admin.connect().await?;
        let lsn = current_lsn(&client, &admin).await?;
        client
            .batch_execute(&format!(
                "DROP DATABASE {} WITH (FORCE)",
                crate::connect::ident(&db)
            ))
            .await
            .map_err(|e| query_error(&admin, &format!("dropping database {db:?}"), e))?;
        Ok(Outcome::Done(DisasterEffect {
            took_effect: Moment::now(),
            lsn,
            what: format!("dropped database {db:?} on {}", conn.server()),
        }))
    }
}

/// `disaster.delete_rows`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRowsParams {
    /// A PostgreSQL target declared `sandbox: true`.
    #[serde(default)]
    pub target: Option<String>,
    /// Or a database URL, from a setup step's outputs.
    #[serde(default)]
    pub url: Option<ConnInfo>,
    /// The table (`orders`, `shop.orders`).
    pub table: String,
    /// Which rows, as an SQL condition (`placed_at > now() - interval '1 hour'`); all
    /// of them when absent.
    #[serde(default, rename = "where")]
    pub condition: Option<String>,
}

struct DeleteRows;

#[async_trait]
impl TypedAction for DeleteRows {
    type Params = DeleteRowsParams;
    type Outputs = DisasterEffect;
    const NAME: &'static str = "disaster.delete_rows";
    const SUMMARY: &'static str = "Drills only: deletes rows of a sandbox table (all, or those matching `where`), as a bad deploy or an operator would; journals the moment, the WAL position and the count.";
    const IDEMPOTENT: bool = false;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Database);

    fn check(&self, p: &DeleteRowsParams) -> std::result::Result<(), ParamError> {
        one_of(p.target.as_ref(), p.url.as_ref())
    }

    async fn plan(&self, ctx: &StepContext, p: DeleteRowsParams) -> Result<Vec<String>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        Ok(vec![format!(
            "deletes {} of {} on {conn}",
            p.condition
                .as_deref()
                .map_or("every row".to_owned(), |w| format!("the rows where {w}")),
            p.table
        )])
    }

    async fn run(&self, ctx: &StepContext, p: DeleteRowsParams) -> Result<Outcome<DisasterEffect>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        let client = conn.connect().await?;
        let table = p
            .table
            .split('.')
            .map(crate::connect::ident)
            .collect::<Vec<_>>()
            .join(".");
        let sql = match &p.condition {
            Some(w) => format!("DELETE FROM {table} WHERE {w}"),
            None => format!("DELETE FROM {table}"),
        };
        let n = client
            .execute(&sql, &[])
            .await
            .map_err(|e| query_error(&conn, &format!("deleting rows of {}", p.table), e))?;
        let took_effect = Moment::now();
        let lsn = current_lsn(&client, &conn).await?;
        Ok(Outcome::Done(DisasterEffect {
            took_effect,
            lsn,
            what: format!("deleted {n} rows of {} on {conn}", p.table),
        }))
    }
}

/// `disaster.replica_disconnect`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaDisconnectParams {
    /// A PostgreSQL replica target declared `sandbox: true`.
    #[serde(default)]
    pub target: Option<String>,
    /// Or its URL, from a setup step's outputs.
    #[serde(default)]
    pub url: Option<ConnInfo>,
}

struct ReplicaDisconnect;

#[async_trait]
impl TypedAction for ReplicaDisconnect {
    type Params = ReplicaDisconnectParams;
    type Outputs = DisasterEffect;
    const NAME: &'static str = "disaster.replica_disconnect";
    const SUMMARY: &'static str = "Drills only: takes a sandbox replica's network to its primary away (its WAL receiver stopped: primary_conninfo emptied, configuration reloaded); journals the moment and the last WAL position it received.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Database);

    fn check(&self, p: &ReplicaDisconnectParams) -> std::result::Result<(), ParamError> {
        one_of(p.target.as_ref(), p.url.as_ref())
    }

    async fn plan(&self, ctx: &StepContext, p: ReplicaDisconnectParams) -> Result<Vec<String>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        Ok(vec![format!(
            "stops the WAL receiver of the replica {}",
            conn.server()
        )])
    }

    async fn run(
        &self,
        ctx: &StepContext,
        p: ReplicaDisconnectParams,
    ) -> Result<Outcome<DisasterEffect>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        let client = conn.connect().await?;
        let replica: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| query_error(&conn, "reading the server's role", e))?
            .get(0);
        if !replica {
            return Err(err!(
                Conflict,
                "step {:?}: {} is not a replica (it is not in recovery): there is no WAL receiver to stop",
                ctx.step,
                conn.server()
            ));
        }
        client
            .batch_execute("ALTER SYSTEM SET primary_conninfo = ''")
            .await
            .map_err(|e| query_error(&conn, "emptying primary_conninfo", e))?;
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(|e| query_error(&conn, "reloading the configuration", e))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let receiving: i64 = client
                .query_one("SELECT count(*) FROM pg_stat_wal_receiver", &[])
                .await
                .map_err(|e| query_error(&conn, "reading the WAL receiver", e))?
                .get(0);
            if receiving == 0 {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(err!(
                    Timeout,
                    "step {:?}: the WAL receiver of {} still runs 30s after primary_conninfo was emptied",
                    ctx.step,
                    conn.server()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took_effect = Moment::now();
        let lsn = current_lsn(&client, &conn).await?;
        Ok(Outcome::Done(DisasterEffect {
            took_effect,
            lsn,
            what: format!("stopped the WAL receiver of {}", conn.server()),
        }))
    }
}

/// `disaster.corrupt_table`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorruptTableParams {
    /// A PostgreSQL target declared `sandbox: true` (a server on this machine).
    #[serde(default)]
    pub target: Option<String>,
    /// Or a database URL, from a setup step's outputs.
    #[serde(default)]
    pub url: Option<ConnInfo>,
    /// The table (`orders`, `shop.orders`): its first page is damaged.
    pub table: String,
}

struct CorruptTable;

/// Runs `pg_ctl` with `args` as the server's owner (as the project starts its servers).
fn run_pg_ctl(program: &Path, args: &[&str]) -> Result<()> {
    let out = crate::cluster::run_as_owner(program, args)?;
    if !out.status.success() {
        return Err(err!(
            External,
            "pg_ctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[async_trait]
impl TypedAction for CorruptTable {
    type Params = CorruptTableParams;
    type Outputs = DisasterEffect;
    const NAME: &'static str = "disaster.corrupt_table";
    const SUMMARY: &'static str = "Drills only: damages the first page of a sandbox table on disk (its header overwritten, the server restarted so it reads it again), as a failing disk would: reading the table then fails with `invalid page`; journals the moment and the WAL position.";
    const IDEMPOTENT: bool = false;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Database);

    fn check(&self, p: &CorruptTableParams) -> std::result::Result<(), ParamError> {
        one_of(p.target.as_ref(), p.url.as_ref())
    }

    async fn plan(&self, ctx: &StepContext, p: CorruptTableParams) -> Result<Vec<String>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        Ok(vec![format!(
            "damages the first page of table {} on {conn} (the server restarts)",
            p.table
        )])
    }

    async fn run(
        &self,
        ctx: &StepContext,
        p: CorruptTableParams,
    ) -> Result<Outcome<DisasterEffect>> {
        let conn = pg_conn(ctx, p.target.as_deref(), p.url.as_ref())?;
        let client = conn.connect().await?;
        let row = client
            .query_one(
                "SELECT current_setting('data_directory'), pg_relation_filepath($1::text::regclass), \
                 pg_relation_size($1::text::regclass)",
                &[&p.table],
            )
            .await
            .map_err(|e| query_error(&conn, &format!("finding table {}'s file", p.table), e))?;
        let (data, file, size): (String, Option<String>, i64) =
            (row.get(0), row.get(1), row.get(2));
        let Some(file) = file else {
            return Err(err!(
                InvalidInput,
                "step {:?}: {} has no file of its own (a view, a partitioned table): name a table",
                ctx.step,
                p.table
            ));
        };
        if size == 0 {
            return Err(err!(
                Conflict,
                "step {:?}: table {} is empty on disk: there is no page to damage",
                ctx.step,
                p.table
            ));
        }
        let data = PathBuf::from(data);
        let pid = postmaster(&data, &conn)?;
        let lsn = current_lsn(&client, &conn).await?;
        // Everything on disk, then the server stopped (fast: nothing left to write), the
        // page header overwritten, the server started again on its own configuration.
        client
            .batch_execute("CHECKPOINT")
            .await
            .map_err(|e| query_error(&conn, "checkpointing", e))?;
        drop(client);
        let bindir = std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .ok_or_else(|| err!(External, "cannot find the programs of postgres (pid {pid})"))?;
        let pg_ctl = bindir.join("pg_ctl");
        let data_arg = data.to_string_lossy().into_owned();
        let path = data.join(&file);
        let log = data.join("drkit-restart.log");
        tokio::task::spawn_blocking(move || -> Result<()> {
            use std::io::{Seek as _, SeekFrom, Write as _};
            run_pg_ctl(&pg_ctl, &["-D", &data_arg, "-m", "fast", "-w", "stop"])?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| dr_core::Error::io(format!("opening {}", path.display()), e))?;
            // pd_flags, pd_lower, pd_upper, pd_special, pd_pagesize_version: nonsense.
            f.seek(SeekFrom::Start(10))
                .and_then(|_| f.write_all(&[0xFF; 14]))
                .and_then(|()| f.sync_all())
                .map_err(|e| dr_core::Error::io(format!("damaging {}", path.display()), e))?;
            run_pg_ctl(
                &pg_ctl,
                &["-D", &data_arg, "-l", &log.to_string_lossy(), "-w", "start"],
            )
        })
        .await
        .map_err(|e| err!(Io, "a blocking task failed: {e}"))??;
        Ok(Outcome::Done(DisasterEffect {
            took_effect: Moment::now(),
            lsn,
            what: format!(
                "damaged the first page of table {} ({}) on {}; the server was restarted",
                p.table,
                file,
                conn.server()
            ),
        }))
    }
}
