//! Restoring a tree: the `tree` and `data` streams read in step, each entry written as
//! `tar` would (contents, holes, mode, owner when root, mtime, links), folders finished
//! last so their mode and mtime survive what is written inside them.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps, CWD};

use super::format::{io_or_corrupt, Body, Decoder, Item, Record};
use super::Warnings;
use crate::progress::Progress;
use crate::{err, Error, Result};

/// Counts of what a restore wrote.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Written {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub special: u64,
    pub bytes: u64,
}

pub(crate) struct Restorer<'a> {
    pub to: PathBuf,
    pub select: Vec<Vec<u8>>,
    pub as_root: bool,
    pub progress: &'a dyn Progress,
    pub warnings: Warnings,
    pub written: Written,
    dirs: Vec<Record>,
    checked_parent: Option<Vec<u8>>,
    buf: Vec<u8>,
    /// Files not selected that selected hard links point at (from [`preflight`]).
    link_sources: HashSet<Vec<u8>>,
    /// Where each of them was written: a hidden folder until its first link takes it.
    stashed: HashMap<Vec<u8>, PathBuf>,
}

/// The folder unselected originals of selected hard links wait in.
const STASH: &str = ".drkit-restore-links";

/// What [`preflight`] learns from the entries before anything is written.
pub(crate) struct Preflight {
    pub link_sources: HashSet<Vec<u8>>,
}

fn kind(b: &Body) -> &'static str {
    match b {
        Body::Dir => "folder",
        Body::File { .. } | Body::HardLink { .. } => "file",
        Body::Symlink { .. } => "symbolic link",
        Body::Fifo => "FIFO",
        Body::CharDev { .. } | Body::BlockDev { .. } => "device",
    }
}

/// A first pass over the entries, before anything is written: every `--path` must name
/// something, a selected hard link whose original is not selected gets its original's
/// contents, and with `overwrite` no folder in the way of a file is found half-way.
pub(crate) fn preflight(
    tree: impl Read,
    select: &[Vec<u8>],
    to: &Path,
    overwrite: bool,
) -> Result<Preflight> {
    let mut dec = Decoder::new(tree)?;
    let mut matched = vec![false; select.len()];
    let mut link_sources = HashSet::new();
    let selected = |p: &[u8]| select.is_empty() || select.iter().any(|s| under(p, s));
    while let Item::Record(r) = dec.next_item()? {
        for (i, s) in select.iter().enumerate() {
            if under(&r.path, s) {
                matched[i] = true;
            }
        }
        if !selected(&r.path) {
            continue;
        }
        if let Body::HardLink { target } = &r.body {
            if !selected(target) {
                link_sources.insert(target.clone());
            }
        }
        if overwrite && !matches!(r.body, Body::Dir) && !r.path.is_empty() {
            let path = to.join(os(&r.path));
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                return Err(err!(
                    Conflict,
                    "{} is a folder, but the snapshot holds a {} there; move the folder away, or restore into another folder (nothing was written)",
                    path.display(),
                    kind(&r.body)
                ));
            }
        }
    }
    let missing: Vec<String> = select
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(s, _)| shown(s))
        .collect();
    if !missing.is_empty() {
        let patterns = missing.iter().any(|m| m.contains(['*', '?', '[']));
        return Err(err!(
            NotFound,
            "the snapshot holds nothing at {} (paths are relative to the snapshot's root{}); nothing was written",
            missing.join(", "),
            if patterns { ", and are paths, not patterns" } else { "" }
        ));
    }
    Ok(Preflight { link_sources })
}

enum Selected {
    Yes,
    /// A folder on the way to a selected path.
    Ancestor,
    No,
}

fn under(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

fn os(p: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(p))
}

fn shown(p: &[u8]) -> String {
    if p.is_empty() {
        ".".to_owned()
    } else {
        String::from_utf8_lossy(p).into_owned()
    }
}

/// A stored path is relative and plain: no `..`, `.`, empty parts or leading `/`.
fn check_path(p: &[u8]) -> Result<()> {
    if p.is_empty() {
        return Ok(());
    }
    let bad = p.starts_with(b"/")
        || p.split(|b| *b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(err!(
            Corrupt,
            "the snapshot holds the path {:?}, which would leave the target folder; refusing it",
            shown(p)
        ));
    }
    Ok(())
}

fn ts(mtime: (i64, u32)) -> Timespec {
    Timespec {
        tv_sec: mtime.0,
        tv_nsec: i64::from(mtime.1),
    }
}

impl<'a> Restorer<'a> {
    pub fn new(
        to: PathBuf,
        select: Vec<Vec<u8>>,
        as_root: bool,
        progress: &'a dyn Progress,
    ) -> Self {
        Self {
            to,
            select,
            as_root,
            progress,
            warnings: Warnings::default(),
            written: Written::default(),
            dirs: Vec::new(),
            checked_parent: None,
            buf: vec![0u8; 1 << 20],
            link_sources: HashSet::new(),
            stashed: HashMap::new(),
        }
    }

    /// Takes what [`preflight`] found.
    pub fn with(mut self, p: Preflight) -> Self {
        self.link_sources = p.link_sources;
        self
    }

