//! Choosing snapshots: by reference (`latest`, an id or a unique prefix), by kind, and by
//! calendar tier (the newest of each period, on retention's calendar).

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::manifest::Snapshot;
use super::retention::Tier;
use super::Repository;
use crate::Result;

/// `latest`, a whole snapshot id, or a unique prefix of one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
#[schemars(extend("x-type" = "latest|ID"))]
pub struct SnapshotRef(String);

impl SnapshotRef {
    /// The newest snapshot.
    #[must_use]
    pub fn latest() -> Self {
        Self("latest".to_owned())
    }

    /// The reference as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SnapshotRef {
    fn default() -> Self {
        Self::latest()
    }
}

impl fmt::Display for SnapshotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SnapshotRef {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(Self::from(s))
    }
}

impl From<&str> for SnapshotRef {
    fn from(s: &str) -> Self {
        Self(s.trim().to_owned())
    }
}

/// Which snapshots an operation takes: every one when nothing is given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Selection {
    /// These snapshots only (references); all when empty.
    pub snapshots: Vec<SnapshotRef>,
    /// Only snapshots of this kind (`pg_dump`, `pg_basebackup`).
    pub kind: Option<String>,
    /// Only the newest of each source and kind per calendar period (UTC).
    pub tier: Option<Tier>,
}

impl Selection {
    /// Whether it takes every snapshot.
    #[must_use]
    pub fn is_all(&self) -> bool {
        self.snapshots.is_empty() && self.kind.is_none() && self.tier.is_none()
    }
}

impl Repository {
    /// The snapshot `reference` names.
    pub async fn find(&self, reference: &SnapshotRef) -> Result<Snapshot> {
        self.find_snapshot(reference.as_str()).await
    }

    /// The snapshots `selection` takes, oldest first.
    pub async fn select(&self, selection: &Selection) -> Result<Vec<Snapshot>> {
        let mut chosen = if selection.snapshots.is_empty() {
            self.snapshots().await?
        } else {
            let mut v = Vec::new();
            for r in &selection.snapshots {
                v.push(self.find(r).await?);
            }
            v
        };
        if let Some(kind) = &selection.kind {
            chosen.retain(|s| s.kind.as_str() == kind);
        }
        if let Some(tier) = selection.tier {
            chosen = tier.newest_per_period(chosen, &TimeZone::UTC);
        }
        chosen.sort_by_key(|s| s.finished_at);
        Ok(chosen)
    }
}

/// Which one snapshot an operation restores from: `latest` (the default), an id or a
/// unique prefix, narrowed to a source, to those taken before a time, to tags, or drawn
/// at random within a window. The CLI (`--source`, `--before`, `--tag`,
/// `--random-within`), Python keywords and a step's `with:` all build this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Pick {
    /// `latest`, a whole id, or a unique prefix.
    pub snapshot: SnapshotRef,
    /// Only snapshots of this source: its URL (as `drkit snapshots` shows it) or the name
    /// of its database.
    pub source: Option<String>,
    /// Only snapshots taken before this moment (RFC 3339, e.g. `2026-12-01T03:00:00Z`):
    /// a known-good one from before a breach.
    pub before: Option<jiff::Timestamp>,
    /// Only snapshots with all these tags.
    pub tags: std::collections::BTreeMap<String, String>,
    /// One at random among those finished within this long before now (a restore test of
    /// a random backup), instead of the newest.
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub random_within: Option<std::time::Duration>,
}

