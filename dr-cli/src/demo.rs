//! `drkit demo`: the whole job on embedded defaults, on a throwaway Postgres, with timings.

use std::sync::Arc;
use std::time::Instant;

use dr_core::progress::NoProgress;
use dr_core::repo::{InitOptions, Repository, Secret};
use dr_core::store::LocalStore;
use dr_core::{err, Result};
use dr_pg::{BackupOptions, ClusterOptions, ConnInfo, RestoreMode, RestoreOptions, TempCluster, VerifyOptions};
use serde::Serialize;

use crate::args::DemoArgs;
use crate::output::{bytes, secs, Output};

#[derive(Debug, Serialize)]
struct Step {
    step: String,
    seconds: f64,
    detail: String,
}

#[derive(Debug, Serialize)]
struct DemoReport {
    ok: bool,
    database_bytes: i64,
    rows: u64,
    first_snapshot: String,
    raw_bytes: u64,
    stored_bytes: u64,
    incremental_snapshot: String,
    incremental_new_bytes: u64,
    restored_matches_original: bool,
    repository: Option<String>,
    steps: Vec<Step>,
}

struct Timer {
    steps: Vec<Step>,
    out: Output,
}

impl Timer {
    async fn run<T, F: std::future::Future<Output = Result<T>>>(&mut self, step: &str, f: F, detail: impl FnOnce(&T) -> String) -> Result<T> {
        self.out.note(&format!("… {step}"));
        let start = Instant::now();
        let value = f.await.map_err(|e| e.context(format!("demo step {step:?}")))?;
        let seconds = secs(start.elapsed());
        let detail = detail(&value);
        self.out.note(&format!("  done in {seconds:.2}s: {detail}"));
        self.steps.push(Step { step: step.to_owned(), seconds, detail });
        Ok(value)
    }
}

const SAMPLE: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, email text UNIQUE NOT NULL, name text NOT NULL, profile jsonb NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id), amount numeric(12,2) NOT NULL, status text NOT NULL, placed_at timestamptz NOT NULL, note text);
CREATE INDEX orders_customer ON orders (customer_id, placed_at);
";

