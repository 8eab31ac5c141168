//! The in-process [`Orchestrator`]: runs a runbook's steps in dependency order (independent
//! ones at the same time, up to `concurrency`), journals every event, holds and renews the
//! runbook's lock, retries what may be retried, applies each step's failure policy, and
//! resumes a run another process started.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::action::{Outcome, Registry, StepContext, Target};
use super::journal::{self, Actor, EventKind, Journal, RunHeader};
use super::model::{Mode, OnFailure, Runbook, Severity, Step};
use super::notify::NotifyOn;
use super::parse::SourceMap;
use super::report::{self, RunSummary};
use super::{expr, validate};
use crate::lock::{Lock, LockRequest};
use crate::store::DynStore;
use crate::{err, Error, Result};

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// Variable values (`--var k=v`), over `env:` and `default:`.
    pub vars: BTreeMap<String, Value>,
    /// Planned or forced.
    pub mode: Mode,
    /// Approve every `approve` step.
    pub yes: bool,
    /// Approve these `approve` steps.
    pub approve: BTreeSet<String>,
    /// On resume: run these in-flight steps again.
    pub rerun: BTreeSet<String>,
    /// On resume: count these in-flight steps as skipped.
    pub skip: BTreeSet<String>,
    /// How long the lock lasts unless renewed (renewed every third of it).
    pub lock_ttl: Duration,
    /// Cancelled on Ctrl-C: the step in flight is interrupted, the run left resumable.
    pub cancel: CancellationToken,
    /// Sees every event once it is journaled.
    pub observer: Option<super::journal::Observer>,
    /// Asked about an approval step neither `yes` nor `approve` settles (a terminal's
    /// prompt): step id and message in, yes or no out. Without it the run waits.
    pub approver: Option<Approver>,
}

/// Asks a person to approve a step: `(step, message) -> approved`.
pub type Approver = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            vars: BTreeMap::new(),
            mode: Mode::Planned,
            yes: false,
            approve: BTreeSet::new(),
            rerun: BTreeSet::new(),
            skip: BTreeSet::new(),
            lock_ttl: Duration::from_mins(1),
            cancel: CancellationToken::new(),
            observer: None,
            approver: None,
        }
    }
}

/// Where a step stands.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Pending,
    Running,
    Succeeded(Map<String, Value>),
    Failed(String),
    Skipped(String),
}

impl State {
    fn finished(&self) -> bool {
        matches!(
            self,
            Self::Succeeded(_) | Self::Failed(_) | Self::Skipped(_)
        )
    }
}

/// Makes the lock for a lock name.
pub type LockFactory = Arc<dyn Fn(&str) -> Result<Arc<dyn Lock>> + Send + Sync>;

/// Runs runbooks with a registry's actions, journaling into a store.
#[derive(Clone)]
pub struct Engine {
    registry: Arc<Registry>,
    store: DynStore,
    locks: LockFactory,
    repo: Option<crate::repo::Repository>,
}

struct Run {
    id: String,
    rb: Arc<Runbook>,
    mode: Mode,
    vars: Map<String, Value>,
    targets: Arc<BTreeMap<String, Target>>,
    journal: Arc<Mutex<Journal>>,
    states: BTreeMap<String, State>,
    finished_order: Vec<String>,
    notifiers: super::notify::Notifiers,
}

impl Engine {
    /// An engine whose locks come from `locks` (a store lock, a Kubernetes Lease).
    #[must_use]
    pub fn new(registry: Registry, store: DynStore, locks: LockFactory) -> Self {
        Self {
            registry: Arc::new(registry),
            store,
            locks,
            repo: None,
        }
    }

    /// An engine journaling into `repo`, under its store locks, whose steps can use it.
    #[must_use]
    pub fn for_repository(registry: Registry, repo: &crate::repo::Repository) -> Self {
        let r = repo.clone();
        let locks: LockFactory =
            Arc::new(move |name: &str| Ok(Arc::new(r.store_lock(name)?) as Arc<dyn Lock>));
        Self {
            repo: Some(repo.clone()),
            ..Self::new(registry, repo.store().clone(), locks)
        }
    }

