//! Backing up a tree: one walk, streamed. The walker is the chunker's reader: it hands
//! over file contents as the chunker asks for them and writes each entry's record to a
//! temporary file, which becomes the `tree` stream once the data is stored.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use globset::{Glob, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

use super::format::{Body, Encoder, Record, Trailer};
use super::{FilesMetadata, Warnings};
use crate::repo::Segmented;
use crate::{err, Error, Result};

/// The roots, checked: absolute, existing, with the prefix each is stored under.
pub(crate) fn roots(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    if paths.is_empty() {
        return Err(err!(
            InvalidInput,
            "name at least one file or folder to back up"
        ));
    }
    let mut out: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| Error::io(p.display(), e))?;
        std::fs::symlink_metadata(&abs)
            .map_err(|e| Error::io(format!("{} (a path to back up)", abs.display()), e))?;
        let prefix = if paths.len() == 1 && std::fs::metadata(&abs).is_ok_and(|m| m.is_dir()) {
            Vec::new()
        } else {
            abs.file_name()
                .map(|n| n.as_bytes().to_vec())
                .ok_or_else(|| {
                    err!(
                        InvalidInput,
                        "{} has no name to store it under; name the folders inside it instead",
                        abs.display()
                    )
                })?
        };
        if let Some((other, _)) = out.iter().find(|(_, q)| *q == prefix) {
            return Err(err!(
                InvalidInput,
                "{} and {} would both be stored as {:?}: back them up in separate snapshots, or back up their common parent",
                other.display(),
                abs.display(),
                String::from_utf8_lossy(&prefix)
            ));
        }
        out.push((abs, prefix));
    }
    Ok(out)
}

/// Compiles `--exclude` patterns: one without `/` matches a name anywhere (`*.log`,
/// `node_modules`); one with `/` matches a path from the root (`media/tmp/*`).
pub(crate) fn excludes(patterns: &[String]) -> Result<(GlobSet, GlobSet)> {
    let mut names = GlobSetBuilder::new();
    let mut paths = GlobSetBuilder::new();
    for p in patterns {
        let anchored = p.trim_start_matches('/').trim_end_matches('/');
        if anchored.is_empty() {
            return Err(err!(
                InvalidInput,
                "--exclude {p:?} matches nothing; give a name or a glob like *.log"
            ));
        }
        let glob = globset::GlobBuilder::new(anchored)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| err!(InvalidInput, "--exclude {p:?} is not a glob pattern: {e}"))?;
        if anchored.contains('/') {
            paths.add(glob);
        } else {
            names.add(Glob::new(anchored).map_err(|e| err!(InvalidInput, "--exclude {p:?}: {e}"))?);
        }
    }
    let build = |b: GlobSetBuilder| {
        b.build()
            .map_err(|e| err!(InvalidInput, "the --exclude patterns: {e}"))
    };
    Ok((build(names)?, build(paths)?))
}

/// What the walk found, filled in as it goes and complete at the data's end.
#[derive(Default)]
pub(crate) struct Outcome {
    pub meta: FilesMetadata,
    pub tree: Option<(File, Trailer)>,
    pub error: Option<Error>,
}

struct Current {
    file: File,
    path: PathBuf,
    record: Record,
    /// Extents as stat'd; the record gets what was actually read.
    planned: std::vec::IntoIter<(u64, u64)>,
    extent: Option<(u64, u64)>,
    read_in_extent: u64,
    before: (u64, i64, i64),
}

/// An `io::Read` over the contents of every regular file of the roots, in walk order.
pub(crate) struct TreeReader {
    roots: std::vec::IntoIter<(PathBuf, Vec<u8>)>,
    walk: Option<(walkdir::IntoIter, PathBuf, Vec<u8>)>,
    names: GlobSet,
    paths: GlobSet,
    encoder: Option<Encoder<BufWriter<File>>>,
    links: HashMap<(u64, u64), Vec<u8>>,
    current: Option<Current>,
    outcome: Arc<Mutex<Outcome>>,
    warnings: Warnings,
    one_file_system: bool,
    /// Files this large are segments of their own: their chunks never hold a neighbour's
    /// bytes, so changing one file changes no other file's chunks.
    big: u64,
    segment_bytes: u64,
    at_boundary: bool,
    done: bool,
}

