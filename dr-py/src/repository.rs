//! `drkit.Repository`: open or create a repository, back up, list, restore, verify.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use dr_core::progress::NoProgress;
use dr_core::repo::retention::{self, Policy};
use dr_core::repo::{InitOptions, OpenOptions, PruneOptions, Secret, Snapshot, SnapshotRef};
use dr_core::target::{Lsn, PointInTime};
use dr_core::{err, Result};
use dr_pg::{
    BackupOptions, ConnInfo, CopyOptions, PitrOptions, RestoreOptions, RowCounts, VerifyOptions,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};
use serde::Serialize;

use crate::runtime::block_on;

/// A drkit repository in a store (`file:///…`, `memory://…`).
#[pyclass(module = "drkit._native", frozen)]
pub struct Repository {
    pub(crate) inner: dr_core::repo::Repository,
}

fn secret(
    password: Option<String>,
    password_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
) -> Result<Option<Secret>> {
    Secret::from_one_of(password, password_file, key_file)
}

fn seconds(name: &str, secs: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|e| err!(InvalidInput, "{name}: {e}"))
}

/// Turns any serializable report into Python dicts, lists and scalars.
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    value: &impl Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let v = serde_json::to_value(value)
        .map_err(|e| crate::errors::to_py(err!(Io, "serializing a report: {e}")))?;
    json_to_py(py, &v)
}

fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

#[pymethods]
impl Repository {
    /// Creates a repository at `url`. Encrypted unless `encrypt=False`; the secret comes
    /// from the arguments or DRKIT_PASSWORD / DRKIT_PASSWORD_FILE / DRKIT_KEY_FILE.
    #[staticmethod]
    #[pyo3(signature = (url, *, password=None, password_file=None, key_file=None, encrypt=true, compression_level=3))]
    fn init(
        py: Python<'_>,
        url: &str,
        password: Option<String>,
        password_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
        encrypt: bool,
        compression_level: i32,
    ) -> PyResult<Self> {
        let store = drkit::open_store(url).map_err(crate::errors::to_py)?;
        let secret = if encrypt {
            let s = secret(password, password_file, key_file).map_err(crate::errors::to_py)?;
            Some(s.ok_or_else(|| {
                crate::errors::to_py(err!(InvalidInput, "an encrypted repository needs password=, password_file= or key_file= (or DRKIT_PASSWORD); pass encrypt=False to store data unencrypted"))
            })?)
        } else {
            None
        };
        let options = InitOptions {
            secret,
            compression_level,
            ..InitOptions::unencrypted()
        };
        let inner = block_on(py, dr_core::repo::Repository::init(store, &options))?;
        Ok(Self { inner })
    }

    /// Opens the repository at `url`.
    #[staticmethod]
    #[pyo3(signature = (url, *, password=None, password_file=None, key_file=None))]
    fn open(
        py: Python<'_>,
        url: &str,
        password: Option<String>,
        password_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        let store = drkit::open_store(url).map_err(crate::errors::to_py)?;
        let options = OpenOptions {
            secret: secret(password, password_file, key_file).map_err(crate::errors::to_py)?,
            parallelism: 0,
        };
        let inner = block_on(py, dr_core::repo::Repository::open(store, &options))?;
        Ok(Self { inner })
    }

    /// The store URL.
    #[getter]
    fn url(&self) -> String {
        self.inner.store().url()
    }

    /// Whether data is encrypted.
    #[getter]
    fn encrypted(&self) -> bool {
        self.inner.is_encrypted()
    }

