//! The tree stream of a `files` snapshot: one record per entry, in walk order.
//!
//! ```text
//! header   "drkit-files-1\n"
//! record   u8 type, then varints (LEB128) and byte strings (varint length + bytes):
//!          path, mode, uid, gid, mtime seconds (zigzag), mtime nanoseconds, then by type
//!          1 dir        (nothing more)
//!          2 file       size, extent count, (offset, length) per extent
//!          3 symlink    target
//!          4 hard link  path of the earlier entry it links to
//!          5 fifo       (nothing more)
//!          6 char dev   rdev
//!          7 block dev  rdev
//! trailer  u8 0, entry count, data bytes
//! ```
//!
//! Paths are raw bytes relative to the snapshot's root, `/`-separated, `""` for the root
//! itself: names that are not UTF-8 or hold newlines survive. A file's extents are the
//! parts holding data (a sparse file's holes are not stored); their bytes follow one
//! another in the `data` stream, in record order.

use std::io::{self, Read, Write};

use crate::{err, Result};

pub(crate) const MAGIC: &[u8] = b"drkit-files-1\n";

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    Dir,
    File { size: u64, extents: Vec<(u64, u64)> },
    Symlink { target: Vec<u8> },
    HardLink { target: Vec<u8> },
    Fifo,
    CharDev { rdev: u64 },
    BlockDev { rdev: u64 },
}

/// One entry of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub path: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub body: Body,
}

impl Record {
    /// Bytes of the `data` stream this record owns.
    pub fn data_len(&self) -> u64 {
        match &self.body {
            Body::File { extents, .. } => extents.iter().map(|e| e.1).sum(),
            _ => 0,
        }
    }
}

/// The trailer: what the whole stream holds, checked on restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub entries: u64,
    pub data_bytes: u64,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Writes records; the caller writes the trailer with [`finish`](Self::finish).
pub(crate) struct Encoder<W: Write> {
    out: W,
    buf: Vec<u8>,
    entries: u64,
    data_bytes: u64,
}

impl<W: Write> Encoder<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            buf: Vec::with_capacity(256),
            entries: 0,
            data_bytes: 0,
        })
    }

    pub fn push(&mut self, r: &Record) -> io::Result<()> {
        let b = &mut self.buf;
        b.clear();
        b.push(match r.body {
            Body::Dir => 1,
            Body::File { .. } => 2,
            Body::Symlink { .. } => 3,
            Body::HardLink { .. } => 4,
            Body::Fifo => 5,
            Body::CharDev { .. } => 6,
            Body::BlockDev { .. } => 7,
        });
        put_bytes(b, &r.path);
        put_varint(b, u64::from(r.mode));
        put_varint(b, u64::from(r.uid));
        put_varint(b, u64::from(r.gid));
        put_varint(b, ((r.mtime.0 << 1) ^ (r.mtime.0 >> 63)) as u64);
        put_varint(b, u64::from(r.mtime.1));
        match &r.body {
            Body::Dir | Body::Fifo => {}
            Body::File { size, extents } => {
                put_varint(b, *size);
                put_varint(b, extents.len() as u64);
                for (off, len) in extents {
                    put_varint(b, *off);
                    put_varint(b, *len);
                }
            }
            Body::Symlink { target } | Body::HardLink { target } => put_bytes(b, target),
            Body::CharDev { rdev } | Body::BlockDev { rdev } => put_varint(b, *rdev),
        }
        self.out.write_all(b)?;
        self.entries += 1;
        self.data_bytes += r.data_len();
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<(W, Trailer)> {
        let mut b = vec![0u8];
        put_varint(&mut b, self.entries);
        put_varint(&mut b, self.data_bytes);
        self.out.write_all(&b)?;
        self.out.flush()?;
        Ok((
            self.out,
            Trailer {
                entries: self.entries,
                data_bytes: self.data_bytes,
            },
        ))
    }
}

/// Reads records back; every malformed byte is a `Corrupt` error.
pub(crate) struct Decoder<R: Read> {
    input: R,
}

/// A record or the trailer.
pub(crate) enum Item {
    Record(Record),
    End(Trailer),
}

fn corrupt(what: &str) -> crate::Error {
    err!(Corrupt, "the snapshot's file list is damaged ({what})")
}

impl<R: Read> Decoder<R> {
    pub fn new(mut input: R) -> Result<Self> {
        let mut magic = [0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .map_err(|e| io_or_corrupt(e, "no header"))?;
        if magic != MAGIC {
            return Err(corrupt(
                "unknown header: not a drkit files snapshot, or a newer format",
            ));
        }
        Ok(Self { input })
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.input
            .read_exact(&mut b)
            .map_err(|e| io_or_corrupt(e, "ends early"))?;
        Ok(b[0])
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("a number is too long"))
    }

