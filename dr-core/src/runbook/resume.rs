//! Resuming a run: from this or another machine, from the frozen runbook. A resume takes
//! the run's lock over only when its holder is provably gone — on the same machine its
//! process no longer exists; elsewhere its lease ran out unrenewed, as for any taker — or
//! when an operator says the holder's machine is dead (`--take-over`), and then only
//! after waiting out the lease. Of several resumes racing, exactly one gets the lock;
//! the others stop before anything runs. The journal is read again once the lock is held.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Mutex;

use super::engine::{Engine, Run, RunOptions};
use super::journal::{EventKind, Journal};
use super::state::{RunId, RunSummary, StepState};
use crate::lock::{Lease, Liveness, Lock, LockRequest};
use crate::{err, ErrorKind, Result};

impl Engine {
    /// Resumes run `id` (or the one run whose id starts with it), from its frozen runbook.
    pub async fn resume(&self, id: &str, options: &RunOptions) -> Result<RunSummary> {
        let id = self.journals.resolve(id).await?;
        let header = self.journals.header(&id).await?;
        let rb = header.runbook.clone();
        Self::check_flags(&rb, options, true)?;
        let before = RunSummary::fold(&header, self.journals.events(&id).await?);
        refuse_ended(&before)?;
        refuse_torn_down(&rb, &before)?;
        let (vars, _) = Self::resolve_vars(&rb, &options.vars, Some(&header.vars))?;
        let redactor = Arc::new(Self::redactor(&rb, &vars));
        let targets = self
            .build_targets(&rb, &vars)
            .await
            .map_err(|e| redactor.error(e))?;
        let lock = (self.locks)(rb.lock_name())?;
        let (lease, taken_from) = take_run_lock(&lock, &id, options).await?;
        let release = |e: crate::Error| {
            let (lock, lease) = (lock.clone(), lease.clone());
            async move {
                let _ = lock.release(&lease).await;
                e
            }
        };
        // Read again under the lock: another resume may have moved the run meanwhile.
        let mut journal = match Journal::resume(
            self.journals.clone(),
            &header,
            lock.clone(),
            lease.token,
            redactor.clone(),
        )
        .await
        {
            Ok(j) => j,
            Err(e) => return Err(release(e).await),
        };
        if let Err(e) =
            refuse_ended(journal.state()).and_then(|()| refuse_torn_down(&rb, journal.state()))
        {
            return Err(release(e).await);
        }
        if let Err(e) = check_resume_flags(journal.state(), options) {
            return Err(release(e).await);
        }
        if let Some(from) = taken_from {
            let note = EventKind::Note {
                step: None,
                text: format!(
                    "lock taken over by the operator (--take-over) from {} after its lease ran out unrenewed",
                    describe(&from)
                ),
            };
            if let Err(e) = journal.append(note).await {
                return Err(release(e).await);
            }
        }
        let notifiers = match Self::notifiers(&rb, &vars, &id, &redactor) {
            Ok((n, unreachable)) => {
                for name in unreachable {
                    let note = EventKind::Note {
                        step: None,
                        text: format!(
                            "notifier {name:?} is not told of this resume: its URL or key was written into the runbook and is never journaled (give it as a secret variable, `${{vars.…}}` with `env:`, to have resumes notify)"
                        ),
                    };
                    if let Err(e) = journal.append(note).await {
                        return Err(release(e).await);
                    }
                }
                n
            }
            Err(e) => return Err(redactor.error(release(e).await)),
        };
        let estimates = Arc::new(self.estimates(&rb, &notifiers).await);
        let run = Run {
            id: id.clone(),
            rb: Arc::new(rb),
            mode: header.mode,
            vars,
            targets: Arc::new(targets),
            journal: Arc::new(Mutex::new(journal)),
            notifiers,
            scratch: super::action::Scratch::default(),
            secrets: super::engine::SecretOutputs::default(),
            estimates,
        };
        if let Err(e) = self.settle_in_flight(&run, options).await {
            return Err(redactor.error(release(e).await));
        }
        if let Err(e) = self.read_secrets_again(&run, options).await {
            return Err(redactor.error(release(e).await));
        }
        self.drive(run, lock, lease, options, true)
            .await
            .map_err(|e| redactor.error(e))
    }

