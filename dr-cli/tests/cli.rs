//! The `drkit` binary end to end, as an operator runs it, against real Postgres.

use std::path::Path;

use dr_testkit::{stderr, Drkit, PgCluster, PASSWORD};
use serde_json::Value;

fn new_drkit(dir: &Path) -> Drkit {
    Drkit::local(env!("CARGO_BIN_EXE_drkit"), dir)
}

/// Kills `child` with SIGKILL as soon as `ready` holds, which must happen within a minute
/// and before the command ends by itself.
fn kill_when(child: &mut std::process::Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not get there in 60 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what} finished before it could be killed; use more rows"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn backup_list_restore_verify_round_trip() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("inventory", 50_000);
    let dir = tempfile::tempdir().unwrap();
    let drkit = new_drkit(&dir.path().join("repo"));

    let init = drkit.json(&["repo", "init"]);
    assert_eq!(init["encrypted"], true);
    let snap = drkit.json(&["backup", &pg.dsn("inventory"), "--tag", "env=test"]);
    let id = snap["id"].as_str().unwrap().to_owned();
    assert_eq!(snap["tags"]["env"], "test");
    assert!(
        !snap.to_string().contains(PASSWORD),
        "no password in the output"
    );

    let list = drkit.json(&["snapshots"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());

    let restored = drkit.json(&["restore", "latest", "--to", &pg.dsn("inventory_copy")]);
    assert_eq!(restored["mode"], "auto");
    let sum = "SELECT count(*) || md5(string_agg(i::text, '' ORDER BY id)) FROM items i";
    assert_eq!(
        pg.psql("inventory", sum),
        pg.psql("inventory_copy", sum),
        "restored rows equal the original rows"
    );

    let verified = drkit.json(&[
        "verify",
        &id[..20],
        "--restore-into",
        &pg.dsn("postgres"),
        "--check",
        "SELECT count(*) = 50000 FROM items",
    ]);
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["restore"]["tables"][0]["expected"], 50_000);

    // A later chunk-level verify keeps the restore time the restore verification measured,
    // so the RTO objective still has its measurement.
    let objectives = dir.path().join("objectives.toml");
    std::fs::write(
        &objectives,
        "[[service]]\nname = \"inventory\"\nsource = \"/inventory\"\nrto = \"1h\"\nverified_within = \"1d\"\n",
    )
    .unwrap();
    let objectives = objectives.to_str().unwrap();
    let measured = drkit.json(&["status", "--objectives", objectives]);
    assert_eq!(measured["ok"], true, "{measured}");
    assert_eq!(drkit.json(&["verify", "latest"])["ok"], true);
    let after = drkit.json(&["status", "--objectives", objectives]);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(
        after["sources"][0]["last_restore_test_seconds"],
        measured["sources"][0]["last_restore_test_seconds"]
    );

    // The same restore again refuses to overwrite the now non-empty database.
    let again = drkit.run(&["restore", "latest", "--to", &pg.dsn("inventory_copy")]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--clean"), "{}", stderr(&again));
}

