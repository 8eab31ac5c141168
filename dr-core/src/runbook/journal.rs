//! The journal of a run, in the repository's store under `runs/<run-id>/`: the frozen
//! runbook and its variables (secrets only by name) first, then one create-only object
//! per event, numbered. Each event is written before the effect it announces is attempted
//! or after it is observed, and carries who wrote it and the lock's fencing token; a
//! writer whose token is no longer the lock's, or who loses the race for a number, stops.
//!
//! In an encrypted repository every journal object is compressed, encrypted and
//! authenticated with the repository's keys like a snapshot (its key as associated
//! data); object names reveal only the run id and the event number. Unencrypted
//! repositories keep readable JSON. Every event passes the run's [`Redactor`] before it
//! is written.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use bytes::Bytes;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{Mode, Runbook};
use super::redact::Redactor;
use super::state::{RunId, RunOutcome, RunSummary};
use crate::lock::{FencingToken, Lock};
use crate::repo::Repository;
use crate::store::{BackupStoreExt, DynStore, PutMode};
use crate::{err, ErrorKind, Result};

/// Called with every event once it is durable (a terminal's live step list).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// Where runs live in a store.
pub const RUNS_PREFIX: &str = "runs/";

/// Who wrote an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user (`USER`).
    pub user: String,
    /// The machine (`DRKIT_HOSTNAME`, else the host name).
    pub host: String,
    /// The process.
    pub pid: u32,
}

impl Actor {
    /// This process.
    #[must_use]
    pub fn current() -> Self {
        Self {
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(uid_name),
            host: crate::lock::hostname(),
            pid: std::process::id(),
        }
    }
}

/// `uid N` from the process status, when no user name is in the environment.
fn uid_name() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| format!("uid {u}")))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The first object of a run: what ran, frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    /// The run's id (a UUIDv7: ids sort by start time).
    pub id: RunId,
    /// The runbook as it was when the run started.
    pub runbook: Runbook,
    /// Where it was read from.
    pub origin: String,
    /// The variables' values; secret ones are `null` (read again from their source on
    /// resume), and the frozen runbook keeps no default of a secret variable.
    pub vars: Map<String, Value>,
    /// Planned or forced.
    pub mode: Mode,
    /// When.
    pub started: Timestamp,
    /// Who.
    pub by: Actor,
    /// The version of drkit that started it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub drkit: String,
    /// The schedule and firing it was started for (`drkit run --resume-or-start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<super::keyed::RunKey>,
}

