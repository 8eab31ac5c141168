//! SQL against a live server, as runbook steps and the CLI run it: wait until it answers,
//! run statements (in one transaction where Postgres allows it), read rows as JSON.

use std::time::{Duration, Instant};

use dr_core::{err, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ConnInfo;

/// How long a server took to answer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Ready {
    /// Seconds until it answered a query.
    pub seconds: f64,
}

/// Waits until `url` accepts connections and answers `SELECT 1`, trying every half
/// second for at most `limit`.
pub async fn ready(url: &ConnInfo, limit: Duration) -> Result<Ready> {
    let started = Instant::now();
    loop {
        match url.connect().await {
            Ok(c) if c.simple_query("SELECT 1").await.is_ok() => {
                return Ok(Ready {
                    seconds: started.elapsed().as_secs_f64(),
                })
            }
            // A refused password or a missing database does not get better by waiting.
            Err(e)
                if matches!(
                    e.kind(),
                    dr_core::ErrorKind::PermissionDenied | dr_core::ErrorKind::NotFound
                ) =>
            {
                return Err(e)
            }
            Err(e) if started.elapsed() >= limit => {
                return Err(e.context(format!(
                    "{url} not ready within {}",
                    dr_core::duration::format(limit)
                )))
            }
            Ok(_) | Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What [`execute`] runs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecOptions {
    /// Statements, in order.
    pub sql: Vec<String>,
    /// One transaction for all (`None`: yes, unless a statement cannot run in one).
    #[serde(default)]
    pub transaction: Option<bool>,
}

/// What [`execute`] did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Executed {
    /// How many statements ran.
    pub statements: usize,
    /// Whether they ran in one transaction.
    pub transaction: bool,
}

/// Statements Postgres refuses inside a transaction block, by their first words.
const OUTSIDE_TRANSACTION: [&str; 8] = [
    "CREATE DATABASE",
    "DROP DATABASE",
    "CREATE TABLESPACE",
    "DROP TABLESPACE",
    "ALTER SYSTEM",
    "VACUUM",
    "CREATE SUBSCRIPTION",
    "DROP SUBSCRIPTION",
];

/// Whether `statement` cannot run inside a transaction block.
#[must_use]
pub fn needs_own_transaction(statement: &str) -> bool {
    let words: Vec<String> = statement
        .split_whitespace()
        .take(6)
        .map(str::to_uppercase)
        .collect();
    let head = words.join(" ");
    OUTSIDE_TRANSACTION.iter().any(|p| head.starts_with(p))
        || words.iter().any(|w| w == "CONCURRENTLY")
        || (head.starts_with("ALTER DATABASE") && head.contains("SET TABLESPACE"))
}

impl ExecOptions {
    /// Whether the statements run in one transaction.
    #[must_use]
    pub fn in_transaction(&self) -> bool {
        self.transaction
            .unwrap_or_else(|| !self.sql.iter().any(|s| needs_own_transaction(s)))
    }

    /// Refuses `transaction: true` with a statement that cannot run in one, naming it.
    pub fn check(&self) -> Result<()> {
        if self.transaction == Some(true) {
            if let Some(s) = self.sql.iter().find(|s| needs_own_transaction(s)) {
                return Err(err!(
                    InvalidInput,
                    "{s:?} cannot run inside a transaction: run the statements without one"
                ));
            }
        }
        if self.sql.is_empty() {
            return Err(err!(InvalidInput, "no statements: give sql: [..]"));
        }
        Ok(())
    }

    /// The plan's line: how many statements, where, and how.
    #[must_use]
    pub fn describe(&self, url: &str) -> String {
        if self.in_transaction() {
            format!(
                "runs {} statement(s) on {url} in one transaction",
                self.sql.len()
            )
        } else {
            let own: Vec<&str> = self
                .sql
                .iter()
                .filter(|s| needs_own_transaction(s))
                .map(String::as_str)
                .collect();
            format!(
                "runs {} statement(s) on {url}, each on its own{} (not undone if a later one fails)",
                self.sql.len(),
                if own.is_empty() {
                    String::new()
                } else {
                    format!(" ({} cannot run in a transaction)", own.join("; "))
                }
            )
        }
    }
}

fn db_error(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

/// Runs `options.sql` on `url`, in one transaction unless a statement cannot run in one
/// (or `transaction: false`).
pub async fn execute(url: &ConnInfo, options: &ExecOptions) -> Result<Executed> {
    options.check()?;
    let mut c = url.connect().await?;
    let transaction = options.in_transaction();
    if transaction {
        let tx = c
            .transaction()
            .await
            .map_err(|e| err!(External, "BEGIN on {url}: {}", db_error(&e)))?;
        for q in &options.sql {
            tx.batch_execute(q).await.map_err(|e| {
                err!(
                    External,
                    "{q:?} on {url}: {} (nothing was committed)",
                    db_error(&e)
                )
            })?;
        }
        tx.commit()
            .await
            .map_err(|e| err!(External, "COMMIT on {url}: {}", db_error(&e)))?;
    } else {
        for (i, q) in options.sql.iter().enumerate() {
            c.batch_execute(q).await.map_err(|e| {
                err!(
                    External,
                    "{q:?} on {url}: {} (the {i} statement(s) before it ran and stay)",
                    db_error(&e)
                )
            })?;
        }
    }
    Ok(Executed {
        statements: options.sql.len(),
        transaction,
    })
}

/// What [`query`] runs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryOptions {
    /// One query.
    pub sql: String,
    /// Most rows kept (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Rows as JSON, by column name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Rows {
    /// The first row (`null` when there is none): `${steps.count.outputs.row.orders}`.
    pub row: Option<Map<String, Value>>,
    /// The rows, up to the limit.
    pub rows: Vec<Map<String, Value>>,
    /// How many rows are in `rows`.
    pub count: usize,
    /// Whether the query returned more rows than were kept.
    pub truncated: bool,
}

/// Runs one query on `url` in a read-only transaction and returns its rows as JSON
/// (Postgres converts each value: numbers stay numbers, timestamps become ISO text).
pub async fn query(url: &ConnInfo, options: &QueryOptions) -> Result<Rows> {
    let limit = options.limit.unwrap_or(100);
    let sql = options.sql.trim().trim_end_matches(';');
    let mut c = url.connect().await?;
    let tx = c
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(|e| err!(External, "BEGIN READ ONLY on {url}: {}", db_error(&e)))?;
    // Postgres turns each row into JSON (numbers stay numbers); the query on lines of its
    // own, so that a trailing comment ends there.
    let wrapped = format!(
        "SELECT row_to_json(q)::text FROM (\n{sql}\n) AS q LIMIT {}",
        limit.saturating_add(1)
    );
    tx.batch_execute("SAVEPOINT drkit_query")
        .await
        .map_err(|e| err!(External, "SAVEPOINT on {url}: {}", db_error(&e)))?;
    match tx.query(&wrapped, &[]).await {
        Ok(found) => {
            let mut rows = Vec::new();
            for r in found.iter().take(limit) {
                let text: String = r.get(0);
                if let Value::Object(m) = serde_json::from_str(&text)
                    .map_err(|e| err!(Corrupt, "a row of {sql:?} is not JSON: {e}"))?
                {
                    rows.push(m);
                }
            }
            Ok(Rows {
                row: rows.first().cloned(),
                count: rows.len(),
                truncated: found.len() > limit,
                rows,
            })
        }
        // Not a query that can be read from (SHOW, EXPLAIN, a statement): run it as it is,
        // its values as text; Postgres names what it refuses in a read-only transaction.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::SYNTAX_ERROR) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT drkit_query")
                .await
                .map_err(|e| err!(External, "ROLLBACK TO SAVEPOINT on {url}: {}", db_error(&e)))?;
            let messages = tx
                .simple_query(sql)
                .await
                .map_err(|e| err!(External, "{sql:?} on {url}: {}", db_error(&e)))?;
            let all: Vec<Map<String, Value>> = messages
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        r.columns()
                            .iter()
                            .enumerate()
                            .map(|(i, c)| {
                                (
                                    c.name().to_owned(),
                                    r.get(i)
                                        .map_or(Value::Null, |v| Value::String(v.to_owned())),
                                )
                            })
                            .collect(),
                    ),
                    _ => None,
                })
                .collect();
            let truncated = all.len() > limit;
            let rows: Vec<Map<String, Value>> = all.into_iter().take(limit).collect();
            Ok(Rows {
                row: rows.first().cloned(),
                count: rows.len(),
                truncated,
                rows,
            })
        }
        Err(e) => Err(err!(External, "{sql:?} on {url}: {}", db_error(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::needs_own_transaction;

    #[test]
    fn statements_postgres_refuses_in_a_transaction_are_known() {
        for s in [
            "DROP DATABASE shop",
            "create database shop template template0",
            "VACUUM ANALYZE orders",
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "ALTER DATABASE shop SET TABLESPACE fast",
        ] {
            assert!(needs_own_transaction(s), "{s}");
        }
        for s in [
            "UPDATE t SET a = 1",
            "CREATE TABLE t (a int)",
            "ALTER DATABASE shop OWNER TO bob",
        ] {
            assert!(!needs_own_transaction(s), "{s}");
        }
    }
}
