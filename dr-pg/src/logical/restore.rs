//! Restoring logical snapshots: into a new database (built under a temporary name and
//! renamed when complete), in place with `--clean`, or beside the live one and swapped in
//! by an atomic rename. Streams snapshots load straight from the repository
//! ([`load`](super::load)); `pg-dump` snapshots go through `pg_restore`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dr_core::progress::Progress;
use dr_core::repo::{Repository, Snapshot};
use dr_core::{err, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::connect::{ident, ConnInfo};
use crate::error::query_error;
use crate::logical::archive::{ChannelReader, OffsetIndex};
use crate::logical::backup::{DUMP_FILE, GLOBALS_FILE, KIND_LOGICAL};
use crate::logical::load::TableLoad;
use crate::logical::metadata::{LogicalFormat, LogicalMetadata, USER_TABLES};
use crate::logical::roles;
use crate::logical::streams::SCHEMA_FILE;
use crate::process::spawn;
use crate::tools::PgTools;

/// What to do about the target database: `auto`, `create`, `clean` or `swap`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    /// Create it if missing; restore into it if it exists and holds no tables; refuse otherwise.
    #[default]
    Auto,
    /// It must not exist; create it.
    Create,
    /// Drop and recreate the snapshot's objects inside the existing database.
    Clean,
    /// Restore into `<db>_restored`, then rename `<db>` to `<db>_old` and `<db>_restored`
    /// to `<db>` in one transaction.
    Swap,
}

impl std::str::FromStr for RestoreMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "create" => Ok(Self::Create),
            "clean" => Ok(Self::Clean),
            "swap" => Ok(Self::Swap),
            other => Err(err!(
                InvalidInput,
                "restore mode {other:?} is not one of auto, create, clean, swap"
            )),
        }
    }
}

/// How to restore: the same options from the CLI, Python and a runbook's `pg.restore`
/// step.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreOptions {
    /// Target database handling.
    pub mode: RestoreMode,
    /// Sessions loading tables at once, and `pg_restore -j` for indexes and constraints
    /// (for a `pg-dump` snapshot above 1 the dump is first spooled, every chunk verified,
    /// to a local file).
    pub jobs: usize,
    /// Also replay roles and tablespaces (errors for objects that already exist are ignored).
    pub globals: bool,
    /// Create the roles the snapshot's objects need that the server lacks, as roles that
    /// cannot log in, before the data (without it, or `globals`, missing roles are refused
    /// before anything changes).
    pub create_roles: bool,
    /// `--no-owner`: objects belong to the restoring user.
    pub no_owner: bool,
    /// `--no-privileges`: skip GRANT/REVOKE.
    pub no_privileges: bool,
    /// In swap mode, end other sessions on the old database so the rename can proceed.
    pub terminate_connections: bool,
    /// Folder for the spooled archive (the schema of a streams snapshot, the whole dump of
    /// a `pg-dump` one); the system temp folder when `None`.
    pub scratch_dir: Option<PathBuf>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            mode: RestoreMode::Auto,
            jobs: crate::logical::backup::cores(),
            globals: false,
            create_roles: false,
            no_owner: false,
            no_privileges: false,
            terminate_connections: false,
            scratch_dir: None,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: String,
    /// Where to (no password).
    pub target: String,
    /// Mode used.
    pub mode: RestoreMode,
    /// How the snapshot holds its data.
    pub format: LogicalFormat,
    /// Bytes of data loaded (COPY streams, or the dump fed to pg_restore).
    pub bytes: u64,
    /// Sessions that loaded it.
    pub jobs: usize,
    /// Each table as it was loaded (streams snapshots).
    pub tables: Vec<TableLoad>,
    /// Wall time.
    #[serde(rename = "duration_secs", with = "dr_core::duration_secs")]
    #[schemars(with = "f64")]
    pub duration: Duration,
    /// In swap mode, the name the previous database now has.
    pub previous_database: Option<String>,
    /// A database an interrupted restore had left (marked incomplete), dropped before
    /// this one was built in its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_leftover: Option<String>,
    /// Whether roles and tablespaces were replayed.
    pub globals_restored: bool,
}

