//! Which base backup and WAL reach a target, and the window the archive covers.

use std::fmt;

use dr_core::repo::{Repository, Snapshot};
use dr_core::target::PointInTime;
use dr_core::{err, Result};
use jiff::Timestamp;
use serde::Serialize;

use crate::physical::basebackup::{BaseMetadata, KIND_BASE};
use crate::physical::wal::{segment_name, Lsn, WalArchive, WalFile};

/// The span a cluster can be recovered to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// The end of the oldest base backup.
    pub earliest: Option<Timestamp>,
    /// When the newest WAL segment (before any gap) was archived.
    pub latest: Option<Timestamp>,
    /// The first missing segment that cuts the window short, if any.
    pub gap: Option<String>,
}

impl Window {
    /// Whether any WAL written after the oldest base backup finished is archived: until
    /// then recovery reaches only a base backup's own consistent point.
    #[must_use]
    pub fn has_wal_after_base(&self) -> bool {
        match (self.earliest, self.latest) {
            (Some(e), Some(l)) => l > e,
            _ => false,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |t: Option<Timestamp>| t.map_or("-".to_owned(), |t| t.to_string());
        match (self.earliest, self.has_wal_after_base()) {
            (None, _) => f.write_str("empty: no base backup yet")?,
            (Some(e), false) => write!(
                f,
                "only the end of the base backup finished {e}: nothing written after it is archived yet, so recovery reaches that backup's consistent point and no later time (PostgreSQL archives the next WAL segment when it fills or archive_timeout passes; check archive_command if it never does)"
            )?,
            (Some(_), true) => write!(f, "{} .. {}", show(self.earliest), show(self.latest))?,
        }
        if let Some(g) = &self.gap {
            write!(f, " (WAL segment {g} is missing)")?;
        }
        Ok(())
    }
}

/// What `wal-verify` found: the window, each timeline's segments, and per base backup
/// where replay from it would stop at a missing segment.
#[derive(Debug, Clone, Serialize)]
pub struct WalVerifyReport {
    /// No base backup's replay is cut short by a gap.
    pub ok: bool,
    /// The recovery window.
    pub window: Window,
    /// Segments archived per timeline.
    pub timelines: Vec<TimelineSegments>,
    /// Per base backup, the first missing segment replay would stop at.
    pub base_backups: Vec<BaseReplay>,
    /// Files in the archive (segments, partial segments, history and backup files).
    pub files: usize,
}

/// Segments of one timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineSegments {
    /// The timeline.
    pub timeline: u32,
    /// How many segments of it are archived.
    pub segments: usize,
}

/// Where replay from one base backup stops.
#[derive(Debug, Clone, Serialize)]
pub struct BaseReplay {
    /// The base backup.
    pub snapshot: String,
    /// The first missing segment, or `None` when the WAL is unbroken to the newest.
    pub stops_at_missing: Option<String>,
}

/// Checks the WAL archive against every base backup.
pub async fn wal_verify(repo: &Repository) -> Result<WalVerifyReport> {
    let all = bases(repo).await?;
    let seg = all
        .first()
        .map_or(crate::physical::wal::MIN_SEGMENT_SIZE, |b| {
            b.meta.wal_segment_size
        });
    let archive = WalArchive::read(repo, seg).await?;
    let (window, per_base) = window_of(&all, &archive);
    let base_backups: Vec<BaseReplay> = per_base
        .into_iter()
        .map(|(snapshot, stops_at_missing)| BaseReplay {
            snapshot,
            stops_at_missing,
        })
        .collect();
    Ok(WalVerifyReport {
        ok: base_backups.iter().all(|b| b.stops_at_missing.is_none()),
        window,
        timelines: archive
            .segments
            .iter()
            .map(|(t, s)| TimelineSegments {
                timeline: *t,
                segments: s.len(),
            })
            .collect(),
        base_backups,
        files: archive.files.len(),
    })
}

