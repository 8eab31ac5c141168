//! A run's state, as one fold of its journal: each step's [`StepState`], attempts,
//! outputs and times, and the run's [`RunOutcome`]. The engine applies every event it
//! journals to the same fold that resume, `drkit runs`, reports and Python read back, so
//! what a run decides and what it reports cannot disagree.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::journal::{Actor, Event, EventKind, RunHeader};
use super::model::Runbook;

/// A run's id: a UUIDv7, so ids sort by start time. Commands accept a unique prefix.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl RunId {
    /// A fresh id.
    #[must_use]
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<&str> for RunId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for RunId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for RunId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RunId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A step's id, unique in its runbook.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(String);

impl fmt::Debug for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl StepId {
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for StepId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for StepId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StepId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not started.
    Pending,
    /// An attempt started and has not ended (in flight when a run stopped).
    Running,
    /// It waits for something outside the run (an approval); the run stopped to wait.
    Waiting,
    /// Done.
    Succeeded,
    /// Failed after its retries.
    Failed,
    /// Not run: a need failed, its `if:` was false, or the run was stopping.
    Skipped,
    /// An operator counted it as done on resume (`--skip`) without running it again.
    SkippedByOperator,
}

impl StepState {
    /// Whether it ended (succeeded, failed or skipped, by the run or an operator).
    #[must_use]
    pub fn finished(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Skipped | Self::SkippedByOperator
        )
    }

    /// Whether steps that need it may run.
    #[must_use]
    pub fn satisfies_needs(self) -> bool {
        matches!(self, Self::Succeeded | Self::SkippedByOperator)
    }

    /// The name `if:` conditions and `--json` use.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::SkippedByOperator => "skipped_by_operator",
        }
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SkippedByOperator => "skipped by operator",
            other => other.as_str(),
        })
    }
}

/// How a run came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// No end is journaled and its lock is held: it is running now.
    Running,
    /// No end is journaled and its lock is gone or expired: its process died. Resume it.
    Stopped,
    /// Every step succeeded (or was skipped by a condition).
    Succeeded,
    /// A step failed, or the run's deadline passed.
    Failed,
    /// A step failed and the compensations undid what had been done.
    Compensated,
    /// Stopped at an approval; resume it once approved.
    Waiting,
    /// Stopped by Ctrl-C or a signal; resume it.
    Interrupted,
}

impl RunOutcome {
    /// Whether `--resume` may continue it.
    #[must_use]
    pub fn resumable(self) -> bool {
        matches!(
            self,
            Self::Running | Self::Stopped | Self::Waiting | Self::Interrupted
        )
    }

    /// The name `--json` uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Compensated => "compensated",
            Self::Waiting => "waiting",
            Self::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stopped => "stopped (resumable)",
            other => other.as_str(),
        })
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step.
    pub id: StepId,
    /// Its action.
    pub action: String,
    /// Where it stands.
    pub state: StepState,
    /// Attempts made.
    pub attempts: u32,
    /// When its first attempt started.
    pub started: Option<Timestamp>,
    /// When it finished.
    pub ended: Option<Timestamp>,
    /// Seconds from start to end, without the time the run was stopped in between.
    pub seconds: Option<f64>,
    /// The last error, or why it was skipped or waits.
    pub note: Option<String>,
    /// Its outputs.
    pub outputs: Map<String, Value>,
    /// Whether a compensation undid it.
    pub compensated: bool,
    /// Skipped by its own `if:`: not needed, so the steps that need it may run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_needed: bool,
    /// The process groups its attempts started (stopped by a resume if still running).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<crate::lock::ProcessId>,
}

/// An objective against what a run achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveCheck {
    /// The objective, in seconds.
    pub objective_seconds: f64,
    /// What the run achieved so far, in seconds.
    pub achieved_seconds: f64,
    /// Met (succeeded within it) or missed (took longer, or did not succeed); `None`
    /// while the run has not ended.
    pub met: Option<bool>,
    /// What was measured, when not the run's duration: a drill's RTO runs from the
    /// disaster to the first pass of its `recovered` checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
}

/// A run, as its journal tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's id.
    pub id: RunId,
    /// The runbook's name.
    pub runbook: String,
    /// How it came out (or that it runs, or stopped).
    pub outcome: RunOutcome,
    /// Why it ended so, when the journal says (the deadline passed, a signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it started.
    pub started: Timestamp,
    /// When it ended (the last event, while running).
    pub ended: Timestamp,
    /// Seconds it ran: from start to end without the time it was stopped between a
    /// crash or interruption and a resume.
    pub seconds: f64,
    /// Who started it.
    pub by: Actor,
    /// The runbook's RTO objective against this run's duration, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<ObjectiveCheck>,
    /// Its steps, in file order.
    pub steps: Vec<StepSummary>,
    /// Every event (empty in listings).
    pub events: Vec<Event>,
    /// Steps in the order they succeeded (compensation undoes them newest first).
    #[serde(skip)]
    pub finished_order: Vec<StepId>,
    /// When the run was stopped: from its last event before a resume to that resume.
    #[serde(skip)]
    gaps: Vec<(Timestamp, Timestamp)>,
    #[serde(skip)]
    last_at: Option<Timestamp>,
    #[serde(skip)]
    last_token: Option<crate::lock::FencingToken>,
    /// Where each step is in `steps`, by id (every event looks one up).
    #[serde(skip)]
    index: std::collections::HashMap<String, usize>,
}

