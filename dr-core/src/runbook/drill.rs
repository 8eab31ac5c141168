//! Drills: a runbook's `drill:` section wraps its steps (the recovery under test,
//! unchanged) with a sandbox, a canary writer and a disaster, and the run measures what
//! was achieved — all as ordinary steps and events, so a drill is journaled, locked,
//! resumed and reported like any run.
//!
//! When a drill is read its sections become steps, each marked with its [`Phase`] and
//! wired in this order: `setup` → `canary` (the writer starts) → `disaster` →
//! `canary-stopped` (its acknowledged writes journaled) → the recovery → `recovered`
//! checks → `canary-read` (which writes the recovered database has) → `teardown`
//! (always, also after a failure or Ctrl-C). [`DrillMeasures::of`] reads the RTO and RPO
//! back from the journal alone:
//!
//! - RTO: from the moment the last disaster took effect to the moment the last
//!   `recovered` check first passed, on the runner's monotonic clock (the wall clock
//!   when the two were journaled on different machines).
//! - RPO: from the disaster back to the acknowledgement of the newest canary write the
//!   recovered database holds; with the writes acknowledged and lost, and those whose
//!   outcome was unknown that turned up.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::journal::{Event, EventKind, RunHeader};
use super::model::{Phase, Runbook, Step};
use super::parse::{Diagnostic, Problems, SourceMap};
use super::state::{RunSummary, StepState};
use crate::clock::{ClockUsed, Moment};

/// The ids of the steps a drill's canary adds.
pub const CANARY_STEPS: [&str; 4] = ["canary", "canary-stopped", "canary-read", "canary-drop"];

/// The prefix of the actions that cause a disaster (usable in a drill's `disaster:` only).
pub const DISASTER_PREFIX: &str = "disaster.";

/// What a disaster action returns: the moment it took effect and, for a database, its
/// WAL position then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DisasterEffect {
    /// When it took effect, on both clocks.
    pub took_effect: Moment,
    /// The database's WAL position just before (a PostgreSQL LSN), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
    /// What it did, in words.
    pub what: String,
}

/// One acknowledged canary write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CanaryWrite {
    /// Its sequence number, from 1.
    pub seq: u64,
    /// When the runner had the server's acknowledgement.
    pub acked: Moment,
    /// The server's `clock_timestamp()` as it wrote it.
    pub server_time: String,
    /// The server's WAL insert position after the write.
    pub lsn: String,
}

/// What the canary writer did, journaled once it stopped (`canary.stop`'s outputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CanaryLog {
    /// Writes the server acknowledged, in order.
    pub acknowledged: Vec<CanaryWrite>,
    /// Writes sent whose outcome is unknown (the connection failed or timed out before
    /// an answer): they may or may not have committed.
    pub unknown: Vec<u64>,
    /// Why it stopped (`writes failed: …`, `stopped after the disaster`).
    pub stopped: String,
    /// Milliseconds between writes.
    pub interval_ms: u64,
}

/// Which canary writes a database holds (`canary.read`'s outputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CanaryFound {
    /// The sequence numbers present, as inclusive ranges `[first, last]`.
    pub present: Vec<[u64; 2]>,
    /// How many rows.
    pub rows: u64,
}

impl CanaryFound {
    /// Ranges of `seqs` (sorted or not).
    #[must_use]
    pub fn from_seqs(mut seqs: Vec<u64>) -> Self {
        seqs.sort_unstable();
        seqs.dedup();
        let mut present: Vec<[u64; 2]> = Vec::new();
        for s in &seqs {
            match present.last_mut() {
                Some(r) if r[1] + 1 == *s => r[1] = *s,
                _ => present.push([*s, *s]),
            }
        }
        Self {
            rows: seqs.len() as u64,
            present,
        }
    }

    /// Whether write `seq` is present.
    #[must_use]
    pub fn has(&self, seq: u64) -> bool {
        self.present.iter().any(|r| r[0] <= seq && seq <= r[1])
    }
}

