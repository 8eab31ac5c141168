//! Point-in-time recovery: pick the newest base backup before the target, check that
//! the WAL archive reaches the target without a gap, unpack the base, write the recovery
//! settings (drkit as `restore_command`, archiving off), and optionally start the server
//! and wait until it has promoted.

use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dr_core::progress::Progress;
use dr_core::repo::{Repository, Snapshot};
use dr_core::{err, Error, Result};
use jiff::Timestamp;
use serde::Serialize;
use tokio::process::Command;

use crate::basebackup::{BaseMetadata, BASE_FILE, KIND_BASE, MANIFEST_FILE};
use crate::cluster::{chown_to_postgres, is_root, run_as_owner};
use crate::tools::PgTools;
use crate::wal::{segment_name, Lsn, WalArchive, WalFile};

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryTarget {
    /// A moment (`recovery_target_time`).
    Time(Timestamp),
    /// A WAL position (`recovery_target_lsn`).
    Lsn(String),
    /// A restore point made with `pg_create_restore_point` (`recovery_target_name`).
    Name(String),
    /// The end of the archived WAL.
    Latest,
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Time(t) => write!(f, "time {t}"),
            Self::Lsn(l) => write!(f, "LSN {l}"),
            Self::Name(n) => write!(f, "restore point {n:?}"),
            Self::Latest => f.write_str("the latest archived WAL"),
        }
    }
}

/// The span a cluster can be recovered to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// The end of the oldest base backup.
    pub earliest: Option<Timestamp>,
    /// When the newest WAL segment (before any gap) was archived.
    pub latest: Option<Timestamp>,
    /// The first missing segment that cuts the window short, if any.
    pub gap: Option<String>,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |t: Option<Timestamp>| t.map_or("-".to_owned(), |t| t.to_string());
        write!(f, "{} .. {}", show(self.earliest), show(self.latest))?;
        if let Some(g) = &self.gap {
            write!(f, " (WAL segment {g} is missing)")?;
        }
        Ok(())
    }
}

/// A base backup and the WAL needed to reach the target from it.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The base backup.
    pub snapshot: String,
    /// Its metadata.
    pub base: BaseMetadata,
    /// When it finished.
    pub base_finished: Timestamp,
    /// Segments replay will fetch, first and last.
    pub wal_from: String,
    /// The newest segment replay can reach.
    pub wal_to: Option<String>,
    /// The window of this repository.
    pub window: Window,
}

/// What `pitr` does.
#[derive(Debug, Clone)]
pub struct PitrOptions {
    /// The data directory to create (must be missing or empty).
    pub pgdata: PathBuf,
    /// Where to stop.
    pub target: RecoveryTarget,
    /// A base backup to use instead of choosing one.
    pub snapshot: Option<String>,
    /// The shell command PostgreSQL runs to fetch WAL, with `%f` and `%p`.
    pub restore_command: String,
    /// Extra `postgresql.auto.conf` settings (e.g. `port`), applied last.
    pub settings: Vec<(String, String)>,
    /// A `postgresql.conf` to put in place (for clusters whose config lives outside the
    /// data directory, as Debian's do).
    pub postgresql_conf: Option<PathBuf>,
    /// Start the server and wait until it has promoted.
    pub start: bool,
    /// How long to wait for promotion.
    pub timeout: Duration,
    /// After promotion, connect here and run these checks plus amcheck.
    pub check: Option<(crate::ConnInfo, Vec<String>)>,
    /// Tablespaces to put somewhere else: (location in the backup, new location), as
    /// pg_basebackup's `--tablespace-mapping`. Others go back where they were.
    pub tablespace_mapping: Vec<(PathBuf, PathBuf)>,
}