impl RunSummary {
    /// The state of a run of `runbook` before its first event.
    #[must_use]
    pub fn new(header: &RunHeader) -> Self {
        Self::of(
            &header.id,
            &header.runbook,
            header.started,
            header.by.clone(),
        )
    }

    fn of(id: &RunId, rb: &Runbook, started: Timestamp, by: Actor) -> Self {
        Self {
            id: id.clone(),
            runbook: rb.name.clone(),
            outcome: RunOutcome::Running,
            reason: None,
            started,
            ended: started,
            seconds: 0.0,
            by,
            rto: rb.objectives.rto.map(|o| ObjectiveCheck {
                objective_seconds: o.as_secs_f64(),
                achieved_seconds: 0.0,
                met: None,
                measured: None,
            }),
            steps: rb
                .steps
                .iter()
                .map(|s| StepSummary {
                    id: StepId::from(s.id.as_str()),
                    action: s.action.clone(),
                    state: StepState::Pending,
                    attempts: 0,
                    started: None,
                    ended: None,
                    seconds: None,
                    note: None,
                    outputs: Map::new(),
                    compensated: false,
                    not_needed: false,
                    processes: Vec::new(),
                })
                .collect(),
            events: Vec::new(),
            finished_order: Vec::new(),
            gaps: Vec::new(),
            last_at: None,
            last_token: None,
            index: rb
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect(),
        }
    }

    /// The run's duration against its RTO objective, once it has ended.
    fn measure_rto(&mut self) {
        if let Some(rto) = &mut self.rto {
            rto.achieved_seconds = self.seconds;
            rto.met = match self.outcome {
                RunOutcome::Succeeded => Some(self.seconds <= rto.objective_seconds),
                RunOutcome::Failed | RunOutcome::Compensated => Some(false),
                _ => None,
            };
        }
    }

    /// The fold of `events` over `header`, keeping the events.
    #[must_use]
    pub fn fold(header: &RunHeader, events: Vec<Event>) -> Self {
        let mut s = Self::new(header);
        for e in &events {
            s.apply(e);
        }
        // A drill's RTO is the one it measured, not its duration.
        if let Some(d) = super::drill::DrillMeasures::of(header, &events, &s) {
            if let Some(rto) = &mut s.rto {
                use super::drill::Verdict;
                rto.achieved_seconds = d.rto.achieved_seconds.unwrap_or(0.0);
                rto.met = match d.rto.verdict {
                    Verdict::Met => Some(true),
                    Verdict::Missed | Verdict::Inconclusive => Some(false),
                    Verdict::NoObjective => None,
                };
                rto.measured = Some(format!("drill: {}", d.rto.why));
            }
        }
        s.events = events;
        s
    }

    /// A copy without the events (what scheduling looks at).
    #[must_use]
    pub fn clone_steps(&self) -> Self {
        Self {
            id: self.id.clone(),
            runbook: self.runbook.clone(),
            outcome: self.outcome,
            reason: self.reason.clone(),
            started: self.started,
            ended: self.ended,
            seconds: self.seconds,
            by: self.by.clone(),
            rto: self.rto.clone(),
            steps: self.steps.clone(),
            events: Vec::new(),
            finished_order: self.finished_order.clone(),
            gaps: self.gaps.clone(),
            last_at: self.last_at,
            last_token: self.last_token,
            index: self.index.clone(),
        }
    }

    /// The step called `id`.
    #[must_use]
    pub fn step(&self, id: &str) -> Option<&StepSummary> {
        match self.index.get(id) {
            Some(&i) => self.steps.get(i),
            // Read back from JSON: no index.
            None => self.steps.iter().find(|s| s.id == id),
        }
    }

    fn step_mut(&mut self, id: &str) -> Option<&mut StepSummary> {
        match self.index.get(id) {
            Some(&i) => self.steps.get_mut(i),
            None => self.steps.iter_mut().find(|s| s.id == id),
        }
    }

    /// Every step's state, in the runbook's order (what scheduling looks at).
    #[must_use]
    pub fn states(&self) -> Vec<StepState> {
        self.steps.iter().map(|s| s.state).collect()
    }

    /// Per step, whether the steps that need it may run: it succeeded, an operator
    /// counted it as done, or its own `if:` said it was not needed.
    #[must_use]
    pub fn passes(&self) -> Vec<bool> {
        self.steps
            .iter()
            .map(|s| s.state.satisfies_needs() || s.not_needed)
            .collect()
    }

