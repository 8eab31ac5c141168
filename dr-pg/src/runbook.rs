//! The Postgres adapter's runbook actions and its `postgres` target kind: each action
//! reads its `with:` into the options of the library operation the CLI and Python call.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dr_core::progress::NoProgress;
use dr_core::repo::{Pick, SnapshotRef};
use dr_core::runbook::{
    Outcome, ParamError, Provides, Registry, StepContext, Target, TypedAction, TypedKind,
    TypedTargetKind,
};
use dr_core::{err, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sql::{ExecOptions, Executed, QueryOptions, Rows};
use crate::{ConnInfo, OpenStore, PgTarget};

/// Adds the `postgres` target kind and the Postgres and repository actions; `repo.copy`
/// opens its destination's store with `open`.
pub fn register(r: &mut Registry, open: OpenStore) {
    r.target_kind(TypedKind(PostgresKind))
        .typed(SqlCheck)
        .typed(SqlExec)
        .typed(SqlQuery)
        .typed(PgReady)
        .typed(PgBackup)
        .typed(PgVerify)
        .typed(PgRestore)
        .typed(PgFindBackup)
        .typed(PgBasebackup)
        .typed(PgPitr)
        .typed(WalVerify)
        .typed(RepoStatus)
        .typed(RepoPrune)
        .typed(RepoCopy { open });
    crate::drill::register(r);
}

/// A `postgres` target's fields.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresFields {
    /// The server (a superuser, to promote or fence).
    pub url: ConnInfo,
}

struct PostgresKind;

#[async_trait]
impl TypedTargetKind for PostgresKind {
    type Fields = PostgresFields;
    const KIND: &'static str = "postgres";
    const PROVIDES: Provides = Provides::Database;

    async fn build(&self, _: &str, f: PostgresFields) -> Result<Target> {
        Ok(Target::Database(Arc::new(PgTarget::new(f.url))))
    }
}

/// A database and SQL.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlCheckParams {
    /// The database.
    pub url: ConnInfo,
    /// Queries, each returning true or a non-zero count in its first column.
    pub sql: Vec<String>,
}

/// What the checks found.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Checked {
    /// Every check passed.
    pub ok: bool,
    /// Each query and what it returned.
    pub checks: Vec<crate::SqlCheck>,
}

struct SqlCheck;

#[async_trait]
impl TypedAction for SqlCheck {
    type Params = SqlCheckParams;
    type Outputs = Checked;
    const NAME: &'static str = "sql.check";
    const SUMMARY: &'static str = "Runs SQL queries that must each return true or a non-zero count, and amcheck on the indexes; fails naming each check that did not pass.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: SqlCheckParams) -> Result<Vec<String>> {
        Ok(vec![format!(
            "runs {} read-only checks on {}",
            p.sql.len(),
            p.url
        )])
    }
    async fn run(&self, ctx: &StepContext, p: SqlCheckParams) -> Result<Outcome<Checked>> {
        let r = crate::check_server(&p.url, &p.sql).await?;
        if !r.ok {
            let failed: Vec<String> = r
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{} -> {}", c.sql, c.result))
                .collect();
            return Err(err!(
                Conflict,
                "step {:?}: checks failed on {}: {}",
                ctx.step,
                p.url,
                failed.join("; ")
            ));
        }
        Ok(Outcome::Done(Checked {
            ok: r.ok,
            checks: r.checks,
        }))
    }
}

/// `sql.exec`'s parameters: a database and [`ExecOptions`].
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlExecParams {
    /// The database.
    pub url: ConnInfo,
    /// Statements, run in order.
    pub sql: Vec<String>,
    /// Run them in one transaction. By default they do, unless one cannot run inside a
    /// transaction (`CREATE DATABASE`, `DROP DATABASE`, `VACUUM`, `… CONCURRENTLY`,
    /// `ALTER SYSTEM`): then each runs on its own, and the plan says so.
    #[serde(default)]
    pub transaction: Option<bool>,
}

impl SqlExecParams {
    fn options(&self) -> ExecOptions {
        ExecOptions {
            sql: self.sql.clone(),
            transaction: self.transaction,
        }
    }
}

