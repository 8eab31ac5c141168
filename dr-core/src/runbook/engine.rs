//! The in-process [`Orchestrator`](super::Orchestrator): loads and checks runbooks, starts
//! runs and resumes them. Scheduling lives in `schedule`, one step's attempts in `step`,
//! taking a run over on resume in `resume`, undoing in `compensate`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::action::{Registry, Target};
use super::journal::{Actor, Journal, Journals, RunHeader};
use super::model::{Mode, Runbook};
use super::notify::Notifiers;
use super::parse::SourceMap;
use super::redact::Redactor;
use super::state::{RunId, RunOutcome, RunSummary};
use super::{expr, validate};
use crate::lock::{Liveness, Lock, LockRequest};
use crate::store::DynStore;
use crate::{err, Result};

/// Stops a run from outside (Ctrl-C, SIGTERM, SIGHUP): the steps in flight are stopped,
/// the interruption journaled, the lock released; the run can be resumed.
#[derive(Clone, Default)]
pub struct StopHandle {
    token: CancellationToken,
    why: Arc<OnceLock<String>>,
}

impl StopHandle {
    /// A handle nobody has pulled yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the run, saying why (`SIGTERM`); the first reason counts.
    pub fn stop(&self, why: impl Into<String>) {
        let _ = self.why.set(why.into());
        self.token.cancel();
    }

    /// Whether it was pulled.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why it was pulled.
    #[must_use]
    pub fn why(&self) -> Option<&str> {
        self.why.get().map(String::as_str)
    }

    /// Returns once it is pulled.
    pub async fn stopped(&self) {
        self.token.cancelled().await;
    }
}

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
    /// On resume: count these in-flight steps as done, without running them again.
    pub skip: BTreeSet<String>,
    /// On resume: the operator knows the machine running the run is dead; wait for its
    /// lease to run out unrenewed, then take the run over (journaled).
    pub take_over: bool,
    /// How long the lock lasts unless renewed (renewed every third of it).
    pub lock_ttl: Duration,
    /// Pulled on Ctrl-C or a signal: the steps in flight are stopped, the run left
    /// resumable.
    pub stop: StopHandle,
    /// Sees every event once it is journaled.
    pub observer: Option<super::journal::Observer>,
    /// Asked about an approval step neither `yes` nor `approve` settles (a terminal's
    /// prompt): step id and message in, yes or no out. Without it the run waits.
    pub approver: Option<Approver>,
    /// The schedule and firing a new run belongs to (journaled in its header); what
    /// [`Engine::resume_or_start`] looks runs up by.
    pub key: Option<super::keyed::RunKey>,
}

/// What a new run has checked and built before it takes its lock.
pub(super) struct ReadyToStart {
    vars: Map<String, Value>,
    journaled: Map<String, Value>,
    redactor: Arc<Redactor>,
    targets: BTreeMap<String, Target>,
    notifiers: Notifiers,
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
            take_over: false,
            lock_ttl: Duration::from_mins(1),
            stop: StopHandle::new(),
            observer: None,
            approver: None,
            key: None,
        }
    }
}

impl RunOptions {
    pub(super) fn approvals(&self) -> super::action::Approvals {
        super::action::Approvals {
            all: self.yes,
            steps: self.approve.clone(),
            ask: self.approver.clone(),
        }
    }
}

/// Makes the lock for a lock name.
pub type LockFactory = Arc<dyn Fn(&str) -> Result<Arc<dyn Lock>> + Send + Sync>;

/// Runs runbooks with a registry's actions, journaling into a store.
#[derive(Clone)]
pub struct Engine {
    pub(super) registry: Arc<Registry>,
    pub(super) journals: Journals,
    pub(super) locks: LockFactory,
    pub(super) repo: Option<crate::repo::Repository>,
}

/// A run in progress: what it runs and where it journals. Its state is the journal's fold.
pub(super) struct Run {
    pub(super) id: RunId,
    pub(super) rb: Arc<Runbook>,
    pub(super) mode: Mode,
    pub(super) vars: Map<String, Value>,
    pub(super) targets: Arc<BTreeMap<String, Target>>,
    pub(super) journal: Arc<Mutex<Journal>>,
    pub(super) notifiers: Notifiers,
    pub(super) scratch: super::action::Scratch,
    /// The secret outputs of its finished steps, in this process only.
    pub(super) secrets: SecretOutputs,
    /// How long each step took in earlier runs of the runbook (read only when a
    /// notifier takes `progress`).
    pub(super) estimates: Arc<super::progress::Estimates>,
}

