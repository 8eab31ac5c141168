//! Drills through the `drkit` binary, on real PostgreSQL servers: a primary with a
//! streaming replica and a canary, the primary stopped at once, the replica promoted;
//! the RPO the drill reports is what the recovered database holds (read here from the
//! canary table itself). A drill aimed at a server not declared a sandbox is refused
//! before anything runs; a drill killed mid-recovery is resumed and its teardown runs;
//! its report renders in Chromium, and its signed evidence names the event changed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dr_testkit::{stderr, Drkit, PgCluster, PASSWORD};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

fn drill_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/runbooks/drill.yaml")
}

/// A primary with 1,000 orders in database `shop` and its streaming replica.
fn sandbox() -> Option<(PgCluster, PgCluster)> {
    let primary = PgCluster::start()?;
    primary.psql("postgres", "CREATE DATABASE shop");
    primary.psql(
        "shop",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric(12,2) NOT NULL, \
         placed_at timestamptz NOT NULL DEFAULT clock_timestamp(), note text); \
         INSERT INTO orders (amount) SELECT g / 100.0 FROM generate_series(1, 1000) g",
    );
    let replica = primary.start_replica();
    Some((primary, replica))
}

/// One server with 2,000 orders in database `shop` (a drill's sandbox without a replica).
fn one_server() -> Option<PgCluster> {
    let pg = PgCluster::start()?;
    pg.psql("postgres", "CREATE DATABASE shop");
    pg.psql(
        "shop",
        "CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric NOT NULL); \
         INSERT INTO orders (amount) SELECT g FROM generate_series(1, 2000) g",
    );
    Some(pg)
}

fn repo(dir: &Path) -> Drkit {
    let d = Drkit::local(BIN, &dir.join("repo"));
    d.json(&["repo", "init"]);
    d
}

