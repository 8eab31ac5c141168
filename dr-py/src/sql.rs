//! `drkit.sql_exec`, `drkit.sql_query`, `drkit.pg_ready`: the library operations the
//! `sql.exec`, `sql.query` and `pg.ready` steps run.

use std::time::Duration;

use dr_pg::sql::{ExecOptions, QueryOptions};
use dr_pg::ConnInfo;
use pyo3::prelude::*;

use crate::repository::to_python;
use crate::runtime::block_on;

fn url(dsn: &str) -> PyResult<ConnInfo> {
    ConnInfo::parse(dsn).map_err(crate::errors::to_py)
}

/// Runs `sql` (statements, in order) on `url`: in one transaction, or each on its own
/// when one cannot run in a transaction (DROP/CREATE DATABASE); `transaction` forces
/// either. Returns `{statements, transaction}`.
#[pyfunction]
#[pyo3(signature = (url, sql, *, transaction=None))]
pub fn sql_exec<'py>(
    py: Python<'py>,
    url: &str,
    sql: Vec<String>,
    transaction: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let url = self::url(url)?;
    let options = ExecOptions { sql, transaction };
    to_python(py, &block_on(py, dr_pg::sql::execute(&url, &options))?)
}

/// Runs one read-only query on `url`; returns `{row, rows, count, truncated}`, each row
/// a dict by column name.
#[pyfunction]
#[pyo3(signature = (url, sql, *, limit=100))]
pub fn sql_query<'py>(
    py: Python<'py>,
    url: &str,
    sql: String,
    limit: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let url = self::url(url)?;
    let options = QueryOptions {
        sql,
        limit: Some(limit),
    };
    to_python(py, &block_on(py, dr_pg::sql::query(&url, &options))?)
}

/// Waits until `url` accepts connections and answers a query, at most `timeout`
/// seconds; returns `{seconds}`.
#[pyfunction]
#[pyo3(signature = (url, *, timeout=60.0))]
pub fn pg_ready<'py>(py: Python<'py>, url: &str, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
    let url = self::url(url)?;
    let limit = Duration::try_from_secs_f64(timeout)
        .map_err(|e| crate::errors::to_py(dr_core::err!(InvalidInput, "timeout: {e}")))?;
    to_python(py, &block_on(py, dr_pg::sql::ready(&url, limit))?)
}
