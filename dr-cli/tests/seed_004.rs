//! Seed 004 (the SaaS on docker-compose): the runbooks of `examples/runbooks/saas-compose/`.
//!
//! The complete database recovery
//! (`examples/runbooks/saas-compose/complete-database-recovery.yaml`) on a real
//! PostgreSQL, with the test kit's app standing for the compose backend: it reads
//! DATABASE_URL from its `.env`, is stopped and started by the runbook's commands (a flag
//! file here, `docker-compose stop|up` in production) and logs users in. After the data is
//! lost, the run brings back the rows of the newest backup, the migration has run, the
//! app answers healthy and a user logs in, within the RTO. A runbook that forgets to
//! start the app again fails its verification (exit 3).

use dr_testkit::app::{request, AppOptions, Source, TestApp};
use std::path::Path;

use dr_testkit::{stderr, Drkit, Moto, PgCluster};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");
const BOOK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/runbooks/saas-compose/complete-database-recovery.yaml"
);

fn book(name: &str) -> String {
    format!(
        "{}/../examples/runbooks/saas-compose/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn printed(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// The test app as the compose backend: DATABASE_URL from `env`, stopped while `stopped`
/// exists.
fn backend(env: &Path, stopped: &Path) -> TestApp {
    TestApp::start(AppOptions {
        objects: None,
        namespace: String::new(),
        source: Source::EnvFile {
            path: env.to_owned(),
            var: "DATABASE_URL".into(),
        },
        dsn: "{}".into(),
        deployment: None,
        table: "items".into(),
        stopped_when: Some(stopped.to_owned()),
    })
}

fn database_url(pg: &PgCluster, db: &str) -> String {
    format!(
        "DATABASE_URL=postgres://postgres:{}@127.0.0.1:{}/{db}\n",
        dr_testkit::PASSWORD,
        pg.port()
    )
}

#[test]
#[allow(clippy::too_many_lines)] // the data lost, recovered, each item of the checklist read back
fn a_lost_database_comes_back_from_the_newest_backup_and_users_log_in() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("saas_production", 60);
    pg.psql(
        "saas_production",
        "CREATE TABLE users (name text, password text); INSERT INTO users VALUES ('drill', 'Login-Check-5521')",
    );
    let dir = tempfile::tempdir().unwrap();
    let stopped = dir.path().join("backend.stopped");
    let env = dir.path().join(".env");
    std::fs::write(&env, database_url(&pg, "saas_production")).unwrap();
    let app = backend(&env, &stopped);
    let health = format!("{}/health", app.url());
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env([
        ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
        ("LOGIN_CHECK_PASSWORD", "Login-Check-5521".to_owned()),
    ]);
    d.json(&["repo", "init"]);
    d.json(&["backup", &pg.dsn("saas_production")]);
    // The disaster: the data is gone.
    pg.psql("saas_production", "DELETE FROM items; DELETE FROM users");
    assert_eq!(request("GET", &health, None).1["rows"], 0);

    let psql = pg.bindir().join("psql");
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/saas_production",
        pg.port()
    );
    let vars = |start: &str| {
        vec![
            format!("host=127.0.0.1:{}", pg.port()),
            format!("stop=touch {}", stopped.display()),
            format!("start={start}"),
            format!(
                "migrate={} {url} -c \"CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY); INSERT INTO schema_migrations VALUES ('0042') ON CONFLICT DO NOTHING\"",
                psql.display()
            ),
            format!("health={health}"),
            "verify_for=5s".to_owned(),
            format!("login={}/login", app.url()),
        ]
    };
    let run = |start: &str| d.run_book(BOOK, &vars(start));
    let out = run(&format!("rm -f {}", stopped.display()));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{printed}");
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "complete database recovery: {:.2} s",
        done["seconds"].as_f64().unwrap_or(0.0)
    );
    // The checklist: restored, started, healthy, login works, within the RTO.
    let (status, doc) = request("GET", &health, None);
    assert_eq!((status, doc["rows"].clone()), (200, json!(60)), "{doc}");
    assert_eq!(
        pg.psql("saas_production", "SELECT version FROM schema_migrations"),
        "0042",
        "the migration ran on the restored database"
    );
    let (status, _) = request(
        "POST",
        &format!("{}/login", app.url()),
        Some(&json!({"user": "drill", "password": "Login-Check-5521"})),
    );
    assert_eq!(status, 200, "user login works");
    assert_eq!(
        dr_testkit::step(&done, "login-works")["outputs"]["status"],
        200
    );
    assert!(!stopped.exists(), "the app was started again");
    assert_eq!(done["rto"]["met"], true, "{done}");
    assert!(
        !printed.contains("Login-Check-5521"),
        "the login check's password is never printed"
    );

    // One step wrong: the app is never started again, and verification says so.
    pg.psql("saas_production", "DELETE FROM items");
    let out = run("true");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{printed}");
    let failed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        dr_testkit::step(&failed, "verify")["state"],
        "failed",
        "{printed}"
    );

    // A database with no backup (a misspelt name, an empty repository) is refused before
    // the app stops or anything is dropped; so is a server that does not answer.
    std::fs::remove_file(&stopped).ok();
    pg.fill_items("saas_other", 500);
    let mut other = vars(&format!("rm -f {}", stopped.display()));
    other.push("database=saas_other".into());
    let out = d.run_book(BOOK, &other);
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{printed}");
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dr_testkit::step(&refused, "backup")["state"],
        "failed",
        "{printed}"
    );
    assert_eq!(dr_testkit::step(&refused, "stop")["state"], "skipped");
    assert!(!stopped.exists(), "the app was never stopped");
    assert_eq!(pg.psql("saas_other", "SELECT count(*) FROM items"), "500");
    let mut unreachable = vars(&format!("rm -f {}", stopped.display()));
    unreachable[0] = "host=127.0.0.1:1".into();
    unreachable.push("reachable_within=1s".into());
    let out = d.run_book(BOOK, &unreachable);
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dr_testkit::step(&refused, "reachable")["state"], "failed");
    assert!(!stopped.exists(), "the app was never stopped");
}

