//! The repository and Postgres commands.

mod aws;
mod backup;
mod copy;
mod drill;
pub mod files;
mod k8s;
mod pitr;
mod prune;
pub mod redis;
mod repo;
mod restore;
mod runbook;
mod sql;
mod store;
mod verify;

pub use aws::{dns, rds, s3, secrets};
pub use backup::{backup, snapshots};
pub use copy::copy;
pub use drill::{drill, evidence, report};
pub use k8s::k8s;
pub use pitr::{basebackup, pitr, wal_fetch, wal_push, wal_verify};
pub use prune::{prune, status};
pub use repo::{add_key, init, keys, remove_key};
pub use restore::restore;
pub use runbook::{plan, run_runbook, runbook, runs};
pub(crate) use runbook::{run_setup, step_display};
pub use sql::sql;
pub use store::store;
pub use verify::verify;

use dr_core::repo::{OpenOptions, Repository};
use dr_core::{err, Result};

use crate::args::Cli;

/// The repository URL from --repo or DRKIT_REPO.
pub fn repo_url(cli: &Cli) -> Result<&str> {
    cli.repo
        .as_deref()
        .ok_or_else(|| err!(InvalidInput, "no repository given: pass --repo URL or set DRKIT_REPO (e.g. file:///var/backups/drkit)"))
}

/// Opens the repository the command line names.
pub async fn open_repo(cli: &Cli) -> Result<Repository> {
    let store = drkit::open_store(repo_url(cli)?)?;
    let mut options = OpenOptions::from_env();
    options.secret = dr_core::repo::Secret::from_env()?;
    Repository::open(store, &options).await
}