fn ids(steps: &[Step]) -> Vec<String> {
    steps.iter().map(|s| s.id.clone()).collect()
}

/// Roots of `steps` (those needing nothing) need `before`.
fn after(steps: &mut [Step], before: &[String]) {
    for s in steps {
        if s.needs.is_empty() {
            s.needs = before.to_vec();
        }
    }
}

fn canary_step(id: &str, action: &str, with: Value, needs: Vec<String>) -> Step {
    let mut s = Step::new(id, action, with);
    s.needs = needs;
    s.phase = Some(Phase::Canary);
    s
}

/// Merges the drill's sections into the runbook's steps, in the order of a drill (see
/// the module's text). Does nothing to a runbook without a drill, or one merged already.
#[allow(clippy::too_many_lines)] // the sections in a drill's order, one after another
pub(crate) fn compile(rb: &mut Runbook, map: &mut SourceMap, problems: &mut Problems) {
    let Some(drill) = rb.drill.as_mut() else {
        return;
    };
    if rb.steps.iter().any(|s| s.phase.is_some()) {
        return;
    }
    let mut setup = std::mem::take(&mut drill.setup);
    let mut disaster = std::mem::take(&mut drill.disaster);
    let mut recovered = std::mem::take(&mut drill.recovered);
    let mut failback = std::mem::take(&mut drill.failback);
    let mut teardown = std::mem::take(&mut drill.teardown);
    let canary = drill.canary.clone();
    let taken: BTreeSet<String> = rb
        .steps
        .iter()
        .chain(&setup)
        .chain(&disaster)
        .chain(&recovered)
        .chain(&failback)
        .chain(&teardown)
        .map(|s| s.id.clone())
        .collect();
    if canary.is_some() {
        for id in CANARY_STEPS {
            if taken.contains(id) {
                problems.add(
                    map.at(&format!("steps.{id}")),
                    format!("step id {id:?} is the drill's canary's own"),
                    "rename the step",
                );
            }
        }
    }
    if disaster.is_empty() {
        problems.add(
            map.at("drill"),
            "the drill has no disaster steps",
            "add `disaster:` steps that break the sandbox (drkit runbook actions lists the disaster.* actions)",
        );
    }
    for (list, phase) in [
        (&mut setup, Phase::Setup),
        (&mut disaster, Phase::Disaster),
        (&mut recovered, Phase::Recovered),
        (&mut failback, Phase::Failback),
        (&mut teardown, Phase::Teardown),
    ] {
        for s in list.iter_mut() {
            s.phase = Some(phase);
        }
    }
    for s in &mut rb.steps {
        s.phase = Some(Phase::Recovery);
    }
    let mut before = ids(&setup);
    let mut steps = setup;
    let at_canary = map.at("drill.canary");
    let canary_with = |target: &str| serde_json::json!({ "target": target });
    if let Some(c) = &canary {
        let start = canary_step(
            "canary",
            "canary.start",
            serde_json::json!({
                "target": c.target,
                "interval": crate::duration::format(c.interval),
            }),
            before.clone(),
        );
        steps.push(start);
        before = vec!["canary".to_owned()];
    }
    after(&mut disaster, &before);
    before = ids(&disaster);
    steps.append(&mut disaster);
    if canary.is_some() {
        let mut stop = canary_step(
            "canary-stopped",
            "canary.stop",
            Value::Object(Map::new()),
            before,
        );
        // The recovery goes on when the canary's log cannot be had: the RPO is then
        // inconclusive, which the report says.
        stop.continue_on_error = true;
        steps.push(stop);
        before = vec!["canary-stopped".to_owned()];
    }
    after(&mut rb.steps, &before);
    before = ids(&rb.steps);
    steps.append(&mut rb.steps);
    after(&mut recovered, &before);
    // The canary is read once the recovery and its checks are all done (a check may
    // need an early recovery step, to say when the service was back while the rest of
    // the recovery goes on).
    let mut last = before;
    last.extend(ids(&recovered));
    steps.append(&mut recovered);
    // The way home, once the service is back. (The canary is read after it: `always`
    // steps run once every other step has ended.)
    if !failback.is_empty() {
        after(&mut failback, &last);
        last.extend(ids(&failback));
        steps.append(&mut failback);
    }
    if let Some(c) = &canary {
        let read_from = c.read.clone().unwrap_or_else(|| c.target.clone());
        let mut read = canary_step("canary-read", "canary.read", canary_with(&read_from), last);
        read.always = true;
        // Nothing to read when the writer never started (the drill stopped before): the
        // reference reads as null then.
        read.with["started"] = Value::String("${steps.canary.outputs.first_seq}".to_owned());
        read.continue_on_error = true;
        steps.push(read);
        last = vec!["canary-read".to_owned()];
        if !c.keep {
            // On the recovered database; on the primary when the drill stopped before
            // the recovery (the replica then still read-only).
            let mut with = canary_with(&read_from);
            if read_from != c.target {
                with["fallback"] = Value::String(c.target.clone());
            }
            let mut drop = canary_step("canary-drop", "canary.drop", with, last.clone());
            drop.always = true;
            drop.continue_on_error = true;
            drop.phase = Some(Phase::Teardown);
            steps.push(drop);
        }
    }
    for s in &mut teardown {
        s.always = true;
    }
    after(&mut teardown, &last);
    steps.append(&mut teardown);
    if let Some(at) = at_canary {
        for id in CANARY_STEPS {
            map.places.entry(format!("steps.{id}")).or_insert(at);
        }
    }
    rb.steps = steps;
}

