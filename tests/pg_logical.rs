//! Logical backup, restore and verification against real PostgreSQL clusters.

use std::sync::Arc;

use dr_core::progress::NoProgress;
use dr_core::repo::{InitOptions, OpenOptions, Repository, Secret};
use dr_core::store::{DynStore, LocalStore};
use dr_core::ErrorKind;
use dr_pg::{BackupOptions, ConnInfo, RestoreMode, RestoreOptions, VerifyOptions};
use dr_testkit::PgCluster;

fn secret() -> Secret {
    Secret::Passphrase("test passphrase".to_owned().into())
}

async fn encrypted_repo(dir: &std::path::Path) -> (Repository, DynStore) {
    let store: DynStore = Arc::new(LocalStore::new(dir.join("repo")));
    let repo = Repository::init(store.clone(), &InitOptions::encrypted(secret()))
        .await
        .unwrap();
    (repo, store)
}

fn load(pg: &PgCluster, db: &str, file: &str) {
    let out = pg.tool(
        "psql",
        db,
        &["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", file],
    );
    assert!(
        out.status.success(),
        "loading {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Content checksum of every user table, large objects and sequence states.
fn content(pg: &PgCluster, db: &str) -> Vec<String> {
    let tables = pg.psql(
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog','information_schema') ORDER BY 1",
    );
    let mut out: Vec<String> = tables
        .lines()
        .map(|t| {
            let sum = pg.psql(db, &format!("SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '' ORDER BY x::text)), '-') FROM {t} x"));
            format!("{t} {sum}")
        })
        .collect();
    out.push(pg.psql(db, "SELECT 'lo ' || coalesce(md5(string_agg(oid::text || encode(lo_get(oid), 'hex'), ',' ORDER BY oid)), '-') FROM pg_largeobject_metadata"));
    out.push(pg.psql(
        db,
        "SELECT 'seq ' || last_value || ' ' || is_called FROM sales.invoice_no",
    ));
    out
}

/// A default backup of `conn` into `repo`.
async fn backup(repo: &Repository, conn: &ConnInfo) -> dr_core::Result<dr_core::repo::Snapshot> {
    dr_pg::backup(repo, conn, &BackupOptions::default(), Arc::new(NoProgress)).await
}

/// A cluster with the rich `shop` database, an encrypted repository, and one backup of it.
struct Shop {
    pg: PgCluster,
    dir: tempfile::TempDir,
    repo: Repository,
    conn: ConnInfo,
    snap: dr_core::repo::Snapshot,
}

async fn backed_up_shop() -> Option<Shop> {
    let pg = PgCluster::start()?;
    pg.psql("postgres", "CREATE DATABASE shop");
    load(&pg, "shop", &fixture("rich.sql"));
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = encrypted_repo(dir.path()).await;
    let conn = ConnInfo::parse(&pg.dsn("shop")).unwrap();
    let snap = backup(&repo, &conn).await.unwrap();
    Some(Shop {
        pg,
        dir,
        repo,
        conn,
        snap,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rich_database_round_trips_to_a_new_cluster() {
    let Some(Shop {
        pg: src,
        dir,
        repo,
        conn: _,
        snap,
    }) = backed_up_shop().await
    else {
        return;
    };
    let Some(dst) = PgCluster::start() else {
        return;
    };
    let meta: dr_pg::LogicalMetadata = serde_json::from_value(snap.metadata.clone()).unwrap();
    assert!(meta.consistent_counts);
    assert_eq!(meta.globals, "saved");
    let orders = meta.tables.iter().find(|t| t.table == "orders").unwrap();
    assert_eq!(orders.rows, Some(20_000));
    assert!(
        !snap.source.contains(dr_testkit::PASSWORD),
        "the source URL is stored without its password"
    );

    // Encrypted at rest: no stored object holds a string from the data.
    let mut stored = Vec::new();
    collect_files(&dir.path().join("repo"), &mut stored);
    assert!(stored.len() > 2);
    for path in stored {
        let bytes = std::fs::read(&path).unwrap();
        for needle in [
            "Ünïcödé Nåme".as_bytes(),
            b"user4242@Example.com",
            b"large object payload",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext",
                path.display()
            );
        }
    }

    // A new cluster, roles included: the restored database must equal the original.
    let target = ConnInfo::parse(&dst.dsn("shop")).unwrap();
    let options = RestoreOptions {
        mode: RestoreMode::Create,
        globals: true,
        ..RestoreOptions::default()
    };
    let report = dr_pg::restore(&repo, &snap, &target, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    let streamed: u64 = meta
        .data
        .iter()
        .flat_map(|f| &f.parts)
        .map(|p| p.bytes)
        .sum();
    assert_eq!(report.bytes, streamed, "every stream was loaded");
    assert!(
        src.schema("shop") == dst.schema("shop"),
        "schema-only dumps of source and restored differ"
    );
    assert_eq!(
        content(&src, "shop"),
        content(&dst, "shop"),
        "table contents differ"
    );
    assert_eq!(
        dst.psql(
            "shop",
            "SELECT has_table_privilege('app_ro', 'sales.customer_totals', 'SELECT')"
        ),
        "t"
    );

    // Restoring again without a flag refuses to touch the now non-empty database.
    let e = dr_pg::restore(
        &repo,
        &snap,
        &target,
        &RestoreOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(
        e.hint(),
        Some(&dr_core::Hint::CleanOrSwap),
        "says how to replace it: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_server_without_the_roles_is_refused_before_anything_changes() {
    let Some(Shop {
        pg: src,
        dir: _dir,
        repo,
        conn: _,
        snap,
    }) = backed_up_shop().await
    else {
        return;
    };
    let Some(fresh) = PgCluster::start() else {
        return;
    };
    let meta: dr_pg::LogicalMetadata = serde_json::from_value(snap.metadata.clone()).unwrap();
    assert_eq!(meta.roles.owners, vec!["app_rw".to_owned()]);
    assert_eq!(
        meta.roles.grantees,
        vec!["app_ro".to_owned(), "app_rw".to_owned()]
    );

    // The disaster case: a new server, no roles. Refused up front, naming them and the fix.
    let target = ConnInfo::parse(&fresh.dsn("shop")).unwrap();
    let e = dr_pg::restore(
        &repo,
        &snap,
        &target,
        &RestoreOptions::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    for part in ["app_ro", "app_rw", "--globals", "nothing was changed"] {
        assert!(e.to_string().contains(part), "names {part}: {e}");
    }
    assert_eq!(
        fresh.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'shop'"
        ),
        "0",
        "no database was created"
    );
    // Without owners and privileges the roles are not needed.
    let bare = RestoreOptions {
        no_owner: true,
        no_privileges: true,
        ..RestoreOptions::default()
    };
    let bare_target = ConnInfo::parse(&fresh.dsn("shop_bare")).unwrap();
    dr_pg::restore(&repo, &snap, &bare_target, &bare, Arc::new(NoProgress))
        .await
        .unwrap();

    // A runbook step can ask for the missing roles to be created: the data then equals
    // the original, privileges included.
    let create = RestoreOptions {
        create_roles: true,
        ..RestoreOptions::default()
    };
    dr_pg::restore(&repo, &snap, &target, &create, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(content(&src, "shop"), content(&fresh, "shop"));
    assert_eq!(
        fresh.psql(
            "shop",
            "SELECT has_table_privilege('app_ro', 'sales.customer_totals', 'SELECT'), \
             (SELECT tableowner FROM pg_tables WHERE schemaname = 'sales' AND tablename = 'orders'), \
             (SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app_rw')"
        ),
        "t|app_rw|f"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swap_restores_beside_and_keeps_the_old_database() {
    let Some(Shop {
        pg,
        dir: _dir,
        repo,
        conn,
        snap,
    }) = backed_up_shop().await
    else {
        return;
    };
    let before = content(&pg, "shop");

    // The disaster: someone deletes most orders.
    pg.psql("shop", "DELETE FROM sales.orders WHERE id > 100");
    let damaged = content(&pg, "shop");

    let options = RestoreOptions {
        mode: RestoreMode::Swap,
        jobs: 1,
        ..RestoreOptions::default()
    };
    let report = dr_pg::restore(&repo, &snap, &conn, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(report.previous_database.as_deref(), Some("shop_old"));
    assert_eq!(
        content(&pg, "shop"),
        before,
        "the swapped-in database holds the backed-up rows"
    );
    assert_eq!(
        content(&pg, "shop_old"),
        damaged,
        "the previous database is kept as shop_old"
    );

    // In place with --clean, from the same snapshot, onto the damaged copy.
    let old = ConnInfo::parse(&pg.dsn("shop_old")).unwrap();
    let clean = RestoreOptions {
        mode: RestoreMode::Clean,
        ..RestoreOptions::default()
    };
    dr_pg::restore(&repo, &snap, &old, &clean, Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(content(&pg, "shop_old"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appending_one_percent_stores_under_five_percent() {
    let Some(pg) = PgCluster::start() else { return };
    pg.psql("postgres", "CREATE DATABASE big");
    pg.psql(
        "big",
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) AS k, (g::bigint * 7919) % 100000 AS v, \
         now() - g * interval '1 second' AS at, repeat(chr(65 + g % 26), 20 + g % 40) AS note \
         FROM generate_series(1, 1000000) g",
    );
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = encrypted_repo(dir.path()).await;
    let conn = ConnInfo::parse(&pg.dsn("big")).unwrap();
    let first = backup(&repo, &conn).await.unwrap();
    pg.psql(
        "big",
        "INSERT INTO events SELECT g, md5(g::text), (g::bigint * 7919) % 100000, now(), repeat('z', 30) FROM generate_series(1000001, 1010000) g",
    );
    let second = backup(&repo, &conn).await.unwrap();
    assert!(
        second.stats.new_bytes * 20 <= first.stats.stored_bytes,
        "second backup stored {} new bytes, first {}",
        second.stats.new_bytes,
        first.stats.stored_bytes
    );
    assert!(second.stats.raw_bytes > first.stats.raw_bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corruption_is_named_and_restore_leaves_nothing_behind() {
    let Some(Shop {
        pg,
        dir,
        repo,
        conn: _,
        snap,
    }) = backed_up_shop().await
    else {
        return;
    };

    // The last chunk of the largest table stream.
    let victim = snap
        .files
        .iter()
        .filter(|f| f.name.starts_with("data/"))
        .max_by_key(|f| f.size)
        .unwrap()
        .chunks
        .last()
        .unwrap()
        .id;
    let path = dir.path().join("repo").join(victim.key());
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let report = repo.verify_snapshot(&snap, &NoProgress).await.unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].chunk, victim.to_string());

    for jobs in [1, 2] {
        let target = ConnInfo::parse(&pg.dsn(&format!("restored_{jobs}"))).unwrap();
        let options = RestoreOptions {
            jobs,
            ..RestoreOptions::default()
        };
        let e = dr_pg::restore(&repo, &snap, &target, &options, Arc::new(NoProgress))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(snap.id.as_str()) && msg.contains(&victim.short()),
            "{msg}"
        );
        let exists = pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname LIKE 'restored_{jobs}%'"),
        );
        assert_eq!(
            exists, "0",
            "no half-restored database is left (jobs={jobs})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_by_restore_compares_counts_and_runs_checks() {
    let Some(Shop {
        pg,
        dir: _dir,
        repo,
        conn: _,
        snap,
    }) = backed_up_shop().await
    else {
        return;
    };

    let server = ConnInfo::parse(&pg.dsn("postgres")).unwrap();
    let options = VerifyOptions {
        checks: vec![
            "SELECT count(*) FROM sales.orders WHERE amount >= 0".into(),
            "SELECT max(placed_at) > '2025-01-01' FROM sales.orders".into(),
        ],
        ..VerifyOptions::default()
    };
    let report = dr_pg::verify_by_restore(&repo, &snap, &server, &options, Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.tables.len(), 3);
    assert!(report.tables.iter().all(|t| t.ok));
    assert_eq!(report.amcheck.status, "checked");
    assert!(report.amcheck.indexes_checked >= 4, "{:?}", report.amcheck);
    let left = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'drkit_verify_%'",
    );
    assert_eq!(left, "0", "the scratch database is dropped");

    let failing = VerifyOptions {
        checks: vec!["SELECT count(*) FROM sales.orders WHERE amount < 0".into()],
        ..VerifyOptions::default()
    };
    let report = dr_pg::verify_by_restore(&repo, &snap, &server, &failing, Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(!report.ok);
    assert_eq!(report.checks[0].result, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_say_what_is_wrong() {
    let Some(pg) = PgCluster::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = encrypted_repo(dir.path()).await;
    let run = |dsn: String| {
        let repo = repo.clone();
        async move {
            let conn = ConnInfo::parse(&dsn).unwrap();
            backup(&repo, &conn).await.unwrap_err()
        }
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = run(format!("postgres://postgres:x@127.0.0.1:{closed}/db")).await;
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{e}"
    );

    let e = run(format!(
        "postgres://postgres:wrong-pw@127.0.0.1:{}/postgres",
        pg.port()
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(
        !e.to_string().contains("wrong-pw"),
        "the password is never printed: {e}"
    );

    let e = run(pg.dsn("no_such_db")).await;
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("no_such_db"), "{e}");

    assert!(
        repo.snapshots().await.unwrap().is_empty(),
        "failed backups leave no snapshot"
    );
    let reopened = Repository::open(repo.store().clone(), &OpenOptions::with_secret(secret()))
        .await
        .unwrap();
    assert!(reopened.snapshots().await.unwrap().is_empty());
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            collect_files(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

/// The offsets drkit writes into a piped dump are the ones pg_dump itself writes when it
/// can seek: the patched file equals a dump pg_dump wrote to a file, but for its timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_dumps_get_the_offsets_pg_dump_would_write() {
    let Some(pg) = PgCluster::start() else { return };
    pg.psql("postgres", "CREATE DATABASE shop");
    load(&pg, "shop", &fixture("rich.sql"));
    let dir = tempfile::tempdir().unwrap();
    let to_file = dir.path().join("file.dump");
    let out = pg.tool(
        "pg_dump",
        "shop",
        &["-Fc", "-Z0", "-f", to_file.to_str().unwrap()],
    );
    assert!(out.status.success());
    let piped = pg.tool("pg_dump", "shop", &["-Fc", "-Z0"]);
    assert!(piped.status.success());
    let mut patched = std::io::Cursor::new(piped.stdout.clone());
    let index = dr_pg::OffsetIndex::scan(&piped.stdout[..]).unwrap();
    assert!(
        index.patch(&mut patched).unwrap() >= 4,
        "every table and the large objects get an offset"
    );
    let patched = patched.into_inner();
    let reference = std::fs::read(&to_file).unwrap();
    assert_eq!(patched.len(), reference.len());
    let differing: Vec<usize> = (0..patched.len())
        .filter(|&i| patched[i] != reference[i])
        .collect();
    assert!(
        differing.iter().all(|&i| i < 128),
        "only the header's creation time may differ; bytes differ at {:?}",
        &differing[..differing.len().min(10)]
    );
    assert_ne!(
        piped.stdout, patched,
        "the piped dump had no offsets before"
    );
}