/// What a recovery did.
#[derive(Debug, Clone, Serialize)]
pub struct PitrReport {
    /// The plan it followed.
    pub plan: Plan,
    /// The target.
    pub target: RecoveryTarget,
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

struct Base {
    snap: Snapshot,
    meta: BaseMetadata,
}

async fn bases(repo: &Repository) -> Result<Vec<Base>> {
    let mut out = Vec::new();
    for snap in repo.snapshots().await? {
        if snap.kind.as_str() == KIND_BASE {
            let meta = BaseMetadata::of(&snap)?;
            out.push(Base { snap, meta });
        }
    }
    Ok(out)
}

/// The recovery window of the repository's base backups and WAL.
pub async fn window(repo: &Repository) -> Result<(Window, Vec<(String, Option<String>)>)> {
    let bases = bases(repo).await?;
    let seg = bases.first().map_or(crate::wal::DEFAULT_SEGMENT_SIZE, |b| {
        b.meta.wal_segment_size
    });
    let archive = WalArchive::read(repo, seg).await?;
    Ok(window_of(&bases, &archive))
}

/// The window, and per base backup the first missing segment replay would stop at.
fn window_of(bases: &[Base], archive: &WalArchive) -> (Window, Vec<(String, Option<String>)>) {
    let mut per_base = Vec::new();
    let mut latest: Option<Timestamp> = None;
    let mut gap = None;
    for b in bases {
        let first = WalFile::parse(&b.meta.first_wal, b.meta.wal_segment_size);
        let Ok(WalFile::Segment { timeline, number }) = first else {
            continue;
        };
        let (chain, missing) = archive.chain(timeline, number, b.meta.wal_segment_size);
        let reached = chain.last().and_then(|(t, n)| {
            archive
                .segments
                .get(t)
                .and_then(|s| s.get(n))
                .copied()
                .flatten()
        });
        latest = latest.max(reached);
        per_base.push((b.snap.id.to_string(), missing.clone()));
        if b.snap.id == bases.last().expect("non-empty").snap.id {
            gap = missing;
        }
    }
    let window = Window {
        earliest: bases.first().map(|b| b.snap.finished_at),
        latest,
        gap,
    };
    (window, per_base)
}

/// Chooses the base backup for `target` and checks the WAL reaches it.
pub async fn plan(
    repo: &Repository,
    target: &RecoveryTarget,
    snapshot: Option<&str>,
) -> Result<Plan> {
    let all = bases(repo).await?;
    let url = repo.store().url();
    if all.is_empty() {
        return Err(err!(
            NotFound,
            "no base backups in {url}; take one with `drkit basebackup`"
        ));
    }
    let seg = all[0].meta.wal_segment_size;
    let archive = WalArchive::read(repo, seg).await?;
    let (window, _) = window_of(&all, &archive);
    let outside = |why: &str| {
        err!(
            InvalidInput,
            "{target} is outside the recovery window of {url}: {why}; the window is {window}"
        )
    };
    let chosen = choose_base(repo, &all, &archive, target, snapshot, &window).await?;
    let m = &chosen.meta;
    let Ok(WalFile::Segment { timeline, number }) =
        WalFile::parse(&m.first_wal, m.wal_segment_size)
    else {
        return Err(err!(
            Corrupt,
            "base backup {} names no valid first WAL file",
            chosen.snap.id
        ));
    };
    let (chain, missing) = archive.chain(timeline, number, m.wal_segment_size);
    let end = Lsn::parse(&m.end_lsn)?.segment(m.wal_segment_size);
    let reached = chain.last().map(|(_, n)| *n);
    if reached.is_none_or(|r| r < end) {
        return Err(err!(
            NotFound,
            "base backup {} needs WAL {} to {} to become consistent, but {} is not archived; is archive_command set to `drkit wal-push %p`?",
            chosen.snap.id,
            m.first_wal,
            m.last_wal,
            missing.clone().unwrap_or_else(|| segment_name(timeline, reached.map_or(number, |r| r + 1), m.wal_segment_size))
        ));
    }
    if let Some(gap) = &missing {
        let blocked = match target {
            RecoveryTarget::Latest | RecoveryTarget::Name(_) => true,
            RecoveryTarget::Lsn(l) => {
                Lsn::parse(l)?.segment(m.wal_segment_size) > reached.unwrap_or(0)
            }
            RecoveryTarget::Time(t) => {
                let (lt, ln) = *chain.last().expect("checked above");
                archive
                    .segments
                    .get(&lt)
                    .and_then(|s| s.get(&ln))
                    .copied()
                    .flatten()
                    .is_none_or(|at| *t > at)
            }
        };
        if blocked {
            return Err(err!(
                NotFound,
                "WAL segment {gap} is missing from {url}, so replay from base backup {} stops before {target}; the window is {window}",
                chosen.snap.id
            ));
        }
    }
    if let RecoveryTarget::Time(t) = target {
        if missing.is_none() && window.latest.is_some_and(|l| *t > l) {
            return Err(outside("it is after the last archived WAL"));
        }
    }
    let wal_to = chain
        .last()
        .map(|(t, n)| segment_name(*t, *n, m.wal_segment_size));
    Ok(Plan {
        snapshot: chosen.snap.id.to_string(),
        base: m.clone(),
        base_finished: chosen.snap.finished_at,
        wal_from: m.first_wal.clone(),
        wal_to,
        window,
    })
}

/// The base backup to start from: the one asked for, or the newest that precedes the target.
async fn choose_base<'a>(
    repo: &Repository,
    all: &'a [Base],
    archive: &WalArchive,
    target: &RecoveryTarget,
    snapshot: Option<&str>,
    window: &Window,
) -> Result<&'a Base> {
    let url = repo.store().url();
    let outside = |why: &str| {
        err!(
            InvalidInput,
            "{target} is outside the recovery window of {url}: {why}; the window is {window}"
        )
    };
    Ok(if let Some(r) = snapshot {
        let s = repo.find_snapshot(r).await?;
        all.iter()
            .find(|b| b.snap.id == s.id)
            .ok_or_else(|| err!(InvalidInput, "snapshot {} is not a base backup", s.id))?
    } else {
        match target {
            RecoveryTarget::Time(t) => all
                .iter()
                .rev()
                .find(|b| b.snap.finished_at <= *t)
                .ok_or_else(|| outside("it is before the oldest base backup finished"))?,
            RecoveryTarget::Lsn(l) => {
                let l = Lsn::parse(l)?;
                all.iter()
                    .rev()
                    .find(|b| Lsn::parse(&b.meta.end_lsn).is_ok_and(|e| e <= l))
                    .ok_or_else(|| outside("it is before the end of the oldest base backup"))?
            }
            // A restore point's position is unknown until replay meets it: start from the
            // oldest base whose WAL is unbroken, so any point after it is reachable.
            RecoveryTarget::Name(_) => {
                let (_, per_base) = window_of(all, archive);
                let ok: Vec<&String> = per_base
                    .iter()
                    .filter(|(_, g)| g.is_none())
                    .map(|(id, _)| id)
                    .collect();
                all.iter()
                    .find(|b| ok.contains(&&b.snap.id.to_string()))
                    .unwrap_or_else(|| all.last().expect("non-empty"))
            }
            RecoveryTarget::Latest => all.last().expect("non-empty"),
        }
    })
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
    let plan = plan(repo, &options.target, options.snapshot.as_deref()).await?;
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
    let result =
        unpack_and_configure(repo, &snap, &plan, options, &tablespaces, progress.as_ref()).await;
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
        if let Some((conn, checks)) = &options.check {
            progress.phase("check");
            report.checks = Some(crate::check_server(conn, checks).await?);
        }
    }
    Ok(report)
}