/// Whether `rb` is a drill.
#[must_use]
pub fn is_drill(rb: &Runbook) -> bool {
    rb.drill.is_some()
}

/// The steps that reference a setup step's outputs in `v`.
fn names_setup_output(v: &Value, setup: &BTreeSet<&str>) -> (bool, bool) {
    // (references a setup output, references something else that could be live)
    match v {
        Value::String(s) => {
            let mut setup_ref = false;
            let mut other = false;
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                let inner = &rest[i + 2..];
                let end = inner.find('}').unwrap_or(inner.len());
                let e = inner[..end].trim();
                match e.strip_prefix("steps.") {
                    Some(r) if setup.iter().any(|id| r.starts_with(&format!("{id}."))) => {
                        setup_ref = true;
                    }
                    _ if e.starts_with("run.") || e == "now" => {}
                    _ => other = true,
                }
                rest = &inner[end..];
            }
            (setup_ref, other)
        }
        Value::Array(a) => a.iter().fold((false, false), |acc, x| {
            let r = names_setup_output(x, setup);
            (acc.0 || r.0, acc.1 || r.1)
        }),
        Value::Object(m) => m.values().fold((false, false), |acc, x| {
            let r = names_setup_output(x, setup);
            (acc.0 || r.0, acc.1 || r.1)
        }),
        _ => (false, false),
    }
}

/// Whether the parameters of a step, but its `target`, name something only through
/// setup steps' outputs (and name something at all that way).
fn acts_on_setup_only(with: &Value, setup: &BTreeSet<&str>) -> bool {
    let mut rest = with.clone();
    if let Value::Object(m) = &mut rest {
        m.remove("target");
    }
    let (from_setup, other) = names_setup_output(&rest, setup);
    from_setup && !other
}

