//! Data offsets for custom-format dumps written to a pipe.
//!
//! `pg_dump -Fc` writing to a pipe cannot seek back to record where each table's data
//! starts, so its table of contents says "position not set". `pg_restore -j` then makes
//! every worker scan the file from the start to find its table, which costs more than
//! the restore's own parallelism gains on a large dump. While the dump is spooled for a
//! parallel restore, this module reads the same bytes once, notes where each data block
//! starts, and afterwards writes those positions into the spooled file's table of
//! contents, exactly as pg_dump does when it writes to a seekable file. Anything it does
//! not understand leaves the file untouched: the offsets are an optimisation, and
//! pg_restore checks the block id it finds at each offset.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};

const MAGIC: &[u8; 5] = b"PGDMP";
const FORMAT_CUSTOM: u8 = 1;
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
const OFFSET_NOT_SET: u8 = 1;
const OFFSET_SET: u8 = 2;

/// Archive versions as `(major, minor, rev)` packed like pg_dump's `MAKE_ARCHIVE_VERSION`.
const fn version(major: u32, minor: u32) -> u32 {
    (major << 16) | (minor << 8)
}

/// Where a custom-format dump's data blocks start, and where its table of contents
/// wants those positions written.
#[derive(Debug, Default)]
pub struct OffsetIndex {
    off_size: usize,
    /// (file position of the entry's offset field, dump id) for entries awaiting an offset.
    fields: Vec<(u64, i64)>,
    /// dump id → file position of its data block.
    blocks: HashMap<i64, u64>,
}

/// A reader that counts the bytes it has consumed.
struct Counted<R> {
    inner: R,
    pos: u64,
    int_size: usize,
}

impl<R: BufRead> Counted<R> {
    fn byte(&mut self) -> std::io::Result<u8> {
        let b = *self
            .inner
            .fill_buf()?
            .first()
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        self.inner.consume(1);
        self.pos += 1;
        Ok(b)
    }

    /// Skips `n` bytes without copying them anywhere.
    fn skip(&mut self, mut n: u64) -> std::io::Result<()> {
        while n > 0 {
            let available = self.inner.fill_buf()?.len();
            if available == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let k = available.min(usize::try_from(n).unwrap_or(usize::MAX));
            self.inner.consume(k);
            self.pos += k as u64;
            n -= k as u64;
        }
        Ok(())
    }

    /// pg_dump's `ReadInt`: a sign byte, then `int_size` little-endian magnitude bytes.
    fn int(&mut self) -> std::io::Result<i64> {
        let negative = self.byte()? != 0;
        let mut value: i64 = 0;
        for i in 0..self.int_size {
            value |= i64::from(self.byte()?) << (8 * i);
        }
        Ok(if negative { -value } else { value })
    }

