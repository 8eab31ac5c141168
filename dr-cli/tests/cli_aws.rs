//! The `drkit` binary against real S3 (garage) and the AWS control plane (moto).

use dr_testkit::{stderr, Drkit, Garage, Moto, PgCluster};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

/// Row count and an md5 over every row, in key order.
fn rows(pg: &PgCluster, db: &str) -> String {
    pg.psql(
        db,
        "SELECT count(*) || ':' || md5(string_agg(x::text, '|' ORDER BY id)) FROM items x",
    )
}

#[test]
fn backup_to_s3_restore_from_it_and_copy_between_repositories() {
    let Some(pg) = PgCluster::start() else { return };
    let Some(garage) = Garage::start() else {
        return;
    };
    pg.fill_items("shop", 40_000);
    let want = rows(&pg, "shop");

    // Backup straight into S3 and restore from it with parallel jobs.
    let s3 = Drkit::at(BIN, &garage.url("cli")).with_env(garage.env());
    let init = s3.json(&["repo", "init"]);
    assert_eq!(init["create_only"], "ignored", "garage is detected: {init}");
    let snap = s3.json(&["backup", &pg.dsn("shop")]);
    assert!(snap["new_chunks"].as_u64().unwrap() > 0);
    s3.json(&[
        "restore",
        "latest",
        "--to",
        &pg.dsn("shop_from_s3"),
        "-j",
        "2",
    ]);
    assert_eq!(rows(&pg, "shop_from_s3"), want);
    let verify = s3.json(&["verify"]);
    assert_eq!(verify["ok"], true, "{verify}");

    // A local repository copied into S3 as the monthly tier, then restored from the copy.
    let dir = tempfile::tempdir().unwrap();
    let local = Drkit::local(BIN, &dir.path().join("repo"));
    local.json(&["repo", "init"]);
    local.json(&["backup", &pg.dsn("shop")]);
    pg.psql(
        "shop",
        "INSERT INTO items (id, sku, qty, meta) VALUES (999999, 'late', 1, '{}')",
    );
    local.json(&["backup", &pg.dsn("shop")]);
    let want_latest = rows(&pg, "shop");
    let copy_url = garage.url("monthly");
    let copied = local
        .clone()
        .with_env(garage.env())
        .json(&["copy", "--to", &copy_url, "--init", "--tier", "monthly"]);
    assert_eq!(
        copied["copied"].as_array().unwrap().len(),
        1,
        "one snapshot per month: {copied}"
    );
    assert_eq!(copied["reencrypted"], false);
    let again = local
        .clone()
        .with_env(garage.env())
        .json(&["copy", "--to", &copy_url, "--tier", "monthly"]);
    assert_eq!(
        again["chunks_uploaded"], 0,
        "a second copy uploads nothing: {again}"
    );
    let replica = Drkit::at(BIN, &copy_url).with_env(garage.env());
    replica.json(&["restore", "latest", "--to", &pg.dsn("shop_from_copy")]);
    assert_eq!(
        rows(&pg, "shop_from_copy"),
        want_latest,
        "the newest of the month was copied"
    );

    // Raw store objects: 21 MiB up and down, identical.
    let file = dir.path().join("blob");
    let data: Vec<u8> = (0..21u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    s3.json(&["store", "put", "blobs/one", file.to_str().unwrap()]);
    let back = dir.path().join("back");
    s3.json(&["store", "get", "blobs/one", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "21 MiB read back identical"
    );
}

#[test]
fn s3_mistakes_get_one_clear_line() {
    let Some(garage) = Garage::start() else {
        return;
    };
    // No credentials anywhere (and no instance metadata to ask).
    let none = Drkit::at(BIN, &garage.url("x")).with_env([
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
    ]);
    let out = none.run(&["repo", "init"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("AWS_ACCESS_KEY_ID"),
        "says how to give credentials: {err}"
    );

    // Wrong secret: refused, and the secret is not printed.
    let wrong = Drkit::at(BIN, &garage.url("x")).with_env([
        ("AWS_ACCESS_KEY_ID", dr_testkit::GARAGE_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "f".repeat(64)),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]);
    let out = wrong.run(&["repo", "init"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains(&"f".repeat(64)), "secret leaked: {err}");

    // An unknown URL option is named with the known ones.
    let typo =
        Drkit::at(BIN, &format!("{}&regoin=eu-west-1", garage.url("x"))).with_env(garage.env());
    let out = typo.run(&["snapshots"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("regoin") && err.contains("region"), "{err}");
}

/// An RDS primary with a replica, and a failover pair for www.shop.test, made with
/// separate SDK clients.
async fn seed(moto: &Moto) {
    moto.rds_primary_with_replica("orders", "orders-replica")
        .await;
    moto.failover_pair(
        "shop.test",
        "www.shop.test",
        ("primary", "a.shop.test"),
        ("dr", "b.shop.test"),
    )
    .await;
}

#[test]
fn rds_and_dns_commands_against_moto() {
    let Some(moto) = Moto::start() else { return };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(seed(&moto));
    let cli = Drkit::at(BIN, "file:///unused").with_env(moto.env());
    let described = cli.json(&["rds", "describe", "orders-replica"]);
    assert_eq!(described["replication_source"], "orders");
    let promoted = cli.json(&["rds", "promote", "orders-replica", "--timeout", "30"]);
    assert_eq!(promoted["status"], "available");
    assert_eq!(
        promoted["replication_source"],
        serde_json::Value::Null,
        "{promoted}"
    );
    let seen = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let sdk = moto.aws("us-east-1").load().await.unwrap();
        aws_sdk_rds::Client::new(&sdk)
            .describe_db_instances()
            .db_instance_identifier("orders-replica")
            .send()
            .await
            .unwrap()
    });
    assert_eq!(
        seen.db_instances()[0].read_replica_source_db_instance_identifier(),
        None,
        "RDS, asked by a separate client, says the promoted replica is standalone"
    );
    let pitr = cli.json(&[
        "rds",
        "pitr",
        "orders",
        "--to",
        "orders-restored",
        "--latest",
        "--timeout",
        "30",
    ]);
    assert_eq!(pitr["id"], "orders-restored");
    assert!(
        pitr["endpoint"].as_str().is_some_and(|e| e.contains(':')),
        "{pitr}"
    );

    let switched = cli.json(&[
        "dns",
        "failover",
        "--zone",
        "shop.test",
        "--name",
        "www.shop.test",
        "--to",
        "dr",
        "--timeout",
        "30",
    ]);
    let after = switched["after"]["records"].as_array().unwrap();
    let dr = after.iter().find(|r| r["set_id"] == "dr").unwrap();
    assert_eq!(dr["failover"], "PRIMARY", "{switched}");
    let shown = cli.json(&[
        "dns",
        "show",
        "--zone",
        "shop.test",
        "--name",
        "www.shop.test",
    ]);
    assert_eq!(shown["records"], switched["after"]["records"]);

    let out = cli.run(&["rds", "describe", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ghost"), "{}", stderr(&out));
}
