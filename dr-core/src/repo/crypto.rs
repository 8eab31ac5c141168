//! Keys and sealing. A repository has two random 256-bit keys: one encrypts chunks and
//! manifests (XChaCha20-Poly1305, random 192-bit nonce per object, so nonces never need
//! coordination between writers), one keys the BLAKE3 chunk ids (so equal content in two
//! repositories gets unrelated ids and ids leak nothing about content). Both are stored in
//! the config, sealed by a key-encryption key that comes from a passphrase (Argon2id) or a
//! key file; changing the passphrase never rewrites data.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{err, Error, Result};

const NONCE_LEN: usize = 24;

/// Where the key that opens a repository comes from.
#[derive(Clone)]
pub enum Secret {
    /// A passphrase, stretched with Argon2id.
    Passphrase(Zeroizing<String>),
    /// A file holding 32 random bytes, raw or as 64 hex digits.
    KeyFile(PathBuf),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            Self::KeyFile(p) => write!(f, "KeyFile({})", p.display()),
        }
    }
}

impl Secret {
    /// Reads `DRKIT_PASSWORD`, `DRKIT_PASSWORD_FILE` or `DRKIT_KEY_FILE`, in that order.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_env_prefixed("DRKIT_")
    }

    /// At most one secret given by a caller (a passphrase, a password file's first line,
    /// a key file), checked as [`Secret::from_password_file`] checks; none given falls
    /// back to [`Secret::from_env`].
    pub fn from_one_of(
        password: Option<String>,
        password_file: Option<PathBuf>,
        key_file: Option<PathBuf>,
    ) -> Result<Option<Self>> {
        match (password, password_file, key_file) {
            (Some(p), None, None) => Ok(Some(Self::Passphrase(Zeroizing::new(p)))),
            (None, Some(f), None) => Self::from_password_file(&f).map(Some),
            (None, None, Some(k)) => Ok(Some(Self::KeyFile(k))),
            (None, None, None) => Self::from_env(),
            _ => Err(crate::err!(
                InvalidInput,
                "give at most one of password, password_file and key_file"
            )),
        }
    }

    /// The same with another prefix (`DRKIT_TO_` for a copy's destination).
    pub fn from_env_prefixed(prefix: &str) -> Result<Option<Self>> {
        if let Ok(p) = std::env::var(format!("{prefix}PASSWORD")) {
            return Ok(Some(Self::Passphrase(Zeroizing::new(p))));
        }
        if let Ok(path) = std::env::var(format!("{prefix}PASSWORD_FILE")) {
            return Self::from_password_file(Path::new(&path))
                .map(Some)
                .map_err(|e| e.context(format!("{prefix}PASSWORD_FILE")));
        }
        if let Ok(path) = std::env::var(format!("{prefix}KEY_FILE")) {
            return Ok(Some(Self::KeyFile(PathBuf::from(path))));
        }
        Ok(None)
    }

    /// Checks the secret is usable: a key file is read and its format checked.
    pub fn check(&self) -> Result<()> {
        match self {
            Self::KeyFile(_) => KeySource::KeyFile.derive(self).map(|_| ()),
            Self::Passphrase(_) => Ok(()),
        }
    }

    /// The passphrase on the first line of the file at `path`.
    pub fn from_password_file(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
        );
        let line = text.lines().next().unwrap_or_default().to_owned();
        if line.is_empty() {
            return Err(err!(
                InvalidInput,
                "{} holds no passphrase on its first line",
                path.display()
            ));
        }
        Ok(Self::Passphrase(Zeroizing::new(line)))
    }

    /// Writes a new random key file at `path` (mode 0600) and returns the secret for it.
    pub fn generate_key_file(path: &Path) -> Result<Self> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key = random::<32>()?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(format!("creating key file {}", path.display()), e))?;
        file.write_all(hex::encode(key).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(format!("writing key file {}", path.display()), e))?;
        Ok(Self::KeyFile(path.to_owned()))
    }
}

/// How the key-encryption key is derived; stored in the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum KeySource {
    /// Argon2id over a passphrase.
    Argon2id {
        /// Memory in KiB.
        m_cost: u32,
        /// Iterations.
        t_cost: u32,
        /// Lanes.
        p_cost: u32,
        /// Hex salt.
        salt: String,
    },
    /// A 32-byte key file used as is.
    KeyFile,
}

impl KeySource {
    pub(crate) fn new_for(secret: &Secret) -> Result<Self> {
        Ok(match secret {
            Secret::Passphrase(_) => Self::Argon2id {
                m_cost: 64 * 1024,
                t_cost: 3,
                p_cost: 1,
                salt: hex::encode(random::<16>()?),
            },
            Secret::KeyFile(_) => Self::KeyFile,
        })
    }

