//! Runbooks through the `drkit` binary, as real processes: a run killed with SIGKILL in
//! the middle of a step and resumed from another folder with another host identity, a
//! non-idempotent step in flight that makes resume ask, two runs of one lock at once, and
//! a real failover of a Postgres streaming replica with Route 53 (moto) read back.

use std::path::Path;
use std::time::{Duration, Instant};

use dr_testkit::{stderr, Drkit, Moto, PgCluster};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

fn drkit(dir: &Path) -> Drkit {
    let d = Drkit::local(BIN, &dir.join("repo"));
    d.json(&["repo", "init"]);
    d
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
#[allow(clippy::too_many_lines)] // one story: killed, refused elsewhere, taken over, resumed
fn a_run_killed_mid_step_resumes_elsewhere_without_repeating_finished_steps() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("effects.log");
    let book = dir.path().join("book.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: resumable
lock: shop
vars:
  log: {{ default: "{log}" }}
  pause: {{ default: 1h }}
steps:
  - id: one
    action: exec
    with: {{ argv: [sh, -c, "echo one >> ${{vars.log}}"] }}
  - id: pause
    action: wait
    needs: [one]
    with: {{ for: "${{vars.pause}}" }}
  - id: three
    action: exec
    needs: [pause]
    with: {{ argv: [sh, -c, "echo three >> ${{vars.log}}"] }}
"#,
            log = log.display()
        ),
    )
    .unwrap();
    let mut child = d
        .cmd(&[
            "--quiet",
            "run",
            book.to_str().unwrap(),
            "--lock-ttl",
            "10s",
        ])
        .spawn()
        .unwrap();
    let id = d.wait_step_started("pause");
    child.kill().unwrap(); // SIGKILL: no chance to journal anything
    child.wait().unwrap();
    assert_eq!(
        d.json(&["runs", "show", &id])["outcome"],
        "stopped",
        "no end journaled, and its process is gone"
    );

    // A fresh run of the same lock is refused: the dead run's lease is still live.
    let refused = d.run(&["run", book.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(&format!("run {id}")),
        "{}",
        stderr(&refused)
    );

    // Another host cannot tell whether the run's process lives: while its lease is live
    // a resume there is refused, naming the holder.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = d
        .clone()
        .with_env([("DRKIT_HOSTNAME", "dr-host-2".to_owned())]);
    let refused = other.run(&["run", "--resume", &id, "--var", "pause=1s"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("is still running") && stderr(&refused).contains("--take-over"),
        "{}",
        stderr(&refused)
    );
    // Resume from another folder as another host with --take-over: it waits out the lease,
    // then the idempotent wait that was in flight runs again (shorter, by a variable given
    // on resume); the finished step does not.
    let out = other
        .cmd(&[
            "--json",
            "run",
            "--resume",
            &id[..13],
            "--take-over",
            "--var",
            "pause=1s",
        ])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["outcome"], "succeeded", "{summary}");
    assert_eq!(
        lines(&log),
        ["one", "three"],
        "step one ran once, step three once"
    );
    let shown = d.json(&["runs", "show", &id]);
    let hosts: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["by"]["host"].as_str().unwrap())
        .collect();
    assert!(
        hosts.contains(&"dr-host-2"),
        "the resume is journaled by the other host: {hosts:?}"
    );
    assert!(
        shown["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "note"
                && e["text"].as_str().unwrap_or("").contains("--take-over")),
        "the take-over is journaled: {shown}"
    );
    let pause_starts = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "step_started" && e["step"] == "pause")
        .count();
    assert_eq!(
        pause_starts, 2,
        "the idempotent step in flight was run again: {shown}"
    );
    let tokens: Vec<u64> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["token"].as_u64().unwrap())
        .collect();
    assert!(
        tokens.first() < tokens.last(),
        "the resume holds the lock with a higher fencing token: {tokens:?}"
    );
}