/// A base backup and the WAL needed to reach the target from it.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The base backup.
    pub snapshot: String,
    /// Its metadata.
    pub base: BaseMetadata,
    /// When it finished.
    pub base_finished: Timestamp,
    /// Segments replay will fetch, first and last.
    pub wal_from: String,
    /// The newest segment replay can reach.
    pub wal_to: Option<String>,
    /// The window of this repository.
    pub window: Window,
}

pub(super) struct Base {
    pub(super) snap: Snapshot,
    pub(super) meta: BaseMetadata,
}

pub(super) async fn bases(repo: &Repository) -> Result<Vec<Base>> {
    let mut out = Vec::new();
    for snap in repo.snapshots().await? {
        if snap.kind.as_str() == KIND_BASE {
            let meta = BaseMetadata::of(&snap)?;
            out.push(Base { snap, meta });
        }
    }
    Ok(out)
}

/// The recovery window of the repository's base backups and WAL.
pub async fn window(repo: &Repository) -> Result<(Window, Vec<(String, Option<String>)>)> {
    let bases = bases(repo).await?;
    let seg = bases
        .first()
        .map_or(crate::physical::wal::DEFAULT_SEGMENT_SIZE, |b| {
            b.meta.wal_segment_size
        });
    let archive = WalArchive::read(repo, seg).await?;
    Ok(window_of(&bases, &archive))
}

/// The window, and per base backup the first missing segment replay would stop at.
pub(super) fn window_of(
    bases: &[Base],
    archive: &WalArchive,
) -> (Window, Vec<(String, Option<String>)>) {
    let mut per_base = Vec::new();
    let mut latest: Option<Timestamp> = None;
    let mut gap = None;
    for b in bases {
        let first = WalFile::parse(&b.meta.first_wal, b.meta.wal_segment_size);
        let Ok(WalFile::Segment { timeline, number }) = first else {
            continue;
        };
        let (chain, missing) = archive.chain(timeline, number, b.meta.wal_segment_size);
        let reached = chain.last().and_then(|(t, n)| {
            archive
                .segments
                .get(t)
                .and_then(|s| s.get(n))
                .copied()
                .flatten()
        });
        latest = latest.max(reached);
        per_base.push((b.snap.id.to_string(), missing.clone()));
        if b.snap.id == bases.last().expect("non-empty").snap.id {
            gap = missing;
        }
    }
    let window = Window {
        earliest: bases.first().map(|b| b.snap.finished_at),
        latest,
        gap,
    };
    (window, per_base)
}

/// Chooses the base backup for `target` and checks the WAL reaches it.
pub async fn plan(repo: &Repository, target: &PointInTime, snapshot: Option<&str>) -> Result<Plan> {
    let all = bases(repo).await?;
    let url = repo.store().url();
    if all.is_empty() {
        return Err(err!(
            NotFound,
            "no base backups in {url}; take one with `drkit basebackup`"
        ));
    }
    let seg = all[0].meta.wal_segment_size;
    let archive = WalArchive::read(repo, seg).await?;
    let (window, _) = window_of(&all, &archive);
    let outside = |why: &str| {
        err!(
            InvalidInput,
            "{target} is outside the recovery window of {url}: {why}; the window is {window}"
        )
    };
    let chosen = choose_base(repo, &all, &archive, target, snapshot, &window).await?;
    let m = &chosen.meta;
    let Ok(WalFile::Segment { timeline, number }) =
        WalFile::parse(&m.first_wal, m.wal_segment_size)
    else {
        return Err(err!(
            Corrupt,
            "base backup {} names no valid first WAL file",
            chosen.snap.id
        ));
    };
    let (chain, missing) = archive.chain(timeline, number, m.wal_segment_size);
    let end = Lsn::parse(&m.end_lsn)?.segment(m.wal_segment_size);
    let reached = chain.last().map(|(_, n)| *n);
    if reached.is_none_or(|r| r < end) {
        return Err(err!(
            NotFound,
            "base backup {} needs WAL {} to {} to become consistent, but {} is not archived; is archive_command set to `drkit wal-push %p`?",
            chosen.snap.id,
            m.first_wal,
            m.last_wal,
            missing.clone().unwrap_or_else(|| segment_name(timeline, reached.map_or(number, |r| r + 1), m.wal_segment_size))
        ));
    }
    if let Some(gap) = &missing {
        let blocked = match target {
            PointInTime::Latest | PointInTime::Name(_) => true,
            PointInTime::Lsn(l) => l.segment(m.wal_segment_size) > reached.unwrap_or(0),
            PointInTime::Time(t) => {
                let (lt, ln) = *chain.last().expect("checked above");
                archive
                    .segments
                    .get(&lt)
                    .and_then(|s| s.get(&ln))
                    .copied()
                    .flatten()
                    .is_none_or(|at| *t > at)
            }
        };
        if blocked {
            return Err(err!(
                NotFound,
                "WAL segment {gap} is missing from {url}, so replay from base backup {} stops before {target}; the window is {window}",
                chosen.snap.id
            ));
        }
    }
    if let PointInTime::Time(t) = target {
        if missing.is_none() && window.latest.is_some_and(|l| *t > l) {
            return Err(outside("it is after the last archived WAL"));
        }
    }
    let wal_to = chain
        .last()
        .map(|(t, n)| segment_name(*t, *n, m.wal_segment_size));
    Ok(Plan {
        snapshot: chosen.snap.id.to_string(),
        base: m.clone(),
        base_finished: chosen.snap.finished_at,
        wal_from: m.first_wal.clone(),
        wal_to,
        window,
    })
}

