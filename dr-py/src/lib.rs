//! Python bindings: `import drkit`. A thin layer over dr-core and dr-pg; every blocking
//! call releases the GIL and runs on one lazily started tokio runtime.

mod aws;
mod cluster;
mod drill;
mod errors;
mod k8s;
mod repository;
mod runbook;
mod runtime;
mod sql;

use pyo3::prelude::*;

/// The private native module behind the `drkit` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<aws::Rds>()?;
    m.add_class::<aws::Route53>()?;
    m.add_class::<k8s::Kubernetes>()?;
    m.add_class::<repository::Repository>()?;
    m.add_class::<cluster::TempCluster>()?;
    m.add_class::<runbook::Runbook>()?;
    m.add_function(wrap_pyfunction!(runbook::resume, m)?)?;
    m.add_function(wrap_pyfunction!(runbook::report, m)?)?;
    m.add_function(wrap_pyfunction!(aws::s3_verify_replica, m)?)?;
    m.add_function(wrap_pyfunction!(aws::s3_check_bucket, m)?)?;
    m.add_function(wrap_pyfunction!(aws::secretsmanager_get, m)?)?;
    m.add_function(wrap_pyfunction!(aws::s3_sync, m)?)?;
    m.add_function(wrap_pyfunction!(runbook::check_runbook, m)?)?;
    m.add_function(wrap_pyfunction!(runbook::runbook_schema, m)?)?;
    m.add_function(wrap_pyfunction!(drill::failover_drill, m)?)?;
    m.add_function(wrap_pyfunction!(sql::sql_exec, m)?)?;
    m.add_function(wrap_pyfunction!(sql::sql_query, m)?)?;
    m.add_function(wrap_pyfunction!(sql::pg_ready, m)?)?;
    errors::register(m)?;
    Ok(())
}
