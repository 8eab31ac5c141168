//! The report of a run, from its journal alone (a run resumed on another machine gets the
//! same one): timeline, each step's start, duration, attempts, outcome and error,
//! compensations, approvals, objectives against what was achieved with verdicts, a
//! drill's canary figures, and the environment — never a secret (the journal holds none).
//!
//! Rendered as JSON, Markdown, a self-contained HTML page (inline CSS and SVG, no script),
//! JUnit XML (each step a test case, each missed objective a failure), a post-incident
//! draft (Markdown, or a template of the reader's), and a metrics CSV line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::drill::{DrillMeasures, Measure, Verdict};
use super::journal::{chain_hash, Actor, Event, EventKind, RunHeader};
use super::model::Mode;
use super::state::{RunOutcome, RunSummary};
use crate::{err, Result};

/// One step in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportStep {
    /// Its id.
    pub id: String,
    /// Its action.
    pub action: String,
    /// Its drill phase, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// How it ended.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When its first attempt started.
    pub started: Option<Timestamp>,
    /// When it ended.
    pub ended: Option<Timestamp>,
    /// Its seconds, without the time the run was stopped.
    pub seconds: Option<f64>,
    /// Seconds from the run's start to its start, and to its end (the timeline's bar).
    pub offset: Option<[f64; 2]>,
    /// Its error, or why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A compensation undid it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compensated: bool,
}

/// A compensation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportCompensation {
    /// The step it undid.
    pub step: String,
    /// `done` or `failed: …`.
    pub outcome: String,
    /// When.
    pub at: Timestamp,
}

/// An approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportApproval {
    /// The approval step.
    pub step: String,
    /// Who ran the run when it was given (`user@host`).
    pub by: String,
    /// How: `--yes`, `--approve`, `prompt`.
    pub how: String,
    /// When.
    pub at: Timestamp,
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReportEvent {
    /// The event's number.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Seconds from the run's start.
    pub offset: f64,
    /// What happened, in words.
    pub text: String,
}

/// Where and by what it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    /// The drkit version that started the run.
    pub drkit: String,
    /// BLAKE3 of the runbook as frozen into the journal.
    pub runbook_hash: String,
    /// Where the runbook was read from.
    pub origin: String,
    /// Who started it, and who resumed it (`user@host`), in order.
    pub ran_by: Vec<String>,
    /// Planned or forced.
    pub mode: String,
    /// The targets, by name: their kinds (and whether a sandbox), never their fields.
    pub targets: BTreeMap<String, String>,
}

/// A run's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// `run` or `drill`.
    pub kind: String,
    /// The run's id.
    pub run: String,
    /// The runbook's name.
    pub runbook: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How it came out.
    pub outcome: RunOutcome,
    /// Why, when not plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it started.
    pub started: Timestamp,
    /// Its last event.
    pub ended: Timestamp,
    /// Seconds it ran, without the time it was stopped.
    pub seconds: f64,
    /// The RTO against its objective (a drill: disaster to recovered; a run: its
    /// duration).
    pub rto: Measure,
    /// The RPO against its objective (measured by a drill's canary only).
    pub rpo: Measure,
    /// A drill's measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillMeasures>,
    /// The steps, in the runbook's order.
    pub steps: Vec<ReportStep>,
    /// Compensations, in order.
    pub compensations: Vec<ReportCompensation>,
    /// Approvals, in order.
    pub approvals: Vec<ReportApproval>,
    /// Every event, in words.
    pub timeline: Vec<ReportEvent>,
    /// Where and by what.
    pub environment: Environment,
    /// The journal's events and the hash of the last (the chain's head).
    pub events: u64,
    /// See `events`.
    pub chain_head: String,
}

fn describe(e: &EventKind) -> String {
    match e {
        EventKind::RunStarted { resumed: false, .. } => "run started".into(),
        EventKind::RunStarted {
            resumed: true,
            occurrence: Some(o),
        } => format!("run resumed by {o}"),
        EventKind::RunStarted { resumed: true, .. } => "run resumed".into(),
        EventKind::StepStarted { step, attempt: 1 } => format!("{step} started"),
        EventKind::StepStarted { step, attempt } => format!("{step} attempt {attempt} started"),
        EventKind::StepSucceeded { step, .. } => format!("{step} succeeded"),
        EventKind::StepFailed {
            step,
            attempt,
            message,
            will_retry,
            ..
        } => format!(
            "{step} attempt {attempt} failed{}: {message}",
            if *will_retry { " (will retry)" } else { "" }
        ),
        EventKind::StepSkipped { step, why, .. } => format!("{step} skipped: {why}"),
        EventKind::StepWaiting { step, why } => format!("{step} waits: {why}"),
        EventKind::StepProcess { step, group } => format!("{step} started process {}", group.pid),
        EventKind::StepSkippedByOperator { step, why } => {
            format!("{step} counted as done by an operator: {why}")
        }
        EventKind::CompensationStarted { step } => format!("compensating {step}"),
        EventKind::CompensationDone { step } => format!("{step} compensated"),
        EventKind::CompensationFailed { step, message } => {
            format!("compensation of {step} failed: {message}")
        }
        EventKind::RunInterrupted { why } => format!("run interrupted: {why}"),
        EventKind::Note { step, text } => match step {
            Some(s) => format!("{s}: {text}"),
            None => text.clone(),
        },
        EventKind::RunEnded { outcome, why } => match why {
            Some(w) => format!("run ended {outcome}: {w}"),
            None => format!("run ended {outcome}"),
        },
    }
}

