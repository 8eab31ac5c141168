//! The repository: deduplicated, compressed, optionally encrypted snapshots in a store.
//!
//! Layout in the store:
//!
//! ```text
//! config                      format, chunker parameters, sealed keys (plain JSON)
//! chunks/<2 hex>/<64 hex>     one object per chunk: zstd, then XChaCha20-Poly1305
//! snapshots/<time>-<random>   manifest: chunk lists and metadata, written last, create-only
//! ```
//!
//! **One object per chunk, not packs.** Measured with `benches/pg_backup_restore.sh`: a
//! 771 MiB mixed database gives a 616 MiB dump, stored as 516 chunk objects (131 MiB);
//! after a 1 % append the next backup uploads 6 new chunks (1.1 MiB). That is about 840
//! PUTs per GiB of dump for a first backup and a handful for each daily one: at S3 request
//! prices a fraction of a cent, and listing a TiB of chunks is about a thousand 1,000-key
//! pages. Packs (restic, borg) would cut requests further but make garbage collection
//! rewrite packs and restores issue ranged reads; at a 1 MiB average chunk they buy
//! little, and one object per chunk keeps prune a plain delete of unreferenced keys.
//!
//! Every read checks the chunk's authentication tag (when encrypted), its length and its
//! BLAKE3 id, so a flipped byte anywhere fails loudly with the snapshot and chunk named.

mod chunk;
mod config;
mod copy;
mod crypto;
mod keyslots;
mod lock;
mod manifest;
mod objects;
mod prune;
mod reader;
pub mod retention;
mod select;
mod writer;

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;

pub use self::chunk::ChunkId;
pub use self::config::{
    ChunkerParams, CreateOnly, EncryptionConfig, InitOptions, OpenOptions, RepoConfig, CONFIG_KEY,
    FORMAT_VERSION,
};
pub use self::copy::CopyReport;
pub use self::crypto::{KeySource, Keys, Secret};
pub use self::keyslots::{KeySlot, KEYS_PREFIX};
pub use self::lock::{RepoLock, StoreLock};
pub use self::manifest::{
    ChunkRef, FileEntry, FileSummary, Snapshot, SnapshotId, SnapshotKind, SnapshotStats,
    SnapshotSummary,
};
pub use self::prune::{PruneOptions, PruneReport, Verified, STALE_MARKER};
pub use self::reader::{ChunkProblem, VerifyReport};
pub use self::select::{subject, Pick, Selection, SnapshotRef};
pub use self::writer::{FileSink, Segmented, SnapshotWriter, StoredFile};
use crate::store::{BackupStore, BackupStoreExt, DynStore, PutMode};
use crate::{err, Error, ErrorKind, Result};

const KEYS_AAD: &[u8] = b"drkit-keys-v1:";

fn already_exists(store: &dyn BackupStore) -> Error {
    err!(
        AlreadyExists,
        "a drkit repository already exists at {}; use it, or pick another location",
        store.url()
    )
}

/// Writes a probe key create-only twice: a store that accepts the second write does not
/// enforce create-only puts (garage 2.5, some S3 clones).
async fn probe_create_only(store: &dyn BackupStore, id: &str) -> Result<CreateOnly> {
    let key = format!("locks/probe-{id}");
    store
        .put_bytes(&key, bytes::Bytes::from_static(b"1"), PutMode::CreateOnly)
        .await?;
    let second = store
        .put_bytes(&key, bytes::Bytes::from_static(b"2"), PutMode::CreateOnly)
        .await;
    store.delete(&key).await?;
    match second {
        Ok(_) => {
            tracing::warn!("{} does not enforce create-only writes: backups work, store-based locks will refuse to run", store.url());
            Ok(CreateOnly::Ignored)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(CreateOnly::Enforced),
        Err(e) => Err(e.context(format!("probing {}", store.url()))),
    }
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: DynStore,
    config: RepoConfig,
    keys: Option<Keys>,
    parallelism: usize,
}

fn default_parallelism(requested: usize, store_hint: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    let cpu = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) * 2;
    // A remote store hides its round trips behind more requests in flight.
    cpu.max(store_hint)
}