#[test]
fn a_non_idempotent_step_in_flight_makes_resume_ask() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("effects.log");
    let book = dir.path().join("book.yaml");
    std::fs::write(
        &book,
        format!(
            "version: 1\nname: asks\nsteps:\n  - id: migrate\n    action: exec\n    with: {{ argv: [sh, -c, \"echo start >> {log}; sleep 60\"] }}\n  - id: after\n    action: exec\n    needs: [migrate]\n    with: {{ argv: [sh, -c, \"echo after >> {log}\"] }}\n",
            log = log.display()
        ),
    )
    .unwrap();
    let mut child = d
        .cmd(&["--quiet", "run", book.to_str().unwrap()])
        .spawn()
        .unwrap();
    let id = d.wait_step_started("migrate");
    child.kill().unwrap();
    child.wait().unwrap();
    let asked = d.run(&["run", "--resume", &id]);
    assert_eq!(asked.status.code(), Some(1));
    let e = stderr(&asked);
    assert!(
        e.contains("--rerun migrate")
            && e.contains("--skip migrate")
            && e.contains("not idempotent"),
        "{e}"
    );
    let done = d.json(&["run", "--resume", &id, "--skip", "migrate"]);
    assert_eq!(done["outcome"], "succeeded", "{done}");
    assert_eq!(lines(&log).last().map(String::as_str), Some("after"));
    assert_eq!(
        lines(&log).iter().filter(|l| *l == "start").count(),
        1,
        "migrate did not run twice"
    );
}

#[test]
fn two_runs_of_one_lock_at_once_exactly_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let book = dir.path().join("book.yaml");
    std::fs::write(&book, "version: 1\nname: failover\nsteps:\n  - id: nap\n    action: wait\n    with: { for: 3s }\n").unwrap();
    let first = d
        .cmd(&["--json", "run", book.to_str().unwrap()])
        .spawn()
        .unwrap();
    let _ = d.wait_step_started("nap");
    let second = d.run(&["run", book.to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(1));
    let e = stderr(&second);
    assert!(
        e.contains("lock \"failover\"") && e.contains("is held by"),
        "{e}"
    );
    assert!(first.wait_with_output().unwrap().status.success());
    assert_eq!(
        d.json(&["runs"]).as_array().unwrap().len(),
        1,
        "the refused run journaled nothing"
    );
}

