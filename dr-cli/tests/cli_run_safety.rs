//! What a run promises on its worst night, through the `drkit` binary as real processes:
//! a step with an effect runs once (a live run's lock is never stolen by a resume, of
//! racing resumes exactly one runs, a step is stopped as a whole process group on its
//! timeout, on SIGTERM and when the lock is lost), the run's deadline still runs `always`
//! steps, and no secret reaches the store, the terminal, `runs show` or a notification.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use dr_testkit::{stderr, Drkit};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

fn drkit(dir: &Path) -> Drkit {
    let d = Drkit::local(BIN, &dir.join("repo"));
    d.json(&["repo", "init", "--no-encryption"]);
    d
}

fn count(path: &Path, line: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == line)
        .count()
}

fn book(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_owned()
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn a_resume_never_takes_the_lock_of_a_live_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("effects.log");
    let file = book(
        dir.path(),
        "crash",
        &format!(
            "version: 1\nname: crash\nsteps:\n  - id: slow\n    action: exec\n    with: {{ argv: [sh, -c, \"sleep 4; echo done >> {}\"] }}\n",
            log.display()
        ),
    );
    let child = d
        .cmd(&["--quiet", "--json", "run", &file])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = d.wait_step_started("slow");
    for flags in [&[][..], &["--rerun", "slow"][..]] {
        let mut args = vec!["run", "--resume", id.as_str()];
        args.extend_from_slice(flags);
        let refused = d.run(&args);
        assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
        let e = stderr(&refused);
        assert!(
            e.contains(&format!("run {id} is still running"))
                && e.contains("alive on this machine")
                && e.contains(&format!("pid {}", child.id())),
            "names the holder and its process: {e}"
        );
        assert!(!e.contains("delete"), "never advises deleting a lock: {e}");
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the healthy run went on: {}",
        stderr(&out)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outcome"], "succeeded", "{run}");
    assert_eq!(count(&log, "done"), 1);
    let tokens: Vec<u64> = d.json(&["runs", "show", &id])["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["token"].as_u64().unwrap())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] == w[1]),
        "one writer all along: {tokens:?}"
    );
}

#[test]
fn of_resumes_racing_for_a_dead_run_exactly_one_runs_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("effects.log");
    let file = book(
        dir.path(),
        "race",
        &format!(
            "version: 1\nname: race\nsteps:\n  - id: pause\n    action: exec\n    with: {{ argv: [sleep, \"60\"] }}\n  - id: effect\n    action: exec\n    needs: [pause]\n    with: {{ argv: [sh, -c, \"echo effect >> {}\"] }}\n",
            log.display()
        ),
    );
    for round in 1..=20 {
        let mut child = d
            .cmd(&["--quiet", "run", &file, "--lock-ttl", "1h"])
            .spawn()
            .unwrap();
        let id = d.wait_step_started("pause");
        child.kill().unwrap(); // SIGKILL: the run's process is gone, its lease live
        child.wait().unwrap();
        let _ = std::process::Command::new("pkill")
            .args(["-f", "^sleep 60$"])
            .status();
        let resumes: Vec<_> = (0..4)
            .map(|_| {
                d.cmd(&["--quiet", "run", "--resume", &id, "--rerun", "pause"])
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // The losers are refused at once; the winner runs `sleep 60` again. Once every
        // loser is gone, stop the winner with SIGTERM.
        let mut running: Vec<std::process::Child> = resumes;
        let mut refusals: Vec<(Option<i32>, String)> = Vec::new();
        let mut won = 0;
        let deadline = Instant::now() + Duration::from_mins(1);
        while !running.is_empty() {
            assert!(Instant::now() < deadline, "round {round}: resumes hang");
            let mut still = Vec::new();
            for mut r in running {
                match r.try_wait().unwrap() {
                    Some(status) => {
                        let mut e = String::new();
                        if let Some(mut s) = r.stderr.take() {
                            let _ = s.read_to_string(&mut e);
                        }
                        if status.code() == Some(143) {
                            won += 1;
                        } else {
                            refusals.push((status.code(), e));
                        }
                    }
                    None => still.push(r),
                }
            }
            running = still;
            if running.len() == 1 && refusals.len() == 3 {
                signal(&running[0], "-TERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let shown = d.json(&["runs", "show", &id]);
        let starts = shown["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "step_started" && e["step"] == "pause")
            .count();
        assert_eq!(
            starts, 2,
            "round {round}: the step ran once more, by one resume: {shown}"
        );
        assert_eq!(won, 1, "round {round}: one resume ran ({refusals:?})");
        assert!(
            refusals
                .iter()
                .all(|(c, e)| *c == Some(1) && e.contains("still running")),
            "round {round}: the others were refused: {refusals:?}"
        );
        // Finish the round's run so the next round starts afresh.
        let done = d.json(&["run", "--resume", &id, "--skip", "pause"]);
        assert_eq!(done["outcome"], "succeeded", "{done}");
        assert_eq!(count(&log, "effect"), round, "the effect once per round");
    }
}

#[test]
fn a_step_past_its_timeout_is_stopped_with_everything_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("late.log");
    let file = book(
        dir.path(),
        "timeout",
        &format!(
            "version: 1\nname: timeout\nsteps:\n  - id: slow\n    action: exec\n    timeout: 1s\n    kill_grace: 1s\n    with: {{ argv: [sh, -c, \"sleep 3; echo LATE >> {}\"] }}\n",
            log.display()
        ),
    );
    let started = Instant::now();
    let out = d.run(&["--json", "run", &file]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outcome"], "failed");
    assert_eq!(run["steps"][0]["state"], "failed");
    assert!(
        run["steps"][0]["note"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1s"),
        "{run}"
    );
    // Past the moment the shell would have written, had it survived.
    std::thread::sleep(
        Duration::from_secs(4).saturating_sub(started.elapsed()) + Duration::from_millis(500),
    );
    assert_eq!(count(&log, "LATE"), 0, "the step's processes were stopped");
}

#[test]
fn sigterm_stops_the_step_journals_the_stop_and_leaves_the_run_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("effects.log");
    let file = book(
        dir.path(),
        "term",
        &format!(
            "version: 1\nname: term\nsteps:\n  - id: slow\n    action: exec\n    with: {{ argv: [sh, -c, \"sleep 3; echo LATE >> {log}\"], idempotent: true }}\n  - id: after\n    action: exec\n    needs: [slow]\n    with: {{ argv: [sh, -c, \"echo after >> {log}\"] }}\n",
            log = log.display()
        ),
    );
    for (sig, code) in [("-TERM", 143), ("-HUP", 129), ("-INT", 130)] {
        let child = d
            .cmd(&["--quiet", "run", &file, "--lock-ttl", "1h"])
            .spawn()
            .unwrap();
        let id = d.wait_step_started("slow");
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{sig}: {}", stderr(&out));
        let shown = d.json(&["runs", "show", &id]);
        assert_eq!(shown["outcome"], "interrupted", "{sig}: {shown}");
        assert!(
            shown["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "run_interrupted"),
            "{shown}"
        );
        // The lock was released: a resume goes on at once, without --take-over.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            count(&log, "LATE"),
            0,
            "{sig}: the step's processes were stopped"
        );
        let done = d.json(&["run", "--resume", &id]);
        assert_eq!(done["outcome"], "succeeded", "{sig}: {done}");
        assert_eq!(count(&log, "LATE"), 1, "{sig}: the step ran again, once");
        std::fs::remove_file(&log).unwrap();
    }
}

#[test]
fn a_run_that_loses_its_lock_stops_its_step_before_giving_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("late.log");
    let file = book(
        dir.path(),
        "lost",
        &format!(
            "version: 1\nname: lost\nlock: lost\nsteps:\n  - id: slow\n    action: exec\n    kill_grace: 1s\n    with: {{ argv: [sh, -c, \"sleep 4; echo LATE >> {}\"] }}\n",
            log.display()
        ),
    );
    let child = d
        .cmd(&["--json", "run", &file, "--lock-ttl", "3s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = d.wait_step_started("slow");
    // Someone takes the lock over (a newer generation, as a taker of an expired lease
    // writes it): the run's next renewal finds it lost.
    let locks = dir.path().join("repo/locks/lost");
    let newest = std::fs::read_dir(&locks)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .max()
        .unwrap();
    let next: u64 = newest.parse::<u64>().unwrap() + 1;
    let lease = serde_json::json!({"name": "lost", "holder": "elsewhere:1", "purpose": "someone else", "token": next, "acquired": "2026-01-01T00:00:00Z", "expires": "2099-01-01T00:00:00Z"});
    std::fs::write(locks.join(format!("{next:020}")), lease.to_string()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(
        e.contains("lock_lost") || e.contains("lock was lost"),
        "{e}"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(count(&log, "LATE"), 0, "the step's processes were stopped");
}

#[test]
fn the_deadline_runs_always_steps_and_ends_the_run_failed() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("effects.log");
    let file = book(
        dir.path(),
        "deadline",
        &format!(
            "version: 1\nname: deadline\ntimeout: 2s\nsteps:\n  - id: slow\n    action: wait\n    with: {{ for: 1h }}\n  - id: next\n    action: exec\n    needs: [slow]\n    with: {{ argv: [sh, -c, \"echo next >> {log}\"] }}\n  - id: tell\n    action: exec\n    always: true\n    timeout: 10s\n    with: {{ argv: [sh, -c, \"echo always >> {log}\"] }}\n",
            log = log.display()
        ),
    );
    let out = d.run(&["--json", "run", &file]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outcome"], "failed", "{run}");
    assert!(
        run["reason"].as_str().unwrap().contains("deadline (2s)"),
        "{run}"
    );
    let state = |id: &str| dr_testkit::step(&run, id)["state"].clone();
    assert_eq!(state("slow"), "failed");
    assert_eq!(state("next"), "skipped");
    let next = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "next")
        .unwrap();
    assert!(
        next["note"].as_str().unwrap().contains("deadline"),
        "skipped because of the deadline: {next}"
    );
    assert_eq!(state("tell"), "succeeded");
    assert_eq!(count(&log, "always"), 1);
    assert_eq!(count(&log, "next"), 0);
}

const REPO_PASSWORD: &str = "Repo-Pass-7373-xyz";
const URL_PASSWORD: &str = dr_testkit::PASSWORD;
const SECRET_VAR: &str = "Secret-Var-4242-xyz";
const HOOK_TOKEN: &str = "Hook-Token-5151-xyz";
const GIVEN_SECRET: &str = "Given-Var-6262-xyz";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one run, then every place a secret could show up
async fn no_secret_reaches_the_store_the_terminal_runs_show_or_a_notification() {
    let Some(pg) = dr_testkit::PgCluster::start() else {
        return;
    };
    let hooks = dr_testkit::Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let d = Drkit::local(BIN, &repo).with_env([("DRKIT_PASSWORD", REPO_PASSWORD.to_owned())]);
    d.json(&["repo", "init"]);
    let db = pg.dsn("postgres");
    assert!(db.contains(URL_PASSWORD), "a URL with a password: {db}");
    let file = book(
        dir.path(),
        "secrets",
        &format!(
            r#"version: 1
name: secrets
vars:
  db: {{ default: "{db}" }}
  newpw: {{ secret: true, default: "{SECRET_VAR}" }}
  given: {{ secret: true }}
  hook: {{ default: "{hook}/hook/{HOOK_TOKEN}" }}
targets:
  primary: {{ kind: postgres, url: "${{vars.db}}" }}
notify:
  - {{ name: ops, kind: webhook, url: "${{vars.hook}}", on: [start, step, failure, end] }}
steps:
  - id: show
    action: exec
    with: {{ argv: [sh, -c, "echo ${{vars.newpw}} ${{vars.given}} ${{vars.db}}; env"] }}
  - id: tell
    action: notify
    needs: [show]
    with: {{ message: "rotated to ${{vars.newpw}} and ${{vars.given}} on ${{vars.db}}" }}
  - id: alter
    action: sql.exec
    needs: [tell]
    with: {{ url: "${{vars.db}}", sql: ["ALTER ROLE nosuchrole PASSWORD '${{vars.newpw}}'"] }}
"#,
            hook = hooks.url()
        ),
    );
    let plan = d.run(&["plan", &file, "--var", &format!("given={GIVEN_SECRET}")]);
    let run = {
        let d = d.clone();
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            d.run(&["run", &file, "--var", &format!("given={GIVEN_SECRET}")])
        })
        .await
        .unwrap()
    };
    assert_eq!(
        run.status.code(),
        Some(3),
        "the statement fails: {}",
        stderr(&run)
    );
    let runs = d.json(&["runs"]);
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    let shown = d.run(&["runs", "show", &id]);
    let shown_json = d.run(&["--json", "runs", "show", &id]);
    let shown_doc: Value = serde_json::from_slice(&shown_json.stdout).unwrap();
    // The run did what it was asked, and the failure is there to read, masked.
    let step = |id: &str| dr_testkit::step(&shown_doc, id);
    assert_eq!(step("show")["state"], "succeeded");
    assert_eq!(step("alter")["state"], "failed");
    let stdout = step("show")["outputs"]["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stdout.contains("*** ***"), "masked, not dropped: {stdout}");
    assert!(
        !stdout.contains("DRKIT_PASSWORD"),
        "drkit's own secrets are not passed to programs: {stdout}"
    );
    let hooks_seen: Vec<String> = hooks
        .received()
        .iter()
        .map(|r| r.body.to_string())
        .collect();
    assert!(
        hooks_seen.iter().any(|b| b.contains("rotated to ***")),
        "{hooks_seen:?}"
    );
    assert!(
        hooks_seen.iter().any(|b| b.contains("alter")),
        "{hooks_seen:?}"
    );
    let mut seen: Vec<(String, Vec<u8>)> = dr_testkit::files_under(&repo)
        .into_iter()
        .map(|(p, b)| (p.display().to_string(), b))
        .collect();
    for (what, out) in [
        ("plan", &plan),
        ("run", &run),
        ("runs show", &shown),
        ("runs show --json", &shown_json),
    ] {
        seen.push((format!("{what} stdout"), out.stdout.clone()));
        seen.push((format!("{what} stderr"), out.stderr.clone()));
    }
    for (i, b) in hooks_seen.iter().enumerate() {
        seen.push((format!("notification {i}"), b.clone().into_bytes()));
    }
    for secret in [
        REPO_PASSWORD,
        URL_PASSWORD,
        SECRET_VAR,
        HOOK_TOKEN,
        GIVEN_SECRET,
    ] {
        for (where_, bytes) in &seen {
            assert!(
                !dr_testkit::holds(bytes, secret),
                "{secret} found in {where_}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    // Encrypted: even the runbook's name and step ids are not readable in the store.
    let journal: Vec<_> = seen.iter().filter(|(p, _)| p.contains("/runs/")).collect();
    assert!(!journal.is_empty());
    for (p, bytes) in journal {
        assert!(
            !dr_testkit::holds(bytes, "secrets") && !dr_testkit::holds(bytes, "alter"),
            "{p} is readable"
        );
    }
}

#[test]
fn a_flipped_byte_in_an_encrypted_journal_is_reported_by_run_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let d = Drkit::local(BIN, &repo).with_env([("DRKIT_PASSWORD", REPO_PASSWORD.to_owned())]);
    d.json(&["repo", "init"]);
    let file = book(
        dir.path(),
        "small",
        "version: 1\nname: small\nsteps:\n  - id: nap\n    action: wait\n    with: { for: 10ms }\n",
    );
    let run = d.json(&["run", &file]);
    let id = run["id"].as_str().unwrap().to_owned();
    let event = repo.join(format!("runs/{id}/events/00000002.json"));
    let mut bytes = std::fs::read(&event).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&event, bytes).unwrap();
    let out = d.run(&["runs", "show", &id[..8]]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(&format!("run {id}")) && e.contains("event 2") && e.contains("authentication"),
        "{e}"
    );
}

fn at(e: &Value) -> jiff::Timestamp {
    e["at"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_resume_stops_what_a_killed_run_left_running_before_it_runs_the_step_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("marks.log");
    let file = book(
        dir.path(),
        "orphan",
        &format!(
            "version: 1\nname: orphan\nsteps:\n  - id: s\n    action: exec\n    kill_grace: 1s\n    with: {{ argv: [sh, -c, \"echo START $$ >> {log}; sleep 3; echo END $$ >> {log}\"] }}\n",
            log = log.display()
        ),
    );
    let mut child = d
        .cmd(&["--quiet", "run", &file, "--lock-ttl", "1h"])
        .spawn()
        .unwrap();
    let id = d.wait_step_started("s");
    while count_prefix(&log, "START") == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: drkit dies, the step's `sh` and `sleep` do not
    child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let done = d.json(&["run", "--resume", &id, "--rerun", "s"]);
    assert_eq!(done["outcome"], "succeeded", "{done}");
    let marks = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = marks.lines().collect();
    assert_eq!(lines.len(), 3, "{marks}");
    let first = lines[0].strip_prefix("START ").unwrap();
    assert!(
        !lines.contains(&format!("END {first}").as_str()),
        "the killed run's step was stopped before it ran again: {marks}"
    );
    let shown = d.json(&["runs", "show", &id]);
    let events = shown["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "note" && e["text"].as_str().unwrap().contains("left running")),
        "{shown}"
    );
    // The time the run was stopped is not counted: the gap between the dead writer's last
    // event and the resume's first is left out of the run's seconds.
    let change = events
        .windows(2)
        .find(|w| w[0]["token"] != w[1]["token"])
        .expect("a new writer");
    let gap = at(&change[1]).duration_since(at(&change[0])).as_secs_f64();
    let span = at(events.last().unwrap())
        .duration_since(shown["started"].as_str().unwrap().parse().unwrap())
        .as_secs_f64();
    let seconds = shown["seconds"].as_f64().unwrap();
    assert!(gap >= 1.0, "it was stopped a while: {gap}");
    assert!(
        (span - gap - seconds).abs() < 0.01,
        "{span} - {gap} != {seconds}"
    );
}

fn count_prefix(path: &Path, prefix: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count()
}

#[test]
fn an_unencrypted_journal_keeps_no_url_password_and_no_secret_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let file = book(
        dir.path(),
        "plain",
        "version: 1\nname: plain\nvars:\n  db: { default: \"postgres://u:UrlPw-4471-abc@127.0.0.1:1/db\" }\n  token: { secret: true, default: \"Tok-8812-abc\" }\nsteps:\n  - id: say\n    action: exec\n    with: { argv: [echo, \"${vars.db} ${vars.token}\"] }\n",
    );
    let run = d.json(&["run", &file]);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let stored = dr_testkit::files_under(&dir.path().join("repo"));
    assert!(stored.iter().any(
        |(p, b)| p.ends_with("run.json") && dr_testkit::holds(b, "postgres://u@127.0.0.1:1/db")
    ));
    for (p, b) in &stored {
        for secret in ["UrlPw-4471-abc", "Tok-8812-abc"] {
            assert!(!dr_testkit::holds(b, secret), "{secret} in {}", p.display());
        }
    }
}

/// `drkit --json --quiet run FILE --resume-or-start nightly --occurrence OCC …`, spawned.
fn keyed(d: &Drkit, file: &str, occurrence: &str, extra: &[&str]) -> std::process::Command {
    let mut args = vec![
        "--json",
        "--quiet",
        "run",
        file,
        "--resume-or-start",
        "nightly",
        "--occurrence",
        occurrence,
    ];
    args.extend_from_slice(extra);
    let mut c = d.cmd(&args);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

#[test]
fn a_schedule_fired_several_times_at_once_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("effects.log");
    let file = book(
        dir.path(),
        "nightly",
        &format!(
            "version: 1\nname: nightly\nsteps:\n  - id: backup\n    action: exec\n    with: {{ argv: [sh, -c, \"echo backup >> {}; sleep 2\"] }}\n",
            log.display()
        ),
    );
    // Three Jobs of one firing at once (a CronJob that fired twice, a retried Job).
    let firing: Vec<_> = (0..3)
        .map(|_| keyed(&d, &file, "nightly-1", &[]).spawn().unwrap())
        .collect();
    let mut did = Vec::new();
    for child in firing {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        did.push(doc["did"].as_str().unwrap().to_owned());
        if doc["did"] == "started" {
            assert_eq!(doc["run"]["outcome"], "succeeded", "{doc}");
        }
    }
    did.sort();
    assert_eq!(
        did.iter().filter(|d| *d == "started").count(),
        1,
        "one of them ran: {did:?}"
    );
    assert!(
        did.iter()
            .all(|d| d == "started" || d == "busy" || d == "already_ran"),
        "{did:?}"
    );
    assert_eq!(count(&log, "backup"), 1, "the effect once");

    // The same firing again, later: already ran, nothing done; the next firing runs.
    let again = keyed(&d, &file, "nightly-1", &[]).output().unwrap();
    let doc: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(doc["did"], "already_ran", "{doc}");
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(count(&log, "backup"), 1);
    let next = keyed(&d, &file, "nightly-2", &[]).output().unwrap();
    let doc: Value = serde_json::from_slice(&next.stdout).unwrap();
    assert_eq!(doc["did"], "started", "{doc}");
    assert_eq!(count(&log, "backup"), 2);
}

#[test]
fn the_next_start_of_a_schedule_resumes_its_run_stopped_by_sigterm_or_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = drkit(dir.path());
    let log = dir.path().join("effects.log");
    let first = dir.path().join("first");
    // `dump` is slow the first time (when it is stopped), quick when run again.
    let file = book(
        dir.path(),
        "nightly",
        &format!(
            "version: 1\nname: nightly\nsteps:\n  - id: dump\n    action: exec\n    with: {{ argv: [sh, -c, \"test -f {first} || {{ touch {first}; sleep 30; }}\"], idempotent: true }}\n  - id: upload\n    action: exec\n    needs: [dump]\n    with: {{ argv: [sh, -c, \"echo upload >> {log}\"] }}\n",
            first = first.display(),
            log = log.display()
        ),
    );
    let result = dir.path().join("termination-log");
    for (round, sig) in ["-TERM", "-KILL"].into_iter().enumerate() {
        let _ = std::fs::remove_file(&first);
        let child = keyed(
            &d,
            &file,
            &format!("nightly-{round}a"),
            &["--lock-ttl", "1h"],
        )
        .spawn()
        .unwrap();
        let id = d.wait_step_started("dump");
        signal(&child, sig);
        child.wait_with_output().unwrap();
        let _ = std::process::Command::new("pkill")
            .args(["-f", "^sleep 30$"])
            .status();
        // The next firing (another Job) finishes that run instead of starting one.
        let next = d
            .cmd(&[
                "--json",
                "--result-file",
                result.to_str().unwrap(),
                "run",
                &file,
                "--resume-or-start",
                "nightly",
                "--occurrence",
                &format!("nightly-{round}b"),
            ])
            .output()
            .unwrap();
        assert_eq!(next.status.code(), Some(0), "{sig}: {}", stderr(&next));
        let doc: Value = serde_json::from_slice(&next.stdout).unwrap();
        assert_eq!(doc["did"], "resumed", "{sig}: {doc}");
        assert_eq!(doc["run"]["id"], id.as_str(), "{sig}: the same run");
        assert_eq!(doc["run"]["outcome"], "succeeded", "{sig}: {doc}");
        assert_eq!(count(&log, "upload"), round + 1, "{sig}: the rest ran once");
        // What a pod's termination message carries.
        let message: Value =
            serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
        assert_eq!(message["command"], "run", "{message}");
        assert_eq!(message["exit"], 0);
        assert_eq!(message["result"]["did"], "resumed");
        assert_eq!(message["result"]["run"]["id"], id.as_str());
        assert_eq!(message["result"]["run"]["outcome"], "succeeded");
        assert!(message.to_string().len() <= 4096);
    }
}