/// A run's RTO: its duration against the objective.
fn run_rto(rb: &super::model::Runbook, s: &RunSummary) -> Measure {
    let objective = rb.objectives.rto.map(|d| d.as_secs_f64());
    match s.outcome {
        RunOutcome::Succeeded => Measure {
            objective_seconds: objective,
            achieved_seconds: Some(s.seconds),
            verdict: match objective {
                None => Verdict::NoObjective,
                Some(o) if s.seconds <= o => Verdict::Met,
                Some(_) => Verdict::Missed,
            },
            clock: None,
            why: "the run's duration".into(),
        },
        RunOutcome::Failed | RunOutcome::Compensated => Measure {
            objective_seconds: objective,
            achieved_seconds: Some(s.seconds),
            verdict: Verdict::Missed,
            clock: None,
            why: format!("the run {}", s.outcome),
        },
        other => Measure {
            objective_seconds: objective,
            achieved_seconds: None,
            verdict: Verdict::Inconclusive,
            clock: None,
            why: format!("the run has not ended ({other})"),
        },
    }
}

fn offset(from: Timestamp, to: Timestamp) -> f64 {
    ((to.as_millisecond() - from.as_millisecond()) as f64 / 1000.0).max(0.0)
}

impl Report {
    /// The report of the run whose journal is `header`, `events` (as stored: each with
    /// its JSON, for the chain's head).
    #[must_use]
    pub fn of(header: &RunHeader, stored: &[(Event, Vec<u8>)], header_bytes: &[u8]) -> Self {
        let events: Vec<Event> = stored.iter().map(|(e, _)| e.clone()).collect();
        let summary = RunSummary::fold(header, events.clone());
        Self::from_summary(
            header,
            &summary,
            &events,
            stored.last().map_or(header_bytes, |(_, b)| b),
        )
    }

