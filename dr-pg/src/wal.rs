//! The WAL archive: PostgreSQL's `archive_command` and `restore_command` through drkit.
//!
//! One object per file under `wal/<timeline>/<name>`, compressed and (when the repository
//! is encrypted) sealed with its key. A push succeeds only once the store holds the file;
//! pushing the same name with the same bytes again succeeds, with different bytes it fails
//! and never overwrites. A fetch of a file never archived fails at once: PostgreSQL probes
//! for files that do not exist as part of normal recovery.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use dr_core::repo::Repository;
use dr_core::store::PutMode;
use dr_core::{err, Error, ErrorKind, Result};
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use serde::Serialize;

/// Where WAL lives in a repository.
pub const WAL_PREFIX: &str = "wal/";

/// The default (and most common) WAL segment size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

/// The smallest WAL segment size PostgreSQL allows. Parsing a name with it accepts every
/// well-formed name, and the segment numbers it gives keep the names' order (enough for
/// keys, counts and "the newest"; contiguity needs the cluster's real size).
pub const MIN_SEGMENT_SIZE: u64 = 1 << 20;

/// Largest file accepted: a 1 GiB segment is PostgreSQL's maximum.
const MAX_FILE: usize = 1 << 30;

/// A position in the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `16/B374D848`.
    pub fn parse(s: &str) -> Result<Self> {
        let (hi, lo) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| err!(InvalidInput, "{s:?} is not an LSN like 0/3000028"))?;
        let hi = u64::from_str_radix(hi, 16)
            .map_err(|_| err!(InvalidInput, "{s:?} is not an LSN like 0/3000028"))?;
        let lo = u64::from_str_radix(lo, 16)
            .map_err(|_| err!(InvalidInput, "{s:?} is not an LSN like 0/3000028"))?;
        if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
            return Err(err!(InvalidInput, "{s:?} is out of range for an LSN"));
        }
        Ok(Self(hi << 32 | lo))
    }

    /// The segment number holding this position.
    #[must_use]
    pub fn segment(self, segment_size: u64) -> u64 {
        self.0 / segment_size
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// What an archived file is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalFile {
    /// A full segment: timeline and segment number.
    Segment {
        /// Timeline.
        timeline: u32,
        /// Log id × segments per log id + segment.
        number: u64,
    },
    /// The last, incomplete segment of a timeline that ended (`….partial`).
    Partial {
        /// Timeline.
        timeline: u32,
        /// Segment number.
        number: u64,
    },
    /// A backup history file (`…​.00000028.backup`).
    Backup {
        /// Timeline.
        timeline: u32,
        /// The file's whole name.
        name: String,
    },
    /// A timeline history file (`00000002.history`).
    History {
        /// The timeline it starts.
        timeline: u32,
    },
}

/// `TTTTTTTTXXXXXXXXYYYYYYYY` for a segment of `segment_size` bytes.
#[must_use]
pub fn segment_name(timeline: u32, number: u64, segment_size: u64) -> String {
    let per_log = 0x1_0000_0000 / segment_size;
    format!(
        "{timeline:08X}{:08X}{:08X}",
        number / per_log,
        number % per_log
    )
}

fn hex(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
}

impl WalFile {
    /// Parses an archived file name, as PostgreSQL passes it in `%f`.
    pub fn parse(name: &str, segment_size: u64) -> Result<Self> {
        let bad = || {
            err!(InvalidInput, "{name:?} is not a WAL file name (a 24-hex-digit segment, .partial, .backup or .history)")
        };
        let per_log = 0x1_0000_0000 / segment_size;
        let seg = |s: &str| -> Result<(u32, u64)> {
            if s.len() != 24 || !hex(s) {
                return Err(bad());
            }
            let tli = u32::from_str_radix(&s[..8], 16).map_err(|_| bad())?;
            let log = u64::from_str_radix(&s[8..16], 16).map_err(|_| bad())?;
            let n = u64::from_str_radix(&s[16..], 16).map_err(|_| bad())?;
            if n >= per_log {
                return Err(bad());
            }
            Ok((tli, log * per_log + n))
        };
        if let Some(base) = name.strip_suffix(".partial") {
            let (timeline, number) = seg(base)?;
            return Ok(Self::Partial { timeline, number });
        }
        if let Some(t) = name.strip_suffix(".history") {
            if t.len() != 8 || !hex(t) {
                return Err(bad());
            }
            return Ok(Self::History {
                timeline: u32::from_str_radix(t, 16).map_err(|_| bad())?,
            });
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (s, offset) = rest.split_once('.').ok_or_else(bad)?;
            if offset.len() != 8 || !hex(offset) {
                return Err(bad());
            }
            let (timeline, _) = seg(s)?;
            return Ok(Self::Backup {
                timeline,
                name: name.to_owned(),
            });
        }
        let (timeline, number) = seg(name)?;
        Ok(Self::Segment { timeline, number })
    }

