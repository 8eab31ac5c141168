//! The journal of a run, in the repository's store under `runs/<run-id>/`: the frozen
//! runbook and its variables (secrets only by name) first, then one create-only object
//! per event, numbered. Each event is written before the effect it announces is attempted
//! or after it is observed, and carries who wrote it and the lock's fencing token; a
//! writer whose token is no longer the lock's, or who loses the race for a number, stops.

use std::sync::Arc;

use bytes::Bytes;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::{Mode, Runbook};
use crate::lock::{FencingToken, Lock};
use crate::store::{BackupStoreExt, DynStore, PutMode};
use crate::{err, ErrorKind, Result};

/// Called with every event once it is durable (a terminal's live step list).
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// `value` with the password of every URL in it (`scheme://user:password@host`) removed:
/// a journal never holds one, whatever a runbook's author wrote inline (a resumed run
/// then finds it where libpq would: `PGPASSWORD`, or a secret variable).
#[must_use]
pub fn redact(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact_str(s)),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), redact(v))).collect()),
        other => other.clone(),
    }
}

fn redact_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(['/', ' ', '"', '\'']).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) if authority[..at].contains(':') => {
                let user = &authority[..authority[..at].find(':').unwrap_or(at)];
                out.push_str(user);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

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
    pub id: String,
    /// The runbook as it was when the run started.
    pub runbook: Runbook,
    /// Where it was read from.
    pub origin: String,
    /// The variables' values; secret ones are `null` (read again from their source on
    /// resume).
    pub vars: Map<String, Value>,
    /// Planned or forced.
    pub mode: Mode,
    /// When.
    pub started: Timestamp,
    /// Who.
    pub by: Actor,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The run began (or was resumed).
    RunStarted {
        /// Whether this is a resume.
        resumed: bool,
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
    },
    /// An approval step is waiting for a person.
    ApprovalWaiting {
        /// The step.
        step: String,
    },
    /// An approval was given.
    ApprovalGiven {
        /// The step.
        step: String,
        /// How (`--yes`, `--approve`, a prompt).
        how: String,
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
    /// The run is over.
    RunEnded {
        /// `succeeded`, `failed`, `compensated`, `waiting`, `interrupted`.
        outcome: String,
    },
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
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Appends to one run's journal, refusing once its lock is lost.
pub struct Journal {
    observer: Option<Observer>,
    store: DynStore,
    run: String,
    next: u64,
    token: FencingToken,
    lock: Arc<dyn Lock>,
    by: Actor,
}

fn header_key(run: &str) -> String {
    format!("{RUNS_PREFIX}{run}/run.json")
}

fn event_key(run: &str, seq: u64) -> String {
    format!("{RUNS_PREFIX}{run}/events/{seq:08}.json")
}

impl Journal {
    /// Starts the journal of a new run with its header.
    pub async fn create(
        store: DynStore,
        header: &RunHeader,
        lock: Arc<dyn Lock>,
        token: FencingToken,
    ) -> Result<Self> {
        let body = serde_json::to_vec_pretty(header).expect("run header serializes");
        store
            .put_bytes(
                &header_key(&header.id),
                Bytes::from(body),
                PutMode::CreateOnly,
            )
            .await
            .map_err(|e| e.context(format!("starting the journal of run {}", header.id)))?;
        Ok(Self {
            observer: None,
            store,
            run: header.id.clone(),
            next: 1,
            token,
            lock,
            by: Actor::current(),
        })
    }

    /// Continues the journal of `run` after its last event.
    pub async fn resume(
        store: DynStore,
        run: &str,
        lock: Arc<dyn Lock>,
        token: FencingToken,
    ) -> Result<Self> {
        let events = read_events(&store, run).await?;
        Ok(Self {
            observer: None,
            store,
            run: run.to_owned(),
            next: events.last().map_or(1, |e| e.seq + 1),
            token,
            lock,
            by: Actor::current(),
        })
    }

    /// Appends an event; fails (and the run must stop) when this writer's token is no
    /// longer the lock's or another writer took the number.
    pub async fn append(&mut self, kind: EventKind) -> Result<Event> {
        if !self.lock.is_current(self.token).await? {
            return Err(err!(
                Conflict,
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
            kind,
        };
        let body = serde_json::to_vec(&redact(
            &serde_json::to_value(&event).expect("event serializes"),
        ))
        .expect("event serializes");
        match self
            .store
            .put_bytes(
                &event_key(&self.run, event.seq),
                Bytes::from(body),
                PutMode::CreateOnly,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(err!(
                    Conflict,
                    "run {}: another writer appended event {} first; stopping",
                    self.run,
                    event.seq
                ))
            }
            Err(e) => return Err(e.context(format!("journaling run {}", self.run))),
        }
        self.next += 1;
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

/// The header of `run`.
pub async fn read_header(store: &DynStore, run: &str) -> Result<RunHeader> {
    let bytes = store.get_bytes(&header_key(run)).await.map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            err!(
                NotFound,
                "no run {run} in {}; list them with `drkit runs`",
                store.url()
            )
        } else {
            e
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| err!(Corrupt, "run {run}: unreadable header: {e}"))
}

/// Every event of `run`, in order.
pub async fn read_events(store: &DynStore, run: &str) -> Result<Vec<Event>> {
    let prefix = format!("{RUNS_PREFIX}{run}/events/");
    let mut keys: Vec<String> = store
        .list_all(&prefix)
        .await?
        .into_iter()
        .map(|m| m.key)
        .collect();
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let b = store.get_bytes(&k).await?;
        out.push(
            serde_json::from_slice(&b)
                .map_err(|e| err!(Corrupt, "run {run}: unreadable event {k}: {e}"))?,
        );
    }
    Ok(out)
}

/// The ids of every run in the store, oldest first.
pub async fn run_ids(store: &DynStore) -> Result<Vec<String>> {
    let mut ids: Vec<String> = store
        .list_all(RUNS_PREFIX)
        .await?
        .into_iter()
        .filter_map(|m| {
            m.key
                .strip_prefix(RUNS_PREFIX)?
                .strip_suffix("/run.json")
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::redact;

    #[test]
    fn passwords_in_urls_never_reach_the_journal() {
        let v = json!({"url": "postgres://app:s3cret@db:5432/shop", "list": ["http://u:p@h/x and https://h/y"], "n": 1, "plain": "no url"});
        let r = redact(&v);
        assert_eq!(
            r,
            json!({"url": "postgres://app@db:5432/shop", "list": ["http://u@h/x and https://h/y"], "n": 1, "plain": "no url"})
        );
        assert!(!r.to_string().contains("s3cret"));
    }
}
