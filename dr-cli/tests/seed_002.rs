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

/// The app on one database, read from an env file (no cluster needed).
fn app_on(dir: &std::path::Path, name: &str, url: &str) -> TestApp {
    let env = dir.join(name);
    std::fs::write(&env, format!("DATABASE_URL={url}\n")).unwrap();
    TestApp::start(AppOptions {
        objects: None,
        namespace: String::new(),
        source: Source::EnvFile {
            path: env,
            var: "DATABASE_URL".into(),
        },
        dsn: "{}".into(),
        deployment: None,
        table: "orders".into(),
        stopped_when: None,
    })
}

fn orders(pg: &PgCluster, db: &str) {
    pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    pg.psql(
        db,
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric, note text); \
         INSERT INTO orders SELECT g, g % 97, 'order ' || g FROM generate_series(1, 2000) g",
    );
}

/// Scenario 1: a database that is down comes back by restart, nothing restored; one that
/// is lost is restored (the Q1 drill, with RTO and RPO).
#[test]
#[allow(clippy::too_many_lines)] // the restart case, then the drill
fn a_database_failure_is_restarted_first_and_restored_only_when_still_down() {
    let Some(pg) = PgCluster::start() else { return };
    orders(&pg, "fruitfulplanet");
    orders(&pg, "fruitfulplanet_drill");
    let dir = tempfile::tempdir().unwrap();
    let url = |db: &str| {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            dr_testkit::PASSWORD,
            pg.port()
        )
    };
    let app = app_on(dir.path(), "prod.env", &url("fruitfulplanet"));
    let drill_app = app_on(dir.path(), "drill.env", &url("fruitfulplanet_drill"));
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env([("PGPASSWORD", dr_testkit::PASSWORD.to_owned())]);
    d.json(&["repo", "init"]);
    let server = format!("postgres://postgres@127.0.0.1:{}", pg.port());
    d.json(&["backup", &format!("{server}/fruitfulplanet")]);
    pg.psql(
        "fruitfulplanet",
        "INSERT INTO orders VALUES (2001, 1, 'after the backup')",
    );

    // The server stops; the restart brings it back, and nothing is restored (the order
    // taken after the backup is still there).
    let stopped = std::process::Command::new("sh")
        .args(["-c", &pg.pg_ctl("stop -m fast")])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert_eq!(
        request("GET", &format!("{}/health", app.url()), None).0,
        503
    );
    let out = d.run_book(
        &book("database-failure.yaml"),
        &[
            format!("server={server}"),
            format!("restart={}", pg.pg_ctl("start -w")),
            format!("health={}/health", app.url()),
            "verify_for=10s".into(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dr_testkit::step(&run, "answers")["state"], "succeeded");
    assert_eq!(dr_testkit::step(&run, "restore")["state"], "skipped");
    assert_eq!(
        request("GET", &format!("{}/health", app.url()), None).1["rows"],
        2001
    );

    // Q1 drill: the database is lost; the restart cannot help, the backup is restored.
    let out = d.run(&[
        "--json",
        "drill",
        &book("database-failure-drill.yaml"),
        "--var",
        &format!("server={server}"),
        "--var",
        &format!("health={}/health", drill_app.url()),
        "--var",
        "verify_for=10s",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "seed 002 database failure drill: RTO {} s, RPO {} s",
        report["rto"]["achieved_seconds"], report["rpo"]["achieved_seconds"]
    );
    assert_eq!(
        (
            report["rto"]["verdict"].clone(),
            report["rpo"]["verdict"].clone()
        ),
        (json!("met"), json!("met")),
        "{report}"
    );
    let shown = d.json(&["runs", "show", report["run"].as_str().unwrap()]);
    assert_eq!(
        dr_testkit::step(&shown, "recovery/answers")["state"],
        "failed"
    );
    assert_eq!(
        dr_testkit::step(&shown, "recovery/restore")["state"],
        "succeeded"
    );
    assert_eq!(
        request("GET", &format!("{}/health", drill_app.url()), None).1["rows"],
        2000
    );
}

#[test]
#[allow(clippy::too_many_lines)] // the failover, read back in RDS, Route 53, the cluster and the database
fn a_region_failure_promotes_the_replica_moves_dns_and_scales_the_dr_region_up() {
    let Some(moto) = Moto::start() else { return };
    let Some(primary) = PgCluster::start() else {
        return;
    };
    orders(&primary, "fruitfulplanet");
    let replica = primary.start_replica();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rds, _) = rt.block_on(async {
        let rds = moto
            .rds_primary_with_replica("fruitfulplanet-prod", "fruitfulplanet-replica-eu")
            .await;
        let r53 = moto
            .failover_pair(
                "fruitfulplanet.com",
                "fruitfulplanet.com",
                ("primary", "lb-use1.fruitfulplanet.com"),
                ("dr", "lb-euw1.fruitfulplanet.com"),
            )
            .await;
        (rds, r53)
    });
    let api = K8sTestApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "fruitfulplanet-dr");
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.create(deployment(NS, "fruitfulplanet-app", 0, "fruitfulplanet:88"));
    let replica_url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/fruitfulplanet",
        dr_testkit::PASSWORD,
        replica.port()
    );
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets", "namespace": NS}, "stringData": {"DATABASE_URL": replica_url}}));
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
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env(moto.env())
        .with_env([
            ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
        ]);
    d.json(&["repo", "init"]);
    let out = d.run_book(
        &book("region-failure.yaml"),
        &[
            "dr_region=us-east-1".into(),
            format!("data_plane={}", replica.dsn("postgres")),
            format!("consistency={}", replica.dsn("fruitfulplanet")),
            format!("health={}/health", app.url()),
            "replicas=4".into(),
            "verify_for=10s".into(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert_eq!(
        api.object("apps/v1", "deployments", NS, "fruitfulplanet-app")
            .unwrap()["status"]["readyReplicas"],
        4
    );
    assert_eq!(
        request("GET", &format!("{}/health", app.url()), None).1["rows"],
        2000
    );
    replica.psql(
        "fruitfulplanet",
        "INSERT INTO orders VALUES (5000, 1, 'taken in the DR region')",
    );
    rt.block_on(async {
        let seen = rds
            .describe_db_instances()
            .db_instance_identifier("fruitfulplanet-replica-eu")
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

    // Q2 drill: the same procedure, unchanged, after a primary lost while a canary
    // writes; the platform put back first (traffic home, the DR app at zero, pointed at
    // a fresh replica).
    let Some(primary) = PgCluster::start() else {
        return;
    };
    orders(&primary, "fruitfulplanet");
    let replica = primary.start_replica();
    d.json(&[
        "dns",
        "failover",
        "--zone",
        "fruitfulplanet.com",
        "--name",
        "fruitfulplanet.com",
        "--to",
        "primary",
    ]);
    dr_testkit::k8s::kubectl(
        &kubeconfig,
        &[
            "-n",
            NS,
            "scale",
            "deployment/fruitfulplanet-app",
            "--replicas=0",
        ],
    )
    .unwrap();
    let replica_url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/fruitfulplanet",
        dr_testkit::PASSWORD,
        replica.port()
    );
    api.replace(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets", "namespace": NS}, "data": {"DATABASE_URL": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &replica_url)}}));
    let plain =
        |pg: &PgCluster, db: &str| format!("postgres://postgres@127.0.0.1:{}/{db}", pg.port());
    let out = d.run(&[
        "--json",
        "drill",
        &book("region-failure-drill.yaml"),
        "--var",
        &format!("primary={}", plain(&primary, "fruitfulplanet")),
        "--var",
        &format!("replica={}", plain(&replica, "fruitfulplanet")),
        "--var",
        &format!("replica_server={}", plain(&replica, "postgres")),
        "--var",
        "dr_region=us-east-1",
        "--var",
        "replicas=4",
        "--var",
        &format!("health={}/health", app.url()),
        "--var",
        "verify_for=10s",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "seed 002 region failure drill: RTO {} s, RPO {} s",
        report["rto"]["achieved_seconds"], report["rpo"]["achieved_seconds"]
    );
    assert_eq!(
        (
            report["rto"]["verdict"].clone(),
            report["rpo"]["verdict"].clone()
        ),
        (json!("met"), json!("met")),
        "{report}"
    );
    assert_eq!(
        replica.psql(
            "fruitfulplanet",
            "SELECT count(*) FROM orders WHERE id = 900000"
        ),
        "1"
    );
}

#[test]
#[allow(clippy::too_many_lines)] // isolation, rotation, restore, approval, each read back
fn a_security_breach_is_isolated_its_secrets_rotated_and_the_data_restored_from_before_it() {
    let Some(pg) = PgCluster::start() else { return };
    orders(&pg, "fruitfulplanet");
    let api = K8sTestApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "production");
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.create(deployment(NS, "fruitfulplanet-app", 3, "fruitfulplanet:88"));
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/fruitfulplanet",
        dr_testkit::PASSWORD,
        pg.port()
    );
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secrets", "namespace": NS}, "stringData": {"DATABASE_URL": url, "STRIPE_KEY": "sk_live_stolen_4417"}}));
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
    let rx = tokio::runtime::Runtime::new().unwrap();
    let hook = rx.block_on(dr_testkit::Receiver::start());
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env([
        ("PGPASSWORD", dr_testkit::PASSWORD.to_owned()),
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("SECURITY_WEBHOOK", format!("{}/security", hook.url())),
    ]);
    d.json(&["repo", "init"]);
    let server = format!("postgres://postgres@127.0.0.1:{}", pg.port());
    d.json(&["backup", &format!("{server}/fruitfulplanet")]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let compromised_at = pg.psql(
        "postgres",
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The intruder's changes, and a backup taken after them.
    pg.psql("fruitfulplanet", "UPDATE orders SET note = 'pwned' WHERE id <= 10; CREATE FUNCTION backdoor() RETURNS int LANGUAGE sql AS 'SELECT 1'");
    d.json(&["backup", &format!("{server}/fruitfulplanet")]);
    let env_new = dir.path().join(".env.new");
    std::fs::write(
        &env_new,
        format!("DATABASE_URL={url}\nSTRIPE_KEY=sk_live_rotated_5521\n"),
    )
    .unwrap();
    let vars = [
        format!("compromised_at={compromised_at}"),
        format!("env_file={}", env_new.display()),
        format!("server={server}"),
        format!("health={}/health", app.url()),
        "verify_for=10s".to_owned(),
    ];
    // It stops for a person before the app comes back.
    let out = d.run_book(&book("security-breach.yaml"), &vars);
    let waiting: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        dr_testkit::step(&waiting, "resume-approved")["state"],
        "waiting",
        "{}",
        printed(&out)
    );
    assert_eq!(
        request("GET", &format!("{}/health", app.url()), None).0,
        503,
        "isolated"
    );
    let out = d.run(&[
        "--json",
        "run",
        "--resume",
        waiting["id"].as_str().unwrap(),
        "--approve",
        "resume-approved",
    ]);
    let shown = format!("{}{}", printed(&out), waiting);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    // Rotated, restored from before the compromise, back, and told.
    let secret = api.object("v1", "secrets", NS, "app-secrets").unwrap();
    let key = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            secret["data"]["STRIPE_KEY"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(key, "sk_live_rotated_5521");
    assert!(
        api.object("v1", "secrets", NS, "app-secrets-drkit-previous")
            .is_some(),
        "the old values kept aside"
    );
    assert_eq!(
        pg.psql(
            "fruitfulplanet",
            "SELECT count(*) FROM orders WHERE note = 'pwned'"
        ),
        "0"
    );
    assert_eq!(
        pg.psql(
            "fruitfulplanet",
            "SELECT count(*) FROM pg_proc WHERE proname = 'backdoor'"
        ),
        "0"
    );
    assert_eq!(
        request("GET", &format!("{}/health", app.url()), None).1["rows"],
        2000
    );
    assert!(
        hook.received()
            .iter()
            .any(|r| r.body.to_string().contains("secrets rotated")),
        "{:?}",
        hook.received()
    );
    for secret in ["sk_live_stolen_4417", "sk_live_rotated_5521"] {
        assert!(!shown.contains(secret), "{secret} printed");
    }
}

#[test]
fn sessions_come_back_from_the_redis_snapshot_and_uploads_from_their_replica() {
    use aws_sdk_s3::primitives::ByteStream;
    let Some(moto) = Moto::start() else { return };
    let Some(redis) = dr_testkit::Redis::start(None) else {
        return;
    };
    for i in 0..50 {
        let _ = redis.cli(&["SET", &format!("session:{i}"), &format!("user-{i}")]);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(dr_testkit::s3_client(&moto.aws("us-east-1")));
    let put = |bucket: &str, key: &str| {
        rt.block_on(
            s3.put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(format!("bytes of {key}").into_bytes()))
                .send(),
        )
        .unwrap();
    };
    for b in ["fruitfulplanet-uploads", "fruitfulplanet-uploads-dr"] {
        rt.block_on(s3.create_bucket().bucket(b).send()).unwrap();
    }
    for key in ["avatars/1.png", "avatars/2.png", "invoices/2025-11.pdf"] {
        put("fruitfulplanet-uploads-dr", key);
    }
    put("fruitfulplanet-uploads", "avatars/1.png");
    let dir = tempfile::tempdir().unwrap();
    let d = Drkit::local(BIN, &dir.path().join("repo")).with_env(moto.env());
    d.json(&["repo", "init"]);
    d.json(&["backup", &redis.url()]);
    // The sessions are lost.
    let _ = redis.cli(&["FLUSHALL"]);
    let out = d.run_book(
        &book("sessions-and-uploads.yaml"),
        &[
            format!("redis={}", redis.url()),
            "replica=s3://fruitfulplanet-uploads-dr?region=us-east-1".into(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let sessions = redis.contents(0);
    assert_eq!(sessions.len(), 50);
    assert!(
        sessions["session:7"].contains("user-7"),
        "{:?}",
        sessions.get("session:7")
    );
    let listed = rt
        .block_on(s3.list_objects_v2().bucket("fruitfulplanet-uploads").send())
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        ["avatars/1.png", "avatars/2.png", "invoices/2025-11.pdf"]
    );
}