    /// pg_dump's `ReadStr`, skipped: a length (negative for NULL), then the bytes.
    fn skip_str(&mut self) -> std::io::Result<bool> {
        let len = self.int()?;
        if len > 0 {
            self.skip(len as u64)?;
        }
        Ok(len >= 0)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

impl OffsetIndex {
    /// Reads a whole custom-format stream and records where its data blocks start.
    pub fn scan(reader: impl Read) -> std::io::Result<Self> {
        let mut r = Counted {
            inner: std::io::BufReader::with_capacity(1 << 20, reader),
            pos: 0,
            int_size: 4,
        };
        let mut magic = [0u8; 5];
        for m in &mut magic {
            *m = r.byte()?;
        }
        if &magic != MAGIC {
            return Err(bad("not a custom-format archive"));
        }
        let (major, minor) = (u32::from(r.byte()?), u32::from(r.byte()?));
        let _rev = r.byte()?;
        let v = version(major, minor);
        if v < version(1, 12) || v > version(1, 16) {
            return Err(bad("archive version outside 1.12-1.16"));
        }
        r.int_size = usize::from(r.byte()?);
        let off_size = usize::from(r.byte()?);
        if !(1..=8).contains(&r.int_size)
            || !(1..=8).contains(&off_size)
            || r.byte()? != FORMAT_CUSTOM
        {
            return Err(bad("unexpected integer sizes or format"));
        }
        if v >= version(1, 15) {
            r.byte()?; // compression algorithm
        } else {
            r.int()?; // compression level
        }
        for _ in 0..7 {
            r.int()?; // creation time
        }
        for _ in 0..3 {
            r.skip_str()?; // database name, server version, pg_dump version
        }
        let mut index = Self {
            off_size,
            ..Self::default()
        };
        let entries = r.int()?;
        for _ in 0..entries {
            let dump_id = r.int()?;
            r.int()?; // had dumper
            for _ in 0..4 {
                r.skip_str()?; // table oid, oid, tag, desc
            }
            r.int()?; // section
            for _ in 0..5 {
                r.skip_str()?; // defn, drop, copy, namespace, tablespace
            }
            if v >= version(1, 14) {
                r.skip_str()?; // table access method
            }
            if v >= version(1, 16) {
                r.int()?; // relkind
            }
            r.skip_str()?; // owner
            r.skip_str()?; // "false" (with oids)
            while r.skip_str()? {} // dependencies, NULL-terminated
            let field = r.pos;
            let state = r.byte()?;
            r.skip(off_size as u64)?;
            if state == OFFSET_NOT_SET {
                index.fields.push((field, dump_id));
            }
        }
        loop {
            let start = r.pos;
            let kind = match r.byte() {
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            };
            let dump_id = r.int()?;
            index.blocks.insert(dump_id, start);
            match kind {
                BLK_DATA => skip_chunks(&mut r)?,
                BLK_BLOBS => {
                    while r.int()? != 0 {
                        skip_chunks(&mut r)?;
                    }
                }
                _ => return Err(bad("unknown data block type")),
            }
        }
        Ok(index)
    }

    /// Writes the found offsets into the archive's table of contents; returns how many.
    pub fn patch(&self, file: &mut (impl Write + Seek)) -> std::io::Result<usize> {
        let mut patched = 0;
        for (field, id) in &self.fields {
            let Some(pos) = self.blocks.get(id) else {
                continue;
            };
            let mut bytes = vec![OFFSET_SET];
            bytes.extend_from_slice(&pos.to_le_bytes()[..self.off_size.min(8)]);
            bytes.resize(1 + self.off_size, 0);
            file.seek(SeekFrom::Start(*field))?;
            file.write_all(&bytes)?;
            patched += 1;
        }
        file.flush()?;
        Ok(patched)
    }
}

/// Skips length-prefixed chunks up to the zero-length terminator.
fn skip_chunks<R: BufRead>(r: &mut Counted<R>) -> std::io::Result<()> {
    loop {
        let len = r.int()?;
        if len <= 0 {
            return Ok(());
        }
        r.skip(len as u64)?;
    }
}

/// A blocking reader over byte buffers sent from async code.
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl ChannelReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        Self {
            rx,
            current: bytes::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(out: &mut Vec<u8>, v: i64) {
        out.push(u8::from(v < 0));
        out.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
    }

    fn string(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            None => int(out, -1),
            Some(s) => {
                int(out, s.len() as i64);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// A minimal archive in the layout pg_dump 15 writes to a pipe: two data entries.
    fn archive() -> (Vec<u8>, Vec<u64>) {
        let mut a = b"PGDMP".to_vec();
        a.extend_from_slice(&[1, 14, 0, 4, 8, FORMAT_CUSTOM]);
        int(&mut a, 0);
        for _ in 0..7 {
            int(&mut a, 1);
        }
        for s in ["db", "15.1", "15.1"] {
            string(&mut a, Some(s));
        }
        int(&mut a, 2);
        let mut fields = Vec::new();
        for id in [7, 9] {
            int(&mut a, id);
            int(&mut a, 1);
            for s in ["0", "0", "t", "TABLE DATA"] {
                string(&mut a, Some(s));
            }
            int(&mut a, 2);
            for s in ["", "", "COPY t FROM stdin;\n", "public", ""] {
                string(&mut a, Some(s));
            }
            string(&mut a, Some("heap"));
            string(&mut a, Some("postgres"));
            string(&mut a, Some("false"));
            string(&mut a, Some("3"));
            string(&mut a, None);
            fields.push(a.len() as u64);
            a.push(OFFSET_NOT_SET);
            a.extend_from_slice(&[0; 8]);
        }
        let mut blocks = Vec::new();
        for id in [7, 9] {
            blocks.push(a.len() as u64);
            a.push(BLK_DATA);
            int(&mut a, id);
            for row in ["1\tx\n", "2\ty\n"] {
                int(&mut a, row.len() as i64);
                a.extend_from_slice(row.as_bytes());
            }
            int(&mut a, 0);
        }
        (a, [fields, blocks].concat())
    }

    #[test]
    fn offsets_are_found_and_written_where_pg_dump_would() {
        let (bytes, positions) = archive();
        let index = OffsetIndex::scan(&bytes[..]).unwrap();
        let mut file = std::io::Cursor::new(bytes.clone());
        assert_eq!(index.patch(&mut file).unwrap(), 2);
        let patched = file.into_inner();
        for (field, block) in [(positions[0], positions[2]), (positions[1], positions[3])] {
            let f = field as usize;
            assert_eq!(patched[f], OFFSET_SET);
            assert_eq!(
                u64::from_le_bytes(patched[f + 1..f + 9].try_into().unwrap()),
                block
            );
            assert_eq!(patched[block as usize], BLK_DATA);
        }
        assert_eq!(patched.len(), bytes.len());
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(OffsetIndex::scan(&b"PGDMQ"[..]).is_err());
        let (mut bytes, _) = archive();
        bytes.truncate(bytes.len() - 3);
        assert!(
            OffsetIndex::scan(&bytes[..]).is_err(),
            "a truncated archive is not indexed"
        );
    }
}
