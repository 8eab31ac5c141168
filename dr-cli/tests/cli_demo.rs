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
    assert_eq!(drill["outcome"], "succeeded", "{drill}");
    let steps: Vec<&str> = drill["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["health", "promote", "check", "takes-writes", "backup"]
    );
    let acknowledged = drill["orders_acknowledged"].as_u64().unwrap();
    let recovered = drill["orders_recovered"].as_u64().unwrap();
    let lost = drill["orders_lost"].as_u64().unwrap();
    assert!(
        acknowledged > 0,
        "the primary took orders before it was lost"
    );
    assert_eq!(recovered + lost, acknowledged);
    let rto = drill["rto_seconds"].as_f64().unwrap();
    assert!(rto > 0.0, "{drill}");
    let (disaster, recovered_at) = (
        drill["disaster_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        drill["recovered_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
    );
    let between = (recovered_at.as_millisecond() - disaster.as_millisecond()) as f64 / 1000.0;
    assert!(
        (between - rto).abs() < 0.002,
        "RTO {rto} is the span {between}"
    );
    let rpo = drill["rpo_seconds"].as_f64().unwrap();
    assert_eq!(rpo == 0.0, lost == 0, "{drill}");
    let within = |measured: f64, objective: &serde_json::Value| {
        objective.as_f64().is_none_or(|max| measured <= max)
    };
    assert_eq!(
        drill["rto_met"],
        within(rto, &drill["rto_objective_seconds"])
    );
    assert_eq!(
        drill["rpo_met"],
        within(rpo, &drill["rpo_objective_seconds"])
    );
    assert_eq!(
        ok,
        drill["rto_met"] == true && drill["rpo_met"] == true,
        "the result is the objectives' verdict"
    );

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
            "SELECT count(*) FROM orders WHERE note = 'written during the drill'"
        ),
        (recovered + drill["orders_unacknowledged_kept"].as_u64().unwrap()).to_string(),
        "the backup holds exactly the orders the drill says were recovered"
    );
    assert_eq!(
        pg.psql(
            "shop",
            "SELECT count(*) FROM orders WHERE note = 'the first order after the failover'"
        ),
        "1"
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
