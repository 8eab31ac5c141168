//! `drkit demo`: the whole job on embedded defaults, on a throwaway Postgres, with
//! timings: back up (twice, to show deduplication), drop, restore, compare every row,
//! verify both ways — then the failover drill ([`crate::drill`]) with its measured RTO
//! and RPO.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use dr_core::progress::NoProgress;
use dr_core::repo::{Repository, Snapshot};
use dr_core::{err, Result};
use dr_pg::{
    BackupOptions, ClusterOptions, ConnInfo, RestoreMode, RestoreOptions, TempCluster,
    VerifyOptions,
};
use serde::{Deserialize, Serialize};

use crate::drill::{
    execute_sql as sql, FailoverDrillOptions, FailoverDrillReport, ThrowawayRepository,
};

/// What `drkit demo` takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoOptions {
    /// Orders in the sample database (customers are a tenth of that).
    pub rows: u64,
    /// Keep the repositories (the tour's and the drill's) instead of deleting them.
    pub keep_repo: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            rows: 500_000,
            keep_repo: false,
        }
    }
}

/// Narrates the demo's steps (a terminal's notes).
pub type Note<'a> = &'a (dyn Fn(&str) + Sync);

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `1.2 GiB`-style sizes.
#[must_use]
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

/// One timed step of the tour.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What it did.
    pub name: String,
    /// How long it took.
    pub seconds: f64,
    /// What came of it.
    pub detail: String,
}

/// What the demo did and found.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// The restore matched, both verifications passed, and the drill met its objectives.
    pub ok: bool,
    /// The sample database's size.
    pub database_bytes: u64,
    /// Its orders.
    pub orders: u64,
    /// The first backup.
    pub first_snapshot: String,
    /// What the first backup read.
    pub raw_bytes: u64,
    /// What it stored (deduplicated, compressed, encrypted).
    pub stored_bytes: u64,
    /// The backup after a 1 % change.
    pub incremental_snapshot: String,
    /// What that one stored anew.
    pub incremental_new_bytes: u64,
    /// Every row of the restored database equals the original's.
    pub restored_matches_original: bool,
    /// The tour's repository, when kept.
    pub repository: Option<String>,
    /// The tour's steps, timed.
    pub steps: Vec<Step>,
    /// The failover drill that ends the demo, with its measured RTO and RPO.
    pub drill: FailoverDrillReport,
}

const SCHEMA: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, email text UNIQUE NOT NULL, name text NOT NULL,
  profile jsonb NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
  amount numeric(12,2) NOT NULL, status text NOT NULL, placed_at timestamptz NOT NULL, note text);
CREATE INDEX orders_customer ON orders (customer_id, placed_at);
";

fn sample_rows(customers: u64, orders: u64) -> String {
    format!(
        "INSERT INTO customers SELECT g, 'user' || g || '@example.com', 'Customer ' || md5(g::text),
           jsonb_build_object('tier', g % 4, 'city', (ARRAY['Lisbon','Osaka','Lagos','Lima'])[1 + g % 4], 'score', g % 997),
           '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, {customers}) g;
         INSERT INTO orders (customer_id, amount, status, placed_at, note)
           SELECT 1 + g % {customers}, (g % 100000) / 100.0, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
           '2025-01-01'::timestamptz + g * interval '7 seconds', CASE WHEN g % 5 = 0 THEN 'gift wrap ' || md5(g::text) END
           FROM generate_series(1, {orders}) g;
         ANALYZE;"
    )
}

/// The demo's state: a cluster, a repository, and the timed steps so far.
struct Demo<'a> {
    note: Note<'a>,
    steps: Vec<Step>,
    admin: ConnInfo,
    shop: ConnInfo,
    repo: Repository,
    throwaway: ThrowawayRepository,
    // Stops the throwaway server when dropped.
    cluster: TempCluster,
}