fn stream_until(replica: &PgCluster, rows: &str) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while replica.psql("postgres", "SELECT count(*) FROM orders") != rows {
        assert!(Instant::now() < deadline, "the replica never caught up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The region failover of the seed plans: fence the old primary, promote the replica,
/// move DNS, check the new primary.
fn failover_book(old: &str, new: &str, endpoint: &str) -> String {
    format!(
        r#"version: 1
name: shop-region-failover
objectives: {{ rto: 15m, rpo: 5m }}
targets:
  old_db: {{ kind: postgres, url: "{old}" }}
  dr_db: {{ kind: postgres, url: "{new}" }}
  db_dns: {{ kind: route53, zone: shop.test, name: db.shop.test, endpoint: "{endpoint}" }}
steps:
  - id: lag-ok
    action: db.check_lag
    with: {{ target: dr_db, max: "${{objectives.rpo}}" }}
  - id: fence
    action: db.fence
    with: {{ target: old_db }}
  - id: promote
    action: db.promote
    needs: [lag-ok, fence]
    with: {{ target: dr_db, timeout: 1m }}
    guard: {{ mode: planned, step: lag-ok }}
  - id: dns
    action: traffic.switch
    needs: [promote]
    with: {{ target: db_dns, to: {{ set: usw2 }}, timeout: 1m }}
    on_failure: compensate
    compensate: {{ action: traffic.restore, with: {{ target: db_dns, route: "${{steps.dns.outputs.before}}" }} }}
  - id: check
    action: sql.check
    needs: [dns]
    with: {{ url: "{new}", sql: ["SELECT NOT pg_is_in_recovery()", "SELECT count(*) = 100 FROM orders"] }}
"#
    )
}

#[test]
fn a_real_failover_runbook_promotes_a_streaming_replica_and_moves_dns() {
    let Some(primary) = PgCluster::start() else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    primary.psql(
        "postgres",
        "CREATE TABLE orders (id int); INSERT INTO orders SELECT generate_series(1, 100)",
    );
    let replica = primary.start_replica();
    stream_until(&replica, "100");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r53 = rt.block_on(moto.failover_pair(
        "shop.test",
        "db.shop.test",
        ("use1", "primary.shop.test"),
        ("usw2", "replica.shop.test"),
    ));

    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path()).with_env(moto.env());
    let book = dir.path().join("failover.yaml");
    let text = failover_book(
        &primary.dsn("postgres"),
        &replica.dsn("postgres"),
        &moto.endpoint(),
    );
    std::fs::write(&book, text).unwrap();
    let plan = d.run(&["plan", book.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(
        text.contains("promotes postgres:127.0.0.1")
            && text.contains("SECONDARY replica.shop.test -> PRIMARY"),
        "{text}"
    );
    assert!(
        !text.contains(dr_testkit::PASSWORD),
        "no password in a plan"
    );
    assert_eq!(
        replica.psql("postgres", "SELECT pg_is_in_recovery()"),
        "t",
        "the plan changed nothing"
    );

    let run = d.json(&["run", book.to_str().unwrap()]);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    // The replica really takes writes; the old primary refuses them.
    replica.psql("postgres", "INSERT INTO orders VALUES (101)");
    assert_eq!(
        replica.psql("postgres", "SELECT count(*) FROM orders"),
        "101"
    );
    let refused = primary.tool(
        "psql",
        "postgres",
        &[
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "INSERT INTO orders VALUES (0)",
        ],
    );
    assert!(
        !refused.status.success(),
        "the fenced primary refuses writes"
    );
    // DNS, read back by a separate client, points at the DR region.
    let records = rt.block_on(async {
        let zones = r53.list_hosted_zones().send().await.unwrap();
        let id = zones.hosted_zones()[0].id().to_owned();
        r53.list_resource_record_sets()
            .hosted_zone_id(id)
            .send()
            .await
            .unwrap()
    });
    let dr = records
        .resource_record_sets()
        .iter()
        .find(|r| r.set_identifier() == Some("usw2"))
        .unwrap();
    assert_eq!(
        dr.failover()
            .map(aws_sdk_route53::types::ResourceRecordSetFailover::as_str),
        Some("PRIMARY")
    );
    let shown = d.json(&["runs", "show", run["id"].as_str().unwrap()]);
    assert!(
        !shown.to_string().contains(dr_testkit::PASSWORD),
        "no password in the journal"
    );
}

/// An RDS primary `shop` with replica `shop-dr`, and a failover pair for db.shop.test.
async fn rds_replica_and_zone(moto: &Moto) -> (aws_sdk_rds::Client, aws_sdk_route53::Client) {
    let rds = moto.rds_primary_with_replica("shop", "shop-dr").await;
    let r53 = moto
        .failover_pair(
            "shop.test",
            "db.shop.test",
            ("use1", "shop.use1.rds"),
            ("usw2", "shop-dr.usw2.rds"),
        )
        .await;
    (rds, r53)
}

#[test]
fn the_rds_variant_promotes_a_moto_replica_and_moves_dns() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rds, r53) = rt.block_on(rds_replica_and_zone(&moto));
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path()).with_env(moto.env());
    let book = dir.path().join("rds.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: shop-rds-failover
targets:
  dr_db: {{ kind: rds, instance: shop-dr, region: us-east-1, endpoint: "{e}" }}
  db_dns: {{ kind: route53, zone: shop.test, name: db.shop.test, endpoint: "{e}" }}
steps:
  - id: before
    action: db.health
    with: {{ target: dr_db }}
  - id: promote
    action: db.promote
    needs: [before]
    with: {{ target: dr_db, timeout: 1m }}
  - id: fence
    action: db.fence
    needs: [promote]
    with: {{ target: dr_db }}
    on_failure: continue
  - id: dns
    action: traffic.switch
    needs: [promote]
    with: {{ target: db_dns, to: {{ set: usw2 }}, timeout: 1m }}
"#,
            e = moto.endpoint()
        ),
    )
    .unwrap();
    let out = d.run(&["--json", "run", book.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a run with a failed step exits 3"
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    // RDS cannot fence: that step fails naming the target and what it lacks; the run goes on.
    assert_eq!(run["outcome"], "failed", "{run}");
    let steps = run["steps"].as_array().unwrap();
    let by_id = |id: &str| steps.iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(by_id("before")["outputs"]["role"], "replica");
    assert_eq!(by_id("promote")["state"], "succeeded");
    assert!(
        by_id("fence")["note"]
            .as_str()
            .unwrap()
            .contains("does not support fencing"),
        "{run}"
    );
    assert_eq!(by_id("dns")["state"], "succeeded");
    let (seen, records) = rt.block_on(async {
        let seen = rds
            .describe_db_instances()
            .db_instance_identifier("shop-dr")
            .send()
            .await
            .unwrap();
        let zones = r53.list_hosted_zones().send().await.unwrap();
        let records = r53
            .list_resource_record_sets()
            .hosted_zone_id(zones.hosted_zones()[0].id())
            .send()
            .await
            .unwrap();
        (seen, records)
    });
    assert_eq!(
        seen.db_instances()[0].read_replica_source_db_instance_identifier(),
        None,
        "RDS says standalone"
    );
    let dr = records
        .resource_record_sets()
        .iter()
        .find(|r| r.set_identifier() == Some("usw2"))
        .unwrap();
    assert_eq!(
        dr.failover()
            .map(aws_sdk_route53::types::ResourceRecordSetFailover::as_str),
        Some("PRIMARY")
    );
}

#[test]
fn a_restore_runbook_uses_the_same_operations_as_the_cli() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("shop", 2_000);
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let book = dir.path().join("restore.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: restore-drill
objectives: {{ rto: 1h }}
steps:
  - id: ready
    action: pg.ready
    with: {{ url: "{src}", timeout: 30s }}
  - id: backup
    action: pg.backup
    needs: [ready]
    with: {{ url: "{src}", tags: {{ reason: drill }} }}
  - id: verify
    action: pg.verify
    needs: [backup]
    with: {{ snapshot: "${{steps.backup.outputs.snapshot}}", restore_into: "{admin}", checks: ["SELECT count(*) = 2000 FROM items"] }}
  - id: restore
    action: pg.restore
    needs: [backup]
    with: {{ url: "{copy}", snapshot: "${{steps.backup.outputs.snapshot}}", options: {{ mode: create, jobs: 1 }} }}
  - id: write
    action: sql.exec
    needs: [restore]
    with: {{ url: "{copy}", sql: ["INSERT INTO items (id, sku, qty) VALUES (0, 'new', 1)"] }}
  - id: check
    action: sql.check
    needs: [write]
    with: {{ url: "{copy}", sql: ["SELECT count(*) = 2001 FROM items"] }}
  - id: objectives
    action: repo.status
    needs: [verify]
    with: {{ objectives: [{{ name: shop, source: /shop, rto: 1h, verified_within: 1d }}] }}
"#,
            src = pg.dsn("shop"),
            copy = pg.dsn("shop_copy"),
            admin = pg.dsn("postgres"),
        ),
    )
    .unwrap();
    let run = d.json(&["run", book.to_str().unwrap()]);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let sum =
        "SELECT count(*) || md5(string_agg(i::text, '' ORDER BY id)) FROM items i WHERE id > 0";
    assert_eq!(
        pg.psql("shop", sum),
        pg.psql("shop_copy", sum),
        "restored rows equal the original rows"
    );
    let snaps = d.json(&["snapshots"]);
    assert_eq!(
        snaps[0]["tags"]["reason"], "drill",
        "the step's options are the CLI's"
    );
    let status = d.json(&["status"]);
    assert!(
        status["sources"][0]["last_restore_test_seconds"]
            .as_f64()
            .is_some(),
        "the verify step was recorded: {status}"
    );
}