/// The dump snapshot `pick` names for a restore into `target`: `latest` is the newest
/// dump of the source whose database is `target`'s (or of `pick.source`, or of the only
/// source there is); several or none are refused before anything changes.
pub async fn dump_for(
    repo: &Repository,
    pick: &dr_core::repo::Pick,
    target: &ConnInfo,
) -> Result<Snapshot> {
    repo.pick(pick, super::backup::KIND_LOGICAL, Some(target.dbname()))
        .await
}

/// Restores `snapshot` into the database `target` names.
#[allow(clippy::too_many_lines)] // one sequence: checks, target, load, marker, rename or swap
pub async fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    target: &ConnInfo,
    options: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    if snapshot.kind.as_str() != KIND_LOGICAL {
        return Err(err!(
            InvalidInput,
            "snapshot {} is a {} snapshot; `drkit restore` restores {KIND_LOGICAL} snapshots",
            snapshot.id,
            snapshot.kind
        ));
    }
    let meta: LogicalMetadata = serde_json::from_value(snapshot.metadata.clone()).map_err(|e| {
        err!(
            Corrupt,
            "snapshot {} has unreadable metadata: {e}",
            snapshot.id
        )
    })?;
    if options.jobs == 0 {
        return Err(err!(
            InvalidInput,
            "jobs must be at least 1 (the default is one per core)"
        ));
    }
    if let Some(dir) = &options.scratch_dir {
        if !dir.is_dir() {
            return Err(err!(
                NotFound,
                "scratch folder {} does not exist; create it or pass another --scratch-dir",
                dir.display()
            ));
        }
    }
    snapshot.file(match meta.format {
        LogicalFormat::Streams => SCHEMA_FILE,
        LogicalFormat::PgDump => DUMP_FILE,
    })?;
    let tools = PgTools::discover()?;
    let started = Instant::now();
    let db = target.dbname().to_owned();
    let admin = target.with_dbname(if db == "postgres" {
        "template1"
    } else {
        "postgres"
    });
    let admin_client = admin.connect().await?;
    let exists = database_exists(&admin_client, &admin, &db).await?;
    // A fresh server lacks the roles the objects need: refuse now, not half-way through.
    let needed = meta.roles.required(options.no_owner, options.no_privileges);
    let missing_roles = roles::missing(&admin_client, &admin, &needed).await?;
    if !missing_roles.is_empty() && !options.globals && !options.create_roles {
        return Err(roles::refuse(
            snapshot.id.as_str(),
            &admin.server(),
            &missing_roles,
        ));
    }

    let prepared = prepare_target(
        &admin_client,
        &admin,
        target,
        options.mode,
        exists,
        snapshot.id.as_str(),
    )
    .await?;
    let into = prepared.into.clone();
    // A swap whose switch failed left a finished copy of this snapshot: it is switched in.
    let (bytes, tables) = if prepared.ready {
        (0, Vec::new())
    } else {
        let marker = Marker::set(&admin_client, &admin, &into, snapshot).await?;

        let run = async {
            if options.globals {
                restore_globals(repo, snapshot, &tools, &admin).await?;
            }
            if options.create_roles {
                let still = roles::missing(&admin_client, &admin, &needed).await?;
                roles::create(&admin_client, &admin, &still).await?;
            }
            let into = target.with_dbname(&into);
            match meta.format {
                LogicalFormat::Streams => {
                    progress.phase("fetch");
                    let spool =
                        Spool::fetch(repo, snapshot, SCHEMA_FILE, options, &*progress).await?;
                    Box::pin(crate::logical::load::load(
                        repo,
                        snapshot,
                        &meta,
                        &tools,
                        &into,
                        options,
                        &spool.path,
                        progress.clone(),
                    ))
                    .await
                }
                LogicalFormat::PgDump => {
                    progress.phase("restore");
                    feed_pg_restore(repo, snapshot, &tools, &into, options, progress.clone())
                        .await
                        .map(|b| (b, Vec::new()))
                }
            }
        };
        let loaded = match run.await {
            Ok(b) => b,
            Err(e) => {
                let note = if prepared.created {
                    match drop_database(&admin_client, &admin, &into).await {
                        Ok(()) => format!("; the partly restored database {into:?} was dropped"),
                        Err(d) => format!(
                            "; dropping the partly restored database {into:?} also failed: {}",
                            d.message()
                        ),
                    }
                } else if options.mode == RestoreMode::Clean
                    || options.jobs > 1
                    || meta.format == LogicalFormat::Streams
                {
                    format!("; database {into:?} is partly restored (its comment says so): restore again with --clean, or drop it")
                } else {
                    marker.clear(&admin_client, &admin).await.ok();
                    format!(
                        "; the single-transaction restore was rolled back, {into:?} is unchanged"
                    )
                };
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "restoring snapshot {} into {}: {}{note}",
                        snapshot.id,
                        target.redacted(),
                        e.message()
                    ),
                ));
            }
        };
        marker.clear(&admin_client, &admin).await?;
        loaded
    };

    let mut previous = None;
    if options.mode == RestoreMode::Swap {
        let switched = swap(
            &admin_client,
            &admin,
            &db,
            &into,
            exists,
            options.terminate_connections,
        )
        .await;
        previous = match switched {
            Ok(p) => p,
            Err(e) => {
                // The same restore, run again, switches this copy in without loading it again.
                let note = format!("{READY}{}", snapshot.id);
                set_comment(&admin_client, &admin, &into, Some(&note))
                    .await
                    .ok();
                return Err(e);
            }
        };
        if prepared.ready {
            set_comment(&admin_client, &admin, &db, None).await?;
        }
    } else if into != db {
        rename_into_place(&admin_client, &admin, &into, &db).await?;
    }
    Ok(RestoreReport {
        snapshot: snapshot.id.to_string(),
        target: target.redacted(),
        mode: options.mode,
        format: meta.format,
        bytes,
        jobs: options.jobs.max(1),
        tables,
        duration: started.elapsed(),
        previous_database: previous,
        dropped_leftover: prepared.dropped.clone(),
        globals_restored: options.globals,
    })
}