    fn u32(&mut self) -> Result<u32> {
        u32::try_from(self.varint()?).map_err(|_| corrupt("a number is out of range"))
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        let len = self.varint()?;
        if len > 1 << 20 {
            return Err(corrupt("a name longer than 1 MiB"));
        }
        let mut v = vec![0u8; len as usize];
        self.input
            .read_exact(&mut v)
            .map_err(|e| io_or_corrupt(e, "ends inside a name"))?;
        Ok(v)
    }

    pub fn next_item(&mut self) -> Result<Item> {
        let ty = self.byte()?;
        if ty == 0 {
            return Ok(Item::End(Trailer {
                entries: self.varint()?,
                data_bytes: self.varint()?,
            }));
        }
        let path = self.bytes()?;
        let mode = self.u32()?;
        let uid = self.u32()?;
        let gid = self.u32()?;
        let z = self.varint()?;
        let secs = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let nanos = self.u32()?;
        let body = match ty {
            1 => Body::Dir,
            2 => {
                let size = self.varint()?;
                let n = self.varint()?;
                let mut extents = Vec::new();
                let mut end = 0u64;
                for _ in 0..n {
                    let (off, len) = (self.varint()?, self.varint()?);
                    if off < end || off.checked_add(len).is_none_or(|e| e > size) {
                        return Err(corrupt("a file's extents overlap or pass its end"));
                    }
                    end = off + len;
                    extents.push((off, len));
                }
                Body::File { size, extents }
            }
            3 => Body::Symlink {
                target: self.bytes()?,
            },
            4 => Body::HardLink {
                target: self.bytes()?,
            },
            5 => Body::Fifo,
            6 => Body::CharDev {
                rdev: self.varint()?,
            },
            7 => Body::BlockDev {
                rdev: self.varint()?,
            },
            other => return Err(corrupt(&format!("unknown entry type {other}"))),
        };
        Ok(Item::Record(Record {
            path,
            mode,
            uid,
            gid,
            mtime: (secs, nanos),
            body,
        }))
    }
}

/// A read error from the snapshot stream is the repository's own error (a damaged chunk
/// names itself); a short stream is a damaged list.
pub(crate) fn io_or_corrupt(e: io::Error, what: &str) -> crate::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return corrupt(what);
    }
    unwrap_io(e)
}

/// Gets a drkit error back out of an `io::Error` that carries one.
pub(crate) fn unwrap_io(e: io::Error) -> crate::Error {
    let kind = e.kind();
    match e.into_inner() {
        Some(inner) => match inner.downcast::<crate::Error>() {
            Ok(ours) => *ours,
            Err(other) => crate::Error::io("reading the snapshot", io::Error::new(kind, other)),
        },
        None => crate::Error::io("reading the snapshot", io::Error::from(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = vec![
            Record {
                path: b"".to_vec(),
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: (-5, 7),
                body: Body::Dir,
            },
            Record {
                path: b"a\nb\xff".to_vec(),
                mode: 0o4750,
                uid: 1000,
                gid: 4_000_000_000,
                mtime: (1_790_000_000, 999_999_999),
                body: Body::File {
                    size: 1 << 40,
                    extents: vec![(0, 10), (1 << 39, 5)],
                },
            },
            Record {
                path: b"l".to_vec(),
                mode: 0o777,
                uid: 1,
                gid: 1,
                mtime: (0, 0),
                body: Body::Symlink {
                    target: b"../x".to_vec(),
                },
            },
            Record {
                path: b"h".to_vec(),
                mode: 0o644,
                uid: 1,
                gid: 1,
                mtime: (0, 0),
                body: Body::HardLink {
                    target: b"a\nb\xff".to_vec(),
                },
            },
        ];
        let mut enc = Encoder::new(Vec::new()).unwrap();
        for r in &records {
            enc.push(r).unwrap();
        }
        let (bytes, trailer) = enc.finish().unwrap();
        assert_eq!(trailer.entries, 4);
        assert_eq!(trailer.data_bytes, 15);
        let mut dec = Decoder::new(&bytes[..]).unwrap();
        for r in &records {
            match dec.next_item().unwrap() {
                Item::Record(got) => assert_eq!(&got, r),
                Item::End(_) => panic!("ended early"),
            }
        }
        assert!(matches!(dec.next_item().unwrap(), Item::End(t) if t == trailer));
        // Cut anywhere, it is damaged, never a shorter valid list.
        for cut in MAGIC.len()..bytes.len() - 1 {
            let mut dec = Decoder::new(&bytes[..cut]).unwrap();
            let mut saw_error = false;
            for _ in 0..5 {
                match dec.next_item() {
                    Ok(Item::Record(_)) => {}
                    Ok(Item::End(_)) => break,
                    Err(e) => {
                        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
                        saw_error = true;
                        break;
                    }
                }
            }
            assert!(saw_error, "cut at {cut} read as a whole list");
        }
    }
}