    /// Writes an unselected original of a selected hard link where its link will take it.
    fn stash(&mut self, mut r: Record, data: &mut impl Read) -> Result<()> {
        let dir = self.to.join(STASH);
        if self.stashed.is_empty() {
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(dir.display(), e)),
            }
        }
        let original = std::mem::take(&mut r.path);
        let n = self.stashed.len();
        let rel = format!("{STASH}/{n}").into_bytes();
        r.path.clone_from(&rel);
        let (files, bytes) = (self.written.files, self.written.bytes);
        self.entry(r, data)?;
        // Counted when a link takes it.
        (self.written.files, self.written.bytes) = (files, bytes);
        self.stashed.insert(original, self.target(&rel));
        Ok(())
    }

    fn selected(&self, path: &[u8]) -> Selected {
        if self.select.is_empty() || self.select.iter().any(|s| under(path, s)) {
            Selected::Yes
        } else if self.select.iter().any(|s| under(s, path)) {
            Selected::Ancestor
        } else {
            Selected::No
        }
    }

    fn target(&self, p: &[u8]) -> PathBuf {
        if p.is_empty() {
            self.to.clone()
        } else {
            self.to.join(os(p))
        }
    }

    pub fn run(&mut self, tree: impl Read, mut data: impl Read) -> Result<()> {
        let mut dec = Decoder::new(tree)?;
        let (mut entries, mut data_bytes) = (0u64, 0u64);
        loop {
            let r = match dec.next_item()? {
                Item::Record(r) => r,
                Item::End(t) => {
                    if t.entries != entries || t.data_bytes != data_bytes {
                        return Err(err!(
                            Corrupt,
                            "the snapshot's file list ends with {} entries and {} data bytes, but holds {entries} and {data_bytes}",
                            t.entries,
                            t.data_bytes
                        ));
                    }
                    break;
                }
            };
            entries += 1;
            data_bytes += r.data_len();
            check_path(&r.path)?;
            self.finish_dirs_not_above(&r.path)?;
            let wanted = match self.selected(&r.path) {
                Selected::Yes => true,
                Selected::Ancestor => matches!(r.body, Body::Dir),
                Selected::No => false,
            };
            if wanted {
                self.entry(r, &mut data)?;
            } else if matches!(r.body, Body::File { .. }) && self.link_sources.contains(&r.path) {
                self.stash(r, &mut data)?;
            } else {
                skip(&mut data, r.data_len())?;
            }
        }
        let mut one = [0u8; 1];
        if data.read(&mut one).map_err(|e| io_or_corrupt(e, "data"))? != 0 {
            return Err(err!(
                Corrupt,
                "the snapshot's data stream is longer than its file list says"
            ));
        }
        while let Some(d) = self.dirs.pop() {
            self.finish_dir(&d)?;
        }
        if !self.stashed.is_empty() {
            let dir = self.to.join(STASH);
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        }
        Ok(())
    }

    /// Folders are finished (mode, owner, mtime) once the walk has left them.
    fn finish_dirs_not_above(&mut self, path: &[u8]) -> Result<()> {
        while let Some(top) = self.dirs.last() {
            if under(path, &top.path) && path != top.path.as_slice() {
                break;
            }
            let d = self.dirs.pop().expect("just seen");
            self.finish_dir(&d)?;
        }
        Ok(())
    }

    fn finish_dir(&mut self, d: &Record) -> Result<()> {
        let path = self.target(&d.path);
        self.set_meta(&path, d, false)
    }

    fn set_meta(&mut self, path: &Path, r: &Record, symlink: bool) -> Result<()> {
        let named = |e: rustix::io::Errno| Error::io(path.display(), e.into());
        let flags = if symlink {
            AtFlags::SYMLINK_NOFOLLOW
        } else {
            AtFlags::empty()
        };
        if self.as_root {
            rustix::fs::chownat(
                CWD,
                path,
                Some(rustix::fs::Uid::from_raw(r.uid)),
                Some(rustix::fs::Gid::from_raw(r.gid)),
                flags,
            )
            .map_err(named)?;
        }
        if !symlink {
            // After chown, which clears set-user-id bits.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(r.mode))
                .map_err(|e| Error::io(path.display(), e))?;
        }
        let times = Timestamps {
            last_access: ts(r.mtime),
            last_modification: ts(r.mtime),
        };
        rustix::fs::utimensat(CWD, path, &times, flags).map_err(named)
    }

    /// The parent of `p` must be a real folder inside the target, never a symbolic link.
    fn check_parent(&mut self, p: &[u8]) -> Result<()> {
        let parent = match p.iter().rposition(|b| *b == b'/') {
            Some(i) => &p[..i],
            None => return Ok(()),
        };
        if self.checked_parent.as_deref() == Some(parent) {
            return Ok(());
        }
        let path = self.target(parent);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(err!(
                    Conflict,
                    "{} is not a folder, and the snapshot puts {} inside it; remove it, or restore into an empty folder",
                    path.display(),
                    shown(p)
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&path).map_err(|e| Error::io(path.display(), e))?;
            }
            Err(e) => return Err(Error::io(path.display(), e)),
        }
        self.checked_parent = Some(parent.to_vec());
        Ok(())
    }

    /// Clears the way for a non-folder at `path` (only --overwrite leaves anything there).
    fn clear(path: &Path) -> Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => Err(err!(
                Conflict,
                "{} is a folder, but the snapshot holds something else there; move the folder away first",
                path.display()
            )),
            Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path.display(), e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    fn entry(&mut self, r: Record, data: &mut impl Read) -> Result<()> {
        self.check_parent(&r.path)?;
        let path = self.target(&r.path);
        match &r.body {
            Body::Dir => {
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        Self::clear(&path)?;
                        mkdir(&path)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => mkdir(&path)?,
                    Err(e) => return Err(Error::io(path.display(), e)),
                }
                // Writable until finished, whatever its mode.
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io(path.display(), e))?;
                self.written.dirs += 1;
                self.dirs.push(r);
                return Ok(());
            }
            Body::File { size, extents } => {
                Self::clear(&path)?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| Error::io(path.display(), e))?;
                self.write_extents(&mut f, &path, *size, extents, data)?;
                self.written.files += 1;
                self.written.bytes += size;
            }
            Body::Symlink { target } => {
                Self::clear(&path)?;
                std::os::unix::fs::symlink(os(target), &path)
                    .map_err(|e| Error::io(path.display(), e))?;
                self.written.symlinks += 1;
                return self.set_meta(&path, &r, true);
            }
            Body::HardLink { target } => {
                check_path(target)?;
                Self::clear(&path)?;
                if let Some(stashed) = self.stashed.get(target).cloned() {
                    // The original was not selected: the first link takes its contents,
                    // the next ones link to that.
                    if stashed.starts_with(self.to.join(STASH)) {
                        std::fs::rename(&stashed, &path)
                            .map_err(|e| Error::io(path.display(), e))?;
                        self.stashed.insert(target.clone(), path.clone());
                        self.written.files += 1;
                        self.written.bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
                    } else {
                        std::fs::hard_link(&stashed, &path)
                            .map_err(|e| Error::io(path.display(), e))?;
                        self.written.hard_links += 1;
                    }
                    return Ok(());
                }
                let original = self.target(target);
                match std::fs::hard_link(&original, &path) {
                    Ok(()) => self.written.hard_links += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound && !self.select.is_empty() => {
                        self.warnings.push(format!(
                            "{}: not restored, a hard link to {}, which no --path selects",
                            shown(&r.path),
                            shown(target)
                        ));
                    }
                    Err(e) => {
                        return Err(Error::io(
                            format!("linking {} to {}", path.display(), original.display()),
                            e,
                        ))
                    }
                }
                return Ok(());
            }
            Body::Fifo | Body::CharDev { .. } | Body::BlockDev { .. } => {
                let (ft, rdev) = match r.body {
                    Body::Fifo => (rustix::fs::FileType::Fifo, 0),
                    Body::CharDev { rdev } => (rustix::fs::FileType::CharacterDevice, rdev),
                    Body::BlockDev { rdev } => (rustix::fs::FileType::BlockDevice, rdev),
                    _ => unreachable!("matched above"),
                };
                if rdev != 0 && !self.as_root {
                    self.warnings.push(format!(
                        "{}: a device, restored only as root",
                        shown(&r.path)
                    ));
                    return Ok(());
                }
                Self::clear(&path)?;
                rustix::fs::mknodat(CWD, &path, ft, Mode::from_raw_mode(0o600), rdev)
                    .map_err(|e| Error::io(path.display(), e.into()))?;
                self.written.special += 1;
            }
        }
        self.set_meta(&path, &r, false)
    }

    fn write_extents(
        &mut self,
        f: &mut File,
        path: &Path,
        size: u64,
        extents: &[(u64, u64)],
        data: &mut impl Read,
    ) -> Result<()> {
        let named = |e| Error::io(path.display(), e);
        let mut pos = 0u64;
        for &(off, len) in extents {
            if off != pos {
                f.seek(SeekFrom::Start(off)).map_err(named)?;
            }
            let mut left = len;
            while left > 0 {
                let want = self
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = data
                    .read(&mut self.buf[..want])
                    .map_err(|e| io_or_corrupt(e, "data"))?;
                if n == 0 {
                    return Err(err!(
                        Corrupt,
                        "the snapshot's data stream ends inside {}",
                        path.display()
                    ));
                }
                f.write_all(&self.buf[..n]).map_err(named)?;
                left -= n as u64;
                self.progress.advance(n as u64, 0);
            }
            pos = off + len;
        }
        if pos != size {
            // A trailing hole.
            f.set_len(size).map_err(named)?;
        }
        Ok(())
    }
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir(path).map_err(|e| Error::io(path.display(), e))
}

fn skip(data: &mut impl Read, len: u64) -> Result<()> {
    let copied =
        io::copy(&mut data.take(len), &mut io::sink()).map_err(|e| io_or_corrupt(e, "data"))?;
    if copied != len {
        return Err(err!(Corrupt, "the snapshot's data stream ends early"));
    }
    Ok(())
}
