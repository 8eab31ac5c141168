//! The domain of drkit: object stores, the deduplicated, compressed and encrypted
//! repository that lives in them, and the one error type every crate returns.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> dr_core::Result<()> {
//! use dr_core::repo::{InitOptions, Repository, SnapshotKind};
//! let store = dr_core::store::open_url("memory://doc")?;
//! let repo = Repository::init(store, &InitOptions::unencrypted()).await?;
//! let mut writer = repo.begin_snapshot(SnapshotKind::new("example"), "stdin");
//! writer.add_file("data.bin", &b"hello, repository"[..]).await?;
//! let snapshot = writer.commit(serde_json::Value::Null).await?;
//! let bytes = repo.read_file_to_vec(&snapshot, "data.bin").await?;
//! assert_eq!(bytes, b"hello, repository");
//! # Ok(()) }
//! ```

pub mod clock;
pub mod duration;
pub mod duration_secs;
pub mod error;
pub mod fake;
pub mod files;
pub mod lock;
pub mod nearest;
pub mod progress;
pub mod redis;
pub mod repo;
pub mod runbook;
pub mod store;
pub mod target;
#[cfg(feature = "testing")]
pub mod testing;
pub mod traffic;
pub mod wait;

pub use error::{Error, ErrorKind, Hint, Result};
