//! Where each source stands — newest snapshot, newest verified, data at risk now —
//! checked against recovery objectives (RPO, RTO, how recently verified); and each
//! runbook's newest drill, held to how recently it must have been drilled.

use std::collections::BTreeMap;
use std::time::Duration;

use dr_core::repo::{Repository, Snapshot, SnapshotId, Verified};
use dr_core::runbook::report::LastDrill;
use dr_core::runbook::{Engine, Registry};
use dr_core::{err, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::physical::basebackup::KIND_BASE;
use crate::physical::wal::{WalArchive, MIN_SEGMENT_SIZE};

/// One service's objectives, validated when read: a misspelt duration is refused
/// naming the service, the field and the accepted forms, before any snapshot is looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Objective {
    /// The service's name, for messages.
    pub name: String,
    /// A substring of the snapshots' source (`127.0.0.1:5432/shop`); without one, no
    /// snapshot is looked for (an objective on drills only).
    pub source: Option<String>,
    /// The runbook whose drills prove the service's recovery (its `name:`).
    pub runbook: Option<String>,
    /// How recently that runbook must have been drilled, successfully (`90d`).
    #[serde(with = "dr_core::duration::human::option")]
    pub drilled_within: Option<Duration>,
    /// Most data that may be lost (`15m`).
    #[serde(with = "dr_core::duration::human::option")]
    pub rpo: Option<Duration>,
    /// Longest a restore may take, as measured by the newest restore test (`1h`).
    #[serde(with = "dr_core::duration::human::option")]
    pub rto: Option<Duration>,
    /// How recently a snapshot must have passed a verify (`7d`).
    #[serde(with = "dr_core::duration::human::option")]
    pub verified_within: Option<Duration>,
}

/// An objective as written.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawObjective {
    /// The service's name, for messages.
    name: String,
    /// A substring of the snapshots' source (`127.0.0.1:5432/shop`); without one, no
    /// snapshot is looked for (an objective on drills only).
    #[serde(default)]
    source: Option<String>,
    /// The runbook whose drills prove the service's recovery (its `name:`).
    #[serde(default)]
    runbook: Option<String>,
    /// How recently that runbook must have been drilled, successfully (`90d`).
    #[serde(default)]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    drilled_within: Option<serde_json::Value>,
    /// Most data that may be lost (`15m`).
    #[serde(default)]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    rpo: Option<serde_json::Value>,
    /// Longest a restore may take, as measured by the newest restore test (`1h`).
    #[serde(default)]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    rto: Option<serde_json::Value>,
    /// How recently a snapshot must have passed a verify (`7d`).
    #[serde(default)]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    verified_within: Option<serde_json::Value>,
}

impl schemars::JsonSchema for Objective {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Objective".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawObjective::json_schema(g)
    }
}

fn objective_duration(
    service: &str,
    field: &str,
    v: Option<serde_json::Value>,
) -> Result<Option<Duration>> {
    let parsed = match &v {
        None => return Ok(None),
        Some(serde_json::Value::String(s)) => dr_core::duration::parse(s),
        Some(serde_json::Value::Number(n)) => n
            .as_f64()
            .and_then(|f| Duration::try_from_secs_f64(f).ok())
            .ok_or_else(|| err!(InvalidInput, "{n} is not a number of seconds")),
        Some(other) => Err(err!(InvalidInput, "{other} is not a duration")),
    };
    parsed.map(Some).map_err(|e| {
        err!(
            InvalidInput,
            "service {service:?}: {field} = {}: {}",
            v.map(|v| v.to_string()).unwrap_or_default(),
            e.message()
        )
    })
}

impl<'de> Deserialize<'de> for Objective {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = RawObjective::deserialize(d)?;
        let field = |f: &str, v| {
            objective_duration(&raw.name, f, v).map_err(|e| serde::de::Error::custom(e.message()))
        };
        let drilled_within = field("drilled_within", raw.drilled_within)?;
        if drilled_within.is_some() && raw.runbook.is_none() {
            return Err(serde::de::Error::custom(format!(
                "service {:?}: drilled_within needs `runbook`, the name of the runbook whose drills count",
                raw.name
            )));
        }
        if raw.source.is_none() && raw.runbook.is_none() {
            return Err(serde::de::Error::custom(format!(
                "service {:?}: give `source` (a substring of its snapshots' source), `runbook` (the runbook whose drills count), or both",
                raw.name
            )));
        }
        Ok(Self {
            drilled_within,
            runbook: raw.runbook,
            rpo: field("rpo", raw.rpo)?,
            rto: field("rto", raw.rto)?,
            verified_within: field("verified_within", raw.verified_within)?,
            name: raw.name,
            source: raw.source,
        })
    }
}

/// An objectives file: `[[service]]` entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    /// One entry per service.
    pub service: Vec<Objective>,
}

