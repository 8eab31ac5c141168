//! Runbooks as code: a runbook (YAML, or built in Rust) is planned — every problem found
//! before anything runs, then live state read to say what would change — and run by the
//! [`Engine`]: steps in dependency order, each event journaled in the repository before
//! the effect it announces, under a single-flight lock, resumable on another machine.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> dr_core::Result<()> {
//! use std::sync::Arc;
//! use dr_core::runbook::{parse_yaml, Engine, Registry, RunOptions};
//! let yaml = "version: 1\nname: pause\nsteps:\n  - id: nap\n    action: wait\n    with: { for: 10ms }\n";
//! let (rb, map) = parse_yaml(yaml, "pause.yaml")?;
//! let mut registry = Registry::new();
//! dr_core::runbook::actions::register(&mut registry);
//! let store = dr_core::store::MemoryStore::new();
//! let engine = Engine::new(registry, store, Arc::new(|name: &str| {
//!     Ok(Arc::new(dr_core::fake::MemoryLock::new(name)) as Arc<dyn dr_core::lock::Lock>)
//! }));
//! let run = engine.run(&rb, &map, &RunOptions::default()).await?;
//! assert_eq!(run.outcome, dr_core::runbook::RunOutcome::Succeeded);
//! # Ok(()) }
//! ```

pub mod action;
pub mod actions;
mod compensate;
pub mod drill;
mod engine;
pub mod evidence;
pub mod expr;
mod http;
mod include;
pub mod journal;
mod keyed;
mod model;
pub mod notify;
mod orchestrator;
mod parse;
mod plan;
mod process;
pub mod progress;
pub mod redact;
pub mod report;
mod resume;
mod schedule;
pub mod state;
mod step;
mod typed;
mod validate;

pub use action::{
    Action, ActionSpec, Approvals, Field, Outcome, Provides, Registry, Scratch, StepContext,
    Target, TargetKind,
};
pub use engine::{Approver, Engine, LockFactory, RunOptions, StopHandle};
pub use include::{expand_uses, read_file};
pub use journal::Journals;
pub use keyed::{Keyed, RunKey};
pub use model::{
    Call, Canary, Drill, Guard, Mode, Objectives, OnFailure, Phase, Retry, Runbook, Severity, Step,
    TargetSpec, VarSpec, VarType,
};
pub use orchestrator::Orchestrator;
pub use parse::{parse_yaml, report as report_problems, At, Diagnostic, SourceMap};
pub use plan::{Plan, PlannedStep};
pub use redact::Redactor;
pub use state::{ObjectiveCheck, RunId, RunOutcome, RunSummary, StepId, StepState, StepSummary};
pub use typed::{
    read_params, schema_of, spec_of, type_name, Beside, ParamError, Typed, TypedAction, TypedKind,
    TypedTargetKind,
};
pub use validate::{check_file, find_cycle, is_unknown, validate, Check};
