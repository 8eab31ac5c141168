//! Physical base backups: `pg_basebackup -Ft -X none -c fast -D -` streamed through the
//! repository's chunker, so files unchanged between backups store nothing new. Replay
//! from one needs the WAL archive (see [`crate::wal`]).
//!
//! pg_basebackup writes only a single tablespace to standard output; a cluster with
//! tablespaces is written to a spool folder (`DRKIT_SPOOL_DIR`, else the system temp
//! folder; it needs room for the whole cluster) and each archive stored from there:
//! `base.tar` and `tablespaces/<oid>.tar`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use dr_core::progress::Progress;
use dr_core::repo::{Repository, Snapshot, SnapshotKind};
use dr_core::{err, Result};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::connect::ConnInfo;
use crate::physical::tartap::TarTap;
use crate::physical::wal::{segment_name, Lsn};
use crate::process::spawn;
use crate::tools::PgTools;

/// The snapshot kind of base backups.
pub const KIND_BASE: &str = "pg_basebackup";

/// The file inside a base-backup snapshot: the data directory as a tar stream (with
/// `backup_label` and `backup_manifest`).
pub const BASE_FILE: &str = "base.tar";

/// The server's `backup_manifest`, also kept on its own.
pub const MANIFEST_FILE: &str = "backup_manifest";

/// What a base backup records beside its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseMetadata {
    /// `host:port` of the server.
    pub server: String,
    /// `server_version_num`.
    pub server_version_num: i32,
    /// The cluster's system identifier (a restore checks WAL belongs to it).
    pub system_identifier: String,
    /// WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// Where replay starts.
    pub start_lsn: String,
    /// Where the backup becomes consistent.
    pub end_lsn: String,
    /// The timeline it was taken on.
    pub timeline: u32,
    /// The first WAL file replay needs.
    pub first_wal: String,
    /// The WAL file holding the end point.
    pub last_wal: String,
    /// The label passed to pg_basebackup.
    pub label: String,
    /// pg_basebackup's version and where it came from.
    pub tools: String,
    /// Tablespaces outside the data directory, each stored as `tablespaces/<oid>.tar`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tablespaces: Vec<Tablespace>,
}

/// A tablespace of a base backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tablespace {
    /// Its oid (the name of its link in `pg_tblspc`).
    pub oid: u32,
    /// Its name.
    pub name: String,
    /// Where it was on the server.
    pub location: String,
}

impl Tablespace {
    /// The snapshot file holding it.
    #[must_use]
    pub fn file(&self) -> String {
        format!("tablespaces/{}.tar", self.oid)
    }
}

impl BaseMetadata {
    /// Reads it back from a snapshot.
    pub fn of(snap: &Snapshot) -> Result<Self> {
        serde_json::from_value(snap.metadata.clone()).map_err(|e| {
            err!(
                Corrupt,
                "snapshot {} is not a readable base backup: {e}",
                snap.id
            )
        })
    }
}