#[test]
fn bad_input_gets_one_clear_line_and_a_nonzero_exit() {
    let Some(pg) = PgCluster::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let drkit = new_drkit(&dir.path().join("repo"));

    // Repository not initialised.
    let out = drkit.run(&["backup", &pg.dsn("postgres")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("drkit repo init"), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));

    // Unwritable folder.
    let bad = Drkit {
        repo: "file:///proc/drkit-nope".into(),
        ..drkit.clone()
    };
    let out = bad.run(&["repo", "init"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/proc/drkit-nope"),
        "{}",
        stderr(&out)
    );

    assert!(drkit.run(&["repo", "init"]).status.success());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            format!("postgres://postgres:topsecret@127.0.0.1:{closed}/x"),
            format!("127.0.0.1:{closed}"),
        ),
        (
            format!(
                "postgres://postgres:topsecret@127.0.0.1:{}/postgres",
                pg.port()
            ),
            "password".to_owned(),
        ),
        (pg.dsn("no_such_database"), "no_such_database".to_owned()),
        (
            "postgres://postgres:topsecret@127.0.0.1:notaport/x".to_owned(),
            "invalid Postgres URL".to_owned(),
        ),
    ];
    for (dsn, expect) in cases {
        let out = drkit.run(&["backup", &dsn]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{dsn}");
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(&expect), "{dsn}: expected {expect:?} in {err}");
        assert!(
            !err.contains("topsecret") && !err.contains(PASSWORD),
            "a password leaked: {err}"
        );
    }
    // Wrong passphrase.
    let wrong = Drkit {
        env: vec![("DRKIT_PASSWORD".into(), "not it".into())],
        ..drkit.clone()
    };
    let out = wrong.run(&["snapshots"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not open this repository"),
        "{}",
        stderr(&out)
    );
    let json = wrong.run(&["--json", "snapshots"]);
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["error"]["kind"], "wrong_key");
    assert!(
        drkit.json(&["snapshots"]).as_array().unwrap().is_empty(),
        "failed backups left no snapshot"
    );
}

#[test]
fn killing_a_backup_leaves_no_snapshot_and_the_next_one_works() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("big", 1_500_000);
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let drkit = new_drkit(&repo_dir);
    drkit.json(&["repo", "init"]);

    let mut child = drkit
        .cmd(&["--quiet", "backup", &pg.dsn("big")])
        .spawn()
        .unwrap();
    let chunks = repo_dir.join("chunks");
    kill_when(&mut child, "backup", || walk_count(&chunks) >= 3);
    assert!(
        drkit.json(&["snapshots"]).as_array().unwrap().is_empty(),
        "a killed backup must not look complete"
    );

    let snap = drkit.json(&["backup", &pg.dsn("big")]);
    assert!(snap["raw_bytes"].as_u64().unwrap() > 50 << 20);
    let verified = drkit.json(&["verify", "latest"]);
    assert_eq!(verified["ok"], true);
}

#[test]
fn killing_a_restore_leaves_no_database_that_looks_complete() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("big", 1_500_000);
    let dir = tempfile::tempdir().unwrap();
    let drkit = new_drkit(&dir.path().join("repo"));
    drkit.json(&["repo", "init"]);
    drkit.json(&["backup", "--jobs", "2", &pg.dsn("big")]);
    let expected = pg.psql(
        "big",
        "SELECT count(*), sum(qty), md5(string_agg(sku, ',' ORDER BY id)) FROM items",
    );

    let copying = || {
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'copy_restoring' AND query LIKE 'COPY%FROM STDIN%'",
        ) != "0"
    };
    let mut child = drkit
        .cmd(&[
            "--quiet",
            "restore",
            "latest",
            "--source",
            "big",
            "--to",
            &pg.dsn("copy"),
        ])
        .spawn()
        .unwrap();
    kill_when(&mut child, "restore", copying);
    let names = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
    );
    assert!(
        !names.split(',').any(|d| d == "copy"),
        "no database of the target's name: {names}"
    );
    assert!(
        pg.psql("postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'copy_restoring'")
            .starts_with("drkit: incomplete restore of snapshot"),
        "the half-loaded database says what it is"
    );

    // The next restore takes the leftover away, says so, and completes.
    let report = drkit.json(&[
        "restore",
        "latest",
        "--source",
        "big",
        "--to",
        &pg.dsn("copy"),
    ]);
    assert_eq!(report["dropped_leftover"], "copy_restoring", "{report}");
    assert_eq!(
        pg.psql(
            "copy",
            "SELECT count(*), sum(qty), md5(string_agg(sku, ',' ORDER BY id)) FROM items"
        ),
        expected
    );
    let names = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database",
    );
    assert!(!names.contains("copy_restoring"), "{names}");
}

