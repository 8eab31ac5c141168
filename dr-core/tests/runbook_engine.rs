//! The runbook engine against the in-memory store and fakes, no sockets: validation of a
//! corpus of bad runbooks, ordering, failure policies, compensation, retries on a paused
//! clock, guards, approvals, plans without side effects, resume and the lock.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dr_core::fake::{FakeDatabase, FakeRouter, FakeTargets, MemoryLock};
use dr_core::lock::Lock;
use dr_core::runbook::{
    actions, parse_yaml, Action, ActionSpec, Engine, Outcome, Registry, RunOptions, StepContext,
};
use dr_core::store::{DynStore, MemoryStore};
use dr_core::target::{DatabaseTarget, Role};
use dr_core::traffic::{Route, TrafficRouter};
use dr_core::{err, ErrorKind, Result};
use serde_json::{json, Map, Value};

/// Counts its runs; fails (retryably) the first `fail` times.
#[derive(Clone, Default)]
struct Counter {
    runs: Arc<AtomicU32>,
    fail: u32,
    name: &'static str,
    idempotent: bool,
}

#[async_trait]
impl Action for Counter {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: self.name.to_owned(),
            summary: "counts".into(),
            idempotent: self.idempotent,
            params: vec![],
            outputs: vec![dr_core::runbook::Field::required("n", "int", "run number")],
            ..ActionSpec::default()
        }
    }
    async fn run(&self, _: &StepContext, with: &Value) -> Result<Outcome> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if with.get("sleep").is_some() {
            tokio::time::sleep(Duration::from_hours(1)).await;
        }
        if n <= self.fail {
            return Err(err!(Unavailable, "flaky, run {n}"));
        }
        if with.get("break").is_some() {
            return Err(err!(External, "broken on purpose"));
        }
        let mut m = Map::new();
        m.insert("n".into(), json!(n));
        Ok(Outcome::Done(m))
    }
}

fn pair() -> Route {
    dr_core::fake::failover_pair("app.example.com.", "use1", "usw2")
}

struct World {
    engine: Engine,
    store: DynStore,
    old: FakeDatabase,
    replica: FakeDatabase,
    dns: FakeRouter,
    counter: Counter,
}

fn world() -> World {
    let old = FakeDatabase::primary("shop-use1");
    let replica = FakeDatabase::replica("shop-usw2", "shop-use1");
    let dns = FakeRouter::new(pair());
    let counter = Counter {
        name: "test.count",
        idempotent: true,
        ..Counter::default()
    };
    let once = Counter {
        name: "test.once",
        idempotent: false,
        ..Counter::default()
    };
    let mut registry = Registry::new();
    actions::register(&mut registry);
    registry.action(counter.clone()).action(once);
    registry.target_kind(
        FakeTargets::new()
            .database("old", old.clone())
            .database("dr_db", replica.clone())
            .router("app_dns", dns.clone()),
    );
    let store: DynStore = MemoryStore::new();
    let locks: Arc<std::sync::Mutex<std::collections::BTreeMap<String, MemoryLock>>> =
        Arc::default();
    let engine = Engine::new(
        registry,
        store.clone(),
        Arc::new(move |name: &str| {
            let mut l = locks.lock().unwrap();
            Ok(Arc::new(
                l.entry(name.to_owned())
                    .or_insert_with(|| MemoryLock::new(name))
                    .clone(),
            ) as Arc<dyn Lock>)
        }),
    );
    World {
        engine,
        store,
        old,
        replica,
        dns,
        counter,
    }
}

const FAILOVER: &str = r#"
version: 1
name: shop-region-failover
objectives: { rto: 15m, rpo: 5m }
vars:
  to: { default: usw2 }
targets:
  old: { kind: fake }
  dr_db: { kind: fake }
  app_dns: { kind: fake }
notify:
  - { name: ops, kind: webhook, url: "http://127.0.0.1:1/hook", on: [] }