struct SqlExec;

#[async_trait]
impl TypedAction for SqlExec {
    type Params = SqlExecParams;
    type Outputs = Executed;
    const NAME: &'static str = "sql.exec";
    const SUMMARY: &'static str = "Runs SQL statements on `url`: in one transaction, or each on its own when one cannot run in a transaction (DROP/CREATE DATABASE) or `transaction: false`. Not idempotent.";
    const IDEMPOTENT: bool = false;

    fn check(&self, p: &SqlExecParams) -> std::result::Result<(), ParamError> {
        p.options()
            .check()
            .map_err(|e| ParamError::at("transaction", e.message()))
    }
    async fn plan(&self, _: &StepContext, p: SqlExecParams) -> Result<Vec<String>> {
        Ok(vec![p.options().describe(&p.url.to_string())])
    }
    async fn run(&self, _: &StepContext, p: SqlExecParams) -> Result<Outcome<Executed>> {
        Ok(Outcome::Done(
            crate::sql::execute(&p.url, &p.options()).await?,
        ))
    }
}

/// `sql.query`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlQueryParams {
    /// The database.
    pub url: ConnInfo,
    /// One query (`SELECT count(*) AS orders, max(updated_at) AS newest FROM orders`).
    pub sql: String,
    /// Most rows kept in `rows` (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

struct SqlQuery;

#[async_trait]
impl TypedAction for SqlQuery {
    type Params = SqlQueryParams;
    type Outputs = Rows;
    const NAME: &'static str = "sql.query";
    const SUMMARY: &'static str = "Runs one read-only query on `url` (in a read-only transaction); its first row becomes `row` (by column name) and its rows `rows`, for `assert:`, `if:` and later steps.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: SqlQueryParams) -> Result<Vec<String>> {
        Ok(vec![format!("reads from {}: {}", p.url, p.sql)])
    }
    async fn run(&self, _: &StepContext, p: SqlQueryParams) -> Result<Outcome<Rows>> {
        let options = QueryOptions {
            sql: p.sql,
            limit: p.limit,
        };
        Ok(Outcome::Done(crate::sql::query(&p.url, &options).await?))
    }
}

/// `pg.ready`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadyParams {
    /// The database.
    pub url: ConnInfo,
    /// Longest wait (default 1m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

struct PgReady;

#[async_trait]
impl TypedAction for PgReady {
    type Params = ReadyParams;
    type Outputs = crate::sql::Ready;
    const NAME: &'static str = "pg.ready";
    const SUMMARY: &'static str =
        "Waits until `url` accepts connections and answers a query (pg_isready, with a deadline).";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: ReadyParams) -> Result<Vec<String>> {
        Ok(vec![format!("waits until {} answers", p.url)])
    }
    async fn run(&self, ctx: &StepContext, p: ReadyParams) -> Result<Outcome<crate::sql::Ready>> {
        let limit = p.timeout.unwrap_or(Duration::from_mins(1));
        tokio::select! {
            r = crate::sql::ready(&p.url, limit) => Ok(Outcome::Done(r?)),
            () = ctx.cancel.cancelled() => Err(ctx.cancelled()),
        }
    }
}

/// `pg.backup`'s parameters: a database beside the options of `drkit backup`.
#[derive(Deserialize, JsonSchema)]
pub struct BackupParams {
    /// The database.
    pub url: ConnInfo,
    /// The options of `drkit backup`.
    #[serde(flatten)]
    pub options: crate::BackupOptions,
}

/// A snapshot a step stored.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Stored {
    /// Its id.
    pub snapshot: String,
    /// Bytes uploaded (what the repository did not have yet).
    pub new_bytes: u64,
}

impl From<&dr_core::repo::Snapshot> for Stored {
    fn from(s: &dr_core::repo::Snapshot) -> Self {
        Self {
            snapshot: s.id.to_string(),
            new_bytes: s.stats.new_bytes,
        }
    }
}

struct PgBackup;

