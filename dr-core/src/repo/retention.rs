//! Which snapshots a calendar policy keeps: the last N, everything within a duration,
//! and the newest of each of the last D days, W ISO weeks, M months and Y years that have
//! snapshots — per source and kind, in a chosen time zone. The newest verified snapshot
//! of each source is always kept.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

use super::manifest::{Snapshot, SnapshotId};
use crate::{err, Result};

/// A calendar period: retention keeps the newest snapshot of each, `drkit copy --tier`
/// copies the newest of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// A calendar day.
    Daily,
    /// An ISO week.
    Weekly,
    /// A calendar month.
    Monthly,
    /// A calendar year.
    Yearly,
}

impl Tier {
    /// The period `t` falls in, in `tz`: `2026-02-04`, `2026-W06`, `2026-02`, `2026`.
    #[must_use]
    pub fn period(self, t: Timestamp, tz: &TimeZone) -> String {
        let d = t.to_zoned(tz.clone()).date();
        match self {
            Self::Daily => d.to_string(),
            Self::Weekly => {
                let w = d.iso_week_date();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Self::Monthly => format!("{}-{:02}", d.year(), d.month()),
            Self::Yearly => d.year().to_string(),
        }
    }

    /// `daily`, `weekly`, `monthly`, `yearly`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
        }
    }

    /// The newest snapshot of each source and kind per period of this tier, oldest first.
    #[must_use]
    pub fn newest_per_period(self, snapshots: Vec<Snapshot>, tz: &TimeZone) -> Vec<Snapshot> {
        let mut newest: BTreeMap<(String, String, String), Snapshot> = BTreeMap::new();
        for s in snapshots {
            let key = (
                s.source.clone(),
                s.kind.to_string(),
                self.period(s.finished_at, tz),
            );
            if newest
                .get(&key)
                .is_none_or(|n| n.finished_at < s.finished_at)
            {
                newest.insert(key, s);
            }
        }
        let mut out: Vec<Snapshot> = newest.into_values().collect();
        out.sort_by_key(|s| s.finished_at);
        out
    }
}

impl std::str::FromStr for Tier {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "daily" => Ok(Self::Daily),
            "weekly" => Ok(Self::Weekly),
            "monthly" => Ok(Self::Monthly),
            "yearly" => Ok(Self::Yearly),
            other => Err(err!(
                InvalidInput,
                "tier {other:?} is not one of daily, weekly, monthly, yearly"
            )),
        }
    }
}

/// Reads an IANA time zone name (`UTC`, `Pacific/Auckland`).
pub fn time_zone(name: &str) -> Result<TimeZone> {
    TimeZone::get(name).map_err(|e| {
        err!(
            InvalidInput,
            "time zone {name:?} is not known ({e}); use an IANA name such as UTC or Europe/Berlin"
        )
    })
}

/// Serde for a `TimeZone` field: an IANA name.
pub mod tz_name {
    use jiff::tz::TimeZone;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the IANA name (`UTC` when it has none).
    pub fn serialize<S: Serializer>(tz: &TimeZone, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.iana_name().unwrap_or("UTC"))
    }

    /// Reads an IANA name.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeZone, D::Error> {
        let name = String::deserialize(d)?;
        super::time_zone(&name).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

fn utc<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<TimeZone, D::Error> {
    tz_name::deserialize(d)
}

/// A retention policy. Read from options as `keep_last`, `keep_daily`, …,
/// `keep_within` (a duration), `time_zone` (an IANA name, default UTC).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    #[serde(with = "crate::duration::human::option")]
    pub keep_within: Option<Duration>,
    /// The calendar's time zone.
    #[serde(serialize_with = "tz_name::serialize", deserialize_with = "utc")]
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
            let periods = [
                (Tier::Daily, self.keep_daily),
                (Tier::Weekly, self.keep_weekly),
                (Tier::Monthly, self.keep_monthly),
                (Tier::Yearly, self.keep_yearly),
            ];
            for (tier, count) in periods {
                let mut seen = HashSet::new();
                for (s, r) in group.iter().zip(reasons.iter_mut()) {
                    if seen.len() >= count {
                        break;
                    }
                    let k = tier.period(s.finished_at, tz);
                    if seen.insert(k.clone()) {
                        r.push(format!("{} {k}", tier.as_str()));
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