#[test]
fn a_corrupt_chunk_fails_verify_and_restore_loudly() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("shop", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let drkit = new_drkit(&repo_dir);
    drkit.json(&["repo", "init"]);
    let snap = drkit.json(&["backup", &pg.dsn("shop")]);
    let id = snap["id"].as_str().unwrap();

    let mut files = Vec::new();
    collect(&repo_dir.join("chunks"), &mut files);
    // The largest chunk belongs to the dump (the roles script is one small chunk).
    files.sort_by_key(|f| std::fs::metadata(f).unwrap().len());
    let victim = files.last().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(victim, bytes).unwrap();
    let victim_id = victim.file_name().unwrap().to_str().unwrap();

    let out = drkit.run(&["verify"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "verify exits 3 when it finds damage"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(id) && text.contains(victim_id) && text.contains("DAMAGED"),
        "{text}"
    );

    let out = drkit.run(&["restore", "latest", "--to", &pg.dsn("shop_restored")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&victim_id[..12]), "{}", stderr(&out));
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'shop_restored'"
        ),
        "0"
    );
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            collect(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

fn walk_count(dir: &Path) -> usize {
    let mut v = Vec::new();
    collect(dir, &mut v);
    v.len()
}

#[test]
fn a_passphrase_repository_gets_a_key_file_for_archive_command() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let drkit = new_drkit(&repo); // passphrase from DRKIT_PASSWORD
    assert!(drkit.run(&["repo", "init"]).status.success());
    let key = dir.path().join("archive.key");
    let added = drkit.json(&[
        "repo",
        "add-key",
        "--generate-key-file",
        key.to_str().unwrap(),
        "--label",
        "archive_command",
    ]);
    assert_eq!(added["label"], "archive_command", "{added}");
    let id = added["id"].as_str().unwrap().to_owned();

    let mut by_key = new_drkit(&repo);
    by_key.env = vec![("DRKIT_KEY_FILE".into(), key.display().to_string())];
    let segment = dir.path().join("000000010000000000000001");
    std::fs::write(&segment, vec![7u8; 1 << 20]).unwrap();
    let out = by_key.run(&["wal-push", segment.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fetched = dir.path().join("fetched");
    let out = drkit.run(&[
        "wal-fetch",
        "000000010000000000000001",
        fetched.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&fetched).unwrap(), vec![7u8; 1 << 20]);

    let keys = drkit.json(&["repo", "keys"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert!(drkit.run(&["repo", "remove-key", &id]).status.success());
    let out = by_key.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("opened with a passphrase, not a key file"),
        "{}",
        stderr(&out)
    );
    // One new secret at a time, and one is needed.
    assert_eq!(drkit.run(&["repo", "add-key"]).status.code(), Some(2));
}

/// A repository with dumps of two databases. `latest` restores the newest dump of the
/// database restored into — never another database's (it once restored the newest
/// snapshot of any source) — and a target named like neither source is refused, naming
/// them, before anything changes. `--source`, `--before` and `--random-within` pick
/// through the CLI and a runbook's `pg.restore` step alike.
#[test]
fn latest_restores_the_database_it_is_about() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("shop", 1_000);
    pg.fill_items("blog", 10);
    pg.psql(
        "blog",
        "CREATE TABLE posts (id int); INSERT INTO posts VALUES (1)",
    );
    let dir = tempfile::tempdir().unwrap();
    let drkit = new_drkit(&dir.path().join("repo"));
    drkit.json(&["repo", "init"]);
    let id = |v: Value| v["id"].as_str().unwrap().to_owned();
    let shop_1 = id(drkit.json(&["backup", &pg.dsn("shop")]));
    let between = jiff::Timestamp::now().to_string();
    pg.psql(
        "shop",
        "INSERT INTO items (id, sku) VALUES (1000001, 'late')",
    );
    let shop_2 = id(drkit.json(&["backup", &pg.dsn("shop")]));
    let blog = id(drkit.json(&["backup", &pg.dsn("blog")]));

    // The newest snapshot is blog's; restoring shop takes shop's newest.
    let restored = drkit.json(&["restore", "latest", "--to", &pg.dsn("shop"), "--clean"]);
    assert_eq!(restored["snapshot"], shop_2.as_str());
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'posts'"
        ),
        "0",
        "nothing of blog in shop"
    );
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM items"), "1001");

    // A target named like neither source: refused, naming both, nothing created.
    let out = drkit.run(&["restore", "latest", "--to", &pg.dsn("neither")]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("blog") && err.contains("shop") && err.contains("--source"),
        "{err}"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'neither'"
        ),
        "0"
    );
    // --source names the database to restore from.
    let restored = drkit.json(&[
        "restore",
        "latest",
        "--to",
        &pg.dsn("blog_copy"),
        "--source",
        "blog",
    ]);
    assert_eq!(restored["snapshot"], blog.as_str());
    let before = drkit.json(&[
        "restore",
        "latest",
        "--to",
        &pg.dsn("shop_before"),
        "--source",
        "shop",
        "--before",
        &between,
    ]);
    assert_eq!(before["snapshot"], shop_1.as_str());
    assert_eq!(pg.psql("shop_before", "SELECT count(*) FROM items"), "1000");
    let drawn = drkit.json(&[
        "restore",
        "latest",
        "--to",
        &pg.dsn("shop_random"),
        "--source",
        "shop",
        "--random-within",
        "1h",
    ]);
    let drawn = drawn["snapshot"].as_str().unwrap();
    assert!(drawn == shop_1 || drawn == shop_2, "{drawn}");

    // The same selection from a runbook step.
    let book = dir.path().join("restore.yaml");
    std::fs::write(
        &book,
        format!(
            "version: 1\nname: restore-known-good\nsteps:\n  - id: restore\n    action: pg.restore\n    with: {{ url: \"{}\", source: shop, before: \"{between}\", options: {{ mode: create }} }}\n",
            pg.dsn("shop_step")
        ),
    )
    .unwrap();
    let run = drkit.json(&["run", book.to_str().unwrap(), "--yes"]);
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    assert_eq!(
        run["steps"][0]["outputs"]["snapshot"],
        shop_1.as_str(),
        "{run:#}"
    );
    assert_eq!(pg.psql("shop_step", "SELECT count(*) FROM items"), "1000");
}