    /// Derives the key-encryption key from `secret`.
    pub(crate) fn derive(&self, secret: &Secret) -> Result<Zeroizing<[u8; 32]>> {
        let mut kek = Zeroizing::new([0u8; 32]);
        match (self, secret) {
            (
                Self::Argon2id {
                    m_cost,
                    t_cost,
                    p_cost,
                    salt,
                },
                Secret::Passphrase(pass),
            ) => {
                let salt = hex::decode(salt)
                    .map_err(|e| err!(Corrupt, "repository config: bad salt: {e}"))?;
                let params = argon2::Params::new(*m_cost, *t_cost, *p_cost, Some(32))
                    .map_err(|e| err!(Corrupt, "repository config: bad Argon2 parameters: {e}"))?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(pass.as_bytes(), &salt, kek.as_mut())
                    .map_err(|e| err!(InvalidInput, "deriving key from passphrase: {e}"))?;
            }
            (Self::KeyFile, Secret::KeyFile(path)) => {
                let raw =
                    Zeroizing::new(std::fs::read(path).map_err(|e| {
                        Error::io(format!("reading key file {}", path.display()), e)
                    })?);
                let text = String::from_utf8_lossy(&raw);
                let trimmed = text.trim();
                if raw.len() == 32 {
                    kek.copy_from_slice(&raw);
                } else if trimmed.len() == 64 {
                    hex::decode_to_slice(trimmed, kek.as_mut()).map_err(|_| {
                        err!(
                            InvalidInput,
                            "key file {} is not 64 hex digits or 32 raw bytes",
                            path.display()
                        )
                    })?;
                } else {
                    return Err(err!(
                        InvalidInput,
                        "key file {} must hold 32 random bytes, raw or as 64 hex digits",
                        path.display()
                    ));
                }
            }
            (Self::Argon2id { .. }, Secret::KeyFile(_)) => {
                return Err(err!(WrongKey, "this repository is opened with a passphrase, not a key file; set DRKIT_PASSWORD or DRKIT_PASSWORD_FILE"));
            }
            (Self::KeyFile, Secret::Passphrase(_)) => {
                return Err(err!(WrongKey, "this repository is opened with a key file, not a passphrase; set DRKIT_KEY_FILE"));
            }
        }
        Ok(kek)
    }
}

/// The repository's data keys, wiped from memory when dropped.
#[derive(Clone)]
pub struct Keys {
    enc: [u8; 32],
    id: [u8; 32],
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.id.zeroize();
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self {
            enc: random()?,
            id: random()?,
        })
    }

    /// Seals both keys under `kek`; `aad` binds them to one repository.
    pub(crate) fn wrap(&self, kek: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        let mut plain = Zeroizing::new([0u8; 64]);
        plain[..32].copy_from_slice(&self.enc);
        plain[32..].copy_from_slice(&self.id);
        seal(kek, aad, plain.as_ref())
    }

    pub(crate) fn unwrap(kek: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Self> {
        let plain = Zeroizing::new(open(kek, aad, sealed).map_err(|_| {
            err!(
                WrongKey,
                "the passphrase or key file does not open this repository (wrong secret?)"
            )
        })?);
        if plain.len() != 64 {
            return Err(err!(
                Corrupt,
                "repository config: sealed keys have the wrong length"
            ));
        }
        let mut keys = Self {
            enc: [0; 32],
            id: [0; 32],
        };
        keys.enc.copy_from_slice(&plain[..32]);
        keys.id.copy_from_slice(&plain[32..]);
        Ok(keys)
    }

    pub(crate) fn enc_key(&self) -> &[u8; 32] {
        &self.enc
    }

    pub(crate) fn id_key(&self) -> &[u8; 32] {
        &self.id
    }
}

/// Encrypts `plain`; output is nonce || ciphertext || tag.
pub(crate) fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = random::<NONCE_LEN>()?;
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| err!(Io, "encryption failed"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts what [`seal`] wrote; any change to the bytes or the `aad` fails.
pub(crate) fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(err!(Corrupt, "sealed object is truncated"));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| err!(Corrupt, "authentication tag mismatch"))
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(|e| err!(Io, "the OS gave no randomness: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_round_trips_and_detects_tampering() {
        let key = random::<32>().unwrap();
        let mut sealed = seal(&key, b"aad", b"secret rows").unwrap();
        assert_eq!(open(&key, b"aad", &sealed).unwrap(), b"secret rows");
        assert!(open(&key, b"other", &sealed).is_err());
        sealed[30] ^= 1;
        assert!(open(&key, b"aad", &sealed).is_err());
    }

    #[test]
    fn wrong_passphrase_is_wrong_key() {
        let good = Secret::Passphrase(Zeroizing::new("right".into()));
        let bad = Secret::Passphrase(Zeroizing::new("wrong".into()));
        let source = KeySource::Argon2id {
            m_cost: 256,
            t_cost: 1,
            p_cost: 1,
            salt: "00112233445566778899aabbccddeeff".into(),
        };
        let keys = Keys::generate().unwrap();
        let sealed = keys.wrap(&source.derive(&good).unwrap(), b"r").unwrap();
        assert!(Keys::unwrap(&source.derive(&good).unwrap(), b"r", &sealed).is_ok());
        let e = Keys::unwrap(&source.derive(&bad).unwrap(), b"r", &sealed).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::WrongKey);
    }
}