    /// Where step `id` stands (`Pending` for an unknown id).
    #[must_use]
    pub fn state(&self, id: &str) -> StepState {
        self.step(id).map_or(StepState::Pending, |s| s.state)
    }

    /// Steps whose attempt started and never ended: in flight when the run stopped.
    #[must_use]
    pub fn in_flight(&self) -> BTreeSet<StepId> {
        self.steps
            .iter()
            .filter(|s| s.state == StepState::Running)
            .map(|s| s.id.clone())
            .collect()
    }

    /// Seconds between `a` and `b` without the time the run was stopped.
    fn active_seconds(&self, a: Timestamp, b: Timestamp) -> f64 {
        let mut secs = b.duration_since(a).as_secs_f64();
        for &(from, to) in &self.gaps {
            let (from, to) = (from.max(a), to.min(b));
            if to > from {
                secs -= to.duration_since(from).as_secs_f64();
            }
        }
        secs.max(0.0)
    }

    /// Applies one event: the one place a journal becomes state.
    #[allow(clippy::too_many_lines)] // one arm per kind of event
    pub fn apply(&mut self, e: &Event) {
        // A new writer (a resume, with a new fencing token) ends the time the run was
        // stopped, whatever it journals first (a take-over, an operator's --skip).
        if let (Some(last), Some(token)) = (self.last_at, self.last_token) {
            if token != e.token {
                self.gaps.push((last, e.at));
            }
        }
        self.last_token = Some(e.token);
        match &e.kind {
            EventKind::RunStarted { resumed, .. } => {
                if *resumed {
                    // What was in flight or waiting when it stopped runs again (a resume
                    // settles non-idempotent in-flight steps before this event).
                    for s in &mut self.steps {
                        if matches!(s.state, StepState::Running | StepState::Waiting) {
                            s.state = StepState::Pending;
                        }
                    }
                }
                self.outcome = RunOutcome::Running;
                self.reason = None;
            }
            EventKind::StepStarted { step, attempt } => {
                if let Some(s) = self.step_mut(step) {
                    s.state = StepState::Running;
                    s.attempts = s.attempts.max(*attempt);
                    s.started.get_or_insert(e.at);
                    s.ended = None;
                }
            }
            EventKind::StepSucceeded { step, outputs } => {
                if let Some(s) = self.step_mut(step) {
                    s.state = StepState::Succeeded;
                    s.ended = Some(e.at);
                    s.outputs.clone_from(outputs);
                }
                self.finished_order.push(StepId::from(step.as_str()));
            }
            EventKind::StepFailed {
                step,
                message,
                will_retry,
                ..
            } => {
                if let Some(s) = self.step_mut(step) {
                    s.note = Some(message.clone());
                    if !will_retry {
                        s.state = StepState::Failed;
                        s.ended = Some(e.at);
                    }
                }
            }
            EventKind::StepSkipped {
                step,
                why,
                not_needed,
            } => {
                if let Some(s) = self.step_mut(step) {
                    s.state = StepState::Skipped;
                    s.not_needed = *not_needed;
                    s.note = Some(why.clone());
                }
            }
            EventKind::StepSkippedByOperator { step, why } => {
                if let Some(s) = self.step_mut(step) {
                    s.state = StepState::SkippedByOperator;
                    s.ended = Some(e.at);
                    s.note = Some(why.clone());
                }
            }
            EventKind::StepWaiting { step, why } => {
                if let Some(s) = self.step_mut(step) {
                    s.state = StepState::Waiting;
                    s.note = Some(why.clone());
                }
            }
            EventKind::StepProcess { step, group } => {
                if let Some(s) = self.step_mut(step) {
                    s.processes.push(group.clone());
                }
            }
            EventKind::CompensationDone { step } => {
                if let Some(s) = self.step_mut(step) {
                    s.compensated = true;
                }
            }
            EventKind::RunEnded { outcome, why } => {
                self.outcome = *outcome;
                self.reason.clone_from(why);
            }
            EventKind::CompensationStarted { .. }
            | EventKind::CompensationFailed { .. }
            | EventKind::RunInterrupted { .. }
            | EventKind::Note { .. } => {}
        }
        self.last_at = Some(e.at);
        self.ended = e.at;
        self.seconds = self.active_seconds(self.started, self.ended);
        self.measure_rto();
        if let Some(step) = e.kind.step() {
            let span = self.step(step).and_then(|s| Some((s.started?, s.ended?)));
            let seconds = span.map(|(a, b)| self.active_seconds(a, b));
            if let Some(s) = self.step_mut(step) {
                s.seconds = seconds;
            }
        }
    }
}

impl PartialEq<&str> for StepState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<&str> for RunOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::ops::Deref for RunId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for StepId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}
