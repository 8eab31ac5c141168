//! Parallel COPY streams (the default logical format) and the single `pg_dump` stream
//! before them, against real PostgreSQL clusters: what is restored equals what was read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dr_core::progress::{NoProgress, Progress};
use dr_core::repo::{InitOptions, Repository, Secret, Snapshot};
use dr_core::store::{DynStore, LocalStore};
use dr_pg::{
    BackupOptions, ConnInfo, LogicalFormat, LogicalMetadata, RestoreMode, RestoreOptions,
    VerifyOptions,
};
use dr_testkit::PgCluster;

async fn repo(dir: &std::path::Path) -> Repository {
    let store: DynStore = Arc::new(LocalStore::new(dir.join("repo")));
    Repository::init(
        store,
        &InitOptions::encrypted(Secret::Passphrase("streams test".to_owned().into())),
    )
    .await
    .unwrap()
}

/// A repository in a temporary folder holding one backup of `db`.
async fn backed_up(
    pg: &PgCluster,
    db: &str,
    options: &BackupOptions,
) -> (tempfile::TempDir, Repository, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path()).await;
    let conn = ConnInfo::parse(&pg.dsn(db)).unwrap();
    let snap = dr_pg::backup(&repo, &conn, options, Arc::new(NoProgress))
        .await
        .unwrap();
    (dir, repo, snap)
}

