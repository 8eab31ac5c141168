//! A failover drill on embedded defaults (`drkit demo` ends with it): a throwaway
//! PostgreSQL primary taking orders and its streaming replica (`pg_basebackup -R`); the
//! primary is destroyed while it is being written to (an immediate stop, its folder
//! deleted), then the embedded runbook [`DRILL_RUNBOOK`] promotes the replica, checks
//! the data, proves the new primary takes writes and backs it up — planned, journaled
//! and locked like any run. What it measures:
//!
//! - RTO: from the moment the primary was lost to the moment the new primary took its
//!   first write (the `takes-writes` step's end, as journaled);
//! - RPO: the span of acknowledged orders the new primary does not have — from the
//!   newest acknowledged order it has to the newest one acknowledged at all (zero when
//!   none is missing) — and how many there are;
//!
//! each against the runbook's `objectives:`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dr_core::repo::{InitOptions, Repository, Secret};
use dr_core::runbook::journal::{EventKind, Observer};
use dr_core::runbook::RunOptions;
use dr_core::store::LocalStore;
use dr_core::{err, Error, Result};
use dr_pg::{ClusterOptions, ConnInfo, TempCluster};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The runbook the drill runs (`examples/runbooks/drill.yaml`).
pub const DRILL_RUNBOOK: &str = include_str!("../examples/runbooks/drill.yaml");

/// What the drill's orders are marked with, to tell them from the loaded ones.
const MARK: &str = "written during the drill";

/// How a drill runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrillOptions {
    /// Orders loaded before the drill begins.
    pub orders: u64,
    /// How long orders are written, one after another, before the primary is lost.
    #[serde(with = "dr_core::duration::human")]
    pub write_for: Duration,
    /// Keep the repository (the run's journal and the backup) instead of deleting it.
    pub keep_repo: bool,
}

impl Default for DrillOptions {
    fn default() -> Self {
        Self {
            orders: 10_000,
            write_for: Duration::from_secs(2),
            keep_repo: false,
        }
    }
}

/// A step of the drill's run, as journaled.
#[derive(Debug, Clone, Serialize)]
pub struct DrillStep {
    /// The step's id.
    pub id: String,
    /// Its action.
    pub action: String,
    /// `succeeded`, `failed`, …
    pub state: dr_core::runbook::StepState,
    /// How long it took.
    pub seconds: Option<f64>,
}

/// What a drill measured.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// The runbook's name.
    pub runbook: String,
    /// The run's id (its journal is in the repository).
    pub run: String,
    /// The run's outcome.
    pub outcome: dr_core::runbook::RunOutcome,
    /// When the primary was lost.
    pub disaster_at: Timestamp,
    /// When the new primary took its first write; `None` when it never did.
    pub recovered_at: Option<Timestamp>,
    /// Seconds from the loss to the first write; `None` when the run failed.
    pub rto_seconds: Option<f64>,
    /// The span of acknowledged orders lost, in seconds.
    pub rpo_seconds: f64,
    /// The runbook's objectives, in seconds.
    pub rto_objective_seconds: Option<f64>,
    /// See `rto_objective_seconds`.
    pub rpo_objective_seconds: Option<f64>,
    /// Whether the RTO was within its objective (and the run succeeded).
    pub rto_met: bool,
    /// Whether the RPO was within its objective.
    pub rpo_met: bool,
    /// Orders the primary acknowledged while it was written to.
    pub orders_acknowledged: u64,
    /// Of those, the ones the new primary has.
    pub orders_recovered: u64,
    /// Of those, the ones it does not have (acknowledged, then lost).
    pub orders_lost: u64,
    /// Orders it has that were never acknowledged (0 or 1: the one in flight when the
    /// primary went, committed and replicated before its answer was lost).
    pub orders_unacknowledged_kept: u64,
    /// The backup of the new primary.
    pub backup: Option<String>,
    /// The run's steps.
    pub steps: Vec<DrillStep>,
    /// `file://…` (and its key file) when kept.
    pub repository: Option<String>,
    /// The run succeeded and both objectives were met.
    pub ok: bool,
}

