//! The scheduling loop of a run: starts the steps whose needs are finished (independent
//! ones at the same time, up to `concurrency`), applies each step's failure policy, holds
//! and renews the lock, and stops cleanly — on Ctrl-C or a signal (the steps in flight
//! are stopped and the run left resumable), when the lock is lost (they are stopped
//! before the writer gives up), or at the run's deadline (they fail; `always` steps still
//! run, each under its own timeout).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::action::StepContext;
use super::engine::{Engine, Run, RunOptions};
use super::expr;
use super::journal::EventKind;
use super::model::{Mode, OnFailure, Runbook, Severity, Step};
use super::notify::{Message, NotifyOn};
use super::state::{RunOutcome, RunSummary, StepState};
use super::step::{StepEnd, StepTask};
use crate::lock::{Lease, Lock};
use crate::{err, Error, ErrorKind, Result};

/// Where every step stands, in the runbook's order: what one round of scheduling reads,
/// copied out of the journal's fold without the steps' outputs.
struct Standing<'a> {
    position: &'a HashMap<&'a str, usize>,
    states: Vec<StepState>,
    passes: Vec<bool>,
}

impl Standing<'_> {
    fn state(&self, id: &str) -> StepState {
        self.position
            .get(id)
            .map_or(StepState::Pending, |&i| self.states[i])
    }

    /// Whether the steps that need `id` may run (it succeeded, or was not needed).
    fn passes(&self, id: &str) -> bool {
        self.position.get(id).is_some_and(|&i| self.passes[i])
    }
}

/// Why a run stops before its steps are done.
enum Stop {
    /// Ctrl-C or a signal: resumable.
    Interrupted(String),
    /// The lock was lost: this process must not touch anything else.
    LockLost(Error),
    /// The run's deadline passed: the steps in flight fail, `always` steps still run.
    Deadline,
}