/// Where each tablespace of `meta` goes: its old location, or where a mapping moves it.
fn placed_tablespaces(
    meta: &BaseMetadata,
    mapping: &[(PathBuf, PathBuf)],
) -> Result<Vec<(crate::Tablespace, PathBuf)>> {
    for (from, _) in mapping {
        if !meta
            .tablespaces
            .iter()
            .any(|t| Path::new(&t.location) == from)
        {
            let known: Vec<&str> = meta
                .tablespaces
                .iter()
                .map(|t| t.location.as_str())
                .collect();
            return Err(err!(
                InvalidInput,
                "--tablespace-mapping names {}, which is no tablespace of this base backup (its tablespaces: {})",
                from.display(),
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ));
        }
    }
    Ok(meta
        .tablespaces
        .iter()
        .map(|t| {
            let to = mapping
                .iter()
                .find(|(from, _)| Path::new(&t.location) == from)
                .map_or_else(|| PathBuf::from(&t.location), |(_, to)| to.clone());
            (t.clone(), to)
        })
        .collect())
}

fn prepare_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        if entries.next().is_some() {
            return Err(err!(
                Conflict,
                "{} is not empty; recover into a new or empty directory (nothing was changed)",
                dir.display()
            ));
        }
    } else {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("setting permissions of {}", dir.display()), e))
}

fn empty_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// Unpacks snapshot file `name` into `dir` with tar.
async fn untar(
    repo: &Repository,
    snap: &Snapshot,
    name: &str,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let mut tar = Command::new("tar");
    tar.args(["-x", "--no-same-owner", "-f", "-", "-C"])
        .arg(dir);
    let mut run = crate::process::spawn(tar, "tar", Stdio::piped(), Stdio::null())?;
    let mut stdin = run.child.stdin.take().expect("stdin is piped");
    let written = repo.restore_file(snap, name, &mut stdin, progress).await;
    drop(stdin);
    let untarred = run.finish().await;
    written.map_err(|e| e.context(format!("unpacking {name} of base backup {}", snap.id)))?;
    untarred?;
    if is_root() {
        chown_to_postgres(dir)?;
    }
    Ok(())
}

