//! `drkit prune` and `drkit status`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use dr_core::duration_secs::parse_human;
use dr_core::repo::retention::Policy;
use dr_core::repo::{PruneOptions, Repository, Snapshot, Verified};
use dr_core::{err, Error, Result};
use dr_pg::wal::{WalArchive, DEFAULT_SEGMENT_SIZE};
use dr_pg::{BaseMetadata, KIND_BASE};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::args::{Cli, PruneArgs, StatusArgs};
use crate::output::Output;
use crate::EXIT_CHECK_FAILED;

/// `drkit prune`.
pub async fn prune(cli: &Cli, a: &PruneArgs, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let policy = Policy {
        keep_last: a.keep_last,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_within: a.keep_within.as_deref().map(parse_human).transpose()?,
        time_zone: jiff::tz::TimeZone::get(&a.time_zone)
            .map_err(|e| err!(InvalidInput, "time zone {:?}: {e}", a.time_zone))?,
    };
    let options = PruneOptions {
        policy,
        dry_run: a.dry_run,
        grace: parse_human(&a.grace)?,
    };
    let report = repo.prune(&options, Timestamp::now()).await?;
    // WAL older than the oldest kept base backup's first file serves no replay.
    let mut wal_removed = 0;
    if !a.dry_run {
        let kept = repo.snapshots().await?;
        if let Some(oldest) = kept.iter().find(|s| s.kind.as_str() == KIND_BASE) {
            let meta = BaseMetadata::of(oldest)?;
            wal_removed =
                dr_pg::wal::prune_before(&repo, &meta.first_wal, meta.wal_segment_size).await?;
        }
    }
    let doc = json!({ "report": report, "wal_files_removed": wal_removed });
    out.emit(&doc, || {
        let mut t = String::new();
        for d in &report.decisions {
            let what = if d.keep { "keep  " } else { "remove" };
            let _ = writeln!(
                t,
                "{what} {}  {}  {}  {}",
                d.id,
                d.kind,
                d.source,
                d.reasons.join(", ")
            );
        }
        if report.dry_run {
            t.push_str("dry run: nothing was changed");
        } else {
            let _ = write!(
                t,
                "removed {} snapshots, {} chunks ({} bytes), {} WAL files",
                report.removed.len(),
                report.chunks_deleted,
                report.bytes_freed,
                wal_removed
            );
            if let Some(n) = &report.note {
                let _ = write!(t, "\nnote: {n}");
            }
        }
        t
    });
    Ok(0)
}

/// One service's objectives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Objective {
    name: String,
    /// A substring of the snapshots' source (`127.0.0.1:5432/shop`).
    source: String,
    rpo: Option<String>,
    rto: Option<String>,
    verified_within: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Objectives {
    service: Vec<Objective>,
}

fn read_objectives(path: &Path) -> Result<Vec<Objective>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading objectives {}", path.display()), e))?;
    let o: Objectives = toml::from_str(&text).map_err(|e| {
        err!(
            InvalidInput,
            "objectives file {}: {}",
            path.display(),
            e.message()
        )
    })?;
    Ok(o.service)
}

/// Where one source stands.
#[derive(Debug, Clone, Serialize)]
struct SourceStatus {
    source: String,
    newest: String,
    newest_kind: String,
    newest_age_seconds: f64,
    newest_verified: Option<String>,
    verified_age_seconds: Option<f64>,
    last_restore_test_seconds: Option<f64>,
    /// Seconds of data that would be lost if the source died now.
    at_risk_seconds: f64,
    at_risk_basis: String,
}

fn age(now: Timestamp, t: Timestamp) -> f64 {
    now.duration_since(t).as_secs_f64().max(0.0)
}