/// Where a restore goes: the database it loads into and whether it created it (and so
/// may drop it when the restore fails).
struct Prepared {
    into: String,
    created: bool,
    /// A finished copy of this snapshot, left by a swap whose switch failed.
    ready: bool,
    /// The leftover of an interrupted restore, dropped to make room.
    dropped: Option<String>,
}

/// The comment a database carries while a restore fills it, so that a restore stopped
/// half-way (kill -9, a lost machine) is recognisable as incomplete, and a database made
/// by one may be dropped by the next.
const INCOMPLETE: &str = "drkit: incomplete restore";

/// The comment of a complete copy that a swap could not switch in, followed by the
/// snapshot's id.
const READY: &str = "drkit: complete, not yet switched in: snapshot ";

struct Marker {
    database: String,
    previous: Option<String>,
}

impl Marker {
    async fn set(
        client: &tokio_postgres::Client,
        conn: &ConnInfo,
        database: &str,
        snapshot: &Snapshot,
    ) -> Result<Self> {
        // A stale marker of an earlier, interrupted restore is not worth keeping.
        let previous = database_comment(client, conn, database)
            .await?
            .filter(|c| !c.starts_with(INCOMPLETE) && !c.starts_with(READY));
        let note = format!(
            "{INCOMPLETE} of snapshot {} started {}; not usable until drkit finishes it",
            snapshot.id,
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
        );
        set_comment(client, conn, database, Some(&note)).await?;
        Ok(Self {
            database: database.to_owned(),
            previous,
        })
    }

