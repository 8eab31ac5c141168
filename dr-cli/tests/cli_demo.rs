//! `drkit demo`, the README's main-job command: the backup, restore and verify tour on
//! a throwaway PostgreSQL, then the failover drill with its measured RTO and RPO — and
//! what the drill reports is what the databases hold.

use dr_testkit::{stderr, Drkit, PgCluster};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

#[test]
#[allow(clippy::too_many_lines)] // the report, then the databases that back it
fn the_demo_ends_with_a_drill_whose_rto_and_rpo_are_what_happened() {
    // A server for reading the drill's backup back: the drill's own are gone by now.
    let Some(pg) = PgCluster::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let runner = Drkit::local(BIN, &dir.path().join("unused"));
    let out = runner.run(&["--json", "demo", "--rows", "5000", "--keep-repo"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    // Whether the objectives were met depends on the machine; the exit status says it.
    let ok = report["ok"].as_bool().unwrap();
    assert_eq!(out.status.code(), Some(if ok { 0 } else { 3 }), "{report}");
    assert_eq!(report["restored_matches_original"], true);

    let drill = &report["drill"];
    let measured = &drill["report"];
    assert_eq!(measured["outcome"], "succeeded", "{drill}");
    assert_eq!(measured["kind"], "drill");
    let steps: Vec<&str> = measured["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "sandbox-ready",
            "canary",
            "writes-go-on",
            "primary-lost",
            "canary-stopped",
            "health",
            "promote",
            "check",
            "backup",
            "takes-writes",
            "canary-read",
            "canary-drop"
        ]
    );
    let canary = &measured["drill"]["canary"];
    let acknowledged = canary["acknowledged"].as_u64().unwrap();
    let recovered = canary["recovered"].as_u64().unwrap();
    let lost = canary["lost"].as_u64().unwrap();
    assert!(
        acknowledged > 0,
        "the canary wrote to the primary before it was lost"
    );
    assert_eq!(recovered + lost, acknowledged);
    let rto = measured["rto"]["achieved_seconds"].as_f64().unwrap();
    assert!(rto > 0.0, "{drill}");
    let rpo = measured["rpo"]["achieved_seconds"].as_f64().unwrap();
    assert!(rpo >= 0.0, "{drill}");
    let verdict = |m: &serde_json::Value| {
        let (achieved, objective) = (
            m["achieved_seconds"].as_f64().unwrap(),
            m["objective_seconds"].as_f64().unwrap(),
        );
        if achieved <= objective {
            "met"
        } else {
            "missed"
        }
    };
    assert_eq!(measured["rto"]["verdict"], verdict(&measured["rto"]));
    assert_eq!(measured["rpo"]["verdict"], verdict(&measured["rpo"]));
    assert_eq!(
        ok,
        measured["rto"]["verdict"] == "met" && measured["rpo"]["verdict"] == "met",
        "the result is the objectives' verdict"
    );
    let page = std::fs::read_to_string(drill["report_html"].as_str().unwrap()).unwrap();
    assert!(page.contains("shop-failover-drill") && page.contains("primary-lost"));
    let _ = std::fs::remove_file(drill["report_html"].as_str().unwrap());

    // The drill's backup of the new primary, restored: the orders it says survived, and
    // the write that proved the new primary takes writes.
    let kept = drill["repository"].as_str().unwrap();
    let folder = kept
        .strip_prefix("file://")
        .and_then(|k| k.split(" (key file ").next())
        .and_then(|r| r.strip_suffix("/repo"))
        .unwrap();
    let mut drill_repo = Drkit::local(BIN, &std::path::Path::new(folder).join("repo"));
    drill_repo.env = vec![("DRKIT_KEY_FILE".into(), format!("{folder}/drill.key"))];
    let restored = drill_repo.run(&["restore", "latest", "--to", &pg.dsn("shop")]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert_eq!(
        pg.psql(
            "shop",
            &format!(
                "SELECT count(*) FROM drkit_canary.writes WHERE run = '{}'",
                measured["run"].as_str().unwrap()
            )
        ),
        (recovered + canary["unknown_present"].as_u64().unwrap()).to_string(),
        "the backup holds exactly the canary writes the drill says were recovered"
    );
    // Every order loaded before the drill (the first write after the failover runs
    // beside the backup: it may or may not be in it).
    assert_eq!(
        pg.psql("shop", "SELECT count(*) FROM orders WHERE note IS NULL"),
        "10000"
    );
    let _ = std::fs::remove_dir_all(folder);
    if let Some(first) = report["repository"].as_str() {
        if let Some(path) = first
            .strip_prefix("file://")
            .and_then(|k| k.split(" (key file ").next())
            .and_then(|r| r.strip_suffix("/repo"))
        {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}