fn load_fixture(pg: &PgCluster, db: &str, name: &str) {
    pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    let file = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let out = pg.tool(
        "psql",
        db,
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", &file],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn meta(snap: &Snapshot) -> LogicalMetadata {
    serde_json::from_value(snap.metadata.clone()).unwrap()
}

async fn restore(
    repo: &Repository,
    snap: &Snapshot,
    pg: &PgCluster,
    db: &str,
    options: RestoreOptions,
) -> dr_core::Result<dr_pg::RestoreReport> {
    let target = ConnInfo::parse(&pg.dsn(db)).unwrap();
    dr_pg::restore(repo, snap, &target, &options, Arc::new(NoProgress)).await
}

fn databases(pg: &PgCluster) -> Vec<String> {
    pg.psql("postgres", "SELECT datname FROM pg_database ORDER BY 1")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_table_round_trips_through_parallel_streams() {
    let Some(pg) = PgCluster::start() else { return };
    load_fixture(&pg, "edge", "edge.sql");
    let options = BackupOptions {
        jobs: Some(3),
        split_bytes: 256 << 10,
        ..BackupOptions::default()
    };
    let (_dir, repo, snap) = backed_up(&pg, "edge", &options).await;
    let m = meta(&snap);
    assert_eq!(m.format, LogicalFormat::Streams);
    assert!(snap.file(dr_pg::SCHEMA_FILE).is_ok());
    assert!(
        snap.file(dr_pg::DUMP_FILE).is_err(),
        "no whole-database dump"
    );
    let index = |name: &str| m.tables.iter().position(|t| t.table == name).unwrap();
    let big = index("big");
    let ranges = m
        .data
        .iter()
        .flat_map(|f| &f.parts)
        .filter(|p| p.table == big)
        .count();
    assert!(ranges > 2, "the large table is read as {ranges} ranges");
    assert_eq!(m.tables[big].rows, Some(30_000 - 2_727));
    assert!(m.tables[big].binary, "built-in types travel in binary");
    assert!(
        !m.tables[index("places")].binary,
        "enums, domains, PostGIS travel as text"
    );
    assert!(
        !m.tables[index("places")]
            .columns
            .contains(&"name_upper".to_owned()),
        "generated columns are computed again, not copied"
    );
    assert!(
        m.tables.iter().all(|t| t.table != "measurements"),
        "a partitioned parent holds no rows"
    );
    assert_eq!(m.tables[index("measurements_2024")].rows, Some(1_830));

    // Into a new database with several sessions, and again with one.
    let before = pg.content_sums("edge");
    for (db, jobs) in [("edge_parallel", 3), ("edge_single", 1)] {
        let report = restore(
            &repo,
            &snap,
            &pg,
            db,
            RestoreOptions {
                mode: RestoreMode::Create,
                jobs,
                ..RestoreOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(report.format, LogicalFormat::Streams);
        let loaded = report
            .tables
            .iter()
            .find(|t| t.table == "public.big")
            .unwrap();
        assert_eq!(loaded.rows, 30_000 - 2_727);
        assert_eq!(pg.content_sums(db), before, "{db}: contents differ");
        assert_eq!(pg.schema(db), pg.schema("edge"), "{db}: schemas differ");
        assert_eq!(
            pg.psql(db, "SELECT coalesce(shobj_description(oid, 'pg_database'), 'none') FROM pg_database WHERE datname = current_database()"),
            "none",
            "a finished restore leaves no incomplete-restore comment"
        );
    }
    assert!(!databases(&pg).iter().any(|d| d.ends_with("_restoring")));

    // In place with --clean: foreign keys in a cycle and all, over the marker an
    // interrupted restore left (which a complete one must not put back).
    pg.psql("edge", "DELETE FROM public.people WHERE id > 250; UPDATE geo.places SET name = 'changed'; SELECT setval('public.ticket', 5)");
    pg.psql("postgres", "COMMENT ON DATABASE edge IS 'drkit: incomplete restore of snapshot x started 2026-01-01T00:00:00Z; not usable until drkit finishes it'");
    assert_ne!(pg.content_sums("edge"), before);
    restore(
        &repo,
        &snap,
        &pg,
        "edge",
        RestoreOptions {
            mode: RestoreMode::Clean,
            ..RestoreOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        pg.content_sums("edge"),
        before,
        "--clean restored the snapshot's data"
    );
    assert_eq!(pg.schema("edge"), pg.schema("edge_parallel"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_small_tables_round_trip() {
    let Some(pg) = PgCluster::start() else { return };
    pg.psql("postgres", "CREATE DATABASE many");
    // In transactions of 200 tables: one of 2,000 needs more locks than a default server has.
    for first in (1..=2000).step_by(200) {
        pg.psql(
            "many",
            &format!(
                "DO $$ BEGIN FOR i IN {first}..{} LOOP \
                   EXECUTE format('CREATE TABLE public.t%s (id int PRIMARY KEY, label text, at date)', i); \
                   EXECUTE format('INSERT INTO public.t%s SELECT g, ''row '' || g || '' of %s'', date ''2024-01-01'' + g FROM generate_series(1, %s) g', i, i, i % 23); \
                 END LOOP; END $$",
                first + 199
            ),
        );
    }
    let (_dir, repo, snap) = backed_up(&pg, "many", &BackupOptions::default()).await;
    let m = meta(&snap);
    assert_eq!(m.tables.len(), 2000);
    assert!(
        m.data.len() < 50,
        "small tables share streams: {} files",
        m.data.len()
    );
    restore(&repo, &snap, &pg, "many_copy", RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(pg.content_sums("many_copy"), pg.content_sums("many"));
    assert_eq!(
        pg.psql(
            "many_copy",
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"
        ),
        "2000",
        "every primary key is back"
    );
}

/// A large table whose rows compress smaller spelled out as text is read as text; one
/// whose binary form compresses smaller stays binary; both restore exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_tables_are_read_in_the_copy_format_that_compresses_smaller() {
    let Some(pg) = PgCluster::start() else { return };
    pg.psql("postgres", "CREATE DATABASE formats");
    // `notes` repeats each body's hex digest in its bytea: text writes both as hex, which
    // the compressor matches; binary writes the bytea raw. `readings` is random
    // timestamps, uuids and floats, longer and no more compressible as text.
    pg.psql(
        "formats",
        "CREATE TABLE notes (id bigint PRIMARY KEY, title text, body text, blob bytea); \
         INSERT INTO notes SELECT g, 'Note ' || g, repeat('lorem ipsum dolor sit amet ', 5 + g % 20) \
             || md5(g::text), decode(md5(g::text) || md5((g + 1)::text), 'hex') \
           FROM generate_series(1, 80000) g; \
         CREATE TABLE readings (id bigint, at timestamptz, ref uuid, x float8); \
         INSERT INTO readings SELECT g, now() - random() * interval '1 year', gen_random_uuid(), random() \
           FROM generate_series(1, 560000) g",
    );
    let sizes = pg.psql(
        "formats",
        "SELECT pg_relation_size('notes') >= 32 << 20 AND pg_relation_size('readings') >= 32 << 20",
    );
    assert_eq!(sizes, "t", "both tables are large enough to be sampled");
    let (_dir, repo, snap) = backed_up(&pg, "formats", &BackupOptions::default()).await;
    let m = meta(&snap);
    let format = |name: &str| m.tables.iter().find(|t| t.table == name).unwrap().binary;
    assert!(!format("notes"), "notes compresses smaller as text");
    assert!(format("readings"), "readings compresses smaller in binary");
    restore(&repo, &snap, &pg, "formats_copy", RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(pg.content_sums("formats_copy"), pg.content_sums("formats"));
}

/// Updates every row of `counter` (moving each to a new page) the first time a session
/// starts reading it: a backup that did not read one snapshot would see some rows twice,
/// some never, or a mix of values.
struct UpdateWhenRead {
    dsn: String,
    done: AtomicBool,
}

impl Progress for UpdateWhenRead {
    fn item_started(&self, name: &str) {
        if name.starts_with("public.counter") && !self.done.swap(true, Ordering::SeqCst) {
            let dsn = self.dsn.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let (client, conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
                        .await
                        .unwrap();
                    tokio::spawn(conn);
                    client
                        .batch_execute("UPDATE counter SET v = v + 1; INSERT INTO counter SELECT g, 99 FROM generate_series(50001, 51000) g")
                        .await
                        .unwrap();
                });
            })
            .join()
            .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_changing_during_the_backup_restores_as_of_its_snapshot() {
    let Some(pg) = PgCluster::start() else { return };
    pg.psql("postgres", "CREATE DATABASE busy");
    pg.psql(
        "busy",
        "CREATE TABLE counter (id int, v int); INSERT INTO counter SELECT g, 0 FROM generate_series(1, 50000) g",
    );
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path()).await;
    let conn = ConnInfo::parse(&pg.dsn("busy")).unwrap();
    let progress = Arc::new(UpdateWhenRead {
        dsn: pg.dsn("busy"),
        done: AtomicBool::new(false),
    });
    let options = BackupOptions {
        jobs: Some(2),
        split_bytes: 128 << 10,
        ..BackupOptions::default()
    };
    let snap = dr_pg::backup(&repo, &conn, &options, progress.clone())
        .await
        .unwrap();
    assert!(
        progress.done.load(Ordering::SeqCst),
        "the table changed while it was read"
    );
    assert_eq!(
        pg.psql("busy", "SELECT count(*), min(v) FROM counter"),
        "51000|1"
    );
    assert!(meta(&snap).data.len() > 2, "the table was read in ranges");

    restore(&repo, &snap, &pg, "busy_copy", RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        pg.psql(
            "busy_copy",
            "SELECT count(*), count(DISTINCT id), min(v), max(v) FROM counter"
        ),
        "50000|50000|0|0",
        "the restore holds the table as it was when the backup began"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_dump_snapshots_still_restore_and_verify() {
    let Some(pg) = PgCluster::start() else { return };
    load_fixture(&pg, "edge", "edge.sql");
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path()).await;
    let conn = ConnInfo::parse(&pg.dsn("edge")).unwrap();
    let old = dr_pg::backup(
        &repo,
        &conn,
        &BackupOptions {
            format: LogicalFormat::PgDump,
            ..BackupOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert!(old.file(dr_pg::DUMP_FILE).is_ok());
    // Snapshots taken before streams existed record no format: they are pg-dump ones.
    let mut recorded = old.metadata.clone();
    for key in ["format", "data", "jobs"] {
        recorded.as_object_mut().unwrap().remove(key);
    }
    let m: LogicalMetadata = serde_json::from_value(recorded).unwrap();
    assert_eq!(m.format, LogicalFormat::PgDump);

    let before = pg.content_sums("edge");
    for jobs in [1, 2] {
        let db = format!("edge_old_{jobs}");
        let report = restore(
            &repo,
            &old,
            &pg,
            &db,
            RestoreOptions {
                jobs,
                ..RestoreOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(report.format, LogicalFormat::PgDump);
        assert_eq!(pg.content_sums(&db), before);
    }

    // verify restores either format and compares the recorded counts.
    let new = dr_pg::backup(
        &repo,
        &conn,
        &BackupOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    for snap in [&old, &new] {
        let outcome = dr_pg::verify(
            &repo,
            &VerifyOptions {
                snapshot: Some(snap.id.as_str().into()),
                restore_into: Some(ConnInfo::parse(&pg.dsn("postgres")).unwrap()),
                checks: vec!["SELECT count(*) = 27273 FROM public.big".into()],
                ..VerifyOptions::default()
            },
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
        assert!(outcome.ok, "{snap:?}: {outcome:?}", snap = snap.id);
        let restore = outcome.restore.unwrap();
        assert!(restore.tables.iter().all(|t| t.ok), "{:?}", restore.tables);
        assert_eq!(restore.tables.len(), 10, "every user table counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_that_fails_to_load_is_named_and_the_database_marked_incomplete() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("shop", 20_000);
    let (_dir, repo, snap) = backed_up(&pg, "shop", &BackupOptions::default()).await;

    // The target refuses some of the rows: every new table gets a CHECK they break.
    pg.psql(
        "shop",
        "CREATE FUNCTION public.strict_items() RETURNS event_trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'public.items' AND command_tag = 'CREATE TABLE') THEN \
           ALTER TABLE public.items ADD CHECK (qty < 40); END IF; END $$; \
         CREATE EVENT TRIGGER strict ON ddl_command_end EXECUTE FUNCTION public.strict_items()",
    );
    let e = restore(
        &repo,
        &snap,
        &pg,
        "shop",
        RestoreOptions {
            mode: RestoreMode::Clean,
            ..RestoreOptions::default()
        },
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("public.items"), "names the table: {text}");
    assert!(
        text.contains("partly restored"),
        "says what is left: {text}"
    );
    assert!(
        pg.psql(
            "shop",
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'shop'"
        )
        .starts_with("drkit: incomplete restore"),
        "the database says it is incomplete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swap_that_could_not_switch_is_finished_by_the_same_restore_run_again() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("shop", 20_000);
    let (_dir, repo, snap) = backed_up(&pg, "shop", &BackupOptions::default()).await;
    let before = pg.content_sums("shop");
    pg.psql("shop", "DELETE FROM items WHERE id > 100");

    let e = restore(
        &repo,
        &snap,
        &pg,
        "shop",
        RestoreOptions {
            jobs: 0,
            ..RestoreOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), dr_core::ErrorKind::InvalidInput, "{e}");

    // An application session holds the live database: the switch is refused.
    let app = pg.client("shop").await;
    let swapping = RestoreOptions {
        mode: RestoreMode::Swap,
        ..RestoreOptions::default()
    };
    let e = restore(&repo, &snap, &pg, "shop", swapping.clone())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("run again switches that copy in"),
        "{e}"
    );
    assert_eq!(
        pg.content_sums("shop_restored"),
        before,
        "the copy is complete"
    );

    // Run again, ending that session: the finished copy is switched in, not loaded again.
    let report = restore(
        &repo,
        &snap,
        &pg,
        "shop",
        RestoreOptions {
            terminate_connections: true,
            ..swapping
        },
    )
    .await
    .unwrap();
    drop(app);
    assert_eq!(report.previous_database.as_deref(), Some("shop_old"));
    assert_eq!(report.bytes, 0, "nothing was loaded twice");
    assert_eq!(pg.content_sums("shop"), before);
    assert_eq!(
        pg.psql("postgres", "SELECT coalesce(shobj_description(oid, 'pg_database'), 'none') FROM pg_database WHERE datname = 'shop'"),
        "none"
    );
    assert!(!databases(&pg).contains(&"shop_restored".to_owned()));
}

#[test]
fn ranges_smaller_than_eight_pages_and_zero_sessions_are_refused() {
    for options in [
        BackupOptions {
            split_bytes: 8191,
            ..BackupOptions::default()
        },
        BackupOptions {
            split_bytes: 0,
            ..BackupOptions::default()
        },
        BackupOptions {
            jobs: Some(0),
            ..BackupOptions::default()
        },
    ] {
        let e = options.check().unwrap_err();
        assert_eq!(e.kind(), dr_core::ErrorKind::InvalidInput, "{e}");
    }
    assert!(BackupOptions::default().check().is_ok());
}