    #[allow(clippy::too_many_lines)] // one field after another, each read from the journal
    fn from_summary(header: &RunHeader, s: &RunSummary, events: &[Event], last: &[u8]) -> Self {
        let rb = &header.runbook;
        let drill = DrillMeasures::of(header, events, s);
        let rto = drill
            .as_ref()
            .map_or_else(|| run_rto(rb, s), |d| d.rto.clone());
        let rpo = match &drill {
            Some(d) => d.rpo.clone(),
            None => Measure {
                objective_seconds: rb.objectives.rpo.map(|d| d.as_secs_f64()),
                achieved_seconds: None,
                verdict: Verdict::Inconclusive,
                clock: None,
                why: "a run does not measure the data lost; a drill's canary does".into(),
            },
        };
        let steps = s
            .steps
            .iter()
            .map(|st| ReportStep {
                id: st.id.to_string(),
                action: st.action.clone(),
                phase: rb
                    .step(st.id.as_str())
                    .and_then(|x| x.phase)
                    .map(|p| p.as_str().to_owned()),
                state: st.state.as_str().to_owned(),
                attempts: st.attempts,
                started: st.started,
                ended: st.ended,
                seconds: st.seconds,
                offset: st.started.map(|a| {
                    [
                        offset(s.started, a),
                        offset(s.started, st.ended.unwrap_or(a)),
                    ]
                }),
                note: st.note.clone(),
                compensated: st.compensated,
            })
            .collect();
        let mut compensations = Vec::new();
        let mut approvals = Vec::new();
        let mut ran_by: Vec<String> = vec![format!("{}@{}", header.by.user, header.by.host)];
        for e in events {
            let who = |a: &Actor| format!("{}@{}", a.user, a.host);
            if ran_by.last() != Some(&who(&e.by)) {
                ran_by.push(who(&e.by));
            }
            match &e.kind {
                EventKind::CompensationDone { step } => compensations.push(ReportCompensation {
                    step: step.clone(),
                    outcome: "done".into(),
                    at: e.at,
                }),
                EventKind::CompensationFailed { step, message } => {
                    compensations.push(ReportCompensation {
                        step: step.clone(),
                        outcome: format!("failed: {message}"),
                        at: e.at,
                    });
                }
                EventKind::StepSucceeded { step, outputs }
                    if rb.step(step).is_some_and(|x| x.action == "approve") =>
                {
                    approvals.push(ReportApproval {
                        step: step.clone(),
                        by: who(&e.by),
                        how: outputs
                            .get("approved_by")
                            .and_then(|v| v.as_str())
                            .unwrap_or("?")
                            .to_owned(),
                        at: e.at,
                    });
                }
                _ => {}
            }
        }
        let runbook_json = serde_json::to_vec(rb).expect("a runbook serializes");
        Self {
            kind: if drill.is_some() { "drill" } else { "run" }.into(),
            run: header.id.to_string(),
            runbook: rb.name.clone(),
            description: rb.description.clone(),
            outcome: s.outcome,
            reason: s.reason.clone(),
            started: s.started,
            ended: s.ended,
            seconds: s.seconds,
            rto,
            rpo,
            drill,
            steps,
            compensations,
            approvals,
            timeline: events
                .iter()
                .map(|e| ReportEvent {
                    seq: e.seq,
                    at: e.at,
                    offset: offset(s.started, e.at),
                    text: describe(&e.kind),
                })
                .collect(),
            environment: Environment {
                drkit: if header.drkit.is_empty() {
                    "unknown (journaled before versions were kept)".into()
                } else {
                    header.drkit.clone()
                },
                runbook_hash: chain_hash(&runbook_json),
                origin: header.origin.clone(),
                ran_by,
                mode: match header.mode {
                    Mode::Planned => "planned",
                    Mode::Forced => "forced",
                }
                .into(),
                targets: rb
                    .targets
                    .iter()
                    .map(|(n, t)| {
                        (
                            n.clone(),
                            if t.sandbox {
                                format!("{} (sandbox)", t.kind)
                            } else {
                                t.kind.clone()
                            },
                        )
                    })
                    .collect(),
            },
            events: events.len() as u64,
            chain_head: chain_hash(last),
        }
    }

    /// Whether the run succeeded and no objective was missed or left inconclusive (an
    /// objective it sets; RPO only for a drill).
    #[must_use]
    pub fn ok(&self) -> bool {
        let fine = |m: &Measure| matches!(m.verdict, Verdict::Met | Verdict::NoObjective);
        self.outcome == RunOutcome::Succeeded
            && fine(&self.rto)
            && (self.drill.is_none() || fine(&self.rpo))
    }

    /// `met` / `missed` / `inconclusive` of both objectives, for one line.
    #[must_use]
    pub fn verdicts(&self) -> String {
        format!(
            "RTO {}, RPO {}",
            self.rto.verdict.as_str(),
            self.rpo.verdict.as_str()
        )
    }
}

/// A runbook's newest drill, as `drkit status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LastDrill {
    /// The runbook's name.
    pub runbook: String,
    /// The drill's run.
    pub run: String,
    /// When it started.
    pub started: Timestamp,
    /// Its last event.
    pub ended: Timestamp,
    /// How it came out.
    pub outcome: RunOutcome,
    /// The RTO achieved, against its objective.
    pub rto: Measure,
    /// The RPO achieved, against its objective.
    pub rpo: Measure,
    /// It succeeded and met every objective it sets.
    pub ok: bool,
}

impl LastDrill {
    /// The summary of drill report `r`.
    #[must_use]
    pub fn of(r: &Report) -> Self {
        Self {
            runbook: r.runbook.clone(),
            run: r.run.clone(),
            started: r.started,
            ended: r.ended,
            outcome: r.outcome,
            rto: r.rto.clone(),
            rpo: r.rpo.clone(),
            ok: r.ok(),
        }
    }
}

/// How long a run took: its running time, and from start to end when it was stopped in
/// between (a crash or Ctrl-C, then a resume).
fn took(r: &Report) -> String {
    let wall = offset(r.started, r.ended);
    if wall > r.seconds + 1.0 {
        format!(
            "{} running ({} from start to end: stopped in between, then resumed)",
            seconds(r.seconds),
            seconds(wall)
        )
    } else {
        seconds(r.seconds)
    }
}

/// Seconds for people: `0.35s`, `2m 05s`.
#[must_use]
pub fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.2}s")
    } else {
        let whole = s.round() as u64;
        if whole < 3600 {
            format!("{}m {:02}s", whole / 60, whole % 60)
        } else {
            format!("{}h {:02}m", whole / 3600, (whole % 3600) / 60)
        }
    }
}