/// What a secret output reads as in the journal, a plan and `runs show`.
pub const SECRET_OUTPUT: &str = "<secret>";

/// The secret outputs of a run's finished steps ([`super::Action::secret_outputs`]), by
/// step: held by the running process, never journaled.
#[derive(Clone, Default)]
pub(super) struct SecretOutputs(Arc<std::sync::Mutex<BTreeMap<String, Map<String, Value>>>>);

impl SecretOutputs {
    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Map<String, Value>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the fields `names` out of step `step`'s `outputs` (leaving
    /// [`SECRET_OUTPUT`] in their place), teaches their values to `redactor` and keeps
    /// them.
    pub(super) fn keep(
        &self,
        step: &str,
        names: &[&str],
        outputs: &mut Map<String, Value>,
        redactor: &Redactor,
    ) {
        if names.is_empty() {
            return;
        }
        let mut kept = Map::new();
        for name in names {
            if let Some(v) = outputs.get_mut(*name).filter(|v| !v.is_null()) {
                redactor.learn_value(v);
                kept.insert(
                    (*name).to_owned(),
                    std::mem::replace(v, Value::String(SECRET_OUTPUT.to_owned())),
                );
            }
        }
        self.held().insert(step.to_owned(), kept);
    }

    /// Step `step`'s secret outputs, if this process holds them.
    pub(super) fn of(&self, step: &str) -> Option<Map<String, Value>> {
        self.held().get(step).cloned()
    }
}

impl Engine {
    /// An engine journaling readable JSON into `store`, whose locks come from `locks` (a
    /// store lock, a Kubernetes Lease).
    #[must_use]
    pub fn new(registry: Registry, store: DynStore, locks: LockFactory) -> Self {
        Self {
            registry: Arc::new(registry),
            journals: Journals::plain(store),
            locks,
            repo: None,
        }
    }