#[async_trait]
impl TypedAction for PgBackup {
    type Params = BackupParams;
    type Outputs = Stored;
    const NAME: &'static str = "pg.backup";
    const SUMMARY: &'static str =
        "Backs up a database into the run's repository (the options of `drkit backup`).";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: BackupParams) -> Result<Vec<String>> {
        Ok(vec![format!("backs up {} into the repository", p.url)])
    }
    async fn run(&self, ctx: &StepContext, p: BackupParams) -> Result<Outcome<Stored>> {
        let snap =
            crate::backup(ctx.repository()?, &p.url, &p.options, Arc::new(NoProgress)).await?;
        Ok(Outcome::Done(Stored::from(&snap)))
    }
}

/// What a verification proved.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct VerifiedOutputs {
    /// Every chunk intact and every check passed.
    pub ok: bool,
    /// The measured restore time, with `restore_into`.
    pub restore_seconds: Option<f64>,
}

struct PgVerify;

#[async_trait]
impl TypedAction for PgVerify {
    type Params = crate::VerifyOptions;
    type Outputs = VerifiedOutputs;
    const NAME: &'static str = "pg.verify";
    const SUMMARY: &'static str = "Verifies snapshots of the run's repository (the options of `drkit verify`): chunks, or a restore into a scratch database with checks; recorded for `status`.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: crate::VerifyOptions) -> Result<Vec<String>> {
        Ok(vec![match &p.restore_into {
            Some(url) => {
                format!("restores a snapshot into a scratch database on {url} and checks it")
            }
            None => "re-reads and authenticates every chunk of the snapshots".to_owned(),
        }])
    }
    async fn run(
        &self,
        ctx: &StepContext,
        p: crate::VerifyOptions,
    ) -> Result<Outcome<VerifiedOutputs>> {
        let out = crate::verify(ctx.repository()?, &p, Arc::new(NoProgress)).await?;
        if !out.ok {
            return Err(err!(Corrupt, "step {:?}: verification failed", ctx.step));
        }
        Ok(Outcome::Done(VerifiedOutputs {
            ok: out.ok,
            restore_seconds: out
                .restore
                .as_ref()
                .map(|r| r.restore_duration.as_secs_f64()),
        }))
    }
}

/// `pg.restore`'s parameters: where to, which snapshot, how.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreParams {
    /// The database to restore into.
    pub url: ConnInfo,
    /// `latest` (default: the newest dump of the database `url` names, or of `source`),
    /// an id or a prefix.
    #[serde(default)]
    pub snapshot: SnapshotRef,
    /// With latest: the source, by URL or database name.
    #[serde(default)]
    pub source: Option<String>,
    /// With latest: the newest taken before this moment.
    #[serde(default)]
    pub before: Option<jiff::Timestamp>,
    /// With latest: only snapshots with these tags.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// With latest: one at random among those finished within this long.
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub random_within: Option<Duration>,
    /// The options of `drkit restore` (mode, jobs, globals, create_roles, …).
    #[serde(default)]
    pub options: crate::RestoreOptions,
}

impl RestoreParams {
    fn pick(&self) -> Pick {
        Pick {
            snapshot: self.snapshot.clone(),
            source: self.source.clone(),
            before: self.before,
            tags: self.tags.clone(),
            random_within: self.random_within,
        }
    }
}

/// `pg.find_backup`'s parameters: the choice `pg.restore` makes, without restoring.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindBackupParams {
    /// The database a restore would go into (`latest` is the newest dump of the
    /// database it names, or of `source`); nothing connects to it.
    pub url: ConnInfo,
    /// `latest` (default), an id or a prefix.
    #[serde(default)]
    pub snapshot: SnapshotRef,
    /// With latest: the source, by URL or database name.
    #[serde(default)]
    pub source: Option<String>,
    /// With latest: the newest taken before this moment.
    #[serde(default)]
    pub before: Option<jiff::Timestamp>,
    /// With latest: only snapshots with these tags.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// With latest: one at random among those finished within this long.
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub random_within: Option<Duration>,
}