    /// Decides every step that was in flight when the run stopped: counted as done by
    /// the operator (`--skip`), found done in live state by its action's probe, or run
    /// again (idempotent, or `--rerun`). A non-idempotent step nobody can vouch for stops
    /// the resume, asking.
    async fn settle_in_flight(&self, run: &Run, options: &RunOptions) -> Result<()> {
        let (in_flight, scope) = {
            let j = run.journal.lock().await;
            let state = j.state();
            (
                state.in_flight(),
                super::schedule::scope_of(run, state, None),
            )
        };
        for step_id in in_flight {
            let step = run
                .rb
                .step(step_id.as_str())
                .expect("journaled steps exist");
            self.stop_left_over(run, step).await?;
            let action = self.registry.get(&step.action).ok_or_else(|| {
                err!(
                    InvalidInput,
                    "step {step_id:?}: action {:?} is not in this build",
                    step.action
                )
            })?;
            let event = if options.skip.contains(step_id.as_str()) {
                EventKind::StepSkippedByOperator {
                    step: step.id.clone(),
                    why: "counted as done on resume (--skip); not run again".into(),
                }
            } else if options.rerun.contains(step_id.as_str()) {
                EventKind::Note {
                    step: Some(step.id.clone()),
                    text: "in flight when the run stopped: run again on resume (--rerun)".into(),
                }
            } else {
                let with = super::expr::resolve(&step.with, &scope, None)?;
                if action.idempotent(&with) {
                    continue;
                }
                let ctx = super::schedule::context(self, run, step, options);
                let Some(outputs) = action.probe(&ctx, &with).await? else {
                    return Err(err!(
                        Conflict,
                        "run {}: step {step_id:?} ({}, not idempotent) was running when the run stopped, and drkit cannot tell whether it took effect; look at the system, then resume it choosing: run it again, or count it as done",
                        run.id,
                        step.action
                    )
                    .with_hint(crate::Hint::RerunOrSkip {
                        run: run.id.to_string(),
                        step: step_id.to_string(),
                    }));
                };
                let mut j = run.journal.lock().await;
                j.append(EventKind::Note {
                    step: Some(step.id.clone()),
                    text: "found done in live state on resume".into(),
                })
                .await?;
                EventKind::StepSucceeded {
                    step: step.id.clone(),
                    outputs,
                }
            };
            run.journal.lock().await.append(event).await?;
        }
        Ok(())
    }
}

impl Engine {
    /// Runs again every finished step whose secret outputs a step still to run uses:
    /// they were never journaled, and this process has not seen them.
    async fn read_secrets_again(&self, run: &Run, options: &RunOptions) -> Result<()> {
        let (needed, scope) = {
            let j = run.journal.lock().await;
            let state = j.state();
            let used: std::collections::BTreeSet<String> = run
                .rb
                .steps
                .iter()
                .filter(|s| state.step(&s.id).is_none_or(|st| !st.state.finished()))
                .flat_map(|s| {
                    super::expr::references(&s.with)
                        .into_iter()
                        .filter_map(|r| {
                            r.strip_prefix("steps.")
                                .map(|r| r.split('.').next().unwrap_or_default().to_owned())
                        })
                })
                .collect();
            let needed: Vec<super::model::Step> = run
                .rb
                .steps
                .iter()
                .filter(|s| used.contains(&s.id))
                .filter(|s| {
                    state
                        .step(&s.id)
                        .is_some_and(|st| st.state == super::state::StepState::Succeeded)
                })
                .filter(|s| {
                    self.registry
                        .get(&s.action)
                        .is_some_and(|a| !a.secret_outputs().is_empty())
                })
                .cloned()
                .collect();
            (needed, super::schedule::scope_of(run, state, None))
        };
        for step in needed {
            let action = self
                .registry
                .get(&step.action)
                .expect("checked above")
                .clone();
            let with = super::expr::resolve(&step.with, &scope, None)?;
            let ctx = super::schedule::context(self, run, &step, options);
            let super::action::Outcome::Done(mut outputs) =
                action.run(&ctx, &with).await.map_err(|e| {
                    e.context(format!(
                        "step {:?}: reading its secret outputs again on resume",
                        step.id
                    ))
                })?
            else {
                return Err(err!(
                    Unavailable,
                    "step {:?}: its secret outputs could not be read again on resume; resume again later",
                    step.id
                ));
            };
            let mut j = run.journal.lock().await;
            run.secrets.keep(
                &step.id,
                action.secret_outputs(),
                &mut outputs,
                j.redactor(),
            );
            j.append(EventKind::Note {
                step: Some(step.id.clone()),
                text: "its secret outputs, never journaled, were read again for the steps still to run".into(),
            })
            .await?;
        }
        Ok(())
    }