impl Repository {
    /// Creates a repository in `store`; fails if one is already there.
    pub async fn init(store: DynStore, options: &InitOptions) -> Result<Self> {
        options.validate()?;
        let id = hex::encode(crypto::random::<16>()?);
        let create_only = probe_create_only(&*store, &id).await?;
        let (keys, encryption) = match &options.secret {
            None => (None, None),
            Some(secret) => {
                let source = KeySource::new_for(secret)?;
                let kek = source.derive(secret)?;
                let keys = Keys::generate()?;
                let sealed = keys.wrap(&kek, &[KEYS_AAD, id.as_bytes()].concat())?;
                let enc = EncryptionConfig {
                    algorithm: "xchacha20-poly1305".into(),
                    key_source: source,
                    sealed_keys: hex::encode(sealed),
                };
                (Some(keys), Some(enc))
            }
        };
        let config = RepoConfig {
            format: FORMAT_VERSION,
            id,
            created: Timestamp::now(),
            created_by: format!("drkit {}", env!("CARGO_PKG_VERSION")),
            chunker: options.chunker,
            compression_level: options.compression_level,
            encryption,
            create_only: Some(create_only),
        };
        let json = serde_json::to_vec_pretty(&config).expect("config serializes");
        // Where create-only is not enforced, the create-only put below could replace an
        // existing repository's keys: look first.
        if config.create_only == Some(CreateOnly::Ignored) && store.head(CONFIG_KEY).await.is_ok() {
            return Err(already_exists(&*store));
        }
        match store
            .put_bytes(CONFIG_KEY, json.into(), PutMode::CreateOnly)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(already_exists(&*store)),
            Err(e) => return Err(e.context(format!("initialising repository at {}", store.url()))),
        }
        Ok(Self::from_parts(store, config, keys, 0))
    }

    /// Opens the repository in `store`.
    pub async fn open(store: DynStore, options: &OpenOptions) -> Result<Self> {
        let url = store.url();
        let raw = match store.get_bytes(CONFIG_KEY).await {
            Ok(raw) => raw,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(
                    err!(NotFound, "no drkit repository at {url} (no config object)")
                        .with_hint(crate::Hint::InitRepository { url }),
                );
            }
            Err(e) => return Err(e.context(format!("opening repository at {url}"))),
        };
        let config: RepoConfig = serde_json::from_slice(&raw)
            .map_err(|e| err!(Corrupt, "repository config at {url} does not parse: {e}"))?;
        if config.format > FORMAT_VERSION {
            return Err(err!(Unsupported, "repository at {url} has format {}, newer than this drkit ({FORMAT_VERSION}); upgrade drkit", config.format));
        }
        let keys = match (&config.encryption, &options.secret) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(err!(WrongKey, "repository at {url} is encrypted: set DRKIT_PASSWORD, DRKIT_PASSWORD_FILE or DRKIT_KEY_FILE"));
            }
            (Some(enc), Some(secret)) => {
                let sealed = hex::decode(&enc.sealed_keys).map_err(|e| {
                    err!(
                        Corrupt,
                        "repository config at {url}: sealed keys are not hex: {e}"
                    )
                })?;
                let own = enc.key_source.derive(secret).and_then(|kek| {
                    Keys::unwrap(&kek, &[KEYS_AAD, config.id.as_bytes()].concat(), &sealed)
                });
                let keys = match own {
                    Ok(keys) => Ok(keys),
                    Err(e) if e.kind() == ErrorKind::WrongKey => {
                        keyslots::open_with_slots(&*store, &config.id, secret, e).await
                    }
                    Err(e) => Err(e),
                }
                .map_err(|e| e.context(format!("opening repository at {url}")))?;
                Some(keys)
            }
        };
        Ok(Self::from_parts(store, config, keys, options.parallelism))
    }

    fn from_parts(
        store: DynStore,
        config: RepoConfig,
        keys: Option<Keys>,
        parallelism: usize,
    ) -> Self {
        let parallelism = default_parallelism(parallelism, store.concurrency_hint());
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                keys,
                parallelism,
            }),
        }
    }

    /// The store underneath.
    #[must_use]
    pub fn store(&self) -> &DynStore {
        &self.inner.store
    }

    /// The config read at open.
    #[must_use]
    pub fn config(&self) -> &RepoConfig {
        &self.inner.config
    }

    /// Whether chunks and manifests are encrypted.
    #[must_use]
    pub fn is_encrypted(&self) -> bool {
        self.inner.keys.is_some()
    }

    pub(crate) fn keys(&self) -> Option<&Keys> {
        self.inner.keys.as_ref()
    }

    /// How many chunks or objects this repository keeps in flight.
    #[must_use]
    pub fn parallelism(&self) -> usize {
        self.inner.parallelism
    }

    /// Starts a snapshot; nothing is visible until [`SnapshotWriter::commit`].
    #[must_use]
    pub fn begin_snapshot(&self, kind: SnapshotKind, source: &str) -> SnapshotWriter {
        SnapshotWriter::new(self.clone(), kind, source)
    }

    /// Every snapshot, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let keys: Vec<String> = self
            .inner
            .store
            .list("snapshots/")
            .map_ok(|m| m.key)
            .try_collect()
            .await?;
        let mut ids: Vec<SnapshotId> = keys
            .iter()
            .filter_map(|k| k.strip_prefix("snapshots/"))
            .filter_map(|s| SnapshotId::parse(s).ok())
            .collect();
        ids.sort();
        let this = self.clone();
        futures::stream::iter(ids)
            .map(move |id| {
                let this = this.clone();
                async move { this.load_snapshot(&id).await }
            })
            .buffered(8)
            .try_collect::<Vec<Snapshot>>()
            .await
            .map(|mut all| {
                all.sort_by(|a, b| {
                    (a.started_at, a.finished_at).cmp(&(b.started_at, b.finished_at))
                });
                all
            })
    }

    /// Reads one manifest.
    pub async fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let raw = self.inner.store.get_bytes(&id.key()).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                err!(
                    NotFound,
                    "snapshot {id} not found in {}; list them with `drkit snapshots`",
                    self.inner.store.url()
                )
            } else {
                e
            }
        })?;
        let aad = format!("snapshot:{id}");
        let plain = chunk::decode(&raw, self.keys(), aad.as_bytes(), 256 << 20)
            .map_err(|e| e.context(format!("snapshot {id} manifest is unreadable")))?;
        let snap: Snapshot = serde_json::from_slice(&plain)
            .map_err(|e| err!(Corrupt, "snapshot {id} manifest does not parse: {e}"))?;
        if &snap.id != id {
            return Err(err!(
                Corrupt,
                "snapshot manifest {id} claims to be {}",
                snap.id
            ));
        }
        Ok(snap)
    }

    /// Finds a snapshot by `latest`, a whole id, or a unique id prefix.
    pub async fn find_snapshot(&self, reference: &str) -> Result<Snapshot> {
        let all = self.snapshots().await?;
        let url = self.inner.store.url();
        if reference == "latest" {
            return all
                .into_iter()
                .max_by_key(|s| s.finished_at)
                .ok_or_else(|| {
                    err!(
                        NotFound,
                        "repository {url} has no snapshots yet; take one with `drkit backup`"
                    )
                });
        }
        let mut matches: Vec<Snapshot> = all
            .into_iter()
            .filter(|s| s.id.as_str().starts_with(reference))
            .collect();
        match matches.len() {
            1 => Ok(matches.remove(0)),
            0 => Err(err!(
                NotFound,
                "no snapshot {reference:?} in {url}; list them with `drkit snapshots`"
            )),
            n => Err(err!(
                InvalidInput,
                "{n} snapshots start with {reference:?}; give more of the id"
            )),
        }
    }

    pub(crate) async fn write_manifest(&self, snap: &Snapshot) -> Result<()> {
        let json = serde_json::to_vec(snap).expect("manifest serializes");
        let aad = format!("snapshot:{}", snap.id);
        let level = self.inner.config.compression_level;
        let encoded = chunk::encode(&json, level, self.keys(), aad.as_bytes())?;
        self.inner
            .store
            .put_bytes(&snap.id.key(), encoded.into(), PutMode::CreateOnly)
            .await
            .map_err(|e: Error| e.context(format!("writing manifest of snapshot {}", snap.id)))?;
        Ok(())
    }
}