    /// The timeline it belongs to.
    #[must_use]
    pub fn timeline(&self) -> u32 {
        match self {
            Self::Segment { timeline, .. }
            | Self::Partial { timeline, .. }
            | Self::Backup { timeline, .. }
            | Self::History { timeline } => *timeline,
        }
    }

    /// The store key for file `name`.
    #[must_use]
    pub fn key(&self, name: &str) -> String {
        format!("{WAL_PREFIX}{:08X}/{name}", self.timeline())
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pushed {
    /// Stored now.
    Stored,
    /// The same bytes were already archived.
    AlreadyArchived,
}

/// Archives the file at `path` (PostgreSQL's `%p`).
pub async fn push(repo: &Repository, path: &Path) -> Result<Pushed> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| err!(InvalidInput, "{} has no file name", path.display()))?;
    // Only the timeline goes into the key, and parsing with the smallest segment size
    // accepts every well-formed name.
    let file = WalFile::parse(name, MIN_SEGMENT_SIZE)?;
    let key = file.key(name);
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    // Look first: a store that ignores create-only writes must not overwrite either.
    match repo.get_object(&key, MAX_FILE).await {
        Ok(existing) if existing == data => return Ok(Pushed::AlreadyArchived),
        Ok(_) => {
            return Err(err!(
                AlreadyExists,
                "{name} is already archived in {} with different contents; refusing to overwrite it (two servers may be archiving into one repository: give each its own)",
                repo.store().url()
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e.context(format!("checking whether {name} is archived"))),
    }
    match repo.put_object(&key, data, PutMode::CreateOnly).await {
        Ok(_) => Ok(Pushed::Stored),
        // A concurrent push of the same file won the race: check it is the same.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Box::pin(push(repo, path)).await,
        Err(e) => Err(e.context(format!("archiving {name}"))),
    }
}

/// Fetches `name` into `dest` (PostgreSQL's `%f` and `%p`), written atomically. Also
/// fetches the next `prefetch` segments in parallel into a spool folder beside `dest`,
/// from which later calls take them. A file never archived fails with `NotFound` at once.
///
/// The names of the next segments depend on the cluster's segment size: it is learnt
/// from the first segment fetched (its length) and remembered in the spool folder.
pub async fn fetch(repo: &Repository, name: &str, dest: &Path, prefetch: usize) -> Result<()> {
    WalFile::parse(name, MIN_SEGMENT_SIZE)?;
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let spool = dir.join(".drkit-prefetch");
    if tokio::fs::rename(spool.join(name), dest).await.is_ok() {
        return Ok(());
    }
    let memo = spool.join("segment-size");
    let known = tokio::fs::read_to_string(&memo)
        .await
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .and_then(segment_size_of);
    let ahead = match known {
        Some(size) => following(name, size, prefetch, &spool).await,
        None => Vec::new(),
    };
    let mut wanted = vec![name.to_owned()];
    wanted.extend(ahead);
    let mut fetched = fetch_many(repo, wanted, prefetch).await;
    let bytes = fetched
        .remove(name)
        .expect("the asked-for file is always fetched")
        .map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                err!(
                    NotFound,
                    "{name} is not in the WAL archive at {}",
                    repo.store().url()
                )
            } else {
                e.context(format!("fetching {name}"))
            }
        })?;
    // No fsync: PostgreSQL reads the file at once, and after a crash fetches it again.
    write_atomic(dest, &bytes).await?;
    if known.is_none() && prefetch > 0 {
        // The first segment of this recovery: now its size says what comes next.
        if let Some(size) = segment_size_of(bytes.len() as u64).filter(|_| {
            matches!(
                WalFile::parse(name, MIN_SEGMENT_SIZE),
                Ok(WalFile::Segment { .. })
            )
        }) {
            tokio::fs::create_dir_all(&spool)
                .await
                .map_err(|e| Error::io(format!("creating {}", spool.display()), e))?;
            write_atomic(&memo, size.to_string().as_bytes()).await?;
            let ahead = following(name, size, prefetch, &spool).await;
            fetched = fetch_many(repo, ahead, prefetch).await;
        }
    }
    for (n, got) in fetched {
        if let Ok(bytes) = got {
            tokio::fs::create_dir_all(&spool)
                .await
                .map_err(|e| Error::io(format!("creating {}", spool.display()), e))?;
            write_atomic(&spool.join(&n), &bytes).await?;
        }
    }
    Ok(())
}