steps:
  - id: lag-ok
    action: db.check_lag
    with: { target: dr_db, max: "${objectives.rpo}" }
  - id: fence
    action: db.fence
    with: { target: old }
  - id: promote
    action: db.promote
    needs: [lag-ok, fence]
    with: { target: dr_db }
    guard: { mode: planned, step: lag-ok }
  - id: dns
    action: traffic.switch
    needs: [promote]
    with: { target: app_dns, to: { set: "${vars.to}" } }
    on_failure: compensate
    compensate: { action: traffic.restore, with: { target: app_dns, route: "${steps.dns.outputs.before}" } }
  - id: tell
    action: notify
    always: true
    with: { severity: high, message: "failover ${run.outcome}: ${steps.promote.outputs.endpoint}" }
"#;

#[tokio::test]
async fn a_failover_runs_in_order_journals_every_step_and_plans_without_side_effects() {
    let w = world();
    let (rb, map) = parse_yaml(FAILOVER, "failover.yaml").unwrap();
    let plan = w
        .engine
        .plan(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    let text = serde_json::to_string(&plan).unwrap();
    assert!(text.contains("promotes shop-usw2 from replica"), "{text}");
    assert!(
        text.contains("set usw2: SECONDARY usw2.example.com -> PRIMARY usw2.example.com"),
        "{text}"
    );
    assert!(
        text.contains("replication lag now 0s, objective at most 5m"),
        "{text}"
    );
    assert!(
        text.contains("known after promote"),
        "values of later steps: {text}"
    );
    assert_eq!(
        (
            w.dns.switches(),
            w.replica.calls().len(),
            w.old.calls().len()
        ),
        (0, 0, 0),
        "a plan changes nothing"
    );

    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "succeeded", "{run:#?}");
    assert_eq!(w.replica.health().await.unwrap().role, Role::Primary);
    assert!(!w.old.health().await.unwrap().writable);
    assert_eq!(
        w.dns
            .current()
            .await
            .unwrap()
            .record("usw2")
            .unwrap()
            .failover
            .as_deref(),
        Some("PRIMARY")
    );
    assert!(run.step("promote").unwrap().started >= run.step("lag-ok").unwrap().ended);
    assert!(run.step("dns").unwrap().started >= run.step("promote").unwrap().ended);
    assert_eq!(
        run.step("tell").unwrap().outputs["message"],
        "failover succeeded: shop-usw2.internal:5432"
    );
    // Every step's start is journaled before its end, numbered without gaps.
    let seqs: Vec<u64> = run.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let listed = w.engine.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].outcome, "succeeded");
}

