//! Postgres for drkit: logical backups streamed from `pg_dump` into a repository,
//! restores through `pg_restore` (new database, in place, or beside and swapped),
//! verification by restoring into a scratch database and checking it; physical base
//! backups, the WAL archive PostgreSQL fills through `drkit wal-push`, point-in-time
//! recovery, prune with WAL, and the status of each source against its objectives.
//!
//! ```no_run
//! # async fn run() -> dr_core::Result<()> {
//! use dr_core::repo::{OpenOptions, Repository};
//! use dr_pg::{BackupOptions, ConnInfo};
//! let repo = Repository::open(dr_core::store::open_url("file:///var/backups/drkit")?, &OpenOptions::from_env()).await?;
//! let db = ConnInfo::parse("postgres://app@db.internal/shop")?;
//! let snapshot = dr_pg::backup(&repo, &db, &BackupOptions::default(), std::sync::Arc::new(dr_core::progress::NoProgress)).await?;
//! println!("{} stored {} bytes", snapshot.id, snapshot.stats.new_bytes);
//! # Ok(()) }
//! ```

mod cluster;
mod connect;
pub mod drill;
mod error;
mod logical;
mod physical;
mod process;
pub mod runbook;
pub mod sql;
mod status;
mod target;
mod tools;

pub use connect::tls;
pub use physical::wal;

pub use cluster::{ClusterOptions, TempCluster};
pub use connect::ConnInfo;
pub use logical::archive::OffsetIndex;
pub use logical::backup::{
    backup, BackupOptions, RowCounts, DEFAULT_SPLIT_BYTES, DUMP_FILE, GLOBALS_FILE, KIND_LOGICAL,
};
pub use logical::load::TableLoad;
pub use logical::metadata::{DataFile, DataPart, LogicalFormat, LogicalMetadata, TableCount};
pub use logical::restore::{dump_for, restore, RestoreMode, RestoreOptions, RestoreReport};
pub use logical::roles::NeededRoles;
pub use logical::streams::SCHEMA_FILE;
pub use logical::verify::{
    check_server, verify, verify_by_restore, AmcheckResult, ServerChecks, SqlCheck, TableCheck,
    VerifyOptions, VerifyOutcome, VerifyRestoreReport,
};
pub use physical::basebackup::{
    basebackup, prune, prune_under, BaseMetadata, PruneOutcome, Tablespace, BASE_FILE, KIND_BASE,
};
pub use physical::copy::CopyOptions;
pub use physical::copy::{copy, copy_to, Copied, CopyOutcome, OpenStore};
pub use physical::pitr::{
    drkit_binary, pitr, plan, restore_command, wal_verify, window, BaseReplay, PitrOptions,
    PitrReport, Plan, TimelineSegments, WalVerifyReport, Window,
};
pub use status::{status, Objective, Objectives, SourceStatus, StatusReport};
pub use target::PgTarget;
pub use tls::{RootCerts, SslMode, TlsSettings};
pub use tools::PgTools;