    async fn clear(&self, client: &tokio_postgres::Client, conn: &ConnInfo) -> Result<()> {
        set_comment(client, conn, &self.database, self.previous.as_deref()).await
    }
}

async fn database_comment(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    database: &str,
) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            &[&database],
        )
        .await
        .map_err(|e| query_error(conn, "reading the database's comment", e))?;
    Ok(row.and_then(|r| r.get(0)))
}

async fn set_comment(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    database: &str,
    comment: Option<&str>,
) -> Result<()> {
    let value = comment.map_or_else(
        || "NULL".to_owned(),
        |c| format!("'{}'", c.replace('\'', "''")),
    );
    client
        .batch_execute(&format!(
            "COMMENT ON DATABASE {} IS {value}",
            ident(database)
        ))
        .await
        .map_err(|e| {
            query_error(
                conn,
                &format!("setting the comment of database {database:?}"),
                e,
            )
        })
}

/// Whether `database` was left by a restore that never finished.
async fn left_incomplete(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    database: &str,
) -> Result<bool> {
    Ok(database_comment(client, conn, database)
        .await?
        .is_some_and(|c| c.starts_with(INCOMPLETE)))
}

/// Drops `side` if a stopped restore left it (and says so); refuses if it is anything
/// else.
async fn clear_leftover(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    side: &str,
) -> Result<Option<String>> {
    if !database_exists(client, conn, side).await? {
        return Ok(None);
    }
    if left_incomplete(client, conn, side).await? {
        tracing::warn!(
            database = side,
            "dropping the database an interrupted restore left"
        );
        drop_database(client, conn, side).await?;
        return Ok(Some(side.to_owned()));
    }
    Err(err!(
        Conflict,
        "database {side:?} already exists on {} and is not an interrupted restore's; drop or rename it first",
        conn.server()
    ))
}

/// Waits until the sessions this restore opened on `database` have ended (the server
/// ends a backend a moment after its client leaves), so that it can be renamed.
async fn wait_until_unused(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    database: &str,
) -> Result<()> {
    for _ in 0..100 {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&database],
            )
            .await
            .map_err(|e| query_error(conn, "listing sessions", e))?;
        if row.get::<_, i64>(0) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn rename_into_place(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    from: &str,
    to: &str,
) -> Result<()> {
    wait_until_unused(client, conn, from).await?;
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} RENAME TO {}",
            ident(from),
            ident(to)
        ))
        .await
        .map_err(|e| {
            query_error(
                conn,
                &format!("renaming the restored database {from:?} to {to:?}"),
                e,
            )
            .context(format!("the restore is complete in {from:?}"))
        })
}

/// The name a restore into a new database `db` builds under: `<db>_restoring`, or `db`
/// itself when that would be too long for PostgreSQL (63 bytes).
fn building_name(db: &str) -> String {
    let side = format!("{db}_restoring");
    if side.len() <= 63 {
        side
    } else {
        db.to_owned()
    }
}

