//! Pruning: remove the snapshots a retention policy drops, then delete chunks no
//! snapshot references — without ever taking a chunk a running backup relies on.
//!
//! Backups write an `inflight/` marker before they look at which chunks exist. Prune
//! takes the `prune` lock, writes a `gc/` marker, and deletes chunks only when no fresh
//! in-flight marker exists and the chunk is older than the grace period. A backup that
//! started before a `gc/` marker re-checks, at commit, that every chunk it reused still
//! exists, and refuses to commit a snapshot with holes.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::chunk::ChunkId;
use super::retention::{Decision, Policy};
use super::{Repository, SnapshotId};
use crate::store::{BackupStoreExt, ObjectMeta, PutMode};
use crate::{err, ErrorKind, Result};

/// In-flight markers older than this are taken for killed backups and removed.
pub const STALE_MARKER: Duration = Duration::from_hours(24);

/// What `prune` does. Read from options as the policy's fields (`keep_daily`, …,
/// `time_zone`) beside `dry_run` and `grace`, every one checked by name.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The retention policy.
    pub policy: Policy,
    /// Report only; change nothing.
    pub dry_run: bool,
    /// Unreferenced chunks younger than this stay (a backup may be about to use them).
    pub grace: Duration,
}

/// `PruneOptions` as written: the policy's fields beside `dry_run` and `grace`.
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct PruneFields {
    /// Keep the newest N.
    keep_last: usize,
    /// Keep the newest per day, for this many days with snapshots.
    keep_daily: usize,
    /// Keep the newest per ISO week, for this many weeks.
    keep_weekly: usize,
    /// Keep the newest per month, for this many months.
    keep_monthly: usize,
    /// Keep the newest per year, for this many years.
    keep_yearly: usize,
    /// Keep everything younger than this.
    #[serde(with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    keep_within: Option<Duration>,
    /// The calendar's time zone (an IANA name, default UTC).
    time_zone: Option<String>,
    /// Report only; change nothing.
    dry_run: bool,
    /// Unreferenced chunks younger than this stay (default 1h).
    #[serde(with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    grace: Option<Duration>,
}

impl schemars::JsonSchema for PruneOptions {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PruneOptions".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        PruneFields::json_schema(g)
    }
}

impl<'de> Deserialize<'de> for PruneOptions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = PruneFields::deserialize(d)?;
        let time_zone = match r.time_zone.as_deref() {
            None => jiff::tz::TimeZone::UTC,
            Some(name) => super::retention::time_zone(name)
                .map_err(|e| serde::de::Error::custom(e.message()))?,
        };
        Ok(Self {
            policy: Policy {
                keep_last: r.keep_last,
                keep_daily: r.keep_daily,
                keep_weekly: r.keep_weekly,
                keep_monthly: r.keep_monthly,
                keep_yearly: r.keep_yearly,
                keep_within: r.keep_within,
                time_zone,
            },
            dry_run: r.dry_run,
            grace: r.grace.unwrap_or_else(default_grace),
        })
    }
}

fn default_grace() -> Duration {
    Duration::from_hours(1)
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            dry_run: false,
            grace: default_grace(),
        }
    }
}

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Every snapshot with keep/remove and the reasons.
    pub decisions: Vec<Decision>,
    /// Snapshots removed.
    pub removed: Vec<SnapshotId>,
    /// Unreferenced chunks deleted.
    pub chunks_deleted: u64,
    /// Their stored bytes.
    pub bytes_freed: u64,
    /// Unreferenced chunks left for a later prune (too young, or a backup was running).
    pub chunks_left: u64,
    /// Why chunks were left, when they were.
    pub note: Option<String>,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

/// A `verified/<id>` marker: when and how a snapshot was last proven good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// When.
    pub at: Timestamp,
    /// `chunks` (every chunk re-read) or `restore` (restored and checked).
    pub level: String,
    /// For a restore, how long it took (the measured RTO of a restore drill). Kept
    /// from an earlier restore verification when a later one re-reads chunks only.
    pub restore_seconds: Option<f64>,
    /// When that restore verification ran.
    #[serde(default)]
    pub restored_at: Option<Timestamp>,
}

impl Verified {
    /// Every chunk was re-read and authenticated, now.
    #[must_use]
    pub fn chunks(at: Timestamp) -> Self {
        Self {
            at,
            level: "chunks".into(),
            restore_seconds: None,
            restored_at: None,
        }
    }

    /// Restored and checked, now, in `seconds`.
    #[must_use]
    pub fn restore(at: Timestamp, seconds: f64) -> Self {
        Self {
            at,
            level: "restore".into(),
            restore_seconds: Some(seconds),
            restored_at: Some(at),
        }
    }