/// Takes a base backup of the server `conn` names. PostgreSQL finishes a base backup
/// only once its last WAL segment is archived; when the server's archiver has been
/// failing for `archive_timeout`, the backup is abandoned (nothing is stored) instead of
/// waiting forever.
pub async fn basebackup(
    repo: &Repository,
    conn: &ConnInfo,
    archive_timeout: Duration,
    progress: Arc<dyn Progress>,
) -> Result<Snapshot> {
    let tools = PgTools::discover()?;
    let Facts {
        system_identifier,
        segment_size,
        version_num,
        archive_mode,
        tablespaces,
    } = facts(conn).await?;

    let label = format!("drkit {}", jiff::Timestamp::now());
    let mut writer = repo.begin_snapshot(SnapshotKind::new(KIND_BASE), &conn.redacted());
    writer.set_progress(progress.clone());
    let mut cmd = Command::new(tools.program("pg_basebackup"));
    conn.apply_to(&mut cmd);
    cmd.args([
        "--format=tar",
        "--wal-method=none",
        "--checkpoint=fast",
        "--no-sync",
        "--verbose",
    ])
    .arg(format!("--label={label}"));
    progress.phase("base");
    let backup = async {
        if tablespaces.is_empty() {
            streamed(&mut writer, cmd, conn).await
        } else {
            spooled(&mut writer, cmd, conn, &tablespaces, progress.as_ref()).await
        }
    };
    let (manifest, backup_label) = if archive_mode == "off" {
        backup.await?
    } else {
        // Dropping the backup kills pg_basebackup; nothing is committed.
        tokio::select! {
            done = backup => done?,
            failed = archive_watchdog(conn, archive_timeout) => return Err(failed),
        }
    };
    let (start, timeline, end) = points(manifest.as_deref(), backup_label.as_deref())?;
    if let Some(m) = manifest {
        writer
            .add_file(MANIFEST_FILE, std::io::Cursor::new(m))
            .await?;
    }
    let meta = BaseMetadata {
        server: conn.server(),
        server_version_num: version_num,
        system_identifier,
        wal_segment_size: segment_size,
        start_lsn: start.to_string(),
        end_lsn: end.to_string(),
        timeline,
        first_wal: segment_name(timeline, start.segment(segment_size), segment_size),
        last_wal: segment_name(timeline, end.segment(segment_size), segment_size),
        label,
        tools: format!("{} ({})", tools.version(), tools.bindir.display()),
        tablespaces,
    };
    progress.phase("commit");
    writer
        .commit(serde_json::to_value(&meta).expect("metadata serializes"))
        .await
}

/// What a base backup records about the server, read before it starts.
struct Facts {
    system_identifier: String,
    segment_size: u64,
    version_num: i32,
    archive_mode: String,
    tablespaces: Vec<Tablespace>,
}

async fn facts(conn: &ConnInfo) -> Result<Facts> {
    let client = conn.connect().await?;
    let row = client
        .query_one(
            "SELECT (SELECT system_identifier::text FROM pg_control_system()), \
                    (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), \
                    current_setting('server_version_num')::int, \
                    current_setting('archive_mode'), \
                    current_setting('archive_command') || current_setting('archive_library')",
            &[],
        )
        .await
        .map_err(|e| crate::error::query_error(conn, "reading cluster facts", e))?;
    let archive_mode: String = row.get(3);
    let archiver: String = row.get(4);
    if archive_mode == "off" {
        tracing::warn!("archive_mode is off on {}: this base backup cannot be replayed past its end without WAL; set archive_command to `drkit wal-push %p`", conn.redacted());
    } else if archiver.trim().is_empty() {
        return Err(err!(
            InvalidInput,
            "{} has archive_mode = {archive_mode} but no archive_command: PostgreSQL would hold the base backup until its WAL is archived, which never happens; set archive_command = 'drkit wal-push %p'",
            conn.redacted()
        ));
    }
    let tablespaces = client
        .query(
            "SELECT oid::int8, spcname::text, pg_tablespace_location(oid) FROM pg_tablespace \
             WHERE pg_tablespace_location(oid) <> '' ORDER BY oid",
            &[],
        )
        .await
        .map_err(|e| crate::error::query_error(conn, "listing tablespaces", e))?
        .iter()
        .map(|r| Tablespace {
            oid: u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
            name: r.get(1),
            location: r.get(2),
        })
        .collect();
    Ok(Facts {
        system_identifier: row.get(0),
        segment_size: row.get::<_, i64>(1) as u64,
        version_num: row.get(2),
        archive_mode,
        tablespaces,
    })
}

