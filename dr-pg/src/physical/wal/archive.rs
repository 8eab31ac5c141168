//! What the archive holds: files per timeline, where replay from a base backup stops, pruning.

use std::collections::BTreeMap;

use super::{parse_history, segment_name, Lsn, WalFile, WAL_PREFIX};
use dr_core::repo::Repository;
use dr_core::{err, Result};
use futures::TryStreamExt;
use jiff::Timestamp;
use serde::Serialize;

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