/// A WAL segment size PostgreSQL allows (a power of two from 1 MiB to 1 GiB).
fn segment_size_of(len: u64) -> Option<u64> {
    (len.is_power_of_two() && (MIN_SEGMENT_SIZE..=1 << 30).contains(&len)).then_some(len)
}

/// The `count` segments after segment `name` that are not spooled yet.
async fn following(name: &str, size: u64, count: usize, spool: &Path) -> Vec<String> {
    let Ok(WalFile::Segment { timeline, number }) = WalFile::parse(name, size) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in 1..=count as u64 {
        let next = segment_name(timeline, number + n, size);
        if !tokio::fs::try_exists(spool.join(&next))
            .await
            .unwrap_or(false)
        {
            out.push(next);
        }
    }
    out
}

/// Fetches archived files in parallel, by name.
async fn fetch_many(
    repo: &Repository,
    names: Vec<String>,
    prefetch: usize,
) -> std::collections::HashMap<String, Result<Vec<u8>>> {
    futures::stream::iter(names)
        .map(|n| async move {
            let key = WalFile::parse(&n, MIN_SEGMENT_SIZE)
                .expect("valid names")
                .key(&n);
            let got = repo.get_object(&key, MAX_FILE).await;
            (n, got)
        })
        .buffer_unordered(prefetch.max(1) + 1)
        .collect()
        .await
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
async fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = PathBuf::from(format!("{}.drkit-tmp", dest.display()));
    let result = async {
        let mut f = tokio::fs::File::create(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut f, bytes).await?;
        // tokio writes in the background: wait until the bytes are in the file.
        tokio::io::AsyncWriteExt::flush(&mut f).await?;
        drop(f);
        tokio::fs::rename(&tmp, dest).await
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(Error::io(format!("writing {}", dest.display()), e));
    }
    Ok(())
}

/// One archived file.
#[derive(Debug, Clone, Serialize)]
pub struct Archived {
    /// Its name.
    pub name: String,
    /// When the store received it.
    pub archived_at: Option<Timestamp>,
}

/// What the archive holds, per timeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WalArchive {
    /// Segment numbers (and when each arrived) by timeline.
    #[serde(skip)]
    pub segments: BTreeMap<u32, BTreeMap<u64, Option<Timestamp>>>,
    /// Timeline history files: timeline → its parent and the LSN it branched at.
    #[serde(skip)]
    pub histories: BTreeMap<u32, Vec<(u32, Lsn)>>,
    /// Every file, by key.
    pub files: Vec<Archived>,
}