/// Times `f` as a named step and narrates it on a terminal.
async fn step<T>(
    note: Note<'_>,
    steps: &mut Vec<Step>,
    name: &str,
    f: impl Future<Output = Result<T>>,
    detail: impl FnOnce(&T) -> String,
) -> Result<T> {
    note(&format!("… {name}"));
    let start = Instant::now();
    let value = f
        .await
        .map_err(|e| e.context(format!("demo step {name:?}")))?;
    let seconds = secs(start.elapsed());
    let detail = detail(&value);
    note(&format!("  done in {seconds:.2}s: {detail}"));
    steps.push(Step {
        name: name.to_owned(),
        seconds,
        detail,
    });
    Ok(value)
}

impl<'a> Demo<'a> {
    async fn setup(note: Note<'a>, orders: u64) -> Result<(Self, u64)> {
        let mut steps = Vec::new();
        let cluster = step(
            note,
            &mut steps,
            "start a throwaway PostgreSQL",
            async {
                tokio::task::spawn_blocking(|| TempCluster::start(&ClusterOptions::default()))
                    .await
                    .map_err(|e| err!(Io, "{e}"))?
            },
            |c| {
                format!(
                    "initdb + pg_ctl on 127.0.0.1:{} from {}",
                    c.port(),
                    c.bindir().display()
                )
            },
        )
        .await?;
        let admin = ConnInfo::parse(&cluster.dsn("postgres"))?;
        let shop = ConnInfo::parse(&cluster.dsn("shop"))?;
        let customers = (orders / 10).max(1);
        let size = step(
            note,
            &mut steps,
            "load sample data",
            async {
                sql(&admin, "CREATE DATABASE shop").await?;
                sql(
                    &shop,
                    &format!("{SCHEMA}{}", sample_rows(customers, orders)),
                )
                .await?;
                let row = shop
                    .connect()
                    .await?
                    .query_one("SELECT pg_database_size('shop')", &[])
                    .await
                    .map_err(|e| err!(External, "{e}"))?;
                Ok(row.get::<_, i64>(0) as u64)
            },
            |s| {
                format!(
                    "{customers} customers, {orders} orders, database is {}",
                    bytes(*s)
                )
            },
        )
        .await?;
        let throwaway = ThrowawayRepository::create("drkit-demo-", "demo.key").await?;
        let repo = throwaway.repo.clone();
        Ok((
            Self {
                note,
                steps,
                admin,
                shop,
                repo,
                throwaway,
                cluster,
            },
            size,
        ))
    }

    async fn timed<T>(
        &mut self,
        name: &str,
        f: impl Future<Output = Result<T>>,
        detail: impl FnOnce(&T) -> String,
    ) -> Result<T> {
        step(self.note, &mut self.steps, name, f, detail).await
    }

    async fn backup(&mut self, name: &str, baseline: Option<u64>) -> Result<Snapshot> {
        let (repo, shop, options) = (
            self.repo.clone(),
            self.shop.clone(),
            BackupOptions::default(),
        );
        let run = dr_pg::backup(&repo, &shop, &options, Arc::new(NoProgress));
        self.timed(name, run, |s| match baseline {
            None => format!(
                "snapshot {}: {} read, {} stored",
                s.id,
                bytes(s.stats.raw_bytes),
                bytes(s.stats.stored_bytes)
            ),
            Some(first) => format!(
                "snapshot {}: {} new ({:.2} % of the first)",
                s.id,
                bytes(s.stats.new_bytes),
                pct(s.stats.new_bytes, first)
            ),
        })
        .await
    }

    async fn disaster_and_restore(&mut self) -> Result<(Snapshot, bool)> {
        let before = checksums(&self.shop).await?;
        let admin = self.admin.clone();
        self.timed(
            "disaster: DROP DATABASE shop",
            sql(&admin, "DROP DATABASE shop"),
            |()| "gone".to_owned(),
        )
        .await?;
        let latest = self.repo.find_snapshot("latest").await?;
        let options = RestoreOptions {
            mode: RestoreMode::Create,
            ..RestoreOptions::default()
        };
        let (repo, shop) = (self.repo.clone(), self.shop.clone());
        let run = dr_pg::restore(&repo, &latest, &shop, &options, Arc::new(NoProgress));
        self.timed("restore latest into a new shop database", run, |r| {
            format!("{} through pg_restore -j{}", bytes(r.bytes), r.jobs)
        })
        .await?;
        let after = checksums(&self.shop).await?;
        let same = before == after;
        self.timed(
            "compare restored rows with the original",
            async { Ok(()) },
            |()| {
                if same {
                    format!(
                        "{} tables identical (row count + md5 of every row)",
                        before.len()
                    )
                } else {
                    "MISMATCH".to_owned()
                }
            },
        )
        .await?;
        Ok((latest, same))
    }

