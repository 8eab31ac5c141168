//! What a run did, read back from its journal: the timeline, each step's state, attempts
//! and duration, and the outcome. `drkit runs` and `drkit runs show` print it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::journal::{self, Actor, Event, EventKind};
use crate::store::DynStore;
use crate::Result;

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step.
    pub id: String,
    /// Its action.
    pub action: String,
    /// `succeeded`, `failed`, `skipped`, `running` (in flight when the run stopped),
    /// `waiting` (an approval), `pending`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// When its first attempt started.
    pub started: Option<Timestamp>,
    /// When it finished.
    pub ended: Option<Timestamp>,
    /// Seconds from start to end.
    pub seconds: Option<f64>,
    /// The last error, or why it was skipped.
    pub note: Option<String>,
    /// Its outputs.
    pub outputs: Map<String, Value>,
    /// Whether a compensation undid it.
    pub compensated: bool,
}

/// A run, as its journal tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's id.
    pub id: String,
    /// The runbook's name.
    pub runbook: String,
    /// `succeeded`, `failed`, `compensated`, `waiting`, `interrupted`, or `running` when
    /// no end is journaled (the process died: resume it).
    pub outcome: String,
    /// When it started.
    pub started: Timestamp,
    /// When it ended (the last event, while running).
    pub ended: Timestamp,
    /// Seconds between the two.
    pub seconds: f64,
    /// Who started it.
    pub by: Actor,
    /// Its steps, in file order.
    pub steps: Vec<StepSummary>,
    /// Every event.
    pub events: Vec<Event>,
}

impl RunSummary {
    /// The step called `id`.
    #[must_use]
    pub fn step(&self, id: &str) -> Option<&StepSummary> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// Reads run `id` back from `store`.
pub async fn summarize(store: &DynStore, id: &str) -> Result<RunSummary> {
    let header = journal::read_header(store, id).await?;
    let events = journal::read_events(store, id).await?;
    let mut steps: Vec<StepSummary> = header
        .runbook
        .steps
        .iter()
        .map(|s| StepSummary {
            id: s.id.clone(),
            action: s.action.clone(),
            state: "pending".into(),
            attempts: 0,
            started: None,
            ended: None,
            seconds: None,
            note: None,
            outputs: Map::new(),
            compensated: false,
        })
        .collect();
    let mut outcome = "running".to_owned();
    for e in &events {
        let find = |steps: &mut Vec<StepSummary>, id: &str| steps.iter().position(|s| s.id == id);
        match &e.kind {
            EventKind::StepStarted { step, attempt } => {
                if let Some(i) = find(&mut steps, step) {
                    let s = &mut steps[i];
                    s.state = "running".into();
                    s.attempts = s.attempts.max(*attempt);
                    s.started.get_or_insert(e.at);
                }
            }
            EventKind::StepSucceeded { step, outputs } => {
                if let Some(i) = find(&mut steps, step) {
                    let s = &mut steps[i];
                    s.state = "succeeded".into();
                    s.ended = Some(e.at);
                    s.outputs.clone_from(outputs);
                }
            }
            EventKind::StepFailed {
                step,
                message,
                will_retry,
                ..
            } => {
                if let Some(i) = find(&mut steps, step) {
                    let s = &mut steps[i];
                    s.note = Some(message.clone());
                    if !will_retry {
                        s.state = "failed".into();
                        s.ended = Some(e.at);
                    }
                }
            }
            EventKind::StepSkipped { step, why } => {
                if let Some(i) = find(&mut steps, step) {
                    steps[i].state = "skipped".into();
                    steps[i].note = Some(why.clone());
                }
            }
            EventKind::ApprovalWaiting { step } => {
                if let Some(i) = find(&mut steps, step) {
                    steps[i].state = "waiting".into();
                }
            }
            EventKind::CompensationDone { step } => {
                if let Some(i) = find(&mut steps, step) {
                    steps[i].compensated = true;
                }
            }
            EventKind::RunEnded { outcome: o } => outcome.clone_from(o),
            EventKind::RunStarted { .. } => outcome = "running".into(),
            _ => {}
        }
    }
    for s in &mut steps {
        if let (Some(a), Some(b)) = (s.started, s.ended) {
            s.seconds = Some(b.duration_since(a).as_secs_f64());
        }
    }
    let ended = events.last().map_or(header.started, |e| e.at);
    Ok(RunSummary {
        id: header.id,
        runbook: header.runbook.name,
        outcome,
        started: header.started,
        ended,
        seconds: ended.duration_since(header.started).as_secs_f64(),
        by: header.by,
        steps,
        events,
    })
}

/// Every run in `store`, oldest first, without their events.
pub async fn list(store: &DynStore) -> Result<Vec<RunSummary>> {
    let mut out = Vec::new();
    for id in journal::run_ids(store).await? {
        let mut s = summarize(store, &id).await?;
        s.events.clear();
        out.push(s);
    }
    Ok(out)
}
