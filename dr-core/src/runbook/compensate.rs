//! Compensation: when a step with `on_failure: compensate` fails, the steps that
//! succeeded are undone, newest first — each by its own `compensate:` call, else by its
//! action's undo of what it did.

use super::engine::{Engine, Run};
use super::expr;
use super::journal::EventKind;
use super::state::StepState;
use super::step::until_done;
use crate::Result;

impl Engine {
    /// Runs the compensations of the finished steps, newest first; true when all worked.
    pub(super) async fn compensate(&self, run: &Run) -> Result<bool> {
        let state = run.journal.lock().await.state().clone_steps();
        let scope = super::schedule::scope_of(run, &state, Some("failed"));
        let mut ok = true;
        for id in state.finished_order.iter().rev() {
            let step = run.rb.step(id.as_str()).expect("a known step");
            let call = if let Some(c) = &step.compensate {
                c.clone()
            } else {
                let Some(done) = state.step(id.as_str()) else {
                    continue;
                };
                if done.state != StepState::Succeeded {
                    continue;
                }
                let undo = self.registry.get(&step.action).and_then(|a| {
                    let with = expr::resolve(&step.with, &scope, None).ok()?;
                    a.undo(&with, &done.outputs)
                });
                let Some(c) = undo else { continue };
                c
            };
            let Some(action) = self.registry.get(&call.action) else {
                continue;
            };
            Self::journal_event(
                run,
                EventKind::CompensationStarted {
                    step: id.to_string(),
                },
            )
            .await?;
            let ctx =
                super::schedule::context(self, run, step, &super::engine::RunOptions::default());
            let result = match expr::resolve(&call.with, &scope, None) {
                Ok(with) => until_done(action.as_ref(), &ctx, &with, step.timeout).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => {
                    Self::journal_event(
                        run,
                        EventKind::CompensationDone {
                            step: id.to_string(),
                        },
                    )
                    .await?;
                }
                Err(e) => {
                    ok = false;
                    Self::journal_event(
                        run,
                        EventKind::CompensationFailed {
                            step: id.to_string(),
                            message: e.full_message(),
                        },
                    )
                    .await?;
                }
            }
        }
        Ok(ok)
    }

    pub(super) async fn journal_event(run: &Run, kind: EventKind) -> Result<()> {
        run.journal.lock().await.append(kind).await.map(|_| ())
    }
}
