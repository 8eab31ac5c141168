//! AWS adapters for drkit: the S3 `BackupStore`, the RDS `DatabaseTarget` and the Route 53
//! `TrafficRouter`. This crate is being built; today it only names the scheme it will serve.

/// The store URL scheme this crate opens once the S3 store lands.
pub const S3_SCHEME: &str = "s3";