/// The dump `pg.find_backup` found.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct FoundBackup {
    /// Its id: give it to `pg.restore`'s `snapshot:` so the same dump is restored.
    pub snapshot: String,
    /// The database it is of.
    pub source: String,
    /// When it finished (RFC 3339).
    pub finished: String,
    /// Its age in seconds: the data a restore of it gives up.
    pub age_seconds: f64,
    /// Its size before deduplication, in bytes.
    pub bytes: u64,
}

struct PgFindBackup;

#[async_trait]
impl TypedAction for PgFindBackup {
    type Params = FindBackupParams;
    type Outputs = FoundBackup;
    const NAME: &'static str = "pg.find_backup";
    const SUMMARY: &'static str = "Finds the dump `pg.restore` would restore with the same choice (latest of the database `url` names or of `source`, before, tags, random_within) and outputs it, changing nothing; fails when there is none — a check to make before stopping an app for a restore.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, ctx: &StepContext, p: FindBackupParams) -> Result<Vec<String>> {
        let Ok(repo) = ctx.repository() else {
            return Ok(vec![format!(
                "finds the dump a restore into {} would use",
                p.url
            )]);
        };
        let snap = crate::dump_for(repo, &p.pick(), &p.url).await?;
        Ok(vec![format!(
            "finds snapshot {} (of {}, {})",
            snap.id, snap.source, snap.finished_at
        )])
    }

    async fn run(&self, ctx: &StepContext, p: FindBackupParams) -> Result<Outcome<FoundBackup>> {
        let repo = ctx.repository()?;
        let snap = crate::dump_for(repo, &p.pick(), &p.url).await?;
        let age = jiff::Timestamp::now()
            .duration_since(snap.finished_at)
            .as_secs_f64()
            .max(0.0);
        Ok(Outcome::Done(FoundBackup {
            snapshot: snap.id.to_string(),
            source: snap.source.clone(),
            finished: snap.finished_at.to_string(),
            age_seconds: age,
            bytes: snap.stats.raw_bytes,
        }))
    }
}

impl FindBackupParams {
    fn pick(&self) -> Pick {
        Pick {
            snapshot: self.snapshot.clone(),
            source: self.source.clone(),
            before: self.before,
            tags: self.tags.clone(),
            random_within: self.random_within,
        }
    }
}

struct PgRestore;

#[async_trait]
impl TypedAction for PgRestore {
    type Params = RestoreParams;
    type Outputs = crate::RestoreReport;
    const NAME: &'static str = "pg.restore";
    const SUMMARY: &'static str = "Restores a dump of the run's repository into `url`: `latest` is the newest of the database `url` names (or of `source`), narrowed by before, tags and random_within; one it cannot tie to one database is refused before anything changes.";
    const IDEMPOTENT: bool = false;

    async fn plan(&self, ctx: &StepContext, p: RestoreParams) -> Result<Vec<String>> {
        let Ok(repo) = ctx.repository() else {
            return Ok(vec![format!("restores a dump into {}", p.url)]);
        };
        let snap = match crate::dump_for(repo, &p.pick(), &p.url).await {
            Ok(snap) => snap,
            // An earlier step of the run may take it (pg.backup, then pg.restore).
            Err(e) if e.kind() == dr_core::ErrorKind::NotFound => {
                return Ok(vec![format!(
                    "restores a dump into {}: none there now ({}); an earlier step must take it",
                    p.url,
                    e.message()
                )])
            }
            Err(e) => return Err(e),
        };
        Ok(vec![format!(
            "restores snapshot {} (of {}, {}) into {} (mode {})",
            snap.id,
            snap.source,
            snap.finished_at,
            p.url,
            format!("{:?}", p.options.mode).to_lowercase()
        )])
    }
    async fn run(
        &self,
        ctx: &StepContext,
        p: RestoreParams,
    ) -> Result<Outcome<crate::RestoreReport>> {
        let repo = ctx.repository()?;
        let snap = crate::dump_for(repo, &p.pick(), &p.url).await?;
        Ok(Outcome::Done(
            crate::restore(repo, &snap, &p.url, &p.options, Arc::new(NoProgress)).await?,
        ))
    }
}

/// `pg.basebackup`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasebackupParams {
    /// The server.
    pub url: ConnInfo,
    /// How long WAL archiving may fail before the backup is abandoned (default 10m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub archive_timeout: Option<Duration>,
}