const SCHEMA: &str = "
CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric(12,2) NOT NULL,
  placed_at timestamptz NOT NULL DEFAULT clock_timestamp(), note text);
";

/// Runs `text` (statements separated by semicolons) on `conn`.
pub async fn execute_sql(conn: &ConnInfo, text: &str) -> Result<()> {
    conn.connect()
        .await?
        .batch_execute(text)
        .await
        .map_err(|e| err!(External, "running SQL on {conn}: {e}"))
}

/// An encrypted repository in a new temporary folder (`repo/`, key file `KEY`), for a
/// demo or a drill: deleted with the value unless kept.
pub struct ThrowawayRepository {
    /// The repository.
    pub repo: Repository,
    dir: tempfile::TempDir,
    key: &'static str,
}

impl ThrowawayRepository {
    /// Makes one in a new folder named `PREFIX…`, its key in the file `key`.
    pub async fn create(prefix: &str, key: &'static str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| Error::io("creating a repository folder", e))?;
        let secret = Secret::generate_key_file(&dir.path().join(key))?;
        let store = Arc::new(LocalStore::new(dir.path().join("repo")));
        let repo = Repository::init(store, &InitOptions::encrypted(secret)).await?;
        Ok(Self { repo, dir, key })
    }

    /// Keeps the folder; where it is: `file://…/repo (key file …/KEY)`.
    #[must_use]
    pub fn keep(self) -> String {
        let path = self.dir.keep();
        format!(
            "file://{0}/repo (key file {0}/{1})",
            path.display(),
            self.key
        )
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err!(Io, "a blocking task failed: {e}"))?
}