/// Returns an error once the server's archiver has been failing (its last failure newer
/// than its last success) for `limit` without a break; otherwise never returns.
async fn archive_watchdog(conn: &ConnInfo, limit: Duration) -> dr_core::Error {
    let Ok(client) = conn.connect().await else {
        return std::future::pending().await;
    };
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(row) = client
            .query_one(
                "SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false), \
                        coalesce(last_failed_wal, ''), coalesce(last_failed_time::text, '')\
                 FROM pg_stat_archiver",
                &[],
            )
            .await
        else {
            continue;
        };
        if !row.get::<_, bool>(0) {
            failing_since = None;
            continue;
        }
        let since = *failing_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() >= limit {
            let (wal, at): (String, String) = (row.get(1), row.get(2));
            return err!(
                Unavailable,
                "{} has been failing to archive WAL for {} s (last failure: {wal} at {at}); the base backup is usable only once its WAL is archived, so it was abandoned and nothing was stored. Fix archive_command (the server log says why it fails) and run it again, or raise --archive-timeout",
                conn.redacted(),
                since.elapsed().as_secs()
            );
        }
    }
}

/// `pg_basebackup -D -`: the data directory's tar stream goes straight into the
/// repository. Returns the manifest and backup label caught on the way.
async fn streamed(
    writer: &mut dr_core::repo::SnapshotWriter,
    mut cmd: Command,
    conn: &ConnInfo,
) -> Result<(Option<Vec<u8>>, Option<String>)> {
    cmd.arg("--pgdata=-");
    let mut run = spawn(cmd, "pg_basebackup", Stdio::null(), Stdio::piped())?;
    let stdout = crate::process::blocking_stdout(&mut run)?;
    let (tap, caught) = TarTap::new(stdout, &["backup_label", "backup_manifest"]);
    let stored = writer.add_file_blocking(BASE_FILE, tap).await.map(|_| ());
    run.finish()
        .await
        .map_err(|e| e.context(format!("base backup of {}", conn.redacted())))?;
    stored?;
    Ok((
        caught.get("backup_manifest"),
        caught
            .get("backup_label")
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    ))
}

/// A cluster with tablespaces: pg_basebackup writes `base.tar`, one `<oid>.tar` per
/// tablespace and `backup_manifest` into a spool folder; each is stored from there and
/// the folder removed.
async fn spooled(
    writer: &mut dr_core::repo::SnapshotWriter,
    mut cmd: Command,
    conn: &ConnInfo,
    tablespaces: &[Tablespace],
    progress: &dyn Progress,
) -> Result<(Option<Vec<u8>>, Option<String>)> {
    let root = std::env::var_os("DRKIT_SPOOL_DIR")
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let spool = tempfile::Builder::new()
        .prefix("drkit-basebackup-")
        .tempdir_in(&root)
        .map_err(|e| {
            dr_core::Error::io(
                format!(
                    "creating a spool folder in {} (set DRKIT_SPOOL_DIR to a folder with room for the cluster)",
                    root.display()
                ),
                e,
            )
        })?;
    let dir = spool.path().join("backup");
    progress.phase(&format!("spool to {}", root.display()));
    cmd.arg("--pgdata").arg(&dir);
    spawn(cmd, "pg_basebackup", Stdio::null(), Stdio::null())?
        .finish()
        .await
        .map_err(|e| e.context(format!("base backup of {}", conn.redacted())))?;
    let open = |name: &str| {
        std::fs::File::open(dir.join(name))
            .map_err(|e| dr_core::Error::io(format!("reading {name} that pg_basebackup wrote"), e))
    };
    progress.phase("base");
    let (tap, caught) = TarTap::new(open("base.tar")?, &["backup_label"]);
    writer.add_file_blocking(BASE_FILE, tap).await?;
    for t in tablespaces {
        progress.phase(&format!("tablespace {}", t.name));
        writer
            .add_file_blocking(&t.file(), open(&format!("{}.tar", t.oid))?)
            .await?;
    }
    let manifest = std::fs::read(dir.join(MANIFEST_FILE)).ok();
    Ok((
        manifest,
        caught
            .get("backup_label")
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    ))
}

