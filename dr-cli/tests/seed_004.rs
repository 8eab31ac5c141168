//! Seed 004's complete database recovery
//! (`examples/runbooks/saas-compose/complete-database-recovery.yaml`) on a real
//! PostgreSQL, with the test kit's app standing for the compose backend: it reads
//! DATABASE_URL from its `.env`, is stopped and started by the runbook's commands (a flag
//! file here, `docker-compose stop|up` in production) and logs users in. After the data is
//! lost, the run brings back the rows of the newest backup, the migration has run, the
//! app answers healthy and a user logs in, within the RTO. A runbook that forgets to
//! start the app again fails its verification (exit 3).

use dr_testkit::app::{request, AppOptions, Source, TestApp};
use dr_testkit::{stderr, Drkit, PgCluster};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");
const BOOK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/runbooks/saas-compose/complete-database-recovery.yaml"
);

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
    std::fs::write(
        &env,
        format!(
            "DATABASE_URL=postgres://postgres:{}@127.0.0.1:{}/saas_production\n",
            dr_testkit::PASSWORD,
            pg.port()
        ),
    )
    .unwrap();
    let app = TestApp::start(AppOptions {
        objects: None,
        namespace: String::new(),
        source: Source::EnvFile {
            path: env.clone(),
            var: "DATABASE_URL".into(),
        },
        dsn: "{}".into(),
        deployment: None,
        table: "items".into(),
        stopped_when: Some(stopped.clone()),
    });
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
}