    /// The same engine with another lock (a Kubernetes Lease).
    #[must_use]
    pub fn with_locks(mut self, locks: LockFactory) -> Self {
        self.locks = locks;
        self
    }

    /// The store the journal lives in.
    #[must_use]
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// The repository steps can use, if any.
    #[must_use]
    pub fn repository(&self) -> Option<&crate::repo::Repository> {
        self.repo.as_ref()
    }

    /// The registry in use.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Reads a runbook from YAML and checks it against this engine's actions and target
    /// kinds: every problem of either kind at once, each with its line and column.
    pub fn load(&self, text: &str, origin: &str) -> Result<(Runbook, SourceMap)> {
        let (rb, map, mut problems) = super::parse::parse_yaml_lenient(text, origin)?;
        problems.extend(validate::validate(&rb, &map, &self.registry));
        super::parse::sort(&mut problems);
        if problems.is_empty() {
            Ok((rb, map))
        } else {
            Err(super::parse::report(origin, &problems))
        }
    }

    /// Reads the runbook file at `path`, with every `uses:` expanded, and checks it: every
    /// problem of the file and of what it includes at once.
    pub fn load_file(&self, path: &std::path::Path) -> Result<(Runbook, SourceMap)> {
        let (rb, map, mut problems) = super::include::read_file(path)?;
        problems.extend(validate::validate(&rb, &map, &self.registry));
        super::parse::sort(&mut problems);
        if problems.is_empty() {
            Ok((rb, map))
        } else {
            Err(super::parse::report(&map.origin, &problems))
        }
    }

