//! drkit: disaster recovery as code.
//!
//! This facade is the composition root: it re-exports the workspace crates so a Rust
//! service needs one dependency, opens the store URL of every adapter it links
//! (`file://`, `memory://`, `s3://`), and runs the operations that need more than one
//! adapter (a copy to a repository at another URL). The CLI and the Python bindings are
//! built on it; nothing registers itself in a global.
//!
//! ```no_run
//! # async fn run() -> drkit::core::Result<()> {
//! use drkit::core::repo::OpenOptions;
//! let repo = drkit::open_repository("s3://acme-backups/shop?region=eu-west-1", &OpenOptions::from_env()).await?;
//! for snap in repo.snapshots().await? {
//!     println!("{} {}", snap.id, snap.source);
//! }
//! # Ok(()) }
//! ```

mod copy;
pub mod demo;
pub mod drill;
mod runbooks;
mod stores;

pub use dr_aws as aws;
pub use dr_core as core;
pub use dr_k8s as k8s;
pub use dr_pg as pg;

pub use copy::copy;
pub use dr_k8s::runbook::open_lock;
pub use dr_pg::CopyOutcome;
pub use runbooks::{engine, engine_with_lock, registry};
pub use stores::{init_repository, open_repository, open_store};
