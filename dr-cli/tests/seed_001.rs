//! Seed 001's emergency failover (`examples/runbooks/multi-region/emergency-failover.yaml`)
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