/// The name a snapshot is about: its database (`metadata.database`), else the last part
/// of its source's path.
#[must_use]
pub fn subject(s: &Snapshot) -> String {
    if let Some(db) = s
        .metadata
        .get("database")
        .and_then(serde_json::Value::as_str)
    {
        return db.to_owned();
    }
    let path = s.source.split(['?', '#']).next().unwrap_or_default();
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

impl Repository {
    /// The one snapshot of kind `kind` that `pick` names, for an operation on `into` (the
    /// database a restore writes, when it has one). `latest` is the newest snapshot of
    /// that kind *of one source*: the source `pick.source` names, else the one whose
    /// database is `into`'s, else the only source there is. Several candidates, or none,
    /// are refused before anything changes, naming them and the fix.
    pub async fn pick(&self, pick: &Pick, kind: &str, into: Option<&str>) -> Result<Snapshot> {
        let url = self.inner.store.url();
        let all = self.snapshots().await?;
        if pick.snapshot.as_str() != "latest" {
            let s = self.find(&pick.snapshot).await?;
            if s.kind.as_str() != kind {
                return Err(crate::err!(
                    InvalidInput,
                    "snapshot {} is a {} snapshot; this takes {kind} snapshots",
                    s.id,
                    s.kind.as_str()
                )
                .with_hint(crate::Hint::ListSnapshots));
            }
            return Ok(s);
        }
        let mut of_kind: Vec<Snapshot> = all
            .into_iter()
            .filter(|s| s.kind.as_str() == kind)
            .filter(|s| pick.tags.iter().all(|(k, v)| s.tags.get(k) == Some(v)))
            .collect();
        if of_kind.is_empty() {
            return Err(crate::err!(
                NotFound,
                "repository {url} has no {kind} snapshot{}; take one with `{}`",
                if pick.tags.is_empty() {
                    String::new()
                } else {
                    " with those tags".to_owned()
                },
                match kind {
                    "k8s" => "drkit k8s export",
                    "dns" => "drkit dns export",
                    "files" => "drkit backup-files",
                    "git" => "drkit git bundle",
                    _ => "drkit backup",
                }
            ));
        }
        let source = one_source(pick, kind, into, &of_kind, &url)?;
        of_kind.retain(|s| s.source == source);
        if let Some(before) = pick.before {
            of_kind.retain(|s| s.started_at < before);
        }
        if let Some(window) = pick.random_within {
            let since = jiff::Timestamp::now()
                .checked_sub(
                    jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX),
                )
                .unwrap_or(jiff::Timestamp::MIN);
            of_kind.retain(|s| s.finished_at >= since);
        }
        if of_kind.is_empty() {
            return Err(crate::err!(
                NotFound,
                "no {kind} snapshot of {source} {}in {url}; list them with `drkit snapshots`",
                match (pick.before, pick.random_within) {
                    (Some(b), _) => format!("taken before {b} "),
                    (None, Some(w)) => format!("within the last {} ", crate::duration::format(w)),
                    (None, None) => String::new(),
                }
            ));
        }
        if pick.random_within.is_some() {
            let mut bytes = [0u8; 8];
            getrandom::getrandom(&mut bytes)
                .map_err(|e| crate::err!(Io, "drawing a random snapshot: {e}"))?;
            let i = usize::try_from(u64::from_le_bytes(bytes) % of_kind.len() as u64).unwrap_or(0);
            return Ok(of_kind.swap_remove(i));
        }
        Ok(of_kind
            .into_iter()
            .max_by_key(|s| s.finished_at)
            .expect("not empty"))
    }
}

/// The one source `latest` is about (see [`Repository::pick`]).
fn one_source(
    pick: &Pick,
    kind: &str,
    into: Option<&str>,
    of_kind: &[Snapshot],
    url: &str,
) -> Result<String> {
    let sources: std::collections::BTreeSet<String> =
        of_kind.iter().map(|s| s.source.clone()).collect();
    let chosen: Vec<String> = match (&pick.source, into) {
        (Some(want), _) => sources
            .iter()
            .filter(|src| {
                *src == want
                    || src
                        .split_once(":/")
                        .is_some_and(|(_, p)| format!("/{p}") == *want)
                    || of_kind
                        .iter()
                        .any(|s| &s.source == *src && &subject(s) == want)
            })
            .cloned()
            .collect(),
        (None, _) if sources.len() == 1 => sources.iter().cloned().collect(),
        (None, Some(db)) => sources
            .iter()
            .filter(|src| {
                of_kind
                    .iter()
                    .any(|s| &s.source == *src && subject(s) == db)
            })
            .cloned()
            .collect(),
        (None, None) => sources.iter().cloned().collect(),
    };
    let listed = || sources.iter().cloned().collect::<Vec<_>>().join(", ");
    match chosen.len() {
        0 => Err(crate::err!(
            NotFound,
            "no {kind} snapshot of {} in {url} (its sources: {})",
            pick.source.as_deref().or(into).unwrap_or("that source"),
            listed()
        )
        .with_hint(crate::Hint::Source)),
        1 => Ok(chosen.into_iter().next().expect("one")),
        _ => Err(crate::err!(
            InvalidInput,
            "`latest` is ambiguous in {url}: {kind} snapshots of {} sources ({})",
            chosen.len(),
            chosen.join(", ")
        )
        .with_hint(crate::Hint::Source)),
    }
}
