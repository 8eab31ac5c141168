//! Seed 003 (optimal_build: EKS, RDS, Helm): the runbooks of
//! `examples/runbooks/optimal-build/`, run against PostgreSQL, moto (RDS, Route 53,
//! Secrets Manager, S3), the Kubernetes test API and the test app, which finds its
//! database through `DATABASE_HOST` in the backend Deployment's env.

use std::path::Path;

use dr_testkit::app::{request, AppOptions, Source, TestApp};
use dr_testkit::k8s::{kubectl, K8sTestApi};
use dr_testkit::{stderr, Drkit, Moto, PgCluster};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");
const NS: &str = "optimal-build";
const BACKEND: &str = "optimal-build-backend";

fn book(name: &str) -> String {
    format!(
        "{}/../examples/runbooks/optimal-build/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn printed(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

fn ok(d: &Drkit, args: &[&str]) -> Value {
    let out = d.run(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", printed(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_args<'a>(name: &'a str, vars: &'a [String]) -> Vec<String> {
    let mut args = vec!["--json".to_owned(), "run".to_owned(), book(name)];
    for v in vars {
        args.extend(["--var".to_owned(), v.clone()]);
    }
    args
}

fn run(d: &Drkit, name: &str, vars: &[String], more: &[&str]) -> std::process::Output {
    let mut args = run_args(name, vars);
    args.extend(more.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d.run(&args);
    if let Ok(doc) = serde_json::from_slice::<Value>(&out.stdout) {
        eprintln!("{name}: {:.2} s", doc["seconds"].as_f64().unwrap_or(0.0));
    }
    out
}

/// optimal_build's data: projects with their update times, users.
fn optimal_build(pg: &PgCluster) {
    pg.psql("postgres", "CREATE DATABASE optimal_build");
    pg.psql(
        "optimal_build",
        "CREATE TABLE users (id int PRIMARY KEY, email text); \
         INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 10) g; \
         CREATE TABLE projects (id int PRIMARY KEY, name text, updated_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO projects SELECT g, 'project ' || g, now() - interval '1 day' FROM generate_series(1, 40) g",
    );
}

/// The backend Deployment with its DATABASE_HOST.
fn backend(replicas: i64, image: &str, host: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": BACKEND, "namespace": NS, "labels": {"app": BACKEND}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": BACKEND}},
            "template": {"metadata": {"labels": {"app": BACKEND}}, "spec": {"containers": [
                {"name": "backend", "image": image, "env": [{"name": "DATABASE_HOST", "value": host}]}
            ]}},
        },
    })
}

/// A cluster with the optimal-build namespace, and the app answering for its backend.
fn cluster(kubeconfig: &Path, context: &str) -> (K8sTestApi, TestApp) {
    let api = K8sTestApi::start();
    api.write_kubeconfig(kubeconfig, context);
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let app = TestApp::start(AppOptions {
        objects: Some(api.objects_handle()),
        namespace: NS.into(),
        source: Source::DeploymentEnv {
            name: BACKEND.into(),
            var: "DATABASE_HOST".into(),
        },
        dsn: format!(
            "postgres://postgres:{}@{{}}/optimal_build",
            dr_testkit::PASSWORD
        ),
        deployment: Some(BACKEND.into()),
        table: "projects".into(),
        stopped_when: None,
    });
    (api, app)
}

fn env_of(api: &K8sTestApi, var: &str) -> Value {
    let d = api.object("apps/v1", "deployments", NS, BACKEND).unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == var)
        .map_or(Value::Null, |e| e["value"].clone())
}