/// What `plan` and `check` refuse in a drill, before anything runs: a disaster step on
/// anything but a sandbox (a target declared `sandbox: true`, or what the drill's own
/// setup made), a disaster action outside `disaster:`.
#[must_use]
#[allow(clippy::too_many_lines)] // each refusal with its own words and fix
pub fn check(rb: &Runbook, map: &SourceMap) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let drill = is_drill(rb);
    let setup: BTreeSet<&str> = rb
        .steps
        .iter()
        .filter(|s| s.phase == Some(Phase::Setup))
        .map(|s| s.id.as_str())
        .collect();
    for s in &rb.steps {
        let path = format!("steps.{}", s.id);
        let disaster_action = s.action.starts_with(DISASTER_PREFIX);
        if s.phase != Some(Phase::Disaster) {
            if disaster_action {
                out.push(map.diagnostic(
                    &format!("{path}.action"),
                    format!(
                        "step {:?} runs {}, a disaster action, outside a drill's `disaster:` section",
                        s.id, s.action
                    ),
                    if drill {
                        "move it under `drill: disaster:`".to_owned()
                    } else {
                        "disaster actions run only in a drill: put it under `drill: disaster:` on a sandbox target".to_owned()
                    },
                ));
            }
            continue;
        }
        // Other steps of `disaster:` (a backup taken while the canary writes) are
        // ordinary steps.
        if !disaster_action {
            continue;
        }
        match s.with.get("target").and_then(Value::as_str) {
            Some(name) if !name.contains("${") => match rb.targets.get(name) {
                Some(t) if t.sandbox => {}
                // A cluster that is no sandbox, acting on what the drill's setup made
                // in it (a namespace): its other parameters come from setup outputs.
                Some(_) if acts_on_setup_only(&s.with, &setup) => {}
                Some(_) => out.push(map.diagnostic(
                    &format!("{path}.with.target"),
                    format!(
                        "disaster step {:?} acts on target {name:?}, which is not a sandbox",
                        s.id
                    ),
                    format!(
                        "a drill breaks only throwaways: declare target {name:?} with `sandbox: true` if it is one, or act on what the drill's setup made in it (a namespace from `${{steps.<setup step>.outputs.…}}`)"
                    ),
                )),
                None => out.push(map.diagnostic(
                    &format!("{path}.with.target"),
                    format!(
                        "disaster step {:?} acts on target {name:?}, which is not declared",
                        s.id
                    ),
                    format!(
                        "declare it under `targets:` with `sandbox: true` (declared: {})",
                        rb.targets.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )),
            },
            Some(_) => out.push(map.diagnostic(
                &format!("{path}.with.target"),
                format!(
                    "disaster step {:?} names its target with an expression; which target it breaks must be known before the drill runs",
                    s.id
                ),
                "name a target declared `sandbox: true`".to_owned(),
            )),
            None => {
                let (from_setup, other) = names_setup_output(&s.with, &setup);
                if !from_setup || other {
                    out.push(map.diagnostic(
                        &format!("{path}.with"),
                        format!(
                            "disaster step {:?} acts on something the drill did not make: it names no sandbox target{}",
                            s.id,
                            if other {
                                " and its parameters use values from outside the drill's setup"
                            } else {
                                " and none of its parameters comes from a setup step"
                            }
                        ),
                        "give it `target:` a target declared `sandbox: true`, or take what it acts on from a setup step's outputs (`${steps.<setup step>.outputs.…}`)".to_owned(),
                    ));
                }
            }
        }
    }
    if drill
        && !rb
            .steps
            .iter()
            .any(|s| s.phase == Some(Phase::Disaster) && s.action.starts_with(DISASTER_PREFIX))
        && rb.steps.iter().any(|s| s.phase == Some(Phase::Disaster))
    {
        out.push(map.diagnostic(
            "drill.disaster",
            "the drill's `disaster:` section runs no disaster action: nothing would break".to_owned(),
            "add a step running one of the disaster.* actions (drkit runbook actions lists them)".to_owned(),
        ));
    }
    if let Some(c) = rb.drill.as_ref().and_then(|d| d.canary.as_ref()) {
        for (field, name) in [("target", Some(&c.target)), ("read", c.read.as_ref())] {
            if let Some(name) = name {
                if !rb.targets.contains_key(name) {
                    out.push(map.diagnostic(
                        &format!("drill.canary.{field}"),
                        format!("the canary's {field} is target {name:?}, which is not declared"),
                        format!(
                            "declare it under `targets:` (declared: {})",
                            rb.targets.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// Whether an objective was achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Achieved within the objective.
    Met,
    /// Not achieved within it (or not recovered at all).
    Missed,
    /// Could not be measured: the disaster never took effect, the canary could not be
    /// read. Never a pass.
    Inconclusive,
    /// Measured, but the runbook sets no objective for it.
    NoObjective,
}

impl Verdict {
    /// As `--json` says it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "missed",
            Self::Inconclusive => "inconclusive",
            Self::NoObjective => "no objective",
        }
    }
}

/// One objective against what was achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Measure {
    /// The objective, in seconds.
    pub objective_seconds: Option<f64>,
    /// What was achieved, in seconds (absent when it could not be measured).
    pub achieved_seconds: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// The clock the figure was measured on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockUsed>,
    /// How it was reached, in words.
    pub why: String,
}

impl Measure {
    fn of(objective: Option<f64>, achieved: f64, clock: ClockUsed, why: String) -> Self {
        let verdict = match objective {
            None => Verdict::NoObjective,
            Some(o) if achieved <= o => Verdict::Met,
            Some(_) => Verdict::Missed,
        };
        Self {
            objective_seconds: objective,
            achieved_seconds: Some(achieved),
            verdict,
            clock: Some(clock),
            why,
        }
    }

    fn without(objective: Option<f64>, verdict: Verdict, why: String) -> Self {
        Self {
            objective_seconds: objective,
            achieved_seconds: None,
            verdict,
            clock: None,
            why,
        }
    }
}

/// The disaster, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DisasterMark {
    /// The step that caused it.
    pub step: String,
    /// When it took effect.
    pub at: Moment,
    /// The WAL position then, for a database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<String>,
    /// What it did.
    pub what: String,
}

/// The canary's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CanaryFigures {
    /// Writes acknowledged by the primary.
    pub acknowledged: u64,
    /// Of those, present in the recovered database.
    pub recovered: u64,
    /// Acknowledged, then lost.
    pub lost: u64,
    /// Writes whose outcome was unknown.
    pub unknown: u64,
    /// Of those, present in the recovered database.
    pub unknown_present: u64,
    /// The newest acknowledged write present, by sequence number.
    pub newest_present: Option<u64>,
    /// The newest acknowledged at all.
    pub newest_acknowledged: Option<u64>,
    /// Milliseconds between writes.
    pub interval_ms: u64,
    /// Why the writer stopped.
    pub stopped: String,
}

/// A recovery step's share of the recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Share {
    /// The step.
    pub step: String,
    /// Its seconds.
    pub seconds: f64,
    /// Its part of the recovery's duration, 0 to 1.
    pub share: f64,
}

/// What a drill achieved, read from its journal alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DrillMeasures {
    /// The disaster: the effect of the last disaster step (the sandbox fully broken: a
    /// replica cut off, then its primary lost, counts from the loss).
    pub disaster: Option<DisasterMark>,
    /// When the last `recovered` check first passed.
    pub recovered_at: Option<Moment>,
    /// The RTO against its objective.
    pub rto: Measure,
    /// The RPO against its objective.
    pub rpo: Measure,
    /// The recovery's own duration: its first step's start to its last step's end.
    pub recovery_seconds: Option<f64>,
    /// Each recovery step's share of it.
    pub shares: Vec<Share>,
    /// The failback's duration: its first step's start to its last step's end (when the
    /// drill has `failback:` steps and they all ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_seconds: Option<f64>,
    /// The canary's figures, when it was read.
    pub canary: Option<CanaryFigures>,
}

