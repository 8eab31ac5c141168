//! Logical backups: the tables' rows as parallel COPY streams from one exported snapshot
//! and the rest through `pg_dump` (or, in the older format, one `pg_dump` stream), with
//! per-table row counts and the roles the objects need; restores straight from the
//! repository (new database, in place, or beside and swapped); verification by restoring
//! into a scratch database.

pub(crate) mod archive;
pub(crate) mod backup;
pub(crate) mod load;
pub(crate) mod metadata;
pub(crate) mod restore;
pub(crate) mod roles;
pub(crate) mod rows;
pub(crate) mod streams;
pub(crate) mod verify;