/// Runs the demo; the throwaway cluster and (unless kept) the repository are removed at the end.
pub async fn run(a: &DemoArgs, out: Output) -> Result<u8> {
    let mut t = Timer { steps: Vec::new(), out };
    let cluster = t
        .run("start a throwaway PostgreSQL", async { tokio::task::spawn_blocking(|| TempCluster::start(&ClusterOptions::default())).await.map_err(|e| err!(Io, "{e}"))? }, |c| {
            format!("initdb + pg_ctl on 127.0.0.1:{} from {}", c.port(), c.bindir().display())
        })
        .await?;
    let admin = ConnInfo::parse(&cluster.dsn("postgres"))?;
    let shop = ConnInfo::parse(&cluster.dsn("shop"))?;
    let customers = (a.rows / 10).max(1);
    let rows = a.rows;
    let size = t
        .run(
            "load sample data",
            async {
                admin.connect().await?.batch_execute("CREATE DATABASE shop").await.map_err(|e| err!(External, "{e}"))?;
                let c = shop.connect().await?;
                let load = format!(
                    "{SAMPLE}
                     INSERT INTO customers SELECT g, 'user' || g || '@example.com', 'Customer ' || md5(g::text),
                       jsonb_build_object('tier', g % 4, 'city', (ARRAY['Lisbon','Osaka','Lagos','Lima'])[1 + g % 4], 'score', g % 997),
                       '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, {customers}) g;
                     INSERT INTO orders (customer_id, amount, status, placed_at, note)
                       SELECT 1 + g % {customers}, (g % 100000) / 100.0, (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
                       '2025-01-01'::timestamptz + g * interval '7 seconds', CASE WHEN g % 5 = 0 THEN 'gift wrap ' || md5(g::text) END
                       FROM generate_series(1, {rows}) g;
                     ANALYZE;"
                );
                c.batch_execute(&load).await.map_err(|e| err!(External, "loading sample data: {e}"))?;
                let r = c.query_one("SELECT pg_database_size('shop')", &[]).await.map_err(|e| err!(External, "{e}"))?;
                Ok(r.get::<_, i64>(0))
            },
            |s| format!("{customers} customers, {rows} orders, database is {}", bytes(*s as u64)),
        )
        .await?;

    let repo_dir = tempfile::Builder::new().prefix("drkit-demo-repo-").tempdir().map_err(|e| dr_core::Error::io("creating the demo repository folder", e))?;
    let key_file = repo_dir.path().join("demo.key");
    let repo = Repository::init(
        Arc::new(LocalStore::new(repo_dir.path().join("repo"))),
        &InitOptions::encrypted(Secret::generate_key_file(&key_file)?),
    )
    .await?;

    let backup_options = BackupOptions::default();
    let first = t
        .run("backup (pg_dump → chunks → zstd → XChaCha20-Poly1305)", dr_pg::backup(&repo, &shop, &backup_options, Arc::new(NoProgress)), |s| {
            format!("snapshot {}: {} read, {} stored", s.id, bytes(s.stats.raw_bytes), bytes(s.stats.stored_bytes))
        })
        .await?;
    let new_orders = (rows / 100).max(1);
    shop.connect()
        .await?
        .batch_execute(&format!(
            "INSERT INTO orders (customer_id, amount, status, placed_at) SELECT 1 + g % {customers}, 9.99, 'new', now() FROM generate_series(1, {new_orders}) g"
        ))
        .await
        .map_err(|e| err!(External, "{e}"))?;
    let second = t
        .run("incremental backup after 1 % new orders", dr_pg::backup(&repo, &shop, &backup_options, Arc::new(NoProgress)), |s| {
            format!("snapshot {}: {} new of {} ({:.2} %)", s.id, bytes(s.stats.new_bytes), bytes(s.stats.stored_bytes), pct(s.stats.new_bytes, first.stats.stored_bytes))
        })
        .await?;

    let before = checksums(&shop).await?;
    t.run(
        "disaster: DROP DATABASE shop",
        async { admin.connect().await?.batch_execute("DROP DATABASE shop").await.map_err(|e| err!(External, "{e}")) },
        |()| "gone".to_owned(),
    )
    .await?;
    let latest = repo.find_snapshot("latest").await?;
    let restore_options = RestoreOptions { mode: RestoreMode::Create, ..RestoreOptions::default() };
    t.run("restore latest into a new shop database", dr_pg::restore(&repo, &latest, &shop, &restore_options, Arc::new(NoProgress)), |r| {
        format!("{} through pg_restore -j{}", bytes(r.bytes), r.jobs)
    })
    .await?;
    let after = checksums(&shop).await?;
    let matches = before == after;
    t.run("compare restored rows with the original", async { Ok(()) }, |()| {
        if matches { format!("{} tables identical (row count + md5 of every row)", before.len()) } else { "MISMATCH".to_owned() }
    })
    .await?;
    t.run("verify: re-read and authenticate every chunk", repo.verify_snapshot(&latest, &NoProgress), |r| {
        format!("{} chunks, {} problems", r.chunks_checked, r.problems.len())
    })
    .await?;
    let verify_options = VerifyOptions { checks: vec!["SELECT count(*) FROM orders WHERE amount >= 0".into()], ..VerifyOptions::default() };
    let verified = t
        .run("verify: restore into a scratch database and check it", dr_pg::verify_by_restore(&repo, &latest, &admin, &verify_options, Arc::new(NoProgress)), |r| {
            format!("{} tables' row counts match: {}, amcheck {} indexes: {}", r.tables.len(), r.tables.iter().all(|t| t.ok), r.amcheck.indexes_checked, r.amcheck.status)
        })
        .await?;

    let kept = a.keep_repo.then(|| {
        let path = repo_dir.keep();
        format!("file://{}/repo (key file {}/demo.key)", path.display(), path.display())
    });
    drop(cluster);
    let ok = matches && verified.ok;
    let report = DemoReport {
        ok,
        database_bytes: size,
        rows,
        first_snapshot: first.id.to_string(),
        raw_bytes: first.stats.raw_bytes,
        stored_bytes: first.stats.stored_bytes,
        incremental_snapshot: second.id.to_string(),
        incremental_new_bytes: second.stats.new_bytes,
        restored_matches_original: matches,
        repository: kept,
        steps: t.steps,
    };
    out.emit(&report, || {
        let mut lines = vec![String::new(), "drkit demo report".to_owned()];
        for s in &report.steps {
            lines.push(format!("  {:>7.2}s  {}", s.seconds, s.step));
        }
        lines.push(format!(
            "  database {}; dump {} stored as {} ({:.1} %); 1 % change stored {} more",
            bytes(report.database_bytes as u64),
            bytes(report.raw_bytes),
            bytes(report.stored_bytes),
            pct(report.stored_bytes, report.raw_bytes),
            bytes(report.incremental_new_bytes)
        ));
        if let Some(r) = &report.repository {
            lines.push(format!("  repository kept at {r}"));
        }
        lines.push(if ok { "  result: OK — the restored database equals the original".into() } else { "  result: FAILED".into() });
        lines.join("\n")
    });
    Ok(if ok { 0 } else { crate::EXIT_CHECK_FAILED })
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

async fn checksums(conn: &ConnInfo) -> Result<Vec<(String, String)>> {
    let c = conn.connect().await?;
    let mut out = Vec::new();
    for table in ["customers", "orders"] {
        let row = c
            .query_one(&format!("SELECT count(*)::text || ':' || md5(string_agg(t::text, '' ORDER BY t::text)) FROM {table} t"), &[])
            .await
            .map_err(|e| err!(External, "checksumming {table}: {e}"))?;
        out.push((table.to_owned(), row.get(0)));
    }
    Ok(out)
}