/// The test checklist as a drill: the recovery under test is the complete database
/// recovery, unchanged; the RPO is the age of the data restored.
#[test]
#[allow(clippy::too_many_lines)] // the drill, then each item of the checklist
fn the_restore_drill_runs_the_complete_recovery_and_measures_rto_and_rpo() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("saas_drill", 50);
    pg.psql(
        "saas_drill",
        "CREATE TABLE users (name text, password text); INSERT INTO users VALUES ('drill', 'Login-Check-7730')",
    );
    let dir = tempfile::tempdir().unwrap();
    let stopped = dir.path().join("backend.stopped");
    let env = dir.path().join(".env");
    std::fs::write(&env, database_url(&pg, "saas_drill")).unwrap();
    let app = backend(&env, &stopped);
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env([
        ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
        ("LOGIN_CHECK_PASSWORD", "Login-Check-7730".to_owned()),
    ]);
    d.json(&["repo", "init"]);
    let out = d.run(&[
        "--json",
        "drill",
        &book("restore-drill.yaml"),
        "--var",
        &format!("host=127.0.0.1:{}", pg.port()),
        "--var",
        &format!("stop=touch {}", stopped.display()),
        "--var",
        &format!("start=rm -f {}", stopped.display()),
        "--var",
        "migrate=true",
        "--var",
        &format!("health={}/health", app.url()),
        "--var",
        &format!("login={}/login", app.url()),
        "--var",
        "verify_for=10s",
    ]);
    let shown = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (rto, rpo) = (&report["rto"], &report["rpo"]);
    eprintln!(
        "seed 004 restore drill: RTO {} s, RPO {} s",
        rto["achieved_seconds"], rpo["achieved_seconds"]
    );
    assert_eq!(
        (rto["verdict"].clone(), rpo["verdict"].clone()),
        (json!("met"), json!("met")),
        "{report}"
    );
    assert!(rpo["achieved_seconds"].as_f64().unwrap() >= 0.5, "{rpo}");
    // The checklist: restored, started, login works.
    let (status, doc) = request("GET", &format!("{}/health", app.url()), None);
    assert_eq!((status, doc["rows"].clone()), (200, json!(50)), "{doc}");
    let run = d.json(&["runs", "show", report["run"].as_str().unwrap()]);
    assert_eq!(
        dr_testkit::step(&run, "recovery/login-works")["state"],
        "succeeded"
    );
    assert!(!shown.contains("Login-Check-7730"));
}

