//! Notifications of a run, received by a real HTTP server in the test kit: Slack, a JSON
//! webhook, Statuspage and PagerDuty payloads, routing by severity and event, 429 then
//! success, a failing notifier as a journal warning — and no secret anywhere.

use std::sync::Arc;

use base64::Engine as _;

use dr_core::lock::Lock;
use dr_core::runbook::{Engine, RunOptions};
use dr_core::store::MemoryStore;
use dr_testkit::Receiver;

const SLACK_SECRET: &str = "T000-B000-very-secret-hook";
const PD_KEY: &str = "pd-routing-key-secret";
const SP_KEY: &str = "statuspage-api-key-secret";
const HOOK_PASSWORD: &str = "hook-basic-password-secret";

/// This build's registry, journaling in memory.
fn engine() -> Engine {
    Engine::new(
        drkit::registry(),
        MemoryStore::new(),
        Arc::new(|n: &str| Ok(Arc::new(dr_core::fake::MemoryLock::new(n)) as Arc<dyn Lock>)),
    )
}

/// Five notifiers (one unreachable) and two notify steps, high then info.
fn notified_book(base: &str) -> String {
    // The webhook sits behind basic auth, given in its URL.
    let with_user = base.replacen("://", &format!("://hookuser:{HOOK_PASSWORD}@"), 1);
    format!(
        r#"version: 1
name: notified
vars:
  slack: {{ env: DRKIT_TEST_SLACK_URL, secret: true }}
  pd: {{ default: "{PD_KEY}", secret: true }}
  sp: {{ default: "{SP_KEY}", secret: true }}
notify:
  - {{ name: oncall, kind: slack, url: "${{vars.slack}}", severities: [critical, high] }}
  - {{ name: audit, kind: webhook, url: "{with_user}/hook" }}
  - {{ name: pager, kind: pagerduty, routing_key: "${{vars.pd}}", url: "{base}/pd", severities: [critical, high], on: [failure, end] }}
  - {{ name: status, kind: statuspage, page_id: shop, api_key: "${{vars.sp}}", url: "{base}/sp" }}
  - {{ name: broken, kind: webhook, url: "http://127.0.0.1:1/nowhere" }}
steps:
  - id: page
    action: notify
    with: {{ severity: high, message: "promoting the replica" }}
  - id: fyi
    action: notify
    needs: [page]
    with: {{ severity: info, message: "just so you know" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_reach_each_receiver_in_its_shape_and_no_secret_leaks() {
    let rx = Receiver::start().await;
    rx.throttle(&format!("/slack/{SLACK_SECRET}"), 1);
    std::env::set_var(
        "DRKIT_TEST_SLACK_URL",
        format!("{}/slack/{SLACK_SECRET}", rx.url()),
    );
    let yaml = notified_book(&rx.url());
    let engine = engine();
    let (rb, map) = engine.load(&yaml, "notified.yaml").unwrap();
    let run = engine.run(&rb, &map, &RunOptions::default()).await.unwrap();
    assert_eq!(
        run.outcome, "succeeded",
        "a failing notifier does not fail the run: {run:#?}"
    );
    let got = rx.received();
    let to = |prefix: &str| {
        got.iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect::<Vec<_>>()
    };

    // Slack: only high and critical (the "page" step; the start and the info step are
    // not), text + blocks; the first try was throttled with 429 and retried; the end that
    // resolves the trouble reaches it too.
    let slack = to("/slack/");
    assert_eq!(slack.len(), 3, "a 429, the retry, the end: {slack:?}");
    assert!(slack[..2]
        .iter()
        .all(|r| r.body["text"] == "promoting the replica"));
    assert_eq!(slack[1].body["blocks"][0]["type"], "section");
    assert!(slack[2].body["text"]
        .as_str()
        .unwrap()
        .ends_with("succeeded"));
    // The webhook gets everything: start, both steps, the end.
    let hook: Vec<String> = to("/hook")
        .iter()
        .map(|r| r.body["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hook.len(), 4, "{hook:?}");
    assert!(
        hook[0].contains("started") && hook[3].contains("succeeded"),
        "{hook:?}"
    );
    assert!(to("/hook").iter().all(|r| r.body["run"] == run.id.as_str()));
    // Its URL's user and password are sent as basic authorization.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("hookuser:{HOOK_PASSWORD}"))
    );
    assert!(
        to("/hook")
            .iter()
            .all(|r| r.headers.get("authorization") == Some(&basic)),
        "{:?}",
        to("/hook")
    );
    // PagerDuty: the high-severity step triggers, the end resolves (not the start, not the
    // info step), with one dedup key per run.
    let pd = to("/pd");
    let actions: Vec<&str> = pd
        .iter()
        .map(|r| r.body["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "resolve"], "{pd:?}");
    assert_eq!(pd[0].body["payload"]["severity"], "error");
    assert!(pd
        .iter()
        .all(|r| r.body["dedup_key"] == format!("drkit-{}", run.id).as_str()));
    assert_eq!(pd[0].body["routing_key"], PD_KEY);
    // Statuspage: an incident created at the start, then updated, resolved at the end.
    let sp = to("/sp");
    assert_eq!(sp[0].method, "POST");
    assert_eq!(sp[0].path, "/sp/v1/pages/shop/incidents");
    assert_eq!(sp[0].headers["authorization"], format!("OAuth {SP_KEY}"));
    assert_eq!(sp[0].body["incident"]["status"], "investigating");
    let last = sp.last().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("PATCH", "/sp/v1/pages/shop/incidents/incident-1")
    );
    assert_eq!(last.body["incident"]["status"], "resolved");

    // The broken notifier is a warning in the journal, named, without its URL.
    let journal = serde_json::to_string(&run).unwrap();
    assert!(
        journal.contains("notifier \\\"broken\\\" failed"),
        "{journal}"
    );
    for secret in [SLACK_SECRET, PD_KEY, SP_KEY, HOOK_PASSWORD] {
        assert!(!journal.contains(secret), "{secret} in the run's journal");
    }
    let plan = serde_json::to_string(
        &engine
            .plan(&rb, &map, &RunOptions::default())
            .await
            .unwrap(),
    )
    .unwrap();
    for secret in [SLACK_SECRET, PD_KEY, SP_KEY, HOOK_PASSWORD] {
        assert!(!plan.contains(secret), "{secret} in the plan");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_checks_pass_on_good_answers_and_time_out_naming_the_last_failure() {
    let rx = Receiver::start().await;
    rx.throttle("/health", 2);
    let yaml = format!(
        r#"version: 1
name: checks
steps:
  - id: up
    action: http.check
    with: {{ url: "{base}/health", body_contains: incident, max_latency: 1s, successes: 2, interval: 100ms, timeout: 20s }}
  - id: down
    action: http.check
    needs: [up]
    with: {{ url: "http://127.0.0.1:1/health", interval: 200ms, timeout: 1s, breaker: {{ threshold: 2, cool_down: 300ms }} }}
"#,
        base = rx.url()
    );
    let engine = engine();
    let (rb, map) = engine.load(&yaml, "checks.yaml").unwrap();
    let run = engine.run(&rb, &map, &RunOptions::default()).await.unwrap();
    let up = run.step("up").unwrap();
    assert_eq!(up.state, "succeeded", "{run:#?}");
    assert_eq!(
        up.outputs["attempts"], 4,
        "two 429s, then two good answers in a row"
    );
    let down = run.step("down").unwrap();
    assert_eq!(down.state, "failed");
    let note = down.note.as_deref().unwrap();
    assert!(
        note.contains("did not pass in time") && note.contains("127.0.0.1:1"),
        "{note}"
    );
    assert_eq!(
        rx.received().iter().filter(|r| r.path == "/health").count(),
        4
    );
}

/// Progress with an ETA (seed 000's "Recovery Progress: N % complete, ETA"): the first
/// run of a runbook has no earlier run to estimate from; the second has, and says when
/// it should be done.
#[tokio::test(flavor = "multi_thread")]
async fn progress_notifications_carry_the_share_done_and_an_eta_from_earlier_runs() {
    let rx = Receiver::start().await;
    let yaml = format!(
        r#"version: 1
name: progressing
notify:
  - {{ name: progress, kind: webhook, url: "{}/progress", on: [progress] }}
steps:
  - {{ id: one, action: wait, with: {{ for: 50ms }} }}
  - {{ id: two, action: wait, needs: [one], with: {{ for: 50ms }} }}
  - {{ id: three, action: wait, needs: [two], with: {{ for: 50ms }} }}
  - {{ id: four, action: wait, needs: [three], with: {{ for: 50ms }} }}
"#,
        rx.url()
    );
    let engine = engine();
    let (rb, map) = engine.load(&yaml, "progressing.yaml").unwrap();
    let messages = |rx: &Receiver| -> Vec<String> {
        rx.received()
            .iter()
            .map(|r| r.body["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = engine.run(&rb, &map, &RunOptions::default()).await.unwrap();
    assert_eq!(first.outcome, "succeeded");
    let said = messages(&rx);
    assert_eq!(said.len(), 4, "one per step: {said:?}");
    assert!(
        said[0].starts_with("progress: 25 % complete (1 of 4 steps)"),
        "{said:?}"
    );
    assert!(
        said[3].starts_with("progress: 100 % complete (4 of 4 steps)"),
        "{said:?}"
    );
    assert!(said[0].contains("no ETA: no earlier run"), "{said:?}");

    let second = engine.run(&rb, &map, &RunOptions::default()).await.unwrap();
    assert_eq!(second.outcome, "succeeded");
    let said = messages(&rx)[4..].to_vec();
    assert_eq!(said.len(), 4, "{said:?}");
    assert!(
        said[1].starts_with("progress: 50 % complete (2 of 4 steps); ETA "),
        "{said:?}"
    );
    assert!(said[1].contains("left, from 1 earlier run)"), "{said:?}");
    // What is left is two steps of the earlier run: about 0.1 s, said as such.
    let left: f64 = said[1]
        .split(" (")
        .nth(2)
        .and_then(|s| s.split("s left").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no seconds left in {:?}", said[1]));
    let earlier: f64 = ["three", "four"]
        .iter()
        .map(|id| first.step(id).unwrap().seconds.unwrap())
        .sum();
    assert!((left - earlier).abs() < 0.006, "{left} vs {earlier}");
}
