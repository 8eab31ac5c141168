//! AWS adapters for drkit: the S3 [`BackupStore`](dr_core::store::BackupStore), RDS
//! (a [`DatabaseTarget`](dr_core::target::DatabaseTarget)) and Route 53 (a
//! [`TrafficRouter`](dr_core::traffic::TrafficRouter)).
//!
//! ```no_run
//! # async fn run() -> dr_core::Result<()> {
//! use dr_core::store::BackupStoreExt;
//! let store = dr_aws::S3Store::from_url("s3://my-backups/prod?region=eu-west-1")?;
//! let config = store.get_bytes("config").await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
pub mod rds;
pub mod route53;
pub mod runbook;
pub mod s3;
pub mod secrets;
pub mod zone;

pub use config::{AwsConfig, AwsOverrides, StaticCredentials};
pub use rds::{
    DbInstance, DbSnapshot, PitrRequest, Rds, RdsTarget, ReplicaRequest, SnapshotRestoreRequest,
    Started,
};
pub use route53::{HealthCheck, HealthCheckSpec, Route53, Route53Router};
pub use s3::{S3Config, S3Store};

/// The store URL scheme this crate opens.
pub const S3_SCHEME: &str = "s3";
