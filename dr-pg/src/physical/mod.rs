//! Physical backups: base backups through `pg_basebackup`, the WAL archive PostgreSQL
//! fills through `drkit wal-push`, point-in-time recovery, and copies of both.

pub(crate) mod basebackup;
pub(crate) mod copy;
pub(crate) mod pitr;
pub(crate) mod tartap;
pub mod wal;