fn seconds(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
#[allow(clippy::too_many_lines)] // the drill, then the database that backs each figure
fn a_failover_drill_reports_the_rpo_the_recovered_database_holds() {
    let Some((primary, replica)) = sandbox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    let (html, csv) = (
        dir.path().join("report.html"),
        dir.path().join("dr-metrics.csv"),
    );
    let out = d.run(&[
        "--json",
        "drill",
        drill_file().to_str().unwrap(),
        "--var",
        &format!("primary={}", primary.dsn("shop")),
        "--var",
        &format!("replica={}", replica.dsn("shop")),
        "--var",
        "write_for=1s",
        "--keep-canary",
        "--report-html",
        html.to_str().unwrap(),
        "--metrics-csv",
        csv.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        )
    });
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_eq!(report["kind"], "drill");
    let ok = report["rto"]["verdict"] == "met" && report["rpo"]["verdict"] == "met";
    assert_eq!(out.status.code(), Some(if ok { 0 } else { 3 }), "{report}");
    let run = report["run"].as_str().unwrap();

    // The primary is really gone, and the replica really takes writes.
    assert!(
        std::process::Command::new(primary.bindir().join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &primary.port().to_string()])
            .status()
            .is_ok_and(|s| !s.success()),
        "the disaster stopped the primary"
    );
    assert_eq!(replica.psql("shop", "SELECT pg_is_in_recovery()"), "f");
    assert_eq!(
        replica.psql(
            "shop",
            "SELECT count(*) FROM orders WHERE note = 'the first order after the failover'"
        ),
        "1"
    );

    // What the recovered database holds, read here, against what the drill says.
    let held: BTreeSet<u64> = replica
        .psql(
            "shop",
            &format!("SELECT seq FROM drkit_canary.writes WHERE run = '{run}' ORDER BY seq"),
        )
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let shown = d.json(&["runs", "show", run]);
    let log = dr_testkit::step(&shown, "canary-stopped")["outputs"].clone();
    let acknowledged: Vec<&Value> = log["acknowledged"].as_array().unwrap().iter().collect();
    assert!(
        acknowledged.len() >= 5,
        "the canary wrote for a second: {log}"
    );
    let canary = &report["drill"]["canary"];
    let present: Vec<&&Value> = acknowledged
        .iter()
        .filter(|w| held.contains(&w["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(canary["acknowledged"], acknowledged.len());
    assert_eq!(canary["recovered"], present.len(), "{canary}");
    assert_eq!(
        canary["lost"],
        acknowledged.len() - present.len(),
        "{canary}"
    );
    let newest = present.last().expect("the replica has canary writes");
    assert_eq!(canary["newest_present"], newest["seq"]);
    // RPO: the disaster's moment back to the acknowledgement of that write.
    let disaster = dr_testkit::step(&shown, "primary-lost")["outputs"]["took_effect"].clone();
    let at = |m: &Value| {
        m["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let mono = |m: &Value| m["mono"]["ns"].as_u64().unwrap() as f64 / 1e9;
    let rpo = seconds(&report["rpo"]["achieved_seconds"]);
    let expected = mono(&disaster) - mono(&newest["acked"]);
    assert!(
        (rpo - expected).abs() < 1e-6,
        "RPO {rpo}, journal says {expected}"
    );
    let wall =
        (at(&disaster).as_microsecond() - at(&newest["acked"]).as_microsecond()) as f64 / 1e6;
    assert!(
        (rpo - wall).abs() < 0.05,
        "the two clocks agree: {rpo} {wall}"
    );
    assert!(rpo >= 0.0);
    // Rows of unknown outcome that turned up are counted, and nothing else is there.
    let unknown: BTreeSet<u64> = log["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        held.len(),
        present.len() + unknown.intersection(&held).count(),
        "every row held was acknowledged or of unknown outcome"
    );
    assert_eq!(
        canary["unknown_present"],
        unknown.intersection(&held).count()
    );

    // RTO: the disaster to the recovered check's first pass, both journaled.
    let rto = seconds(&report["rto"]["achieved_seconds"]);
    let checked = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "step_succeeded" && e["step"] == "takes-writes")
        .expect("the recovered check passed");
    let expected = checked["mono"]["ns"].as_u64().unwrap() as f64 / 1e9 - mono(&disaster);
    assert!(
        (rto - expected).abs() < 1e-6,
        "RTO {rto}, journal says {expected}"
    );
    assert_eq!(report["rto"]["objective_seconds"], 60.0);

    // The outputs: the HTML page, one CSV line under its header, no password anywhere.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("primary-lost") && page.contains("<svg"));
    let lines: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("time,runbook,kind"));
    assert!(lines[1].contains(",shop-failover-drill,drill,") && lines[1].contains(run));
    for text in [
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
        page,
        shown.to_string(),
    ] {
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    }
}

/// `drill.yaml` with its targets no longer declared sandboxes.
#[test]
fn a_drill_that_would_break_a_server_not_declared_a_sandbox_is_refused_before_anything_runs() {
    let Some((primary, replica)) = sandbox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    let file = dir.path().join("drill.yaml");
    let text = std::fs::read_to_string(drill_file()).unwrap().replace(
        "url: \"${vars.primary}\", sandbox: true",
        "url: \"${vars.primary}\"",
    );
    std::fs::write(&file, text).unwrap();
    let out = d.run(&[
        "drill",
        file.to_str().unwrap(),
        "--var",
        &format!("primary={}", primary.dsn("shop")),
        "--var",
        &format!("replica={}", replica.dsn("shop")),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("acts on target \"primary\", which is not a sandbox")
            && said.contains("sandbox: true"),
        "{said}"
    );
    // Nothing ran: no run journaled, the primary up, no canary table.
    assert_eq!(d.json(&["runs"]), serde_json::json!([]));
    assert_eq!(
        primary.psql("shop", "SELECT to_regclass('drkit_canary.writes') IS NULL"),
        "t"
    );
}

/// `drill.yaml` whose recovery waits an hour after its check, with a teardown step that
/// appends to `log`.
fn pausing_drill(dir: &Path, log: &Path) -> PathBuf {
    let file = dir.join("drill.yaml");
    let text = std::fs::read_to_string(drill_file()).unwrap();
    let text = text
        .replace(
            "  - id: backup\n    action: pg.backup\n    needs: [check]",
            "  - id: pause\n    action: wait\n    needs: [check]\n    with: { for: 1h }\n  - id: backup\n    action: pg.backup\n    needs: [pause]",
        )
        .replace(
            "steps:\n  - id: health",
            &format!(
                "  teardown:\n    - id: clean-up\n      action: exec\n      with: {{ argv: [sh, -c, \"echo torn down >> {}\"] }}\nsteps:\n  - id: health",
                log.display()
            ),
        );
    std::fs::write(&file, &text).unwrap();
    file
}

/// A drill whose recovery pauses, killed there with SIGKILL, resumed: the recovery goes
/// on, the canary is read, the teardown runs once, and the report has every step.
#[test]
fn a_drill_killed_mid_recovery_is_resumed_and_its_teardown_runs() {
    let Some((primary, replica)) = sandbox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    let log = dir.path().join("teardown.log");
    let file = pausing_drill(dir.path(), &log);
    let vars = [
        "--var".to_owned(),
        format!("primary={}", primary.dsn("shop")),
        "--var".to_owned(),
        format!("replica={}", replica.dsn("shop")),
        "--var".to_owned(),
        "write_for=500ms".to_owned(),
    ];
    let mut args = vec![
        "--quiet",
        "drill",
        file.to_str().unwrap(),
        "--lock-ttl",
        "2s",
    ];
    args.extend(vars.iter().map(String::as_str));
    let mut child = d.cmd(&args).spawn().unwrap();
    let id = d.wait_step_started("pause");
    // takes-writes runs beside the pause: killed in flight, a non-idempotent step would
    // (rightly) make the resume ask whether it took effect. Kill once it is done.
    let _ = d.wait_step_state("takes-writes", "succeeded");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!log.exists(), "the teardown has not run yet");

    // Resumed from another folder, once the dead run's lock lapsed; the pause is
    // counted as done.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let other = tempfile::tempdir().unwrap();
    let mut args = vec!["--json", "drill", "--resume", &id, "--skip", "pause"];
    // The URLs hold a password, which is never journaled: given again.
    args.extend(vars[..4].iter().map(String::as_str));
    let out = d.cmd(&args).current_dir(other.path()).output().unwrap();
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert_eq!(report["outcome"], "succeeded", "{report}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "torn down\n",
        "the teardown ran once"
    );
    // The report has the shape of an uninterrupted drill: every step, in order, each
    // ended; the RTO measured (the kill included), the RPO from the journaled canary.
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    let ids: Vec<&str> = steps.iter().map(|s| s.0).collect();
    assert_eq!(
        ids,
        [
            "sandbox-ready",
            "canary",
            "writes-go-on",
            "primary-lost",
            "canary-stopped",
            "health",
            "promote",
            "check",
            "pause",
            "backup",
            "takes-writes",
            "canary-read",
            "canary-drop",
            "clean-up"
        ]
    );
    assert!(
        steps.iter().all(|(id, state)| *state
            == if *id == "pause" {
                "skipped_by_operator"
            } else {
                "succeeded"
            }),
        "{steps:?}"
    );
    assert!(report["rto"]["achieved_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["rpo"]["achieved_seconds"].is_f64(), "{report}");
    assert_eq!(
        replica.psql("shop", "SELECT to_regclass('drkit_canary.writes') IS NULL"),
        "t",
        "the canary was dropped at teardown"
    );
}

/// Chromium, headless: `None` (and said) where it is not installed, outside CI.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(|name| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .find_map(|p| p);
    if found.is_none() {
        dr_testkit::missing("chromium", "install it with `apt-get install chromium`");
    }
    found
}

fn headless(chromium: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1280,1400",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
#[allow(clippy::too_many_lines)] // the page in a browser, then the evidence signed, checked, tampered with
fn a_drill_report_renders_in_chromium_and_its_signed_evidence_names_a_changed_event() {
    let Some((primary, replica)) = sandbox() else {
        return;
    };
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    let report = d.json(&[
        "drill",
        drill_file().to_str().unwrap(),
        "--var",
        &format!("primary={}", primary.dsn("shop")),
        "--var",
        &format!("replica={}", replica.dsn("shop")),
        "--var",
        "write_for=500ms",
    ]);
    let run = report["run"].as_str().unwrap();

    // The HTML report, from the journal alone, rendered by a browser.
    let html = dir.path().join("report.html");
    let out = d.run(&[
        "report",
        run,
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let url = format!("file://{}", html.display());
    let dom = headless(&chromium, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    for step in report["steps"].as_array().unwrap() {
        let id = step["id"].as_str().unwrap();
        assert!(dom.contains(id), "step {id} is not on the page");
    }
    for figure in ["rto", "rpo"] {
        let shown = format!(
            "{:.2}s",
            report[figure]["achieved_seconds"].as_f64().unwrap()
        );
        assert!(dom.contains(&shown), "{figure} {shown} is not on the page");
    }
    let shot = dir.path().join("report.png");
    let out = headless(
        &chromium,
        &[&format!("--screenshot={}", shot.display()), &url],
    );
    assert!(shot.is_file(), "no screenshot: {}", stderr(&out));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let pixels = &pixels[..info.buffer_size()];
    let colours: BTreeSet<&[u8]> = pixels.chunks(info.color_type.samples()).collect();
    assert!(
        colours.len() > 20,
        "the screenshot is blank: {} colours",
        colours.len()
    );

    // JUnit and the post-incident draft.
    let junit = d.run(&["report", run, "--format", "junit"]);
    let junit = String::from_utf8_lossy(&junit.stdout).into_owned();
    assert!(
        junit.starts_with("<?xml") && junit.contains("name=\"primary-lost\""),
        "{junit}"
    );
    let draft = d.run(&["report", run, "--format", "postmortem"]);
    let draft = String::from_utf8_lossy(&draft.stdout).into_owned();
    for section in [
        "## Summary",
        "## Timeline",
        "## Impact",
        "## Root cause",
        "## Action items",
    ] {
        assert!(draft.contains(section), "{section} missing: {draft}");
    }

    // Evidence: signed, verified; then one byte of one event changed, and named.
    let key = dir.path().join("drill.key");
    d.json(&["evidence", "keygen", "--out", key.to_str().unwrap()]);
    let bundle = dir.path().join("evidence.json");
    let out = d.run(&[
        "report",
        run,
        "--format",
        "json",
        "-o",
        dir.path().join("report.json").to_str().unwrap(),
        "--evidence",
        bundle.to_str().unwrap(),
        "--sign-key",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = format!("{}.pub", key.display());
    let verified = d.json(&[
        "evidence",
        "verify",
        bundle.to_str().unwrap(),
        "--key",
        &public,
    ]);
    assert_eq!(verified["run"], run);
    let text = std::fs::read_to_string(&bundle).unwrap();
    assert!(!text.contains(PASSWORD), "the password is in the evidence");
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    let event = doc["events"][4].as_str().unwrap().to_owned();
    let changed = event.replacen("\"seq\":5", "\"seq\":5 ", 1);
    assert_ne!(changed, event);
    doc["events"][4] = Value::String(changed);
    std::fs::write(&bundle, serde_json::to_string(&doc).unwrap()).unwrap();
    let out = d.run(&[
        "evidence",
        "verify",
        bundle.to_str().unwrap(),
        "--key",
        &public,
    ]);
    assert_eq!(out.status.code(), Some(3));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("NOT verified") && said.contains("event 5 was changed"),
        "{said}"
    );

    // Two events swapped, a field added to the report: each named.
    let tampered = |edit: &dyn Fn(&mut Value)| {
        let mut doc: Value = serde_json::from_str(&text).unwrap();
        edit(&mut doc);
        std::fs::write(&bundle, serde_json::to_string(&doc).unwrap()).unwrap();
        let out = d.run(&[
            "evidence",
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            &public,
        ]);
        assert_eq!(out.status.code(), Some(3));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = tampered(&|doc| doc["events"].as_array_mut().unwrap().swap(5, 6));
    assert!(
        said.contains("reordered: event 7 is at position 6"),
        "{said}"
    );
    let said = tampered(&|doc| doc["report"]["rto"]["note"] = "approved".into());
    assert!(said.contains("the signature does not match"), "{said}");
    // The public key is not a signing key, nor the other way round.
    let out = d.run(&[
        "report",
        run,
        "--evidence",
        bundle.to_str().unwrap(),
        "--sign-key",
        &public,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a public key"), "{}", stderr(&out));
    let out = d.run(&[
        "evidence",
        "verify",
        bundle.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is a signing key"),
        "{}",
        stderr(&out)
    );
}

/// Seed 004's test: a backup taken while the canary writes, the database dropped, the
/// backup restored. The RPO is the age of the data restored: the canary writes after
/// the backup are lost, and the restored database holds exactly those before it.
#[test]
#[allow(clippy::too_many_lines)] // the drill, the database, then status on its schedule
fn a_backup_restore_drill_measures_the_age_of_the_data_restored() {
    let Some(pg) = one_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    let file = dir.path().join("restore-drill.yaml");
    std::fs::write(
        &file,
        r#"version: 1
name: shop-restore-drill
objectives: { rto: 10m, rpo: 24h }
vars:
  db: { description: the throwaway database }
targets:
  shop: { kind: postgres, url: "${vars.db}", sandbox: true }
drill:
  canary: { target: shop, interval: 50ms }
  disaster:
    - { id: before-backup, action: wait, with: { for: 500ms } }
    - { id: nightly, action: pg.backup, needs: [before-backup], with: { url: "${vars.db}" } }
    - { id: after-backup, action: wait, needs: [nightly], with: { for: 700ms } }
    - { id: dropped, action: disaster.drop_database, needs: [after-backup], with: { target: shop } }
  recovered:
    - { id: orders-back, action: sql.check, with: { url: "${vars.db}", sql: ["SELECT count(*) = 2000 FROM orders"] } }
steps:
  - id: restore
    action: pg.restore
    with: { url: "${vars.db}", snapshot: latest }
"#,
    )
    .unwrap();
    let report = d.json(&[
        "drill",
        file.to_str().unwrap(),
        "--keep-canary",
        "--var",
        &format!("db={}", pg.dsn("shop")),
    ]);
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let run = report["run"].as_str().unwrap();
    let shown = d.json(&["runs", "show", run]);
    let log = dr_testkit::step(&shown, "canary-stopped")["outputs"].clone();
    let acknowledged = log["acknowledged"].as_array().unwrap();
    // The restored database: the canary writes the backup had, and no later one.
    let held: BTreeSet<u64> = pg
        .psql(
            "shop",
            &format!("SELECT seq FROM drkit_canary.writes WHERE run = '{run}'"),
        )
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let newest_held = *held.iter().max().expect("the backup has canary writes");
    assert!(
        held.iter().copied().eq(1..=newest_held),
        "the backup holds every write up to its own: {held:?}"
    );
    let canary = &report["drill"]["canary"];
    assert!(
        canary["lost"].as_u64().unwrap() >= 5,
        "700ms of writes after the backup are lost: {canary}"
    );
    assert_eq!(canary["newest_present"], newest_held);
    assert_eq!(
        canary["recovered"],
        held.len() - canary["unknown_present"].as_u64().unwrap() as usize
    );
    let newest = acknowledged
        .iter()
        .find(|w| w["seq"] == newest_held)
        .expect("the newest write held was acknowledged");
    let disaster = dr_testkit::step(&shown, "dropped")["outputs"]["took_effect"].clone();
    let mono = |m: &Value| m["mono"]["ns"].as_u64().unwrap() as f64 / 1e9;
    let rpo = seconds(&report["rpo"]["achieved_seconds"]);
    assert!((rpo - (mono(&disaster) - mono(&newest["acked"]))).abs() < 1e-6);
    assert!(
        rpo >= 0.7,
        "the data restored is at least as old as the writes after the backup: {rpo}"
    );
    assert_eq!(report["rpo"]["verdict"], "met");
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM orders"), "2000");

    // `drkit status` shows the drill and holds it to how recently it must be drilled.
    let objectives = dir.path().join("objectives.toml");
    let status = |text: &str| {
        std::fs::write(&objectives, text).unwrap();
        d.run(&[
            "--json",
            "status",
            "--objectives",
            objectives.to_str().unwrap(),
        ])
    };
    let fresh = status("[[service]]\nname = \"shop\"\nrunbook = \"shop-restore-drill\"\ndrilled_within = \"90d\"\n");
    assert_eq!(fresh.status.code(), Some(0), "{}", stderr(&fresh));
    let doc: Value = serde_json::from_slice(&fresh.stdout).unwrap();
    let drill = &doc["drills"][0];
    assert_eq!(drill["runbook"], "shop-restore-drill");
    assert_eq!(drill["run"], run);
    assert_eq!(
        drill["rpo"]["achieved_seconds"],
        report["rpo"]["achieved_seconds"]
    );
    // The drill started more than a second ago: stale for `1s`; another runbook never drilled.
    let stale = status("[[service]]\nname = \"shop\"\nrunbook = \"shop-restore-drill\"\ndrilled_within = \"1s\"\n\n[[service]]\nname = \"billing\"\nrunbook = \"billing-failover\"\ndrilled_within = \"90d\"\n");
    assert_eq!(stale.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&stale.stdout).unwrap();
    let missed: Vec<&str> = doc["objectives_missed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(missed.len(), 2, "{missed:?}");
    assert!(
        missed[0].starts_with("shop: runbook \"shop-restore-drill\" was last drilled"),
        "{missed:?}"
    );
    assert!(
        missed[1].contains("\"billing-failover\" was never drilled"),
        "{missed:?}"
    );
}

/// A full exercise: the recovery is two runbooks in sequence (each `uses:`d unchanged),
/// with a failback after it, timed; one report.
#[test]
#[allow(clippy::too_many_lines)] // three files, then the report and the server
fn a_full_exercise_runs_two_runbooks_in_sequence_and_times_the_failback() {
    let Some((primary, replica)) = sandbox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    std::fs::write(
        dir.path().join("promote.yaml"),
        r#"version: 1
name: promote-replica
vars:
  replica: { description: the replica to promote }
targets:
  dr_db: { kind: postgres, url: "${vars.replica}" }
steps:
  - { id: health, action: db.health, with: { target: dr_db } }
  - { id: promote, action: db.promote, needs: [health], with: { target: dr_db } }
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("verify-app.yaml"),
        r#"version: 1
name: verify-app
vars:
  url: { description: the database the app uses }
steps:
  - { id: check, action: sql.check, with: { url: "${vars.url}", sql: ["SELECT NOT pg_is_in_recovery()", "SELECT count(*) = 1000 FROM orders WHERE note IS NULL"] } }
"#,
    )
    .unwrap();
    let file = dir.path().join("exercise.yaml");
    std::fs::write(
        &file,
        r#"version: 1
name: shop-full-exercise
objectives: { rto: 1m, rpo: 5s }
vars:
  primary: { description: the throwaway primary }
  replica: { description: its replica }
targets:
  primary: { kind: postgres, url: "${vars.primary}", sandbox: true }
  standby: { kind: postgres, url: "${vars.replica}", sandbox: true }
drill:
  canary: { target: primary, read: standby }
  disaster:
    - { id: writes, action: wait, with: { for: 300ms } }
    - { id: primary-lost, action: disaster.pg_stop, needs: [writes], with: { target: primary } }
  recovered:
    - { id: takes-writes, action: sql.exec, with: { url: "${vars.replica}", sql: ["INSERT INTO orders (amount, note) VALUES (1, 'after')"] } }
  failback:
    - { id: fence-dr, action: db.fence, with: { target: standby } }
steps:
  - { id: failover, uses: promote.yaml, with: { replica: "${vars.replica}" } }
  - { id: app, uses: verify-app.yaml, needs: [failover], with: { url: "${vars.replica}" } }
"#,
    )
    .unwrap();
    let report = d.json(&[
        "drill",
        file.to_str().unwrap(),
        "--var",
        &format!("primary={}", primary.dsn("shop")),
        "--var",
        &format!("replica={}", replica.dsn("shop")),
    ]);
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let phases: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["phase"].as_str().unwrap()))
        .collect();
    for (id, phase) in [
        ("failover/health", "recovery"),
        ("failover/promote", "recovery"),
        ("app/check", "recovery"),
        ("takes-writes", "recovered"),
        ("fence-dr", "failback"),
    ] {
        assert!(
            phases.contains(&(id, phase)),
            "{id} ({phase}) in {phases:?}"
        );
    }
    let position = |id: &str| phases.iter().position(|p| p.0 == id).unwrap();
    assert!(position("failover/promote") < position("app/check"));
    assert!(position("takes-writes") < position("fence-dr"));
    let measured = &report["drill"];
    let failback = measured["failback_seconds"]
        .as_f64()
        .expect("the failback was timed");
    let fence = report["steps"][position("fence-dr")]["seconds"]
        .as_f64()
        .unwrap();
    assert!((failback - fence).abs() < 0.01, "{failback} vs {fence}");
    assert!(measured["recovery_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(report["rto"]["verdict"], "met", "{report}");
    // The failback really fenced the DR server.
    assert_eq!(
        replica.psql("shop", "SHOW default_transaction_read_only"),
        "on"
    );
}

/// Ctrl-C in the middle of the recovery: the steps in flight stop, the teardown runs, the
/// exit status is 130 — and the drill, its sandbox gone, is not resumed.
#[test]
fn ctrl_c_stops_a_drill_runs_its_teardown_and_it_is_not_resumed() {
    let Some((primary, replica)) = sandbox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    let log = dir.path().join("teardown.log");
    let file = pausing_drill(dir.path(), &log);
    let vars = [
        format!("primary={}", primary.dsn("shop")),
        format!("replica={}", replica.dsn("shop")),
    ];
    let mut child = d
        .cmd(&[
            "--quiet",
            "drill",
            file.to_str().unwrap(),
            "--var",
            &vars[0],
            "--var",
            &vars[1],
            "--var",
            "write_for=200ms",
        ])
        .spawn()
        .unwrap();
    let id = d.wait_step_started("pause");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "torn down\n");
    let shown = d.json(&["runs", "show", &id]);
    assert_eq!(shown["outcome"], "interrupted");
    assert_eq!(dr_testkit::step(&shown, "pause")["state"], "failed");
    assert_eq!(dr_testkit::step(&shown, "backup")["state"], "skipped");
    let out = d.run(&[
        "drill", "--resume", &id, "--var", &vars[0], "--var", &vars[1],
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("its teardown ran: its sandbox is gone; start a new drill"),
        "{}",
        stderr(&out)
    );
}

/// The replica's link to its primary cut, the primary writing on, then lost: the writes
/// after the cut are lost, and the drill counts them (a split seen from the replica).
#[test]
fn a_replica_cut_off_before_the_primary_is_lost_misses_the_writes_after_the_cut() {
    let Some((primary, replica)) = sandbox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    let file = dir.path().join("partition.yaml");
    std::fs::write(
        &file,
        r#"version: 1
name: shop-partition-drill
objectives: { rto: 1m, rpo: 5s }
vars:
  primary: { description: the throwaway primary }
  replica: { description: its replica }
targets:
  primary: { kind: postgres, url: "${vars.primary}", sandbox: true }
  standby: { kind: postgres, url: "${vars.replica}", sandbox: true }
drill:
  canary: { target: primary, read: standby, interval: 50ms }
  disaster:
    - { id: before, action: wait, with: { for: 300ms } }
    - { id: cut, action: disaster.replica_disconnect, needs: [before], with: { target: standby } }
    - { id: after, action: wait, needs: [cut], with: { for: 500ms } }
    - { id: primary-lost, action: disaster.pg_stop, needs: [after], with: { target: primary } }
  recovered:
    - { id: takes-writes, action: sql.exec, with: { url: "${vars.replica}", sql: ["INSERT INTO orders (amount) VALUES (1)"] } }
steps:
  - { id: promote, action: db.promote, with: { target: standby } }
"#,
    )
    .unwrap();
    let report = d.json(&[
        "drill",
        file.to_str().unwrap(),
        "--keep-canary",
        "--var",
        &format!("primary={}", primary.dsn("shop")),
        "--var",
        &format!("replica={}", replica.dsn("shop")),
    ]);
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let run = report["run"].as_str().unwrap();
    let shown = d.json(&["runs", "show", run]);
    let cut = dr_testkit::step(&shown, "cut")["outputs"]["took_effect"].clone();
    let mono = |m: &Value| m["mono"]["ns"].as_u64().unwrap();
    let log = dr_testkit::step(&shown, "canary-stopped")["outputs"].clone();
    let after_cut: Vec<u64> = log["acknowledged"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| mono(&w["acked"]) > mono(&cut))
        .map(|w| w["seq"].as_u64().unwrap())
        .collect();
    assert!(
        after_cut.len() >= 5,
        "the primary took writes after the cut: {after_cut:?}"
    );
    let held: BTreeSet<u64> = replica
        .psql(
            "shop",
            &format!("SELECT seq FROM drkit_canary.writes WHERE run = '{run}'"),
        )
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(
        after_cut.iter().all(|s| !held.contains(s)),
        "no write acknowledged after the cut reached the replica: {held:?}"
    );
    let canary = &report["drill"]["canary"];
    assert!(
        canary["lost"].as_u64().unwrap() >= after_cut.len() as u64,
        "{canary}"
    );
    // The disaster is the last blow, the primary lost: the data the replica has is at
    // least as old as the cut before it.
    assert_eq!(report["drill"]["disaster"]["step"], "primary-lost");
    let lost_at = dr_testkit::step(&shown, "primary-lost")["outputs"]["took_effect"].clone();
    let cut_age = (mono(&lost_at) - mono(&cut)) as f64 / 1e9;
    assert!(
        report["rpo"]["achieved_seconds"].as_f64().unwrap() >= cut_age,
        "RPO {} against {cut_age} s since the cut",
        report["rpo"]["achieved_seconds"]
    );
}

/// A failing disk: a table's page damaged on disk, found by reading it, the nightly
/// backup restored beside the damaged database and swapped in.
#[test]
fn a_table_damaged_on_disk_is_found_and_restored_from_the_backup() {
    let Some(pg) = one_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = repo(dir.path());
    let file = dir.path().join("disk.yaml");
    std::fs::write(
        &file,
        r#"version: 1
name: shop-bad-disk-drill
objectives: { rto: 10m }
vars:
  db: { description: the throwaway database }
targets:
  shop: { kind: postgres, url: "${vars.db}", sandbox: true }
drill:
  disaster:
    - { id: nightly, action: pg.backup, with: { url: "${vars.db}" } }
    - { id: bad-disk, action: disaster.corrupt_table, needs: [nightly], with: { target: shop, table: orders } }
  recovered:
    - { id: orders-back, action: sql.check, with: { url: "${vars.db}", sql: ["SELECT count(*) = 2000 FROM orders"] } }
steps:
  - { id: detect, action: sql.check, continue_on_error: true, with: { url: "${vars.db}", sql: ["SELECT count(*) FROM orders"] } }
  - { id: restore, action: pg.restore, needs: [detect], with: { url: "${vars.db}", snapshot: latest, options: { mode: swap } } }
"#,
    )
    .unwrap();
    let report = d.json(&[
        "drill",
        file.to_str().unwrap(),
        "--var",
        &format!("db={}", pg.dsn("shop")),
    ]);
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let run = report["run"].as_str().unwrap();
    let shown = d.json(&["runs", "show", run]);
    let detect = dr_testkit::step(&shown, "detect");
    assert_eq!(
        detect["state"], "failed",
        "the damage was there to find: {detect}"
    );
    assert!(
        detect["note"]
            .as_str()
            .unwrap()
            .contains("invalid page in block 0"),
        "{detect}"
    );
    assert_eq!(report["drill"]["disaster"]["step"], "bad-disk");
    assert_eq!(report["rto"]["verdict"], "met", "{report}");
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM orders"), "2000");
}
