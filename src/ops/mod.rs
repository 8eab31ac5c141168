//! The library operations as runbook actions: each step's `with:` deserializes into the
//! same options struct the CLI and Python build, and its outputs are the operation's
//! result document.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dr_core::progress::NoProgress;
use dr_core::repo::SnapshotRef;
use dr_core::runbook::{params, Action, ActionSpec, Field, Outcome, Registry, StepContext};
use dr_core::{err, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

mod aws;

pub(super) type Run<O> = fn(StepContext, O) -> Pin<Box<dyn Future<Output = Result<Value>> + Send>>;

/// An action made of an options type and an async function of it.
pub(super) struct Op<O> {
    spec: ActionSpec,
    run: Run<O>,
    _options: PhantomData<fn() -> O>,
}

pub(super) fn op<O: DeserializeOwned + Send + 'static>(
    name: &str,
    summary: &str,
    idempotent: bool,
    params: Vec<Field>,
    outputs: Vec<Field>,
    run: Run<O>,
) -> Op<O> {
    Op {
        spec: ActionSpec {
            name: name.into(),
            summary: summary.into(),
            idempotent,
            params,
            outputs,
            open_outputs: true,
        },
        run,
        _options: PhantomData,
    }
}

#[async_trait]
impl<O: DeserializeOwned + Send + 'static> Action for Op<O> {
    fn spec(&self) -> ActionSpec {
        self.spec.clone()
    }
    // These operations name what they act on in their options (`target` of pg.pitr is
    // a point in time), never a declared target.
    fn targets(&self, _: &Value) -> Vec<String> {
        Vec::new()
    }
    fn check(&self, with: &Value) -> Result<()> {
        // Values known only after an earlier step cannot be typed yet.
        if dr_core::runbook::is_unknown(with) {
            return Ok(());
        }
        params::<O>(&self.spec.name, with).map(|_| ())
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let o: O = params(&self.spec.name, with)?;
        let doc = (self.run)(ctx.clone(), o).await?;
        Ok(Outcome::Done(match doc {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("result".into(), other);
                m
            }
        }))
    }
}