fn phase_of(rb: &Runbook, step: &str) -> Option<Phase> {
    rb.step(step).and_then(|s| s.phase)
}

fn outputs_as<T: serde::de::DeserializeOwned>(m: &Map<String, Value>) -> Option<T> {
    serde_json::from_value(Value::Object(m.clone())).ok()
}

impl DrillMeasures {
    /// The measures of a drill run: its header and events. `None` for a run that is not
    /// a drill.
    #[must_use]
    #[allow(clippy::too_many_lines, clippy::similar_names)] // the disaster, the recovery, RTO, the canary, RPO: the names
    pub fn of(header: &RunHeader, events: &[Event], summary: &RunSummary) -> Option<Self> {
        let rb = &header.runbook;
        let drill = rb.drill.as_ref()?;
        let objective = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
        let (rto_objective, rpo_objective) =
            (objective(rb.objectives.rto), objective(rb.objectives.rpo));
        // The last disaster that took effect.
        let mut disaster: Option<DisasterMark> = None;
        let mut first_pass: BTreeMap<String, Moment> = BTreeMap::new();
        let mut started: BTreeMap<String, Moment> = BTreeMap::new();
        let mut ended: BTreeMap<String, Moment> = BTreeMap::new();
        for e in events {
            match &e.kind {
                EventKind::StepStarted { step, .. } => {
                    started.entry(step.clone()).or_insert_with(|| e.moment());
                }
                EventKind::StepSucceeded { step, outputs } => {
                    ended.insert(step.clone(), e.moment());
                    match phase_of(rb, step) {
                        Some(Phase::Disaster)
                            if rb
                                .step(step)
                                .is_some_and(|s| s.action.starts_with(DISASTER_PREFIX)) =>
                        {
                            let effect: Option<DisasterEffect> = outputs_as(outputs);
                            disaster = Some(match effect {
                                Some(d) => DisasterMark {
                                    step: step.clone(),
                                    at: d.took_effect,
                                    lsn: d.lsn,
                                    what: d.what,
                                },
                                // An action that does not say when: the step's end.
                                None => DisasterMark {
                                    step: step.clone(),
                                    at: e.moment(),
                                    lsn: None,
                                    what: format!("step {step} succeeded"),
                                },
                            });
                        }
                        Some(Phase::Recovered) => {
                            first_pass.entry(step.clone()).or_insert_with(|| e.moment());
                        }
                        _ => {}
                    }
                }
                EventKind::StepFailed {
                    step,
                    will_retry: false,
                    ..
                } => {
                    ended.insert(step.clone(), e.moment());
                }
                _ => {}
            }
        }
        let checks: Vec<&Step> = rb
            .steps
            .iter()
            .filter(|s| s.phase == Some(Phase::Recovered))
            .collect();
        let failed_check = checks
            .iter()
            .find(|s| summary.state(&s.id) != StepState::Succeeded);
        let recovered_at = if checks.is_empty() || failed_check.is_some() {
            None
        } else {
            checks
                .iter()
                .filter_map(|s| first_pass.get(&s.id))
                .max_by_key(|m| m.at)
                .cloned()
        };
        let rto = match (&disaster, &recovered_at) {
            (None, _) => Measure::without(
                rto_objective,
                Verdict::Inconclusive,
                "the disaster never took effect (no disaster step succeeded)".into(),
            ),
            (Some(_), None) if checks.is_empty() => Measure::without(
                rto_objective,
                Verdict::Inconclusive,
                "the drill has no `recovered` checks to say when the service was back".into(),
            ),
            (Some(_), None) => Measure::without(
                rto_objective,
                Verdict::Missed,
                format!(
                    "not recovered: check {:?} {}",
                    failed_check.map_or("?", |s| s.id.as_str()),
                    failed_check.map_or("did not pass".into(), |s| format!(
                        "ended {}",
                        summary.state(&s.id)
                    ))
                ),
            ),
            (Some(d), Some(r)) => {
                let (secs, clock) = d.at.seconds_to(r);
                Measure::of(
                    rto_objective,
                    secs,
                    clock,
                    format!(
                        "from the disaster ({}) to the last recovered check's first pass",
                        d.step
                    ),
                )
            }
        };
        // The recovery's own duration and each step's share of it.
        let recovery: Vec<&Step> = rb
            .steps
            .iter()
            .filter(|s| s.phase == Some(Phase::Recovery))
            .collect();
        let first = recovery
            .iter()
            .filter_map(|s| started.get(&s.id))
            .min_by_key(|m| m.at);
        let last = recovery
            .iter()
            .filter_map(|s| ended.get(&s.id))
            .max_by_key(|m| m.at);
        let recovery_seconds = match (first, last) {
            (Some(a), Some(b)) => Some(a.seconds_to(b).0.max(0.0)),
            _ => None,
        };
        let failback: Vec<&Step> = rb
            .steps
            .iter()
            .filter(|s| s.phase == Some(Phase::Failback))
            .collect();
        let failback_seconds =
            if !failback.is_empty() && failback.iter().all(|s| summary.state(&s.id).finished()) {
                let first = failback
                    .iter()
                    .filter_map(|s| started.get(&s.id))
                    .min_by_key(|m| m.at);
                let last = failback
                    .iter()
                    .filter_map(|s| ended.get(&s.id))
                    .max_by_key(|m| m.at);
                first.zip(last).map(|(a, b)| a.seconds_to(b).0.max(0.0))
            } else {
                None
            };
        let shares = recovery
            .iter()
            .filter_map(|s| {
                let secs = summary.step(&s.id)?.seconds?;
                Some(Share {
                    step: s.id.clone(),
                    seconds: secs,
                    share: recovery_seconds
                        .filter(|t| *t > 0.0)
                        .map_or(0.0, |t| (secs / t).min(1.0)),
                })
            })
            .collect();
        // The canary.
        let log: Option<CanaryLog> = summary
            .step("canary-stopped")
            .filter(|s| s.state == StepState::Succeeded)
            .and_then(|s| outputs_as(&s.outputs));
        let found: Option<CanaryFound> = summary
            .step("canary-read")
            .filter(|s| s.state == StepState::Succeeded)
            .and_then(|s| outputs_as(&s.outputs));
        let why_not = |id: &str| {
            summary.step(id).map_or_else(
                || format!("step {id} is missing"),
                |s| match &s.note {
                    Some(n) => format!("step {id} {}: {n}", s.state),
                    None => format!("step {id} {}", s.state),
                },
            )
        };
        let mut canary = None;
        let rpo = match (&drill.canary, &disaster, &log, &found) {
            // Nothing asked, nothing measured: not a failure.
            (None, _, _, _) if rpo_objective.is_none() => Measure::without(
                None,
                Verdict::NoObjective,
                "the drill has no canary and the runbook no RPO objective: the data lost was not measured".into(),
            ),
            (None, _, _, _) => Measure::without(
                rpo_objective,
                Verdict::Inconclusive,
                "the drill has no canary: the data lost was not measured, so the RPO objective cannot be held to".into(),
            ),
            (_, None, _, _) => Measure::without(
                rpo_objective,
                Verdict::Inconclusive,
                "the disaster never took effect".into(),
            ),
            (_, _, None, _) => Measure::without(
                rpo_objective,
                Verdict::Inconclusive,
                format!(
                    "the canary's writes were not journaled ({})",
                    why_not("canary-stopped")
                ),
            ),
            (_, _, _, None) => Measure::without(
                rpo_objective,
                Verdict::Inconclusive,
                format!(
                    "the canary could not be read from the recovered database ({})",
                    why_not("canary-read")
                ),
            ),
            (Some(_), Some(d), Some(log), Some(found)) => {
                let present: Vec<&super::drill::CanaryWrite> = log
                    .acknowledged
                    .iter()
                    .filter(|w| found.has(w.seq))
                    .collect();
                let newest_present = present.iter().max_by_key(|w| w.seq);
                canary = Some(CanaryFigures {
                    acknowledged: log.acknowledged.len() as u64,
                    recovered: present.len() as u64,
                    lost: (log.acknowledged.len() - present.len()) as u64,
                    unknown: log.unknown.len() as u64,
                    unknown_present: log.unknown.iter().filter(|s| found.has(**s)).count() as u64,
                    newest_present: newest_present.map(|w| w.seq),
                    newest_acknowledged: log.acknowledged.last().map(|w| w.seq),
                    interval_ms: log.interval_ms,
                    stopped: log.stopped.clone(),
                });
                match (newest_present, log.acknowledged.first()) {
                    (Some(w), _) => {
                        let (secs, clock) = w.acked.seconds_to(&d.at);
                        Measure::of(
                            rpo_objective,
                            secs.max(0.0),
                            clock,
                            format!(
                                "from the acknowledgement of canary write {} (the newest the recovered database holds) to the disaster",
                                w.seq
                            ),
                        )
                    }
                    (None, Some(w)) => {
                        let (secs, clock) = w.acked.seconds_to(&d.at);
                        Measure::of(
                            rpo_objective,
                            secs.max(0.0),
                            clock,
                            "the recovered database holds none of the canary's writes: at least everything since the first".into(),
                        )
                    }
                    (None, None) => Measure::without(
                        rpo_objective,
                        Verdict::Inconclusive,
                        format!(
                            "the canary had no write acknowledged before it stopped ({})",
                            log.stopped
                        ),
                    ),
                }
            }
        };
        Some(Self {
            disaster,
            recovered_at,
            rto,
            rpo,
            recovery_seconds,
            shares,
            failback_seconds,
            canary,
        })
    }

