//! `drkit.failover_drill`: the drill `drkit demo` ends with, from Python.

use std::time::Duration;

use drkit::drill::{failover_drill as run_drill, FailoverDrillOptions};
use pyo3::prelude::*;

use crate::repository::to_python;
use crate::runtime::block_on;

/// Runs the failover drill on throwaway servers; the report has the measured RTO and RPO
/// against the runbook's objectives.
#[pyfunction]
#[pyo3(signature = (*, orders=10_000, write_for=2.0, keep_repo=false))]
pub fn failover_drill(
    py: Python<'_>,
    orders: u64,
    write_for: f64,
    keep_repo: bool,
) -> PyResult<Bound<'_, PyAny>> {
    let write_for = Duration::try_from_secs_f64(write_for).map_err(|e| {
        crate::errors::to_py(dr_core::err!(
            InvalidInput,
            "write_for: {e} (seconds, >= 0)"
        ))
    })?;
    let o = FailoverDrillOptions {
        orders,
        write_for,
        keep_repo,
        report_html: None,
    };
    let report = block_on(py, async move { run_drill(&o, &|_| {}, None).await })?;
    to_python(py, &report)
}
