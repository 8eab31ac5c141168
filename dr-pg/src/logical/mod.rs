//! Logical backups: `pg_dump` streamed into the repository with per-table row counts and
//! the roles the objects need, restores through `pg_restore` (new database, in place, or
//! beside and swapped), and verification by restoring into a scratch database.

pub(crate) mod archive;
pub(crate) mod backup;
pub(crate) mod metadata;
pub(crate) mod restore;
pub(crate) mod roles;
pub(crate) mod verify;
