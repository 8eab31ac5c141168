//! Retention with a fake clock: 400 daily snapshots, a GFS policy, exactly the expected
//! dates kept, each with its reason.

use std::collections::HashSet;

use dr_core::repo::retention::Policy;
use dr_core::repo::{Snapshot, SnapshotId, SnapshotKind, SnapshotStats};
use jiff::civil::date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

fn snapshot(day: jiff::civil::Date, source: &str) -> Snapshot {
    let at = day
        .at(12, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp();
    Snapshot {
        id: SnapshotId::parse(&format!(
            "{}-0000{:04x}",
            at.strftime("%Y%m%dT%H%M%SZ"),
            source.len()
        ))
        .unwrap(),
        kind: SnapshotKind::new("pg_dump"),
        source: source.to_owned(),
        host: "test".into(),
        started_at: at,
        finished_at: at,
        files: Vec::new(),
        stats: SnapshotStats::default(),
        tags: std::collections::BTreeMap::default(),
        tool_version: "test".into(),
        metadata: serde_json::Value::Null,
    }
}

fn days() -> Vec<jiff::civil::Date> {
    let first = date(2025, 1, 1);
    (0..400)
        .map(|i| first.checked_add(jiff::Span::new().days(i)).unwrap())
        .collect()
}

fn now() -> Timestamp {
    date(2026, 2, 4)
        .at(13, 0, 0, 0)
        .to_zoned(TimeZone::UTC)
        .unwrap()
        .timestamp()
}

#[test]
fn gfs_over_400_days_keeps_exactly_the_expected_dates() {
    let all: Vec<Snapshot> = days().into_iter().map(|d| snapshot(d, "db")).collect();
    assert_eq!(
        all.last().unwrap().finished_at.to_string(),
        "2026-02-04T12:00:00Z"
    );
    let policy = Policy {
        keep_daily: 7,
        keep_weekly: 4,
        keep_monthly: 12,
        keep_yearly: 2,
        ..Policy::default()
    };
    let decisions = policy.apply(&all, &HashSet::new(), now());
    let kept: Vec<String> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.finished_at.to_zoned(TimeZone::UTC).date().to_string())
        .collect();
    let expected = [
        "2025-03-31",
        "2025-04-30",
        "2025-05-31",
        "2025-06-30",
        "2025-07-31",
        "2025-08-31",
        "2025-09-30",
        "2025-10-31",
        "2025-11-30",
        "2025-12-31",
        "2026-01-18",
        "2026-01-25",
        "2026-01-29",
        "2026-01-30",
        "2026-01-31",
        "2026-02-01",
        "2026-02-02",
        "2026-02-03",
        "2026-02-04",
    ];
    assert_eq!(kept, expected);
    let reasons = |day: &str| {
        decisions
            .iter()
            .find(|d| d.finished_at.to_zoned(TimeZone::UTC).date().to_string() == day)
            .unwrap()
            .reasons
            .clone()
    };
    assert_eq!(
        reasons("2026-02-04"),
        [
            "daily 2026-02-04",
            "weekly 2026-W06",
            "monthly 2026-02",
            "yearly 2026"
        ]
    );
    assert_eq!(reasons("2025-12-31"), ["monthly 2025-12", "yearly 2025"]);
    assert_eq!(reasons("2026-01-18"), ["weekly 2026-W03"]);
    assert!(reasons("2025-03-30").is_empty());
    assert_eq!(decisions.len(), 400);
}

#[test]
fn the_newest_verified_survives_and_sources_are_separate() {
    let mut all: Vec<Snapshot> = days()[390..].iter().map(|d| snapshot(*d, "db")).collect();
    all.extend(days()[395..].iter().map(|d| snapshot(*d, "other-db")));
    let verified: HashSet<SnapshotId> = [all[3].id.clone()].into();
    let policy = Policy {
        keep_last: 1,
        ..Policy::default()
    };
    let decisions = policy.apply(&all, &verified, now());
    let kept: Vec<(String, Vec<String>)> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| (d.source.clone(), d.reasons.clone()))
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.contains(&("db".into(), vec!["newest verified".into()])));
    assert_eq!(
        kept.iter()
            .filter(|(s, r)| s == "other-db" && r == &vec!["last 1".to_owned()])
            .count(),
        1
    );
    assert!(
        Policy::default().validate().is_err(),
        "a policy that keeps nothing is refused"
    );
}

#[test]
fn keep_within_and_time_zones() {
    let all: Vec<Snapshot> = days()[380..].iter().map(|d| snapshot(*d, "db")).collect();
    let policy = Policy {
        keep_within: Some(std::time::Duration::from_hours(72)),
        ..Policy::default()
    };
    let kept = policy
        .apply(&all, &HashSet::new(), now())
        .into_iter()
        .filter(|d| d.keep)
        .count();
    assert_eq!(
        kept, 3,
        "Feb 2, 3 and 4 at noon are within 72 h of Feb 4 13:00"
    );
    // 12:00 UTC on Feb 4 is already Feb 5 in Auckland (UTC+13).
    let nz = Policy {
        keep_daily: 1,
        time_zone: TimeZone::get("Pacific/Auckland").unwrap(),
        ..Policy::default()
    };
    let d = nz.apply(&all, &HashSet::new(), now());
    assert_eq!(
        d.iter().find(|d| d.keep).unwrap().reasons,
        ["daily 2026-02-05"]
    );
}