#[test]
#[allow(clippy::too_many_lines)] // one runbook, each AWS object read back
fn aws_actions_tag_what_they_create_with_the_run_id_and_read_back() {
    let Some(moto) = Moto::start() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rds, r53) = rt.block_on(rds_replica_and_zone(&moto));
    rt.block_on(weighted_pair(&r53, "api.shop.test"));
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path()).with_env(moto.env());
    let book = dir.path().join("rds-actions.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: rds-actions
targets:
  www: {{ kind: route53, zone: shop.test, name: www.shop.test, type: A, endpoint: "{e}" }}
  api: {{ kind: route53, zone: shop.test, name: api.shop.test, type: CNAME, endpoint: "{e}" }}
steps:
  - id: replica
    action: rds.replica
    with: {{ source: shop, id: shop-dr3, region: us-east-1, endpoint: "{e}" }}
  - id: snap
    action: rds.snapshot
    needs: [replica]
    with: {{ instance: shop, snapshot: before-drill, region: us-east-1, endpoint: "{e}" }}
  - id: restored
    action: rds.restore_snapshot
    needs: [snap]
    with: {{ snapshot: before-drill, new_id: shop-restored, region: us-east-1, endpoint: "{e}" }}
  - id: probe
    action: route53.health_check
    with: {{ kind: HTTP, fqdn: www.shop.test, port: 80, path: /health, endpoint: "{e}" }}
  - id: www
    action: route53.set
    with: {{ target: www, values: [192.0.2.10], timeout: 1m }}
  - id: described
    action: rds.describe
    needs: [replica]
    with: {{ instance: shop-dr3, region: us-east-1, endpoint: "{e}" }}
  - id: waited
    action: rds.wait
    needs: [restored]
    with: {{ instance: shop-restored, timeout: 5m, region: us-east-1, endpoint: "{e}" }}
  - id: pitr
    action: rds.pitr
    with: {{ source: shop, new_id: shop-pitr, target: latest, region: us-east-1, endpoint: "{e}" }}
  - id: shift
    action: route53.weights
    with: {{ target: api, weights: {{ use1: 0, usw2: 100 }}, timeout: 1m }}
"#,
            e = moto.endpoint()
        ),
    )
    .unwrap();
    let run = d.json(&["run", book.to_str().unwrap()]);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let tags = rt.block_on(async {
        let db = rds
            .describe_db_instances()
            .db_instance_identifier("shop-dr3")
            .send()
            .await
            .unwrap();
        let arn = db.db_instances()[0].db_instance_arn().unwrap().to_owned();
        rds.list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .unwrap()
    });
    let token = tags
        .tag_list()
        .iter()
        .find(|t| t.key() == Some("drkit:request"))
        .and_then(|t| t.value());
    assert_eq!(token, run["id"].as_str(), "tagged with the run id");
    let outputs = |id: &str| dr_testkit::step(&run, id)["outputs"].clone();
    let (restored, checks, www) = rt.block_on(async {
        let db = rds
            .describe_db_instances()
            .db_instance_identifier("shop-restored")
            .send()
            .await
            .unwrap();
        let checks = r53.list_health_checks().send().await.unwrap();
        let zones = r53.list_hosted_zones().send().await.unwrap();
        let records = r53
            .list_resource_record_sets()
            .hosted_zone_id(zones.hosted_zones()[0].id())
            .send()
            .await
            .unwrap();
        (db, checks, records)
    });
    assert_eq!(
        restored.db_instances()[0].db_instance_status(),
        Some("available"),
        "the snapshot restored into a new instance"
    );
    let ours: Vec<_> = checks
        .health_checks()
        .iter()
        .filter(|h| h.caller_reference().contains(run["id"].as_str().unwrap()))
        .collect();
    assert_eq!(ours.len(), 1, "one health check for the run's step");
    assert_eq!(outputs("probe")["id"], ours[0].id());
    let a = www
        .resource_record_sets()
        .iter()
        .find(|r| r.name() == "www.shop.test." && r.r#type().as_str() == "A")
        .expect("the A record exists");
    let values: Vec<&str> = a
        .resource_records()
        .iter()
        .map(aws_sdk_route53::types::ResourceRecord::value)
        .collect();
    assert_eq!(values, ["192.0.2.10"], "Route 53 serves the new value");
    assert_eq!(
        outputs("www")["after"]["records"][0]["values"][0],
        "192.0.2.10"
    );
    // describe gives the endpoint also as host and port; wait found it available; the
    // point-in-time restore made its instance; the weights moved, read back.
    let described = outputs("described");
    let endpoint = described["endpoint"].as_str().unwrap();
    assert_eq!(
        format!(
            "{}:{}",
            described["host"].as_str().unwrap(),
            described["port"]
        ),
        endpoint
    );
    assert_eq!(outputs("waited")["status"], "available");
    let pitr = rt.block_on(async {
        rds.describe_db_instances()
            .db_instance_identifier("shop-pitr")
            .send()
            .await
            .unwrap()
    });
    assert_eq!(
        pitr.db_instances()[0].db_instance_status(),
        Some("available")
    );
    let weights = rt.block_on(async {
        let zones = r53.list_hosted_zones().send().await.unwrap();
        let records = r53
            .list_resource_record_sets()
            .hosted_zone_id(zones.hosted_zones()[0].id())
            .send()
            .await
            .unwrap();
        let mut w: Vec<(String, Option<i64>)> = records
            .resource_record_sets()
            .iter()
            .filter(|r| r.name() == "api.shop.test.")
            .map(|r| {
                (
                    r.set_identifier().unwrap_or_default().to_owned(),
                    r.weight(),
                )
            })
            .collect();
        w.sort();
        w
    });
    assert_eq!(
        weights,
        [("use1".to_owned(), Some(0)), ("usw2".to_owned(), Some(100))],
        "Route 53 serves the new weights"
    );
}

