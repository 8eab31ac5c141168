//! Redis as snapshots of kind `redis`: the server's RDB, taken the way a replica takes
//! it (`SYNC`, as `redis-cli --rdb` does: no shell, no access to the server's disk),
//! streamed through the chunker, its CRC64 checked and its keys counted as it passes.
//! Restored into a stopped server's data folder (the RDB file itself) or into a running
//! server key by key (`RESTORE … REPLACE` with each key's absolute expiry), then the key
//! counts compared.

pub mod actions;
mod conn;
mod rdb;

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::conn::RedisUrl;
use crate::progress::Progress;
use crate::repo::{Pick, Repository, Snapshot, SnapshotKind};
use crate::{err, Error, Result};

/// Snapshot kind of Redis RDBs.
pub const KIND_REDIS: &str = "redis";
/// The RDB inside a `redis` snapshot.
pub const RDB_FILE: &str = "dump.rdb";

/// How to back up Redis: `drkit backup redis://…`, Python and `redis.backup`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisBackupOptions {
    /// The server.
    pub url: RedisUrl,
    /// Tags for the manifest.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Give up when the server sends nothing for this long (it forks and writes the RDB
    /// first, sending keep-alives meanwhile).
    #[serde(default = "default_timeout", with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub timeout: Duration,
}

pub(crate) fn default_timeout() -> Duration {
    Duration::from_mins(5)
}

/// What a `redis` snapshot records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RedisMetadata {
    /// The server, without its password.
    pub server: String,
    /// Its version (`INFO server`).
    pub redis_version: String,
    /// The RDB format version.
    pub rdb_version: u16,
    /// Keys per database, counted in the RDB itself (`None` when it holds what drkit
    /// cannot read key by key, such as module types).
    pub keys: Option<BTreeMap<u64, u64>>,
    /// Keys per database `INFO keyspace` reported just before the sync.
    pub keys_reported: BTreeMap<u64, u64>,
    /// Why the keys could not be counted.
    pub keys_note: Option<String>,
}

/// Reads the RDB payload of a SYNC reply: `$<len>` then that many bytes, or
/// `$EOF:<mark>` then bytes up to the 40-byte mark (diskless replication). Checks the
/// trailing CRC64 and copies what passes to the key counter.
struct Payload {
    client: conn::Client,
    left: Option<u64>,
    mark: Option<Vec<u8>>,
    /// Bytes read but held back: they may be the end mark.
    held: Vec<u8>,
    ended: bool,
    digest: crc::Digest<'static, u64>,
    /// The last 8 bytes: the RDB's own checksum.
    last8: Vec<u8>,
    total: u64,
    tee: Option<SyncSender<Vec<u8>>>,
    error: Arc<Mutex<Option<Error>>>,
}

impl Payload {
    fn start(mut client: conn::Client) -> Result<Self> {
        let _ = client.call(&[b"REPLCONF", b"rdb-only", b"1"]);
        client.send(&[b"SYNC"])?;
        client.flush()?;
        // Newlines are keep-alives while the server prepares the RDB.
        let shown = client.shown.clone();
        let header = loop {
            let buf = client.raw().fill_buf().map_err(|e| Error::io(&shown, e))?;
            if buf.is_empty() {
                return Err(err!(
                    Unavailable,
                    "{shown} closed the connection before sending its data"
                ));
            }
            if buf[0] == b'\n' {
                client.raw().consume(1);
                continue;
            }
            break client.line()?;
        };
        let (left, mark) = if let Some(m) = header.strip_prefix("$EOF:") {
            (None, Some(m.as_bytes().to_vec()))
        } else if let Some(n) = header.strip_prefix('$').and_then(|n| n.parse::<u64>().ok()) {
            (Some(n), None)
        } else if let Some(e) = header.strip_prefix('-') {
            return Err(err!(
                External,
                "{} refused to send its data: {e}{}",
                client.shown,
                if e.contains("NOPERM") || e.contains("permission") {
                    "; the user needs the SYNC command (ACL: +sync, or +@admin)"
                } else {
                    ""
                }
            ));
        } else {
            return Err(err!(
                Corrupt,
                "{} answered SYNC with {header:?}",
                client.shown
            ));
        };
        Ok(Self {
            client,
            left,
            mark,
            held: Vec::new(),
            ended: false,
            digest: rdb::CRC64.digest(),
            last8: Vec::new(),
            total: 0,
            tee: None,
            error: Arc::new(Mutex::new(None)),
        })
    }