/// The version of drkit in this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The run began (or was resumed).
    RunStarted {
        /// Whether this is a resume.
        resumed: bool,
        /// The firing of the run's schedule that resumed it (`--resume-or-start …
        /// --occurrence`): that firing has run too.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        occurrence: Option<String>,
    },
    /// An attempt of a step is about to run.
    StepStarted {
        /// The step.
        step: String,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A step finished.
    StepSucceeded {
        /// The step.
        step: String,
        /// Its outputs.
        outputs: Map<String, Value>,
    },
    /// An attempt failed.
    StepFailed {
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
        /// `ErrorKind` name.
        kind: String,
        /// What went wrong.
        message: String,
        /// Whether another attempt follows.
        will_retry: bool,
    },
    /// A step did not run.
    StepSkipped {
        /// The step.
        step: String,
        /// Why.
        why: String,
        /// Its own `if:` was false: it was not needed, and the steps that need it run.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        not_needed: bool,
    },
    /// A step waits for something outside the run (an approval): the run stops to wait
    /// and is resumed once it is given.
    StepWaiting {
        /// The step.
        step: String,
        /// What it waits for.
        why: String,
    },
    /// A step started a process group (an `exec`): a resume after the run's process died
    /// stops what it left running.
    StepProcess {
        /// The step.
        step: String,
        /// The group's leader (its pid is the group's id).
        group: crate::lock::ProcessId,
    },
    /// An operator counted an in-flight step as done on resume (`--skip`): not run again.
    StepSkippedByOperator {
        /// The step.
        step: String,
        /// What the operator said.
        why: String,
    },
    /// A compensation is about to run.
    CompensationStarted {
        /// The step it undoes.
        step: String,
    },
    /// A compensation finished.
    CompensationDone {
        /// The step it undid.
        step: String,
    },
    /// A compensation failed.
    CompensationFailed {
        /// The step.
        step: String,
        /// What went wrong.
        message: String,
    },
    /// The run stopped part-way and can be resumed.
    RunInterrupted {
        /// Why.
        why: String,
    },
    /// A remark (a guard skipped in forced mode, a notifier that failed).
    Note {
        /// The step, if any.
        step: Option<String>,
        /// What.
        text: String,
    },
    /// The run is over, or stopped to wait or on a signal.
    RunEnded {
        /// How it came out.
        outcome: RunOutcome,
        /// Why, when it is not plain (the deadline passed, a signal).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
}

impl EventKind {
    /// The same event with every free text in it (messages, reasons, outputs) redacted.
    #[must_use]
    pub fn redacted(self, r: &Redactor) -> Self {
        let outputs = |m: Map<String, Value>| match r.value(&Value::Object(m)) {
            Value::Object(m) => m,
            _ => unreachable!("an object redacts to an object"),
        };
        match self {
            Self::StepSucceeded { step, outputs: o } => Self::StepSucceeded {
                step,
                outputs: outputs(o),
            },
            Self::StepFailed {
                step,
                attempt,
                kind,
                message,
                will_retry,
            } => Self::StepFailed {
                step,
                attempt,
                kind,
                message: r.str(&message),
                will_retry,
            },
            Self::StepSkipped {
                step,
                why,
                not_needed,
            } => Self::StepSkipped {
                step,
                why: r.str(&why),
                not_needed,
            },
            Self::StepWaiting { step, why } => Self::StepWaiting {
                step,
                why: r.str(&why),
            },
            Self::StepSkippedByOperator { step, why } => Self::StepSkippedByOperator {
                step,
                why: r.str(&why),
            },
            Self::CompensationFailed { step, message } => Self::CompensationFailed {
                step,
                message: r.str(&message),
            },
            Self::RunInterrupted { why } => Self::RunInterrupted { why: r.str(&why) },
            Self::Note { step, text } => Self::Note {
                step,
                text: r.str(&text),
            },
            Self::RunEnded { outcome, why } => Self::RunEnded {
                outcome,
                why: why.map(|w| r.str(&w)),
            },
            other @ (Self::RunStarted { .. }
            | Self::StepStarted { .. }
            | Self::StepProcess { .. }
            | Self::CompensationStarted { .. }
            | Self::CompensationDone { .. }) => other,
        }
    }

    /// The step the event is about, if any.
    #[must_use]
    pub fn step(&self) -> Option<&str> {
        match self {
            Self::StepStarted { step, .. }
            | Self::StepSucceeded { step, .. }
            | Self::StepFailed { step, .. }
            | Self::StepSkipped { step, .. }
            | Self::StepWaiting { step, .. }
            | Self::StepProcess { step, .. }
            | Self::StepSkippedByOperator { step, .. }
            | Self::CompensationStarted { step }
            | Self::CompensationDone { step }
            | Self::CompensationFailed { step, .. } => Some(step),
            Self::Note { step, .. } => step.as_deref(),
            Self::RunStarted { .. } | Self::RunInterrupted { .. } | Self::RunEnded { .. } => None,
        }
    }
}

/// One journal object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its number, from 1.
    pub seq: u64,
    /// When it was written.
    pub at: Timestamp,
    /// Who wrote it.
    pub by: Actor,
    /// The lock's fencing token of the writer.
    pub token: FencingToken,
    /// When, on the writer's monotonic clock (what a drill measures with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mono: Option<crate::clock::Mono>,
    /// The BLAKE3 hash of the journal object before this one (the run's header for the
    /// first event), as stored: the events form a chain, so one changed, removed or
    /// reordered afterwards is found (`drkit evidence verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// When it was written, on both clocks.
    #[must_use]
    pub fn moment(&self) -> crate::clock::Moment {
        crate::clock::Moment {
            at: self.at,
            mono: self.mono.clone(),
        }
    }
}

/// The hash a journal object is chained by: BLAKE3 of its JSON as stored, in hex.
#[must_use]
pub fn chain_hash(stored: &[u8]) -> String {
    blake3::hash(stored).to_hex().to_string()
}

/// Where journals live and how they are stored: sealed with a repository's keys when it
/// is encrypted, readable JSON otherwise.
#[derive(Clone)]
pub struct Journals {
    store: DynStore,
    sealed: Option<Repository>,
}

fn header_key(run: &RunId) -> String {
    format!("{RUNS_PREFIX}{run}/run.json")
}

fn event_key(run: &RunId, seq: u64) -> String {
    format!("{RUNS_PREFIX}{run}/events/{seq:08}.json")
}

/// The most a journal object may hold once decompressed.
const MAX_OBJECT: usize = 64 << 20;

impl Journals {
    /// Readable JSON journals in `store`.
    #[must_use]
    pub fn plain(store: DynStore) -> Self {
        Self {
            store,
            sealed: None,
        }
    }

    /// The journals of `repo`: encrypted when it is.
    #[must_use]
    pub fn of(repo: &Repository) -> Self {
        Self {
            store: repo.store().clone(),
            sealed: repo.is_encrypted().then(|| repo.clone()),
        }
    }

