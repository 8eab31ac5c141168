//! Drills: [`run`] runs a runbook file's `drill:` (its sandbox set up, a canary
//! writing, the disaster, the recovery under test, the checks that say it is back, the
//! teardown) on an engine and reads its [`Report`] back from the journal, with the RTO
//! and RPO achieved; [`resume`] goes on with one that was stopped.
//!
//! [`failover_drill`] is the drill `drkit demo` ends with, on embedded defaults: a
//! throwaway primary taking orders and its streaming replica (`pg_basebackup -R`), and
//! the drill file `examples/runbooks/drill.yaml` (embedded) that stops the primary at
//! once, mid-write, and promotes the replica.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use dr_core::repo::{InitOptions, Repository, Secret};
use dr_core::runbook::journal::Observer;
use dr_core::runbook::report::{self, Report};
use dr_core::runbook::{Engine, Keyed, RunOptions, RunSummary, Runbook, SourceMap};
use dr_core::store::LocalStore;
use dr_core::{err, Error, Result};
use dr_pg::{ClusterOptions, ConnInfo, TempCluster};
use serde::{Deserialize, Serialize};

/// The drill `drkit demo` runs (`examples/runbooks/drill.yaml`).
pub const DRILL_RUNBOOK: &str = include_str!("../examples/runbooks/drill.yaml");

/// What `drkit drill` does besides the run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrillOptions {
    /// Keep the canary's rows (its `canary-drop` step is skipped, journaled as such).
    pub keep_canary: bool,
    /// Write the report as a self-contained HTML page here.
    pub report_html: Option<PathBuf>,
    /// Append one line of figures to this CSV file (its header once).
    pub metrics_csv: Option<PathBuf>,
}

/// A drill's run and what it achieved.
#[derive(Debug, Clone, Serialize)]
pub struct DrillOutcome {
    /// The run as its journal tells it.
    pub summary: RunSummary,
    /// The report, from the journal alone.
    pub report: Report,
    /// Where the HTML report was written.
    pub report_html: Option<PathBuf>,
}

impl DrillOutcome {
    /// The run succeeded and no objective was missed or left inconclusive.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.report.ok()
    }
}

/// Refuses a runbook that is not a drill, naming the fix.
pub fn require_drill(rb: &Runbook, origin: &str) -> Result<()> {
    if dr_core::runbook::drill::is_drill(rb) {
        return Ok(());
    }
    Err(err!(
        InvalidInput,
        "{origin}: runbook {} has no `drill:` section, so there is no disaster to measure a recovery from; add one (docs/runbooks.md, Drills) or run it with `drkit run`",
        rb.name
    ))
}

async fn finish(engine: &Engine, summary: RunSummary, o: &DrillOptions) -> Result<DrillOutcome> {
    let report = engine.report(summary.id.as_str()).await?;
    if let Some(path) = &o.report_html {
        std::fs::write(path, report::html(&report))
            .map_err(|e| Error::io(format!("writing the report to {}", path.display()), e))?;
    }
    if let Some(path) = &o.metrics_csv {
        report::append_metrics(path, &report)?;
    }
    Ok(DrillOutcome {
        summary,
        report,
        report_html: o.report_html.clone(),
    })
}

/// Runs the drill `rb` (read with `map`) on `engine`.
pub async fn run(
    engine: &Engine,
    rb: &Runbook,
    map: &SourceMap,
    options: RunOptions,
    o: &DrillOptions,
) -> Result<DrillOutcome> {
    require_drill(rb, &map.origin)?;
    let rb = canary_kept_or_not(rb, o);
    let summary = engine.run(&rb, map, &options).await?;
    finish(engine, summary, o).await
}

fn canary_kept_or_not(rb: &Runbook, o: &DrillOptions) -> Runbook {
    let mut rb = rb.clone();
    if o.keep_canary {
        // The canary's rows stay: the drill is run (and journaled) without its drop.
        rb.steps.retain(|s| s.id != "canary-drop");
        if let Some(c) = rb.drill.as_mut().and_then(|d| d.canary.as_mut()) {
            c.keep = true;
        }
    }
    rb
}