/// `drkit sql`: the operations of the `sql.exec`, `sql.query` and `pg.ready` steps.
#[test]
fn sql_from_the_cli_runs_as_the_steps_run_it() {
    let Some(pg) = PgCluster::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let drkit = new_drkit(&dir.path().join("repo"));
    let admin = pg.dsn("postgres");
    let ready = drkit.json(&["sql", "ready", &admin, "--timeout", "30s"]);
    assert!(ready["seconds"].as_f64().is_some(), "{ready}");
    let done = drkit.json(&[
        "sql",
        "exec",
        &admin,
        "DROP DATABASE IF EXISTS sql_cli",
        "CREATE DATABASE sql_cli",
    ]);
    assert_eq!(done["transaction"], false, "each on its own: {done}");
    let url = pg.dsn("sql_cli");
    drkit.json(&[
        "sql",
        "exec",
        &url,
        "CREATE TABLE t (n int)",
        "INSERT INTO t SELECT generate_series(1, 5)",
    ]);
    let rows = drkit.json(&["sql", "query", &url, "SELECT count(*) AS n FROM t"]);
    assert_eq!(rows["row"]["n"], 5, "{rows}");
    let out = drkit.run(&[
        "sql",
        "exec",
        &admin,
        "--transaction",
        "DROP DATABASE sql_cli",
    ]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot run inside a transaction"));
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'sql_cli'"
        ),
        "1",
        "refused before anything ran"
    );
}
