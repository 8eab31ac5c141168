//! `drkit prune` and `drkit status` as an operator and a monitoring system use them.

use dr_testkit::{stderr, Drkit, PgCluster};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

fn rows(pg: &PgCluster, db: &str) -> String {
    pg.psql(
        db,
        "SELECT count(*) || ':' || md5(string_agg(x::text, '|' ORDER BY id)) FROM items x",
    )
}

#[test]
fn status_checks_objectives_and_prune_keeps_what_the_policy_says() {
    let Some(pg) = PgCluster::start() else { return };
    pg.psql("postgres", "CREATE DATABASE shop");
    pg.psql("shop", "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
    let dir = tempfile::tempdir().unwrap();
    let drkit = Drkit::local(BIN, &dir.path().join("repo"));
    drkit.json(&["repo", "init"]);
    for i in 0..3 {
        pg.psql(
            "shop",
            &format!("INSERT INTO items VALUES ({}, 'late')", 10_000 + i),
        );
        drkit.json(&["backup", &pg.dsn("shop")]);
    }
    let want = rows(&pg, "shop");

    let objectives = dir.path().join("objectives.toml");
    std::fs::write(
        &objectives,
        format!("[[service]]\nname = \"shop\"\nsource = \"127.0.0.1:{}/shop\"\nrpo = \"1h\"\nverified_within = \"1d\"\n", pg.port()),
    )
    .unwrap();
    let obj = objectives.to_str().unwrap();
    let out = drkit.run(&["--json", "status", "--objectives", obj]);
    assert_eq!(out.status.code(), Some(3), "never verified is a miss");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["objectives_missed"][0]
            .as_str()
            .unwrap()
            .contains("never verified"),
        "{doc}"
    );
    assert!(
        doc["sources"][0]["at_risk_seconds"].as_f64().unwrap() < 120.0,
        "{doc}"
    );

    drkit.json(&["verify"]);
    let ok = drkit.json(&["status", "--objectives", obj]);
    assert_eq!(ok["ok"], true, "{ok}");

    // A service with no snapshots at all is a miss; a typo in the file is an error.
    std::fs::write(
        &objectives,
        "[[service]]\nname = \"billing\"\nsource = \"/billing\"\nrpo = \"5m\"\n",
    )
    .unwrap();
    let out = drkit.run(&["status", "--objectives", obj]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("billing"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(
        &objectives,
        "[[service]]\nname = \"x\"\nsource = \"y\"\nrpoo = \"5m\"\n",
    )
    .unwrap();
    let out = drkit.run(&["status", "--objectives", obj]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("objectives.toml") && stderr(&out).contains("rpoo"),
        "{}",
        stderr(&out)
    );

    // Dry run: every snapshot with its verdict, nothing changed.
    let dry = drkit.json(&["prune", "--keep-last", "1", "--dry-run"]);
    let decisions = dry["report"]["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 3);
    assert_eq!(decisions.iter().filter(|d| d["keep"] == false).count(), 2);
    assert_eq!(decisions[2]["reasons"][0], "last 1");
    assert_eq!(drkit.json(&["snapshots"]).as_array().unwrap().len(), 3);
    let out = drkit.run(&["prune"]);
    assert_eq!(out.status.code(), Some(1), "an empty policy is refused");

    let done = drkit.json(&["prune", "--keep-last", "1", "--grace", "0s"]);
    assert_eq!(done["report"]["removed"].as_array().unwrap().len(), 2);
    assert_eq!(drkit.json(&["snapshots"]).as_array().unwrap().len(), 1);
    drkit.json(&["restore", "latest", "--to", &pg.dsn("shop_after_prune")]);
    assert_eq!(rows(&pg, "shop_after_prune"), want);
    assert_eq!(drkit.json(&["verify"])["ok"], true);
}