    /// This verification on top of `earlier`: the newest time, and the newest restore
    /// measurement of either, so a chunk re-read never erases a measured restore time.
    #[must_use]
    pub fn merged_over(self, earlier: &Verified) -> Self {
        if self.restore_seconds.is_some() {
            return self;
        }
        Self {
            restore_seconds: earlier.restore_seconds,
            restored_at: earlier
                .restored_at
                .or(earlier.restore_seconds.map(|_| earlier.at)),
            ..self
        }
    }
}

fn marker_time(key: &str) -> Option<Timestamp> {
    let last = key.rsplit('/').next()?;
    let nanos: i128 = last.split('-').next()?.parse().ok()?;
    Timestamp::from_nanosecond(nanos).ok()
}

impl Repository {
    /// Records that `id` passed a verify, keeping the restore time an earlier restore
    /// verification measured; returns the marker as written.
    pub async fn mark_verified(&self, id: &SnapshotId, v: &Verified) -> Result<Verified> {
        let key = format!("verified/{id}");
        let earlier: Option<Verified> = match self.store().get_bytes(&key).await {
            Ok(b) => serde_json::from_slice(&b).ok(),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let v = match earlier {
            Some(e) => v.clone().merged_over(&e),
            None => v.clone(),
        };
        let body = serde_json::to_vec(&v).expect("marker serializes");
        self.store()
            .put_bytes(&key, body.into(), PutMode::Overwrite)
            .await?;
        Ok(v)
    }

    /// Every verify marker.
    pub async fn verified(&self) -> Result<Vec<(SnapshotId, Verified)>> {
        let metas: Vec<ObjectMeta> = self.store().list("verified/").try_collect().await?;
        let mut out = Vec::new();
        for m in metas {
            let Some(id) = m
                .key
                .strip_prefix("verified/")
                .and_then(|s| SnapshotId::parse(s).ok())
            else {
                continue;
            };
            if let Ok(b) = self.store().get_bytes(&m.key).await {
                if let Ok(v) = serde_json::from_slice(&b) {
                    out.push((id, v));
                }
            }
        }
        Ok(out)
    }

    /// Writes an in-flight marker for a backup starting now; returns its key.
    pub(crate) async fn begin_inflight(&self, started: Timestamp) -> Result<String> {
        let key = format!(
            "inflight/{}-{}",
            started.as_nanosecond(),
            hex::encode(super::crypto::random::<6>()?)
        );
        self.store()
            .put_bytes(&key, bytes::Bytes::new(), PutMode::Overwrite)
            .await?;
        Ok(key)
    }

    /// Before a commit: if a prune started after `started`, every chunk this backup
    /// reused instead of uploading must still exist.
    pub(crate) async fn check_reused(
        &self,
        started: Timestamp,
        reused: &HashSet<ChunkId>,
    ) -> Result<()> {
        let markers: Vec<ObjectMeta> = self.store().list("gc/").try_collect().await?;
        if !markers
            .iter()
            .any(|m| marker_time(&m.key).is_some_and(|t| t >= started))
        {
            return Ok(());
        }
        for id in reused {
            if let Err(e) = self.store().head(&id.key()).await {
                if e.kind() == ErrorKind::NotFound {
                    return Err(err!(
                        Conflict,
                        "a prune ran during this backup and deleted chunk {} it relies on; nothing was committed: run the backup again",
                        id.short()
                    ));
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Applies `options.policy` as of `now`, removes what it drops, and deletes
    /// unreferenced chunks when that is safe.
    pub async fn prune(&self, options: &PruneOptions, now: Timestamp) -> Result<PruneReport> {
        options.policy.validate()?;
        let lock = if options.dry_run {
            None
        } else {
            Some(self.prune_lock(None).await?)
        };
        let result = self.prune_holding_lock(options, now).await;
        if let Some(l) = lock {
            l.release().await?;
        }
        result
    }

    /// Takes the lock a prune holds: `lock` when given (a Kubernetes Lease, for stores
    /// that ignore create-only writes), else the store lock `prune`.
    pub async fn prune_lock(
        &self,
        lock: Option<std::sync::Arc<dyn crate::lock::Lock>>,
    ) -> Result<super::RepoLock> {
        match lock {
            Some(l) => Self::lock_with(l, "prune", Duration::from_hours(6)).await,
            None => self.lock("prune", "prune", Duration::from_hours(6)).await,
        }
    }

    /// [`Repository::prune`] for a caller that holds [`Repository::prune_lock`] (or
    /// runs a dry run, which changes nothing).
    pub async fn prune_holding_lock(
        &self,
        options: &PruneOptions,
        now: Timestamp,
    ) -> Result<PruneReport> {
        let all = self.snapshots().await?;
        let verified: HashSet<SnapshotId> = self
            .verified()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let decisions = options.policy.apply(&all, &verified, now);
        let removed: Vec<SnapshotId> = decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| d.id.clone())
            .collect();
        let mut report = PruneReport {
            decisions,
            removed: removed.clone(),
            chunks_deleted: 0,
            bytes_freed: 0,
            chunks_left: 0,
            note: None,
            dry_run: options.dry_run,
        };
        if options.dry_run {
            return Ok(report);
        }
        let keys: Vec<String> = removed.iter().map(SnapshotId::key).collect();
        self.store().delete_many(&keys).await?;
        let verified_keys: Vec<String> =
            removed.iter().map(|id| format!("verified/{id}")).collect();
        self.store().delete_many(&verified_keys).await?;

        // Announce the collection first: a backup that starts from here on re-checks.
        let gc_key = format!("gc/{}", now.as_nanosecond());
        self.store()
            .put_bytes(&gc_key, bytes::Bytes::new(), PutMode::Overwrite)
            .await?;
        let mut referenced = HashSet::new();
        for s in self.snapshots().await? {
            for f in &s.files {
                referenced.extend(f.chunks.iter().map(|c| c.id));
            }
        }
        let chunks: Vec<ObjectMeta> = self.store().list("chunks/").try_collect().await?;
        let grace = SignedDuration::try_from(options.grace).unwrap_or(SignedDuration::MAX);
        let stale = SignedDuration::try_from(STALE_MARKER).expect("small");
        let unreferenced: Vec<&ObjectMeta> = chunks
            .iter()
            .filter(|m| ChunkId::from_key(&m.key).is_some_and(|id| !referenced.contains(&id)))
            .collect();
        // Markers of backups that were killed are removed; a fresh one stops deletion.
        let inflight: Vec<ObjectMeta> = self.store().list("inflight/").try_collect().await?;
        let (old, fresh): (Vec<_>, Vec<_>) = inflight
            .into_iter()
            .partition(|m| marker_time(&m.key).is_some_and(|t| t < now - stale));
        self.store()
            .delete_many(&old.into_iter().map(|m| m.key).collect::<Vec<_>>())
            .await?;
        let old_gc: Vec<String> = self
            .store()
            .list("gc/")
            .try_filter(|m| {
                futures::future::ready(marker_time(&m.key).is_some_and(|t| t < now - stale))
            })
            .map_ok(|m| m.key)
            .try_collect()
            .await?;
        self.store().delete_many(&old_gc).await?;
        if !fresh.is_empty() {
            report.chunks_left = unreferenced.len() as u64;
            report.note = Some(format!(
                "{} backup(s) in progress; their chunks and all unreferenced chunks are left for the next prune",
                fresh.len()
            ));
            return Ok(report);
        }
        let mut doomed = Vec::new();
        for m in unreferenced {
            if m.modified.is_some_and(|t| t > now - grace) {
                report.chunks_left += 1;
            } else {
                report.bytes_freed += m.size;
                doomed.push(m.key.clone());
            }
        }
        report.chunks_deleted = doomed.len() as u64;
        self.store().delete_many(&doomed).await?;
        if report.chunks_left > 0 && report.note.is_none() {
            report.note = Some(format!(
                "{} unreferenced chunks are younger than the grace period",
                report.chunks_left
            ));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_by_name_and_refuse_misspellings() {
        let o: PruneOptions = serde_json::from_str(
            r#"{"keep_daily": 7, "keep_within": "36h", "time_zone": "Pacific/Auckland", "grace": "30m", "dry_run": true}"#,
        )
        .unwrap();
        assert_eq!(o.policy.keep_daily, 7);
        assert_eq!(o.policy.keep_within, Some(Duration::from_hours(36)));
        assert_eq!(o.policy.time_zone.iana_name(), Some("Pacific/Auckland"));
        assert_eq!((o.grace, o.dry_run), (Duration::from_mins(30), true));
        let d: PruneOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(d.grace, Duration::from_hours(1));
        let e = serde_json::from_str::<PruneOptions>(r#"{"keep_dialy": 7}"#).unwrap_err();
        assert!(e.to_string().contains("keep_dialy"), "{e}");
        let e =
            serde_json::from_str::<PruneOptions>(r#"{"time_zone": "Mars/Olympus"}"#).unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
    }
}