fn measure_line(name: &str, m: &Measure) -> String {
    let achieved = m
        .achieved_seconds
        .map_or_else(|| "not measured".to_owned(), seconds);
    let objective = m.objective_seconds.map_or_else(
        || "no objective".to_owned(),
        |o| format!("objective {}", seconds(o)),
    );
    format!(
        "{name} {achieved} ({objective}): {} — {}",
        m.verdict.as_str(),
        m.why
    )
}

/// The report as Markdown.
#[must_use]
#[allow(clippy::too_many_lines)] // one document, section after section
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# {} {} — {}\n", r.kind, r.runbook, r.outcome);
    if !r.description.is_empty() {
        let _ = writeln!(o, "{}\n", r.description);
    }
    let _ = writeln!(o, "- run `{}`, started {}, {}", r.run, r.started, took(r));
    if let Some(why) = &r.reason {
        let _ = writeln!(o, "- why it ended so: {why}");
    }
    let _ = writeln!(o, "- {}", measure_line("RTO", &r.rto));
    let _ = writeln!(o, "- {}", measure_line("RPO", &r.rpo));
    if let Some(d) = &r.drill {
        if let Some(x) = &d.disaster {
            let _ = writeln!(
                o,
                "- disaster: {} at {}{}",
                x.what,
                x.at.at,
                x.lsn
                    .as_ref()
                    .map(|l| format!(" (WAL {l})"))
                    .unwrap_or_default()
            );
        }
        if let Some(t) = &d.recovered_at {
            let _ = writeln!(o, "- recovered (last check passed) at {}", t.at);
        }
        if let Some(s) = d.recovery_seconds {
            let _ = writeln!(o, "- the recovery itself took {}", seconds(s));
        }
        if let Some(s) = d.failback_seconds {
            let _ = writeln!(o, "- the failback took {}", seconds(s));
        }
        if let Some(c) = &d.canary {
            let _ = writeln!(
                o,
                "- canary: {} writes acknowledged, {} recovered, {} lost; {} of unknown outcome ({} turned up); written every {} ms, stopped: {}",
                c.acknowledged, c.recovered, c.lost, c.unknown, c.unknown_present, c.interval_ms, c.stopped
            );
        }
    }
    let _ = writeln!(o, "\n## Steps\n\n| step | phase | action | state | attempts | start | seconds | note |\n|---|---|---|---|---|---|---|---|");
    for s in &r.steps {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.id,
            s.phase.as_deref().unwrap_or(""),
            s.action,
            s.state,
            s.attempts,
            s.offset
                .map(|x| format!("+{}", seconds(x[0])))
                .unwrap_or_default(),
            s.seconds.map(seconds).unwrap_or_default(),
            s.note
                .as_deref()
                .unwrap_or("")
                .replace('|', "\\|")
                .replace('\n', " ")
        );
    }
    if let Some(d) = &r.drill {
        if !d.shares.is_empty() {
            let _ = writeln!(o, "\n## Where the recovery's time went\n");
            for s in &d.shares {
                let _ = writeln!(
                    o,
                    "- {}: {} ({:.0} %)",
                    s.step,
                    seconds(s.seconds),
                    s.share * 100.0
                );
            }
        }
    }
    if !r.compensations.is_empty() {
        let _ = writeln!(o, "\n## Compensations\n");
        for c in &r.compensations {
            let _ = writeln!(o, "- {} at {}: {}", c.step, c.at, c.outcome);
        }
    }
    if !r.approvals.is_empty() {
        let _ = writeln!(o, "\n## Approvals\n");
        for a in &r.approvals {
            let _ = writeln!(o, "- {} by {} ({}) at {}", a.step, a.by, a.how, a.at);
        }
    }
    let _ = writeln!(o, "\n## Timeline\n");
    for e in &r.timeline {
        let _ = writeln!(o, "- +{} {}", seconds(e.offset), e.text);
    }
    let env = &r.environment;
    let _ = writeln!(
        o,
        "\n## Environment\n\n- drkit {}\n- runbook {} (BLAKE3 {})\n- ran by {}\n- mode {}\n- targets: {}\n- journal: {} events, chain head {}",
        env.drkit,
        env.origin,
        env.runbook_hash,
        env.ran_by.join(", then "),
        env.mode,
        env.targets
            .iter()
            .map(|(n, k)| format!("{n} ({k})"))
            .collect::<Vec<_>>()
            .join(", "),
        r.events,
        r.chain_head
    );
    o
}

