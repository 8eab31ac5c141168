//! `plan`: everything checked, then live state read, and per step what would change —
//! with no side effect.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::action::StepContext;
use super::engine::{Engine, RunOptions};
use super::model::Runbook;
use super::parse::SourceMap;
use super::{expr, validate};
use crate::Result;

/// What one step would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// The step.
    pub id: String,
    /// Its action.
    pub action: String,
    /// What it waits for.
    pub needs: Vec<String>,
    /// Each change it would make, in words, read from live state; values only known after
    /// an earlier step read "known after <step>".
    pub changes: Vec<String>,
    /// Conditions, guards, compensation, retries.
    pub notes: Vec<String>,
}

/// What a run would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The runbook.
    pub runbook: String,
    /// Its lock.
    pub lock: String,
    /// Its steps, in file order.
    pub steps: Vec<PlannedStep>,
}

impl Engine {
    /// Checks `rb`, reads live state through its targets, and says what each step would
    /// change; nothing is changed.
    pub async fn plan(&self, rb: &Runbook, map: &SourceMap, options: &RunOptions) -> Result<Plan> {
        self.check(rb, map)?;
        Self::check_flags(rb, options, false)?;
        // The lock's name is checked as a run would take it (nothing is taken).
        (self.locks)(rb.lock_name())?;
        let (vars, _) = Self::resolve_vars(rb, &options.vars, None)?;
        let redactor = Self::redactor(rb, &vars);
        let targets = std::sync::Arc::new(
            self.build_targets(rb, &vars)
                .await
                .map_err(|e| redactor.error(e))?,
        );
        let mut scope = validate::plan_scope(rb);
        // Secret values never reach a plan.
        let shown: serde_json::Map<String, Value> = vars
            .iter()
            .map(|(k, v)| {
                let secret = rb.vars.get(k).is_some_and(|s| s.secret);
                (
                    k.clone(),
                    if secret {
                        Value::String("<secret>".into())
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        scope["vars"] = Value::Object(shown);
        let placeholder = |p: &str| {
            let id = p
                .strip_prefix("steps.")
                .and_then(|r| r.split('.').next())
                .unwrap_or("an earlier step");
            validate::known_after(id)
        };
        let mut steps = Vec::new();
        // Every step that would be refused is named, not just the first.
        let mut refused: Vec<crate::Error> = Vec::new();
        for step in &rb.steps {
            let action = self.registry().get(&step.action).expect("checked");
            let with = expr::resolve(&step.with, &scope, Some(&placeholder))?;
            let ctx = StepContext {
                targets: targets.clone(),
                repo: self.repository().cloned(),
                ..StepContext::new("<plan>", &step.id, options.mode)
            };
            // A step whose plan fails would fail the run the same way: refused, unless the
            // step lets the run go on.
            let changes: Vec<String> = match action.plan(&ctx, &with).await {
                Ok(changes) => changes.iter().map(|c| redactor.str(c)).collect(),
                Err(e)
                    if step.on_failure == super::model::OnFailure::Continue
                        || step.continue_on_error =>
                {
                    vec![format!(
                        "would fail now ({}); the run goes on ({})",
                        redactor.str(&e.full_message()),
                        if step.continue_on_error {
                            "continue_on_error"
                        } else {
                            "on_failure: continue"
                        }
                    )]
                }
                Err(e) => {
                    refused.push(redactor.error(e.context(format!("planning step {:?}", step.id))));
                    continue;
                }
            };
            let notes = step_notes(step);
            steps.push(PlannedStep {
                id: step.id.clone(),
                action: step.action.clone(),
                needs: step.needs.clone(),
                changes,
                notes,
            });
        }
        refuse(refused)?;
        Ok(Plan {
            runbook: rb.name.clone(),
            lock: rb.lock_name().to_owned(),
            steps,
        })
    }
}

/// What a plan says of a step beside its changes: conditions, guards, retries, undo.
fn step_notes(step: &super::model::Step) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(c) = &step.when {
        notes.push(format!("only if {c}"));
    }
    if let Some(g) = &step.guard {
        notes.push(format!(
            "in {:?} mode only after {:?} succeeds",
            g.mode, g.step
        ));
    }
    if let Some(r) = &step.retry {
        notes.push(format!("up to {} attempts", r.attempts));
    }
    if let Some(c) = &step.compensate {
        notes.push(format!(
            "undone by {} if a later step compensates",
            c.action
        ));
    }
    if step.always {
        notes.push("runs whatever happened before".into());
    }
    notes
}

/// The steps whose plans failed, as one error (the error itself when there is one).
fn refuse(mut refused: Vec<crate::Error>) -> Result<()> {
    if refused.len() > 1 {
        let kind = refused[0].kind();
        let all: Vec<String> = refused.iter().map(crate::Error::full_message).collect();
        return Err(crate::Error::new(
            kind,
            format!(
                "{} steps would fail:\n  {}",
                refused.len(),
                all.join("\n  ")
            ),
        ));
    }
    match refused.pop() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
