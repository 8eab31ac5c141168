//! Starting the recovered server and waiting until it has promoted.

use std::path::Path;
use std::time::{Duration, Instant};

use dr_core::{err, Error, Result};
use tokio::process::Command;

use crate::cluster::run_as_owner;

/// Starts the server and waits until it has promoted: `postmaster.pid` then says
/// `ready` (it says `standby` while replaying with read-only connections allowed).
pub(super) async fn start_and_wait(dir: &Path, timeout: Duration) -> Result<()> {
    let bindir = crate::TempCluster::server_bindir()?;
    let log = dir.join("drkit-recovery.log");
    let d = dir
        .to_str()
        .ok_or_else(|| err!(InvalidInput, "{} is not UTF-8", dir.display()))?;
    let l = log.to_str().expect("under a UTF-8 path");
    let (pg_ctl, d2, l2) = (bindir.join("pg_ctl"), d.to_owned(), l.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        run_as_owner(&pg_ctl, &["-D", &d2, "-l", &l2, "-W", "start"])
    })
    .await
    .map_err(|e| err!(Io, "pg_ctl worker failed: {e}"))??;
    if !out.status.success() {
        return Err(err!(
            External,
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let started = Instant::now();
    loop {
        let pid = std::fs::read_to_string(dir.join("postmaster.pid")).unwrap_or_default();
        if pid
            .lines()
            .nth(7)
            .is_some_and(|status| status.trim() == "ready")
            && in_production(&bindir, dir).await?
        {
            return Ok(());
        }
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(fatal) = log_text
            .lines()
            .find(|l| l.contains("FATAL") || l.contains("PANIC"))
        {
            return Err(err!(
                External,
                "recovery failed: {} (server log: {})",
                fatal.trim(),
                log.display()
            ));
        }
        if started.elapsed() > timeout {
            return Err(err!(
                Timeout,
                "the server did not finish recovery within {} s; see {}",
                timeout.as_secs(),
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the control file says recovery is over (it says `in archive recovery` while
/// replaying).
pub(super) async fn in_production(bindir: &Path, dir: &Path) -> Result<bool> {
    let out = Command::new(bindir.join("pg_controldata"))
        .arg(dir)
        .env("LC_ALL", "C")
        .output()
        .await
        .map_err(|e| Error::io("running pg_controldata", e))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("Database cluster state:") && l.contains("in production")))
}