/// Runs the drill `rb` as schedule `options.key` ([`Engine::resume_or_start`]): the
/// schedule's unfinished drill is resumed, a firing that already ran is not run again.
/// The outcome is `None` when another process runs the schedule now; for a firing that
/// already ran it is that run's, and no report file or CSV line is written again.
pub async fn resume_or_start(
    engine: &Engine,
    rb: &Runbook,
    map: &SourceMap,
    options: RunOptions,
    o: &DrillOptions,
) -> Result<(Keyed, Option<DrillOutcome>)> {
    require_drill(rb, &map.origin)?;
    let rb = canary_kept_or_not(rb, o);
    let keyed = engine.resume_or_start(&rb, map, &options).await?;
    let outcome = match &keyed {
        Keyed::Started { run } | Keyed::Resumed { run } => {
            Some(finish(engine, run.clone(), o).await?)
        }
        Keyed::AlreadyRan { run } => Some(DrillOutcome {
            summary: run.clone(),
            report: engine.report(run.id.as_str()).await?,
            report_html: None,
        }),
        Keyed::Busy { .. } => None,
    };
    Ok((keyed, outcome))
}

/// Goes on with drill run `id` (its teardown runs, whatever stopped it). Whether the
/// canary is kept was decided when it started (`keep_canary` is not read).
pub async fn resume(
    engine: &Engine,
    id: &str,
    options: RunOptions,
    o: &DrillOptions,
) -> Result<DrillOutcome> {
    let summary = engine.resume(id, &options).await?;
    finish(engine, summary, o).await
}

/// How the demo's failover drill runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverDrillOptions {
    /// Orders loaded before the drill begins.
    pub orders: u64,
    /// How long the canary writes before the primary is stopped.
    #[serde(with = "dr_core::duration::human")]
    pub write_for: std::time::Duration,
    /// Keep the repository (the run's journal and the backup) instead of deleting it.
    pub keep_repo: bool,
    /// Where the HTML report is written (by default a new file in the temporary folder).
    pub report_html: Option<PathBuf>,
}

impl Default for FailoverDrillOptions {
    fn default() -> Self {
        Self {
            orders: 10_000,
            write_for: std::time::Duration::from_secs(2),
            keep_repo: false,
            report_html: None,
        }
    }
}

/// What the demo's failover drill measured.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverDrillReport {
    /// The drill's report (RTO, RPO, verdicts, canary figures, steps).
    pub report: Report,
    /// The self-contained HTML report.
    pub report_html: PathBuf,
    /// The backup of the new primary.
    pub backup: Option<String>,
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

/// Runs the demo's drill: makes its sandbox (a primary with `orders` orders and its
/// streaming replica), runs the embedded drill file on it, and removes the sandbox; the
/// repository too unless kept. `note` narrates, `observer` sees the run's events.
pub async fn failover_drill(
    o: &FailoverDrillOptions,
    note: &(dyn Fn(&str) + Sync),
    observer: Option<Observer>,
) -> Result<FailoverDrillReport> {
    note("start the sandbox: a throwaway primary and its streaming replica (pg_basebackup -R)");
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
    let throwaway = ThrowawayRepository::create("drkit-drill-", "drill.key").await?;
    let engine = crate::engine(&throwaway.repo);
    let (book, map) = engine.load(DRILL_RUNBOOK, "examples/runbooks/drill.yaml (embedded)")?;
    note(&format!(
        "drill: a canary writes to the primary for {}, the primary is stopped at once and its folder deleted, the recovery promotes the replica",
        dr_core::duration::format(o.write_for)
    ));
    let html = match &o.report_html {
        Some(p) => p.clone(),
        None => tempfile::Builder::new()
            .prefix("drkit-drill-report-")
            .suffix(".html")
            .tempfile()
            .map_err(|e| Error::io("creating the report file", e))?
            .into_temp_path()
            .keep()
            .map_err(|e| Error::io("keeping the report file", e.error))?,
    };
    let options = RunOptions {
        vars: BTreeMap::from([
            ("primary".to_owned(), serde_json::json!(primary.dsn("shop"))),
            ("replica".to_owned(), serde_json::json!(replica.dsn("shop"))),
            (
                "write_for".to_owned(),
                serde_json::json!(dr_core::duration::format(o.write_for)),
            ),
        ]),
        observer,
        ..RunOptions::default()
    };
    let drill = DrillOptions {
        report_html: Some(html.clone()),
        ..DrillOptions::default()
    };
    let outcome = run(&engine, &book, &map, options, &drill).await;
    // The sandbox goes whatever happened (the primary's folder may be gone already).
    blocking(move || {
        drop(replica);
        drop(primary);
        Ok(())
    })
    .await?;
    let outcome = outcome?;
    let backup = outcome
        .summary
        .step("backup")
        .and_then(|s| s.outputs.get("snapshot"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let repository = o.keep_repo.then(|| throwaway.keep());
    Ok(FailoverDrillReport {
        ok: outcome.ok(),
        report: outcome.report,
        report_html: html,
        backup,
        repository,
    })
}