#[test]
fn application_recovery_restarts_the_app_and_fails_on_errors_in_its_logs() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("saas_production", 10);
    let dir = tempfile::tempdir().unwrap();
    let stopped = dir.path().join("backend.stopped");
    std::fs::write(&stopped, "").unwrap();
    let env = dir.path().join(".env");
    std::fs::write(&env, database_url(&pg, "saas_production")).unwrap();
    let app = backend(&env, &stopped);
    let log = dir.path().join("backend.log");
    let d = Drkit::local(BIN, &dir.path().join("repo"));
    d.json(&["repo", "init"]);
    let vars = || {
        vec![
            "pull=true".to_owned(),
            format!("build=echo built > {}", dir.path().join("built").display()),
            format!("start=rm -f {}", stopped.display()),
            format!("logs=cat {}", log.display()),
            format!("health={}/health", app.url()),
            "verify_for=5s".to_owned(),
        ]
    };
    std::fs::write(&log, "INFO booting\nINFO listening on :8000\n").unwrap();
    let out = d.run_book(&book("application-recovery.yaml"), &vars());
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert_eq!(
        request("GET", &format!("{}/health", app.url()), None).0,
        200
    );
    assert!(dir.path().join("built").exists(), "rebuilt");

    // An error in the logs after the restart fails the run, naming why.
    std::fs::write(&stopped, "").unwrap();
    std::fs::write(&log, "INFO booting\nERROR cannot reach redis:6379\n").unwrap();
    let out = d.run_book(&book("application-recovery.yaml"), &vars());
    assert_eq!(out.status.code(), Some(3), "{}", printed(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dr_testkit::step(&run, "no-errors")["state"], "failed");
    assert!(
        printed(&out).contains("logs hold errors"),
        "{}",
        printed(&out)
    );
}

#[test]
#[allow(clippy::too_many_lines)] // the failover, each effect read back
fn the_multi_region_failover_promotes_repoints_moves_dns_and_takes_writes() {
    let Some(moto) = Moto::start() else { return };
    let Some(primary) = PgCluster::start() else {
        return;
    };
    primary.fill_items("saas_production", 25);
    let replica = primary.start_replica();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rds, _) = rt.block_on(async {
        let rds = moto
            .rds_primary_with_replica("saas-production", "saas-production-replica")
            .await;
        let r53 = moto
            .failover_pair(
                "yourdomain.com",
                "api.yourdomain.com",
                ("us-east-1", "api-use1.yourdomain.com"),
                ("us-west-2", "api-usw2.yourdomain.com"),
            )
            .await;
        (rds, r53)
    });
    let dir = tempfile::tempdir().unwrap();
    let stopped = dir.path().join("backend.stopped");
    let env = dir.path().join(".env");
    // The secondary region's app still points at the lost primary.
    std::fs::write(
        &env,
        "DATABASE_URL=postgres://saas:pw@127.0.0.1:1/saas_production\n",
    )
    .unwrap();
    let app = backend(&env, &stopped);
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env(moto.env())
        .with_env([("DATABASE_PASSWORD", dr_testkit::PASSWORD.to_owned())]);
    d.json(&["repo", "init"]);
    let out = d.run_book(
        &book("multi-region-failover.yaml"),
        &[
            "region=us-east-1".into(),
            format!("db_host=127.0.0.1:{}", replica.port()),
            "db_user=postgres".into(),
            format!("data_plane={}", replica.dsn("postgres")),
            format!("env_file={}", env.display()),
            "restart=true".into(),
            format!("health={}/health", app.url()),
            format!("write_check={}/items", app.url()),
            "verify_for=5s".into(),
        ],
    );
    let shown = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    // The app's DATABASE_URL is the promoted replica, which takes writes.
    let url = std::fs::read_to_string(&env).unwrap();
    assert!(
        url.contains(&format!("@127.0.0.1:{}/saas_production", replica.port())),
        "{url}"
    );
    assert_eq!(replica.psql("postgres", "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(
        replica.psql(
            "saas_production",
            "SELECT count(*) FROM items WHERE sku LIKE 'failover-check-%'"
        ),
        "1",
        "the write check's row is in the promoted database"
    );
    rt.block_on(async {
        let seen = rds
            .describe_db_instances()
            .db_instance_identifier("saas-production-replica")
            .send()
            .await
            .unwrap();
        assert_eq!(
            seen.db_instances()[0].read_replica_source_db_instance_identifier(),
            None
        );
        let primary = moto.failover_primary().await;
        assert_eq!(primary.as_deref(), Some("us-west-2"));
    });
    assert!(
        !shown.contains(dr_testkit::PASSWORD),
        "the database password is never printed"
    );
}