/// The report for a terminal: the steps, then what was measured, with verdicts.
#[must_use]
pub fn text(r: &Report) -> String {
    let mut o = format!(
        "{} {} (run {}): {}{} in {}\n",
        r.kind,
        r.runbook,
        r.run,
        r.outcome,
        r.reason
            .as_deref()
            .map(|w| format!(": {w}"))
            .unwrap_or_default(),
        took(r)
    );
    for s in &r.steps {
        let _ = writeln!(
            o,
            "  {:>8}  {:<9} {} [{}]{}{}",
            s.seconds.map(seconds).unwrap_or_default(),
            s.state,
            s.id,
            s.action,
            s.phase
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            s.note
                .as_deref()
                .map(|n| format!(" — {}", n.replace('\n', " ")))
                .unwrap_or_default()
        );
    }
    if let Some(c) = r.drill.as_ref().and_then(|d| d.canary.as_ref()) {
        let _ = writeln!(
            o,
            "  canary: {} writes acknowledged, {} recovered, {} lost; {} of unknown outcome ({} turned up)",
            c.acknowledged, c.recovered, c.lost, c.unknown, c.unknown_present
        );
    }
    if let Some(s) = r.drill.as_ref().and_then(|d| d.failback_seconds) {
        let _ = writeln!(o, "  failback: {}", seconds(s));
    }
    let _ = writeln!(o, "  {}", measure_line("RTO", &r.rto));
    let _ = write!(o, "  {}", measure_line("RPO", &r.rpo));
    o
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The report as JUnit XML: each step a test case (failed, skipped), each objective a
/// test case that fails when missed or inconclusive.
#[must_use]
pub fn junit(r: &Report) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    let mut skipped = 0;
    for s in &r.steps {
        let _ = write!(
            cases,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
            xml(&r.runbook),
            xml(&s.id),
            s.seconds.unwrap_or(0.0)
        );
        match s.state.as_str() {
            "failed" => {
                failures += 1;
                let _ = write!(
                    cases,
                    "<failure message=\"{}\" type=\"step\"/>",
                    xml(s.note.as_deref().unwrap_or("failed"))
                );
            }
            "skipped" | "skipped_by_operator" | "pending" | "running" | "waiting" => {
                skipped += 1;
                let _ = write!(
                    cases,
                    "<skipped message=\"{}\"/>",
                    xml(s.note.as_deref().unwrap_or(&s.state))
                );
            }
            _ => {}
        }
        cases.push_str("</testcase>\n");
    }
    for (name, m) in [("RTO", &r.rto), ("RPO", &r.rpo)] {
        if m.objective_seconds.is_none() {
            continue;
        }
        let _ = write!(
            cases,
            "    <testcase classname=\"{}.objectives\" name=\"{name}\" time=\"{:.3}\">",
            xml(&r.runbook),
            m.achieved_seconds.unwrap_or(0.0)
        );
        if !matches!(m.verdict, Verdict::Met) {
            failures += 1;
            let _ = write!(
                cases,
                "<failure message=\"{}\" type=\"{}\"/>",
                xml(&measure_line(name, m)),
                m.verdict.as_str()
            );
        }
        cases.push_str("</testcase>\n");
    }
    let tests = cases.matches("<testcase").count();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"drkit\" tests=\"{tests}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\" id=\"{}\">\n{cases}  </testsuite>\n</testsuites>\n",
        xml(&r.runbook),
        r.seconds,
        r.started,
        xml(&r.run)
    )
}

/// The CSV header of [`metrics_line`].
pub const METRICS_HEADER: &str =
    "time,runbook,kind,run,outcome,rto_seconds,rpo_seconds,objectives_met";

/// One metrics CSV line (seed 000's dr-metrics.csv): time, runbook, kind, run, outcome,
/// RTO and RPO achieved (empty when not measured), objectives met.
#[must_use]
pub fn metrics_line(r: &Report) -> String {
    let csv = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let f = |m: &Measure| {
        m.achieved_seconds
            .map(|s| format!("{s:.3}"))
            .unwrap_or_default()
    };
    format!(
        "{},{},{},{},{},{},{},{}",
        r.ended,
        csv(&r.runbook),
        r.kind,
        r.run,
        r.outcome.as_str(),
        f(&r.rto),
        f(&r.rpo),
        r.ok()
    )
}

/// Appends `r`'s line to the CSV file at `path`, writing the header first when the
/// file is new or empty.
pub fn append_metrics(path: &std::path::Path, r: &Report) -> Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| crate::Error::io(format!("opening metrics file {}", path.display()), e))?;
    let empty = !f.metadata().is_ok_and(|m| m.len() > 0);
    let mut text = String::new();
    if empty {
        text.push_str(METRICS_HEADER);
        text.push('\n');
    }
    text.push_str(&metrics_line(r));
    text.push('\n');
    f.write_all(text.as_bytes())
        .map_err(|e| crate::Error::io(format!("writing metrics file {}", path.display()), e))
}