#[tokio::test]
async fn a_failing_step_compensates_the_finished_ones_newest_first_and_always_steps_run() {
    let w = world();
    let yaml = r#"
version: 1
name: compensating
targets: { app_dns: { kind: fake } }
notify:
  - { name: ops, kind: webhook, url: "http://127.0.0.1:1/hook", on: [] }
steps:
  - id: dns
    action: traffic.switch
    with: { target: app_dns, to: { set: usw2 } }
    compensate: { action: traffic.restore, with: { target: app_dns, route: "${steps.dns.outputs.before}" } }
  - id: count
    action: test.count
    needs: [dns]
    compensate: { action: test.count, with: {} }
  - id: boom
    action: test.count
    needs: [count]
    with: { break: true }
    on_failure: compensate
  - id: after
    action: test.count
    needs: [boom]
  - id: report
    action: notify
    needs: [boom]
    always: true
    with: { message: "outcome ${run.outcome}" }
"#;
    let (rb, map) = parse_yaml(yaml, "c.yaml").unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "compensated", "{run:#?}");
    assert_eq!(
        w.dns.current().await.unwrap(),
        pair(),
        "the route is back as it was"
    );
    assert_eq!(run.step("after").unwrap().state, "skipped");
    assert_eq!(run.step("report").unwrap().state, "succeeded");
    let order: Vec<String> = run
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            dr_core::runbook::journal::EventKind::CompensationStarted { step } => {
                Some(step.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(order, ["count", "dns"], "newest first");
    // count ran, boom ran once, the compensation of count ran once.
    assert_eq!(w.counter.runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded_and_only_for_retryable_errors_and_timeouts_hold() {
    let w = world();
    let mut flaky = w.counter.clone();
    flaky.fail = 2;
    let mut registry = Registry::new();
    actions::register(&mut registry);
    registry.action(flaky.clone());
    let engine = Engine::new(
        registry,
        MemoryStore::new(),
        Arc::new(|n: &str| Ok(Arc::new(MemoryLock::new(n)) as Arc<dyn Lock>)),
    );
    let yaml = "version: 1\nname: r\nsteps:\n  - id: a\n    action: test.count\n    retry: { attempts: 3, backoff: 10s }\n";
    let (rb, map) = parse_yaml(yaml, "r.yaml").unwrap();
    let started = tokio::time::Instant::now();
    let run = engine.run(&rb, &map, &RunOptions::default()).await.unwrap();
    assert_eq!(run.outcome, "succeeded");
    assert_eq!(run.step("a").unwrap().attempts, 3);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "10 s, then 20 s of backoff"
    );
    // Two attempts are not enough: the run fails, naming step and action.
    flaky.runs.store(0, Ordering::SeqCst);
    let yaml2 = yaml.replace("attempts: 3", "attempts: 2");
    let (rb, map) = parse_yaml(&yaml2, "r.yaml").unwrap();
    let run = engine.run(&rb, &map, &RunOptions::default()).await.unwrap();
    assert_eq!(run.outcome, "failed");
    assert!(
        run.step("a")
            .unwrap()
            .note
            .as_deref()
            .unwrap()
            .contains("step \"a\" (test.count)"),
        "{run:#?}"
    );
    // A step that runs past its timeout fails as a timeout.
    let yaml3 = "version: 1\nname: t\nsteps:\n  - id: slow\n    action: test.count\n    with: { sleep: true }\n    timeout: 2s\n";
    let (rb, map) = parse_yaml(yaml3, "t.yaml").unwrap();
    let run = engine.run(&rb, &map, &RunOptions::default()).await.unwrap();
    assert_eq!(run.outcome, "failed");
    assert!(
        run.step("slow")
            .unwrap()
            .note
            .as_deref()
            .unwrap()
            .contains("did not finish within 2s"),
        "{run:#?}"
    );
}

#[tokio::test]
async fn guards_hold_in_planned_mode_and_are_noted_in_forced_mode() {
    let w = world();
    w.replica.set_lag(Duration::from_mins(20));
    let (rb, map) = parse_yaml(
        &FAILOVER.replace("    on_failure: compensate\n", ""),
        "f.yaml",
    )
    .unwrap();
    // Planned: the lag check fails, so nothing is promoted.
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "failed");
    assert_eq!(run.step("promote").unwrap().state, "skipped");
    assert_eq!(w.replica.health().await.unwrap().role, Role::Replica);
    // Forced: the primary is gone; the lag check still fails but the guard is lifted.
    let yaml = FAILOVER.replace(
        "    with: { target: dr_db, max: \"${objectives.rpo}\" }\n",
        "    with: { target: dr_db, max: \"${objectives.rpo}\" }\n    on_failure: continue\n",
    );
    let (rb, map) = parse_yaml(&yaml, "f.yaml").unwrap();
    let forced = RunOptions {
        mode: dr_core::runbook::Mode::Forced,
        ..RunOptions::default()
    };
    let run = w.engine.run(&rb, &map, &forced).await.unwrap();
    assert_eq!(
        run.step("promote").unwrap().state,
        "skipped",
        "a failed need still blocks: {run:#?}"
    );
}

#[tokio::test]
async fn an_approval_stops_a_non_interactive_run_which_resumes_once_approved() {
    let w = world();
    let yaml = "version: 1\nname: a\nsteps:\n  - id: first\n    action: test.count\n  - id: ok\n    action: approve\n    needs: [first]\n  - id: then\n    action: test.count\n    needs: [ok]\n";
    let (rb, map) = parse_yaml(yaml, "a.yaml").unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "waiting");
    assert_eq!(run.step("ok").unwrap().state, "waiting");
    assert_eq!(w.counter.runs.load(Ordering::SeqCst), 1);
    let approved = RunOptions {
        approve: ["ok".to_owned()].into(),
        ..RunOptions::default()
    };
    let resumed = w.engine.resume(&run.id, &approved).await.unwrap();
    assert_eq!(resumed.outcome, "succeeded", "{resumed:#?}");
    assert_eq!(
        w.counter.runs.load(Ordering::SeqCst),
        2,
        "the finished step did not run again"
    );
    let e = w.engine.resume(&run.id, &approved).await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Conflict,
        "an ended run is not resumed: {e}"
    );
}

