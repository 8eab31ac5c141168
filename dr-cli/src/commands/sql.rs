//! `drkit sql`: statements, a query and a readiness wait on a live server, through the
//! library operations the `sql.exec`, `sql.query` and `pg.ready` steps run.

use std::fmt::Write as _;

use dr_core::Result;
use dr_pg::sql::{ExecOptions, QueryOptions};
use dr_pg::ConnInfo;

use crate::args::SqlCommand;
use crate::output::Output;

/// Runs one `drkit sql` subcommand.
pub async fn sql(c: &SqlCommand, out: Output) -> Result<u8> {
    match c {
        SqlCommand::Exec {
            url,
            sql,
            transaction,
            no_transaction,
        } => {
            let url = ConnInfo::parse(url)?;
            let options = ExecOptions {
                sql: sql.clone(),
                transaction: match (transaction, no_transaction) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
            };
            let done = dr_pg::sql::execute(&url, &options).await?;
            out.emit(&done, || {
                format!(
                    "{} statement(s) on {url}{}",
                    done.statements,
                    if done.transaction {
                        ", in one transaction"
                    } else {
                        ", each on its own"
                    }
                )
            });
        }
        SqlCommand::Query { url, sql, limit } => {
            let url = ConnInfo::parse(url)?;
            let options = QueryOptions {
                sql: sql.clone(),
                limit: Some(*limit),
            };
            let rows = dr_pg::sql::query(&url, &options).await?;
            out.emit(&rows, || {
                let mut t = String::new();
                for r in &rows.rows {
                    let cells: Vec<String> = r.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let _ = writeln!(t, "{}", cells.join(" "));
                }
                let _ = write!(
                    t,
                    "({} row{}{})",
                    rows.count,
                    if rows.count == 1 { "" } else { "s" },
                    if rows.truncated {
                        ", more not kept"
                    } else {
                        ""
                    }
                );
                t
            });
        }
        SqlCommand::Ready { url, timeout } => {
            let url = ConnInfo::parse(url)?;
            let ready = dr_pg::sql::ready(&url, *timeout).await?;
            out.emit(&ready, || {
                format!("{url} answers (after {:.1} s)", ready.seconds)
            });
        }
    }
    Ok(0)
}