/// The post-incident draft the seeds' template asks for, pre-filled; `template` (a
/// minijinja template over the report, as `report`) replaces the built-in one.
pub fn postmortem(r: &Report, template: Option<&str>) -> Result<String> {
    let env = minijinja::Environment::new();
    let text = template.unwrap_or(POSTMORTEM);
    let ctx = minijinja::context! {
        report => minijinja::Value::from(minijinja::value::Serde(r)),
        rto_line => measure_line("RTO", &r.rto),
        rpo_line => measure_line("RPO", &r.rpo),
        duration => took(r),
        markdown_steps => steps_table(r),
    };
    env.render_str(text, ctx)
        .map_err(|e| err!(InvalidInput, "the post-incident template: {e}"))
}

fn steps_table(r: &Report) -> String {
    let mut o = String::from("| time | step | outcome | seconds |\n|---|---|---|---|\n");
    for s in &r.steps {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            s.started.map(|t| t.to_string()).unwrap_or_default(),
            s.id,
            s.state,
            s.seconds.map(seconds).unwrap_or_default()
        );
    }
    o
}

const POSTMORTEM: &str = "# Post-incident review: {{ report.runbook }} ({{ report.started }})

## Summary

{{ report.kind | capitalize }} `{{ report.run }}` of {{ report.runbook }} ended **{{ report.outcome }}** after {{ duration }}.
{% if report.reason %}It ended so because: {{ report.reason }}.
{% endif %}
- {{ rto_line }}
- {{ rpo_line }}

## Timeline

{{ markdown_steps }}
## Impact

- Time to recovery: {% if report.rto.achieved_seconds is not none %}{{ report.rto.achieved_seconds | round(2) }} s{% else %}not measured{% endif %}.
- Data lost: {% if report.drill and report.drill.canary %}{{ report.drill.canary.lost }} of {{ report.drill.canary.acknowledged }} acknowledged writes{% if report.rpo.achieved_seconds is not none %}; RPO {{ report.rpo.achieved_seconds | round(2) }} s (the newest write the recovered database holds was acknowledged that long before the disaster){% endif %}{% elif report.rpo.achieved_seconds is not none %}RPO {{ report.rpo.achieved_seconds | round(2) }} s{% else %}not measured{% endif %}.
- Users affected: _to be filled in_

## Root cause

_to be filled in_

## What went well