/// Checks and creates the database to restore into.
async fn prepare_target(
    admin_client: &tokio_postgres::Client,
    admin: &ConnInfo,
    target: &ConnInfo,
    mode: RestoreMode,
    exists: bool,
    snapshot: &str,
) -> Result<Prepared> {
    let db = target.dbname().to_owned();
    Ok(match mode {
        RestoreMode::Auto if exists => {
            let tables = user_table_count(target).await?;
            if tables > 0 {
                return Err(err!(
                    Conflict,
                    "database {db:?} on {} already holds {tables} tables; nothing was changed",
                    target.server()
                )
                .with_hint(dr_core::Hint::CleanOrSwap));
            }
            Prepared {
                into: db.clone(),
                created: false,
                ready: false,
                dropped: None,
            }
        }
        RestoreMode::Auto | RestoreMode::Create => {
            if exists {
                return Err(err!(AlreadyExists, "database {db:?} already exists on {}; --create restores only into a new database", target.server()));
            }
            // Built under another name, so that until it is complete no database of
            // this name exists for an application or a check to find.
            let side = building_name(&db);
            let dropped = if side == db {
                None
            } else {
                clear_leftover(admin_client, admin, &side).await?
            };
            create_database(admin_client, admin, &side).await?;
            Prepared {
                into: side,
                created: true,
                ready: false,
                dropped,
            }
        }
        RestoreMode::Clean => {
            if !exists {
                return Err(err!(NotFound, "database {db:?} does not exist on {}; --clean restores in place, drop the flag to create it", target.server()));
            }
            Prepared {
                into: db.clone(),
                created: false,
                ready: false,
                dropped: None,
            }
        }
        RestoreMode::Swap => {
            let side = format!("{db}_restored");
            if database_comment(admin_client, admin, &side)
                .await?
                .as_deref()
                == Some(format!("{READY}{snapshot}").as_str())
            {
                return Ok(Prepared {
                    into: side,
                    created: false,
                    ready: true,
                    dropped: None,
                });
            }
            let dropped = clear_leftover(admin_client, admin, &side).await?;
            if exists && database_exists(admin_client, admin, &format!("{db}_old")).await? {
                return Err(err!(Conflict, "database \"{db}_old\" already exists on {}; drop or rename it so the swap can keep the current database there", target.server()));
            }
            create_database(admin_client, admin, &side).await?;
            Prepared {
                into: side,
                created: true,
                ready: false,
                dropped,
            }
        }
    })
}

async fn feed_pg_restore(
    repo: &Repository,
    snapshot: &Snapshot,
    tools: &PgTools,
    into: &ConnInfo,
    options: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<u64> {
    let mut cmd = Command::new(tools.program("pg_restore"));
    into.apply_to(&mut cmd);
    cmd.args(["--exit-on-error", "--dbname"]).arg(into.dbname());
    if options.mode == RestoreMode::Clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    if options.no_owner {
        cmd.arg("--no-owner");
    }
    if options.no_privileges {
        cmd.arg("--no-privileges");
    }
    if options.jobs > 1 {
        // Parallel restore needs a seekable file; spooling also means every chunk is
        // verified before the database is touched.
        progress.phase("fetch");
        let spool = Spool::fetch(repo, snapshot, DUMP_FILE, options, &*progress).await?;
        let bytes = spool.bytes;
        let spool_path = spool.path.clone();
        progress.phase("pg_restore");
        let load = Instant::now();
        cmd.arg(format!("--jobs={}", options.jobs)).arg(&spool_path);
        spawn(cmd, "pg_restore", Stdio::null(), Stdio::null())?
            .finish()
            .await?;
        tracing::info!(
            secs = load.elapsed().as_secs_f64(),
            jobs = options.jobs,
            "pg_restore finished"
        );
        drop(spool);
        Ok(bytes)
    } else {
        cmd.arg("--single-transaction");
        let mut run = spawn(cmd, "pg_restore", Stdio::piped(), Stdio::null())?;
        let mut stdin = run.child.stdin.take().expect("stdin is piped");
        let fed = repo
            .restore_file(snapshot, DUMP_FILE, &mut stdin, &*progress)
            .await;
        let _ = stdin.shutdown().await;
        drop(stdin);
        if let Err(e) = fed {
            // Stop pg_restore before it commits a truncated stream.
            let _ = run.child.start_kill();
            let _ = run.child.wait().await;
            return Err(e);
        }
        run.finish().await?;
        fed
    }
}

/// An archive of the snapshot copied to a local file for `pg_restore`, every chunk
/// verified on the way; its name is gone as soon as it exists (where the system allows),
/// so a restore killed mid-way leaves no decrypted copy behind.
pub(crate) struct Spool {
    pub path: PathBuf,
    pub bytes: u64,
    _held: std::fs::File,
    _named: Option<tempfile::NamedTempFile>,
}

impl Spool {
    pub(crate) async fn fetch(
        repo: &Repository,
        snapshot: &Snapshot,
        name: &str,
        options: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let dir = options
            .scratch_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let spool = tempfile::Builder::new()
            .prefix("drkit-restore-")
            .suffix(".dump")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(format!("creating a spool file in {}", dir.display()), e))?;
        let held = spool
            .reopen()
            .map_err(|e| Error::io("opening spool file", e))?;
        // pg_restore reaches an unlinked spool through this process's descriptor.
        let (path, named) = match unlinked_path(&held) {
            Some(p) => {
                spool
                    .close()
                    .map_err(|e| Error::io("removing the spool file's name", e))?;
                (p, None)
            }
            None => (spool.path().to_owned(), Some(spool)),
        };
        let mut file = tokio::fs::File::from_std(
            held.try_clone()
                .map_err(|e| Error::io("opening spool file", e))?,
        );
        let fetch = Instant::now();
        let size = snapshot.file(name)?.size;
        let bytes = spool_with_offsets(repo, snapshot, name, &mut file, &path, progress)
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::Corrupt {
                    e
                } else {
                    e.context(format!(
                        "spooling {name} ({size} bytes) to {} for pg_restore; free space there or pass --scratch-dir",
                        dir.display()
                    ))
                }
            })?;
        drop(file);
        tracing::info!(
            bytes,
            secs = fetch.elapsed().as_secs_f64(),
            "spooled and verified {name}"
        );
        Ok(Self {
            path,
            bytes,
            _held: held,
            _named: named,
        })
    }
}