fn sources(
    all: &[Snapshot],
    verified: &[(dr_core::repo::SnapshotId, Verified)],
    wal: Option<Timestamp>,
    now: Timestamp,
) -> Vec<SourceStatus> {
    let mut by_source: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for s in all {
        by_source.entry(&s.source).or_default().push(s);
    }
    by_source
        .into_iter()
        .map(|(source, snaps)| {
            let newest = snaps
                .iter()
                .max_by_key(|s| s.finished_at)
                .expect("non-empty");
            let ver = verified
                .iter()
                .filter(|(id, _)| snaps.iter().any(|s| &s.id == id))
                .max_by_key(|(_, v)| v.at);
            let archived = snaps.iter().any(|s| s.kind.as_str() == KIND_BASE) && wal.is_some();
            let (at_risk, basis) = match (archived, wal) {
                (true, Some(w)) => (
                    age(now, w.max(newest.finished_at)),
                    "last archived WAL".to_owned(),
                ),
                _ => (age(now, newest.finished_at), "newest snapshot".to_owned()),
            };
            SourceStatus {
                source: source.to_owned(),
                newest: newest.id.to_string(),
                newest_kind: newest.kind.to_string(),
                newest_age_seconds: age(now, newest.finished_at),
                newest_verified: ver.map(|(id, _)| id.to_string()),
                verified_age_seconds: ver.map(|(_, v)| age(now, v.at)),
                last_restore_test_seconds: verified
                    .iter()
                    .filter(|(id, v)| {
                        v.restore_seconds.is_some() && snaps.iter().any(|s| &s.id == id)
                    })
                    .max_by_key(|(_, v)| v.at)
                    .and_then(|(_, v)| v.restore_seconds),
                at_risk_seconds: at_risk,
                at_risk_basis: basis,
            }
        })
        .collect()
}

fn check(o: &Objective, matching: &[&SourceStatus]) -> Result<Vec<String>> {
    let mut misses = Vec::new();
    if matching.is_empty() {
        misses.push(format!(
            "{}: no snapshots of a source matching {:?}",
            o.name, o.source
        ));
        return Ok(misses);
    }
    let limit = |v: &Option<String>| v.as_deref().map(parse_human).transpose();
    for s in matching {
        if let Some(rpo) = limit(&o.rpo)? {
            if s.at_risk_seconds > rpo.as_secs_f64() {
                misses.push(format!(
                    "{}: {:.0} s of data at risk (since the {}), objective RPO {} s",
                    o.name,
                    s.at_risk_seconds,
                    s.at_risk_basis,
                    rpo.as_secs()
                ));
            }
        }
        if let Some(within) = limit(&o.verified_within)? {
            match s.verified_age_seconds {
                None => misses.push(format!("{}: never verified; run `drkit verify`", o.name)),
                Some(a) if a > within.as_secs_f64() => misses.push(format!(
                    "{}: last verified {a:.0} s ago, objective {} s",
                    o.name,
                    within.as_secs()
                )),
                Some(_) => {}
            }
        }
        if let Some(rto) = limit(&o.rto)? {
            match s.last_restore_test_seconds {
                None => misses.push(format!(
                    "{}: no restore test measured; run `drkit verify --restore-into …`",
                    o.name
                )),
                Some(t) if t > rto.as_secs_f64() => misses.push(format!(
                    "{}: the last restore test took {t:.0} s, objective RTO {} s",
                    o.name,
                    rto.as_secs()
                )),
                Some(_) => {}
            }
        }
    }
    Ok(misses)
}

/// `drkit status`: exit 3 when an objective is missed.
pub async fn status(cli: &Cli, a: &StatusArgs, out: Output) -> Result<u8> {
    let objectives = a.objectives.as_deref().map(read_objectives).transpose()?;
    let repo: Repository = super::open_repo(cli).await?;
    let now = Timestamp::now();
    let all = repo.snapshots().await?;
    let verified = repo.verified().await?;
    let wal = WalArchive::read(&repo, DEFAULT_SEGMENT_SIZE)
        .await?
        .newest()
        .and_then(|(_, _, at)| at);
    let list = sources(&all, &verified, wal, now);
    let mut misses = Vec::new();
    for o in objectives.iter().flatten() {
        let matching: Vec<&SourceStatus> = list
            .iter()
            .filter(|s| s.source.contains(&o.source))
            .collect();
        misses.extend(check(o, &matching)?);
    }
    let ok = misses.is_empty();
    let doc =
        json!({ "ok": ok, "sources": list, "objectives_missed": misses, "last_archived_wal": wal });
    out.emit(&doc, || {
        let mut t = String::new();
        for s in &list {
            let _ = writeln!(
                t,
                "{}\n  newest {} ({}) {:.0} s ago; verified: {}; data at risk now: {:.0} s (since the {})",
                s.source,
                s.newest,
                s.newest_kind,
                s.newest_age_seconds,
                s.verified_age_seconds.map_or("never".to_owned(), |a| format!("{a:.0} s ago")),
                s.at_risk_seconds,
                s.at_risk_basis
            );
        }
        for m in &misses {
            let _ = writeln!(t, "MISSED {m}");
        }
        t.trim_end().to_owned()
    });
    Ok(if ok { 0 } else { EXIT_CHECK_FAILED })
}
