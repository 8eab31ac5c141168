//! Starts the real services drkit's tests run against, and tears them down even when a
//! test panics.
//!
//! Locally, a test whose service is missing prints one line saying what to install and
//! returns early; with `CI` set, a missing service fails the test instead.

mod cli;
mod faults;
pub mod k8s;
mod postgres;
mod receiver;
mod redis;
mod services;

pub use cli::Drkit;
pub use faults::{Fault, FaultProxy};
pub use postgres::{PgCluster, PASSWORD};
pub use receiver::{Received, Receiver};
pub use redis::Redis;
pub use services::{
    free_port, s3_client, venv, Garage, Moto, BUCKET, GARAGE_KEY_ID, GARAGE_SECRET,
};

/// A finished program's standard error, as text.
#[must_use]
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Step `id` of a run document (`drkit run --json`, `drkit runs show --json`); panics
/// naming the step when the run has none of that id.
#[must_use]
pub fn step(run: &serde_json::Value, id: &str) -> serde_json::Value {
    run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("the run has no step {id:?}: {run}"))
        .clone()
}

/// Whether this run must not skip anything.
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Reports a missing service: skips locally, fails in CI.
pub fn missing(service: &str, install: &str) {
    assert!(
        !in_ci(),
        "{service} is required in CI but missing: {install}"
    );
    eprintln!("SKIPPED: {service} not available; {install}");
}