    /// The store they live in.
    #[must_use]
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Stores `value`; the hash of what was stored (its chain link).
    async fn put(&self, key: &str, value: &impl Serialize) -> Result<String> {
        let body = serde_json::to_vec(value).expect("journal objects serialize");
        let hash = chain_hash(&body);
        match &self.sealed {
            Some(repo) => repo
                .put_object(key, body, PutMode::CreateOnly)
                .await
                .map(|_| ()),
            None => self
                .store
                .put_bytes(key, Bytes::from(body), PutMode::CreateOnly)
                .await
                .map(|_| ()),
        }
        .map(|()| hash)
    }

    async fn get<T: DeserializeOwned>(&self, key: &str, run: &RunId, what: &str) -> Result<T> {
        self.get_stored(key, run, what).await.map(|(v, _)| v)
    }

    /// The object at `key`, read, and its JSON as stored.
    async fn get_stored<T: DeserializeOwned>(
        &self,
        key: &str,
        run: &RunId,
        what: &str,
    ) -> Result<(T, Vec<u8>)> {
        let bytes = match &self.sealed {
            Some(repo) => repo.get_object(key, MAX_OBJECT).await.map_err(|e| {
                if e.kind() == ErrorKind::Corrupt {
                    err!(
                        Corrupt,
                        "run {run}: {what} failed its authentication check ({}); it was changed or damaged in the store",
                        e.message()
                    )
                } else {
                    e
                }
            })?,
            None => self.store.get_bytes(key).await?.to_vec(),
        };
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            if bytes.first() == Some(&b'{') {
                err!(Corrupt, "run {run}: unreadable {what}: {e}")
            } else {
                err!(
                    Corrupt,
                    "run {run}: {what} is not readable JSON: the journal is encrypted (open the repository with its key) or damaged"
                )
            }
        })?;
        Ok((value, bytes))
    }

    /// The header of `run`.
    pub async fn header(&self, run: &RunId) -> Result<RunHeader> {
        self.get(&header_key(run), run, "header")
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    err!(NotFound, "no run {run} in {}", self.store.url())
                        .with_hint(crate::Hint::ListRuns)
                } else {
                    e
                }
            })
    }

    /// Every event of `run`, in order.
    pub async fn events(&self, run: &RunId) -> Result<Vec<Event>> {
        Ok(self
            .stored(run)
            .await?
            .1
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    /// The header and every event of `run` with their JSON as stored (what the chain of
    /// hashes is over: an evidence bundle carries them).
    #[allow(clippy::type_complexity)] // (header, its bytes), [(event, its bytes)]
    pub async fn stored(
        &self,
        run: &RunId,
    ) -> Result<((RunHeader, Vec<u8>), Vec<(Event, Vec<u8>)>)> {
        let header = self
            .get_stored(&header_key(run), run, "header")
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    err!(NotFound, "no run {run} in {}", self.store.url())
                        .with_hint(crate::Hint::ListRuns)
                } else {
                    e
                }
            })?;
        let prefix = format!("{RUNS_PREFIX}{run}/events/");
        let mut keys: Vec<String> = self
            .store
            .list_all(&prefix)
            .await?
            .into_iter()
            .map(|m| m.key)
            .collect();
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let n = k.rsplit('/').next().unwrap_or(&k);
            let what = format!(
                "event {}",
                n.trim_end_matches(".json").trim_start_matches('0')
            );
            out.push(self.get_stored(&k, run, &what).await?);
        }
        Ok((header, out))
    }

    /// The header and events of `run`, folded into its state.
    pub async fn summary(&self, run: &RunId) -> Result<RunSummary> {
        let header = self.header(run).await?;
        let events = self.events(run).await?;
        Ok(RunSummary::fold(&header, events))
    }

    /// The ids of every run, oldest first.
    pub async fn run_ids(&self) -> Result<Vec<RunId>> {
        let mut ids: Vec<RunId> = self
            .store
            .list_all(RUNS_PREFIX)
            .await?
            .into_iter()
            .filter_map(|m| {
                m.key
                    .strip_prefix(RUNS_PREFIX)?
                    .strip_suffix("/run.json")
                    .map(RunId::from)
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The run whose id is `given` or starts with it; refused when none or several do.
    pub async fn resolve(&self, given: &str) -> Result<RunId> {
        let given = given.trim();
        if given.is_empty() {
            return Err(err!(InvalidInput, "no run id given").with_hint(crate::Hint::ListRuns));
        }
        let ids = self.run_ids().await?;
        if let Some(exact) = ids.iter().find(|i| **i == given) {
            return Ok(exact.clone());
        }
        let matching: Vec<&RunId> = ids
            .iter()
            .filter(|i| i.as_str().starts_with(given))
            .collect();
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(err!(NotFound, "no run {given} in {}", self.store.url())
                .with_hint(crate::Hint::ListRuns)),
            many => Err(err!(
                InvalidInput,
                "run id {given:?} is ambiguous: {} runs start with it ({}{}); give more of it",
                many.len(),
                many.iter()
                    .take(5)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                if many.len() > 5 {
                    format!(", and {} more", many.len() - 5)
                } else {
                    String::new()
                }
            )),
        }
    }
}

/// How long after a successful renewal this writer's lease is certainly still its own,
/// by the local monotonic clock: the journal skips its lock check until then.
#[derive(Debug, Clone, Default)]
pub struct LeaseClock(Arc<StdMutex<Option<Instant>>>);

impl LeaseClock {
    /// The lease is this writer's until `until` (a renewal that began at `t` with a
    /// lease of `ttl` makes it `t + ttl`, less a margin).
    pub fn live_until(&self, until: Instant) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(until);
    }

    /// Forget it: check the lock before the next event.
    pub fn lost(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn certain(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| Instant::now() < t)
    }
}

