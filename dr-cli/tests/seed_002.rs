//! Seed 002 (FruitfulPlanet: Kubernetes, RDS, Redis, S3): the runbooks of
//! `examples/runbooks/fruitfulplanet/`, run against moto (RDS's control plane), a local
//! PostgreSQL (the data plane), the Kubernetes test API and the test app, which finds its
//! database through `DATABASE_URL` in the Secret `app-secrets`.

use dr_testkit::app::{request, AppOptions, Source, TestApp};
use dr_testkit::k8s::{deployment, K8sTestApi};
use dr_testkit::{stderr, Drkit, Moto, PgCluster};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");
const NS: &str = "fruitfulplanet";

fn book(name: &str) -> String {
    format!(
        "{}/../examples/runbooks/fruitfulplanet/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn printed(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(out))
}

/// Scenario 3 as a drill: the data corrupted after the nightly backup, the recovery
/// (data-corruption.yaml, unchanged) restoring to a moment between the two into a new
/// instance, the app switched to it through its Secret.
#[test]
#[allow(clippy::too_many_lines)] // the drill, then the database, the Secret, the app and the instance read back
fn the_data_corruption_drill_restores_to_before_the_corruption_and_switches_the_app() {
    let Some(moto) = Moto::start() else { return };
    let Some(pg) = PgCluster::start() else { return };
    pg.psql("postgres", "CREATE DATABASE fruitfulplanet");
    pg.psql(
        "fruitfulplanet",
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric, note text); \
         INSERT INTO orders SELECT g, g % 97, repeat('x', 200) FROM generate_series(1, 2000) g",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rds = rt.block_on(
        moto.rds_primary_with_replica("fruitfulplanet-prod", "fruitfulplanet-replica-eu"),
    );
    let api = K8sTestApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "production");
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.create(deployment(NS, "fruitfulplanet-app", 3, "fruitfulplanet:88"));
    let url = |db: &str| {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            dr_testkit::PASSWORD,
            pg.port()
        )
    };
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets", "namespace": NS}, "stringData": {"DATABASE_URL": url("fruitfulplanet")}}));
    let app = TestApp::start(AppOptions {
        objects: Some(api.objects_handle()),
        namespace: NS.into(),
        source: Source::Secret {
            name: "app-secrets".into(),
            key: "DATABASE_URL".into(),
        },
        dsn: "{}".into(),
        deployment: Some("fruitfulplanet-app".into()),
        table: "orders".into(),
        stopped_when: None,
    });
    let health = format!("{}/health", app.url());
    assert_eq!(request("GET", &health, None).1["rows"], 2000);
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env(moto.env())
        .with_env([
            ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
            ("DATABASE_PASSWORD", dr_testkit::PASSWORD.to_owned()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
        ]);
    d.json(&["repo", "init"]);
    let plain = |db: &str| format!("postgres://postgres@127.0.0.1:{}/{db}", pg.port());
    let out = d.run(&[
        "--json",
        "drill",
        &book("data-corruption-drill.yaml"),
        "--var",
        &format!("sandbox={}", plain("fruitfulplanet")),
        "--var",
        &format!("restored={}", plain("fruitfulplanet_restored")),
        "--var",
        &format!("db_host=127.0.0.1:{}", pg.port()),
        "--var",
        &format!("health={health}"),
        "--var",
        "verify_for=10s",
    ]);
    let shown = printed(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (rto, rpo) = (&report["rto"], &report["rpo"]);
    eprintln!(
        "seed 002 data corruption drill: RTO {} s, RPO {} s",
        rto["achieved_seconds"], rpo["achieved_seconds"]
    );
    assert_eq!(
        (rto["verdict"].clone(), rpo["verdict"].clone()),
        (json!("met"), json!("met")),
        "{report}"
    );
    assert!(rpo["achieved_seconds"].as_f64().unwrap() >= 0.5, "{rpo}");

    // The corrupted database is left as it was, for the investigation; the app reads the
    // restored one through its Secret, all 2000 orders, and is scaled back up.
    let secret = api.object("v1", "secrets", NS, "app-secrets").unwrap();
    let stored = secret["data"]["DATABASE_URL"].as_str().unwrap();
    let decoded = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, stored).unwrap(),
    )
    .unwrap();
    assert_eq!(decoded, url("fruitfulplanet_restored"));
    let (status, doc) = request("GET", &health, None);
    assert_eq!((status, doc["rows"].clone()), (200, json!(2000)), "{doc}");
    assert_eq!(
        api.object("apps/v1", "deployments", NS, "fruitfulplanet-app")
            .unwrap()["status"]["readyReplicas"],
        3
    );
    // RDS's control plane has the new instance, asked by a separate client.
    rt.block_on(async {
        let seen = rds
            .describe_db_instances()
            .db_instance_identifier("fruitfulplanet-restored")
            .send()
            .await
            .unwrap();
        assert_eq!(seen.db_instances().len(), 1);
    });
    assert!(
        !shown.contains(dr_testkit::PASSWORD),
        "the database password is never printed"
    );
}