#[tokio::test]
async fn a_second_run_of_the_same_lock_is_refused_naming_the_holder() {
    let w = world();
    let yaml = "version: 1\nname: slow\nlock: shop\nsteps:\n  - id: nap\n    action: wait\n    with: { for: 300ms }\n";
    let (rb, map) = parse_yaml(yaml, "s.yaml").unwrap();
    let first = {
        let (engine, rb, map) = (w.engine.clone(), rb.clone(), map.clone());
        tokio::spawn(async move { engine.run(&rb, &map, &RunOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string().contains("lock \"shop\"") && e.to_string().contains("run "),
        "{e}"
    );
    assert_eq!(first.await.unwrap().unwrap().outcome, "succeeded");
}

#[tokio::test]
async fn every_problem_of_a_bad_runbook_is_named_with_line_and_column() {
    let w = world();
    let yaml = r#"version: 1
name: bad
vars:
  replica: { default: r }
targets:
  dr_db: { kind: fake }
  dns: { kind: nosuchkind }
notify: [{ name: ops, kind: webhook, url: "http://127.0.0.1:1/hook", on: [] }]
steps:
  - id: a
    action: db.promot
    with: { target: dr_db }
  - id: b
    action: db.promote
    needs: [c]
    with: { target: nowhere }
  - id: c
    action: notify
    needs: [b]
    with: { message: "${vars.missing} ${steps.b.outputs.nope}" }
  - id: d
    action: wait
    with: { for: "soon" }
    colour: red
"#;
    let e = w.engine.load(yaml, "bad.yaml").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let m = e.to_string();
    for (needle, place) in [
        ("unknown kind \"nosuchkind\"", "bad.yaml:7:"),
        (
            "unknown action \"db.promot\"; did you mean db.promote",
            "bad.yaml:11:",
        ),
        ("target \"nowhere\", which is not declared", "bad.yaml:16:"),
        ("no variable \"missing\"", "bad.yaml:20:"),
        ("db.promote has no output \"nope\"", "bad.yaml:20:"),
        ("\"soon\"", "bad.yaml:23:"),
        ("unknown field \"colour\"", "bad.yaml:24:"),
        ("cycle: b -> c -> b", "bad.yaml:"),
    ] {
        let line = m
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("names {needle}: {m}"));
        assert!(
            line.trim_start().starts_with(place),
            "{needle} at {place}: {line}"
        );
    }
}

#[tokio::test]
async fn uses_runs_a_shared_procedure_in_place_with_its_variables() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("restore-db.yaml"),
        "version: 1\nname: restore-db\nvars:\n  db: {}\n  jobs: { default: 2 }\nsteps:\n  - id: stop\n    action: test.count\n  - id: restore\n    action: test.count\n    needs: [stop]\n    with: { db: \"${vars.db}\", jobs: \"${vars.jobs}\", after: \"${steps.stop.outputs.n}\" }\n  - id: start\n    action: test.count\n    needs: [restore]\n",
    )
    .unwrap();
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        "version: 1\nname: main\nsteps:\n  - id: backup\n    action: test.count\n  - id: shop\n    uses: restore-db.yaml\n    needs: [backup]\n    with: { db: shop }\n  - id: after\n    action: test.count\n    needs: [shop]\n    with: { started_as: \"${steps.shop/start.outputs.n}\" }\n",
    )
    .unwrap();
    let (rb, map) = w.engine.load_file(&main).unwrap();
    let ids: Vec<&str> = rb.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        ["backup", "shop/stop", "shop/restore", "shop/start", "after"]
    );
    assert_eq!(rb.step("shop/stop").unwrap().needs, ["backup"]);
    assert_eq!(rb.step("after").unwrap().needs, ["shop/start"]);
    assert_eq!(
        rb.step("shop/restore").unwrap().with,
        json!({"db": "shop", "jobs": 2, "after": "${steps.shop/stop.outputs.n}"})
    );
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "succeeded", "{run:#?}");
    let n = |id: &str| run.step(id).unwrap().outputs["n"].as_u64().unwrap();
    assert!(
        n("backup") < n("shop/stop")
            && n("shop/stop") < n("shop/restore")
            && n("shop/restore") < n("shop/start")
            && n("shop/start") < n("after")
    );

    // A missing variable and a cycle are named before anything runs.
    std::fs::write(&main, "version: 1\nname: main\nsteps:\n  - id: shop\n    uses: restore-db.yaml\n  - id: again\n    uses: main.yaml\n").unwrap();
    let e = w.engine.load_file(&main).unwrap_err().to_string();
    assert!(e.contains("without its variable \"db\""), "{e}");
    assert!(e.contains("uses itself"), "{e}");
}