impl Engine {
    /// Runs `run` under `lease` until it ends, waits or stops; releases the lock.
    pub(super) async fn drive(
        &self,
        run: Run,
        lock: Arc<dyn Lock>,
        lease: Lease,
        options: &RunOptions,
        resumed: bool,
    ) -> Result<RunSummary> {
        let clock = {
            let mut j = run.journal.lock().await;
            j.observe(options.observer.clone());
            j.clock()
        };
        let lost = CancellationToken::new();
        let ttl = options.lock_ttl;
        // Renewed once now (what came before — a resume's checks — may have taken a
        // while): from here the lease is certainly the run's until two thirds of it.
        let began = std::time::Instant::now();
        let lease = match lock.renew(&lease, ttl).await {
            Ok(renewed) => renewed,
            Err(e) => {
                let _ = lock.release(&lease).await;
                return Err(err!(LockLost, "run {}: {}", run.id, e.message()));
            }
        };
        clock.live_until(began + ttl * 2 / 3);
        let renewer = {
            let (lock, lease, lost, clock) = (lock.clone(), lease.clone(), lost.clone(), clock);
            tokio::spawn(async move {
                let mut lease = lease;
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let began = std::time::Instant::now();
                    match lock.renew(&lease, ttl).await {
                        Ok(l) => {
                            lease = l;
                            clock.live_until(began + ttl * 2 / 3);
                        }
                        Err(e) => {
                            clock.lost();
                            tracing::error!("{}; stopping the run", e.message());
                            lost.cancel();
                            return;
                        }
                    }
                }
            })
        };
        let result = self.execute(&run, options, &lost, resumed).await;
        renewer.abort();
        let _ = lock.release(&lease).await;
        result?;
        let j = run.journal.lock().await;
        Ok(j.state().clone())
    }

    async fn journal(run: &Run, kind: EventKind) -> Result<()> {
        Self::journal_event(run, kind).await
    }

    /// Tells the notifiers that take `on`; a notifier that fails is journaled, the run goes
    /// on.
    async fn tell(
        run: &Run,
        on: NotifyOn,
        text: String,
        severity: Severity,
        resolves: bool,
    ) -> Result<()> {
        let m = Message {
            resolves,
            ..Message::new(text, severity, &format!("{on:?}").to_lowercase())
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

    /// Tells the notifiers that take `progress` the share of steps done and the ETA.
    async fn progress(run: &Run) -> Result<()> {
        if !run.notifiers.wants(NotifyOn::Progress) {
            return Ok(());
        }
        let text = {
            let journal = run.journal.lock().await;
            super::progress::Progress::of(&run.rb, journal.state(), &run.estimates).to_string()
        };
        Self::tell(run, NotifyOn::Progress, text, Severity::Info, false).await
    }

    /// Whether `step` is skipped, why, and whether only its own `if:` said so (it was
    /// not needed): the run stopping, a need that did not succeed, a guard, an `if:`.
    /// Guards not applied in this mode are journaled.
    async fn skip_reason(
        run: &Run,
        step: &Step,
        state: &Standing<'_>,
        stopping: Option<&str>,
    ) -> Result<Option<(String, bool)>> {
        let skip = match stopping {
            Some(why) if !step.always => Some(format!("the run is stopping: {why}")),
            _ => step
                .needs
                .iter()
                .find(|n| !step.always && !state.passes(n) && !branched(run, state, n))
                .map(|n| format!("it needs {n:?}, which did not succeed")),
        };
        let skip = match (skip, &step.guard) {
            (Some(why), _) => Some(why),
            (None, Some(g)) if g.mode == run.mode => (!state.state(&g.step).satisfies_needs())
                .then(|| format!("guard: {:?} did not succeed", g.step)),
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
        Ok(match (skip, &step.when) {
            (Some(why), _) => Some((why, false)),
            (None, Some(cond)) => {
                let scope = scope_of(run, run.journal.lock().await.state(), None);
                (!expr::condition(cond, &scope)?).then(|| (format!("if: {cond} is false"), true))
            }
            (None, None) => None,
        })
    }

    #[allow(clippy::too_many_lines)] // one scheduling loop: start, wait, record, decide
    async fn execute(
        &self,
        run: &Run,
        options: &RunOptions,
        lost: &CancellationToken,
        resumed: bool,
    ) -> Result<()> {
        let occurrence = if resumed {
            options.key.as_ref().and_then(|k| k.occurrence.clone())
        } else {
            None
        };
        Self::journal(
            run,
            EventKind::RunStarted {
                resumed,
                occurrence,
            },
        )
        .await?;
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
        let mut deadline = run.rb.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut steps_token = CancellationToken::new();
        let mut tasks: JoinSet<(String, Result<StepEnd>)> = JoinSet::new();
        let mut launched: BTreeSet<String> = BTreeSet::new();
        let mut stopping: Option<String> = None;
        let mut compensate = false;
        let mut reason: Option<String> = None;
        let mut interrupted: Option<String> = None;
        let rb = run.rb.clone();
        let tears_down = rb
            .steps
            .iter()
            .any(|s| s.phase == Some(super::model::Phase::Teardown));
        let limit = rb.concurrency.max(1);
        let position: HashMap<&str, usize> = rb
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        loop {
            // Start what is ready, in file order, up to the concurrency limit; a skip can
            // make another step ready, so go round until nothing changes.
            let mut progressed = true;
            while progressed && tasks.len() < limit {
                progressed = false;
                let state = {
                    let journal = run.journal.lock().await;
                    Standing {
                        position: &position,
                        states: journal.state().states(),
                        passes: journal.state().passes(),
                    }
                };
                let waiting = state.states.contains(&StepState::Waiting);
                let others_done = rb
                    .steps
                    .iter()
                    .filter(|o| !o.always)
                    .all(|o| state.state(&o.id).finished() && !launched.contains(&o.id));
                for step in &rb.steps {
                    if tasks.len() >= limit {
                        break;
                    }
                    // An always-step runs once every other step is finished; none runs
                    // while the run waits (they run when it resumes).
                    let ready = state.state(&step.id) == StepState::Pending
                        && !launched.contains(&step.id)
                        && (!step.always || (others_done && !waiting))
                        && step.needs.iter().all(|n| state.state(n).finished());
                    if !ready {
                        continue;
                    }
                    progressed = true;
                    if let Some((why, not_needed)) =
                        Self::skip_reason(run, step, &state, stopping.as_deref()).await?
                    {
                        Self::journal(
                            run,
                            EventKind::StepSkipped {
                                step: step.id.clone(),
                                why,
                                not_needed,
                            },
                        )
                        .await?;
                        // The state changed: look again from the top.
                        break;
                    }
                    launched.insert(step.id.clone());
                    let action = self.registry.get(&step.action).expect("validated").clone();
                    let (scope, everything) = {
                        let journal = run.journal.lock().await;
                        (
                            step_scope(run, journal.state(), step),
                            // Only an action that reads expressions gets every name.
                            if action.reads_scope() {
                                scope_of(run, journal.state(), None)
                            } else {
                                Value::Null
                            },
                        )
                    };
                    let task = StepTask {
                        step: step.clone(),
                        action,
                        journal: run.journal.clone(),
                        secrets: run.secrets.clone(),
                        ctx: StepContext {
                            cancel: steps_token.child_token(),
                            scope: everything,
                            ..context(self, run, step, options)
                        },
                        scope,
                    };
                    tasks.spawn(async move {
                        let id = task.step.id.clone();
                        (id, task.run().await)
                    });
                }
            }
            if tasks.is_empty() {
                break;
            }
            let stop = tokio::select! {
                joined = tasks.join_next() => {
                    let Some(joined) = joined else { break };
                    let (id, result) = joined.map_err(|e| err!(Io, "a step task failed: {e}"))?;
                    launched.remove(&id);
                    match self.settle(run, &id, result, &mut stopping, &mut compensate).await {
                        Ok(()) => continue,
                        Err(e) if e.kind() == ErrorKind::LockLost => Stop::LockLost(e),
                        Err(e) => return Err(e),
                    }
                }
                () = async {
                    if interrupted.is_some() {
                        // A drill's teardown runs on after the stop.
                        std::future::pending::<()>().await;
                    }
                    options.stop.stopped().await;
                } => Stop::Interrupted(
                    options.stop.why().unwrap_or("interrupted").to_owned(),
                ),
                () = lost.cancelled() => Stop::LockLost(err!(
                    LockLost,
                    "run {}: the lock was lost (not renewed in time, or taken over)",
                    run.id
                )),
                () = sleep_until(deadline) => Stop::Deadline,
            };
            // Stop every step in flight and wait until each has stopped what it started.
            steps_token.cancel();
            let mut stopped = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                if let Ok((id, result)) = joined {
                    launched.remove(&id);
                    stopped.push((id, result));
                }
            }
            match stop {
                Stop::LockLost(e) => {
                    return Err(
                        e.context("stopped every step in flight without journaling anything else")
                    )
                }
                Stop::Interrupted(why) if tears_down => {
                    // A drill: what was in flight failed, the rest is skipped, the
                    // teardown (and every `always` step) runs, then the run ends
                    // interrupted.
                    stopping = Some(why.clone());
                    self.fail_stopped(
                        run,
                        stopped,
                        &why,
                        ErrorKind::Cancelled,
                        &mut stopping,
                        &mut compensate,
                    )
                    .await?;
                    interrupted = Some(why);
                    steps_token = CancellationToken::new();
                }
                Stop::Interrupted(why) => {
                    Self::journal(
                        run,
                        EventKind::RunInterrupted {
                            why: format!("{why}; the steps in flight were stopped"),
                        },
                    )
                    .await?;
                    Self::tell(
                        run,
                        NotifyOn::End,
                        format!(
                            "run {} of {} interrupted ({why}); it can be resumed",
                            run.id, run.rb.name
                        ),
                        Severity::High,
                        false,
                    )
                    .await?;
                    Self::journal(
                        run,
                        EventKind::RunEnded {
                            outcome: RunOutcome::Interrupted,
                            why: Some(why),
                        },
                    )
                    .await?;
                    return Ok(());
                }
                Stop::Deadline => {
                    let t = rb.timeout.map(crate::duration::format).unwrap_or_default();
                    let why = format!("the run's deadline ({t}) passed");
                    // The deadline is why the rest is skipped, not the steps it stopped.
                    stopping = Some(why.clone());
                    self.fail_stopped(
                        run,
                        stopped,
                        &why,
                        ErrorKind::Timeout,
                        &mut stopping,
                        &mut compensate,
                    )
                    .await?;
                    reason = Some(why);
                    deadline = None;
                    // `always` steps get tokens of their own.
                    steps_token = CancellationToken::new();
                }
            }
        }
        if let Some(why) = interrupted {
            let why = format!("{why}; the teardown ran");
            Self::tell(
                run,
                NotifyOn::End,
                format!("run {} of {} interrupted ({why})", run.id, run.rb.name),
                Severity::High,
                false,
            )
            .await?;
            return Self::journal(
                run,
                EventKind::RunEnded {
                    outcome: RunOutcome::Interrupted,
                    why: Some(why),
                },
            )
            .await;
        }
        let state = run.journal.lock().await.state().clone_steps();
        let waiting = state.steps.iter().any(|s| s.state == StepState::Waiting);
        // Nothing is in flight and nothing can start, yet steps are left: never a success.
        let stuck: Vec<String> = state
            .steps
            .iter()
            .filter(|s| s.state == StepState::Pending)
            .map(|s| s.id.to_string())
            .collect();
        if !waiting && !stuck.is_empty() && reason.is_none() {
            reason = Some(format!(
                "steps {} could never start (their needs cannot be met)",
                stuck.join(", ")
            ));
        }
        let mut outcome = if waiting {
            RunOutcome::Waiting
        } else if reason.is_some() || failed_run(&run.rb, &state) {
            RunOutcome::Failed
        } else {
            RunOutcome::Succeeded
        };
        if compensate {
            outcome = if self.compensate(run).await? {
                RunOutcome::Compensated
            } else {
                RunOutcome::Failed
            };
        }
        if outcome != RunOutcome::Waiting {
            let severity = if outcome == RunOutcome::Succeeded {
                Severity::Info
            } else {
                Severity::Critical
            };
            Self::tell(
                run,
                NotifyOn::End,
                format!(
                    "run {} of {} {outcome}{}",
                    run.id,
                    run.rb.name,
                    reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                severity,
                outcome == RunOutcome::Succeeded,
            )
            .await?;
        }
        Self::journal(
            run,
            EventKind::RunEnded {
                outcome,
                why: reason,
            },
        )
        .await
    }

    /// Journals each step stopped in flight (`stopped`, by a deadline or a drill's
    /// interruption) as failed with `kind`, saying `why`, and settles it.
    async fn fail_stopped(
        &self,
        run: &Run,
        stopped: Vec<(String, Result<StepEnd>)>,
        why: &str,
        kind: ErrorKind,
        stopping: &mut Option<String>,
        compensate: &mut bool,
    ) -> Result<()> {
        for (id, result) in stopped {
            let result = match result {
                Err(e) if e.kind() == ErrorKind::Cancelled => {
                    let message = format!("{why} while it ran; it was stopped");
                    Self::journal(
                        run,
                        EventKind::StepFailed {
                            step: id.clone(),
                            attempt: 0,
                            kind: kind.as_str().into(),
                            message: message.clone(),
                            will_retry: false,
                        },
                    )
                    .await?;
                    Err(crate::Error::new(kind, message))
                }
                other => other,
            };
            self.settle(run, &id, result, stopping, compensate).await?;
        }
        Ok(())
    }

    /// Records what a finished step task came to and applies its failure policy.
    async fn settle(
        &self,
        run: &Run,
        id: &str,
        result: Result<StepEnd>,
        stopping: &mut Option<String>,
        compensate: &mut bool,
    ) -> Result<()> {
        let step = run.rb.step(id).expect("a known step").clone();
        match result {
            Ok(StepEnd::Done) => {
                Self::tell(
                    run,
                    NotifyOn::Step,
                    format!("step {id} ({}) done", step.action),
                    step.severity,
                    false,
                )
                .await?;
                Self::progress(run).await
            }
            Ok(StepEnd::Waiting(why)) => {
                Self::tell(
                    run,
                    NotifyOn::Approval,
                    format!(
                        "run {} waits at step {id} ({why}): drkit run --resume {} --approve {id}",
                        run.id, run.id
                    ),
                    Severity::High,
                    false,
                )
                .await
            }
            Err(e) if e.kind() == ErrorKind::LockLost => Err(e),
            Err(e) if e.kind() == ErrorKind::Cancelled => {
                // Stopped from outside: the caller journals why.
                Ok(())
            }
            Err(e) => {
                Self::tell(
                    run,
                    NotifyOn::Failure,
                    format!("step {id} ({}) failed: {}", step.action, e.message()),
                    step.severity.max(Severity::High),
                    false,
                )
                .await?;
                if step.continue_on_error {
                    return Self::journal(
                        run,
                        EventKind::Note {
                            step: Some(id.to_owned()),
                            text: "failed; the run goes on (continue_on_error): the steps that need it run".to_owned(),
                        },
                    )
                    .await;
                }
                match step.on_failure {
                    OnFailure::Continue => {}
                    OnFailure::Abort => {
                        *stopping = stopping.take().or(Some(format!("step {id:?} failed")));
                    }
                    OnFailure::Compensate => {
                        *stopping = stopping.take().or(Some(format!("step {id:?} failed")));
                        *compensate = true;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Whether a step failed that fails the run (one with `continue_on_error` does not).
fn failed_run(rb: &Runbook, state: &RunSummary) -> bool {
    state.steps.iter().any(|s| {
        s.state == StepState::Failed && rb.step(&s.id).is_none_or(|st| !st.continue_on_error)
    })
}

/// Whether need `n` failed as a branch (`continue_on_error`): its dependents run.
fn branched(run: &Run, state: &Standing<'_>, n: &str) -> bool {
    state.state(n) == StepState::Failed && run.rb.step(n).is_some_and(|s| s.continue_on_error)
}

/// The context step `step` of `run` runs in (a fresh cancellation token).
pub(super) fn context(
    engine: &Engine,
    run: &Run,
    step: &Step,
    options: &RunOptions,
) -> StepContext {
    StepContext {
        run_id: run.id.to_string(),
        step: step.id.clone(),
        mode: run.mode,
        attempt: 1,
        targets: run.targets.clone(),
        repo: engine.repo.clone(),
        notifiers: run.notifiers.clone(),
        cancel: CancellationToken::new(),
        kill_grace: step.kill_grace(),
        approvals: options.approvals(),
        processes: super::action::ProcessLog::new(run.journal.clone(), &step.id),
        scope: Value::Null,
        severity: step.severity,
        scratch: run.scratch.clone(),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The scope step `step`'s parameters read: as [`scope_of`], with only the steps they
/// name (a run of many steps does not copy every output for every step).
fn step_scope(run: &Run, state: &RunSummary, step: &Step) -> Value {
    let named: BTreeSet<String> = expr::references(&step.with)
        .iter()
        .filter_map(|r| {
            r.strip_prefix("steps.")?
                .split('.')
                .next()
                .map(str::to_owned)
        })
        .collect();
    scope_with(run, state, None, |id| named.contains(id), true)
}

/// The scope conditions and `assert` read: variables, finished steps' outputs and
/// states, objectives, the run — secret outputs only as `<secret>` (only a step's
/// parameters get their values).
pub(super) fn scope_of(run: &Run, state: &RunSummary, outcome: Option<&str>) -> Value {
    scope_with(run, state, outcome, |_| true, false)
}

fn scope_with(
    run: &Run,
    state: &RunSummary,
    outcome: Option<&str>,
    include: impl Fn(&str) -> bool,
    secrets: bool,
) -> Value {
    let steps: Map<String, Value> = state
        .steps
        .iter()
        .filter(|s| include(&s.id))
        .map(|s| {
            let outputs = if s.state == StepState::Succeeded {
                let mut outputs = s.outputs.clone();
                if secrets {
                    outputs.extend(run.secrets.of(&s.id).unwrap_or_default());
                }
                Value::Object(outputs)
            } else {
                Value::Object(Map::new())
            };
            let shown = match s.state {
                StepState::Running => "pending",
                other => other.as_str(),
            };
            (
                s.id.to_string(),
                serde_json::json!({
                    "state": shown,
                    "outputs": outputs,
                    "started": s.started.map(|t| t.to_string()),
                    "ended": s.ended.map(|t| t.to_string()),
                    "seconds": s.seconds,
                }),
            )
        })
        .collect();
    let failed = failed_run(&run.rb, state);
    serde_json::json!({
        "vars": run.vars,
        "steps": steps,
        "objectives": {
            "rto": run.rb.objectives.rto.map(crate::duration::format),
            "rpo": run.rb.objectives.rpo.map(crate::duration::format),
        },
        "now": jiff::Timestamp::now().to_string(),
        "run": {
            "id": run.id.as_str(),
            "started": state.started.to_string(),
            "mode": match run.mode { Mode::Planned => "planned", Mode::Forced => "forced" },
            "outcome": outcome.unwrap_or(if failed { "failed" } else { "succeeded" }),
        },
    })
}

/// How long an attempt may take to wind down once told to stop, beyond its kill grace.
pub(super) const WIND_DOWN: Duration = Duration::from_secs(5);
