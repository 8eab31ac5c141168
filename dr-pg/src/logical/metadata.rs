//! What a logical snapshot records about its source.

use dr_core::Result;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connect::{ident, ConnInfo};
use crate::error::query_error;

/// One table's exact row count at the dump's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableCount {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Rows, or `None` when counting was skipped for this table.
    pub rows: Option<i64>,
    /// On-disk size in bytes (indexes and TOAST included).
    pub bytes: i64,
    /// The columns its COPY streams hold, in order (streams format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Whether its streams are in COPY's binary format (every column of a built-in
    /// type) rather than text.
    #[serde(default)]
    pub binary: bool,
    /// Bytes of COPY data read (streams format).
    #[serde(default)]
    pub copied_bytes: u64,
    /// Seconds spent reading it, summed over its ranges (streams format).
    #[serde(default)]
    pub secs: f64,
}

/// How a logical snapshot holds its data.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum LogicalFormat {
    /// The tables' rows as parallel `COPY` streams read from one exported snapshot
    /// (large tables split into page ranges), the rest of the database (schema, large
    /// objects, sequences) as a `pg_dump -Fc` archive without those rows.
    #[default]
    Streams,
    /// One `pg_dump -Fc` archive of everything (`database.dump`), the format of
    /// snapshots taken before streams existed.
    PgDump,
}

impl LogicalFormat {
    fn recorded_before_streams() -> Self {
        Self::PgDump
    }
}

impl std::str::FromStr for LogicalFormat {
    type Err = dr_core::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "streams" => Ok(Self::Streams),
            "pg-dump" => Ok(Self::PgDump),
            other => Err(dr_core::err!(
                InvalidInput,
                "format {other:?} is not one of streams, pg-dump"
            )),
        }
    }
}

/// One file of COPY data in a streams snapshot: table parts, one after another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// The file's name in the snapshot.
    pub file: String,
    /// Its parts, in order.
    pub parts: Vec<DataPart>,
}

/// A table, or a range of its pages, as one complete COPY stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPart {
    /// Index into the metadata's `tables`.
    pub table: usize,
    /// First heap page of the range, when the table was split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_page: Option<u32>,
    /// Page after the range's last; `None` for the last range (to the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_page: Option<u32>,
    /// Bytes of the stream.
    pub bytes: u64,
    /// Rows in it.
    pub rows: i64,
}

/// Source metadata of a `pg-logical` snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogicalMetadata {
    /// Database name.
    pub database: String,
    /// Where it was (no password).
    pub server: String,
    /// `server_version`, e.g. `15.18 (Debian ...)`.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: i32,
    /// `pg_database_size` at start.
    pub database_size: i64,
    /// WAL position at start (`pg_current_wal_lsn`, or the replay LSN on a standby).
    pub start_lsn: Option<String>,
    /// Whether the source was a standby.
    pub in_recovery: bool,
    /// Whether row counts come from the same MVCC snapshot as the dump.
    pub consistent_counts: bool,
    /// Per-table counts.
    pub tables: Vec<TableCount>,
    /// `pg_dump --version`.
    pub pg_dump_version: String,
    /// Folder the client programs came from, and how it was found.
    pub tools: String,
    /// Whether roles and tablespaces (`pg_dumpall --globals-only`) were saved, or why not.
    pub globals: String,
    /// The roles the objects need (empty in snapshots taken before this was recorded).
    #[serde(default)]
    pub roles: crate::logical::roles::NeededRoles,
    /// How the data is held (`pg-dump` in snapshots taken before streams existed).
    #[serde(default = "LogicalFormat::recorded_before_streams")]
    pub format: LogicalFormat,
    /// The COPY data files (streams format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataFile>,
    /// Sessions that read the tables (streams format).
    #[serde(default)]
    pub jobs: usize,
}

pub(crate) struct ServerFacts {
    pub version: String,
    pub version_num: i32,
    pub size: i64,
    pub lsn: Option<String>,
    pub in_recovery: bool,
}

pub(crate) async fn server_facts(client: &Client, conn: &ConnInfo) -> Result<ServerFacts> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, \
             pg_database_size(current_database()), pg_is_in_recovery(), \
             (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text",
            &[],
        )
        .await
        .map_err(|e| query_error(conn, "reading server facts", e))?;
    Ok(ServerFacts {
        version: row.get(0),
        version_num: row.get(1),
        size: row.get(2),
        in_recovery: row.get(3),
        lsn: row.get(4),
    })
}

/// User tables that pg_dump writes data for: ordinary tables outside system schemas,
/// not owned by an extension.
pub(crate) const USER_TABLES: &str =
    "SELECT n.nspname::text, c.relname::text, pg_total_relation_size(c.oid) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                       AND d.objid = c.oid AND d.deptype = 'e') \
     ORDER BY 1, 2";

/// Exact counts for every user table, skipping those larger than `max_bytes`.
pub(crate) async fn count_rows(
    client: &Client,
    conn: &ConnInfo,
    max_bytes: Option<u64>,
) -> Result<Vec<TableCount>> {
    let rows = client
        .query(USER_TABLES, &[])
        .await
        .map_err(|e| query_error(conn, "listing tables", e))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (schema, table, bytes): (String, String, i64) = (row.get(0), row.get(1), row.get(2));
        let skip = max_bytes.is_some_and(|m| bytes as u64 > m);
        let count = if skip {
            None
        } else {
            let sql = format!("SELECT count(*) FROM {}.{}", ident(&schema), ident(&table));
            let r = client
                .query_one(&sql, &[])
                .await
                .map_err(|e| query_error(conn, &format!("counting rows of {schema}.{table}"), e))?;
            Some(r.get::<_, i64>(0))
        };
        out.push(TableCount {
            schema,
            table,
            rows: count,
            bytes,
            columns: Vec::new(),
            binary: false,
            copied_bytes: 0,
            secs: 0.0,
        });
    }
    Ok(out)
}