/// An `if:` on the using step holds for what it brings in, an included `if:` reads a
/// variable bound to the includer's reference, its targets read its variables, and a
/// step after it does not wait for its `always` steps.
#[tokio::test]
async fn uses_takes_its_if_its_bindings_into_conditions_and_targets_and_skips_always_leaves() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("restore.yaml"),
        "version: 1\nname: restore\nvars:\n  plane: { default: \"\" }\n  host: {}\ntargets:\n  db: { kind: fake, url: \"postgres://app@${vars.host}/shop\" }\nsteps:\n  - id: main\n    action: test.count\n  - id: plane\n    action: test.count\n    if: vars.plane != \"\"\n    needs: [main]\n  - id: tell\n    action: test.count\n    always: true\n",
    )
    .unwrap();
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        "version: 1\nname: main\nvars:\n  kind: { default: data }\n  local: { default: \"x\" }\nsteps:\n  - id: data\n    uses: restore.yaml\n    if: vars.kind == \"data\"\n    with: { plane: \"${vars.local}\", host: \"db.internal:5432\" }\n  - id: full\n    uses: restore.yaml\n    if: vars.kind == \"full\"\n    with: { host: \"db.internal:5432\" }\n  - id: after\n    action: test.count\n    needs: [data]\n",
    )
    .unwrap();
    let (mut rb, map) = w.engine.load_file(&main).unwrap();
    assert_eq!(rb.step("after").unwrap().needs, ["data/plane"]);
    assert_eq!(
        rb.targets["db"].fields["url"],
        json!("postgres://app@db.internal:5432/shop")
    );
    rb.targets.remove("db"); // no step acts on it; the fakes have none to give
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "succeeded", "{run:#?}");
    let state = |id: &str| run.step(id).unwrap().state;
    assert_eq!(
        [state("data/main"), state("data/plane"), state("after")],
        ["succeeded", "succeeded", "succeeded"]
    );
    assert_eq!(
        [state("full/main"), state("full/plane")],
        ["skipped", "skipped"]
    );
}

#[tokio::test]
async fn a_problem_in_an_included_runbook_names_its_file_line_and_column() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("inner.yaml");
    std::fs::write(
        &inner,
        "version: 1\nname: inner\nsteps:\n  - id: ok\n    action: test.count\n  - id: bad\n    action: test.cuont\n  - id: deeper\n    uses: deepest.yaml\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("deepest.yaml"),
        "version: 1\nname: deepest\nsteps:\n  - id: x\n    action: test.count\n    needs: [nowhere]\n",
    )
    .unwrap();
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        "version: 1\nname: main\nsteps:\n  - id: first\n    action: nope\n  - id: shop\n    uses: inner.yaml\n",
    )
    .unwrap();
    let e = w.engine.load_file(&main).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().skip(1).map(str::trim).collect();
    let main_s = main.display().to_string();
    let inner_s = inner.display().to_string();
    let deepest_s = dir.path().join("deepest.yaml").display().to_string();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{main_s}:5:")) && l.contains("nope")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{inner_s}:7:")) && l.contains("test.cuont")),
        "the included step's own line: {e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{deepest_s}:6:")) && l.contains("nowhere")),
        "two includes deep: {e}"
    );
}