    /// Backs up the Postgres database `dsn` names; returns the snapshot summary.
    /// `format` is `"streams"` (tables read by parallel sessions, `jobs` of them, tables
    /// above `split_bytes`, default 256 MiB, in ranges) or `"pg-dump"`.
    #[pyo3(signature = (dsn, *, tags=None, skip_globals=false, row_counts=true, lock_wait_timeout=None, format="streams", jobs=None, split_bytes=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn backup<'py>(
        &self,
        py: Python<'py>,
        dsn: &str,
        tags: Option<HashMap<String, String>>,
        skip_globals: bool,
        row_counts: bool,
        lock_wait_timeout: Option<f64>,
        format: &str,
        jobs: Option<usize>,
        split_bytes: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conn = ConnInfo::parse(dsn).map_err(crate::errors::to_py)?;
        let format: dr_pg::LogicalFormat = format.parse().map_err(crate::errors::to_py)?;
        let lock_wait_timeout = lock_wait_timeout
            .map(|t| seconds("lock_wait_timeout", t))
            .transpose()
            .map_err(crate::errors::to_py)?;
        let options = BackupOptions {
            format,
            jobs,
            split_bytes: split_bytes.unwrap_or(dr_pg::DEFAULT_SPLIT_BYTES),
            row_counts: if row_counts {
                RowCounts::All
            } else {
                RowCounts::Skip
            },
            skip_globals,
            tags: tags.unwrap_or_default().into_iter().collect(),
            lock_wait_timeout,
        };
        let snap = block_on(
            py,
            dr_pg::backup(&self.inner, &conn, &options, Arc::new(NoProgress)),
        )?;
        to_python(py, &snap.summary())
    }

    /// Backs up files and folders as one snapshot of kind `files` (what `tar` keeps;
    /// deduplicated, encrypted), as `drkit backup-files` does; returns its summary.
    #[pyo3(signature = (paths, *, exclude=None, one_file_system=false, tags=None))]
    fn backup_files<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<std::path::PathBuf>,
        exclude: Option<Vec<String>>,
        one_file_system: bool,
        tags: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = dr_core::files::BackupFilesOptions {
            paths,
            exclude: exclude.unwrap_or_default(),
            one_file_system,
            tags: tags.unwrap_or_default(),
        };
        let snap = block_on(
            py,
            dr_core::files::backup_files(&self.inner, &options, Arc::new(NoProgress)),
        )?;
        to_python(py, &snap.summary())
    }

    /// Restores a `files` snapshot (id, prefix or "latest", of `source` when there are
    /// several) into the folder `to`, which must be empty unless `overwrite`; `paths`
    /// restores only those paths of it. Returns the same document as
    /// `drkit restore-files --json`.
    #[pyo3(signature = (snapshot, to, *, paths=None, overwrite=false, source=None))]
    fn restore_files<'py>(
        &self,
        py: Python<'py>,
        snapshot: &str,
        to: std::path::PathBuf,
        paths: Option<Vec<String>>,
        overwrite: bool,
        source: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pick = dr_core::repo::Pick {
            snapshot: snapshot.into(),
            source,
            ..dr_core::repo::Pick::default()
        };
        let options = dr_core::files::RestoreFilesOptions {
            to,
            paths: paths.unwrap_or_default(),
            overwrite,
        };
        let repo = &self.inner;
        let report = block_on(py, async move {
            let snap = repo.pick(&pick, dr_core::files::KIND_FILES, None).await?;
            dr_core::files::restore_files(repo, &snap, &options, Arc::new(NoProgress)).await
        })?;
        to_python(py, &report)
    }

    /// Bundles the Git repository at `path` (every branch and tag) as a snapshot of kind
    /// `git`, as `drkit git bundle` does; returns its summary.
    #[pyo3(signature = (path, *, tags=None))]
    fn git_bundle<'py>(
        &self,
        py: Python<'py>,
        path: std::path::PathBuf,
        tags: Option<std::collections::BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = dr_core::files::git::GitBundleOptions {
            path,
            tags: tags.unwrap_or_default(),
        };
        let snap = block_on(
            py,
            dr_core::files::git::git_bundle(&self.inner, &options, Arc::new(NoProgress)),
        )?;
        to_python(py, &snap.summary())
    }

    /// Clones a `git` snapshot into the new folder `to` (a bare mirror with `bare`),
    /// every ref as it was; the same document as `drkit git restore --json`.
    #[pyo3(signature = (snapshot, to, *, bare=false, source=None))]
    fn git_restore<'py>(
        &self,
        py: Python<'py>,
        snapshot: &str,
        to: std::path::PathBuf,
        bare: bool,
        source: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pick = dr_core::repo::Pick {
            snapshot: snapshot.into(),
            source,
            ..dr_core::repo::Pick::default()
        };
        let options = dr_core::files::git::GitRestoreOptions { to, bare };
        let repo = &self.inner;
        let report = block_on(py, async move {
            let snap = repo
                .pick(&pick, dr_core::files::git::KIND_GIT, None)
                .await?;
            dr_core::files::git::git_restore(repo, &snap, &options).await
        })?;
        to_python(py, &report)
    }

    /// Backs up a Redis server's RDB (taken as a replica takes it) as a snapshot of kind
    /// `redis`, as `drkit backup redis://…` does; returns its summary.
    #[pyo3(signature = (url, *, tags=None, timeout=300.0))]
    fn backup_redis<'py>(
        &self,
        py: Python<'py>,
        url: &str,
        tags: Option<std::collections::BTreeMap<String, String>>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = dr_core::redis::RedisBackupOptions {
            url: dr_core::redis::RedisUrl::parse(url).map_err(crate::errors::to_py)?,
            tags: tags.unwrap_or_default(),
            timeout: seconds("timeout", timeout).map_err(crate::errors::to_py)?,
        };
        let snap = block_on(
            py,
            dr_core::redis::backup_redis(&self.inner, &options, Arc::new(NoProgress)),
        )?;
        to_python(py, &snap.summary())
    }

    /// Restores a `redis` snapshot into a running server (`url`: every key replayed,
    /// counts compared) or a stopped server's `data_dir`; the same document as
    /// `drkit restore-redis --json`.
    #[pyo3(signature = (snapshot, *, url=None, data_dir=None, dbfilename="dump.rdb", overwrite=false, source=None, timeout=300.0))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn restore_redis<'py>(
        &self,
        py: Python<'py>,
        snapshot: &str,
        url: Option<&str>,
        data_dir: Option<std::path::PathBuf>,
        dbfilename: &str,
        overwrite: bool,
        source: Option<String>,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = dr_core::redis::RedisRestoreOptions {
            url: url
                .map(dr_core::redis::RedisUrl::parse)
                .transpose()
                .map_err(crate::errors::to_py)?,
            data_dir,
            dbfilename: dbfilename.to_owned(),
            overwrite,
            timeout: seconds("timeout", timeout).map_err(crate::errors::to_py)?,
        };
        let pick = dr_core::repo::Pick {
            snapshot: snapshot.into(),
            source,
            ..dr_core::repo::Pick::default()
        };
        let repo = &self.inner;
        let report = block_on(py, async move {
            let snap = dr_core::redis::pick(repo, &pick).await?;
            dr_core::redis::restore_redis(repo, &snap, &options).await
        })?;
        to_python(py, &report)
    }

    /// Every snapshot, oldest first, as summaries.
    fn snapshots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let all = block_on(py, self.inner.snapshots())?;
        let summaries: Vec<_> = all.iter().map(Snapshot::summary).collect();
        to_python(py, &summaries)
    }

    /// Restores `snapshot` (id, prefix or "latest") into the database `to` names.
    /// `latest` is the newest dump of the database `to` names, or of `source`; `before`
    /// (RFC 3339), `tags` and `random_within` ("30d") narrow it as `drkit restore` does.
    #[pyo3(signature = (snapshot, to, *, source=None, before=None, tags=None, random_within=None, mode="auto", jobs=None, globals=false, create_roles=false, no_owner=false, no_privileges=false, terminate_connections=false))]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)] // mirrors the Python keyword arguments one to one
    fn restore<'py>(
        &self,
        py: Python<'py>,
        snapshot: &str,
        to: &str,
        source: Option<String>,
        before: Option<&str>,
        tags: Option<std::collections::BTreeMap<String, String>>,
        random_within: Option<&str>,
        mode: &str,
        jobs: Option<usize>,
        globals: bool,
        create_roles: bool,
        no_owner: bool,
        no_privileges: bool,
        terminate_connections: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let target = ConnInfo::parse(to).map_err(crate::errors::to_py)?;
        let defaults = RestoreOptions::default();
        let options = RestoreOptions {
            mode: mode.parse().map_err(crate::errors::to_py)?,
            jobs: jobs.unwrap_or(defaults.jobs),
            globals,
            create_roles,
            no_owner,
            no_privileges,
            terminate_connections,
            ..defaults
        };
        let pick = dr_core::repo::Pick {
            snapshot: snapshot.into(),
            source,
            before: before
                .map(|b| {
                    b.parse::<jiff::Timestamp>().map_err(|e| {
                        dr_core::err!(
                            InvalidInput,
                            "before={b:?} is not a moment: {e}; give e.g. \"2026-12-01T03:00:00Z\""
                        )
                    })
                })
                .transpose()
                .map_err(crate::errors::to_py)?,
            tags: tags.unwrap_or_default(),
            random_within: random_within
                .map(dr_core::duration::parse)
                .transpose()
                .map_err(crate::errors::to_py)?,
        };
        let repo = &self.inner;
        let report = block_on(py, async move {
            let snap = dr_pg::dump_for(repo, &pick, &target).await?;
            dr_pg::restore(repo, &snap, &target, &options, Arc::new(NoProgress)).await
        })?;
        to_python(py, &report)
    }

    /// Re-reads and authenticates every chunk of `snapshot` (all snapshots when None)
    /// and records what passed; returns the same document as `drkit verify --json`
    /// (`ok`, `snapshots`, `restore`).
    #[pyo3(signature = (snapshot="latest"))]
    fn verify<'py>(&self, py: Python<'py>, snapshot: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let options = VerifyOptions {
            snapshot: snapshot.map(SnapshotRef::from),
            ..VerifyOptions::default()
        };
        let outcome = block_on(
            py,
            dr_pg::verify(&self.inner, &options, Arc::new(NoProgress)),
        )?;
        to_python(py, &outcome)
    }

    /// Restores `snapshot` into a scratch database on `server`, compares row counts, runs
    /// `checks` (SQL returning true or a non-zero count) and amcheck, drops the scratch
    /// copy, and records the verification with its restore time (what `status` measures
    /// the RTO objective by). Returns the `restore` part of `drkit verify --json`.
    /// `latest` is the newest dump of `source` (a URL or database name), which is needed
    /// when the repository holds dumps of several databases.
    #[pyo3(signature = (snapshot, server, *, source=None, checks=None, keep=false))]
    fn verify_restore<'py>(
        &self,
        py: Python<'py>,
        snapshot: &str,
        server: &str,
        source: Option<String>,
        checks: Option<Vec<String>>,
        keep: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = VerifyOptions {
            snapshot: Some(SnapshotRef::from(snapshot)),
            restore_into: Some(ConnInfo::parse(server).map_err(crate::errors::to_py)?),
            source,
            checks: checks.unwrap_or_default(),
            jobs: None,
            keep,
        };
        let outcome = block_on(
            py,
            dr_pg::verify(&self.inner, &options, Arc::new(NoProgress)),
        )?;
        to_python(py, &outcome.restore)
    }

    /// Copies snapshots (ids, prefixes or "latest"; all when None) to the repository at
    /// `to`, uploading only chunks it lacks, after the archived WAL: `wal="all"` (the
    /// default when all snapshots are copied), `"needed"` (what the copied base backups
    /// need; the default when snapshots are named) or `"none"`. `init=True` creates it as
    /// a replica with the same keys; otherwise it is opened with the given secret (or
    /// this one's env secret).
    #[pyo3(signature = (to, *, snapshots=None, init=false, password=None, password_file=None, key_file=None, wal=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn copy_to<'py>(
        &self,
        py: Python<'py>,
        to: &str,
        snapshots: Option<Vec<String>>,
        init: bool,
        password: Option<String>,
        password_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
        wal: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let build = || -> Result<(CopyOptions, Option<Secret>)> {
            let mut options = CopyOptions::to(to);
            options.init = init;
            options.snapshots = snapshots
                .unwrap_or_default()
                .iter()
                .map(|s| SnapshotRef::from(s.as_str()))
                .collect();
            options.wal = wal.map(str::parse).transpose()?;
            let given = password.is_some() || password_file.is_some() || key_file.is_some();
            let secret = if given {
                secret(password, password_file, key_file)?
            } else {
                None
            };
            Ok((options, secret))
        };
        let (options, secret) = build().map_err(crate::errors::to_py)?;
        let report = block_on(py, drkit::copy(&self.inner, &options, secret, &NoProgress))?;
        to_python(py, &report)
    }

    /// Removes snapshots the policy drops (per source and kind), then unreferenced chunks
    /// and WAL no kept base backup needs. `dry_run=True` reports keep/remove with reasons
    /// and changes nothing. Durations are like "36h", "14d".
    #[pyo3(signature = (*, keep_last=0, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_yearly=0, keep_within=None, time_zone="UTC", grace="1h", dry_run=false))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn prune<'py>(
        &self,
        py: Python<'py>,
        keep_last: usize,
        keep_daily: usize,
        keep_weekly: usize,
        keep_monthly: usize,
        keep_yearly: usize,
        keep_within: Option<&str>,
        time_zone: &str,
        grace: &str,
        dry_run: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let build = || -> Result<PruneOptions> {
            Ok(PruneOptions {
                policy: Policy {
                    keep_last,
                    keep_daily,
                    keep_weekly,
                    keep_monthly,
                    keep_yearly,
                    keep_within: keep_within.map(dr_core::duration::parse).transpose()?,
                    time_zone: retention::time_zone(time_zone)?,
                },
                dry_run,
                grace: dr_core::duration::parse(grace)?,
            })
        };
        let options = build().map_err(crate::errors::to_py)?;
        let outcome = block_on(
            py,
            dr_pg::prune(&self.inner, &options, jiff::Timestamp::now()),
        )?;
        to_python(py, &outcome)
    }

    /// Per source: newest snapshot, newest verified, data at risk now; checked against
    /// `objectives` (dicts with name, source, and any of rpo, rto, verified_within).
    #[pyo3(signature = (objectives=None))]
    fn status<'py>(
        &self,
        py: Python<'py>,
        objectives: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let objectives: Vec<dr_pg::Objective> = match objectives {
            None => Vec::new(),
            Some(o) => {
                let json: String = py.import("json")?.call_method1("dumps", (o,))?.extract()?;
                serde_json::from_str(&json).map_err(|e| {
                    crate::errors::to_py(err!(InvalidInput, "objectives: {e}; give a list of dicts with name, source and any of rpo, rto, verified_within (durations such as 15m, or seconds)"))
                })?
            }
        };
        let report = block_on(
            py,
            dr_pg::status(&self.inner, &objectives, jiff::Timestamp::now()),
        )?;
        to_python(py, &report)
    }

    /// Adds one more secret that opens this repository (a key slot): exactly one of
    /// `key_file`, `generate_key_file` (created, mode 0600) or `password`/`password_file`.
    /// Returns the slot (id, label, kind of secret, when added).
    #[pyo3(signature = (*, key_file=None, generate_key_file=None, password=None, password_file=None, label=""))]
    fn add_key<'py>(
        &self,
        py: Python<'py>,
        key_file: Option<PathBuf>,
        generate_key_file: Option<PathBuf>,
        password: Option<String>,
        password_file: Option<PathBuf>,
        label: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let secret = match (key_file, generate_key_file, password, password_file) {
            (Some(p), None, None, None) => {
                let s = Secret::KeyFile(p);
                s.check().map(|()| s)
            }
            (None, Some(p), None, None) => Secret::generate_key_file(&p),
            (None, None, Some(pw), None) => Ok(Secret::Passphrase(pw.into())),
            (None, None, None, Some(p)) => Secret::from_password_file(&p),
            _ => Err(err!(
                InvalidInput,
                "give exactly one of key_file, generate_key_file, password or password_file"
            )),
        }
        .map_err(crate::errors::to_py)?;
        let slot = block_on(py, self.inner.add_key(&secret, label))?;
        to_python(py, &slot)
    }

    /// The key slots, oldest first (no secrets in them).
    fn key_slots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let slots = block_on(py, self.inner.key_slots())?;
        to_python(py, &slots)
    }

    /// Removes key slot `id`; the repository's own secret keeps working.
    fn remove_key(&self, py: Python<'_>, id: &str) -> PyResult<()> {
        block_on(py, self.inner.remove_key(id))
    }

    /// Takes a physical base backup (`pg_basebackup`) of the server `dsn` names; returns
    /// the snapshot summary with the WAL range in `metadata`. Replay from it needs the
    /// WAL archive (`archive_command = 'drkit wal-push %p'`). Fails when the server's
    /// archiver has been failing for `archive_timeout` seconds.
    #[pyo3(signature = (dsn, *, archive_timeout=600.0))]
    fn basebackup<'py>(
        &self,
        py: Python<'py>,
        dsn: &str,
        archive_timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let conn = ConnInfo::parse(dsn).map_err(crate::errors::to_py)?;
        let limit = seconds("archive_timeout", archive_timeout).map_err(crate::errors::to_py)?;
        let snap = block_on(
            py,
            dr_pg::basebackup(&self.inner, &conn, limit, Arc::new(NoProgress)),
        )?;
        to_python(py, &snap.summary())
    }

    /// The WAL archive's recovery window and, per base backup, where replay from it would
    /// stop at a missing segment (None: unbroken). `ok` is False when any would.
    fn wal_verify<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = block_on(py, dr_pg::wal_verify(&self.inner))?;
        to_python(py, &report)
    }

    /// Recovers a cluster into `pgdata` (missing or empty) at one target: `target_time`
    /// (RFC 3339), `target_lsn`, `target_name` or `latest=True`. With `start=True` the
    /// server is started and awaited until promoted, then `checks` run on `check_dsn`.
    /// The recovered server fetches WAL through the drkit CLI: `drkit` names the binary
    /// (else `DRKIT_BIN`, else `drkit` on PATH); the secret reaches it only as
    /// `DRKIT_KEY_FILE` / `DRKIT_PASSWORD_FILE` from this process's environment.
    #[pyo3(signature = (pgdata, *, target_time=None, target_lsn=None, target_name=None, latest=false, snapshot=None, start=false, settings=None, timeout=3600.0, tablespace_mapping=None, check_dsn=None, checks=None, drkit=None))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn pitr<'py>(
        &self,
        py: Python<'py>,
        pgdata: &Bound<'py, PyAny>,
        target_time: Option<&str>,
        target_lsn: Option<&str>,
        target_name: Option<String>,
        latest: bool,
        snapshot: Option<&str>,
        start: bool,
        settings: Option<HashMap<String, String>>,
        timeout: f64,
        tablespace_mapping: Option<HashMap<PathBuf, PathBuf>>,
        check_dsn: Option<&str>,
        checks: Option<Vec<String>>,
        drkit: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pgdata: PathBuf = pgdata.extract()?;
        let build = || -> Result<PitrOptions> {
            let time = target_time
                .map(|t| {
                    t.parse().map_err(|e| {
                        err!(
                            InvalidInput,
                            "target_time {t:?}: {e}; use RFC 3339, e.g. 2026-12-01T03:15:00Z"
                        )
                    })
                })
                .transpose()?;
            let lsn = target_lsn.map(Lsn::parse).transpose()?;
            let target = PointInTime::from_parts(time, lsn, target_name, latest)?;
            let mut o = PitrOptions::new(
                std::path::absolute(&pgdata)
                    .map_err(|e| dr_core::Error::io("resolving pgdata", e))?,
                target,
            );
            o.snapshot = snapshot.map(SnapshotRef::from);
            o.drkit = drkit;
            o.settings = settings.unwrap_or_default().into_iter().collect();
            o.start = start;
            o.timeout = seconds("timeout", timeout)?;
            o.check_dsn = check_dsn.map(ConnInfo::parse).transpose()?;
            o.checks = checks.unwrap_or_default();
            o.tablespace_mapping = tablespace_mapping.unwrap_or_default().into_iter().collect();
            Ok(o)
        };
        let options = build().map_err(crate::errors::to_py)?;
        let report = block_on(py, dr_pg::pitr(&self.inner, &options, Arc::new(NoProgress)))?;
        to_python(py, &report)
    }

    fn __repr__(&self) -> String {
        format!("Repository({:?})", self.inner.store().url())
    }
}