    /// An engine journaling into `repo` (encrypted when it is), under its store locks,
    /// whose steps can use it.
    #[must_use]
    pub fn for_repository(registry: Registry, repo: &crate::repo::Repository) -> Self {
        let r = repo.clone();
        let locks: LockFactory =
            Arc::new(move |name: &str| Ok(Arc::new(r.store_lock(name)?) as Arc<dyn Lock>));
        Self {
            registry: Arc::new(registry),
            journals: Journals::of(repo),
            locks,
            repo: Some(repo.clone()),
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
        self.journals.store()
    }

    /// Where and how runs are journaled.
    #[must_use]
    pub fn journals(&self) -> &Journals {
        &self.journals
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
        let (rb, map, check) = validate::check_file(path, &self.registry)?;
        if check.ok {
            Ok((rb, map))
        } else {
            Err(super::parse::report(&map.origin, &check.problems))
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

    /// Refuses `--approve` naming no `approve` step of `rb` (the other flags are for
    /// resumes, which check them against the run's state).
    pub(super) fn check_flags(rb: &Runbook, options: &RunOptions, resuming: bool) -> Result<()> {
        let unknown = |flag: &str, id: &str| {
            err!(
                InvalidInput,
                "{flag} {id}: the runbook has no step {id:?} (steps: {})",
                rb.steps
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for id in &options.approve {
            let step = rb.step(id).ok_or_else(|| unknown("--approve", id))?;
            if step.action != "approve" {
                return Err(err!(
                    InvalidInput,
                    "--approve {id}: step {id:?} runs {}, it is not an approval step",
                    step.action
                ));
            }
        }
        if options.take_over && !resuming {
            return Err(err!(
                InvalidInput,
                "--take-over is for resuming a run whose machine is dead (drkit run --resume RUN --take-over)"
            ));
        }
        for (flag, ids) in [("--rerun", &options.rerun), ("--skip", &options.skip)] {
            if let Some(id) = ids.iter().next() {
                if !resuming {
                    return Err(err!(
                        InvalidInput,
                        "{flag} {id}: {flag} is for resuming a run whose step was in flight when it stopped"
                    ));
                }
                rb.step(id).ok_or_else(|| unknown(flag, id))?;
            }
        }
        if let Some(both) = options.rerun.intersection(&options.skip).next() {
            return Err(err!(
                InvalidInput,
                "--rerun {both} and --skip {both}: choose one"
            ));
        }
        Ok(())
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
        let mut problems = Vec::new();
        for (name, spec) in &rb.vars {
            let withheld = previous.is_some_and(|p| p.get(name).is_some_and(Value::is_null));
            let given = given
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
                // A value withheld from the journal is not replaced by the frozen
                // default, which lost its password too.
                .or_else(|| (!withheld).then(|| spec.default.clone()).flatten());
            let Some(v) = given else {
                problems.push(format!(
                    "variable {name:?} has no value: pass --var {name}=…{}{}",
                    spec.env
                        .as_ref()
                        .map(|e| format!(" or set {e}"))
                        .unwrap_or_default(),
                    match (previous.map(|p| p.contains_key(name)), spec.secret) {
                        (Some(_), true) => {
                            " (a secret variable is never journaled: give it again on resume)"
                        }
                        (Some(true), false) => {
                            " (its value held a password, which is never journaled: give it again on resume)"
                        }
                        _ => "",
                    }
                ));
                continue;
            };
            let v = match spec.typed(name, v) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(e.message().to_owned());
                    continue;
                }
            };
            // A secret, or a value that holds a password, is given again on resume.
            let stripped = super::redact::strip_value(&v);
            journaled.insert(
                name.clone(),
                if spec.secret || stripped != v {
                    Value::Null
                } else {
                    stripped
                },
            );
            values.insert(name.clone(), v);
        }
        if !problems.is_empty() {
            return Err(err!(InvalidInput, "{}", problems.join("; ")));
        }
        Ok((values, journaled))
    }

    /// The redactor of a run of `rb` with `vars`: drkit's own credentials, secret
    /// variables, URL passwords of variables and targets, notifiers' URLs and keys.
    pub(crate) fn redactor(rb: &Runbook, vars: &Map<String, Value>) -> Redactor {
        let mut r = Redactor::from_environment();
        for (name, v) in vars {
            if rb.vars.get(name).is_some_and(|s| s.secret) {
                r.add_value(v);
            }
            r.add_url_passwords(v);
        }
        let scope = serde_json::json!({ "vars": vars, "run": { "id": "" } });
        for spec in rb.targets.values() {
            if let Ok(Value::Object(fields)) =
                expr::resolve(&Value::Object(spec.fields.clone()), &scope, None)
            {
                r.add_target_fields(&fields);
            }
        }
        for entry in &rb.notify {
            if let Ok(Value::Object(fields)) = expr::resolve(entry, &scope, None) {
                r.add_fields(&fields);
            }
        }
        r
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

    pub(super) fn notifiers(
        rb: &Runbook,
        vars: &Map<String, Value>,
        id: &RunId,
        redactor: &Arc<Redactor>,
    ) -> Result<(Notifiers, Vec<String>)> {
        let scope = serde_json::json!({ "vars": vars, "run": { "id": id.as_str() } });
        let entries = expr::resolve(&Value::Array(rb.notify.clone()), &scope, None)?;
        let Value::Array(entries) = entries else {
            unreachable!("an array resolves to an array")
        };
        // On resume, notifiers whose URL or key was written into the runbook (never
        // journaled) cannot be reached.
        let (entries, unreachable): (Vec<Value>, Vec<Value>) = entries
            .into_iter()
            .partition(|e| !e.to_string().contains(NOT_JOURNALED));
        let names = unreachable
            .iter()
            .map(|e| {
                e.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect();
        Ok((
            Notifiers::new(&entries, id.as_str(), &rb.name)?.with_redactor(redactor.clone()),
            names,
        ))
    }

    /// Starts a new run of `rb`.
    pub async fn run(
        &self,
        rb: &Runbook,
        map: &SourceMap,
        options: &RunOptions,
    ) -> Result<RunSummary> {
        let id = RunId::new();
        let ready = self.ready_to_start(rb, map, options, &id).await?;
        let lock = (self.locks)(rb.lock_name())?;
        let lease = lock
            .acquire(&LockRequest::new(format!("run {id}"), options.lock_ttl))
            .await?;
        self.start_locked(rb, map, options, id, ready, lock, lease)
            .await
    }

    /// Everything a new run checks and builds before it takes its lock.
    pub(super) async fn ready_to_start(
        &self,
        rb: &Runbook,
        map: &SourceMap,
        options: &RunOptions,
        id: &RunId,
    ) -> Result<ReadyToStart> {
        self.check(rb, map)?;
        Self::check_flags(rb, options, false)?;
        let (vars, journaled) = Self::resolve_vars(rb, &options.vars, None)?;
        let redactor = Arc::new(Self::redactor(rb, &vars));
        let shown = |e: crate::Error| redactor.error(e);
        // The variables' values where they are used, before anything runs.
        let problems = validate::validate_with_vars(rb, map, &self.registry, Some(&vars));
        if !problems.is_empty() {
            return Err(shown(super::parse::report(&map.origin, &problems)));
        }
        let targets = self.build_targets(rb, &vars).await.map_err(shown)?;
        let (notifiers, _) = Self::notifiers(rb, &vars, id, &redactor).map_err(shown)?;
        Ok(ReadyToStart {
            vars,
            journaled,
            redactor,
            targets,
            notifiers,
        })
    }

    /// Journals and drives new run `id` under `lease`, which this process holds.
    #[allow(clippy::too_many_arguments)] // the pieces a start is made of, each once
    pub(super) async fn start_locked(
        &self,
        rb: &Runbook,
        map: &SourceMap,
        options: &RunOptions,
        id: RunId,
        ready: ReadyToStart,
        lock: Arc<dyn Lock>,
        lease: crate::lock::Lease,
    ) -> Result<RunSummary> {
        let ReadyToStart {
            vars,
            journaled,
            redactor,
            targets,
            notifiers,
        } = ready;
        let header = RunHeader {
            id: id.clone(),
            runbook: frozen(rb),
            origin: map.origin.clone(),
            vars: journaled,
            mode: options.mode,
            started: Timestamp::now(),
            by: Actor::current(),
            drkit: super::journal::VERSION.to_owned(),
            key: options.key.clone(),
        };
        let journal = match Journal::create(
            self.journals.clone(),
            &header,
            lock.clone(),
            lease.token,
            redactor.clone(),
        )
        .await
        {
            Ok(j) => j,
            Err(e) => {
                let _ = lock.release(&lease).await;
                return Err(e);
            }
        };
        let run = Run {
            id,
            rb: Arc::new(rb.clone()),
            mode: options.mode,
            vars,
            targets: Arc::new(targets),
            journal: Arc::new(Mutex::new(journal)),
            estimates: Arc::new(self.estimates(rb, &notifiers).await),
            notifiers,
            scratch: super::action::Scratch::default(),
            secrets: SecretOutputs::default(),
        };
        self.drive(run, lock, lease, options, false)
            .await
            .map_err(|e| redactor.error(e))
    }

    /// Run `id` (or the one run whose id starts with it) as its journal tells it, with
    /// `stopped` for a run whose process died (no end journaled, its lock gone).
    pub async fn show(&self, id: &str) -> Result<RunSummary> {
        let id = self.journals.resolve(id).await?;
        let header = self.journals.header(&id).await?;
        let events = self.journals.events(&id).await?;
        let mut s = RunSummary::fold(&header, events);
        self.settle_outcome(&header, &mut s).await;
        Ok(s)
    }

    /// The report of run `id` (or the one run whose id starts with it), from its journal
    /// alone: the same on any machine that reads the repository.
    pub async fn report(&self, id: &str) -> Result<super::report::Report> {
        let id = self.journals.resolve(id).await?;
        let ((header, header_bytes), stored) = self.journals.stored(&id).await?;
        let mut r = super::report::Report::of(&header, &stored, &header_bytes);
        if r.outcome == RunOutcome::Running {
            let mut s = RunSummary::fold(&header, stored.into_iter().map(|(e, _)| e).collect());
            self.settle_outcome(&header, &mut s).await;
            r.outcome = s.outcome;
        }
        Ok(r)
    }

    /// The newest drill of each runbook (by name), from the journals: when it ran, how it
    /// came out, the RTO and RPO achieved with their verdicts.
    pub async fn last_drills(&self) -> Result<Vec<super::report::LastDrill>> {
        let mut newest: BTreeMap<String, (Timestamp, RunId)> = BTreeMap::new();
        for id in self.journals.run_ids().await? {
            let header = self.journals.header(&id).await?;
            if header.runbook.drill.is_none() {
                continue;
            }
            let name = header.runbook.name.clone();
            if newest.get(&name).is_none_or(|(at, _)| header.started > *at) {
                newest.insert(name, (header.started, id));
            }
        }
        let mut out = Vec::new();
        for (_, id) in newest.into_values() {
            out.push(super::report::LastDrill::of(
                &self.report(id.as_str()).await?,
            ));
        }
        Ok(out)
    }

    /// A signed evidence bundle of run `id`: its report, its journal objects as stored
    /// and the chain's head, signed with `key`.
    pub async fn evidence(
        &self,
        id: &str,
        key: &super::evidence::SigningKey,
    ) -> Result<super::evidence::Evidence> {
        let id = self.journals.resolve(id).await?;
        let (header, stored) = self.journals.stored(&id).await?;
        super::evidence::Evidence::sign(&header, &stored, key)
    }

    /// The step durations of the earlier succeeded runs of `rb`, when a notifier takes
    /// `progress` (else none are read).
    pub(super) async fn estimates(
        &self,
        rb: &Runbook,
        notifiers: &Notifiers,
    ) -> super::progress::Estimates {
        if !notifiers.wants(super::notify::NotifyOn::Progress) {
            return super::progress::Estimates::default();
        }
        let mut earlier = Vec::new();
        if let Ok(ids) = self.journals.run_ids().await {
            for id in ids {
                let Ok(header) = self.journals.header(&id).await else {
                    continue;
                };
                if header.runbook.name != rb.name {
                    continue;
                }
                if let Ok(events) = self.journals.events(&id).await {
                    earlier.push(RunSummary::fold(&header, events));
                }
            }
        }
        super::progress::Estimates::of(&earlier)
    }

    /// Every run, oldest first, without their events.
    pub async fn list(&self) -> Result<Vec<RunSummary>> {
        let mut out = Vec::new();
        for id in self.journals.run_ids().await? {
            let header = self.journals.header(&id).await?;
            let mut s = RunSummary::fold(&header, self.journals.events(&id).await?);
            s.events.clear();
            self.settle_outcome(&header, &mut s).await;
            out.push(s);
        }
        Ok(out)
    }

    /// A run with no end journaled runs only while its lock is held for it by a live
    /// process; otherwise it stopped.
    pub(super) async fn settle_outcome(&self, header: &RunHeader, s: &mut RunSummary) {
        if s.outcome != RunOutcome::Running {
            return;
        }
        let purpose = format!("run {}", header.id);
        let held = match (self.locks)(header.runbook.lock_name()) {
            Ok(lock) => lock.holder().await.ok().flatten(),
            Err(_) => None,
        };
        let running = held.is_some_and(|l| {
            l.purpose == purpose
                && !l.expired()
                && l.process
                    .as_ref()
                    .is_none_or(|p| p.liveness() != Liveness::Gone)
        });
        if !running {
            s.outcome = RunOutcome::Stopped;
        }
    }
}

/// What a frozen runbook holds instead of a secret written into it.
pub(super) const NOT_JOURNALED: &str = "<not journaled>";

/// The runbook as it is frozen into a journal: no default of a secret variable, no URL
/// password anywhere (a resumed run finds those where libpq would: `PGPASSWORD`, or a
/// secret variable).
fn frozen(rb: &Runbook) -> Runbook {
    let mut rb = rb.clone();
    for spec in rb.vars.values_mut() {
        if spec.secret {
            spec.default = None;
        }
    }
    // A notifier's URL or key written into the runbook is a secret: kept out. One given
    // by a reference (`${vars.slack_url}`) is found again on resume.
    for entry in &mut rb.notify {
        if let Value::Object(fields) = entry {
            for (k, v) in fields.iter_mut() {
                if super::redact::secret_field(k) && v.as_str().is_some_and(|s| !s.contains("${")) {
                    *v = Value::String(NOT_JOURNALED.to_owned());
                }
            }
        }
    }
    let value = serde_json::to_value(&rb).expect("a runbook serializes");
    serde_json::from_value(super::redact::strip_value(&value)).unwrap_or(rb)
}