#[test]
#[allow(clippy::too_many_lines)] // four procedures on one backend and database, each read back
fn the_backend_rolls_back_and_its_database_is_restored_swapped_and_tested() {
    let Some(pg) = PgCluster::start() else { return };
    optimal_build(&pg);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let (api, app) = cluster(&kubeconfig, "production");
    let host = format!("127.0.0.1:{}", pg.port());
    api.create(backend(3, "optimal-build:1", &host));
    for image in ["optimal-build:2", "optimal-build:3"] {
        kubectl(
            &kubeconfig,
            &[
                "-n",
                NS,
                "set",
                "image",
                &format!("deployment/{BACKEND}"),
                &format!("backend={image}"),
            ],
        )
        .unwrap();
    }
    let health = format!("{}/health", app.url());
    let repo = dir.path().join("repo");
    let d = Drkit::local(BIN, &repo).with_env([
        ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
    ]);
    d.json(&["repo", "init"]);
    d.json(&[
        "backup",
        &format!("postgres://postgres@{host}/optimal_build"),
    ]);

    // Procedure 1: back to revision 1, past the one before.
    let out = run(
        &d,
        "application-rollback.yaml",
        &[
            "revision=1".into(),
            format!("health={health}"),
            "verify_for=5s".into(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let image = api.object("apps/v1", "deployments", NS, BACKEND).unwrap()["spec"]["template"]
        ["spec"]["containers"][0]["image"]
        .clone();
    assert_eq!(image, "optimal-build:1");

    // Procedure 3: half the projects lost; the backup restored beside the live database,
    // verified, swapped in once the window is approved.
    pg.psql("optimal_build", "DELETE FROM projects WHERE id > 20");
    assert_eq!(request("GET", &health, None).1["rows"], 20);
    let vars = [
        format!("server=postgres://postgres@{host}"),
        format!("health={health}"),
        "verify_for=5s".to_owned(),
    ];
    let waiting = run(&d, "full-database-restore.yaml", &vars, &[]);
    let doc: Value = serde_json::from_slice(&waiting.stdout).unwrap();
    assert_eq!(
        dr_testkit::step(&doc, "window")["state"],
        "waiting",
        "{}",
        printed(&waiting)
    );
    assert_eq!(
        request("GET", &health, None).1["rows"],
        20,
        "nothing swapped before the window"
    );
    assert_eq!(
        pg.psql("optimal_build_restored", "SELECT count(*) FROM projects"),
        "40"
    );
    let id = doc["id"].as_str().unwrap();
    let done = ok(
        &d,
        &["--json", "run", "--resume", id, "--approve", "window"],
    );
    assert_eq!(done["outcome"], "succeeded", "{done}");
    let (status, body) = request("GET", &health, None);
    assert_eq!((status, body["rows"].clone()), (200, json!(40)), "{body}");
    assert_eq!(
        pg.psql("optimal_build_old", "SELECT count(*) FROM projects"),
        "20",
        "the old one is kept"
    );
    let restarted = api.object("apps/v1", "deployments", NS, BACKEND).unwrap();
    assert!(
        restarted["spec"]["template"]["metadata"]["annotations"]
            ["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "the backend was restarted: {restarted}"
    );

    // Monthly test: a random backup of the last 30 days restored, checked, dropped.
    d.json(&[
        "backup",
        &format!("postgres://postgres@{host}/optimal_build"),
    ]);
    let out = run(
        &d,
        "monthly-backup-restore-test.yaml",
        &[format!("server=postgres://postgres@{host}")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dr_testkit::step(&doc, "check")["state"], "succeeded");
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'optimal_build_restore_test'"
        ),
        "0"
    );

    // Backup integrity: recent and intact; a damaged chunk fails it.
    let out = run(&d, "backup-integrity-check.yaml", &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let mut chunks: Vec<_> = walk(&repo.join("chunks"));
    chunks.sort_by_key(|f| std::fs::metadata(f).unwrap().len());
    let victim = chunks.last().unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(victim, bytes).unwrap();
    let out = run(&d, "backup-integrity-check.yaml", &[], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", printed(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dr_testkit::step(&doc, "intact")["state"], "failed");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The backend's manifest as helm would install it, applied with kubectl.
fn manifest(dir: &Path, name: &str, host: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        serde_json::to_string(&backend(3, "optimal-build:7", host)).unwrap(),
    )
    .unwrap();
    path
}

#[test]
#[allow(clippy::too_many_lines)] // three procedures across RDS, Secrets Manager, Route 53 and three clusters
fn pitr_to_a_new_instance_cluster_recovery_and_cross_region_failover() {
    let Some(moto) = Moto::start() else { return };
    let Some(primary) = PgCluster::start() else {
        return;
    };
    optimal_build(&primary);
    let replica = primary.start_replica();
    let Some(recovery) = PgCluster::start() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rds, r53) = rt.block_on(async {
        let rds = moto
            .rds_primary_with_replica("optimal-build-prod", "optimal-build-dr-replica")
            .await;
        let r53 = moto
            .failover_pair(
                "optimalbuild.com",
                "app.optimalbuild.com",
                ("primary", "app-use1.optimalbuild.com"),
                ("dr", "app-usw2.optimalbuild.com"),
            )
            .await;
        (rds, r53)
    });
    let at = |pg: &PgCluster| format!("127.0.0.1:{}", pg.port());
    let secret_url = format!(
        "postgres://postgres:{}@{}/optimal_build",
        dr_testkit::PASSWORD,
        at(&recovery)
    );
    let python = dr_testkit::venv().join("bin/python");
    let made = std::process::Command::new(python)
        .args(["-c", &format!(
            "import boto3\nsm = boto3.client('secretsmanager', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\nsm.create_secret(Name='optimal-build/prod/database', SecretString='{secret_url}')\n",
            moto.endpoint()
        )])
        .status()
        .unwrap();
    assert!(made.success());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let (prod, prod_app) = cluster(&kubeconfig, "production");
    let (new, new_app) = cluster(&dir.path().join("new.kubeconfig"), "x");
    let (dr, dr_app) = cluster(&dir.path().join("dr.kubeconfig"), "x");
    dr_testkit::k8s::write_kubeconfig(
        &kubeconfig,
        &[
            (&prod, "production"),
            (&new, "optimal-build-prod-2"),
            (&dr, "optimal-build-dr-cluster"),
        ],
    );
    prod.create(backend(3, "optimal-build:7", &at(&primary)));
    let hook = rt.block_on(dr_testkit::Receiver::start());
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env(moto.env())
        .with_env([
            ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
            ("DATABASE_PASSWORD", dr_testkit::PASSWORD.to_owned()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("INCIDENT_WEBHOOK", format!("{}/incident", hook.url())),
        ]);
    d.json(&["repo", "init"]);
    d.json(&[
        "backup",
        &format!("postgres://postgres@{}/optimal_build", at(&primary)),
    ]);

    // Procedure 2: every project renamed by mistake after the backup; restored to a
    // moment before it as a new instance, verified, the backend pointed at it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let restore_time = primary.psql(
        "postgres",
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    primary.psql(
        "optimal_build",
        "UPDATE projects SET name = 'oops', updated_at = now()",
    );
    let health = format!("{}/health", prod_app.url());
    let out = run(
        &d,
        "database-pitr.yaml",
        &[
            format!("restore_time={restore_time}"),
            "db_user=postgres".into(),
            format!("db_host={}", at(&recovery)),
            format!("data_plane={}", recovery.dsn("optimal_build")),
            format!("health={health}"),
            "verify_for=5s".into(),
        ],
        &[],
    );
    let shown = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert_eq!(env_of(&prod, "DATABASE_HOST"), at(&recovery).as_str());
    let (status, body) = request("GET", &health, None);
    assert_eq!((status, body["rows"].clone()), (200, json!(40)), "{body}");
    assert_eq!(
        recovery.psql(
            "optimal_build",
            "SELECT count(*) FROM projects WHERE name = 'oops'"
        ),
        "0"
    );
    rt.block_on(async {
        let seen = rds
            .describe_db_instances()
            .db_instance_identifier("optimal-build-prod-recovery")
            .send()
            .await
            .unwrap();
        assert_eq!(
            seen.db_instances()[0].db_instance_status(),
            Some("available")
        );
    });

    // Procedure 4: a new cluster; its Secret from Secrets Manager, the app installed and
    // pointed at the database, DNS to its load balancer.
    let installed = manifest(dir.path(), "backend.json", "127.0.0.1:1");
    let out = run(
        &d,
        "cluster-recovery.yaml",
        &[
            "create=true".into(),
            format!(
                "deploy=kubectl --context optimal-build-prod-2 -n {NS} apply -f {}",
                installed.display()
            ),
            format!("rds_endpoint={}", at(&recovery)),
            "record=www.optimalbuild.com".into(),
            "ingress=lb-new.elb.example.net".into(),
            format!("health={}/health", new_app.url()),
            "verify_for=5s".into(),
        ],
        &[],
    );
    let shown = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let secret = new.object("v1", "secrets", NS, "app-secrets").unwrap();
    let decoded = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            secret["data"]["DATABASE_URL"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded, secret_url);
    assert!(
        !shown.contains(&secret_url),
        "the Secrets Manager value is never printed"
    );
    assert_eq!(
        request("GET", &format!("{}/health", new_app.url()), None).1["rows"],
        40
    );
    rt.block_on(async {
        let zone = r53.list_hosted_zones().send().await.unwrap().hosted_zones()[0]
            .id()
            .to_owned();
        let sets = r53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .unwrap();
        let www = sets
            .resource_record_sets()
            .iter()
            .find(|r| r.name() == "www.optimalbuild.com.")
            .unwrap();
        assert_eq!(www.resource_records()[0].value(), "lb-new.elb.example.net");
    });

    // Procedure 5: the DR replica promoted, the app installed in the DR cluster (its
    // values point at the replica), DNS failed over, stakeholders told.
    let dr_manifest = manifest(dir.path(), "backend-dr.json", &at(&replica));
    let out = run(
        &d,
        "cross-region-failover.yaml",
        &[
            "dr_region=us-east-1".into(),
            format!("data_plane={}", replica.dsn("postgres")),
            format!(
                "deploy=kubectl --context optimal-build-dr-cluster -n {NS} apply -f {}",
                dr_manifest.display()
            ),
            format!("health={}/health", dr_app.url()),
            "verify_for=5s".into(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let (status, body) = request("GET", &format!("{}/health", dr_app.url()), None);
    assert_eq!((status, body["rows"].clone()), (200, json!(40)), "{body}");
    replica.psql(
        "optimal_build",
        "INSERT INTO projects (id, name) VALUES (1000, 'after the failover')",
    );
    rt.block_on(async {
        let seen = rds
            .describe_db_instances()
            .db_instance_identifier("optimal-build-dr-replica")
            .send()
            .await
            .unwrap();
        assert_eq!(
            seen.db_instances()[0].read_replica_source_db_instance_identifier(),
            None
        );
        let primary_set = moto.failover_primary().await;
        assert_eq!(primary_set.as_deref(), Some("dr"));
    });
    assert!(
        hook.received()
            .iter()
            .any(|r| r.body.to_string().contains("Region failover completed")),
        "stakeholders notified"
    );
}

#[test]
fn the_namespace_is_exported_into_an_s3_repository() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(dr_testkit::s3_client(&moto.aws("us-east-1")));
    rt.block_on(
        s3.create_bucket()
            .bucket("optimal-build-backups-prod")
            .send(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let (api, _app) = cluster(&kubeconfig, "production");
    api.create(backend(3, "optimal-build:7", "db:5432"));
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets", "namespace": NS}, "stringData": {"DATABASE_URL": "postgres://admin:export-secret-9911@db/optimal_build"}}));
    api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "backend-config", "namespace": NS}, "data": {"LOG_LEVEL": "info"}}));
    let d = Drkit::at(BIN, "s3://optimal-build-backups-prod/kubernetes")
        .with_env(moto.env())
        .with_env([("KUBECONFIG", kubeconfig.display().to_string())]);
    d.json(&["repo", "init"]);
    let out = run(&d, "namespace-export.yaml", &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects = dr_testkit::step(&doc, "export")["outputs"]["objects"].to_string();
    for name in [BACKEND, "app-secrets", "backend-config"] {
        assert!(objects.contains(name), "{name} in {objects}");
    }
    // In the bucket, under its prefix, and the Secret's value nowhere in it in clear.
    let listed = rt
        .block_on(
            s3.list_objects_v2()
                .bucket("optimal-build-backups-prod")
                .send(),
        )
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("kubernetes/")),
        "{keys:?}"
    );
    for key in keys {
        let body = rt.block_on(async {
            s3.get_object()
                .bucket("optimal-build-backups-prod")
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
        });
        assert!(
            !dr_testkit::holds(&body, "export-secret-9911"),
            "{key} holds the Secret in clear"
        );
    }
}