/// Start point, its timeline and end point, from the server's `backup_manifest`
/// (`WAL-Ranges`), checked against `backup_label`.
fn points(manifest: Option<&[u8]>, label: Option<&str>) -> Result<(Lsn, u32, Lsn)> {
    #[derive(Deserialize)]
    struct Range {
        #[serde(rename = "Timeline")]
        timeline: u32,
        #[serde(rename = "Start-LSN")]
        start: String,
        #[serde(rename = "End-LSN")]
        end: String,
    }
    #[derive(Deserialize)]
    struct Manifest {
        #[serde(rename = "WAL-Ranges")]
        ranges: Vec<Range>,
    }
    let m: Manifest = serde_json::from_slice(manifest.ok_or_else(|| {
        err!(Unsupported, "the server sent no backup_manifest (PostgreSQL 13 or newer is needed for base backups)")
    })?)
    .map_err(|e| err!(Corrupt, "the server's backup_manifest does not parse: {e}"))?;
    let first = m
        .ranges
        .first()
        .ok_or_else(|| err!(Corrupt, "backup_manifest lists no WAL range"))?;
    let last = m.ranges.last().expect("non-empty");
    let start = Lsn::parse(&first.start)?;
    if let Some(label) = label {
        let said = label
            .lines()
            .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
            .and_then(|l| l.split_whitespace().next())
            .map(Lsn::parse)
            .transpose()?;
        if said.is_some_and(|s| s != start) {
            return Err(err!(
                Corrupt,
                "backup_label and backup_manifest disagree about the start point"
            ));
        }
    }
    Ok((start, first.timeline, Lsn::parse(&last.end)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse() {
        let manifest = br#"{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [], "WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }]}"#;
        let label =
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n";
        let (s, t, e) = points(Some(manifest), Some(label)).unwrap();
        assert_eq!(
            (s.to_string().as_str(), t, e.to_string().as_str()),
            ("0/2000028", 1, "0/2000100")
        );
    }
}

/// What [`prune`] did: the repository's report and the WAL files removed.
#[derive(Debug, Clone, Serialize)]
pub struct PruneOutcome {
    /// Snapshots and chunks.
    pub report: dr_core::repo::PruneReport,
    /// WAL files no kept base backup needs any more.
    pub wal_files_removed: u64,
}

/// Prunes snapshots and chunks, then the WAL older than the first file the oldest kept
/// base backup needs (none when no base backup is kept: WAL then stays).
pub async fn prune(
    repo: &Repository,
    options: &dr_core::repo::PruneOptions,
    now: jiff::Timestamp,
) -> Result<PruneOutcome> {
    prune_under(repo, options, now, None).await
}

/// [`prune`] under `lock` (a Kubernetes Lease, for stores that ignore create-only
/// writes), else the store's own lock; the lock is held for the snapshots, the chunks
/// and the WAL alike.
pub async fn prune_under(
    repo: &Repository,
    options: &dr_core::repo::PruneOptions,
    now: jiff::Timestamp,
    lock: Option<std::sync::Arc<dyn dr_core::lock::Lock>>,
) -> Result<PruneOutcome> {
    options.policy.validate()?;
    let held = if options.dry_run {
        None
    } else {
        Some(repo.prune_lock(lock).await?)
    };
    let result = prune_holding(repo, options, now).await;
    if let Some(l) = held {
        l.release().await?;
    }
    result
}

async fn prune_holding(
    repo: &Repository,
    options: &dr_core::repo::PruneOptions,
    now: jiff::Timestamp,
) -> Result<PruneOutcome> {
    let report = repo.prune_holding_lock(options, now).await?;
    let mut wal_files_removed = 0;
    if !options.dry_run {
        let kept = repo.snapshots().await?;
        if let Some(oldest) = kept.iter().find(|s| s.kind.as_str() == KIND_BASE) {
            let meta = BaseMetadata::of(oldest)?;
            wal_files_removed =
                crate::physical::wal::prune_before(repo, &meta.first_wal, meta.wal_segment_size)
                    .await?;
        }
    }
    Ok(PruneOutcome {
        report,
        wal_files_removed,
    })
}