/// The base backup to start from: the one asked for, or the newest that precedes the target.
pub(super) async fn choose_base<'a>(
    repo: &Repository,
    all: &'a [Base],
    archive: &WalArchive,
    target: &PointInTime,
    snapshot: Option<&str>,
    window: &Window,
) -> Result<&'a Base> {
    let url = repo.store().url();
    let outside = |why: &str| {
        err!(
            InvalidInput,
            "{target} is outside the recovery window of {url}: {why}; the window is {window}"
        )
    };
    Ok(if let Some(r) = snapshot {
        let s = repo.find_snapshot(r).await?;
        all.iter()
            .find(|b| b.snap.id == s.id)
            .ok_or_else(|| err!(InvalidInput, "snapshot {} is not a base backup", s.id))?
    } else {
        match target {
            PointInTime::Time(t) => all
                .iter()
                .rev()
                .find(|b| b.snap.finished_at <= *t)
                .ok_or_else(|| outside("it is before the oldest base backup finished"))?,
            PointInTime::Lsn(l) => {
                let l = *l;
                all.iter()
                    .rev()
                    .find(|b| Lsn::parse(&b.meta.end_lsn).is_ok_and(|e| e <= l))
                    .ok_or_else(|| outside("it is before the end of the oldest base backup"))?
            }
            // A restore point's position is unknown until replay meets it: start from the
            // oldest base whose WAL is unbroken, so any point after it is reachable.
            PointInTime::Name(_) => {
                let (_, per_base) = window_of(all, archive);
                let ok: Vec<&String> = per_base
                    .iter()
                    .filter(|(_, g)| g.is_none())
                    .map(|(id, _)| id)
                    .collect();
                all.iter()
                    .find(|b| ok.contains(&&b.snap.id.to_string()))
                    .unwrap_or_else(|| all.last().expect("non-empty"))
            }
            PointInTime::Latest => all.last().expect("non-empty"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_with_nothing_after_the_base_says_so() {
        let base: Timestamp = "2026-12-01T10:00:39.858Z".parse().unwrap();
        let last_segment: Timestamp = "2026-12-01T10:00:39.251Z".parse().unwrap();
        let w = Window {
            earliest: Some(base),
            latest: Some(last_segment),
            gap: None,
        };
        let text = w.to_string();
        assert!(!w.has_wal_after_base());
        assert!(
            !text.contains(" .. "),
            "no window whose end is before its start: {text}"
        );
        assert!(
            text.contains("nothing written after it is archived yet"),
            "{text}"
        );
        let later = Window {
            latest: Some("2026-12-01T10:05:00Z".parse().unwrap()),
            ..w
        };
        assert!(later.has_wal_after_base());
        assert!(later.to_string().contains(" .. "), "{later}");
    }
}