    async fn verify(&mut self, snap: &Snapshot) -> Result<bool> {
        let repo = self.repo.clone();
        let read = self
            .timed(
                "verify: re-read and authenticate every chunk",
                repo.verify_snapshot(snap, &NoProgress),
                |r| format!("{} chunks, {} problems", r.chunks_checked, r.problems.len()),
            )
            .await?;
        let options = VerifyOptions {
            checks: vec!["SELECT count(*) FROM orders WHERE amount >= 0".into()],
            ..VerifyOptions::default()
        };
        let admin = self.admin.clone();
        let run = dr_pg::verify_by_restore(&repo, snap, &admin, &options, Arc::new(NoProgress));
        let restored = self
            .timed(
                "verify: restore into a scratch database and check it",
                run,
                |r| {
                    format!(
                        "row counts of {} tables match: {}; amcheck on {} indexes: {}",
                        r.tables.len(),
                        r.tables.iter().all(|t| t.ok),
                        r.amcheck.indexes_checked,
                        r.amcheck.status
                    )
                },
            )
            .await?;
        Ok(read.is_ok() && restored.ok)
    }
}

/// Runs the demo; `note` narrates it, `observer` sees the drill's run. The throwaway
/// clusters and (unless kept) the repositories are removed at the end.
pub async fn run(
    a: &DemoOptions,
    note: Note<'_>,
    observer: Option<dr_core::runbook::journal::Observer>,
) -> Result<DemoReport> {
    let (mut demo, size) = Demo::setup(note, a.rows).await?;
    let first = demo
        .backup(
            "backup (parallel COPY streams → chunks → zstd → XChaCha20-Poly1305)",
            None,
        )
        .await?;
    let new_orders = (a.rows / 100).max(1);
    sql(
        &demo.shop,
        &format!("INSERT INTO orders (customer_id, amount, status, placed_at) SELECT 1 + g % {}, 9.99, 'new', now() FROM generate_series(1, {new_orders}) g", (a.rows / 10).max(1)),
    )
    .await?;
    let second = demo
        .backup(
            "incremental backup after 1 % new orders",
            Some(first.stats.stored_bytes),
        )
        .await?;
    let (latest, same) = demo.disaster_and_restore().await?;
    let verified = demo.verify(&latest).await?;
    note("… failover drill: the drill file examples/runbooks/drill.yaml, embedded");
    let drill = crate::drill::failover_drill(
        &FailoverDrillOptions {
            keep_repo: a.keep_repo,
            ..FailoverDrillOptions::default()
        },
        &|t| note(&format!("  {t}")),
        observer,
    )
    .await?;

    let Demo {
        steps,
        throwaway,
        cluster,
        ..
    } = demo;
    drop(cluster);
    let repository = a.keep_repo.then(|| throwaway.keep());
    let ok = same && verified && drill.ok;
    let report = DemoReport {
        ok,
        database_bytes: size,
        orders: a.rows,
        first_snapshot: first.id.to_string(),
        raw_bytes: first.stats.raw_bytes,
        stored_bytes: first.stats.stored_bytes,
        incremental_snapshot: second.id.to_string(),
        incremental_new_bytes: second.stats.new_bytes,
        restored_matches_original: same,
        repository,
        steps,
        drill,
    };
    Ok(report)
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

async fn checksums(conn: &ConnInfo) -> Result<Vec<(String, String)>> {
    let c = conn.connect().await?;
    let mut out = Vec::new();
    for table in ["customers", "orders"] {
        let sql = format!(
            "SELECT count(*)::text || ':' || md5(string_agg(t::text, '' ORDER BY t::text)) FROM {table} t"
        );
        let row = c
            .query_one(&sql, &[])
            .await
            .map_err(|e| err!(External, "checksumming {table}: {e}"))?;
        out.push((table.to_owned(), row.get(0)));
    }
    Ok(out)
}
