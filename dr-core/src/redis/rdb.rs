//! Reading an RDB file one key at a time, without decoding values: each key's value is
//! kept as the bytes the RDB holds, which with its type byte, the RDB version and a CRC64
//! is exactly the payload `RESTORE` takes.

use std::io::{self, Read};

use crate::{err, Result};

/// CRC-64/Jones as Redis computes it (RDB trailers, DUMP payloads).
pub(crate) const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// One key of the RDB.
#[derive(Debug)]
pub(crate) struct Entry {
    pub db: u64,
    pub key: Vec<u8>,
    /// Absolute expiry in Unix milliseconds.
    pub expire_ms: Option<i64>,
    pub value_type: u8,
    /// The value as encoded in the RDB.
    pub value: Vec<u8>,
}

impl Entry {
    /// The `RESTORE` payload: type, value, RDB version (LE), CRC64 (LE) of all that.
    pub fn dump_payload(&self, rdb_version: u16) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.value.len() + 11);
        p.push(self.value_type);
        p.extend_from_slice(&self.value);
        p.extend_from_slice(&rdb_version.to_le_bytes());
        let crc = CRC64.checksum(&p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }
}

/// What the RDB's header and auxiliary fields say.
#[derive(Debug, Default, Clone)]
pub(crate) struct Header {
    pub version: u16,
    pub redis_version: Option<String>,
}

/// Reads entries from an RDB stream.
pub(crate) struct Parser<R: Read> {
    input: R,
    pub header: Header,
    db: u64,
    /// Bytes of the value being read, when capturing.
    capture: Option<Vec<u8>>,
    done: bool,
}

fn bad(what: impl std::fmt::Display) -> crate::Error {
    err!(
        Corrupt,
        "the Redis RDB stream is damaged or of an unknown format: {what}"
    )
}

fn eof(e: io::Error) -> crate::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        bad("it ends early")
    } else {
        crate::files::unwrap_io_error(e)
    }
}

/// A length, or a string stored in a special encoding.
enum Len {
    Plain(u64),
    Special(u8),
}

