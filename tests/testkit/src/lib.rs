//! Starts the real services drkit's tests run against, and tears them down even when a
//! test panics.
//!
//! Locally, a test whose service is missing prints one line saying what to install and
//! returns early; with `CI` set, a missing service fails the test instead.

pub mod app;
mod cli;
mod faults;
pub mod k8s;
pub mod pitr;
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

/// Every file under `dir`, as bytes (a search for a secret that must not be there).
#[must_use]
pub fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Whether `haystack` holds the bytes of `needle`.
#[must_use]
pub fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
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

/// The environment that makes a program's clock run `offset` (`-10d`) from now through
/// libfaketime (the monotonic clock untouched): a backup taken "ten days ago" for the
/// retention tests. `None` (a skip, or a failure in CI) when libfaketime is missing.
#[must_use]
pub fn faketime_env(offset: &str) -> Option<Vec<(String, String)>> {
    let lib = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    let Some(lib) = lib else {
        missing(
            "libfaketime",
            "apt-get install faketime (scripts/setup --services)",
        );
        return None;
    };
    Some(vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME".into(), offset.to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ])
}
