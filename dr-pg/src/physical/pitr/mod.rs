//! Point-in-time recovery: pick the newest base backup before the target, check that
//! the WAL archive reaches the target without a gap, unpack the base, write the recovery
//! settings (drkit as `restore_command`, archiving off), and optionally start the server
//! and wait until it has promoted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dr_core::progress::Progress;
use dr_core::repo::{Repository, SnapshotRef};
use dr_core::target::PointInTime;
use dr_core::{err, Error, Result};
use serde::{Deserialize, Serialize};

use crate::physical::basebackup::BaseMetadata;

mod plan;
mod start;
mod unpack;

pub use self::plan::{
    plan, wal_verify, window, BaseReplay, Plan, TimelineSegments, WalVerifyReport, Window,
};
use self::start::start_and_wait;
use self::unpack::{empty_dir, placed_tablespaces, prepare_dir, unpack_and_configure};

/// What `pitr` does: the same options from the CLI, Python and a runbook step.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PitrOptions {
    /// The data directory to create (must be missing or empty).
    pub pgdata: PathBuf,
    /// Where to stop: `latest`, `{time: …}`, `{lsn: …}` or `{name: …}`.
    pub target: PointInTime,
    /// A base backup to use instead of choosing one.
    #[serde(default)]
    pub snapshot: Option<SnapshotRef>,
    /// The drkit CLI the recovered server runs as its `restore_command` (default:
    /// `DRKIT_BIN`, else this program when it is drkit, else `drkit` on `PATH`).
    #[serde(default)]
    pub drkit: Option<PathBuf>,
    /// Extra `postgresql.auto.conf` settings (e.g. `port`), applied last.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// A `postgresql.conf` to put in place (for clusters whose config lives outside the
    /// data directory, as Debian's do).
    #[serde(default)]
    pub postgresql_conf: Option<PathBuf>,
    /// Start the server and wait until it has promoted.
    #[serde(default)]
    pub start: bool,
    /// How long to wait for promotion.
    #[serde(with = "dr_core::duration::human", default = "default_timeout")]
    #[schemars(schema_with = "dr_core::duration::json_schema")]
    pub timeout: Duration,
    /// After promotion, connect here and run amcheck and `checks`.
    #[serde(default)]
    pub check_dsn: Option<crate::ConnInfo>,
    /// SQL that must return true or a non-zero count after promotion.
    #[serde(default)]
    pub checks: Vec<String>,
    /// Tablespaces to put somewhere else: location in the backup to new location, as
    /// pg_basebackup's `--tablespace-mapping`. Others go back where they were.
    #[serde(default)]
    pub tablespace_mapping: BTreeMap<PathBuf, PathBuf>,
}

fn default_timeout() -> Duration {
    Duration::from_hours(1)
}

impl PitrOptions {
    /// Recover into `pgdata` to `target`, everything else default.
    #[must_use]
    pub fn new(pgdata: impl Into<PathBuf>, target: PointInTime) -> Self {
        Self {
            pgdata: pgdata.into(),
            target,
            snapshot: None,
            drkit: None,
            settings: BTreeMap::new(),
            postgresql_conf: None,
            start: false,
            timeout: default_timeout(),
            check_dsn: None,
            checks: Vec::new(),
            tablespace_mapping: BTreeMap::new(),
        }
    }
}

/// The drkit CLI a recovered server runs as `restore_command`: `given`, else
/// `DRKIT_BIN`, else this program when it is drkit, else `drkit` on `PATH`.
pub fn drkit_binary(given: Option<&Path>) -> Result<PathBuf> {
    let resolve = |p: &Path| -> Result<PathBuf> {
        if p.is_file() {
            std::path::absolute(p).map_err(|e| Error::io("resolving the drkit binary", e))
        } else {
            Err(err!(
                NotFound,
                "the drkit CLI is not at {}; give the path of the drkit binary",
                p.display()
            ))
        }
    };
    if let Some(p) = given {
        return resolve(p);
    }
    if let Some(p) = std::env::var_os("DRKIT_BIN").filter(|v| !v.is_empty()) {
        return resolve(Path::new(&p));
    }
    if let Ok(exe) = std::env::current_exe() {
        if exe.file_stem().is_some_and(|n| n == "drkit") {
            return Ok(exe);
        }
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("drkit"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            err!(
                NotFound,
                "a recovered server fetches WAL through the drkit CLI, which is not on PATH: install it, or name it (drkit=/path/to/drkit, or DRKIT_BIN)"
            )
        })
}