/// The spool as other processes of this user can open it once its name is gone
/// (`/proc/PID/fd/N`), where the system offers that.
fn unlinked_path(held: &std::fs::File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let p = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            held.as_raw_fd()
        ));
        p.exists().then_some(p)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = held;
        None
    }
}

/// Writes the dump to the spool file, every chunk verified, and records where each
/// table's data starts so `pg_restore -j` can seek instead of scanning.
async fn spool_with_offsets(
    repo: &Repository,
    snapshot: &Snapshot,
    name: &str,
    file: &mut tokio::fs::File,
    path: &std::path::Path,
    progress: &dyn Progress,
) -> Result<u64> {
    use futures::TryStreamExt;

    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let scanner = tokio::task::spawn_blocking(move || OffsetIndex::scan(ChannelReader::new(rx)));
    let mut tx = Some(tx);
    let mut stream = repo.read_file(snapshot, name)?;
    let mut written = 0u64;
    while let Some(part) = stream.try_next().await? {
        file.write_all(&part)
            .await
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        written += part.len() as u64;
        progress.advance(part.len() as u64, 0);
        // A scanner that gave up has dropped its end; the restore goes on without offsets.
        if let Some(t) = &tx {
            if t.send(part).await.is_err() {
                tx = None;
            }
        }
    }
    file.flush()
        .await
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    drop(tx);
    match scanner.await {
        Ok(Ok(index)) => {
            let path = path.to_owned();
            let patched = tokio::task::spawn_blocking(move || {
                let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
                // A scratch file: no fsync, pg_restore reads it from the page cache.
                index.patch(&mut f)
            })
            .await;
            match patched {
                Ok(Ok(n)) => {
                    tracing::info!(entries = n, "recorded data offsets in the spooled dump");
                }
                Ok(Err(e)) => tracing::warn!("could not record data offsets: {e}"),
                Err(e) => tracing::warn!("could not record data offsets: {e}"),
            }
        }
        Ok(Err(e)) => tracing::info!("dump not indexed, pg_restore will scan it: {e}"),
        Err(e) => tracing::warn!("offset scanner failed: {e}"),
    }
    Ok(written)
}

