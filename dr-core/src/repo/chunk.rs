//! Chunk ids and the on-store encoding of chunks and manifests.
//!
//! An object is `b"DK" version flags` followed by the payload; flag bit 0 means the
//! payload is zstd-compressed, bit 1 that it is sealed (nonce || ciphertext || tag). The
//! id (BLAKE3 of the plain bytes, keyed when encrypted) is the AEAD's associated data, so a
//! chunk moved to another key fails authentication instead of restoring wrong bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::crypto::{self, Keys};
use crate::{err, Result};

const MAGIC: [u8; 2] = *b"DK";
const VERSION: u8 = 1;
const FLAG_ZSTD: u8 = 1;
const FLAG_SEALED: u8 = 2;

/// The content address of a chunk.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// The id of `data` under this repository's keys.
    #[must_use]
    pub fn of(keys: Option<&Keys>, data: &[u8]) -> Self {
        match keys {
            Some(k) => Self(*blake3::keyed_hash(k.id_key(), data).as_bytes()),
            None => Self(*blake3::hash(data).as_bytes()),
        }
    }

    /// The store key of this chunk.
    #[must_use]
    pub fn key(&self) -> String {
        let hex = self.to_string();
        format!("chunks/{}/{hex}", &hex[..2])
    }

    /// Parses a store key written by [`ChunkId::key`].
    #[must_use]
    pub fn from_key(key: &str) -> Option<Self> {
        key.rsplit('/').next()?.parse().ok()
    }

    /// The first 12 hex digits, for messages.
    #[must_use]
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.short())
    }
}

impl FromStr for ChunkId {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| err!(InvalidInput, "{s:?} is not a chunk id"))?;
        Ok(Self(out))
    }
}

impl Serialize for ChunkId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Compresses (when it helps) and seals (when keyed) `plain` for the store.
pub(crate) fn encode(plain: &[u8], level: i32, keys: Option<&Keys>, aad: &[u8]) -> Result<Vec<u8>> {
    let compressed =
        zstd::bulk::compress(plain, level).map_err(|e| err!(Io, "zstd compression failed: {e}"))?;
    let (mut flags, body) = if compressed.len() < plain.len() {
        (FLAG_ZSTD, compressed)
    } else {
        (0, plain.to_vec())
    };
    let body = match keys {
        Some(k) => {
            flags |= FLAG_SEALED;
            crypto::seal(k.enc_key(), aad, &body)?
        }
        None => body,
    };
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Reverses [`encode`]; `max_len` bounds decompression so a corrupt frame cannot balloon.
pub(crate) fn decode(
    stored: &[u8],
    keys: Option<&Keys>,
    aad: &[u8],
    max_len: usize,
) -> Result<Vec<u8>> {
    if stored.len() < 4 || stored[..2] != MAGIC {
        return Err(err!(Corrupt, "not a drkit object (bad header)"));
    }
    if stored[2] != VERSION {
        return Err(err!(
            Unsupported,
            "object format version {} is newer than this drkit understands; upgrade drkit",
            stored[2]
        ));
    }
    let flags = stored[3];
    let body = &stored[4..];
    let opened;
    let body = if flags & FLAG_SEALED != 0 {
        let k =
            keys.ok_or_else(|| err!(Corrupt, "object is encrypted but the repository is not"))?;
        opened = crypto::open(k.enc_key(), aad, body)?;
        &opened[..]
    } else {
        if keys.is_some() {
            return Err(err!(
                Corrupt,
                "object is not encrypted in an encrypted repository"
            ));
        }
        body
    };
    if flags & FLAG_ZSTD != 0 {
        zstd::bulk::decompress(body, max_len)
            .map_err(|e| err!(Corrupt, "zstd frame does not decode: {e}"))
    } else {
        Ok(body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_with_and_without_keys() {
        let keys = Keys::generate().unwrap();
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabc".repeat(100);
        for k in [None, Some(&keys)] {
            let id = ChunkId::of(k, &data);
            let enc = encode(&data, 3, k, &id.0).unwrap();
            assert!(enc.len() < data.len());
            assert_eq!(decode(&enc, k, &id.0, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn keyed_ids_differ_from_plain_ids() {
        let keys = Keys::generate().unwrap();
        assert_ne!(ChunkId::of(Some(&keys), b"x"), ChunkId::of(None, b"x"));
    }

    #[test]
    fn chunk_keys_parse_back() {
        let id = ChunkId::of(None, b"hello");
        assert_eq!(ChunkId::from_key(&id.key()), Some(id));
        assert!(id
            .key()
            .starts_with(&format!("chunks/{}/", &id.to_string()[..2])));
    }
}