#[tokio::test]
async fn an_exec_step_keeps_the_end_of_a_huge_output_and_says_what_it_cut() {
    let w = world();
    // 3 MB of output, then the line that matters; then the same on stderr, failing.
    let yaml = r#"version: 1
name: chatty
steps:
  - id: loud
    action: exec
    with: { argv: [sh, -c, "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo THE-END"] }
  - id: fails
    action: exec
    needs: [loud]
    with: { argv: [sh, -c, "head -c 3000000 /dev/zero | tr '\\0' b >&2; echo >&2; echo WHY-IT-FAILED >&2; exit 3"] }
"#;
    let (rb, map) = parse_yaml(yaml, "chatty.yaml").unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    let out = run.step("loud").unwrap().outputs["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = 64 << 10;
    assert!(
        out.ends_with("THE-END\n"),
        "the end is kept: {}",
        &out[out.len() - 40..]
    );
    assert!(
        out.len() <= kept + 64,
        "only the end is kept: {} bytes",
        out.len()
    );
    let cut = 3_000_000 + 1 + 8 - kept;
    assert!(
        out.starts_with(&format!("[{cut} earlier bytes not kept]\n")),
        "says how much it cut: {}",
        &out[..60]
    );
    let failed = run.step("fails").unwrap();
    assert_eq!(failed.state, dr_core::runbook::StepState::Failed);
    let why = failed.note.as_deref().unwrap_or_default();
    assert!(
        why.contains("WHY-IT-FAILED") && why.contains("earlier bytes not kept"),
        "{}",
        &why[..200.min(why.len())]
    );
    assert!(why.len() <= kept + 400, "{} bytes", why.len());
}

#[tokio::test]
async fn a_timed_out_step_runs_again_only_when_it_is_idempotent() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    for (idempotent, runs) in [(false, 1), (true, 3)] {
        let effects = dir.path().join(format!("effects-{idempotent}"));
        let yaml = format!(
            r#"version: 1
name: slow-{idempotent}
steps:
  - id: charge
    action: exec
    timeout: 300ms
    retry: {{ attempts: 3, backoff: 10ms }}
    with: {{ argv: [sh, -c, "echo charged >> {}; sleep 5"], idempotent: {idempotent} }}
"#,
            effects.display()
        );
        let (rb, map) = parse_yaml(&yaml, "slow.yaml").unwrap();
        let run = w
            .engine
            .run(&rb, &map, &RunOptions::default())
            .await
            .unwrap();
        assert_eq!(run.outcome, dr_core::runbook::RunOutcome::Failed);
        let lines = std::fs::read_to_string(&effects).unwrap().lines().count();
        assert_eq!(lines, runs, "idempotent: {idempotent}");
        let noted = run.events.iter().any(|e| {
            matches!(&e.kind, dr_core::runbook::journal::EventKind::Note { text, .. } if text.starts_with("not retried"))
        });
        assert_eq!(
            noted, !idempotent,
            "the journal says why it was not retried"
        );
    }
}

#[tokio::test]
async fn secrets_written_into_a_runbook_are_never_journaled_and_are_asked_again_on_resume() {
    use dr_core::store::BackupStoreExt;
    let w = world();
    let yaml = r#"version: 1
name: inline-secrets
vars:
  api: { default: "https://bob:BobPass-III999@api.internal/x" }
notify:
  - { name: hook, kind: webhook, url: "http://127.0.0.1:9/hook/HookToken-777" }
  - { name: pager, kind: pagerduty, routing_key: RoutingKey-555, on: [] }
steps:
  - id: gate
    action: approve
    with: { message: "go on?" }
  - id: use
    action: notify
    needs: [gate]
    with: { message: "using ${vars.api}" }
"#;
    let (rb, map) = parse_yaml(yaml, "inline.yaml").unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, dr_core::runbook::RunOutcome::Waiting);
    // The repository is not encrypted: the journal is readable JSON, without the secrets.
    let mut journal = String::new();
    for o in w.store.list_all("runs/").await.unwrap() {
        journal.push_str(&String::from_utf8_lossy(
            &w.store.get_bytes(&o.key).await.unwrap(),
        ));
    }
    assert!(journal.contains("inline-secrets"), "the journal is read");
    for secret in ["BobPass-III999", "HookToken-777", "RoutingKey-555"] {
        assert!(!journal.contains(secret), "{secret} journaled");
    }
    // The variable that held a password must be given again: it is not quietly resumed
    // without it.
    let approve = RunOptions {
        approve: ["gate".to_owned()].into(),
        ..RunOptions::default()
    };
    let e = w
        .engine
        .resume(run.id.as_str(), &approve)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("held a password"), "{e}");
    let given = RunOptions {
        vars: [(
            "api".to_owned(),
            json!("https://bob:BobPass-III999@api.internal/x"),
        )]
        .into(),
        ..approve
    };
    let resumed = w.engine.resume(run.id.as_str(), &given).await.unwrap();
    assert_eq!(
        resumed.outcome,
        dr_core::runbook::RunOutcome::Succeeded,
        "{resumed:#?}"
    );
    let notes: Vec<String> = resumed
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            dr_core::runbook::journal::EventKind::Note { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    for name in ["hook", "pager"] {
        assert!(
            notes
                .iter()
                .any(|n| n.contains(&format!("notifier {name:?} is not told of this resume"))),
            "{notes:?}"
        );
    }
}

