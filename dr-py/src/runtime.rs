//! One tokio runtime for the process, started on first use.

use std::future::Future;
use std::sync::OnceLock;

use pyo3::prelude::*;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("drkit")
            .build()
            .expect("the tokio runtime starts")
    })
}

/// Runs `f` to completion with the GIL released, turning errors into Python exceptions.
pub fn block_on<T: Send, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: Future<Output = dr_core::Result<T>> + Send,
{
    py.detach(|| runtime().block_on(f))
        .map_err(crate::errors::to_py)
}