impl WalArchive {
    /// Lists the archive and reads the history files.
    pub async fn read(repo: &Repository, segment_size: u64) -> Result<Self> {
        let metas: Vec<dr_core::store::ObjectMeta> =
            repo.store().list(WAL_PREFIX).try_collect().await?;
        let mut out = Self::default();
        for m in metas {
            let Some(name) = m.key.rsplit('/').next() else {
                continue;
            };
            let Ok(file) = WalFile::parse(name, segment_size) else {
                continue;
            };
            match file {
                WalFile::Segment { timeline, number } => {
                    out.segments
                        .entry(timeline)
                        .or_default()
                        .insert(number, m.modified);
                }
                WalFile::History { timeline } => {
                    let text = repo.get_object(&m.key, 1 << 20).await?;
                    out.histories
                        .insert(timeline, parse_history(&String::from_utf8_lossy(&text)));
                }
                _ => {}
            }
            out.files.push(Archived {
                name: name.to_owned(),
                archived_at: m.modified,
            });
        }
        out.files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The newest segment of any timeline and when it arrived.
    #[must_use]
    pub fn newest(&self) -> Option<(u32, u64, Option<Timestamp>)> {
        self.segments
            .iter()
            .rev()
            .find_map(|(t, s)| s.iter().next_back().map(|(n, at)| (*t, *n, *at)))
    }

    /// Following timelines from `timeline` at segment `from` to the newest timeline that
    /// descends from it: the segments replay needs, in order, as (timeline, number), up to
    /// the newest archived one or the first gap. Returns the chain and the first missing
    /// segment, if replay would stop at a gap before the end of the archive.
    #[must_use]
    pub fn chain(
        &self,
        timeline: u32,
        from: u64,
        segment_size: u64,
    ) -> (Vec<(u32, u64)>, Option<String>) {
        // The timelines to follow: the newest one whose history includes `timeline`.
        let target = self
            .segments
            .keys()
            .chain(self.histories.keys())
            .copied()
            .filter(|t| {
                *t == timeline
                    || self
                        .histories
                        .get(t)
                        .is_some_and(|h| h.iter().any(|(p, _)| *p == timeline))
            })
            .max()
            .unwrap_or(timeline);
        // Switch points along the way: (timeline, first segment of the next timeline).
        let mut path: Vec<(u32, u64)> = Vec::new();
        if let Some(h) = self.histories.get(&target) {
            let mut parents: Vec<(u32, Lsn)> =
                h.iter().filter(|(p, _)| *p >= timeline).copied().collect();
            parents.sort();
            for (p, lsn) in parents {
                path.push((p, lsn.segment(segment_size)));
            }
        }
        let mut chain = Vec::new();
        let mut tli = timeline;
        let mut n = from;
        let mut switches = path.into_iter().peekable();
        loop {
            // At a switch point the next segment comes from the child timeline.
            while let Some((p, at)) = switches.peek().copied() {
                if p == tli && n >= at {
                    tli = self.child_of(p, target);
                    switches.next();
                } else {
                    break;
                }
            }
            let have = self.segments.get(&tli).is_some_and(|s| s.contains_key(&n));
            if have {
                chain.push((tli, n));
                n += 1;
                continue;
            }
            let newest_here = self
                .segments
                .get(&tli)
                .and_then(|s| s.keys().next_back().copied());
            let more_later =
                newest_here.is_some_and(|m| m > n) || switches.peek().is_some() || tli != target;
            return if more_later {
                (chain, Some(segment_name(tli, n, segment_size)))
            } else {
                (chain, None)
            };
        }
    }

    fn child_of(&self, parent: u32, target: u32) -> u32 {
        self.histories
            .iter()
            .filter(|(t, h)| **t <= target && h.last().is_some_and(|(p, _)| *p == parent))
            .map(|(t, _)| *t)
            .min()
            .unwrap_or(target)
    }
}

/// Deletes archived WAL that no replay from `first_needed` (a base backup's first WAL
/// file) onwards can use: segments, partial segments and backup files of that timeline
/// and its ancestors before it. History files stay. Returns the files removed.
pub async fn prune_before(repo: &Repository, first_needed: &str, segment_size: u64) -> Result<u64> {
    let WalFile::Segment { timeline, number } = WalFile::parse(first_needed, segment_size)? else {
        return Err(err!(InvalidInput, "{first_needed} is not a segment name"));
    };
    let metas: Vec<dr_core::store::ObjectMeta> =
        repo.store().list(WAL_PREFIX).try_collect().await?;
    let doomed: Vec<String> = metas
        .into_iter()
        .filter(|m| {
            let Some(name) = m.key.rsplit('/').next() else {
                return false;
            };
            let seg = match WalFile::parse(name, segment_size) {
                Ok(
                    WalFile::Segment {
                        timeline: t,
                        number: n,
                    }
                    | WalFile::Partial {
                        timeline: t,
                        number: n,
                    },
                ) => Some((t, n)),
                Ok(WalFile::Backup { timeline: t, name }) => {
                    WalFile::parse(&name[..24], segment_size)
                        .ok()
                        .and_then(|f| match f {
                            WalFile::Segment { number: n, .. } => Some((t, n)),
                            _ => None,
                        })
                }
                _ => None,
            };
            seg.is_some_and(|(t, n)| t <= timeline && n < number)
        })
        .map(|m| m.key)
        .collect();
    repo.store().delete_many(&doomed).await?;
    Ok(doomed.len() as u64)
}

/// Which archived WAL [`copy`] takes to another repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WalSelection {
    /// Every archived file the destination lacks: point-in-time recovery works there.
    All,
    /// What the given base backups need to become consistent (their first to last
    /// segment, their `.backup` file) and every timeline history file.
    Needed,
    /// None.
    None,
}