impl TreeReader {
    pub fn new(
        roots: Vec<(PathBuf, Vec<u8>)>,
        excludes: (GlobSet, GlobSet),
        one_file_system: bool,
        big: u64,
    ) -> Result<(Self, Arc<Mutex<Outcome>>)> {
        let tmp = tempfile::tempfile()
            .map_err(|e| Error::io("creating a temporary file for the file list", e))?;
        let encoder = Encoder::new(BufWriter::with_capacity(1 << 20, tmp))
            .map_err(|e| Error::io("writing the file list", e))?;
        let outcome = Arc::new(Mutex::new(Outcome::default()));
        Ok((
            Self {
                roots: roots.into_iter(),
                walk: None,
                names: excludes.0,
                paths: excludes.1,
                encoder: Some(encoder),
                links: HashMap::new(),
                current: None,
                outcome: outcome.clone(),
                warnings: Warnings::default(),
                one_file_system,
                big,
                segment_bytes: 0,
                at_boundary: false,
                done: false,
            },
            outcome,
        ))
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&mut self, r: &Record) -> io::Result<()> {
        self.encoder.as_mut().expect("open until the end").push(r)
    }

    /// Moves to the next entry; `Ok(false)` at the end of every root.
    fn advance(&mut self) -> io::Result<bool> {
        loop {
            if self.walk.is_none() {
                let Some((root, prefix)) = self.roots.next() else {
                    return Ok(false);
                };
                let walk = WalkDir::new(&root)
                    .follow_links(false)
                    .same_file_system(self.one_file_system)
                    .sort_by_file_name()
                    .into_iter();
                self.walk = Some((walk, root, prefix));
            }
            let (walk, root, prefix) = self.walk.as_mut().expect("just set");
            let Some(entry) = walk.next() else {
                self.walk = None;
                continue;
            };
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                    let io = e.into_io_error();
                    match io {
                        // Gone between listing and reading: as tar, note it and go on.
                        Some(io) if io.kind() == io::ErrorKind::NotFound => {
                            self.warnings
                                .push(format!("{}: removed while backing up", path.display()));
                            continue;
                        }
                        Some(io) => return Err(wrap(Error::io(path.display(), io))),
                        None => {
                            return Err(wrap(err!(
                                InvalidInput,
                                "{}: a symbolic link loop",
                                path.display()
                            )))
                        }
                    }
                }
            };
            let rel = entry.path().strip_prefix(&*root).unwrap_or(entry.path());
            let mut stored = prefix.clone();
            for c in rel.components() {
                if !stored.is_empty() {
                    stored.push(b'/');
                }
                stored.extend_from_slice(c.as_os_str().as_bytes());
            }
            if entry.depth() > 0 && self.excluded(&stored, entry.file_name().as_bytes()) {
                self.meta().meta.excluded += 1;
                if entry.file_type().is_dir() {
                    self.walk.as_mut().expect("walking").0.skip_current_dir();
                }
                continue;
            }
            let md = match std::fs::symlink_metadata(entry.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.warnings.push(format!(
                        "{}: removed while backing up",
                        entry.path().display()
                    ));
                    continue;
                }
                Err(e) => return Err(wrap(Error::io(entry.path().display(), e))),
            };
            if self.entry(entry.path(), stored, &md)? {
                return Ok(true);
            }
        }
    }

    fn excluded(&self, stored: &[u8], name: &[u8]) -> bool {
        let name = Path::new(std::ffi::OsStr::from_bytes(name));
        let path = Path::new(std::ffi::OsStr::from_bytes(stored));
        self.names.is_match(name) || self.paths.is_match(path)
    }

    /// Records one entry; `true` when it is a file whose contents come next.
    fn entry(&mut self, path: &Path, stored: Vec<u8>, md: &std::fs::Metadata) -> io::Result<bool> {
        let ft = md.file_type();
        let mut record = Record {
            path: stored,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: (md.mtime(), u32::try_from(md.mtime_nsec()).unwrap_or(0)),
            body: Body::Dir,
        };
        if !ft.is_dir() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                record.body = Body::HardLink {
                    target: first.clone(),
                };
                self.push(&record)?;
                self.meta().meta.hard_links += 1;
                return Ok(false);
            }
            self.links.insert(key, record.path.clone());
        }
        if ft.is_dir() {
            self.push(&record)?;
            self.meta().meta.dirs += 1;
            return Ok(false);
        }
        if ft.is_symlink() {
            let target =
                std::fs::read_link(path).map_err(|e| wrap(Error::io(path.display(), e)))?;
            record.body = Body::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            };
            self.push(&record)?;
            self.meta().meta.symlinks += 1;
            return Ok(false);
        }
        if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            record.body = if ft.is_fifo() {
                Body::Fifo
            } else if ft.is_char_device() {
                Body::CharDev { rdev: md.rdev() }
            } else {
                Body::BlockDev { rdev: md.rdev() }
            };
            self.push(&record)?;
            self.meta().meta.special += 1;
            return Ok(false);
        }
        if !ft.is_file() {
            self.warnings
                .push(format!("{}: a socket, not stored", path.display()));
            return Ok(false);
        }
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.warnings
                    .push(format!("{}: removed while backing up", path.display()));
                return Ok(false);
            }
            Err(e) => return Err(wrap(Error::io(path.display(), e))),
        };
        let size = md.size();
        let planned =
            extents(&file, size, md.blocks()).map_err(|e| wrap(Error::io(path.display(), e)))?;
        record.body = Body::File {
            size,
            extents: Vec::new(),
        };
        let mut planned = planned.into_iter();
        let extent = planned.next();
        self.current = Some(Current {
            file,
            path: path.to_path_buf(),
            record,
            planned,
            extent,
            read_in_extent: 0,
            before: (size, md.mtime(), md.mtime_nsec()),
        });
        Ok(true)
    }

    /// Ends the current file: its record lists what was read.
    fn close_current(&mut self) -> io::Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let Current {
            file,
            path,
            record,
            before,
            ..
        } = cur;
        if let Ok(after) = file.metadata() {
            if (after.size(), after.mtime(), after.mtime_nsec()) != before {
                self.warnings.push(format!(
                    "{}: changed while being read; stored as read",
                    path.display()
                ));
            }
        }
        let stored = record.data_len();
        self.push(&record)?;
        let mut o = self.meta();
        o.meta.files += 1;
        if let Body::File { size, .. } = record.body {
            o.meta.bytes += size;
        }
        o.meta.data_bytes += stored;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        let Some(enc) = self.encoder.take() else {
            return Ok(());
        };
        let (w, trailer) = enc.finish()?;
        let mut file = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        let warnings = std::mem::take(&mut self.warnings);
        let mut o = self.meta();
        o.meta.warnings = warnings;
        o.tree = Some((file, trailer));
        Ok(())
    }

    fn is_big(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| matches!(c.record.body, Body::File { size, .. } if size >= self.big))
    }

    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at_boundary || self.done {
                return Ok(0);
            }
            let Some(cur) = self.current.as_mut() else {
                if self.advance()? {
                    if self.is_big() && self.segment_bytes > 0 {
                        self.at_boundary = true;
                    }
                    continue;
                }
                self.finish()?;
                self.done = true;
                return Ok(0);
            };
            let Some((off, len)) = cur.extent else {
                let big = self.is_big();
                self.close_current()?;
                if big && self.segment_bytes > 0 {
                    self.at_boundary = true;
                }
                continue;
            };
            let left = len - cur.read_in_extent;
            if left == 0 {
                cur.extent = cur.planned.next();
                cur.read_in_extent = 0;
                continue;
            }
            if cur.read_in_extent == 0 {
                cur.file.seek(SeekFrom::Start(off))?;
            }
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match cur.file.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(wrap(Error::io(cur.path.display(), e))),
            };
            if n == 0 {
                // Shrank while read: store what there was, and say so.
                cur.extent = None;
                for _ in cur.planned.by_ref() {}
                continue;
            }
            if let Body::File { extents, .. } = &mut cur.record.body {
                match extents.last_mut() {
                    Some(last) if last.0 == off => last.1 += n as u64,
                    _ => extents.push((off, n as u64)),
                }
            }
            cur.read_in_extent += n as u64;
            self.segment_bytes += n as u64;
            return Ok(n);
        }
    }
}

