//! The repository config: the one object written at `init`, read by every open.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::crypto::{KeySource, Secret};
use crate::{err, Result};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The key of the config object.
pub const CONFIG_KEY: &str = "config";

/// Content-defined chunking parameters (bytes).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Smallest chunk.
    pub min: u32,
    /// Target average chunk.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl Default for ChunkerParams {
    // 1 MiB average: ~1,000 objects per GiB keeps S3 request costs negligible, while a
    // changed row rewrites only about one chunk. Measured in the crate docs of `repo`.
    fn default() -> Self {
        Self {
            min: 256 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds FastCDC accepts.
    pub fn validate(&self) -> Result<()> {
        let ok = (64..=1 << 20).contains(&self.min)
            && (256..=4 << 20).contains(&self.avg)
            && (1024..=16 << 20).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max;
        if ok {
            Ok(())
        } else {
            Err(err!(InvalidInput, "chunk sizes {self:?} are out of range: need 64 B ≤ min ≤ 1 MiB, 256 B ≤ avg ≤ 4 MiB, 1 KiB ≤ max ≤ 16 MiB, min ≤ avg ≤ max"))
        }
    }
}

/// How chunks are encrypted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// Always `xchacha20-poly1305` in format 1.
    pub algorithm: String,
    /// How the key-encryption key is derived.
    pub key_source: KeySource,
    /// The data keys, sealed by the key-encryption key (hex).
    pub sealed_keys: String,
}

/// What `config` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepoConfig {
    /// Repository format version.
    pub format: u32,
    /// Random id of this repository.
    pub id: String,
    /// When it was created.
    pub created: Timestamp,
    /// The drkit version that created it.
    pub created_by: String,
    /// Chunking parameters; fixed for the repository's life so chunks keep deduplicating.
    pub chunker: ChunkerParams,
    /// zstd level for new chunks.
    pub compression_level: i32,
    /// Encryption, if any.
    pub encryption: Option<EncryptionConfig>,
    /// Whether the store enforces create-only writes, as probed at init; `None` for
    /// repositories made before the probe existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_only: Option<CreateOnly>,
}

/// What a store does with a create-only put of a key that exists.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CreateOnly {
    /// Refuses it: store-based locks are safe.
    Enforced,
    /// Overwrites: backups still work, store-based locks refuse to run.
    Ignored,
}

/// What `Repository::init` creates.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The secret to encrypt with; `None` makes an unencrypted repository.
    pub secret: Option<Secret>,
    /// Chunk sizes.
    pub chunker: ChunkerParams,
    /// zstd level (1–19).
    pub compression_level: i32,
}

impl InitOptions {
    /// An unencrypted repository with default chunking and compression.
    #[must_use]
    pub fn unencrypted() -> Self {
        Self {
            secret: None,
            chunker: ChunkerParams::default(),
            compression_level: 3,
        }
    }

    /// An encrypted repository opened by `secret`.
    #[must_use]
    pub fn encrypted(secret: Secret) -> Self {
        Self {
            secret: Some(secret),
            ..Self::unencrypted()
        }
    }

    /// Encrypted when `DRKIT_PASSWORD`, `DRKIT_PASSWORD_FILE` or `DRKIT_KEY_FILE` is set.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            secret: Secret::from_env()?,
            ..Self::unencrypted()
        })
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        self.chunker.validate()?;
        if !(1..=19).contains(&self.compression_level) {
            return Err(err!(
                InvalidInput,
                "compression level {} is out of range 1..=19",
                self.compression_level
            ));
        }
        Ok(())
    }
}

/// What `Repository::open` needs.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The secret for an encrypted repository.
    pub secret: Option<Secret>,
    /// Chunks processed or fetched at once; 0 means two per core.
    pub parallelism: usize,
}

impl OpenOptions {
    /// Reads the secret from the environment (see [`Secret::from_env`]); a bad
    /// `DRKIT_PASSWORD_FILE` surfaces when the repository is opened.
    #[must_use]
    pub fn from_env() -> Self {
        Self {
            secret: Secret::from_env().ok().flatten(),
            parallelism: 0,
        }
    }

    /// With `secret`.
    #[must_use]
    pub fn with_secret(secret: Secret) -> Self {
        Self {
            secret: Some(secret),
            parallelism: 0,
        }
    }
}
