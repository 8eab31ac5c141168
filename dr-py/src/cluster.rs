//! `drkit.TempCluster`: a throwaway PostgreSQL for drills and tests.

use pyo3::prelude::*;

/// A throwaway PostgreSQL cluster on 127.0.0.1; stopped and deleted by `stop()`, by leaving
/// a `with` block, or when garbage-collected.
#[pyclass(module = "drkit._native")]
pub struct TempCluster {
    inner: Option<dr_pg::TempCluster>,
    port: u16,
}

#[pymethods]
impl TempCluster {
    /// Starts a cluster with `initdb` (as the `postgres` user when run as root);
    /// `settings` are added to its configuration (e.g. `archive_mode`).
    #[new]
    #[pyo3(signature = (*, password=None, settings=None))]
    fn new(
        py: Python<'_>,
        password: Option<String>,
        settings: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<Self> {
        let mut extra_conf = String::new();
        for (k, v) in settings.unwrap_or_default() {
            extra_conf.push_str(&k);
            extra_conf.push_str(" = '");
            extra_conf.push_str(&v.replace('\'', "''"));
            extra_conf.push_str("'\n");
        }
        let options = dr_pg::ClusterOptions {
            password,
            extra_conf,
            ..dr_pg::ClusterOptions::default()
        };
        let inner = py
            .detach(|| dr_pg::TempCluster::start(&options))
            .map_err(crate::errors::to_py)?;
        let port = inner.port();
        Ok(Self {
            inner: Some(inner),
            port,
        })
    }

    /// The TCP port.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db`.
    #[pyo3(signature = (db="postgres"))]
    fn dsn(&self, db: &str) -> PyResult<String> {
        self.inner.as_ref().map(|c| c.dsn(db)).ok_or_else(|| {
            crate::errors::to_py(dr_core::err!(Conflict, "this cluster was stopped"))
        })
    }

    /// Starts a streaming replica of this cluster (`pg_basebackup -R`), itself a
    /// throwaway: a drill's sandbox.
    fn start_replica(&self, py: Python<'_>) -> PyResult<Self> {
        let primary = self.inner.as_ref().ok_or_else(|| {
            crate::errors::to_py(dr_core::err!(Conflict, "this cluster was stopped"))
        })?;
        let inner = py
            .detach(|| primary.start_replica())
            .map_err(crate::errors::to_py)?;
        let port = inner.port();
        Ok(Self {
            inner: Some(inner),
            port,
        })
    }

    /// Stops the server and deletes its files.
    fn stop(&mut self, py: Python<'_>) {
        if let Some(c) = self.inner.take() {
            py.detach(move || drop(c));
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.stop(py);
        false
    }
}