#[tokio::test]
async fn every_run_is_measured_against_its_rto_objective() {
    let w = world();
    for (pause, met) in [("10ms", true), ("400ms", false)] {
        let yaml = format!(
            "version: 1\nname: rto-{met}\nobjectives: {{ rto: 200ms }}\nsteps:\n  - id: nap\n    action: wait\n    with: {{ for: {pause} }}\n"
        );
        let (rb, map) = parse_yaml(&yaml, "rto.yaml").unwrap();
        let run = w
            .engine
            .run(&rb, &map, &RunOptions::default())
            .await
            .unwrap();
        let rto = run.rto.unwrap();
        assert!((rto.objective_seconds - 0.2).abs() < 1e-9, "{rto:?}");
        assert_eq!(rto.met, Some(met), "{rto:?}");
        assert!((rto.achieved_seconds - run.seconds).abs() < 1e-9, "{rto:?}");
        // The same verdict read back from the journal.
        let shown = w.engine.show(run.id.as_str()).await.unwrap();
        assert_eq!(shown.rto.unwrap().met, Some(met));
    }
    // A run that failed missed it, whatever its time.
    let yaml = "version: 1\nname: rto-failed\nobjectives: { rto: 1h }\nsteps:\n  - id: boom\n    action: exec\n    with: { argv: [\"false\"] }\n";
    let (rb, map) = parse_yaml(yaml, "rto.yaml").unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.rto.unwrap().met, Some(false));
}

/// A step its own `if:` skips was not needed: the steps after it run (seed 001's failover
/// skips the test-only data-plane promotion in production, and must still repoint and
/// scale). A step skipped because a need failed takes its dependents with it.
#[tokio::test]
async fn a_step_not_needed_does_not_stop_the_steps_after_it() {
    let w = world();
    let yaml = r#"version: 1
name: not-needed
vars:
  data_plane: { default: "" }
steps:
  - id: promote
    action: exec
    with: { argv: ["true"] }
  - id: data-plane
    action: exec
    needs: [promote]
    if: vars.data_plane != ""
    with: { argv: ["echo", "${vars.data_plane}"] }
  - id: repoint
    action: exec
    needs: [data-plane]
    with: { argv: ["echo", "repointed"] }
  - id: scale
    action: exec
    needs: [repoint]
    with: { argv: ["echo", "scaled"] }
"#;
    let (rb, map) = parse_yaml(yaml, "not-needed.yaml").unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "succeeded", "{run:#?}");
    assert_eq!(run.step("data-plane").unwrap().state, "skipped");
    assert_eq!(run.step("repoint").unwrap().state, "succeeded");
    assert_eq!(
        run.step("scale").unwrap().outputs["stdout"]
            .as_str()
            .map(str::trim),
        Some("scaled")
    );

    // The same chain after a failure: nothing after it runs.
    let failing = yaml.replace(r#"argv: ["true"]"#, r#"argv: ["false"]"#);
    let (rb, map) = parse_yaml(&failing, "not-needed.yaml").unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "failed");
    for id in ["data-plane", "repoint", "scale"] {
        assert_eq!(run.step(id).unwrap().state, "skipped", "{id}");
    }
}