impl WalSelection {
    /// What a copy takes when not told: everything when every snapshot is copied (the
    /// copy can then recover to any point), else what the chosen base backups need.
    #[must_use]
    pub fn default_for(every_snapshot: bool) -> Self {
        if every_snapshot {
            Self::All
        } else {
            Self::Needed
        }
    }
}

impl std::str::FromStr for WalSelection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(Self::All),
            "needed" => Ok(Self::Needed),
            "none" => Ok(Self::None),
            other => Err(err!(
                InvalidInput,
                "{other:?} is not a WAL selection; use all, needed or none"
            )),
        }
    }
}

/// What a WAL copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WalCopyReport {
    /// Files written to the destination.
    pub files_copied: u64,
    /// Bytes written.
    pub bytes_copied: u64,
    /// Files the destination already had.
    pub files_present: u64,
}

/// Copies archived WAL from `source` to `dest` (as stored when they share keys, else
/// sealed again), each file checked before it is written and never overwriting. For
/// [`WalSelection::Needed`], `bases` are the base backups being copied. Copy WAL before
/// the base backups' manifests, so a copied base backup never lacks its WAL.
pub async fn copy(
    source: &Repository,
    dest: &Repository,
    selection: WalSelection,
    bases: &[crate::BaseMetadata],
    progress: &dyn dr_core::progress::Progress,
) -> Result<WalCopyReport> {
    let mut report = WalCopyReport::default();
    if selection == WalSelection::None {
        return Ok(report);
    }
    let present: std::collections::HashSet<String> = dest
        .store()
        .list(WAL_PREFIX)
        .map_ok(|m| m.key)
        .try_collect()
        .await?;
    let listed: Vec<String> = source
        .store()
        .list(WAL_PREFIX)
        .map_ok(|m| m.key)
        .try_collect()
        .await?;
    let wanted = |key: &str| -> bool {
        if selection == WalSelection::All {
            return true;
        }
        let name = key.rsplit('/').next().unwrap_or(key);
        if name.ends_with(".history") {
            return true;
        }
        bases.iter().any(|b| {
            let size = b.wal_segment_size;
            let range = |n: &str| match WalFile::parse(n, size) {
                Ok(WalFile::Segment { timeline, number }) => Some((timeline, number)),
                _ => None,
            };
            let (Some((tli, first)), Some((_, last))) = (range(&b.first_wal), range(&b.last_wal))
            else {
                return false;
            };
            match WalFile::parse(name, size) {
                Ok(WalFile::Segment { timeline, number }) => {
                    timeline == tli && (first..=last).contains(&number)
                }
                Ok(WalFile::Backup { .. }) => name.starts_with(&b.first_wal),
                _ => false,
            }
        })
    };
    let todo: Vec<String> = listed
        .into_iter()
        .filter(|k| wanted(k))
        .filter(|k| {
            let have = present.contains(k);
            if have {
                report.files_present += 1;
            }
            !have
        })
        .collect();
    progress.phase(&format!("copy {} WAL files", todo.len()));
    let parallel = source.parallelism().max(dest.parallelism());
    let copied: Vec<Option<u64>> = futures::stream::iter(todo)
        .map(|key| async move {
            source
                .copy_object(dest, &key, MAX_FILE)
                .await
                .map_err(|e| e.context(format!("copying WAL to {}", dest.store().url())))
        })
        .buffer_unordered(parallel)
        .inspect_ok(|n| progress.advance(n.unwrap_or(0), n.unwrap_or(0)))
        .try_collect()
        .await?;
    for n in copied {
        match n {
            Some(b) => {
                report.files_copied += 1;
                report.bytes_copied += b;
            }
            None => report.files_present += 1,
        }
    }
    Ok(report)
}