async fn restore_globals(
    repo: &Repository,
    snapshot: &Snapshot,
    tools: &PgTools,
    admin: &ConnInfo,
) -> Result<()> {
    let script = match snapshot.file(GLOBALS_FILE) {
        Ok(_) => repo.read_file_to_vec(snapshot, GLOBALS_FILE).await?,
        Err(_) => {
            return Err(err!(
            NotFound,
            "snapshot {} holds no roles (it was taken with --skip-globals or without the rights)",
            snapshot.id
        ))
        }
    };
    let mut cmd = Command::new(tools.program("psql"));
    admin.apply_to(&mut cmd);
    cmd.args([
        "--no-psqlrc",
        "--quiet",
        "--set",
        "ON_ERROR_STOP=0",
        "--dbname",
    ])
    .arg(admin.dbname());
    let mut run = spawn(cmd, "psql", Stdio::piped(), Stdio::null())?;
    let mut stdin = run.child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(&script)
        .await
        .map_err(|e| Error::io("feeding roles to psql", e))?;
    drop(stdin);
    let stderr = run.finish().await?;
    let real: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains("ERROR:")
                && !l.contains("already exists")
                && !l.contains("current user cannot be dropped")
        })
        .collect();
    if let Some(first) = real.first() {
        return Err(err!(
            External,
            "restoring roles: {} error(s), first: {}",
            real.len(),
            first.trim()
        ));
    }
    Ok(())
}

pub(crate) async fn database_exists(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    name: &str,
) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .map_err(|e| query_error(conn, "looking up databases", e))?;
    Ok(row.get(0))
}

async fn user_table_count(target: &ConnInfo) -> Result<i64> {
    let client = target.connect().await?;
    let sql = format!("SELECT count(*) FROM ({USER_TABLES}) t");
    let row = client
        .query_one(&sql, &[])
        .await
        .map_err(|e| query_error(target, "counting tables", e))?;
    Ok(row.get(0))
}

pub(crate) async fn create_database(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    name: &str,
) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            ident(name)
        ))
        .await
        .map_err(|e| query_error(conn, &format!("creating database {name:?}"), e))
}

pub(crate) async fn drop_database(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    name: &str,
) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident(name)
        ))
        .await
        .map_err(|e| query_error(conn, &format!("dropping database {name:?}"), e))
}

/// Renames `db` → `db_old` and `side` → `db` in one transaction.
async fn swap(
    client: &tokio_postgres::Client,
    conn: &ConnInfo,
    db: &str,
    side: &str,
    exists: bool,
    terminate: bool,
) -> Result<Option<String>> {
    let old = format!("{db}_old");
    wait_until_unused(client, conn, side).await?;
    if exists && terminate {
        client
            .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&db])
            .await
            .map_err(|e| query_error(conn, "ending sessions on the old database", e))?;
    }
    let keep_old = if exists {
        format!("ALTER DATABASE {} RENAME TO {};", ident(db), ident(&old))
    } else {
        String::new()
    };
    let sql = format!(
        "BEGIN;{keep_old}ALTER DATABASE {} RENAME TO {};COMMIT;",
        ident(side),
        ident(db)
    );
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        let busy = e
            .as_db_error()
            .is_some_and(|d| d.code() == &tokio_postgres::error::SqlState::OBJECT_IN_USE);
        let hint = if busy {
            "; other sessions are connected to it: stop the application or pass --terminate-connections"
        } else {
            ""
        };
        return Err(Error::new(
            if busy { ErrorKind::Conflict } else { ErrorKind::External },
            format!(
                "the restored copy is complete in database {side:?}, but switching it in failed: {}{hint}; nothing else was changed, and the same restore run again switches that copy in without restoring it again",
                crate::error::db_message(&e)
            ),
        ));
    }
    Ok(exists.then_some(old))
}