#[test]
fn the_media_bucket_is_versioned_replicated_and_its_copy_complete() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let put = |bucket: &str, key: &str, body: &str| rt.block_on(moto.put_object(bucket, key, body));
    rt.block_on(moto.replicated_buckets(
        "saas-media-production",
        "saas-media-production-replica",
        "media-to-usw2",
    ));
    // moto does not replicate: the test writes the copy as replication would.
    for (key, body) in [("avatars/1.png", "png-1"), ("uploads/report.pdf", "pdf-2")] {
        put("saas-media-production", key, body);
        put("saas-media-production-replica", key, body);
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env(moto.env());
    d.json(&["repo", "init"]);
    let vars = ["replica_region=us-east-1".to_owned()];
    let out = d.run_book(&book("media-replication.yaml"), &vars);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dr_testkit::step(&run, "media/replicated")["outputs"]["source_objects"],
        2
    );

    // An upload the copy lacks fails the check and is named.
    put("saas-media-production", "uploads/new.pdf", "pdf-3");
    let out = d.run_book(&book("media-replication.yaml"), &vars);
    assert_eq!(out.status.code(), Some(3), "{}", printed(&out));
    assert!(
        printed(&out).contains("uploads/new.pdf"),
        "{}",
        printed(&out)
    );
}

#[test]
#[allow(clippy::too_many_lines)] // the rebuild, read back on the new server, the app and DNS
fn an_infrastructure_rebuild_restores_onto_a_new_server_and_moves_dns() {
    let Some(moto) = Moto::start() else { return };
    let Some(old) = PgCluster::start() else {
        return;
    };
    old.fill_items("saas_production", 45);
    let Some(new) = PgCluster::start() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sdk = moto.aws("us-east-1").load().await.unwrap();
        aws_sdk_route53::Client::new(&sdk)
            .create_hosted_zone()
            .name("yourdomain.com")
            .caller_reference("seed-004")
            .send()
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let stopped = dir.path().join("backend.stopped");
    std::fs::write(&stopped, "").unwrap();
    // The env file from its secure location points the app at the new server.
    let secure = dir.path().join("secure.env");
    std::fs::write(&secure, database_url(&new, "saas_production")).unwrap();
    let env = dir.path().join(".env");
    let app = backend(&env, &stopped);
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env(moto.env())
        .with_env([("PGPASSWORD", dr_testkit::PASSWORD.to_owned())]);
    d.json(&["repo", "init"]);
    d.json(&[
        "backup",
        &format!(
            "postgres://postgres@127.0.0.1:{}/saas_production",
            old.port()
        ),
    ]);
    drop(old); // the server is gone
    let provisioned = dir.path().join("provisioned");
    let out = d.run_book(
        &book("infrastructure-rebuild.yaml"),
        &[
            format!("provision=echo \"$NEW_SERVER\" > {}", provisioned.display()),
            format!("configure=cp {} {}", secure.display(), env.display()),
            "new_server=203.0.113.7".into(),
            format!("db=postgres://postgres@127.0.0.1:{}", new.port()),
            format!("start=rm -f {}", stopped.display()),
            format!("health={}/health", app.url()),
            "verify_for=10s".into(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert_eq!(
        std::fs::read_to_string(&provisioned).unwrap().trim(),
        "203.0.113.7"
    );
    let (status, doc) = request("GET", &format!("{}/health", app.url()), None);
    assert_eq!((status, doc["rows"].clone()), (200, json!(45)), "{doc}");
    assert_eq!(
        doc["database"],
        format!("127.0.0.1:{}/saas_production", new.port())
    );
    let shown = d.json(&[
        "dns",
        "show",
        "--zone",
        "yourdomain.com",
        "--name",
        "api.yourdomain.com",
    ]);
    assert!(shown.to_string().contains("203.0.113.7"), "{shown}");
}