struct PgBasebackup;

#[async_trait]
impl TypedAction for PgBasebackup {
    type Params = BasebackupParams;
    type Outputs = Stored;
    const NAME: &'static str = "pg.basebackup";
    const SUMMARY: &'static str = "Takes a physical base backup of `url` into the run's repository (for pg.pitr); abandoned, with nothing stored, when the server's WAL archiving fails for `archive_timeout`.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: BasebackupParams) -> Result<Vec<String>> {
        Ok(vec![format!("takes a base backup of {}", p.url)])
    }
    async fn run(&self, ctx: &StepContext, p: BasebackupParams) -> Result<Outcome<Stored>> {
        let timeout = p.archive_timeout.unwrap_or(Duration::from_mins(10));
        let snap =
            crate::basebackup(ctx.repository()?, &p.url, timeout, Arc::new(NoProgress)).await?;
        Ok(Outcome::Done(Stored::from(&snap)))
    }
}

/// A report's documented fields, with the rest of it as `drkit … --json` prints it.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct PitrOutputs {
    /// Whether the server was started and promoted.
    pub promoted: bool,
    /// Seconds from start to promotion (WAL replay), when started.
    pub replay_seconds: Option<f64>,
    /// Seconds to unpack the base.
    pub unpack_seconds: f64,
    /// The rest of the report (`plan`, `target`, `pgdata`, `checks`, …).
    #[serde(flatten)]
    pub report: Map<String, Value>,
}

/// A report as outputs of type `O` (its documented fields, the rest kept beside).
fn report<T: Serialize, O: serde::de::DeserializeOwned>(r: &T) -> Result<O> {
    serde_json::to_value(r)
        .and_then(serde_json::from_value)
        .map_err(|e| err!(Corrupt, "a report does not read as its outputs: {e}"))
}

struct PgPitr;

#[async_trait]
impl TypedAction for PgPitr {
    type Params = crate::PitrOptions;
    type Outputs = PitrOutputs;
    const NAME: &'static str = "pg.pitr";
    const SUMMARY: &'static str = "Recovers a cluster from the run's repository to a point in time (the options of `drkit pitr`).";
    const IDEMPOTENT: bool = false;

    async fn plan(&self, _: &StepContext, p: crate::PitrOptions) -> Result<Vec<String>> {
        Ok(vec![format!(
            "recovers a cluster into {} to {:?}",
            p.pgdata.display(),
            p.target
        )])
    }
    async fn run(&self, ctx: &StepContext, p: crate::PitrOptions) -> Result<Outcome<PitrOutputs>> {
        let r = crate::pitr(ctx.repository()?, &p, Arc::new(NoProgress)).await?;
        Ok(Outcome::Done(report(&r)?))
    }
}

/// `pg.wal_verify`'s outputs.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct WalOutputs {
    /// No base backup's replay is cut short by a gap.
    pub ok: bool,
    /// Files in the archive.
    pub files: usize,
    /// The rest of the report (`window`, `timelines`, `base_backups`).
    #[serde(flatten)]
    pub report: Map<String, Value>,
}

struct WalVerify;

#[async_trait]
impl TypedAction for WalVerify {
    type Params = NoParams;
    type Outputs = WalOutputs;
    const NAME: &'static str = "pg.wal_verify";
    const SUMMARY: &'static str =
        "Checks the WAL archive of the run's repository; fails on a gap after a base backup.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, _: NoParams) -> Result<Vec<String>> {
        Ok(vec!["reads the WAL archive for gaps".to_owned()])
    }
    async fn run(&self, ctx: &StepContext, _: NoParams) -> Result<Outcome<WalOutputs>> {
        let r = crate::wal_verify(ctx.repository()?).await?;
        if !r.ok {
            return Err(err!(
                Corrupt,
                "step {:?}: the WAL archive has a gap: {}",
                ctx.step,
                r.window
            ));
        }
        Ok(Outcome::Done(report(&r)?))
    }
}