/// Seed 002's database failure: restart first, and only if that failed, restore. The
/// failed restart is a branch, not the run's failure; time references name today.
#[tokio::test]
async fn a_failure_marked_continue_on_error_is_a_branch_and_time_is_a_reference() {
    let w = world();
    let yaml = r#"version: 1
name: branch
steps:
  - id: restart
    action: exec
    with: { argv: ["false"] }
    continue_on_error: true
  - id: restore
    action: exec
    needs: [restart]
    if: steps.restart.state == "failed"
    with: { argv: ["echo", "dr-test-${now | date('%Y%m%d')} after ${steps.restart.seconds | duration} from ${run.started}"] }
  - id: celebrate
    action: exec
    needs: [restart]
    if: steps.restart.state == "succeeded"
    with: { argv: ["true"] }
"#;
    let (rb, map) = parse_yaml(yaml, "branch.yaml").unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "succeeded", "{run:#?}");
    assert_eq!(run.step("restart").unwrap().state, "failed");
    assert_eq!(run.step("celebrate").unwrap().state, "skipped");
    let restore = run.step("restore").unwrap();
    assert_eq!(restore.state, "succeeded");
    let said = restore.outputs["stdout"]
        .as_str()
        .unwrap()
        .trim()
        .to_owned();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y%m%d")
        .to_string();
    assert!(
        said.starts_with(&format!("dr-test-{today} after ")),
        "{said}"
    );
    let (took, started) = said["dr-test-YYYYMMDD after ".len()..]
        .split_once(" from ")
        .unwrap();
    dr_core::duration::parse(took).unwrap();
    assert_eq!(started, run.started.to_string());

    // Without continue_on_error the same failure fails the run, and restore never runs.
    let (rb, map) = parse_yaml(
        &yaml.replace("    continue_on_error: true\n", ""),
        "branch.yaml",
    )
    .unwrap();
    let run = w
        .engine
        .run(&rb, &map, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(run.outcome, "failed");
    assert_eq!(run.step("restore").unwrap().state, "skipped");

    // A misspelt filter, or continue_on_error beside on_failure, is named before the run.
    let bad = yaml.replace("date('%Y%m%d')", "dat('%Y%m%d')").replace(
        "    continue_on_error: true\n",
        "    continue_on_error: true\n    on_failure: compensate\n",
    );
    let e = w.engine.load(&bad, "bad.yaml").unwrap_err().to_string();
    assert!(e.contains("unknown filter \"dat('%Y%m%d')\""), "{e}");
    assert!(
        e.contains("has both continue_on_error and on_failure"),
        "{e}"
    );
}

/// A variable's value is checked where it is used before anything runs; an `assert:`
/// reads its expression over the run's names; a misspelt filter is named even on a
/// variable only the run will know.
#[tokio::test]
async fn values_are_checked_where_used_before_the_run_and_assert_reads_expressions() {
    let w = world();
    let yaml = r#"version: 1
name: checked
vars:
  pause: { env: CHECKED_PAUSE_NEVER_SET }
steps:
  - id: one
    action: test.count
  - id: nap
    action: wait
    needs: [one]
    with: { for: "${vars.pause}" }
  - id: sure
    action: assert
    needs: [nap]
    with: { that: "steps.one.outputs.n == 1 and vars.pause == '10ms'" }
"#;
    let (rb, map) = parse_yaml(yaml, "checked.yaml").unwrap();
    let bad = RunOptions {
        vars: [("pause".to_owned(), json!("soon"))].into_iter().collect(),
        ..RunOptions::default()
    };
    let e = w.engine.run(&rb, &map, &bad).await.unwrap_err();
    assert!(e.to_string().contains("checked.yaml:11:"), "{e}");
    assert!(e.to_string().contains("\"soon\" is not a duration"), "{e}");
    assert_eq!(
        w.counter.runs.load(Ordering::SeqCst),
        0,
        "nothing ran before the value was checked"
    );
    let good = RunOptions {
        vars: [("pause".to_owned(), json!("10ms"))].into_iter().collect(),
        ..RunOptions::default()
    };
    let run = w.engine.run(&rb, &map, &good).await.unwrap();
    assert_eq!(run.outcome, "succeeded", "{run:#?}");
    let failing = yaml.replace("n == 1", "n == 99");
    let (rb, map) = parse_yaml(&failing, "checked.yaml").unwrap();
    let run = w.engine.run(&rb, &map, &good).await.unwrap();
    assert_eq!(run.outcome, "failed");
    assert!(run
        .step("sure")
        .unwrap()
        .note
        .as_deref()
        .unwrap_or_default()
        .contains("assertion failed"));

    let e = w
        .engine
        .load(
            &yaml.replace("${vars.pause}", "${vars.pause | bogus}"),
            "f.yaml",
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown filter \"bogus\""), "{e}");
}
