//! Seed 000 (the Django + Next.js monolith on Kubernetes): its procedures as the runbooks
//! of `examples/runbooks/k8s-monolith/`, each run end to end against PostgreSQL, the
//! Kubernetes test API and the test kit's app (which finds the database through the
//! ConfigMap `django-config` and refuses traffic while `django-api` is scaled to zero).

use std::path::{Path, PathBuf};

use dr_testkit::app::{request, AppOptions, Source, TestApp};
use dr_testkit::k8s::{deployment, K8sTestApi};
use dr_testkit::{stderr, Drkit, Moto, PgCluster};
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

    // Multi-region storage: the repository copied to the other region's; a restore from
    // the copy alone gives the same posts.
    let west = dir.path().join("west");
    ok(
        &d,
        "multi-region-storage.yaml",
        &[format!("to=file://{}", west.display())],
    );
    let from_west =
        Drkit::local(BIN, &west).with_env([("PGPASSWORD", dr_testkit::PASSWORD.to_owned())]);
    from_west.json(&[
        "restore",
        &good,
        "--to",
        &format!("{server}/blog_from_west"),
    ]);
    assert_eq!(
        pg.psql("blog_from_west", "SELECT count(*) FROM blog_post"),
        "35"
    );
    assert_eq!(
        d.json(&["snapshots"]),
        from_west.json(&["snapshots"]),
        "every snapshot copied"
    );
}

