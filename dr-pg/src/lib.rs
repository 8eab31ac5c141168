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

mod archive;
mod backup;
mod basebackup;
mod cluster;
mod conn;
mod copy;
mod error;
mod metadata;
mod pitr;
mod process;
mod restore;
mod status;
mod tartap;
pub mod tls;
mod tools;
mod verify;
pub mod wal;

pub use archive::OffsetIndex;
pub use backup::{backup, BackupOptions, RowCounts, DUMP_FILE, GLOBALS_FILE, KIND_LOGICAL};
pub use basebackup::{
    basebackup, prune, BaseMetadata, PruneOutcome, Tablespace, BASE_FILE, KIND_BASE,
};
pub use cluster::{ClusterOptions, TempCluster};
pub use conn::ConnInfo;
pub use copy::{copy, Copied};
pub use metadata::{LogicalMetadata, TableCount};
pub use pitr::{
    pitr, plan, restore_command, window, PitrOptions, PitrReport, Plan, RecoveryTarget, Window,
};
pub use restore::{restore, RestoreMode, RestoreOptions, RestoreReport};
pub use status::{status, Objective, Objectives, SourceStatus, StatusReport};
pub use tls::{RootCerts, SslMode, TlsSettings};
pub use tools::PgTools;
pub use verify::{
    check_server, verify_by_restore, AmcheckResult, ServerChecks, SqlCheck, TableCheck,
    VerifyOptions, VerifyRestoreReport,
};
