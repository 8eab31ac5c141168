//! Where each source stands — newest snapshot, newest verified, data at risk now —
//! checked against recovery objectives (RPO, RTO, how recently verified).

use std::collections::BTreeMap;

use dr_core::duration_secs::parse_human;
use dr_core::repo::{Repository, Snapshot, SnapshotId, Verified};
use dr_core::Result;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::basebackup::KIND_BASE;
use crate::wal::{WalArchive, MIN_SEGMENT_SIZE};

/// One service's objectives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The service's name, for messages.
    pub name: String,
    /// A substring of the snapshots' source (`127.0.0.1:5432/shop`).
    pub source: String,
    /// Most data that may be lost (`15m`).
    pub rpo: Option<String>,
    /// Longest a restore may take, as measured by the newest restore test (`1h`).
    pub rto: Option<String>,
    /// How recently a snapshot must have passed `drkit verify` (`7d`).
    pub verified_within: Option<String>,
}

/// An objectives file: `[[service]]` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    /// One entry per service.
    pub service: Vec<Objective>,
}

/// Where one source stands.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// The source as snapshots record it.
    pub source: String,
    /// Its newest snapshot.
    pub newest: String,
    /// That snapshot's kind.
    pub newest_kind: String,
    /// Its age.
    pub newest_age_seconds: f64,
    /// The newest snapshot that passed a verify.
    pub newest_verified: Option<String>,
    /// How long ago that verify was.
    pub verified_age_seconds: Option<f64>,
    /// How long the newest restore test took.
    pub last_restore_test_seconds: Option<f64>,
    /// Seconds of data that would be lost if the source died now.
    pub at_risk_seconds: f64,
    /// What the risk is measured from (`last archived WAL` or `newest snapshot`).
    pub at_risk_basis: String,
}

fn age(now: Timestamp, t: Timestamp) -> f64 {
    now.duration_since(t).as_secs_f64().max(0.0)
}

fn sources(
    all: &[Snapshot],
    verified: &[(SnapshotId, Verified)],
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

/// The whole picture.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// No objective missed.
    pub ok: bool,
    /// Per source.
    pub sources: Vec<SourceStatus>,
    /// What was missed, in words.
    pub objectives_missed: Vec<String>,
    /// When the newest WAL file arrived.
    pub last_archived_wal: Option<Timestamp>,
}

/// Reads the repository and checks `objectives` as of `now`.
pub async fn status(
    repo: &Repository,
    objectives: &[Objective],
    now: Timestamp,
) -> Result<StatusReport> {
    let all = repo.snapshots().await?;
    let verified = repo.verified().await?;
    let wal = WalArchive::read(repo, MIN_SEGMENT_SIZE)
        .await?
        .newest()
        .and_then(|(_, _, at)| at);
    let list = sources(&all, &verified, wal, now);
    let mut misses = Vec::new();
    for o in objectives {
        let matching: Vec<&SourceStatus> = list
            .iter()
            .filter(|s| s.source.contains(&o.source))
            .collect();
        misses.extend(check(o, &matching)?);
    }
    Ok(StatusReport {
        ok: misses.is_empty(),
        sources: list,
        objectives_missed: misses,
        last_archived_wal: wal,
    })
}
