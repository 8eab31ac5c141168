//! drkit: disaster recovery as code.
//!
//! This facade re-exports the workspace crates so a Rust service needs one dependency:
//!
//! ```no_run
//! # async fn run() -> drkit::core::Result<()> {
//! use drkit::core::repo::{Repository, OpenOptions};
//! let store = drkit::core::store::open_url("file:///var/backups/drkit")?;
//! let repo = Repository::open(store, &OpenOptions::from_env()).await?;
//! for snap in repo.snapshots().await? {
//!     println!("{} {}", snap.id, snap.source);
//! }
//! # Ok(()) }
//! ```

pub use dr_aws as aws;
pub use dr_core as core;
pub use dr_k8s as k8s;
pub use dr_pg as pg;