/// Appends to one run's journal, refusing once its lock is lost, and keeps the run's
/// state as the fold of what it appended.
pub struct Journal {
    observer: Option<Observer>,
    journals: Journals,
    run: RunId,
    next: u64,
    token: FencingToken,
    lock: Arc<dyn Lock>,
    clock: LeaseClock,
    by: Actor,
    redactor: Arc<Redactor>,
    state: RunSummary,
    /// The hash of the last object written (the chain's head).
    head: String,
}

impl Journal {
    /// Starts the journal of a new run with its header.
    pub async fn create(
        journals: Journals,
        header: &RunHeader,
        lock: Arc<dyn Lock>,
        token: FencingToken,
        redactor: Arc<Redactor>,
    ) -> Result<Self> {
        let head = journals
            .put(&header_key(&header.id), header)
            .await
            .map_err(|e| e.context(format!("starting the journal of run {}", header.id)))?;
        Ok(Self {
            head,
            observer: None,
            journals,
            run: header.id.clone(),
            next: 1,
            token,
            lock,
            clock: LeaseClock::default(),
            by: Actor::current(),
            redactor,
            state: RunSummary::new(header),
        })
    }

    /// Continues the journal of `run` after its last event (read after the lock is
    /// taken, so no other writer appends meanwhile).
    pub async fn resume(
        journals: Journals,
        header: &RunHeader,
        lock: Arc<dyn Lock>,
        token: FencingToken,
        redactor: Arc<Redactor>,
    ) -> Result<Self> {
        let ((_, header_bytes), stored) = journals.stored(&header.id).await?;
        let head = chain_hash(stored.last().map_or(&header_bytes, |(_, b)| b));
        let events: Vec<Event> = stored.into_iter().map(|(e, _)| e).collect();
        let next = events.last().map_or(1, |e| e.seq + 1);
        let state = RunSummary::fold(header, events);
        Ok(Self {
            head,
            observer: None,
            journals,
            run: header.id.clone(),
            next,
            token,
            lock,
            clock: LeaseClock::default(),
            by: Actor::current(),
            redactor,
            state,
        })
    }

    /// The run's state: the fold of every event so far.
    #[must_use]
    pub fn state(&self) -> &RunSummary {
        &self.state
    }

    /// The clock the lock's renewer sets, so appends skip the lock check while the lease
    /// is certainly live.
    #[must_use]
    pub fn clock(&self) -> LeaseClock {
        self.clock.clone()
    }

    /// The redactor every event passes.
    #[must_use]
    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    /// Appends an event (redacted); fails with `LockLost` (and the run must stop) when
    /// this writer's token is no longer the lock's or another writer took the number.
    pub async fn append(&mut self, kind: EventKind) -> Result<Event> {
        if !self.clock.certain() && !self.lock.is_current(self.token).await? {
            return Err(err!(
                LockLost,
                "run {}: lock {} was taken over (this writer's fencing token {} is stale); stopping without touching anything else",
                self.run,
                self.lock.name(),
                self.token
            ));
        }
        let event = Event {
            seq: self.next,
            at: Timestamp::now(),
            by: self.by.clone(),
            token: self.token,
            mono: Some(crate::clock::Mono::now()),
            prev: Some(self.head.clone()),
            kind: kind.redacted(&self.redactor),
        };
        match self
            .journals
            .put(&event_key(&self.run, event.seq), &event)
            .await
        {
            Ok(hash) => self.head = hash,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(err!(
                    LockLost,
                    "run {}: another writer appended event {} first; stopping",
                    self.run,
                    event.seq
                ))
            }
            Err(e) => return Err(e.context(format!("journaling run {}", self.run))),
        }
        self.next += 1;
        self.state.apply(&event);
        self.state.events.push(event.clone());
        if let Some(o) = &self.observer {
            o(&event);
        }
        Ok(event)
    }

    /// Calls `observer` with every event appended from now on.
    pub fn observe(&mut self, observer: Option<Observer>) {
        self.observer = observer;
    }
}