impl<R: Read> Parser<R> {
    pub fn new(mut input: R) -> Result<Self> {
        let mut magic = [0u8; 9];
        input.read_exact(&mut magic).map_err(eof)?;
        if &magic[..5] != b"REDIS" {
            return Err(bad("no REDIS header"));
        }
        let version: u16 = std::str::from_utf8(&magic[5..])
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("the header's version is not a number"))?;
        Ok(Self {
            input,
            header: Header {
                version,
                redis_version: None,
            },
            db: 0,
            capture: None,
            done: false,
        })
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.input.read_exact(&mut v).map_err(eof)?;
        if let Some(c) = &mut self.capture {
            c.extend_from_slice(&v);
        }
        Ok(v)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        if let Some(c) = &mut self.capture {
            let start = c.len();
            let n = usize::try_from(n).map_err(|_| bad("a length is too large"))?;
            c.resize(start + n, 0);
            self.input.read_exact(&mut c[start..]).map_err(eof)?;
            return Ok(());
        }
        let copied = io::copy(&mut (&mut self.input).take(n), &mut io::sink()).map_err(eof)?;
        if copied == n {
            Ok(())
        } else {
            Err(bad("it ends early"))
        }
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn len_or_special(&mut self) -> Result<Len> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => Len::Plain((u64::from(b & 0x3f) << 8) | u64::from(self.byte()?)),
            2 => match b {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(
                    self.bytes(4)?.try_into().expect("4 bytes"),
                ))),
                0x81 => Len::Plain(u64::from_be_bytes(
                    self.bytes(8)?.try_into().expect("8 bytes"),
                )),
                other => return Err(bad(format!("length byte {other:#x}"))),
            },
            _ => Len::Special(b & 0x3f),
        })
    }

    fn len(&mut self) -> Result<u64> {
        match self.len_or_special()? {
            Len::Plain(n) => Ok(n),
            Len::Special(_) => Err(bad("a special encoding where a length belongs")),
        }
    }

    /// A string, decoded (integers as text, LZF decompressed).
    fn string(&mut self) -> Result<Vec<u8>> {
        match self.len_or_special()? {
            Len::Plain(n) => {
                self.bytes(usize::try_from(n).map_err(|_| bad("a string is too large"))?)
            }
            Len::Special(0) => Ok((self.byte()? as i8).to_string().into_bytes()),
            Len::Special(1) => Ok(i16::from_le_bytes(self.bytes(2)?.try_into().expect("2"))
                .to_string()
                .into_bytes()),
            Len::Special(2) => Ok(i32::from_le_bytes(self.bytes(4)?.try_into().expect("4"))
                .to_string()
                .into_bytes()),
            Len::Special(3) => {
                let clen = self.len()?;
                let ulen = self.len()?;
                let packed =
                    self.bytes(usize::try_from(clen).map_err(|_| bad("a string is too large"))?)?;
                lzf_decompress(
                    &packed,
                    usize::try_from(ulen).map_err(|_| bad("a string is too large"))?,
                )
            }
            Len::Special(other) => Err(bad(format!("string encoding {other}"))),
        }
    }

    /// Passes over a string (kept in the capture).
    fn skip_string(&mut self) -> Result<()> {
        match self.len_or_special()? {
            Len::Plain(n) => self.skip(n),
            Len::Special(0) => self.skip(1),
            Len::Special(1) => self.skip(2),
            Len::Special(2) => self.skip(4),
            Len::Special(3) => {
                let clen = self.len()?;
                let _ulen = self.len()?;
                self.skip(clen)
            }
            Len::Special(other) => Err(bad(format!("string encoding {other}"))),
        }
    }

    fn skip_strings(&mut self, n: u64) -> Result<()> {
        for _ in 0..n {
            self.skip_string()?;
        }
        Ok(())
    }

    /// Passes over a value of type `t`.
    fn skip_value(&mut self, t: u8, key: &[u8]) -> Result<()> {
        match t {
            // string; ziplist, intset and listpack encodings: one string each
            0 | 9..=13 | 16 | 17 | 20 => self.skip_string(),
            // list, set, quicklist (of ziplists): N strings; hash: N pairs
            1 | 2 | 14 => {
                let n = self.len()?;
                self.skip_strings(n)
            }
            4 => {
                let n = self.len()?;
                self.skip_strings(n * 2)
            }
            // zset: member and a double as text (1-byte length; 253-255 mark nan/inf)
            3 => {
                for _ in 0..self.len()? {
                    self.skip_string()?;
                    let l = self.byte()?;
                    if l < 253 {
                        self.skip(u64::from(l))?;
                    }
                }
                Ok(())
            }
            // zset2: member and an 8-byte double
            5 => {
                for _ in 0..self.len()? {
                    self.skip_string()?;
                    self.skip(8)?;
                }
                Ok(())
            }
            // quicklist2: N (container, listpack)
            18 => {
                for _ in 0..self.len()? {
                    self.len()?;
                    self.skip_string()?;
                }
                Ok(())
            }
            15 | 19 | 21 => self.skip_stream(t),
            other => Err(err!(
                Unsupported,
                "key {:?} has a value type drkit cannot replay key by key (RDB type {other}: a module type or a newer Redis's); restore this snapshot into a stopped server's data folder instead",
                String::from_utf8_lossy(key)
            )),
        }
    }

    fn skip_stream(&mut self, t: u8) -> Result<()> {
        for _ in 0..self.len()? {
            self.skip_string()?; // node key (master ID)
            self.skip_string()?; // listpack
        }
        self.len()?; // items
        self.len()?; // last id ms
        self.len()?; // last id seq
        if t >= 19 {
            for _ in 0..5 {
                self.len()?; // first id, max deleted id, entries added
            }
        }
        for _ in 0..self.len()? {
            self.skip_string()?; // group name
            self.len()?;
            self.len()?; // last delivered id
            if t >= 19 {
                self.len()?; // entries read
            }
            for _ in 0..self.len()? {
                self.skip(16 + 8)?; // id, delivery time
                self.len()?; // delivery count
            }
            for _ in 0..self.len()? {
                self.skip_string()?; // consumer name
                self.skip(8)?; // seen time
                if t >= 21 {
                    self.skip(8)?; // active time
                }
                let pel = self.len()?;
                self.skip(pel * 16)?;
            }
        }
        Ok(())
    }

    /// The next key, or `None` after the end-of-file opcode.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        let mut expire_ms = None;
        loop {
            if self.done {
                return Ok(None);
            }
            let op = self.byte()?;
            match op {
                0xFF => {
                    self.done = true;
                    return Ok(None);
                }
                0xFE => self.db = self.len()?,
                0xFB => {
                    self.len()?;
                    self.len()?;
                }
                0xFA => {
                    let k = self.string()?;
                    let v = self.string()?;
                    if k == b"redis-ver" {
                        self.header.redis_version = Some(String::from_utf8_lossy(&v).into_owned());
                    }
                }
                0xFD => {
                    let s = u32::from_le_bytes(self.bytes(4)?.try_into().expect("4"));
                    expire_ms = Some(i64::from(s) * 1000);
                }
                0xFC => {
                    expire_ms = Some(i64::from_le_bytes(self.bytes(8)?.try_into().expect("8")));
                }
                0xF8 => {
                    self.byte()?; // LFU frequency
                }
                0xF9 => {
                    self.len()?; // LRU idle
                }
                0xF5 => {
                    self.skip_string()?; // a function library
                }
                0xF4 => {
                    // slot info (newer servers): slot, slot size, expires slot size
                    self.len()?;
                    self.len()?;
                    self.len()?;
                }
                0xF7 => {
                    return Err(err!(
                        Unsupported,
                        "the RDB holds module data, which drkit cannot replay key by key; restore it into a stopped server's data folder instead"
                    ))
                }
                t => {
                    let key = self.string()?;
                    self.capture = Some(Vec::new());
                    let skipped = self.skip_value(t, &key);
                    let value = self.capture.take().unwrap_or_default();
                    skipped?;
                    return Ok(Some(Entry {
                        db: self.db,
                        key,
                        expire_ms,
                        value_type: t,
                        value,
                    }));
                }
            }
        }
    }
}

/// LZF as Redis writes it (liblzf's format).
fn lzf_decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(out_len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input
                .get(i..i + n)
                .ok_or_else(|| bad("a compressed string ends early"))?;
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(
                    *input
                        .get(i)
                        .ok_or_else(|| bad("a compressed string ends early"))?,
                );
                i += 1;
            }
            let low = usize::from(
                *input
                    .get(i)
                    .ok_or_else(|| bad("a compressed string ends early"))?,
            );
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            if back > out.len() {
                return Err(bad("a compressed string points before its start"));
            }
            let start = out.len() - back;
            for k in 0..len + 2 {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    if out.len() != out_len {
        return Err(bad("a compressed string has the wrong length"));
    }
    Ok(out)
}