    /// Both objectives met (or set none); neither missed nor inconclusive.
    #[must_use]
    pub fn ok(&self) -> bool {
        [self.rto.verdict, self.rpo.verdict]
            .iter()
            .all(|v| matches!(v, Verdict::Met | Verdict::NoObjective))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_ranges_say_which_writes_are_present() {
        let f = CanaryFound::from_seqs(vec![5, 1, 2, 3, 7, 8]);
        assert_eq!(f.present, vec![[1, 3], [5, 5], [7, 8]]);
        assert_eq!(f.rows, 6);
        assert!(f.has(2) && f.has(5) && f.has(8));
        assert!(!f.has(4) && !f.has(6) && !f.has(9));
    }

    #[test]
    fn a_drill_becomes_steps_in_the_order_of_a_drill() {
        let yaml = r"
version: 1
name: d
targets:
  p: { kind: x, sandbox: true }
  r: { kind: x }
drill:
  setup: [{ id: make, action: wait, with: { for: 1ms } }]
  canary: { target: p, read: r }
  disaster: [{ id: kill, action: disaster.x, with: { target: p } }]
  recovered: [{ id: healthy, action: wait, with: { for: 1ms } }]
  teardown: [{ id: clean, action: wait, with: { for: 1ms } }]
steps:
  - { id: promote, action: wait, with: { for: 1ms } }
";
        let (rb, _) = super::super::parse::parse_yaml(yaml, "d.yaml").unwrap();
        let order: Vec<(&str, Vec<&str>, Option<Phase>)> = rb
            .steps
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    s.needs.iter().map(String::as_str).collect(),
                    s.phase,
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![
                ("make", vec![], Some(Phase::Setup)),
                ("canary", vec!["make"], Some(Phase::Canary)),
                ("kill", vec!["canary"], Some(Phase::Disaster)),
                ("canary-stopped", vec!["kill"], Some(Phase::Canary)),
                ("promote", vec!["canary-stopped"], Some(Phase::Recovery)),
                ("healthy", vec!["promote"], Some(Phase::Recovered)),
                (
                    "canary-read",
                    vec!["promote", "healthy"],
                    Some(Phase::Canary)
                ),
                ("canary-drop", vec!["canary-read"], Some(Phase::Teardown)),
                ("clean", vec!["canary-read"], Some(Phase::Teardown)),
            ]
        );
        assert!(rb.step("clean").unwrap().always);
        assert_eq!(
            rb.step("canary-read").unwrap().with["target"],
            serde_json::json!("r")
        );
    }
}
