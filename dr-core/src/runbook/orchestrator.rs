//! The fourth trait of drkit: what runs runbooks. [`Engine`] is the in-process one; the
//! CLI and Python drive it through this trait's methods.

use async_trait::async_trait;

use super::engine::{Engine, RunOptions};
use super::model::Runbook;
use super::parse::SourceMap;
use super::plan::Plan;
use super::state::RunSummary;
use crate::Result;

/// Plans, runs, resumes and reports runbooks.
#[async_trait]
pub trait Orchestrator: Send + Sync {
    /// Every problem at once, then what each step would change; changes nothing.
    async fn plan(&self, runbook: &Runbook, map: &SourceMap, options: &RunOptions) -> Result<Plan>;
    /// A new run, journaled, under the runbook's lock.
    async fn run(
        &self,
        runbook: &Runbook,
        map: &SourceMap,
        options: &RunOptions,
    ) -> Result<RunSummary>;
    /// Continues run `id` from its journal.
    async fn resume(&self, id: &str, options: &RunOptions) -> Result<RunSummary>;
    /// Every run, oldest first (without events).
    async fn list(&self) -> Result<Vec<RunSummary>>;
    /// One run's timeline.
    async fn show(&self, id: &str) -> Result<RunSummary>;
}

#[async_trait]
impl Orchestrator for Engine {
    async fn plan(&self, runbook: &Runbook, map: &SourceMap, options: &RunOptions) -> Result<Plan> {
        Engine::plan(self, runbook, map, options).await
    }

    async fn run(
        &self,
        runbook: &Runbook,
        map: &SourceMap,
        options: &RunOptions,
    ) -> Result<RunSummary> {
        Engine::run(self, runbook, map, options).await
    }

    async fn resume(&self, id: &str, options: &RunOptions) -> Result<RunSummary> {
        Engine::resume(self, id, options).await
    }

    async fn list(&self) -> Result<Vec<RunSummary>> {
        Engine::list(self).await
    }

    async fn show(&self, id: &str) -> Result<RunSummary> {
        Engine::show(self, id).await
    }
}