/// Unpacks each tablespace into its place and links it from `pg_tblspc`; returns the
/// `tablespace_map` to write once the backup is verified (PostgreSQL recreates the links
/// from it at startup).
async fn place_tablespaces(
    repo: &Repository,
    snap: &Snapshot,
    dir: &Path,
    tablespaces: &[(crate::Tablespace, PathBuf)],
    progress: &dyn Progress,
) -> Result<Option<String>> {
    if tablespaces.is_empty() {
        return Ok(None);
    }
    let links = dir.join("pg_tblspc");
    std::fs::create_dir_all(&links)
        .map_err(|e| Error::io(format!("creating {}", links.display()), e))?;
    let mut map = String::new();
    for (t, to) in tablespaces {
        progress.phase(&format!("tablespace {}", t.name));
        untar(repo, snap, &t.file(), to, progress).await?;
        let link = links.join(t.oid.to_string());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(to, &link)
            .map_err(|e| Error::io(format!("linking {} to {}", link.display(), to.display()), e))?;
        if is_root() {
            let _ = std::process::Command::new("chown")
                .args(["-h", "postgres:postgres"])
                .arg(&link)
                .status();
        }
        let _ = writeln!(map, "{} {}", t.oid, to.display());
    }
    Ok(Some(map))
}

async fn unpack_and_configure(
    repo: &Repository,
    snap: &Snapshot,
    plan: &Plan,
    options: &PitrOptions,
    tablespaces: &[(crate::Tablespace, PathBuf)],
    progress: &dyn Progress,
) -> Result<bool> {
    let dir = &options.pgdata;
    progress.phase("unpack");
    untar(repo, snap, BASE_FILE, dir, progress).await?;
    let manifest = dir.join("backup_manifest");
    if !manifest.exists() && snap.file(MANIFEST_FILE).is_ok() {
        // Spooled backups (clusters with tablespaces) keep the manifest beside the tar.
        let mut out = tokio::fs::File::create(&manifest)
            .await
            .map_err(|e| Error::io(format!("writing {}", manifest.display()), e))?;
        repo.restore_file(snap, MANIFEST_FILE, &mut out, progress)
            .await?;
    }
    let tablespace_map = place_tablespaces(repo, snap, dir, tablespaces, progress).await?;
    // Check the files against the server's manifest before anything is added.
    let verified = if manifest.exists() {
        let tools = PgTools::discover()?;
        let out = Command::new(tools.program("pg_verifybackup"))
            .arg("--no-parse-wal")
            .arg(dir)
            .output()
            .await
            .map_err(|e| Error::io("running pg_verifybackup", e))?;
        if !out.status.success() {
            return Err(err!(
                Corrupt,
                "the unpacked base backup {} does not match its manifest: {}",
                snap.id,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        true
    } else {
        false
    };
    if let Some(map) = tablespace_map {
        std::fs::write(dir.join("tablespace_map"), map)
            .map_err(|e| Error::io(format!("writing tablespace_map in {}", dir.display()), e))?;
    }
    if let Some(conf) = &options.postgresql_conf {
        std::fs::copy(conf, dir.join("postgresql.conf")).map_err(|e| {
            Error::io(
                format!("copying {} into the data directory", conf.display()),
                e,
            )
        })?;
    }
    let mut settings = vec![
        (
            "restore_command".to_owned(),
            options.restore_command.clone(),
        ),
        ("recovery_target_action".to_owned(), "promote".to_owned()),
        ("recovery_target_timeline".to_owned(), "latest".to_owned()),
        // A recovered copy must not archive into the original's WAL.
        ("archive_mode".to_owned(), "off".to_owned()),
    ];
    match &options.target {
        RecoveryTarget::Time(t) => settings.push((
            "recovery_target_time".into(),
            t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        )),
        RecoveryTarget::Lsn(l) => settings.push(("recovery_target_lsn".into(), l.clone())),
        RecoveryTarget::Name(n) => settings.push(("recovery_target_name".into(), n.clone())),
        RecoveryTarget::Latest => {}
    }
    settings.extend(options.settings.iter().cloned());
    let mut auto = std::fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap_or_default();
    let _ = writeln!(
        auto,
        "\n# drkit pitr: base backup {} to {}",
        plan.snapshot, options.target
    );
    for (k, v) in &settings {
        let _ = writeln!(auto, "{k} = '{}'", v.replace('\'', "''"));
    }
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| Error::io(format!("writing {name} in {}", dir.display()), e))
    };
    write("postgresql.auto.conf", &auto)?;
    write("recovery.signal", "")?;
    // Anything from the original's process that came along in the tar is stale here.
    let _ = std::fs::remove_file(dir.join("postmaster.pid"));
    if is_root() {
        chown_to_postgres(dir)?;
    }
    Ok(verified)
}

/// Starts the server and waits until it has promoted: `postmaster.pid` then says
/// `ready` (it says `standby` while replaying with read-only connections allowed).
async fn start_and_wait(dir: &Path, timeout: Duration) -> Result<()> {
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
async fn in_production(bindir: &Path, dir: &Path) -> Result<bool> {
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
