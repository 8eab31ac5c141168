//! Which snapshots a calendar policy keeps: the last N, everything within a duration,
//! and the newest of each of the last D days, W ISO weeks, M months and Y years that have
//! snapshots — per source and kind, in a chosen time zone. The newest verified snapshot
//! of each source is always kept.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::manifest::{Snapshot, SnapshotId};
use crate::{err, Result};

/// Names the calendar period a moment falls in.
type PeriodKey<'a> = dyn Fn(Timestamp) -> String + 'a;

/// A retention policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The newest N.
    pub keep_last: usize,
    /// The newest per day, for this many days with snapshots.
    pub keep_daily: usize,
    /// The newest per ISO week, for this many weeks.
    pub keep_weekly: usize,
    /// The newest per month, for this many months.
    pub keep_monthly: usize,
    /// The newest per year, for this many years.
    pub keep_yearly: usize,
    /// Everything younger than this.
    pub keep_within: Option<Duration>,
    /// The calendar's time zone.
    pub time_zone: TimeZone,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            keep_last: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            keep_yearly: 0,
            keep_within: None,
            time_zone: TimeZone::UTC,
        }
    }
}

/// What the policy says about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The snapshot.
    pub id: SnapshotId,
    /// Its source.
    pub source: String,
    /// Its kind.
    pub kind: String,
    /// When it finished.
    pub finished_at: Timestamp,
    /// Kept or removed.
    pub keep: bool,
    /// Why it is kept (`daily 2026-02-04`, `last 1`, …); empty when removed.
    pub reasons: Vec<String>,
}

impl Policy {
    /// Refuses a policy that keeps nothing: it would remove every snapshot.
    pub fn validate(&self) -> Result<()> {
        let empty = self.keep_last
            + self.keep_daily
            + self.keep_weekly
            + self.keep_monthly
            + self.keep_yearly
            == 0
            && self.keep_within.is_none();
        if empty {
            return Err(err!(InvalidInput, "the retention policy keeps nothing; give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within"));
        }
        Ok(())
    }

    /// Decides for every snapshot, as of `now`. `verified` holds the snapshots a
    /// `verify` passed; the newest of each source is kept whatever the policy says.
    #[must_use]
    pub fn apply(
        &self,
        snapshots: &[Snapshot],
        verified: &HashSet<SnapshotId>,
        now: Timestamp,
    ) -> Vec<Decision> {
        let mut groups: BTreeMap<(String, String), Vec<&Snapshot>> = BTreeMap::new();
        for s in snapshots {
            groups
                .entry((s.source.clone(), s.kind.to_string()))
                .or_default()
                .push(s);
        }
        let mut out = Vec::new();
        for ((source, kind), mut group) in groups {
            group.sort_by_key(|s| std::cmp::Reverse(s.finished_at));
            let mut reasons: Vec<Vec<String>> = vec![Vec::new(); group.len()];
            for (i, r) in reasons.iter_mut().enumerate().take(self.keep_last) {
                r.push(format!("last {}", i + 1));
            }
            if let Some(within) = self.keep_within {
                let cutoff = now - SignedDuration::try_from(within).unwrap_or(SignedDuration::MAX);
                for (s, r) in group.iter().zip(reasons.iter_mut()) {
                    if s.finished_at >= cutoff {
                        r.push("within".to_owned());
                    }
                }
            }
            let tz = &self.time_zone;
            let periods: [(&str, usize, &PeriodKey); 4] = [
                ("daily", self.keep_daily, &|t| {
                    t.to_zoned(tz.clone()).date().to_string()
                }),
                ("weekly", self.keep_weekly, &|t| {
                    let w = t.to_zoned(tz.clone()).date().iso_week_date();
                    format!("{}-W{:02}", w.year(), w.week())
                }),
                ("monthly", self.keep_monthly, &|t| {
                    let d = t.to_zoned(tz.clone()).date();
                    format!("{}-{:02}", d.year(), d.month())
                }),
                ("yearly", self.keep_yearly, &|t| {
                    t.to_zoned(tz.clone()).date().year().to_string()
                }),
            ];
            for (name, count, key) in periods {
                let mut seen = HashSet::new();
                for (s, r) in group.iter().zip(reasons.iter_mut()) {
                    if seen.len() >= count {
                        break;
                    }
                    let k = key(s.finished_at);
                    if seen.insert(k.clone()) {
                        r.push(format!("{name} {k}"));
                    }
                }
            }
            if let Some(i) = group.iter().position(|s| verified.contains(&s.id)) {
                if reasons[i].is_empty() {
                    reasons[i].push("newest verified".to_owned());
                }
            }
            for (s, r) in group.iter().zip(reasons) {
                out.push(Decision {
                    id: s.id.clone(),
                    source: source.clone(),
                    kind: kind.clone(),
                    finished_at: s.finished_at,
                    keep: !r.is_empty(),
                    reasons: r,
                });
            }
        }
        out.sort_by_key(|d| d.finished_at);
        out
    }
}
