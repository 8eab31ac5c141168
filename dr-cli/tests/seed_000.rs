//! Seed 000 (the Django + Next.js monolith on Kubernetes): its procedures as the runbooks
//! of `examples/runbooks/k8s-monolith/`, each run end to end against PostgreSQL, the
//! Kubernetes test API and the test kit's app (which finds the database through the
//! ConfigMap `django-config` and refuses traffic while `django-api` is scaled to zero).

use std::path::{Path, PathBuf};

use dr_testkit::app::{request, AppOptions, Source, TestApp};
use dr_testkit::k8s::{deployment, K8sTestApi};
use dr_testkit::{stderr, Drkit, PgCluster};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

fn book(name: &str) -> String {
    format!(
        "{}/../examples/runbooks/k8s-monolith/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// What a run printed, for assertion messages.
fn printed(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// Runs a runbook that must succeed; returns its run document.
fn ok(d: &Drkit, name: &str, vars: &[String]) -> Value {
    let out = d.run_book(&book(name), vars);
    assert_eq!(out.status.code(), Some(0), "{name}: {}", printed(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{name}: {:.2} s", doc["seconds"].as_f64().unwrap_or(0.0));
    doc
}

/// Runs a runbook that must fail (exit 3); returns its run document.
fn fails(d: &Drkit, name: &str, vars: &[String]) -> Value {
    let out = d.run_book(&book(name), vars);
    assert_eq!(out.status.code(), Some(3), "{name}: {}", printed(&out));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// The monolith's production namespace: the API and the workers, the ConfigMap that says
/// where the database is, and the app answering for `django-api`.
struct Monolith {
    api: K8sTestApi,
    app: TestApp,
    kubeconfig: PathBuf,
}

const NS: &str = "fullstack-production";

impl Monolith {
    fn start(dir: &Path, pg: &PgCluster) -> Self {
        let api = K8sTestApi::start();
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig, "production");
        api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
        api.create(deployment(NS, "django-api", 3, "blog-api:41"));
        api.create(deployment(NS, "celery-worker", 2, "blog-api:41"));
        api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "django-config", "namespace": NS}, "data": {"DATABASE_HOST": format!("127.0.0.1:{}", pg.port())}}));
        let app = TestApp::start(AppOptions {
            objects: Some(api.objects_handle()),
            namespace: NS.into(),
            source: Source::ConfigMap {
                name: "django-config".into(),
                key: "DATABASE_HOST".into(),
            },
            dsn: format!(
                "postgres://postgres:{}@{{}}/fullstack_blog",
                dr_testkit::PASSWORD
            ),
            deployment: Some("django-api".into()),
            table: "blog_post".into(),
            stopped_when: None,
        });
        Self {
            api,
            app,
            kubeconfig,
        }
    }

    fn health(&self) -> String {
        format!("{}/health", self.app.url())
    }

    fn ready(&self, name: &str) -> Value {
        self.api.object("apps/v1", "deployments", NS, name).unwrap()["status"]["readyReplicas"]
            .clone()
    }
}

fn blog(pg: &PgCluster, users: u32, posts: u32) {
    pg.psql("postgres", "CREATE DATABASE fullstack_blog");
    pg.psql(
        "fullstack_blog",
        &format!(
            "CREATE TABLE auth_user (id int PRIMARY KEY, username text UNIQUE, password text); \
             INSERT INTO auth_user SELECT g, 'user' || g, md5(g::text) FROM generate_series(1, {users}) g; \
             CREATE TABLE blog_post (id bigint PRIMARY KEY, author int REFERENCES auth_user, title text); \
             INSERT INTO blog_post SELECT g, 1 + g % {users}, 'post ' || g FROM generate_series(1, {posts}) g"
        ),
    );
}

fn snapshots(d: &Drkit) -> Vec<String> {
    d.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[allow(clippy::too_many_lines)] // three procedures on one database, each read back
fn the_blog_database_is_backed_up_daily_verified_and_restored_with_the_app_stopped() {
    let Some(pg) = PgCluster::start() else { return };
    let Some(ten_days_ago) = dr_testkit::faketime_env("-10d") else {
        return;
    };
    blog(&pg, 20, 30);
    let dir = tempfile::tempdir().unwrap();
    let site = Monolith::start(dir.path(), &pg);
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env([
        ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
        ("KUBECONFIG", site.kubeconfig.display().to_string()),
    ]);
    d.json(&["repo", "init"]);
    let server = format!("postgres://postgres@127.0.0.1:{}", pg.port());
    let daily = [format!("database={server}/fullstack_blog")];

    // Automated backups: two runs "ten days ago", two today. The retention keeps the
    // last 7 days whole and the newest of each older day.
    let mut then = d.clone();
    then.env.extend(ten_days_ago);
    ok(&then, "daily-backup.yaml", &daily);
    ok(&then, "daily-backup.yaml", &daily);
    let old = snapshots(&d);
    assert_eq!(old.len(), 2, "{old:?}");
    pg.psql(
        "fullstack_blog",
        "INSERT INTO blog_post SELECT g, 1, 'post ' || g FROM generate_series(31, 35) g",
    );
    let first = ok(&d, "daily-backup.yaml", &daily);
    let removed = |run: &Value| dr_testkit::step(run, "retention")["outputs"]["removed"].clone();
    assert_eq!(
        removed(&first),
        json!([old[0]]),
        "the older of one old day goes"
    );
    let last = ok(&d, "daily-backup.yaml", &daily);
    assert_eq!(removed(&last), json!([]), "within 7 days everything stays");
    let kept = snapshots(&d);
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.contains(&old[1]), "the newest of that day stays");
    let good = dr_testkit::step(&last, "backup")["outputs"]["snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        d.json(&["snapshots"]).as_array().unwrap().last().unwrap()["tags"]["schedule"],
        "daily"
    );

    // Backup verification: restored into a scratch database, counted, dropped; recorded.
    let verify = [format!("server={server}/postgres")];
    ok(&d, "backup-verification.yaml", &verify);
    let status = d.json(&["status"]);
    assert_eq!(
        status["sources"][0]["newest_verified"],
        good.as_str(),
        "{status}"
    );
    let scratch = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1', 'fullstack_blog')",
    );
    assert_eq!(scratch, "0", "the scratch database is dropped");
    // A backup with no posts does not pass verification.
    pg.psql("fullstack_blog", "DELETE FROM blog_post");
    d.json(&["backup", &format!("{server}/fullstack_blog")]);
    let failed = fails(&d, "backup-verification.yaml", &verify);
    assert_eq!(dr_testkit::step(&failed, "verify")["state"], "failed");

    // Full database restore of the good backup, the API and the workers stopped meanwhile.
    assert_eq!(request("GET", &site.health(), None).1["rows"], 0);
    let restore = |api_replicas: u32| {
        vec![
            format!("server={server}"),
            format!("snapshot={good}"),
            format!("namespace={NS}"),
            format!("api_replicas={api_replicas}"),
            format!("health={}", site.health()),
            "verify_for=5s".to_owned(),
        ]
    };
    let done = ok(&d, "full-database-restore.yaml", &restore(3));
    let (status, doc) = request("GET", &site.health(), None);
    assert_eq!((status, doc["rows"].clone()), (200, json!(35)), "{doc}");
    assert_eq!(
        pg.psql("fullstack_blog", "SELECT count(*) FROM auth_user"),
        "20"
    );
    assert_eq!(
        (site.ready("django-api"), site.ready("celery-worker")),
        (json!(3), json!(2))
    );
    assert_eq!(
        dr_testkit::step(&done, "stop-api")["outputs"]["previous"],
        3,
        "the API was stopped first: {done}"
    );
    assert_eq!(done["rto"]["met"], true, "{done}");

    // One step wrong: the API never scaled back up, and verification fails the run.
    let failed = fails(&d, "full-database-restore.yaml", &restore(0));
    assert_eq!(dr_testkit::step(&failed, "verify")["state"], "failed");
}
