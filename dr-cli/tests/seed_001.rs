//! Seed 001 (the multi-region platform): the runbooks of `examples/runbooks/multi-region/`.
//!
//! The emergency failover (`examples/runbooks/multi-region/emergency-failover.yaml`)
//! against moto (RDS and Route 53 control planes), the Kubernetes test API and the test
//! app on a local PostgreSQL streaming replica (moto has no database behind its
//! endpoints: the runbook's `data_plane` variable promotes the local replica beside the
//! RDS promotion). What the plan's users care about: traffic follows the DR record, RDS
//! says the replica stands alone, the app's DB_HOST is the promoted database, the DR
//! Deployment is scaled up, `/health` answers from the promoted database and writes work,
//! and the on-call webhook heard FAILOVER_INITIATED then FAILOVER_SUCCESS. A wrong DB_HOST
//! makes verification fail: the run exits 3 and FAILOVER_FAILED is sent.

use dr_testkit::app::{request, AppOptions, Source, TestApp};
use dr_testkit::k8s::{deployment, K8sTestApi};
use dr_testkit::{stderr, Drkit, Moto, PgCluster, Receiver};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

fn book(name: &str) -> String {
    format!(
        "{}/../examples/runbooks/multi-region/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn printed(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// The platform's database: users the validation counts and the app serves.
fn myapp(pg: &PgCluster) {
    pg.psql("postgres", "CREATE DATABASE myapp");
    pg.psql(
        "myapp",
        "CREATE TABLE users (id serial PRIMARY KEY, name text, password text); \
         INSERT INTO users (name, password) SELECT 'user' || g, md5(g::text) FROM generate_series(1, 15) g",
    );
}

/// The app on `api` reading DB_HOST from ConfigMap app-config, serving users.
fn app_for(api: &K8sTestApi) -> TestApp {
    TestApp::start(AppOptions {
        objects: Some(api.objects_handle()),
        namespace: "default".into(),
        source: Source::ConfigMap {
            name: "app-config".into(),
            key: "DB_HOST".into(),
        },
        dsn: format!("postgres://postgres:{}@{{}}/myapp", dr_testkit::PASSWORD),
        deployment: Some("myapp-deployment".into()),
        table: "users".into(),
        stopped_when: None,
    })
}
const BOOK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/runbooks/multi-region/emergency-failover.yaml"
);

#[test]
#[allow(clippy::too_many_lines)] // one failover, each effect read back, then its mutation
fn the_emergency_failover_moves_traffic_database_and_app_to_the_dr_region() {
    let Some(moto) = Moto::start() else { return };
    let Some(primary) = PgCluster::start() else {
        return;
    };
    primary.fill_items("shop", 40);
    let replica = primary.start_replica();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rds, r53) = rt.block_on(async {
        let rds = moto
            .rds_primary_with_replica("myapp-db", "myapp-db-replica-west")
            .await;
        let r53 = moto
            .failover_pair(
                "example.com",
                "api.example.com",
                ("use1", "api-use1.example.com"),
                ("usw2", "api-usw2.example.com"),
            )
            .await;
        (rds, r53)
    });
    let hook = rt.block_on(Receiver::start());
    let api = K8sTestApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "us-west-2");
    let at = |pg: &PgCluster| format!("127.0.0.1:{}", pg.port());
    api.create(deployment("default", "myapp-deployment", 0, "myapp:7"));
    api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "default"}, "data": {"DB_HOST": at(&primary)}}));
    let app = TestApp::start(AppOptions {
        objects: Some(api.objects_handle()),
        namespace: "default".into(),
        source: Source::ConfigMap {
            name: "app-config".into(),
            key: "DB_HOST".into(),
        },
        dsn: format!("postgres://postgres:{}@{{}}/shop", dr_testkit::PASSWORD),
        deployment: Some("myapp-deployment".into()),
        table: "items".into(),
        stopped_when: None,
    });
    let health = format!("{}/health", app.url());
    assert_eq!(
        request("GET", &health, None).0,
        503,
        "the DR app is scaled to zero"
    );

    let mut d = Drkit::local(BIN, &dir.path().join("repo")).with_env(moto.env());
    d.env.extend([
        ("KUBECONFIG".to_owned(), kubeconfig.display().to_string()),
        (
            "EMERGENCY_WEBHOOK".to_owned(),
            format!("{}/emergency", hook.url()),
        ),
    ]);
    d.json(&["repo", "init"]);
    let vars = |db_host: &str| {
        [
            format!("db_host={db_host}"),
            format!("data_plane={}", replica.dsn("postgres")),
            format!("health={health}"),
            "replicas=2".to_owned(),
            "verify_for=5s".to_owned(),
            "dr_region=us-east-1".to_owned(),
            "reason=us-east-1 is down".to_owned(),
        ]
    };
    let run = |db_host: &str| d.run_book(BOOK, &vars(db_host));
    let out = run(&at(&replica));
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{printed}");
    let done: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "emergency failover: {:.2} s",
        done["seconds"].as_f64().unwrap_or(0.0)
    );

    // Traffic follows the DR record; RDS says the replica stands alone.
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
        let failover = |id: &str| {
            sets.resource_record_sets()
                .iter()
                .find(|r| r.set_identifier() == Some(id))
                .and_then(|r| r.failover().map(|f| f.as_str().to_owned()))
        };
        assert_eq!(
            failover("usw2").as_deref(),
            Some("PRIMARY"),
            "traffic goes to the DR region"
        );
        let seen = rds
            .describe_db_instances()
            .db_instance_identifier("myapp-db-replica-west")
            .send()
            .await
            .unwrap();
        assert_eq!(
            seen.db_instances()[0].read_replica_source_db_instance_identifier(),
            None,
            "promoted"
        );
    });
    // The app: repointed, scaled up, answering from the promoted database, taking writes.
    assert_eq!(
        api.object("v1", "configmaps", "default", "app-config")
            .unwrap()["data"]["DB_HOST"],
        at(&replica)
    );
    assert_eq!(
        api.object("apps/v1", "deployments", "default", "myapp-deployment")
            .unwrap()["status"]["readyReplicas"],
        2
    );
    let (status, doc) = request("GET", &health, None);
    assert_eq!((status, doc["rows"].clone()), (200, json!(40)), "{doc}");
    assert_eq!(doc["database"], format!("{}/shop", at(&replica)));
    let (status, doc) = request(
        "POST",
        &format!("{}/items", app.url()),
        Some(&json!({"sku": "after-failover"})),
    );
    assert_eq!(status, 201, "the promoted replica takes writes: {doc}");
    let told = |hook: &Receiver| -> Vec<String> {
        hook.received().iter().map(|r| r.body.to_string()).collect()
    };
    let said = told(&hook);
    let at_ = |what: &str| said.iter().position(|b| b.contains(what));
    assert!(
        at_("FAILOVER_INITIATED: us-east-1 is down").is_some(),
        "{said:?}"
    );
    assert!(
        at_("FAILOVER_SUCCESS") > at_("FAILOVER_INITIATED"),
        "{said:?}"
    );
    assert!(at_("FAILOVER_FAILED").is_none(), "{said:?}");

    // One step wrong — DB_HOST pointing nowhere — and verification fails the run.
    let out = run("127.0.0.1:1");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{printed}");
    let failed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        dr_testkit::step(&failed, "verify")["state"],
        "failed",
        "{printed}"
    );
    assert!(
        told(&hook).iter().any(|b| b.contains("FAILOVER_FAILED")),
        "{:?}",
        told(&hook)
    );
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
#[allow(clippy::too_many_lines)] // the backup script, the checklist and three recovery types, each read back
fn the_automated_backup_keeps_thirty_days_and_each_recovery_type_brings_back_its_part() {
    let Some(pg) = PgCluster::start() else { return };
    let Some(forty_days_ago) = dr_testkit::faketime_env("-40d") else {
        return;
    };
    myapp(&pg);
    let api = K8sTestApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "us-east-1");
    let host = format!("127.0.0.1:{}", pg.port());
    api.create(deployment("default", "myapp-deployment", 3, "myapp:7"));
    api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "default"}, "data": {"DB_HOST": host}}));
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets", "namespace": "default"}, "stringData": {"API_TOKEN": "seed001-token-8812"}}));
    let app = app_for(&api);
    let health = format!("{}/health", app.url());
    let data = dir.path().join("app-data");
    write(&data.join("uploads/a.txt"), "first upload\n");
    write(&data.join("reports/q3.csv"), "quarter,revenue\nq3,100\n");
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env([
        ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
    ]);
    d.json(&["repo", "init"]);
    let backup = [
        format!("database=postgres://postgres@{host}/myapp"),
        format!("app_data={}", data.display()),
    ];
    // The script's backups: one set "forty days ago", one today; the old set goes.
    let mut then = d.clone();
    then.env.extend(forty_days_ago);
    let out = then.run_book(&book("automated-backup.yaml"), &backup);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let out = d.run_book(&book("automated-backup.yaml"), &backup);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dr_testkit::step(&run, "cleanup")["outputs"]["removed"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "the database, data and configuration backups older than 30 days: {run}"
    );
    let kinds: Vec<String> = d
        .json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds.len(),
        3,
        "today's database, data and configuration: {kinds:?}"
    );

    // The monthly backup-restore test: restored in isolation, validated, recorded.
    let out = d.run_book(
        &book("dr-test-backup-restore.yaml"),
        &[format!("test_server=postgres://postgres@{host}/postgres")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let status = d.json(&["status"]);
    assert!(
        status["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["newest_verified"].is_string()),
        "{status}"
    );

    // The validation checklist passes, and fails on an empty users table.
    let validate = [
        format!("api={health}"),
        format!("app={health}"),
        format!("database=postgres://postgres@{host}/myapp"),
    ];
    let out = d.run_book(&book("validate-recovery.yaml"), &validate);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    pg.psql("myapp", "DELETE FROM users");
    std::fs::remove_dir_all(&data).unwrap();
    let out = d.run_book(&book("validate-recovery.yaml"), &validate);
    assert_eq!(out.status.code(), Some(3), "{}", printed(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dr_testkit::step(&run, "database-has-users")["state"],
        "failed"
    );

    // Data-only recovery: the users and the application data come back.
    let recover = |kind: &str, more: &[String]| {
        let mut vars = vec![
            format!("recovery_type={kind}"),
            format!("server=postgres://postgres@{host}"),
            format!("app_data={}", data.display()),
        ];
        vars.extend_from_slice(more);
        d.run_book(&book("infrastructure-recovery.yaml"), &vars)
    };
    let out = recover("data-only", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert_eq!(pg.psql("myapp", "SELECT count(*) FROM users"), "15");
    assert_eq!(
        std::fs::read_to_string(data.join("reports/q3.csv")).unwrap(),
        "quarter,revenue\nq3,100\n"
    );
    assert_eq!(request("GET", &health, None).1["rows"], 15);

    // Partial: a broken release of the app replaced by its manifest.
    let manifests = dir.path().join("k8s");
    let app_manifest =
        serde_json::to_string(&deployment("default", "myapp-deployment", 3, "myapp:7")).unwrap();
    write(
        &manifests.join("deployments/app-deployment.json"),
        &app_manifest,
    );
    dr_testkit::k8s::kubectl(
        &kubeconfig,
        &[
            "set",
            "image",
            "deployment/myapp-deployment",
            "app=myapp:broken",
        ],
    )
    .unwrap();
    let out = recover(
        "partial",
        &[format!(
            "component={}",
            manifests.join("deployments/app-deployment.json").display()
        )],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let image = |api: &K8sTestApi| {
        api.object("apps/v1", "deployments", "default", "myapp-deployment")
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
            .clone()
    };
    assert_eq!(image(&api), "myapp:7");

    // Full: the cluster's objects gone, back from their manifests after Terraform.
    write(
        &manifests.join("configmaps/app-config.json"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"}, "data": {"DB_HOST": host}}).to_string(),
    );
    write(
        &manifests.join("services/app.json"),
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "myapp"}, "spec": {"selector": {"app": "myapp-deployment"}, "ports": [{"port": 80}]}}).to_string(),
    );
    dr_testkit::k8s::kubectl(
        &kubeconfig,
        &[
            "delete",
            "deployment/myapp-deployment",
            "configmap/app-config",
        ],
    )
    .unwrap();
    assert_eq!(request("GET", &health, None).0, 503);
    let terraformed = dir.path().join("terraformed");
    let out = recover(
        "full",
        &[
            format!("terraform=touch {}", terraformed.display()),
            format!("manifests={}", manifests.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(terraformed.exists(), "terraform ran first");
    assert_eq!(request("GET", &health, None).1["rows"], 15);
    assert!(api.object("v1", "services", "default", "myapp").is_some());

    // A recovery type the script does not know is refused before anything runs.
    let out = recover("everything", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", printed(&out));
    assert!(
        printed(&out).contains("full, partial or data-only"),
        "{}",
        printed(&out)
    );
    assert!(!printed(&out).contains("seed001-token-8812"));
}

#[test]
fn the_critical_data_prefix_is_replicated_to_the_west_bucket() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let put = |bucket: &str, key: &str| rt.block_on(moto.put_object(bucket, key, key));
    rt.block_on(moto.replicated_buckets(
        "company-backups",
        "backup-bucket-west",
        "ReplicateToWest",
    ));
    // moto does not replicate: the test writes the replica as replication would; what is
    // outside critical-data/ is not replicated and not asked for.
    for key in ["critical-data/ledger.db", "critical-data/keys/kms.json"] {
        put("company-backups", key);
        put("backup-bucket-west", key);
    }
    put("company-backups", "scratch/tmp.bin");
    let dir = tempfile::tempdir().unwrap();
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env(moto.env());
    d.json(&["repo", "init"]);
    let vars = ["replica_region=us-east-1".to_owned()];
    let out = d.run_book(&book("critical-data-replication.yaml"), &vars);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    put("company-backups", "critical-data/ledger-2.db");
    let out = d.run_book(&book("critical-data-replication.yaml"), &vars);
    assert_eq!(out.status.code(), Some(3), "{}", printed(&out));
    assert!(
        printed(&out).contains("missing: ledger-2.db"),
        "{}",
        printed(&out)
    );
}

#[test]
#[allow(clippy::too_many_lines)] // two drills on one platform, each report read
fn the_failover_simulation_fails_back_and_the_full_exercise_validates_and_backs_up() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        moto.rds_primary_with_replica("myapp-db", "myapp-db-replica-west")
            .await;
        moto.failover_pair(
            "example.com",
            "api.example.com",
            ("use1", "api-use1.example.com"),
            ("usw2", "api-usw2.example.com"),
        )
        .await;
    });
    let hook = rt.block_on(Receiver::start());
    let api = K8sTestApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "us-west-2");
    api.create(deployment("default", "myapp-deployment", 0, "myapp:7"));
    api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "default"}, "data": {"DB_HOST": "127.0.0.1:1"}}));
    let app = app_for(&api);
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env(moto.env())
        .with_env([
            ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
            ("EMERGENCY_WEBHOOK", format!("{}/emergency", hook.url())),
        ]);
    d.json(&["repo", "init"]);
    let drill = |name: &str| {
        let Some(primary) = PgCluster::start() else {
            unreachable!("PostgreSQL started above")
        };
        myapp(&primary);
        let replica = primary.start_replica();
        let plain =
            |pg: &PgCluster, db: &str| format!("postgres://postgres@127.0.0.1:{}/{db}", pg.port());
        let out = d.run(&[
            "--json",
            "drill",
            &book(name),
            "--var",
            &format!("primary={}", plain(&primary, "myapp")),
            "--var",
            &format!("replica={}", plain(&replica, "myapp")),
            "--var",
            &format!("replica_server={}", plain(&replica, "postgres")),
            "--var",
            &format!("db_host=127.0.0.1:{}", replica.port()),
            "--var",
            &format!("health={}/health", app.url()),
            "--var",
            "replicas=2",
            "--var",
            "dr_region=us-east-1",
            "--var",
            "verify_for=10s",
        ]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", printed(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!(
            "{name}: RTO {} s, RPO {} s, failback {} s",
            report["rto"]["achieved_seconds"],
            report["rpo"]["achieved_seconds"],
            report["drill"]["failback_seconds"]
        );
        assert_eq!(
            (
                report["rto"]["verdict"].clone(),
                report["rpo"]["verdict"].clone()
            ),
            (json!("met"), json!("met")),
            "{report}"
        );
        (report, replica)
    };
    let primary_set = |rt: &tokio::runtime::Runtime| rt.block_on(moto.failover_primary());

    // Failover simulation: failed over, validated, then failed back.
    let (report, _replica) = drill("dr-test-failover-simulation.yaml");
    assert!(
        report["drill"]["failback_seconds"].as_f64().is_some(),
        "{report}"
    );
    assert_eq!(
        primary_set(&rt).as_deref(),
        Some("use1"),
        "traffic is home after the failback"
    );
    assert_eq!(
        api.object("apps/v1", "deployments", "default", "myapp-deployment")
            .unwrap()["spec"]["replicas"],
        0
    );
    let said: Vec<String> = hook.received().iter().map(|r| r.body.to_string()).collect();
    assert!(
        said.iter()
            .any(|m| m.contains("FAILOVER_INITIATED: DR Test")),
        "{said:?}"
    );

    // The full exercise: failover, the validation checklist, the first backup of the new
    // primary — one drill.
    let (report, replica) = drill("dr-test-full-exercise.yaml");
    assert_eq!(primary_set(&rt).as_deref(), Some("usw2"));
    assert_eq!(
        replica.psql(
            "myapp",
            "SELECT count(*) FROM users WHERE name = 'first user after the exercise'"
        ),
        "1"
    );
    let run = d.json(&["runs", "show", report["run"].as_str().unwrap()]);
    for step in [
        "failover/verify",
        "validation/performance",
        "validation/database-has-users",
        "first-backup",
    ] {
        assert_eq!(dr_testkit::step(&run, step)["state"], "succeeded", "{step}");
    }
}