impl Segmented for TreeReader {
    fn next_segment(&mut self) -> bool {
        self.at_boundary = false;
        self.segment_bytes = 0;
        !self.done
    }
}

impl Read for TreeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.read_inner(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                // Keep the drkit error for the caller; the chunker sees an io error.
                let kind = e.kind();
                let ours = super::format::unwrap_io(e);
                let msg = ours.message().to_owned();
                self.meta().error = Some(ours);
                Err(io::Error::new(kind, msg))
            }
        }
    }
}

fn wrap(e: Error) -> io::Error {
    io::Error::other(e)
}

/// The parts of a file that hold data: all of it, unless it has fewer blocks than its
/// size needs, when SEEK_DATA/SEEK_HOLE tell where its holes are.
fn extents(file: &File, size: u64, blocks: u64) -> io::Result<Vec<(u64, u64)>> {
    if size == 0 {
        return Ok(Vec::new());
    }
    if blocks.saturating_mul(512) >= size {
        return Ok(vec![(0, size)]);
    }
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(rustix::io::Errno::NXIO) => break,
            // A file system without SEEK_DATA: store it whole.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => {
                return Ok(vec![(0, size)])
            }
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = match rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(data)) {
            Ok(h) => h.min(size),
            Err(e) => return Err(e.into()),
        };
        out.push((data, hole - data));
        pos = hole;
    }
    Ok(out)
}
