//! AWS adapters for drkit: the S3 [`BackupStore`](dr_core::store::BackupStore), RDS
//! (a [`DatabaseTarget`](dr_core::target::DatabaseTarget)) and Route 53 (a
//! [`TrafficRouter`](dr_core::traffic::TrafficRouter)).
//!
//! ```no_run
//! # async fn run() -> dr_core::Result<()> {
//! use dr_core::store::BackupStoreExt;
//! dr_aws::s3::register();
//! let store = dr_core::store::open_url("s3://my-backups/prod?region=eu-west-1")?;
//! let config = store.get_bytes("config").await?;
//! # Ok(()) }
//! ```

mod config;
mod error;
pub mod rds;
pub mod route53;
pub mod s3;

pub use config::{AwsConfig, StaticCredentials};
pub use rds::{DbInstance, DbSnapshot, Rds, RdsTarget};
pub use route53::{HealthCheck, HealthCheckSpec, Route53, Route53Router};
pub use s3::{S3Config, S3Store};

/// The store URL scheme this crate opens.
pub const S3_SCHEME: &str = "s3";