/// No parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `repo.status`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// The objectives per service.
    #[serde(default)]
    pub objectives: Vec<crate::Objective>,
}

/// `repo.status`'s outputs.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct StatusOutputs {
    /// No objective missed.
    pub ok: bool,
    /// Per source: its newest snapshots, age, last verification.
    pub sources: Vec<Value>,
    /// The rest of the report.
    #[serde(flatten)]
    pub report: Map<String, Value>,
}

struct RepoStatus;

#[async_trait]
impl TypedAction for RepoStatus {
    type Params = StatusParams;
    type Outputs = StatusOutputs;
    const NAME: &'static str = "repo.status";
    const SUMMARY: &'static str = "Checks the run's repository against objectives (rpo, rto, verified_within per service); fails when one is missed.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: StatusParams) -> Result<Vec<String>> {
        Ok(vec![format!(
            "checks the repository against {} objective(s)",
            p.objectives.len()
        )])
    }
    async fn run(&self, ctx: &StepContext, p: StatusParams) -> Result<Outcome<StatusOutputs>> {
        let r = crate::status(ctx.repository()?, &p.objectives, jiff::Timestamp::now()).await?;
        if !r.ok {
            return Err(err!(
                Conflict,
                "step {:?}: objectives missed: {}",
                ctx.step,
                r.objectives_missed.join("; ")
            ));
        }
        Ok(Outcome::Done(report(&r)?))
    }
}

/// `repo.prune`'s outputs.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct PruneOutputs {
    /// The snapshots removed.
    pub removed: Vec<String>,
    /// Stored bytes freed.
    pub bytes_freed: u64,
    /// WAL files no kept base backup needs any more, removed.
    pub wal_files_removed: u64,
    /// The rest of the report (`decisions`, `chunks_deleted`, …).
    #[serde(flatten)]
    pub report: Map<String, Value>,
}

struct RepoPrune;

#[async_trait]
impl TypedAction for RepoPrune {
    type Params = dr_core::repo::PruneOptions;
    type Outputs = PruneOutputs;
    const NAME: &'static str = "repo.prune";
    const SUMMARY: &'static str =
        "Applies a retention policy to the run's repository (the options of `drkit prune`).";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: dr_core::repo::PruneOptions) -> Result<Vec<String>> {
        Ok(vec![format!(
            "applies the retention policy{}",
            if p.dry_run { " (dry run)" } else { "" }
        )])
    }
    async fn run(
        &self,
        ctx: &StepContext,
        p: dr_core::repo::PruneOptions,
    ) -> Result<Outcome<PruneOutputs>> {
        let r = crate::prune(ctx.repository()?, &p, jiff::Timestamp::now()).await?;
        // The repository's report, with the WAL files removed beside it.
        let mut doc = serde_json::to_value(&r.report).unwrap_or_default();
        doc["wal_files_removed"] = r.wal_files_removed.into();
        Ok(Outcome::Done(report(&doc)?))
    }
}

/// `repo.copy`'s outputs.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct CopyOutputs {
    /// Where (its URL without options).
    pub destination: String,
    /// The rest of the report (snapshots and WAL copied).
    #[serde(flatten)]
    pub report: Map<String, Value>,
}

struct RepoCopy {
    open: OpenStore,
}

#[async_trait]
impl TypedAction for RepoCopy {
    type Params = crate::CopyOptions;
    type Outputs = CopyOutputs;
    const NAME: &'static str = "repo.copy";
    const SUMMARY: &'static str = "Copies snapshots and WAL of the run's repository to `to` (the options of `drkit copy`; the destination's secret from DRKIT_TO_PASSWORD, _PASSWORD_FILE or _KEY_FILE, else the source's).";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: crate::CopyOptions) -> Result<Vec<String>> {
        let store = (self.open)(&p.to)?;
        Ok(vec![format!("copies to {}", store.url())])
    }
    async fn run(&self, ctx: &StepContext, p: crate::CopyOptions) -> Result<Outcome<CopyOutputs>> {
        let out = crate::copy_to(ctx.repository()?, &p, None, &self.open, &NoProgress).await?;
        Ok(Outcome::Done(report(&out)?))
    }
}