    fn pass(&mut self, data: &[u8]) {
        // Everything but the last 8 bytes goes into the checksum.
        let mut joined = std::mem::take(&mut self.last8);
        joined.extend_from_slice(data);
        let keep = joined.len().min(8);
        let (sum, last) = joined.split_at(joined.len() - keep);
        self.digest.update(sum);
        self.last8 = last.to_vec();
        self.total += data.len() as u64;
        if let Some(tx) = &self.tee {
            if tx.send(data.to_vec()).is_err() {
                self.tee = None;
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.tee = None;
        if self.last8.len() == 8 {
            let stored = u64::from_le_bytes(self.last8.clone().try_into().expect("8 bytes"));
            let digest = std::mem::replace(&mut self.digest, rdb::CRC64.digest());
            let computed = digest.finalize();
            // A server with rdbchecksum off writes zeros.
            if stored != 0 && stored != computed {
                return Err(err!(
                    Corrupt,
                    "the RDB {} sent fails its checksum (stored {stored:016x}, computed {computed:016x}); nothing was saved",
                    self.client.shown
                ));
            }
        }
        Ok(())
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.ended {
            return Ok(0);
        }
        if let Some(left) = self.left {
            if left == 0 {
                self.ended = true;
                self.finish()?;
                return Ok(0);
            }
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = self
                .client
                .raw()
                .read(&mut buf[..want])
                .map_err(|e| Error::io(&self.client.shown, e))?;
            if n == 0 {
                return Err(err!(
                    Unavailable,
                    "{} closed the connection {left} bytes before the end of its data",
                    self.client.shown
                ));
            }
            self.left = Some(left - n as u64);
            self.pass(&buf[..n]);
            return Ok(n);
        }
        let mark = self.mark.clone().expect("EOF-marked payload");
        loop {
            if let Some(at) = self
                .held
                .windows(mark.len())
                .position(|w| w == mark.as_slice())
            {
                self.held.truncate(at);
                let n = buf.len().min(self.held.len());
                let out: Vec<u8> = self.held.drain(..n).collect();
                buf[..n].copy_from_slice(&out);
                if self.held.is_empty() && n == 0 {
                    self.ended = true;
                    self.finish()?;
                    return Ok(0);
                }
                // The mark stays found: re-add it so the next call sees it again.
                self.held.extend_from_slice(&mark);
                self.pass(&out);
                return Ok(n);
            }
            // Everything but the last mark-length bytes is payload for sure.
            if self.held.len() > mark.len() {
                let n = buf.len().min(self.held.len() - mark.len());
                let out: Vec<u8> = self.held.drain(..n).collect();
                buf[..n].copy_from_slice(&out);
                self.pass(&out);
                return Ok(n);
            }
            let mut more = vec![0u8; 1 << 16];
            let n = self
                .client
                .raw()
                .read(&mut more)
                .map_err(|e| Error::io(&self.client.shown, e))?;
            if n == 0 {
                return Err(err!(
                    Unavailable,
                    "{} closed the connection before the end of its data",
                    self.client.shown
                ));
            }
            self.held.extend_from_slice(&more[..n]);
        }
    }
}

impl Read for Payload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf).map_err(|e| {
            let msg = e.message().to_owned();
            *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            io::Error::other(msg)
        })
    }
}

/// A blocking reader over chunks sent on a channel.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Counts keys per database in an RDB stream.
fn count_keys(input: impl Read) -> Result<(rdb::Header, BTreeMap<u64, u64>)> {
    let mut p = rdb::Parser::new(io::BufReader::with_capacity(1 << 16, input))?;
    let mut keys = BTreeMap::new();
    while let Some(e) = p.next_entry()? {
        *keys.entry(e.db).or_insert(0) += 1;
    }
    Ok((p.header.clone(), keys))
}

/// Backs up the Redis server `options.url` names into `repo`.
pub async fn backup_redis(
    repo: &Repository,
    options: &RedisBackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<Snapshot> {
    let url = options.url.clone();
    let timeout = options.timeout;
    let (client, version, reported) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut c = url.connect(timeout)?;
        let version = c
            .info("server")?
            .into_iter()
            .find(|(k, _)| k == "redis_version")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let reported = c.keyspace()?;
        Ok((c, version, reported))
    })
    .await
    .map_err(|e| err!(Io, "the Redis worker failed: {e}"))??;

    let mut payload = Payload::start(client)?;
    let (tx, rx) = sync_channel::<Vec<u8>>(64);
    payload.tee = Some(tx);
    let error = payload.error.clone();
    let counter = std::thread::spawn(move || {
        count_keys(ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        })
    });

    let mut writer = repo.begin_snapshot(SnapshotKind::new(KIND_REDIS), &options.url.to_string());
    for (k, v) in &options.tags {
        writer.tag(k, v);
    }
    writer.set_progress(progress.clone());
    progress.phase("sync");
    let stored = writer.add_file_blocking(RDB_FILE, payload).await;
    if let Some(e) = error.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(e.context(format!("backing up {}", options.url)));
    }
    stored?;
    let tally = counter
        .join()
        .map_err(|_| err!(Io, "the key counter failed"))?;
    let (rdb_version, keys, keys_note) = match tally {
        Ok((h, k)) => (h.version, Some(k), None),
        Err(e) => (0, None, Some(e.message().to_owned())),
    };
    let meta = RedisMetadata {
        server: options.url.to_string(),
        redis_version: version,
        rdb_version,
        keys,
        keys_reported: reported,
        keys_note,
    };
    progress.phase("commit");
    writer
        .commit(serde_json::to_value(&meta).expect("metadata serializes"))
        .await
}