/// The CNAME of `name` in zone `zone`, read with a separate client.
async fn cname(r53: &aws_sdk_route53::Client, zone: &str, name: &str) -> Option<String> {
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    sets.resource_record_sets()
        .iter()
        .find(|r| r.name() == format!("{name}."))
        .and_then(|r| r.resource_records().first().map(|v| v.value().to_owned()))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn backends(api: &K8sTestApi) -> Value {
    api.object("networking.k8s.io/v1", "ingresses", NS, "main-ingress")
        .map_or(Value::Null, |i| {
            i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"].clone()
        })
}

#[test]
#[allow(clippy::too_many_lines)] // a bad release, maintenance, then three losses, each recovered and read back
fn the_environment_comes_back_from_a_bad_release_a_lost_namespace_a_lost_cluster_and_lost_dns() {
    use dr_testkit::k8s::kubectl;
    let Some(moto) = Moto::start() else { return };
    let Some(pg) = PgCluster::start() else { return };
    blog(&pg, 20, 30);
    let dir = tempfile::tempdir().unwrap();
    let site = Monolith::start(dir.path(), &pg);
    let new_cluster = K8sTestApi::start();
    dr_testkit::k8s::write_kubeconfig(
        &site.kubeconfig,
        &[
            (&site.api, "production"),
            (&new_cluster, "fullstack-prod-2"),
        ],
    );
    let kc = site.kubeconfig.as_path();
    let api = &site.api;
    api.create(deployment(NS, "nextjs-web", 3, "blog-web:17"));
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "yourapp-tls", "namespace": NS}, "stringData": {"tls.crt": "-----BEGIN CERTIFICATE-----\nMIIBseed000\n-----END CERTIFICATE-----\n", "tls.key": "-----BEGIN PRIVATE KEY-----\nMIIEseed000key\n-----END PRIVATE KEY-----\n"}}));
    api.create(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "main-ingress", "namespace": NS},
        "spec": {"rules": [{"host": "yourapp.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "django-api-service", "port": {"number": 8000}}}}]}}]},
    }));
    // What the configuration backup takes besides the cluster: manifests, code, assets.
    let infra = dir.path().join("infrastructure");
    write(
        &infra.join("k8s/production/web.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nextjs-web\n  labels: {app: nextjs-web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: nextjs-web}}\n  template:\n    metadata: {labels: {app: nextjs-web}}\n    spec: {containers: [{name: app, image: \"blog-web:17\"}]}\n",
    );
    let git = dir.path().join("code");
    write(&git.join("manage.py"), "print('blog')\n");
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &[
            "-c",
            "user.email=ci@example.com",
            "-c",
            "user.name=ci",
            "commit",
            "-qm",
            "blog",
        ],
    ] {
        assert!(std::process::Command::new("git")
            .args(args)
            .current_dir(&git)
            .status()
            .unwrap()
            .success());
    }
    let assets = dir.path().join("static");
    write(&assets.join("css/site.css"), "body { color: #333 }\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (r53, zone) = rt.block_on(async {
        let sdk = moto.aws("us-east-1").load().await.unwrap();
        let r53 = aws_sdk_route53::Client::new(&sdk);
        let zone = r53
            .create_hosted_zone()
            .name("yourapp.com")
            .caller_reference("seed-000")
            .send()
            .await
            .unwrap()
            .hosted_zone()
            .unwrap()
            .id()
            .to_owned();
        (r53, zone)
    });
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env(moto.env())
        .with_env([
            ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
            ("KUBECONFIG", site.kubeconfig.display().to_string()),
        ]);
    d.json(&["repo", "init"]);
    d.json(&[
        "dns",
        "set",
        "--zone",
        "yourapp.com",
        "--name",
        "www.yourapp.com",
        "lb-1.elb.example.net",
    ]);
    let server = format!("postgres://postgres@127.0.0.1:{}", pg.port());
    d.json(&["backup", &format!("{server}/fullstack_blog")]);

    // Configuration backups: every kind of state, each a snapshot.
    ok(
        &d,
        "configuration-backup.yaml",
        &[
            format!("infrastructure={}", infra.display()),
            format!("git={}", git.display()),
            format!("assets={}", assets.display()),
        ],
    );
    let kinds: Vec<String> = d
        .json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect();
    for kind in ["pg-logical", "k8s", "dns", "files", "git"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }

    // A bad release, rolled back.
    let health = site.health();
    kubectl(
        kc,
        &[
            "-n",
            NS,
            "set",
            "image",
            "deployment/django-api",
            "app=blog-api:42",
        ],
    )
    .unwrap();
    let undone = ok(
        &d,
        "rolling-back-deployment.yaml",
        &[format!("health={health}"), "verify_for=5s".into()],
    );
    let image = |api: &K8sTestApi, name: &str| {
        api.object("apps/v1", "deployments", NS, name).unwrap()["spec"]["template"]["spec"]
            ["containers"][0]["image"]
            .clone()
    };
    assert_eq!(image(api, "django-api"), "blog-api:41");
    assert_eq!(
        dr_testkit::step(&undone, "undo")["outputs"]["image_before"],
        "blog-api:42"
    );

    // Maintenance mode on, then off: the Ingress serves the page while the apps are down.
    ok(&d, "maintenance-mode.yaml", &["state=on".into()]);
    assert_eq!(backends(api), "drkit-maintenance");
    assert_eq!(site.ready("nextjs-web"), json!(0));
    assert_eq!(request("GET", &health, None).0, 503, "the API is down");
    ok(&d, "maintenance-mode.yaml", &["state=off".into()]);
    assert_eq!(backends(api), "django-api-service");
    assert_eq!(
        (site.ready("django-api"), site.ready("nextjs-web")),
        (json!(3), json!(3))
    );
    assert_eq!(request("GET", &health, None).0, 200);

    // Network recovery: the record repointed by mistake, the Ingress and the TLS Secret gone.
    d.json(&[
        "dns",
        "set",
        "--zone",
        "yourapp.com",
        "--name",
        "www.yourapp.com",
        "wrong.example.net",
    ]);
    kubectl(kc, &["-n", NS, "delete", "ingress", "main-ingress"]).unwrap();
    kubectl(kc, &["-n", NS, "delete", "secret", "yourapp-tls"]).unwrap();
    ok(&d, "network-recovery.yaml", &[]);
    assert_eq!(
        rt.block_on(cname(&r53, &zone, "www.yourapp.com"))
            .as_deref(),
        Some("lb-1.elb.example.net")
    );
    assert_eq!(backends(api), "django-api-service");
    let tls = api.object("v1", "secrets", NS, "yourapp-tls").unwrap();
    assert_eq!(tls["type"], "kubernetes.io/tls");
    assert!(tls["data"]["tls.key"]
        .as_str()
        .is_some_and(|k| !k.is_empty()));

    // Full environment recovery: the namespace and the database are gone.
    kubectl(kc, &["delete", "namespace", NS]).unwrap();
    pg.psql("postgres", "DROP DATABASE fullstack_blog WITH (FORCE)");
    assert_eq!(request("GET", &health, None).0, 503);
    let env_vars = vec![
        format!("server={server}"),
        format!("manifests={}", infra.join("k8s/production").display()),
        format!("health={health}"),
        "verify_for=5s".to_owned(),
    ];
    ok(&d, "full-environment-recovery.yaml", &env_vars);
    let (status, doc) = request("GET", &health, None);
    assert_eq!((status, doc["rows"].clone()), (200, json!(30)), "{doc}");
    assert_eq!(
        (site.ready("django-api"), site.ready("nextjs-web")),
        (json!(3), json!(3))
    );

    // Cluster recovery: a new cluster gets the namespace and the applications; its app
    // finds the database through the restored ConfigMap.
    let dr_app = TestApp::start(AppOptions {
        objects: Some(new_cluster.objects_handle()),
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
    ok(
        &d,
        "cluster-recovery.yaml",
        &[
            "create=true".into(),
            "context=fullstack-prod-2".into(),
            format!("manifests={}", infra.join("k8s").display()),
        ],
    );
    let (status, doc) = request("GET", &format!("{}/health", dr_app.url()), None);
    assert_eq!((status, doc["rows"].clone()), (200, json!(30)), "{doc}");
    assert_eq!(image(&new_cluster, "nextjs-web"), "blog-web:17");
    assert!(new_cluster
        .object("v1", "secrets", NS, "yourapp-tls")
        .is_some());
}

#[test]
#[allow(clippy::too_many_lines)] // the failover read back, then who heard what
fn the_manual_failover_moves_traffic_and_tells_people_by_severity_as_it_goes() {
    let Some(moto) = Moto::start() else { return };
    let Some(pg) = PgCluster::start() else { return };
    blog(&pg, 20, 30);
    let dir = tempfile::tempdir().unwrap();
    let backup = Monolith::start(dir.path(), &pg);
    backup
        .api
        .write_kubeconfig(&backup.kubeconfig, "backup-cluster");
    for name in ["django-api", "celery-worker"] {
        dr_testkit::k8s::kubectl(
            &backup.kubeconfig,
            &[
                "-n",
                NS,
                "scale",
                &format!("deployment/{name}"),
                "--replicas=0",
            ],
        )
        .unwrap();
    }
    backup
        .api
        .create(deployment(NS, "nextjs-web", 0, "blog-web:17"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(moto.failover_pair(
        "yourapp.com",
        "api.yourapp.com",
        ("us-east-1", "api-use1.yourapp.com"),
        ("us-west-2", "api-usw2.yourapp.com"),
    ));
    let rx = rt.block_on(dr_testkit::Receiver::start());
    let secrets = [
        (
            "INCIDENTS_SLACK_WEBHOOK",
            format!("{}/incidents/T0SEED/B0SEED/slack-secret-0000", rx.url()),
        ),
        (
            "STAKEHOLDERS_SLACK_WEBHOOK",
            format!("{}/stakeholders/T0SEED/B0SEED/slack-secret-0001", rx.url()),
        ),
        (
            "MANAGEMENT_WEBHOOK",
            format!("{}/management/hook-secret-0002", rx.url()),
        ),
        (
            "TECH_TEAM_WEBHOOK",
            format!("{}/tech/hook-secret-0003", rx.url()),
        ),
        (
            "STATUSPAGE_API_KEY",
            "statuspage-key-secret-0004".to_owned(),
        ),
    ];
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env(moto.env())
        .with_env(secrets.clone())
        .with_env([("KUBECONFIG", backup.kubeconfig.display().to_string())]);
    d.json(&["repo", "init"]);
    let health = backup.health();
    assert_eq!(
        request("GET", &health, None).0,
        503,
        "the backup region is scaled to zero"
    );
    let failover = |more: &[String]| {
        let mut vars = vec![
            "reason=us-east-1 outage".to_owned(),
            format!("health={health}"),
            "verify_for=5s".to_owned(),
            "statuspage_page=blog".to_owned(),
            format!("statuspage_api={}/sp", rx.url()),
        ];
        vars.extend_from_slice(more);
        vars
    };
    let out = d.run_book(&book("manual-failover.yaml"), &failover(&[]));
    let shown = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");

    // Traffic follows the backup region's record; its apps are up and healthy.
    rt.block_on(async {
        let primary = moto.failover_primary().await;
        assert_eq!(primary.as_deref(), Some("us-west-2"));
    });
    assert_eq!(
        (backup.ready("django-api"), backup.ready("nextjs-web")),
        (json!(3), json!(3))
    );
    assert_eq!(request("GET", &health, None).0, 200);

    // Who heard what: the incident channel everything with the progress, the
    // stakeholders the critical news and the end, the team
    // every message, the status page an incident opened, updated and resolved.
    let heard = |prefix: &str| -> Vec<dr_testkit::Received> {
        rx.received()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    };
    let stakeholders: Vec<String> = heard("/stakeholders")
        .iter()
        .map(|r| r.body["text"].to_string())
        .collect();
    assert!(
        stakeholders
            .iter()
            .any(|t| t.contains("CRITICAL: failing over from us-east-1 to us-west-2")),
        "{stakeholders:?}"
    );
    let incidents: Vec<String> = heard("/incidents")
        .iter()
        .map(|r| r.body["text"].to_string())
        .collect();
    assert!(
        incidents.iter().any(|t| t.contains("% complete")),
        "progress updates: {incidents:?}"
    );
    assert!(
        incidents.iter().any(|t| t.contains("HIGH: serving")),
        "{incidents:?}"
    );
    assert!(
        !stakeholders.iter().any(|t| t.contains("HIGH: serving")),
        "high is not for stakeholders: {stakeholders:?}"
    );
    let tech: Vec<String> = heard("/tech")
        .iter()
        .map(|r| r.body["message"].to_string())
        .collect();
    assert!(
        tech.iter()
            .any(|t| t.contains("HIGH: serving from us-west-2")),
        "{tech:?}"
    );
    let sp = heard("/sp");
    assert_eq!(
        (sp[0].method.as_str(), sp[0].path.as_str()),
        ("POST", "/sp/v1/pages/blog/incidents")
    );
    assert_eq!(sp[0].body["incident"]["status"], "investigating");
    assert!(
        sp.iter()
            .any(|r| r.body["incident"]["status"] == "monitoring"),
        "{sp:?}"
    );
    assert_eq!(sp.last().unwrap().body["incident"]["status"], "resolved");

    // Stakeholder notification by severity: medium reaches the team only.
    let before = (
        heard("/stakeholders").len(),
        heard("/management").len(),
        heard("/tech").len(),
    );
    let said = d.run_book(
        &book("stakeholder-notification.yaml"),
        &[
            "severity=medium".into(),
            "description=search is slow".into(),
        ],
    );
    assert_eq!(said.status.code(), Some(0), "{}", printed(&said));
    assert_eq!(
        (
            heard("/stakeholders").len(),
            heard("/management").len(),
            heard("/tech").len()
        ),
        (before.0, before.1, before.2 + 1)
    );
    let said = d.run_book(
        &book("stakeholder-notification.yaml"),
        &[
            "severity=critical".into(),
            "description=the site is down".into(),
        ],
    );
    assert_eq!(said.status.code(), Some(0), "{}", printed(&said));
    assert_eq!(
        (
            heard("/stakeholders").len(),
            heard("/management").len(),
            heard("/tech").len()
        ),
        (before.0 + 1, before.1 + 1, before.2 + 2)
    );

    // No webhook URL or key in anything printed or stored.
    let stored = dr_testkit::files_under(&dir.path().join("repo"));
    for (_, secret) in &secrets {
        let needle = secret.rsplit('/').next().unwrap();
        assert!(!shown.contains(needle), "{needle} printed");
        assert!(
            !stored.iter().any(|(_, b)| dr_testkit::holds(b, needle)),
            "{needle} stored"
        );
    }
}

#[test]
#[allow(clippy::too_many_lines)] // the drill, its report, its metrics line and its post-incident draft
fn the_monthly_dr_test_restores_a_throwaway_environment_and_reports_its_rto_and_rpo() {
    let Some(pg) = PgCluster::start() else { return };
    blog(&pg, 20, 30);
    let dir = tempfile::tempdir().unwrap();
    let site = Monolith::start(dir.path(), &pg);
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env([
        ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
        ("KUBECONFIG", site.kubeconfig.display().to_string()),
    ]);
    d.json(&["repo", "init"]);
    let server = format!("postgres://postgres@127.0.0.1:{}", pg.port());
    d.json(&["backup", &format!("{server}/fullstack_blog")]);
    d.json(&["k8s", "-n", NS, "export"]);
    // The throwaway environment's app: the namespace the drill names after today, its
    // ConfigMap from the production export, the throwaway database.
    let today = String::from_utf8(
        std::process::Command::new("date")
            .args(["-u", "+%Y%m%d"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let test_ns = format!("dr-test-{}", today.trim());
    let app = TestApp::start(AppOptions {
        objects: Some(site.api.objects_handle()),
        namespace: test_ns.clone(),
        source: Source::ConfigMap {
            name: "django-config".into(),
            key: "DATABASE_HOST".into(),
        },
        dsn: format!("postgres://postgres:{}@{{}}/dr_test", dr_testkit::PASSWORD),
        deployment: Some("django-api".into()),
        table: "blog_post".into(),
        stopped_when: None,
    });
    let csv = dir.path().join("dr-metrics.csv");
    let html = dir.path().join("dr-report.html");
    let out = d.run(&[
        "--json",
        "drill",
        &book("monthly-dr-test.yaml"),
        "--var",
        &format!("server={server}"),
        "--var",
        &format!("health={}/health", app.url()),
        "--var",
        "verify_for=10s",
        "--metrics-csv",
        csv.to_str().unwrap(),
        "--report-html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (rto, rpo) = (&report["rto"], &report["rpo"]);
    eprintln!(
        "monthly DR test: RTO {} s, RPO {} s",
        rto["achieved_seconds"], rpo["achieved_seconds"]
    );
    assert_eq!(
        (rto["verdict"].clone(), rpo["verdict"].clone()),
        (json!("met"), json!("met")),
        "{report}"
    );
    assert!(
        rpo["achieved_seconds"].as_f64().unwrap() >= 0.5,
        "the writes after the nightly backup are lost: {rpo}"
    );
    let canary = &report["drill"]["canary"];
    assert!(canary["lost"].as_u64().unwrap() >= 3, "{canary}");
    // The throwaway environment is gone; production was never touched.
    assert!(
        site.api.object("v1", "namespaces", "", &test_ns).is_none(),
        "{test_ns} deleted"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'dr_test'"
        ),
        "0"
    );
    assert_eq!(site.ready("django-api"), json!(3));
    assert_eq!(
        pg.psql("fullstack_blog", "SELECT count(*) FROM blog_post"),
        "30"
    );

    // The figures kept: one CSV line with the run's RTO and RPO, the HTML page, and a
    // post-incident draft from the same journal.
    let run = report["run"].as_str().unwrap();
    let lines: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines[0],
        "time,runbook,kind,run,outcome,rto_seconds,rpo_seconds,objectives_met"
    );
    let fields: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(
        (fields[1], fields[3], fields[4], fields[7]),
        ("monthly-dr-test", run, "succeeded", "true"),
        "{lines:?}"
    );
    let csv_rto: f64 = fields[5].parse().unwrap();
    assert!(
        (csv_rto - rto["achieved_seconds"].as_f64().unwrap()).abs() < 0.01,
        "{lines:?}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("monthly-dr-test") && page.contains("<svg"),
        "the HTML report"
    );
    let draft = d.run(&["report", run, "--format", "postmortem"]);
    let draft = String::from_utf8_lossy(&draft.stdout);
    for part in ["monthly-dr-test", "Timeline", "database-lost", "healthy"] {
        assert!(
            draft.contains(part),
            "{part} in the post-incident draft:\n{draft}"
        );
    }
}

/// A recovered server, stopped when dropped.
struct Stopped(PathBuf);

impl Drop for Stopped {
    fn drop(&mut self) {
        let bindir = dr_pg::TempCluster::server_bindir().unwrap();
        let pg_ctl = format!(
            "{} -D {} -m immediate -w stop",
            bindir.join("pg_ctl").display(),
            self.0.display()
        );
        let root = std::fs::metadata("/proc/self")
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
        let cmd = if root {
            format!("runuser -u postgres -- {pg_ctl}")
        } else {
            pg_ctl
        };
        let _ = std::process::Command::new("sh").args(["-c", &cmd]).output();
    }
}

#[test]
#[allow(clippy::too_many_lines)] // archiving, the mistake, the recovery, read back
fn point_in_time_recovery_brings_the_posts_back_as_they_were_before_the_mistake() {
    use dr_testkit::pitr::{archiving_cluster, switch_and_wait, Setup};
    let Some(Setup { drkit, pg, dir }) = archiving_cluster(BIN) else {
        return;
    };
    blog(&pg, 20, 30);
    drkit.json(&["basebackup", &pg.dsn("postgres")]);
    pg.psql(
        "fullstack_blog",
        "INSERT INTO blog_post SELECT g, 1, 'post ' || g FROM generate_series(31, 40) g",
    );
    switch_and_wait(&pg);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let target_time = pg.psql(
        "postgres",
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The mistake: every post deleted.
    pg.psql("fullstack_blog", "DELETE FROM blog_post");
    switch_and_wait(&pg);

    let api = K8sTestApi::start();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "production");
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.create(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "postgres", "namespace": NS},
        "spec": {"replicas": 1, "serviceName": "postgres", "selector": {"matchLabels": {"app": "postgres"}},
                 "template": {"metadata": {"labels": {"app": "postgres"}}, "spec": {"containers": [{"name": "postgres", "image": "postgres:15-alpine"}]}}},
    }));
    let port = dr_testkit::free_port();
    let pgdata = dir.path().join("recovered");
    let _stop = Stopped(pgdata.clone());
    let d = drkit.with_env([("KUBECONFIG", kubeconfig.display().to_string())]);
    let out = d.run_book(
        &book("point-in-time-recovery.yaml"),
        &[
            format!("target_time={target_time}"),
            format!("namespace={NS}"),
            format!("pgdata={}", pgdata.display()),
            format!("port={port}"),
            "start_here=true".into(),
            format!(
                "check_url=postgres://postgres:{}@127.0.0.1:{port}/fullstack_blog",
                dr_testkit::PASSWORD
            ),
            "checks=SELECT count(*) = 40 FROM blog_post".into(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        printed(&out),
        std::fs::read_to_string(pgdata.join("drkit-recovery.log")).unwrap_or_default()
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "point-in-time recovery: {:.2} s",
        run["seconds"].as_f64().unwrap_or(0.0)
    );
    assert_eq!(
        dr_testkit::step(&run, "recover")["outputs"]["promoted"],
        true
    );
    let check = dr_testkit::step(&run, "check");
    assert_eq!(
        (
            check["state"].clone(),
            check["outputs"]["checks"][0]["ok"].clone()
        ),
        (json!("succeeded"), json!(true)),
        "the 40 posts of before the mistake: {check}"
    );
    assert_eq!(dr_testkit::step(&run, "stop")["outputs"]["previous"], 1);
    assert_eq!(
        api.object("apps/v1", "statefulsets", NS, "postgres")
            .unwrap()["spec"]["replicas"],
        1
    );
}