/// What a recovery did.
#[derive(Debug, Clone, Serialize)]
pub struct PitrReport {
    /// The plan it followed.
    pub plan: Plan,
    /// The target.
    pub target: PointInTime,
    /// The data directory.
    pub pgdata: PathBuf,
    /// Whether `pg_verifybackup` checked the unpacked base against its manifest.
    pub manifest_verified: bool,
    /// Where each tablespace was restored: (name, location).
    pub tablespaces: Vec<(String, PathBuf)>,
    /// Whether the server was started and promoted.
    pub promoted: bool,
    /// Seconds to unpack the base.
    pub unpack_seconds: f64,
    /// Seconds from start to promotion (WAL replay).
    pub replay_seconds: Option<f64>,
    /// What the post-promotion checks found.
    pub checks: Option<crate::ServerChecks>,
}

/// The `restore_command` for a recovered server: `drkit` (the binary at `drkit`)
/// fetching from `repo_url`, with the secret by file (`DRKIT_KEY_FILE` or
/// `DRKIT_PASSWORD_FILE` from this process's environment: the server's environment has
/// none of ours, and a passphrase never goes into the configuration), and the AWS
/// region, profile and endpoint when set (never credentials).
pub fn restore_command(drkit: &Path, repo_url: &str) -> Result<String> {
    let sh = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut env = String::new();
    for var in ["DRKIT_KEY_FILE", "DRKIT_PASSWORD_FILE"] {
        if let Ok(f) = std::env::var(var) {
            let abs =
                std::path::absolute(&f).map_err(|e| Error::io(format!("resolving {var}"), e))?;
            env = format!("{var}={} ", sh(&abs.to_string_lossy()));
            break;
        }
    }
    if env.is_empty() && std::env::var("DRKIT_PASSWORD").is_ok() {
        return Err(err!(
            InvalidInput,
            "restore_command runs as the PostgreSQL server, which cannot see DRKIT_PASSWORD: give the secret as DRKIT_PASSWORD_FILE or DRKIT_KEY_FILE (a file the postgres user can read)"
        ));
    }
    for var in ["AWS_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL"] {
        if let Ok(v) = std::env::var(var) {
            let _ = write!(env, "{var}={} ", sh(&v));
        }
    }
    Ok(format!(
        "{env}{} --quiet --repo {} wal-fetch %f %p",
        sh(&drkit.to_string_lossy()),
        sh(repo_url)
    ))
}

/// Recovers a cluster into `options.pgdata`. A failure before the server starts leaves
/// the directory empty, so the command can be run again.
pub async fn pitr(
    repo: &Repository,
    options: &PitrOptions,
    progress: Arc<dyn Progress>,
) -> Result<PitrReport> {
    let restore_command = restore_command(
        &drkit_binary(options.drkit.as_deref())?,
        &repo.store().location(),
    )?;
    let plan = plan(
        repo,
        &options.target,
        options.snapshot.as_ref().map(SnapshotRef::as_str),
    )
    .await?;
    let snap = repo.find_snapshot(&plan.snapshot).await?;
    let meta = BaseMetadata::of(&snap)?;
    let tablespaces = placed_tablespaces(&meta, &options.tablespace_mapping)?;
    let dir = &options.pgdata;
    prepare_dir(dir)?;
    for (_, to) in &tablespaces {
        if let Err(e) = prepare_dir(to) {
            empty_dir(dir);
            return Err(e.context(
                "a tablespace goes back where it was unless --tablespace-mapping OLD=NEW moves it",
            ));
        }
    }
    let started = Instant::now();
    let result = unpack_and_configure(
        repo,
        &snap,
        &plan,
        options,
        &restore_command,
        &tablespaces,
        progress.as_ref(),
    )
    .await;
    let manifest_verified = match result {
        Ok(v) => v,
        Err(e) => {
            empty_dir(dir);
            for (_, to) in &tablespaces {
                empty_dir(to);
            }
            return Err(e);
        }
    };
    let tablespaces = tablespaces
        .into_iter()
        .map(|(t, to)| (t.name, to))
        .collect();
    let unpack_seconds = started.elapsed().as_secs_f64();
    let mut report = PitrReport {
        plan,
        target: options.target.clone(),
        pgdata: dir.clone(),
        manifest_verified,
        tablespaces,
        promoted: false,
        unpack_seconds,
        replay_seconds: None,
        checks: None,
    };
    if options.start {
        progress.phase("replay");
        let t = Instant::now();
        start_and_wait(dir, options.timeout).await?;
        report.promoted = true;
        report.replay_seconds = Some(t.elapsed().as_secs_f64());
        if let Some(conn) = &options.check_dsn {
            progress.phase("check");
            report.checks = Some(crate::check_server(conn, &options.checks).await?);
        }
    }
    Ok(report)
}