pub(super) fn doc<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreStep {
    url: dr_pg::ConnInfo,
    #[serde(default)]
    snapshot: SnapshotRef,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    before: Option<jiff::Timestamp>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
    #[serde(default, with = "dr_core::duration::human::option")]
    random_within: Option<std::time::Duration>,
    #[serde(default)]
    options: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadyStep {
    url: dr_pg::ConnInfo,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasebackupStep {
    url: dr_pg::ConnInfo,
    #[serde(default, with = "dr_core::duration::human::option")]
    archive_timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlExecStep {
    url: dr_pg::ConnInfo,
    sql: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusStep {
    #[serde(default)]
    objectives: Vec<dr_pg::Objective>,
}

/// Adds the Postgres, repository and AWS operations.
#[allow(clippy::too_many_lines)] // one registration per operation
pub(crate) fn register(r: &mut Registry) {
    let url = || Field::required("url", "postgres://…", "The database");
    r.action(op::<RestoreStep>(
        "pg.restore",
        "Restores a snapshot of the run's repository into `url` (`options`: mode auto|create|clean|swap, jobs, globals, create_roles, no_owner, no_privileges, terminate_connections).",
        false,
        vec![
            url(),
            Field::optional("snapshot", "string", "latest (default: the newest dump of the database `url` names, or of `source`), an id or a prefix"),
            Field::optional("source", "string", "With latest: the source, by URL or database name"),
            Field::optional("before", "timestamp", "With latest: the newest taken before this moment"),
            Field::optional("tags", "map", "With latest: only snapshots with these tags"),
            Field::optional("random_within", "duration", "With latest: one at random among those finished within this long"),
            Field::optional("options", "map", "The options of `drkit restore`"),
        ],
        vec![Field::required("bytes", "int", "Dump bytes restored"), Field::required("duration_secs", "number", "How long"), Field::required("snapshot", "string", "The snapshot restored")],
        |ctx, s| {
            Box::pin(async move {
                let options: dr_pg::RestoreOptions = params("pg.restore", &s.options.unwrap_or_else(|| Value::Object(Map::new())))?;
                let repo = ctx.repository()?;
                let pick = dr_core::repo::Pick {
                    snapshot: s.snapshot,
                    source: s.source,
                    before: s.before,
                    tags: s.tags,
                    random_within: s.random_within,
                };
                let snap = dr_pg::dump_for(repo, &pick, &s.url).await?;
                Ok(doc(&dr_pg::restore(repo, &snap, &s.url, &options, Arc::new(NoProgress)).await?))
            })
        },
    ))
    .action(op::<ReadyStep>(
        "pg.ready",
        "Waits until `url` accepts connections and answers a query (pg_isready, with a deadline).",
        true,
        vec![url(), Field::optional("timeout", "duration", "Longest wait (default 1m)")],
        vec![Field::required("seconds", "number", "Until ready")],
        |_, s| {
            Box::pin(async move {
                let started = std::time::Instant::now();
                let limit = s.timeout.unwrap_or(Duration::from_mins(1));
                loop {
                    match s.url.connect().await {
                        Ok(c) if c.simple_query("SELECT 1").await.is_ok() => return Ok(serde_json::json!({"seconds": started.elapsed().as_secs_f64()})),
                        Err(e) if started.elapsed() >= limit => return Err(e.context(format!("{} not ready within {}", s.url, dr_core::duration::format(limit)))),
                        Ok(_) | Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        },
    ))
    .action(op::<SqlExecStep>(
        "sql.exec",
        "Runs SQL statements on `url` in one transaction. Not idempotent.",
        false,
        vec![url(), Field::required("sql", "[string]", "Statements")],
        vec![Field::required("statements", "int", "How many ran")],
        |ctx, s| {
            Box::pin(async move {
                let mut c = s.url.connect().await?;
                let tx = c.transaction().await.map_err(|e| err!(External, "step {:?}: BEGIN on {}: {e}", ctx.step, s.url))?;
                for q in &s.sql {
                    tx.batch_execute(q).await.map_err(|e| err!(External, "step {:?}: {q:?} on {}: {}", ctx.step, s.url, e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())))?;
                }
                tx.commit().await.map_err(|e| err!(External, "step {:?}: COMMIT on {}: {e}", ctx.step, s.url))?;
                Ok(serde_json::json!({"statements": s.sql.len()}))
            })
        },
    ))
    .action(op::<BasebackupStep>(
        "pg.basebackup",
        "Takes a physical base backup of `url` into the run's repository (for pg.pitr); abandoned, with nothing stored, when the server's WAL archiving fails for `archive_timeout`.",
        true,
        vec![url(), Field::optional("archive_timeout", "duration", "How long archiving may fail (default 10m)")],
        vec![Field::required("snapshot", "string", "The base backup's id"), Field::required("new_bytes", "int", "Bytes uploaded")],
        |ctx, s| {
            Box::pin(async move {
                let timeout = s.archive_timeout.unwrap_or(Duration::from_mins(10));
                let snap = dr_pg::basebackup(ctx.repository()?, &s.url, timeout, Arc::new(NoProgress)).await?;
                Ok(serde_json::json!({"snapshot": snap.id.to_string(), "new_bytes": snap.stats.new_bytes}))
            })
        },
    ))
    .action(op::<dr_pg::PitrOptions>(
        "pg.pitr",
        "Recovers a cluster from the run's repository to a point in time (the options of `drkit pitr`).",
        false,
        vec![Field::required("pgdata", "path", "The data directory to create"), Field::required("target", "latest|{time}|{lsn}|{name}", "Where to stop"), Field::optional("start", "bool", "Start and wait for promotion")],
        vec![Field::required("replay_seconds", "number", "Replay time, when started")],
        |ctx, o| Box::pin(async move { Ok(doc(&dr_pg::pitr(ctx.repository()?, &o, Arc::new(NoProgress)).await?)) }),
    ))
    .action(op::<Map<String, Value>>(
        "pg.wal_verify",
        "Checks the WAL archive of the run's repository; fails on a gap after a base backup.",
        true,
        vec![],
        vec![Field::required("ok", "bool", "No gap"), Field::required("window", "map", "The recovery window")],
        |ctx, _| {
            Box::pin(async move {
                let r = dr_pg::wal_verify(ctx.repository()?).await?;
                if !r.ok {
                    return Err(err!(Corrupt, "step {:?}: the WAL archive has a gap: {}", ctx.step, r.window));
                }
                Ok(doc(&r))
            })
        },
    ))
    .action(op::<StatusStep>(
        "repo.status",
        "Checks the run's repository against objectives (rpo, rto, verified_within per service); fails when one is missed.",
        true,
        vec![Field::optional("objectives", "[objective]", "name, source, rpo, rto, verified_within")],
        vec![Field::required("ok", "bool", "No objective missed"), Field::required("sources", "list", "Per source")],
        |ctx, s| {
            Box::pin(async move {
                let r = dr_pg::status(ctx.repository()?, &s.objectives, jiff::Timestamp::now()).await?;
                if !r.ok {
                    return Err(err!(Conflict, "step {:?}: objectives missed: {}", ctx.step, r.objectives_missed.join("; ")));
                }
                Ok(doc(&r))
            })
        },
    ))
    .action(op::<dr_core::repo::PruneOptions>(
        "repo.prune",
        "Applies a retention policy to the run's repository (the options of `drkit prune`).",
        true,
        vec![Field::optional("keep_daily", "int", "…and the other keep_* fields, grace, dry_run")],
        vec![Field::required("report", "map", "Decisions, removed snapshots, chunks freed")],
        |ctx, o| Box::pin(async move { Ok(doc(&dr_pg::prune(ctx.repository()?, &o, jiff::Timestamp::now()).await?)) }),
    ))
    .action(op::<dr_pg::CopyOptions>(
        "repo.copy",
        "Copies snapshots and WAL of the run's repository to `to` (the options of `drkit copy`).",
        true,
        vec![Field::required("to", "url", "The destination repository"), Field::optional("init", "bool", "Create it as a replica")],
        vec![Field::required("destination", "string", "Where")],
        |ctx, o| Box::pin(async move { Ok(doc(&crate::copy(ctx.repository()?, &o, None, &NoProgress).await?)) }),
    ));
    aws::register(r);
}