    /// Stops what an in-flight step of a run whose process died left running (its
    /// journaled process groups on this machine), and says so in the journal; a group on
    /// another machine is noted, as drkit cannot see it from here.
    async fn stop_left_over(&self, run: &Run, step: &super::model::Step) -> Result<()> {
        let groups = {
            let j = run.journal.lock().await;
            j.state()
                .step(&step.id)
                .map(|s| s.processes.clone())
                .unwrap_or_default()
        };
        for group in groups {
            let text = if !group.here() {
                format!(
                    "its process group {} ran on {}; drkit cannot see it from here: make sure it is gone",
                    group.pid, group.host
                )
            } else if super::process::stop_left_over(&group, step.kill_grace()).await {
                format!(
                    "stopped process group {} it left running when the run's process died",
                    group.pid
                )
            } else {
                continue;
            };
            run.journal
                .lock()
                .await
                .append(EventKind::Note {
                    step: Some(step.id.clone()),
                    text,
                })
                .await?;
        }
        Ok(())
    }
}

fn refuse_ended(state: &RunSummary) -> Result<()> {
    if state.outcome.resumable() {
        Ok(())
    } else {
        Err(err!(
            Conflict,
            "run {} already ended ({}); start a new run instead",
            state.id,
            state.outcome
        ))
    }
}

/// A drill whose teardown ran (it was stopped, and removed its sandbox) is over: going
/// on would run its recovery against nothing.
fn refuse_torn_down(rb: &super::model::Runbook, state: &RunSummary) -> Result<()> {
    let torn_down = rb
        .steps
        .iter()
        .filter(|s| s.phase == Some(super::model::Phase::Teardown))
        .any(|s| state.state(&s.id).finished());
    if torn_down {
        return Err(err!(
            Conflict,
            "drill {} was stopped ({}) and its teardown ran: its sandbox is gone; start a new drill instead",
            state.id,
            state.reason.as_deref().unwrap_or("interrupted")
        ));
    }
    Ok(())
}

/// `--rerun` and `--skip` name steps that were in flight; `--approve` one that waits, was
/// asking, or has yet to run.
fn check_resume_flags(state: &RunSummary, options: &RunOptions) -> Result<()> {
    for (flag, ids) in [("--rerun", &options.rerun), ("--skip", &options.skip)] {
        for id in ids {
            let now = state.state(id);
            if now != StepState::Running {
                return Err(err!(
                    InvalidInput,
                    "{flag} {id}: step {id:?} is {now}, not in flight; {flag} is only for a step that was running when run {} stopped{}",
                    state.id,
                    in_flight_list(state)
                ));
            }
        }
    }
    for id in &options.approve {
        let now = state.state(id);
        // Running: it was asking at a terminal when the run was stopped.
        if !matches!(
            now,
            StepState::Waiting | StepState::Pending | StepState::Running
        ) {
            return Err(err!(
                InvalidInput,
                "--approve {id}: step {id:?} is {now}; only a step waiting for approval (asking when the run stopped, or yet to run) can be approved"
            ));
        }
    }
    Ok(())
}