    /// Checks `rb` without touching anything live; every problem at once.
    pub fn check(&self, rb: &Runbook, map: &SourceMap) -> Result<()> {
        let problems = validate::validate(rb, map, &self.registry);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(super::parse::report(&map.origin, &problems))
        }
    }

    pub(crate) fn resolve_vars(
        rb: &Runbook,
        given: &BTreeMap<String, Value>,
        previous: Option<&Map<String, Value>>,
    ) -> Result<(Map<String, Value>, Map<String, Value>)> {
        for k in given.keys() {
            if !rb.vars.contains_key(k) {
                return Err(err!(
                    InvalidInput,
                    "--var {k}: the runbook declares no variable {k:?} (declared: {})",
                    rb.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let mut values = Map::new();
        let mut journaled = Map::new();
        for (name, spec) in &rb.vars {
            let v = given
                .get(name)
                .cloned()
                .or_else(|| {
                    previous
                        .and_then(|p| p.get(name))
                        .filter(|v| !v.is_null())
                        .cloned()
                })
                .or_else(|| {
                    spec.env
                        .as_ref()
                        .and_then(|e| std::env::var(e).ok())
                        .map(Value::String)
                })
                .or_else(|| spec.default.clone())
                .ok_or_else(|| {
                    err!(
                        InvalidInput,
                        "variable {name:?} has no value: pass --var {name}=…{}",
                        spec.env
                            .as_ref()
                            .map(|e| format!(" or set {e}"))
                            .unwrap_or_default()
                    )
                })?;
            journaled.insert(
                name.clone(),
                if spec.secret { Value::Null } else { v.clone() },
            );
            values.insert(name.clone(), v);
        }
        Ok((values, journaled))
    }

    pub(crate) async fn build_targets(
        &self,
        rb: &Runbook,
        vars: &Map<String, Value>,
    ) -> Result<BTreeMap<String, Target>> {
        let scope = serde_json::json!({ "vars": vars });
        let mut out = BTreeMap::new();
        for (name, spec) in &rb.targets {
            let kind = self.registry.kind(&spec.kind).ok_or_else(|| {
                err!(
                    InvalidInput,
                    "target {name:?}: unknown kind {:?}",
                    spec.kind
                )
            })?;
            let fields = expr::resolve(&Value::Object(spec.fields.clone()), &scope, None)?;
            let Value::Object(fields) = fields else {
                unreachable!("an object resolves to an object")
            };
            let t = kind
                .build(name, &fields)
                .await
                .map_err(|e| e.context(format!("target {name:?}")))?;
            out.insert(name.clone(), t);
        }
        Ok(out)
    }

    /// Starts a new run of `rb`.
    pub async fn run(
        &self,
        rb: &Runbook,
        map: &SourceMap,
        options: &RunOptions,
    ) -> Result<RunSummary> {
        self.check(rb, map)?;
        let (vars, journaled) = Self::resolve_vars(rb, &options.vars, None)?;
        let targets = self.build_targets(rb, &vars).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let notifiers = Self::notifiers(rb, &vars, &id)?;
        let lock = (self.locks)(rb.lock_name())?;
        let lease = lock
            .acquire(&LockRequest::new(format!("run {id}"), options.lock_ttl))
            .await?;
        let header = RunHeader {
            id: id.clone(),
            runbook: rb.clone(),
            origin: map.origin.clone(),
            vars: journaled,
            mode: options.mode,
            started: Timestamp::now(),
            by: Actor::current(),
        };
        let journal =
            match Journal::create(self.store.clone(), &header, lock.clone(), lease.token).await {
                Ok(j) => j,
                Err(e) => {
                    let _ = lock.release(&lease).await;
                    return Err(e);
                }
            };
        let states = rb
            .steps
            .iter()
            .map(|s| (s.id.clone(), State::Pending))
            .collect();
        let run = Run {
            id,
            rb: Arc::new(rb.clone()),
            mode: options.mode,
            vars,
            targets: Arc::new(targets),
            journal: Arc::new(Mutex::new(journal)),
            states,
            finished_order: Vec::new(),
            notifiers,
        };
        self.drive_observed(run, lock, lease, options, false).await
    }

    /// Resumes run `id` (from this or another machine), from its frozen runbook.
    #[allow(clippy::too_many_lines)] // rebuilds every step's state from the journal in one pass
    pub async fn resume(&self, id: &str, options: &RunOptions) -> Result<RunSummary> {
        let header = journal::read_header(&self.store, id).await?;
        let events = journal::read_events(&self.store, id).await?;
        if let Some(outcome) = events.iter().rev().find_map(|e| match &e.kind {
            EventKind::RunEnded { outcome } if outcome != "waiting" && outcome != "interrupted" => {
                Some(outcome.clone())
            }
            _ => None,
        }) {
            return Err(err!(
                Conflict,
                "run {id} already ended ({outcome}); start a new run instead"
            ));
        }
        let rb = header.runbook.clone();
        let (vars, _) = Self::resolve_vars(&rb, &options.vars, Some(&header.vars))?;
        let mut states: BTreeMap<String, State> = rb
            .steps
            .iter()
            .map(|s| (s.id.clone(), State::Pending))
            .collect();
        let mut in_flight: BTreeSet<String> = BTreeSet::new();
        let mut finished_order = Vec::new();
        for e in &events {
            match &e.kind {
                EventKind::StepStarted { step, .. } => {
                    in_flight.insert(step.clone());
                }
                EventKind::StepSucceeded { step, outputs } => {
                    in_flight.remove(step);
                    finished_order.push(step.clone());
                    states.insert(step.clone(), State::Succeeded(outputs.clone()));
                }
                EventKind::StepFailed {
                    step,
                    message,
                    will_retry: false,
                    ..
                } => {
                    in_flight.remove(step);
                    states.insert(step.clone(), State::Failed(message.clone()));
                }
                EventKind::StepSkipped { step, why } => {
                    in_flight.remove(step);
                    states.insert(step.clone(), State::Skipped(why.clone()));
                }
                _ => {}
            }
        }
        let targets = self.build_targets(&rb, &vars).await?;
        let lock = (self.locks)(rb.lock_name())?;
        let mut request = LockRequest::new(format!("run {id}"), options.lock_ttl);
        // The holder is this same run, dead elsewhere: take its lock over at once.
        request.take_over_from = Some(format!("run {id}"));
        let lease = lock.acquire(&request).await?;
        let mut journal =
            Journal::resume(self.store.clone(), id, lock.clone(), lease.token).await?;
        let ctx_for = |step: &Step| StepContext {
            run_id: id.to_owned(),
            step: step.id.clone(),
            mode: header.mode,
            attempt: 1,
            targets: Arc::new(targets.clone()),
            repo: self.repo.clone(),
            notifiers: super::notify::Notifiers::default(),
        };
        for step_id in &in_flight {
            let step = rb.step(step_id).expect("journaled steps exist");
            let action = self.registry.get(&step.action).ok_or_else(|| {
                err!(
                    InvalidInput,
                    "step {step_id:?}: action {:?} is not in this build",
                    step.action
                )
            })?;
            // Done without running it again: the operator looked (--skip), or the
            // action found its effect in live state.
            let done = if options.skip.contains(step_id) {
                Some((
                    Map::new(),
                    "counted as done on resume (--skip); not run again",
                ))
            } else if action.spec().idempotent || options.rerun.contains(step_id) {
                None
            } else {
                let scope = scope_of(&vars, &states, &rb, header.mode, id, None);
                let with = expr::resolve(&step.with, &scope, None)?;
                let Some(outputs) = action.probe(&ctx_for(step), &with).await? else {
                    let _ = lock.release(&lease).await;
                    return Err(err!(
                        Conflict,
                        "run {id}: step {step_id:?} ({}, not idempotent) was running when the run stopped, and drkit cannot tell whether it took effect; look at the system, then resume with --rerun {step_id} (run it again) or --skip {step_id} (count it as done)",
                        step.action
                    ));
                };
                Some((outputs, "found done in live state on resume"))
            };
            match done {
                None => {
                    states.insert(step_id.clone(), State::Pending);
                }
                Some((outputs, why)) => {
                    journal
                        .append(EventKind::Note {
                            step: Some(step_id.clone()),
                            text: why.into(),
                        })
                        .await?;
                    journal
                        .append(EventKind::StepSucceeded {
                            step: step_id.clone(),
                            outputs: outputs.clone(),
                        })
                        .await?;
                    finished_order.push(step_id.clone());
                    states.insert(step_id.clone(), State::Succeeded(outputs));
                }
            }
        }
        let notifiers = Self::notifiers(&rb, &vars, id)?;
        let run = Run {
            id: id.to_owned(),
            rb: Arc::new(rb),
            mode: header.mode,
            vars,
            targets: Arc::new(targets),
            journal: Arc::new(Mutex::new(journal)),
            states,
            finished_order,
            notifiers,
        };
        self.drive_observed(run, lock, lease, options, true).await
    }

    async fn drive_observed(
        &self,
        mut run: Run,
        lock: Arc<dyn Lock>,
        lease: crate::lock::Lease,
        options: &RunOptions,
        resumed: bool,
    ) -> Result<RunSummary> {
        run.journal.lock().await.observe(options.observer.clone());
        let lost = CancellationToken::new();
        let renewer = {
            let (lock, lease, lost, ttl) =
                (lock.clone(), lease.clone(), lost.clone(), options.lock_ttl);
            tokio::spawn(async move {
                let mut lease = lease;
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match lock.renew(&lease, ttl).await {
                        Ok(l) => lease = l,
                        Err(e) => {
                            tracing::error!("{}; stopping the run", e.message());
                            lost.cancel();
                            return;
                        }
                    }
                }
            })
        };
        let result = self.execute(&mut run, options, &lost, resumed).await;
        renewer.abort();
        let _ = lock.release(&lease).await;
        let outcome = result?;
        let _ = outcome;
        report::summarize(&self.store, &run.id).await
    }

    /// Decides what to do with a step whose needs are finished: skip it (journaled), settle
    /// an approval, or hand back the task that runs it.
    #[allow(clippy::too_many_lines)] // every reason a step may not run, in the order they apply
    async fn ready(
        &self,
        run: &mut Run,
        step: &Step,
        options: &RunOptions,
        stopping: Option<&str>,
        waiting: &mut bool,
    ) -> Result<Option<StepTask>> {
        let skip = match stopping {
            Some(why) if !step.always => Some(format!("the run is stopping: {why}")),
            _ => step
                .needs
                .iter()
                .find(|n| !step.always && !matches!(run.states[*n], State::Succeeded(_)))
                .map(|n| format!("it needs {n:?}, which did not succeed")),
        };
        let skip = match (skip, &step.guard) {
            (Some(why), _) => Some(why),
            (None, Some(g)) if g.mode == run.mode => {
                (!matches!(run.states.get(&g.step), Some(State::Succeeded(_))))
                    .then(|| format!("guard: {:?} did not succeed", g.step))
            }
            (None, Some(g)) => {
                Self::journal(
                    run,
                    EventKind::Note {
                        step: Some(step.id.clone()),
                        text: format!("guard on {:?} not applied in {:?} mode", g.step, run.mode),
                    },
                )
                .await?;
                None
            }
            (None, None) => None,
        };
        let scope = scope_of(&run.vars, &run.states, &run.rb, run.mode, &run.id, None);
        let skip = match (skip, &step.when) {
            (Some(why), _) => Some(why),
            (None, Some(cond)) => {
                (!expr::condition(cond, &scope)?).then(|| format!("if: {cond} is false"))
            }
            (None, None) => None,
        };
        if let Some(why) = skip {
            Self::journal(
                run,
                EventKind::StepSkipped {
                    step: step.id.clone(),
                    why: why.clone(),
                },
            )
            .await?;
            run.states.insert(step.id.clone(), State::Skipped(why));
            return Ok(None);
        }
        if step.action == "approve" {
            let how = if options.yes {
                Some("--yes")
            } else if options.approve.contains(&step.id) {
                Some("--approve")
            } else if let Some(ask) = &options.approver {
                let message = step
                    .with
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let (ask, id) = (ask.clone(), step.id.clone());
                let yes = tokio::task::spawn_blocking(move || ask(&id, &message))
                    .await
                    .unwrap_or(false);
                yes.then_some("prompt")
            } else {
                None
            };
            if let Some(how) = how {
                Self::journal(
                    run,
                    EventKind::ApprovalGiven {
                        step: step.id.clone(),
                        how: how.to_owned(),
                    },
                )
                .await?;
                Self::journal(
                    run,
                    EventKind::StepSucceeded {
                        step: step.id.clone(),
                        outputs: Map::new(),
                    },
                )
                .await?;
                run.finished_order.push(step.id.clone());
                run.states
                    .insert(step.id.clone(), State::Succeeded(Map::new()));
            } else {
                Self::journal(
                    run,
                    EventKind::ApprovalWaiting {
                        step: step.id.clone(),
                    },
                )
                .await?;
                Self::tell(
                    run,
                    NotifyOn::Approval,
                    format!(
                        "run {} waits for approval of step {}: drkit run --resume {} --approve {}",
                        run.id, step.id, run.id, step.id
                    ),
                    Severity::High,
                    false,
                )
                .await?;
                run.states.insert(
                    step.id.clone(),
                    State::Skipped("waiting for approval".into()),
                );
                *waiting = true;
            }
            return Ok(None);
        }
        Ok(Some(StepTask {
            step: step.clone(),
            registry: self.registry.clone(),
            journal: run.journal.clone(),
            scope,
            ctx: StepContext {
                run_id: run.id.clone(),
                step: step.id.clone(),
                mode: run.mode,
                attempt: 1,
                targets: run.targets.clone(),
                repo: self.repo.clone(),
                notifiers: run.notifiers.clone(),
            },
        }))
    }

    fn notifiers(
        rb: &Runbook,
        vars: &Map<String, Value>,
        id: &str,
    ) -> Result<super::notify::Notifiers> {
        let scope = serde_json::json!({ "vars": vars, "run": { "id": id } });
        let entries = expr::resolve(&Value::Array(rb.notify.clone()), &scope, None)?;
        let Value::Array(entries) = entries else {
            unreachable!("an array resolves to an array")
        };
        super::notify::Notifiers::new(&entries, id, &rb.name)
    }

    /// Tells the notifiers that take `on`; a notifier that fails is journaled, the run goes on.
    async fn tell(
        run: &Run,
        on: super::notify::NotifyOn,
        text: String,
        severity: super::model::Severity,
        resolves: bool,
    ) -> Result<()> {
        let m = super::notify::Message {
            text,
            severity,
            event: format!("{on:?}").to_lowercase(),
            resolves,
        };
        for (name, why) in run.notifiers.send(&m, Some(on)).await {
            Self::journal(
                run,
                EventKind::Note {
                    step: None,
                    text: format!("warning: notifier {name:?} failed: {why}"),
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn journal(run: &Run, kind: EventKind) -> Result<()> {
        run.journal.lock().await.append(kind).await.map(|_| ())
    }

    #[allow(clippy::too_many_lines)] // one scheduling loop: start, wait, record, decide
    async fn execute(
        &self,
        run: &mut Run,
        options: &RunOptions,
        lost: &CancellationToken,
        resumed: bool,
    ) -> Result<String> {
        Self::journal(run, EventKind::RunStarted { resumed }).await?;
        Self::tell(
            run,
            NotifyOn::Start,
            format!(
                "run {} of {} {}",
                run.id,
                run.rb.name,
                if resumed { "resumed" } else { "started" }
            ),
            Severity::Info,
            false,
        )
        .await?;
        let deadline = run.rb.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tasks: JoinSet<(String, Result<Map<String, Value>>)> = JoinSet::new();
        let mut stopping: Option<String> = None;
        let mut compensate = false;
        let mut waiting = false;
        loop {
            // Start what is ready, in file order, up to the concurrency limit; a skip can
            // make another step ready, so go round until nothing changes.
            let mut progressed = true;
            // The runbook is shared, not copied: this loop runs once per event.
            let rb = run.rb.clone();
            let limit = rb.concurrency.max(1);
            while progressed && tasks.len() < limit {
                progressed = false;
                for step in &rb.steps {
                    if tasks.len() >= limit {
                        break;
                    }
                    // An always-step runs once every other step is finished; none runs
                    // while the run waits for an approval (they run when it resumes).
                    let others_done = !step.always
                        || (!waiting
                            && run
                                .rb
                                .steps
                                .iter()
                                .filter(|o| !o.always)
                                .all(|o| run.states[&o.id].finished()));
                    if run.states[&step.id] != State::Pending
                        || !others_done
                        || !step
                            .needs
                            .iter()
                            .all(|n| run.states.get(n).is_some_and(State::finished))
                        || (waiting && !step.always)
                    {
                        continue;
                    }
                    progressed = true;
                    if let Some(task) = self
                        .ready(run, step, options, stopping.as_deref(), &mut waiting)
                        .await?
                    {
                        run.states.insert(step.id.clone(), State::Running);
                        tasks.spawn(async move {
                            let id = task.step.id.clone();
                            (id, task.run().await)
                        });
                    }
                }
            }
            if tasks.is_empty() {
                break;
            }
            let next = tokio::select! {
                n = tasks.join_next() => n,
                () = options.cancel.cancelled() => {
                    tasks.abort_all();
                    Self::journal(run, EventKind::RunInterrupted { why: "interrupted (Ctrl-C); resume with drkit run --resume".into() }).await?;
                    Self::journal(run, EventKind::RunEnded { outcome: "interrupted".into() }).await?;
                    return Ok("interrupted".into());
                }
                () = lost.cancelled() => {
                    tasks.abort_all();
                    return Err(err!(Conflict, "run {}: the lock was lost; stopped", run.id));
                }
                () = sleep_until(deadline) => {
                    tasks.abort_all();
                    Self::journal(run, EventKind::RunInterrupted { why: "the run's deadline passed".into() }).await?;
                    Self::journal(run, EventKind::RunEnded { outcome: "failed".into() }).await?;
                    return Ok("failed".into());
                }
            };
            let Some(joined) = next else { break };
            let (id, result) = joined.map_err(|e| err!(Io, "a step task failed: {e}"))?;
            match result {
                Ok(outputs) => {
                    let (action, severity) = run
                        .rb
                        .step(&id)
                        .map_or((String::new(), Severity::Info), |s| {
                            (s.action.clone(), s.severity)
                        });
                    Self::tell(
                        run,
                        NotifyOn::Step,
                        format!("step {id} ({action}) done"),
                        severity,
                        false,
                    )
                    .await?;
                    run.finished_order.push(id.clone());
                    run.states.insert(id, State::Succeeded(outputs));
                }
                Err(e)
                    if e.kind() == crate::ErrorKind::Conflict
                        && e.message().contains("fencing token") =>
                {
                    return Err(e)
                }
                Err(e) => {
                    let step = run.rb.step(&id).expect("a known step").clone();
                    Self::tell(
                        run,
                        NotifyOn::Failure,
                        format!("step {id} ({}) failed: {}", step.action, e.message()),
                        step.severity.max(Severity::High),
                        false,
                    )
                    .await?;
                    run.states
                        .insert(id.clone(), State::Failed(e.message().to_owned()));
                    match step.on_failure {
                        OnFailure::Continue => {}
                        OnFailure::Abort => {
                            stopping = stopping.or(Some(format!("step {id:?} failed")));
                        }
                        OnFailure::Compensate => {
                            stopping = stopping.or(Some(format!("step {id:?} failed")));
                            compensate = true;
                        }
                    }
                }
            }
        }
        let mut outcome = if waiting {
            "waiting"
        } else if run.states.values().any(|s| matches!(s, State::Failed(_))) {
            "failed"
        } else {
            "succeeded"
        };
        if compensate {
            outcome = if self.compensate(run).await? {
                "compensated"
            } else {
                "failed"
            };
        }
        if outcome != "waiting" {
            let severity = if outcome == "succeeded" {
                Severity::Info
            } else {
                Severity::Critical
            };
            Self::tell(
                run,
                NotifyOn::End,
                format!("run {} of {} {outcome}", run.id, run.rb.name),
                severity,
                outcome == "succeeded",
            )
            .await?;
        }
        Self::journal(
            run,
            EventKind::RunEnded {
                outcome: outcome.into(),
            },
        )
        .await?;
        Ok(outcome.to_owned())
    }

    /// Runs the compensations of the finished steps, newest first; true when all worked.
    async fn compensate(&self, run: &Run) -> Result<bool> {
        let mut ok = true;
        for id in run.finished_order.iter().rev() {
            let step = run.rb.step(id).expect("a known step");
            let scope = scope_of(
                &run.vars,
                &run.states,
                &run.rb,
                run.mode,
                &run.id,
                Some("failed"),
            );
            // The step's own compensation, else its action's undo of what it did.
            let call = if let Some(c) = &step.compensate {
                c.clone()
            } else {
                let Some(State::Succeeded(outputs)) = run.states.get(id) else {
                    continue;
                };
                let undo = self.registry.get(&step.action).and_then(|a| {
                    let with = expr::resolve(&step.with, &scope, None).ok()?;
                    a.undo(&with, outputs)
                });
                let Some(c) = undo else { continue };
                c
            };
            let call = &call;
            let Some(action) = self.registry.get(&call.action) else {
                continue;
            };
            Self::journal(run, EventKind::CompensationStarted { step: id.clone() }).await?;
            let ctx = StepContext {
                run_id: run.id.clone(),
                step: id.clone(),
                mode: run.mode,
                attempt: 1,
                targets: run.targets.clone(),
                repo: self.repo.clone(),
                notifiers: run.notifiers.clone(),
            };
            let result = match expr::resolve(&call.with, &scope, None) {
                Ok(with) => until_done(action.as_ref(), &ctx, &with, step.timeout).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => {
                    Self::journal(run, EventKind::CompensationDone { step: id.clone() }).await?;
                }
                Err(e) => {
                    ok = false;
                    Self::journal(
                        run,
                        EventKind::CompensationFailed {
                            step: id.clone(),
                            message: e.message().to_owned(),
                        },
                    )
                    .await?;
                }
            }
        }
        Ok(ok)
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The scope references and conditions read: variables, finished steps' outputs and
/// states, objectives, the run.
fn scope_of(
    vars: &Map<String, Value>,
    states: &BTreeMap<String, State>,
    rb: &Runbook,
    mode: Mode,
    id: &str,
    outcome: Option<&str>,
) -> Value {
    let steps: Map<String, Value> = states
        .iter()
        .map(|(k, s)| {
            let (state, outputs) = match s {
                State::Succeeded(o) => ("succeeded", Value::Object(o.clone())),
                State::Failed(_) => ("failed", Value::Object(Map::new())),
                State::Skipped(_) => ("skipped", Value::Object(Map::new())),
                State::Pending | State::Running => ("pending", Value::Object(Map::new())),
            };
            (
                k.clone(),
                serde_json::json!({"state": state, "outputs": outputs}),
            )
        })
        .collect();
    let failed = states.values().any(|s| matches!(s, State::Failed(_)));
    serde_json::json!({
        "vars": vars,
        "steps": steps,
        "objectives": {
            "rto": rb.objectives.rto.map(crate::duration::format),
            "rpo": rb.objectives.rpo.map(crate::duration::format),
        },
        "run": {
            "id": id,
            "mode": match mode { Mode::Planned => "planned", Mode::Forced => "forced" },
            "outcome": outcome.unwrap_or(if failed { "failed" } else { "succeeded" }),
        },
    })
}

/// Calls the action until it is done (polling `RetryAfter`), bounded by `timeout`.
async fn until_done(
    action: &dyn super::action::Action,
    ctx: &StepContext,
    with: &Value,
    timeout: Option<Duration>,
) -> Result<Map<String, Value>> {
    let work = async {
        loop {
            match action.run(ctx, with).await? {
                Outcome::Done(o) => return Ok(o),
                Outcome::RetryAfter(d) => tokio::time::sleep(d).await,
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
            Err(err!(
                Timeout,
                "step {:?}: {} did not finish within {}",
                ctx.step,
                action.spec().name,
                crate::duration::format(t)
            ))
        }),
        None => work.await,
    }
}

struct StepTask {
    step: Step,
    registry: Arc<Registry>,
    journal: Arc<Mutex<Journal>>,
    scope: Value,
    ctx: StepContext,
}

impl StepTask {
    async fn run(mut self) -> Result<Map<String, Value>> {
        let step = &self.step;
        let action = self.registry.get(&step.action).expect("validated").clone();
        let attempts = step.retry.as_ref().map_or(1, |r| r.attempts.max(1));
        for attempt in 1..=attempts {
            self.journal
                .lock()
                .await
                .append(EventKind::StepStarted {
                    step: step.id.clone(),
                    attempt,
                })
                .await?;
            self.ctx.attempt = attempt;
            let null = |_: &str| Value::Null;
            let missing: Option<&dyn Fn(&str) -> Value> =
                if step.always { Some(&null) } else { None };
            let result = match expr::resolve(&step.with, &self.scope, missing) {
                Ok(with) => until_done(action.as_ref(), &self.ctx, &with, step.timeout).await,
                Err(e) => Err(e),
            };
            let e: Error = match result {
                Ok(outputs) => {
                    self.journal
                        .lock()
                        .await
                        .append(EventKind::StepSucceeded {
                            step: step.id.clone(),
                            outputs: outputs.clone(),
                        })
                        .await?;
                    return Ok(outputs);
                }
                Err(e) => e
                    .without_prefix(&format!("step {:?}: ", step.id))
                    .context(format!("step {:?} ({})", step.id, step.action)),
            };
            let will_retry = attempt < attempts && e.is_retryable();
            self.journal
                .lock()
                .await
                .append(EventKind::StepFailed {
                    step: step.id.clone(),
                    attempt,
                    kind: e.kind().as_str().to_owned(),
                    message: e.full_message(),
                    will_retry,
                })
                .await?;
            if !will_retry {
                return Err(e);
            }
            let delay = step
                .retry
                .as_ref()
                .map_or(Duration::ZERO, |r| r.delay(attempt + 1));
            tokio::time::sleep(delay).await;
        }
        unreachable!("the last attempt returns")
    }
}
