//! More secrets that open an encrypted repository: key slots. Each holds the
//! repository's data keys sealed with another secret — a key file for PostgreSQL's
//! `archive_command` beside the passphrase people type (a key file skips Argon2id's
//! 64 MiB and ~0.3 s per call), or a second person's passphrase. A slot is an object of
//! its own under `keys/`, written create-only: adding or removing one never rewrites the
//! config, and the config's own secret always keeps working.

use futures::TryStreamExt;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::crypto::{random, KeySource, Keys, Secret};
use super::{Repository, KEYS_AAD};
use crate::store::{BackupStore, BackupStoreExt, PutMode};
use crate::{err, ErrorKind, Result};

/// Where key slots live.
pub const KEYS_PREFIX: &str = "keys/";

/// One more secret that opens the repository.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeySlot {
    /// Its id (the object is `keys/<id>`).
    pub id: String,
    /// When it was added.
    pub created: Timestamp,
    /// What it is for, as given when added.
    pub label: String,
    /// How the secret becomes the key that seals the data keys.
    pub key_source: KeySource,
    /// The data keys, sealed (hex).
    pub sealed_keys: String,
}

impl KeySlot {
    /// `passphrase` or `key file`, for listings.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self.key_source {
            KeySource::Argon2id { .. } => "passphrase",
            KeySource::KeyFile => "key file",
        }
    }

    /// The data keys, when `secret` is this slot's.
    fn open(&self, secret: &Secret, repo_id: &str) -> Result<Keys> {
        let kek = self.key_source.derive(secret)?;
        let sealed = hex::decode(&self.sealed_keys).map_err(|e| {
            err!(
                Corrupt,
                "key slot {}: sealed keys are not hex: {e}",
                self.id
            )
        })?;
        Keys::unwrap(&kek, &[KEYS_AAD, repo_id.as_bytes()].concat(), &sealed)
    }
}

impl Repository {
    /// Adds `secret` as one more way to open this repository.
    pub async fn add_key(&self, secret: &Secret, label: &str) -> Result<KeySlot> {
        let Some(keys) = self.keys().cloned() else {
            return Err(err!(
                InvalidInput,
                "the repository at {} is not encrypted: there are no keys to open",
                self.store().url()
            ));
        };
        let secret = secret.clone();
        let aad = [KEYS_AAD, self.config().id.as_bytes()].concat();
        // Argon2id takes a moment and 64 MiB: off the runtime's threads.
        let (source, sealed) = tokio::task::spawn_blocking(move || -> Result<_> {
            let source = KeySource::new_for(&secret)?;
            let kek = source.derive(&secret)?;
            Ok((source, keys.wrap(&kek, &aad)?))
        })
        .await
        .map_err(|e| err!(Io, "key worker failed: {e}"))??;
        let slot = KeySlot {
            id: hex::encode(random::<8>()?),
            created: Timestamp::now(),
            label: label.to_owned(),
            key_source: source,
            sealed_keys: hex::encode(sealed),
        };
        let json = serde_json::to_vec_pretty(&slot).expect("key slot serializes");
        self.store()
            .put_bytes(
                &format!("{KEYS_PREFIX}{}", slot.id),
                json.into(),
                PutMode::CreateOnly,
            )
            .await
            .map_err(|e| e.context("adding a key slot"))?;
        Ok(slot)
    }

    /// The key slots, oldest first.
    pub async fn key_slots(&self) -> Result<Vec<KeySlot>> {
        read_slots(&**self.store()).await
    }

    /// Removes key slot `id`; its secret no longer opens the repository (the config's
    /// own secret and other slots are untouched).
    pub async fn remove_key(&self, id: &str) -> Result<()> {
        let key = format!("{KEYS_PREFIX}{id}");
        match self.store().head(&key).await {
            Ok(_) => self.store().delete(&key).await,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let known: Vec<String> =
                    self.key_slots().await?.into_iter().map(|s| s.id).collect();
                Err(err!(
                    NotFound,
                    "no key slot {id} in {}; its slots: {}",
                    self.store().url(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            }
            Err(e) => Err(e),
        }
    }
}

async fn read_slots(store: &dyn BackupStore) -> Result<Vec<KeySlot>> {
    let keys: Vec<String> = store
        .list(KEYS_PREFIX)
        .map_ok(|m| m.key)
        .try_collect()
        .await?;
    let mut slots = Vec::new();
    for key in keys {
        let raw = store.get_bytes(&key).await?;
        let slot: KeySlot = serde_json::from_slice(&raw).map_err(|e| {
            err!(
                Corrupt,
                "key slot {key} in {} does not parse: {e}",
                store.url()
            )
        })?;
        slots.push(slot);
    }
    slots.sort_by_key(|s| s.created);
    Ok(slots)
}

/// The data keys from a key slot that `secret` opens, after the config's own secret did
/// not (`first` is why). Slots of the other kind are skipped without deriving anything.
pub(super) async fn open_with_slots(
    store: &dyn BackupStore,
    repo_id: &str,
    secret: &Secret,
    first: crate::Error,
) -> Result<Keys> {
    let slots = read_slots(store).await?;
    let mut tried = 0;
    for slot in &slots {
        let same_kind = matches!(
            (&slot.key_source, secret),
            (KeySource::Argon2id { .. }, Secret::Passphrase(_))
                | (KeySource::KeyFile, Secret::KeyFile(_))
        );
        if !same_kind {
            continue;
        }
        tried += 1;
        match slot.open(secret, repo_id) {
            Ok(keys) => return Ok(keys),
            Err(e) if e.kind() == ErrorKind::WrongKey => {}
            Err(e) => return Err(e),
        }
    }
    if tried == 0 {
        return Err(first);
    }
    Err(err!(
        WrongKey,
        "the passphrase or key file opens neither the repository at {} nor any of its {} key slots (wrong secret?)",
        store.url(),
        slots.len()
    ))
}

/// Copies the key slots to a replica (same id and keys), so the same secrets open it.
pub(super) async fn copy_slots(from: &dyn BackupStore, to: &dyn BackupStore) -> Result<()> {
    let keys: Vec<String> = from
        .list(KEYS_PREFIX)
        .map_ok(|m| m.key)
        .try_collect()
        .await?;
    for key in keys {
        let raw = from.get_bytes(&key).await?;
        match to.put_bytes(&key, raw, PutMode::CreateOnly).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