/// A weighted pair of CNAME records `name` (use1 100, usw2 0) in the zone of `r53`.
async fn weighted_pair(r53: &aws_sdk_route53::Client, name: &str) {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let zones = r53.list_hosted_zones().send().await.unwrap();
    let record = |set: &str, weight: i64, value: &str| {
        Change::builder()
            .action(ChangeAction::Create)
            .resource_record_set(
                ResourceRecordSet::builder()
                    .name(name)
                    .r#type(RrType::Cname)
                    .set_identifier(set)
                    .weight(weight)
                    .ttl(60)
                    .resource_records(ResourceRecord::builder().value(value).build().unwrap())
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    r53.change_resource_record_sets()
        .hosted_zone_id(zones.hosted_zones()[0].id())
        .change_batch(
            ChangeBatch::builder()
                .changes(record("use1", 100, "api.use1.shop.test"))
                .changes(record("usw2", 0, "api.usw2.shop.test"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// The Postgres, SQL, HTTP and repository actions as steps of one runbook, with two
/// databases in one repository: `latest` restores the database it is about, `before:`
/// (a time reference) and `tags:` narrow it, statements that cannot run in a transaction
/// run on their own, rows become outputs an `assert:` compares, an HTTP check logs in
/// with a POST and a secret header, a status page is told `monitoring`, retention and a
/// copy act on the repository; each effect read back, the secret nowhere.
#[test]
#[allow(clippy::too_many_lines)] // one runbook, each effect read back
fn the_postgres_and_repository_actions_run_as_steps_and_restore_the_right_database() {
    let Some(pg) = PgCluster::start() else { return };
    pg.fill_items("shop", 500);
    pg.fill_items("blog", 50);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rx = rt.block_on(dr_testkit::Receiver::start());
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path()).with_env([("API_TOKEN", "Tok-3141-secret".to_owned())]);
    let copy = dir.path().join("copy");
    let book = dir.path().join("actions.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: pg-actions
vars:
  token: {{ env: API_TOKEN, secret: true }}
notify:
  - {{ name: status, kind: statuspage, page_id: shop, api_key: "${{vars.token}}", url: "{rx}/sp" }}
steps:
  - id: up
    action: tcp.check
    with: {{ address: "127.0.0.1:{port}", timeout: 5s }}
  - id: shop
    action: pg.backup
    needs: [up]
    with: {{ url: "{shop}", tags: {{ tier: gold }} }}
  - id: blog
    action: pg.backup
    needs: [shop]
    with: {{ url: "{blog}" }}
  - id: count
    action: sql.query
    needs: [up]
    with: {{ url: "{shop}", sql: "SELECT count(*) AS orders, max(id) AS newest FROM items" }}
  - id: break-shop
    action: sql.exec
    needs: [blog, count]
    with: {{ url: "{shop}", sql: ["DELETE FROM items WHERE id > 100"] }}
  - id: restore
    action: pg.restore
    needs: [break-shop]
    with: {{ url: "{shop}", options: {{ mode: clean, jobs: 1 }} }}
  - id: recreate
    action: sql.exec
    needs: [blog]
    with: {{ url: "{admin}", sql: ["DROP DATABASE IF EXISTS shop_copy", "CREATE DATABASE shop_copy"] }}
  - id: restore-copy
    action: pg.restore
    needs: [recreate]
    with: {{ url: "{shop_copy}", source: shop, before: "${{steps.blog.started}}", tags: {{ tier: gold }}, random_within: 1h, options: {{ jobs: 1 }} }}
  - id: copied
    action: sql.query
    needs: [restore, restore-copy]
    with: {{ url: "{shop_copy}", sql: "SELECT count(*) AS orders, max(id) AS newest FROM items" }}
  - id: same
    action: assert
    needs: [copied, count]
    with: {{ that: "${{steps.copied.outputs.row.orders}} == ${{steps.count.outputs.row.orders}}", message: "the copy has every row" }}
  - id: login
    action: http.check
    with: {{ url: "{rx}/login", method: POST, headers: {{ authorization: "Bearer ${{vars.token}}" }}, json: {{ user: drill }} }}
  - id: monitoring
    action: notify
    needs: [same, login]
    with: {{ message: "restored; watching", severity: high, status: monitoring, components: {{ api: degraded_performance }} }}
  - id: again
    action: pg.backup
    needs: [same]
    with: {{ url: "{shop}" }}
  - id: prune
    action: repo.prune
    needs: [again]
    with: {{ keep_last: 1, grace: 0s }}
  - id: replica
    action: repo.copy
    needs: [prune]
    with: {{ to: "file://{copy}", init: true }}
"#,
            rx = rx.url(),
            port = pg.port(),
            shop = pg.dsn("shop"),
            blog = pg.dsn("blog"),
            admin = pg.dsn("postgres"),
            shop_copy = pg.dsn("shop_copy"),
            copy = copy.display(),
        ),
    )
    .unwrap();
    let out = d.run(&["--json", "run", book.to_str().unwrap()]);
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(run["outcome"], "succeeded", "{printed}");
    let outputs = |id: &str| dr_testkit::step(&run, id)["outputs"].clone();
    // `latest` into shop is shop's dump, though blog's is newer: shop has its 500 rows
    // back, and no row of blog's.
    assert_eq!(outputs("restore")["snapshot"], outputs("shop")["snapshot"]);
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM items"), "500");
    assert_eq!(
        outputs("restore-copy")["snapshot"],
        outputs("shop")["snapshot"]
    );
    let sum = "SELECT count(*) || md5(string_agg(i::text, '' ORDER BY id)) FROM items i";
    assert_eq!(
        pg.psql("shop_copy", sum),
        pg.psql("shop", sum),
        "restored rows equal the original rows"
    );
    // Rows as outputs: typed by Postgres.
    assert_eq!(
        outputs("count")["row"],
        serde_json::json!({"orders": 500, "newest": 500})
    );
    assert_eq!(
        outputs("recreate")["transaction"],
        false,
        "DROP/CREATE DATABASE each on its own"
    );
    assert_eq!(outputs("break-shop")["transaction"], true);
    // The login: a POST with the JSON body and the secret header; its answer as JSON.
    let seen = rx.received();
    let login = seen
        .iter()
        .find(|r| r.path == "/login")
        .expect("a login request");
    assert_eq!(login.method, "POST");
    assert_eq!(login.body, serde_json::json!({"user": "drill"}));
    assert_eq!(login.headers["authorization"], "Bearer Tok-3141-secret");
    assert_eq!(outputs("login")["json"]["id"], "incident-1");
    // The status page was told `monitoring`, with the component degraded.
    let told = seen
        .iter()
        .filter(|r| r.path.starts_with("/sp/"))
        .find(|r| r.body["incident"]["status"] == "monitoring")
        .expect("a status page update to monitoring");
    assert_eq!(
        told.body["incident"]["components"],
        serde_json::json!({"api": "degraded_performance"})
    );
    // Retention kept the newest dump of shop; the copy holds what remains.
    let removed = outputs("prune")["removed"].clone();
    assert_eq!(
        removed,
        serde_json::json!([outputs("shop")["snapshot"]]),
        "{removed}"
    );
    let replica = Drkit::local(BIN, &copy).json(&["snapshots"]);
    let ids: Vec<&str> = replica
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        ids.contains(&outputs("again")["snapshot"].as_str().unwrap())
            && ids.contains(&outputs("blog")["snapshot"].as_str().unwrap())
            && ids.len() == 2,
        "{replica}"
    );
    // The token: sent where it belongs, never printed or journaled.
    let shown = d.run(&["--json", "runs", "show", run["id"].as_str().unwrap()]);
    let everything = format!("{printed}{}", String::from_utf8_lossy(&shown.stdout));
    assert!(!everything.contains("Tok-3141-secret"), "{everything}");
}