impl Objectives {
    /// Reads an objectives file (TOML); every entry is validated, and an error names the
    /// file, the line and the service.
    pub fn load(path: &std::path::Path) -> Result<Vec<Objective>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| dr_core::Error::io(format!("reading objectives {}", path.display()), e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses objectives from TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Vec<Objective>> {
        let o: Self = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            err!(
                InvalidInput,
                "objectives file {origin}{at}: {}; each [[service]] has name, source and any of rpo, rto, verified_within, and runbook with drilled_within (durations such as 15m, 1h, 7d, 90d)",
                e.message().trim_end()
            )
        })?;
        Ok(o.service)
    }
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

fn check(o: &Objective, source: &str, matching: &[&SourceStatus]) -> Vec<String> {
    let mut misses = Vec::new();
    if matching.is_empty() {
        misses.push(format!(
            "{}: no snapshots of a source matching {source:?}",
            o.name
        ));
        return misses;
    }
    for s in matching {
        if let Some(rpo) = o.rpo {
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
        if let Some(within) = o.verified_within {
            match s.verified_age_seconds {
                None => misses.push(format!(
                    "{}: never verified; verify a snapshot (drkit verify, Repository.verify or a pg.verify step)",
                    o.name
                )),
                Some(a) if a > within.as_secs_f64() => misses.push(format!(
                    "{}: last verified {a:.0} s ago, objective {} s",
                    o.name,
                    within.as_secs()
                )),
                Some(_) => {}
            }
        }
        if let Some(rto) = o.rto {
            match s.last_restore_test_seconds {
                None => misses.push(format!(
                    "{}: no restore test measured; verify a snapshot by restoring it (drkit verify --restore-into, Repository.verify_restore or pg.verify with restore_into)",
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
    misses
}

fn check_drills(o: &Objective, drills: &[LastDrill], now: Timestamp) -> Vec<String> {
    let (Some(runbook), Some(within)) = (&o.runbook, o.drilled_within) else {
        return Vec::new();
    };
    let Some(d) = drills.iter().find(|d| &d.runbook == runbook) else {
        return vec![format!(
            "{}: runbook {runbook:?} was never drilled; drill it (drkit drill FILE, drkit.Drill)",
            o.name
        )];
    };
    let mut misses = Vec::new();
    let ago = age(now, d.started);
    if ago > within.as_secs_f64() {
        misses.push(format!(
            "{}: runbook {runbook:?} was last drilled {} ago ({}), objective every {}",
            o.name,
            dr_core::duration::format(Duration::from_secs(ago as u64)),
            d.started,
            dr_core::duration::format(within)
        ));
    }
    if !d.ok {
        misses.push(format!(
            "{}: the last drill of {runbook:?} (run {}, {}) did not pass: {}, RTO {}, RPO {}",
            o.name,
            d.run,
            d.started,
            d.outcome,
            d.rto.verdict.as_str(),
            d.rpo.verdict.as_str()
        ));
    }
    misses
}

/// The whole picture.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// No objective missed.
    pub ok: bool,
    /// Per source.
    pub sources: Vec<SourceStatus>,
    /// Each runbook's newest drill: when, outcome, RTO and RPO achieved with verdicts.
    pub drills: Vec<LastDrill>,
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
    let drills = Engine::for_repository(Registry::new(), repo)
        .last_drills()
        .await?;
    let mut misses = Vec::new();
    for o in objectives {
        if let Some(source) = &o.source {
            let matching: Vec<&SourceStatus> =
                list.iter().filter(|s| s.source.contains(source)).collect();
            misses.extend(check(o, source, &matching));
        }
        misses.extend(check_drills(o, &drills, now));
    }
    Ok(StatusReport {
        ok: misses.is_empty(),
        sources: list,
        drills,
        objectives_missed: misses,
        last_archived_wal: wal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_are_validated_when_read_naming_service_and_field() {
        let good = "[[service]]\nname = \"shop\"\nsource = \"/shop\"\nrpo = \"15m\"\nrto = \"1h30m\"\nverified_within = 604800\n";
        let o = Objectives::parse(good, "objectives.toml").unwrap();
        assert_eq!(o[0].rpo, Some(Duration::from_mins(15)));
        assert_eq!(o[0].rto, Some(Duration::from_mins(90)));
        assert_eq!(o[0].verified_within, Some(Duration::from_hours(168)));
        let bad = "[[service]]\nname = \"billing\"\nsource = \"/billing\"\nrpo = \"1hour-ish\"\n";
        let e = Objectives::parse(bad, "objectives.toml").unwrap_err();
        let m = e.to_string();
        assert_eq!(e.kind(), dr_core::ErrorKind::InvalidInput);
        for part in [
            "objectives.toml",
            "line",
            "billing",
            "rpo",
            "1hour-ish",
            "15m",
        ] {
            assert!(m.contains(part), "names {part}: {m}");
        }
        // The same validation from JSON (Python dicts, runbook objectives).
        let e = serde_json::from_str::<Vec<Objective>>(
            r#"[{"name": "api", "source": "x", "rto": "soon"}]"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("api") && e.to_string().contains("rto"),
            "{e}"
        );
    }
}