/// `1 <tab> 0/3000158 <tab> no recovery target specified` lines → (parent timeline, switch LSN).
fn parse_history(text: &str) -> Vec<(u32, Lsn)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let tli = parts.next()?.parse().ok()?;
            let lsn = Lsn::parse(parts.next()?).ok()?;
            Some((tli, lsn))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lsns() {
        assert_eq!(
            Lsn::parse("16/B374D848").unwrap().to_string(),
            "16/B374D848"
        );
        let lsn = Lsn::parse("1/2000028").unwrap();
        assert_eq!(
            segment_name(1, lsn.segment(DEFAULT_SEGMENT_SIZE), DEFAULT_SEGMENT_SIZE),
            "000000010000000100000002"
        );
        assert_eq!(
            WalFile::parse("000000020000000100000002", DEFAULT_SEGMENT_SIZE).unwrap(),
            WalFile::Segment {
                timeline: 2,
                number: 258
            }
        );
        assert_eq!(
            WalFile::parse("00000003.history", DEFAULT_SEGMENT_SIZE)
                .unwrap()
                .timeline(),
            3
        );
        assert!(matches!(
            WalFile::parse(
                "000000010000000000000002.00000028.backup",
                DEFAULT_SEGMENT_SIZE
            )
            .unwrap(),
            WalFile::Backup { timeline: 1, .. }
        ));
        assert!(matches!(
            WalFile::parse("000000010000000000000005.partial", DEFAULT_SEGMENT_SIZE).unwrap(),
            WalFile::Partial {
                timeline: 1,
                number: 5
            }
        ));
        for bad in [
            "",
            "00000001000000000000000",
            "0000000100000000000001FF0",
            "../../etc/passwd",
            "000000010000000000000100",
            "00000001000000000000000g",
        ] {
            assert!(WalFile::parse(bad, DEFAULT_SEGMENT_SIZE).is_err(), "{bad}");
        }
    }

    #[test]
    fn chains_follow_timelines_and_stop_at_gaps() {
        let mut a = WalArchive::default();
        for n in 1..=6 {
            a.segments.entry(1).or_default().insert(n, None);
        }
        // Timeline 2 branched in segment 4.
        a.histories
            .insert(2, vec![(1, Lsn(4 * DEFAULT_SEGMENT_SIZE + 100))]);
        for n in 4..=8 {
            a.segments.entry(2).or_default().insert(n, None);
        }
        let (chain, gap) = a.chain(1, 2, DEFAULT_SEGMENT_SIZE);
        assert_eq!(gap, None);
        assert_eq!(
            chain,
            vec![(1, 2), (1, 3), (2, 4), (2, 5), (2, 6), (2, 7), (2, 8)]
        );
        a.segments.get_mut(&2).unwrap().remove(&6);
        let (chain, gap) = a.chain(1, 2, DEFAULT_SEGMENT_SIZE);
        assert_eq!(chain.last(), Some(&(2, 5)));
        assert_eq!(gap.as_deref(), Some("000000020000000000000006"));
    }
}