/// Where a restore goes: `drkit restore-redis`, Python and `redis.restore`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisRestoreOptions {
    /// A running server: every key replayed with `RESTORE … REPLACE`.
    #[serde(default)]
    pub url: Option<RedisUrl>,
    /// Or a stopped server's data folder: the RDB written there as `dbfilename`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The RDB's file name in `data_dir` (the server's `dbfilename`).
    #[serde(default = "default_dbfilename")]
    pub dbfilename: String,
    /// Replace an RDB already in `data_dir`, or restore into a server that holds keys
    /// (keys of the snapshot replace theirs; others stay).
    #[serde(default)]
    pub overwrite: bool,
    /// How long the server may take to answer.
    #[serde(default = "default_timeout", with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub timeout: Duration,
}

pub(crate) fn default_dbfilename() -> String {
    "dump.rdb".to_owned()
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RedisRestoreReport {
    /// The snapshot.
    pub snapshot: String,
    /// Where: the server or the file written.
    pub to: String,
    /// Keys restored per database (replay), or the snapshot's count (data folder).
    pub keys: BTreeMap<u64, u64>,
    /// Keys whose expiry had passed, not restored (as Redis itself drops them on load).
    pub expired: u64,
    /// Keys per database the server holds afterwards (replay).
    pub server_keys: BTreeMap<u64, u64>,
    /// Seconds it took.
    pub seconds: f64,
}

/// Restores `snapshot` (of kind `redis`) as `options` say.
pub async fn restore_redis(
    repo: &Repository,
    snapshot: &Snapshot,
    options: &RedisRestoreOptions,
) -> Result<RedisRestoreReport> {
    if snapshot.kind.as_str() != KIND_REDIS {
        return Err(err!(
            InvalidInput,
            "snapshot {} is a {} snapshot, not a Redis one",
            snapshot.id,
            snapshot.kind
        ));
    }
    let started = std::time::Instant::now();
    let meta: RedisMetadata = serde_json::from_value(snapshot.metadata.clone()).unwrap_or_default();
    match (&options.url, &options.data_dir) {
        (Some(_), Some(_)) | (None, None) => Err(err!(
            InvalidInput,
            "restore into either a running server (url) or a stopped server's data folder (data_dir), one of the two"
        )),
        (None, Some(dir)) => {
            let to = to_data_dir(repo, snapshot, dir, &options.dbfilename, options.overwrite).await?;
            Ok(RedisRestoreReport {
                snapshot: snapshot.id.to_string(),
                to: to.display().to_string(),
                keys: meta.keys.unwrap_or_default(),
                expired: 0,
                server_keys: BTreeMap::new(),
                seconds: started.elapsed().as_secs_f64(),
            })
        }
        (Some(url), None) => {
            let stream = crate::files::blocking_snapshot_reader(repo, snapshot, RDB_FILE)?;
            let url = url.clone();
            let overwrite = options.overwrite;
            let timeout = options.timeout;
            let (keys, expired, server_keys) =
                tokio::task::spawn_blocking(move || replay(&url, stream, overwrite, timeout))
                    .await
                    .map_err(|e| err!(Io, "the Redis worker failed: {e}"))??;
            if let Some(want) = &meta.keys {
                for (db, n) in want {
                    let got = keys.get(db).copied().unwrap_or(0);
                    if got + expired < *n {
                        return Err(err!(
                            Corrupt,
                            "db{db}: the snapshot holds {n} keys, {got} were restored ({expired} had expired)"
                        ));
                    }
                }
            }
            Ok(RedisRestoreReport {
                snapshot: snapshot.id.to_string(),
                to: options.url.as_ref().map(ToString::to_string).unwrap_or_default(),
                keys,
                expired,
                server_keys,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
    }
}

async fn to_data_dir(
    repo: &Repository,
    snapshot: &Snapshot,
    dir: &std::path::Path,
    name: &str,
    overwrite: bool,
) -> Result<PathBuf> {
    if name.contains('/') || name.is_empty() {
        return Err(err!(
            InvalidInput,
            "dbfilename {name:?} must be a file name"
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let to = dir.join(name);
    if to.exists() && !overwrite {
        return Err(err!(
            Conflict,
            "{} already exists; stop the server and pass overwrite (--overwrite) to replace it",
            to.display()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix(".drkit-restore-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir.display(), e))?;
    let mut file =
        tokio::fs::File::from_std(tmp.reopen().map_err(|e| Error::io(dir.display(), e))?);
    repo.restore_file(snapshot, RDB_FILE, &mut file, &crate::progress::NoProgress)
        .await?;
    file.sync_all()
        .await
        .map_err(|e| Error::io(dir.display(), e))?;
    drop(file);
    tmp.persist(&to)
        .map_err(|e| Error::io(to.display(), e.error))?;
    Ok(to)
}

type Replayed = (BTreeMap<u64, u64>, u64, BTreeMap<u64, u64>);

/// Replays every key of the RDB into a running server, pipelined.
fn replay(
    url: &RedisUrl,
    stream: impl Read,
    overwrite: bool,
    timeout: Duration,
) -> Result<Replayed> {
    let mut c = url.connect(timeout)?;
    let before = c.keyspace()?;
    let held: u64 = before.values().sum();
    if held > 0 && !overwrite {
        return Err(err!(
            Conflict,
            "{url} already holds {held} keys; restore into an empty server, or pass overwrite (--overwrite) to replace the snapshot's keys among them"
        ));
    }
    let mut p = rdb::Parser::new(io::BufReader::with_capacity(1 << 20, stream))?;
    let version = p.header.version;
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let mut keys: BTreeMap<u64, u64> = BTreeMap::new();
    let mut expired = 0u64;
    let mut db = u64::MAX;
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let flush = |c: &mut conn::Client, pending: &mut Vec<Vec<u8>>| -> Result<()> {
        c.flush()?;
        for key in pending.drain(..) {
            if let conn::Reply::Error(e) = c.reply()? {
                let hint = if e.contains("payload version") {
                    "; the server is older than the one backed up: restore into the same Redis version or newer"
                } else {
                    ""
                };
                return Err(err!(
                    External,
                    "{url} refused key {:?}: {e}{hint}",
                    String::from_utf8_lossy(&key)
                ));
            }
        }
        Ok(())
    };
    while let Some(e) = p.next_entry()? {
        if let Some(at) = e.expire_ms {
            if at <= now_ms {
                expired += 1;
                continue;
            }
        }
        if e.db != db {
            flush(&mut c, &mut pending)?;
            c.call(&[b"SELECT", e.db.to_string().as_bytes()])?;
            db = e.db;
        }
        let payload = e.dump_payload(version);
        let ttl = e.expire_ms.unwrap_or(0).to_string();
        let mut args: Vec<&[u8]> = vec![b"RESTORE", &e.key, ttl.as_bytes(), &payload, b"REPLACE"];
        if e.expire_ms.is_some() {
            args.push(b"ABSTTL");
        }
        c.send(&args)?;
        pending.push(e.key);
        *keys.entry(e.db).or_insert(0) += 1;
        if pending.len() >= 1000 {
            flush(&mut c, &mut pending)?;
        }
    }
    flush(&mut c, &mut pending)?;
    let after = c.keyspace()?;
    if held == 0 {
        for (db, n) in &keys {
            let have = after.get(db).copied().unwrap_or(0);
            // Keys may expire between their restore and this count, never appear.
            if have > *n {
                return Err(err!(
                    Corrupt,
                    "db{db} of {url} holds {have} keys after restoring {n} into it empty"
                ));
            }
        }
    }
    let _ = io::sink().flush();
    Ok((keys, expired, after))
}

/// Picks the `redis` snapshot `pick` names.
pub async fn pick(repo: &Repository, pick: &Pick) -> Result<Snapshot> {
    repo.pick(pick, KIND_REDIS, None).await
}

/// Keys per database of the server `url` names, read with `INFO keyspace` (for plans:
/// it also proves the address and the password).
pub async fn keyspace(url: &RedisUrl, timeout: Duration) -> Result<BTreeMap<u64, u64>> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || url.connect(timeout)?.keyspace())
        .await
        .map_err(|e| err!(Io, "the Redis worker failed: {e}"))?
}