fn in_flight_list(state: &RunSummary) -> String {
    let ids: Vec<String> = state.in_flight().iter().map(ToString::to_string).collect();
    if ids.is_empty() {
        " (none was)".to_owned()
    } else {
        format!(" (in flight: {})", ids.join(", "))
    }
}

fn describe(l: &Lease) -> String {
    match &l.process {
        Some(p) => format!("{} ({p})", l.holder),
        None => l.holder.clone(),
    }
}

/// Takes run `id`'s lock for a resume; see the module documentation. Returns the lease,
/// and the lease taken over by `--take-over`, if any.
async fn take_run_lock(
    lock: &Arc<dyn Lock>,
    id: &RunId,
    options: &RunOptions,
) -> Result<(Lease, Option<Lease>)> {
    let purpose = format!("run {id}");
    let mut request = LockRequest::new(purpose.clone(), options.lock_ttl);
    request.take_over_from = Some(purpose.clone());
    let mut taken_from = None;
    loop {
        let e = match lock.acquire(&request).await {
            Ok(lease) => return Ok((lease, taken_from)),
            Err(e) if e.kind() == ErrorKind::Conflict => e,
            Err(e) => return Err(e),
        };
        let Some(held) = lock.holder().await? else {
            return Err(e);
        };
        if held.purpose != purpose {
            return Err(e.context(format!(
                "run {id} cannot resume while another run holds its lock"
            )));
        }
        if held.expired() {
            // Released or run out between our attempt and this look: try again.
            continue;
        }
        if !options.take_over {
            let alive = match held.process.as_ref().map(crate::lock::ProcessId::liveness) {
                Some(Liveness::Alive) => "its process is alive on this machine".to_owned(),
                _ => "drkit cannot see its process from here".to_owned(),
            };
            return Err(err!(
                Conflict,
                "run {id} is still running: {} holds its lock until {} (token {}); {alive}. Wait for it to finish, or stop it (Ctrl-C or SIGTERM journal where it stopped). If its machine is dead, resume taking the lock over: drkit then waits until the lease runs out unrenewed, and takes over",
                describe(&held),
                held.expires,
                held.token
            )
            .with_hint(crate::Hint::TakeOver { run: id.to_string() }));
        }
        if held.process.as_ref().map(crate::lock::ProcessId::liveness) == Some(Liveness::Alive) {
            return Err(err!(
                Conflict,
                "--take-over: run {id} is running on this machine ({}); stop it instead",
                describe(&held)
            ));
        }
        // The operator says the holder is dead: wait out its lease, watching it.
        tracing::warn!(
            "--take-over: waiting until {} for the lease of {} to run out unrenewed",
            held.expires,
            describe(&held)
        );
        let wait = held
            .expires
            .duration_since(Timestamp::now())
            .unsigned_abs()
            .min(Duration::from_hours(24));
        tokio::select! {
            () = tokio::time::sleep(wait + Duration::from_millis(50)) => {}
            () = options.stop.stopped() => {
                return Err(err!(Cancelled, "--take-over of run {id}: stopped while waiting for the lease to run out"));
            }
        }
        match lock.holder().await? {
            Some(now) if now.token == held.token && now.expires > held.expires => {
                return Err(err!(
                    Conflict,
                    "--take-over: the holder of run {id}'s lock ({}) renewed it while drkit waited: it is alive; stop it instead",
                    describe(&now)
                ));
            }
            Some(now) if now.token != held.token => {
                return Err(err!(
                    Conflict,
                    "--take-over: run {id}'s lock changed hands while drkit waited (now {}); look at the run with `drkit runs show {id}`",
                    describe(&now)
                ));
            }
            _ => taken_from = Some(held),
        }
    }
}