{% for s in report.steps if s.state == \"succeeded\" %}- {{ s.id }} ({{ s.action }}) succeeded
{% endfor %}
## What could be improved

{% for s in report.steps if s.state != \"succeeded\" %}- {{ s.id }} ({{ s.action }}): {{ s.state }}{% if s.note %} — {{ s.note }}{% endif %}
{% else %}- _to be filled in_
{% endfor %}
## Action items

- [ ] _owner — action — due date_
";

/// The report as one self-contained HTML page: verdicts at the top, a timeline with the
/// steps as bars on a time axis, the disaster and first-healthy moments marked, the RTO
/// objective drawn as a line. Inline CSS and SVG; no script, nothing fetched.
#[must_use]
#[allow(clippy::too_many_lines, clippy::many_single_char_names)] // one page; x, h, t as in a drawing
pub fn html(r: &Report) -> String {
    let h = |s: &str| xml(s);
    let verdict_class = |v: Verdict| match v {
        Verdict::Met => "met",
        Verdict::Missed => "missed",
        Verdict::Inconclusive => "inconclusive",
        Verdict::NoObjective => "none",
    };
    let figure = |name: &str, m: &Measure| {
        format!(
            "<div class=\"figure {}\"><div class=\"name\">{name}</div><div class=\"value\">{}</div><div class=\"verdict\">{}</div><div class=\"objective\">{}</div><div class=\"why\">{}</div></div>",
            verdict_class(m.verdict),
            m.achieved_seconds.map_or_else(|| "—".to_owned(), seconds),
            h(m.verdict.as_str()),
            m.objective_seconds.map_or_else(|| "no objective".to_owned(), |o| format!("objective {}", seconds(o))),
            h(&m.why)
        )
    };
    // The time axis: from the run's start to its end.
    let total = r.seconds.max(
        r.steps
            .iter()
            .filter_map(|s| s.offset.map(|o| o[1]))
            .fold(0.0, f64::max),
    );
    let total = if total <= 0.0 { 1.0 } else { total };
    let (left, width, row) = (190.0, 760.0, 22.0);
    let x = |t: f64| left + (t / total).clamp(0.0, 1.0) * width;
    let shown: Vec<&ReportStep> = r.steps.iter().collect();
    let height = 40.0 + row * shown.len() as f64 + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 980 {height}\" width=\"980\" height=\"{height}\" role=\"img\" aria-label=\"timeline\">"
    );
    // Axis with ticks.
    let axis_y = height - 22.0;
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" class=\"axis\"/>",
        left + width
    );
    for i in 0..=5 {
        let t = total * f64::from(i) / 5.0;
        let _ = write!(
            svg,
            "<line x1=\"{0}\" y1=\"{axis_y}\" x2=\"{0}\" y2=\"{1}\" class=\"tick\"/><text x=\"{0}\" y=\"{2}\" class=\"ticklabel\">{3}</text>",
            x(t),
            axis_y + 5.0,
            axis_y + 17.0,
            seconds(t)
        );
    }
    for (i, s) in shown.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" class=\"label\">{}</text>",
            left - 8.0,
            y + 13.0,
            h(&s.id)
        );
        if let Some([a, b]) = s.offset {
            let w = (x(b) - x(a)).max(2.0);
            let _ = write!(
                svg,
                "<rect x=\"{}\" y=\"{y}\" width=\"{w}\" height=\"16\" rx=\"3\" class=\"bar {} {}\"><title>{}: {} ({})</title></rect>",
                x(a),
                h(&s.state),
                h(s.phase.as_deref().unwrap_or("")),
                h(&s.id),
                s.seconds.map(seconds).unwrap_or_default(),
                h(&s.state)
            );
        }
    }
    let mut marks = String::new();
    if let Some(d) = &r.drill {
        let at = |m: &crate::clock::Moment| offset(r.started, m.at);
        if let Some(dis) = &d.disaster {
            let t = at(&dis.at);
            let _ = write!(
                marks,
                "<line x1=\"{0}\" y1=\"18\" x2=\"{0}\" y2=\"{axis_y}\" class=\"mark disaster\"/><text x=\"{0}\" y=\"14\" class=\"marklabel disaster\">disaster</text>",
                x(t)
            );
            if let Some(o) = d.rto.objective_seconds {
                if t + o <= total {
                    let _ = write!(
                        marks,
                        "<line x1=\"{0}\" y1=\"18\" x2=\"{0}\" y2=\"{axis_y}\" class=\"mark objective\"/><text x=\"{0}\" y=\"14\" class=\"marklabel objective\">RTO objective</text>",
                        x(t + o)
                    );
                } else {
                    // Beyond the axis: said at its end, where the line would be.
                    let _ = write!(
                        marks,
                        "<text x=\"{}\" y=\"14\" text-anchor=\"end\" class=\"marklabel objective\">RTO objective {} after the disaster →</text>",
                        left + width,
                        seconds(o)
                    );
                }
            }
        }
        if let Some(rec) = &d.recovered_at {
            let _ = write!(
                marks,
                "<line x1=\"{0}\" y1=\"18\" x2=\"{0}\" y2=\"{axis_y}\" class=\"mark healthy\"/><text x=\"{0}\" y=\"{1}\" class=\"marklabel healthy\">healthy</text>",
                x(at(rec)),
                axis_y - 4.0
            );
        }
    }
    svg.push_str(&marks);
    svg.push_str("</svg>");
    let mut rows = String::new();
    for s in &r.steps {
        let _ = write!(
            rows,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            h(&s.state),
            h(&s.id),
            h(s.phase.as_deref().unwrap_or("")),
            h(&s.action),
            h(&s.state),
            s.attempts,
            s.seconds.map(seconds).unwrap_or_default(),
            h(s.note.as_deref().unwrap_or(""))
        );
    }
    let mut canary = String::new();
    if let Some(c) = r.drill.as_ref().and_then(|d| d.canary.as_ref()) {
        let _ = write!(
            canary,
            "<p class=\"canary\">Canary: {} writes acknowledged, {} recovered, <b>{} lost</b>; {} of unknown outcome ({} turned up); one every {} ms; stopped: {}.</p>",
            c.acknowledged, c.recovered, c.lost, c.unknown, c.unknown_present, c.interval_ms, h(&c.stopped)
        );
    }
    if let Some(d) = &r.drill {
        let mut took = Vec::new();
        if let Some(s) = d.recovery_seconds {
            took.push(format!("the recovery itself took {}", seconds(s)));
        }
        if let Some(s) = d.failback_seconds {
            took.push(format!("the failback {}", seconds(s)));
        }
        if !took.is_empty() {
            let _ = write!(canary, "<p class=\"canary\">{}.</p>", h(&took.join("; ")));
        }
    }
    let mut timeline = String::new();
    for e in &r.timeline {
        let _ = write!(
            timeline,
            "<li><span class=\"t\">+{}</span> {}</li>",
            seconds(e.offset),
            h(&e.text)
        );
    }
    let env = &r.environment;
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{kind} {name} — {outcome}</title><style>{CSS}</style></head><body>\
<header><h1>{kind} <span class=\"rb\">{name}</span> <span class=\"outcome {outcome}\">{outcome}</span></h1>\
<p class=\"sub\">run {run} · started {started} · {duration}{reason}</p></header>\
<section class=\"figures\">{rto}{rpo}</section>{canary}\
<h2>Timeline</h2>{svg}\
<h2>Steps</h2><table><thead><tr><th>step</th><th>phase</th><th>action</th><th>state</th><th>attempts</th><th>seconds</th><th>note</th></tr></thead><tbody>{rows}</tbody></table>\
<h2>Events</h2><ol class=\"events\">{timeline}</ol>\
<h2>Environment</h2><ul class=\"env\"><li>drkit {drkit}</li><li>runbook {origin} (BLAKE3 {hash})</li><li>ran by {by}</li><li>mode {mode}</li><li>targets: {targets}</li><li>journal: {events} events, chain head {head}</li></ul>\
</body></html>\n",
        kind = h(&r.kind),
        name = h(&r.runbook),
        outcome = h(r.outcome.as_str()),
        run = h(&r.run),
        started = r.started,
        duration = took(r),
        reason = r.reason.as_ref().map(|w| format!(" · {}", h(w))).unwrap_or_default(),
        rto = figure("RTO", &r.rto),
        rpo = figure("RPO", &r.rpo),
        drkit = h(&env.drkit),
        origin = h(&env.origin),
        hash = h(&env.runbook_hash),
        by = h(&env.ran_by.join(", then ")),
        mode = h(&env.mode),
        targets = h(&env
            .targets
            .iter()
            .map(|(n, k)| format!("{n} ({k})"))
            .collect::<Vec<_>>()
            .join(", ")),
        events = r.events,
        head = h(&r.chain_head),
    )
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px 32px;color:#1d232a;background:#fff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}.rb{font-weight:600}\
.sub{color:#5b6570;margin:0}.outcome{font-size:13px;padding:2px 8px;border-radius:10px;vertical-align:middle;background:#e6e9ed}\
.outcome.succeeded{background:#d4f3dd;color:#0c5b24}.outcome.failed,.outcome.compensated{background:#fbdada;color:#8a1010}\
.outcome.interrupted,.outcome.stopped,.outcome.waiting{background:#fdf0c8;color:#6b4f00}\
.figures{display:flex;gap:16px;margin-top:16px}.figure{border:2px solid #c8ced5;border-radius:8px;padding:10px 16px;min-width:260px}\
.figure .name{font-weight:600;color:#5b6570}.figure .value{font-size:30px;font-weight:700}.figure .verdict{font-weight:700;text-transform:uppercase}\
.figure.met{border-color:#2e9e50}.figure.met .verdict{color:#1d7a3a}.figure.missed{border-color:#c83232}.figure.missed .verdict{color:#b02020}\
.figure.inconclusive{border-color:#d7a21a}.figure.inconclusive .verdict{color:#8a6400}.figure .why,.figure .objective{color:#5b6570;font-size:12px}\
svg{display:block;margin:8px 0;font-size:11px}.axis{stroke:#5b6570}.tick{stroke:#5b6570}.ticklabel{text-anchor:middle;fill:#5b6570}\
.label{text-anchor:end;fill:#1d232a}.bar{fill:#8fb3d9}.bar.succeeded{fill:#4f8fd1}.bar.failed{fill:#d64545}.bar.skipped{fill:#c8ced5}\
.bar.disaster{fill:#e07b24}.bar.teardown,.bar.setup{fill:#9aa5b1}.bar.recovered{fill:#3aa55d}.bar.failback{fill:#8e6bbf}\
.mark{stroke-width:2;stroke-dasharray:4 3}.mark.disaster{stroke:#d64545}.mark.healthy{stroke:#2e9e50}.mark.objective{stroke:#7a4fd1}\
.marklabel{font-weight:600}.marklabel.disaster{fill:#b02020}.marklabel.healthy{fill:#1d7a3a}.marklabel.objective{fill:#5a35a8}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6e9ed;vertical-align:top}\
tr.failed td{background:#fff0f0}tr.skipped td{color:#8a939c}.events{columns:2;font-size:12px;color:#3a434c}.t{color:#8a939c}\
.env{color:#3a434c}.canary{margin:12px 0 0}";