/// Writes orders one after another until `stop`, or until the server is gone; the id
/// and acknowledgement time of each one the server acknowledged.
async fn write_orders(conn: ConnInfo, stop: Arc<AtomicBool>) -> Result<Vec<(i64, Timestamp)>> {
    let client = conn.connect().await?;
    let insert = format!("INSERT INTO orders (amount, note) VALUES (9.99, '{MARK}') RETURNING id");
    let mut acknowledged = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = tokio::time::timeout(Duration::from_secs(10), client.query_one(&insert, &[]));
        match sent.await {
            Ok(Ok(row)) => acknowledged.push((row.get::<_, i64>(0), Timestamp::now())),
            // The primary is gone: this order was never acknowledged.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    Ok(acknowledged)
}

/// Runs the drill; `note` narrates its phases, `observer` sees the run's events. The
/// throwaway clusters are removed at the end, and the repository unless kept.
#[allow(clippy::too_many_lines, clippy::similar_names)] // set up, write, lose the primary, run, measure: one story; RTO and RPO are the names
pub async fn failover_drill(
    o: &DrillOptions,
    note: &(dyn Fn(&str) + Sync),
    observer: Option<Observer>,
) -> Result<DrillReport> {
    note("start a throwaway primary and a streaming replica (pg_basebackup -R)");
    let primary = blocking(|| TempCluster::start(&ClusterOptions::default())).await?;
    let shop = ConnInfo::parse(&primary.dsn("shop"))?;
    execute_sql(
        &ConnInfo::parse(&primary.dsn("postgres"))?,
        "CREATE DATABASE shop",
    )
    .await?;
    execute_sql(
        &shop,
        &format!(
            "{SCHEMA} INSERT INTO orders (amount, placed_at) SELECT (g % 100000) / 100.0, \
             '2025-01-01'::timestamptz + g * interval '7 seconds' FROM generate_series(1, {}) g;",
            o.orders
        ),
    )
    .await?;
    let primary = Arc::new(primary);
    let replica = {
        let p = primary.clone();
        blocking(move || p.start_replica()).await?
    };
    let replica_url = replica.dsn("shop");

    let throwaway = ThrowawayRepository::create("drkit-drill-", "drill.key").await?;
    let engine = crate::engine(&throwaway.repo);
    let (book, map) = engine.load(DRILL_RUNBOOK, "examples/runbooks/drill.yaml (embedded)")?;

    note(&format!(
        "write orders to the primary for {:.1}s, then destroy it mid-write",
        o.write_for.as_secs_f64()
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_orders(shop.clone(), stop.clone()));
    tokio::time::sleep(o.write_for).await;
    let disaster_at = Timestamp::now();
    // The last handle: an immediate stop (no checkpoint, no goodbye to the replica),
    // then its folder deleted.
    let Ok(primary) = Arc::try_unwrap(primary) else {
        return Err(err!(External, "the primary is still in use"));
    };
    blocking(move || {
        drop(primary);
        Ok(())
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer
        .await
        .map_err(|e| err!(External, "the writer failed: {e}"))??;

    note("the primary is gone: run the recovery runbook");
    let options = RunOptions {
        vars: BTreeMap::from([("replica".to_owned(), serde_json::json!(replica_url))]),
        observer,
        ..RunOptions::default()
    };
    let summary = engine.run(&book, &map, &options).await?;
    let recovered_at = summary.events.iter().find_map(|e| match &e.kind {
        EventKind::StepSucceeded { step, .. } if step == "takes-writes" => Some(e.at),
        _ => None,
    });

    // What the new primary has of what the old one acknowledged.
    let present: HashSet<i64> = ConnInfo::parse(&replica_url)?
        .connect()
        .await?
        .query(&format!("SELECT id FROM orders WHERE note = '{MARK}'"), &[])
        .await
        .map_err(|e| err!(External, "reading the recovered orders: {e}"))?
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect();
    let (kept, lost): (Vec<_>, Vec<_>) = acknowledged
        .iter()
        .partition(|(id, _)| present.contains(id));
    let rpo_seconds = match (kept.last(), acknowledged.last()) {
        _ if lost.is_empty() => 0.0,
        (Some((_, newest_kept)), Some((_, newest))) => seconds_between(*newest_kept, *newest),
        (None, Some((_, newest))) => seconds_between(disaster_at, *newest).abs(),
        _ => 0.0,
    };
    let rto_seconds = recovered_at.map(|t| seconds_between(disaster_at, t));
    let objective = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    let (rto_objective_seconds, rpo_objective_seconds) = (
        objective(book.objectives.rto),
        objective(book.objectives.rpo),
    );
    let succeeded = summary.outcome == dr_core::runbook::RunOutcome::Succeeded;
    let rto_met =
        succeeded && rto_seconds.is_some_and(|r| rto_objective_seconds.is_none_or(|max| r <= max));
    let rpo_met = rpo_objective_seconds.is_none_or(|max| rpo_seconds <= max);
    let backup = summary
        .step("backup")
        .and_then(|s| s.outputs.get("snapshot"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    drop(replica);
    let repository = o.keep_repo.then(|| throwaway.keep());
    Ok(DrillReport {
        runbook: summary.runbook.clone(),
        run: summary.id.to_string(),
        outcome: summary.outcome,
        disaster_at,
        recovered_at,
        rto_seconds,
        rpo_seconds,
        rto_objective_seconds,
        rpo_objective_seconds,
        rto_met,
        rpo_met,
        orders_acknowledged: acknowledged.len() as u64,
        orders_recovered: kept.len() as u64,
        orders_lost: lost.len() as u64,
        orders_unacknowledged_kept: (present.len() - kept.len()) as u64,
        backup,
        steps: summary
            .steps
            .iter()
            .map(|s| DrillStep {
                id: s.id.to_string(),
                action: s.action.clone(),
                state: s.state,
                seconds: s.seconds,
            })
            .collect(),
        repository,
        ok: succeeded && rto_met && rpo_met,
    })
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_millisecond() - from.as_millisecond()) as f64 / 1000.0
}
