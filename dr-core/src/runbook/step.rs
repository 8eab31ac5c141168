//! One step's attempts: each journaled before it starts and after it ends, bounded by the
//! step's timeout, retried when its error is retryable. A stopped attempt (its timeout,
//! or the run stopping) is told through its context's cancellation token, and given its
//! kill grace to stop what it started before the step is declared failed, retried or
//! compensated.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::action::{Action, Outcome, StepContext};
use super::expr;
use super::journal::{EventKind, Journal};
use super::model::Step;
use crate::{err, ErrorKind, Result};

/// How a step task ended (a failure is its `Err`).
pub(super) enum StepEnd {
    /// Succeeded.
    Done,
    /// Waits for something outside the run.
    Waiting(String),
}

/// What one attempt came to.
pub(super) enum Finished {
    /// Done, with outputs.
    Done(Map<String, Value>),
    /// Waits for something outside the run.
    Waiting(String),
}

pub(super) struct StepTask {
    pub(super) step: Step,
    pub(super) action: Arc<dyn Action>,
    pub(super) journal: Arc<Mutex<Journal>>,
    /// Where its secret outputs are kept (never in the journal).
    pub(super) secrets: super::engine::SecretOutputs,
    pub(super) scope: Value,
    pub(super) ctx: StepContext,
}

impl StepTask {
    /// Runs the step's attempts. `Cancelled` and `LockLost` errors are not journaled: the
    /// scheduler says why the run stopped.
    pub(super) async fn run(self) -> Result<StepEnd> {
        let step = &self.step;
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
            let ctx = StepContext {
                attempt,
                cancel: self.ctx.cancel.child_token(),
                ..self.ctx.clone()
            };
            let null = |_: &str| Value::Null;
            let missing: Option<&dyn Fn(&str) -> Value> =
                if step.always { Some(&null) } else { None };
            let result = match expr::resolve(&step.with, &self.scope, missing) {
                Ok(with) => until_done(self.action.as_ref(), &ctx, &with, step.timeout).await,
                Err(e) => Err(e),
            };
            let e = match result {
                Ok(Finished::Done(mut outputs)) => {
                    let mut journal = self.journal.lock().await;
                    self.secrets.keep(
                        &step.id,
                        self.action.secret_outputs(),
                        &mut outputs,
                        journal.redactor(),
                    );
                    journal
                        .append(EventKind::StepSucceeded {
                            step: step.id.clone(),
                            outputs,
                        })
                        .await?;
                    return Ok(StepEnd::Done);
                }
                Ok(Finished::Waiting(why)) => {
                    self.journal
                        .lock()
                        .await
                        .append(EventKind::StepWaiting {
                            step: step.id.clone(),
                            why: why.clone(),
                        })
                        .await?;
                    return Ok(StepEnd::Waiting(why));
                }
                Err(e) if matches!(e.kind(), ErrorKind::Cancelled | ErrorKind::LockLost) => {
                    return Err(e)
                }
                Err(e) => e
                    .without_prefix(&format!("step {:?}: ", step.id))
                    .context(format!("step {:?} ({})", step.id, step.action)),
            };
            // A timed-out attempt may have had its effect: only an idempotent step may
            // simply run again.
            let unknown_outcome =
                e.kind() == ErrorKind::Timeout && !self.action.idempotent(&step.with);
            let will_retry = attempt < attempts && e.is_retryable() && !unknown_outcome;
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
            if unknown_outcome && attempt < attempts {
                self.journal
                    .lock()
                    .await
                    .append(EventKind::Note {
                        step: Some(step.id.clone()),
                        text: "not retried: the step is not idempotent and its attempt timed \
                               out, so it may have had its effect (an exec step that is safe \
                               to run again says `idempotent: true`)"
                            .to_owned(),
                    })
                    .await?;
            }
            if !will_retry {
                return Err(e);
            }
            let delay = step
                .retry
                .as_ref()
                .map_or(Duration::ZERO, |r| r.delay(attempt + 1));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.ctx.cancel.cancelled() => return Err(self.ctx.cancelled()),
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// Calls the action until it is done (polling `RetryAfter`), bounded by `timeout`. When
/// the timeout passes or `ctx.cancel` fires, the attempt is told to stop (its token is
/// cancelled) and waited for, up to its kill grace and a little more, so the processes
/// it started are gone before this returns.
pub(super) async fn until_done(
    action: &dyn Action,
    ctx: &StepContext,
    with: &Value,
    timeout: Option<Duration>,
) -> Result<Finished> {
    let work = async {
        loop {
            match action.run(ctx, with).await? {
                Outcome::Done(o) => return Ok(Finished::Done(o)),
                Outcome::Waiting(why) => return Ok(Finished::Waiting(why)),
                Outcome::RetryAfter(d) => tokio::select! {
                    () = tokio::time::sleep(d) => {}
                    () = ctx.cancel.cancelled() => return Err(ctx.cancelled()),
                },
            }
        }
    };
    tokio::pin!(work);
    let timed_out = tokio::select! {
        r = &mut work => return r,
        () = sleep_for(timeout) => true,
        () = ctx.cancel.cancelled() => false,
    };
    ctx.cancel.cancel();
    let _ = tokio::time::timeout(ctx.kill_grace + super::schedule::WIND_DOWN, &mut work).await;
    if timed_out {
        Err(err!(
            Timeout,
            "step {:?}: {} did not finish within {}",
            ctx.step,
            action.spec().name,
            crate::duration::format(timeout.unwrap_or_default())
        ))
    } else {
        Err(ctx.cancelled())
    }
}

async fn sleep_for(timeout: Option<Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending().await,
    }
}
