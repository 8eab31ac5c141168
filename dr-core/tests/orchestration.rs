//! The traits a runbook drives, through their in-memory fakes: a failover replayed
//! without a socket, plans that change nothing, locks with growing fencing tokens, and
//! verification records that keep what an earlier restore measured.

use std::time::Duration;

use dr_core::fake::{FakeDatabase, FakeRouter, MemoryLock};
use dr_core::lock::{Lock, LockRequest};
use dr_core::repo::{InitOptions, Repository, SnapshotKind, Verified};
use dr_core::target::{Capability, DatabaseTarget, PointInTime, Role};
use dr_core::traffic::{Destination, Route, TrafficRouter};
use dr_core::wait::Wait;
use dr_core::ErrorKind;

fn failover_pair() -> Route {
    dr_core::fake::failover_pair("app.example.com.", "use1", "usw2")
}

#[tokio::test]
async fn a_failover_replays_against_the_fakes() {
    let old = FakeDatabase::primary("shop-use1");
    let replica = FakeDatabase::replica("shop-usw2", "shop-use1");
    replica.set_lag(Duration::from_secs(3));
    let dns = FakeRouter::new(failover_pair());
    let wait = Wait::default();

    let lag = replica.health().await.unwrap().replication_lag.unwrap();
    assert!(lag <= Duration::from_mins(5), "lag within the RPO");
    old.fence(&wait).await.unwrap();
    assert!(
        !old.health().await.unwrap().writable,
        "the old primary refuses writes"
    );
    let promoted = replica.promote(&wait).await.unwrap();
    assert_eq!((promoted.role, promoted.writable), (Role::Primary, true));

    // The plan reads live state and changes nothing.
    let plan = dns.plan(&Destination::Set("usw2".into())).await.unwrap();
    assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
    assert_eq!(dns.switches(), 0, "planning has no side effect");
    assert_eq!(dns.current().await.unwrap(), failover_pair());

    let switched = dns
        .switch(&Destination::Set("usw2".into()), &wait)
        .await
        .unwrap();
    assert_eq!(
        switched.after, plan.after,
        "the switch does what the plan said"
    );
    assert_eq!(
        switched.after.record("usw2").unwrap().failover.as_deref(),
        Some("PRIMARY")
    );
    // Switching back restores the route exactly.
    dns.restore(&switched.before, &wait).await.unwrap();
    assert_eq!(dns.current().await.unwrap(), failover_pair());
    assert_eq!(dns.switches(), 2);
    assert_eq!(replica.calls(), ["promote"]);
    assert_eq!(old.calls(), ["fence"]);
}

#[tokio::test]
async fn fakes_pass_the_target_conformance_check_and_refuse_what_they_lack() {
    let wait = Wait::default();
    dr_core::testing::check_database_target(&FakeDatabase::replica("b", "a"), &wait).await;
    let health_only = FakeDatabase::replica("c", "a").with_capabilities(&[Capability::Health]);
    dr_core::testing::check_database_target(&health_only, &wait).await;
    let e = health_only.promote(&wait).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.to_string().contains("c does not support promotion"),
        "{e}"
    );

    let db = FakeDatabase::primary("d");
    let restored = db
        .restore_to_point_in_time(&PointInTime::Latest, "d-restored", &wait)
        .await
        .unwrap();
    assert_eq!(restored.name, "d-restored");
    assert_eq!(
        db.restored(),
        vec![("d-restored".to_owned(), PointInTime::Latest)]
    );
    db.fail_next(ErrorKind::Unavailable, 1);
    let e = db.fence(&wait).await.unwrap_err();
    assert!(e.is_retryable());
    db.fence(&wait).await.unwrap();
}

#[tokio::test]
async fn memory_locks_exclude_and_tokens_grow() {
    let lock = MemoryLock::new("shop");
    let a = lock
        .acquire(&LockRequest::new("run A", Duration::from_hours(1)))
        .await
        .unwrap();
    let e = lock
        .acquire(&LockRequest::new("run B", Duration::from_hours(1)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("run A"), "names the holder: {e}");
    // The same run resumed takes over only once its holder's process is gone.
    let mut resume = LockRequest::new("run A", Duration::from_hours(1));
    resume.take_over_from = Some("run A".into());
    assert!(
        lock.acquire(&resume).await.is_err(),
        "run A's process lives"
    );
    lock.release(&a).await.unwrap();
    let mut crashed = LockRequest::new("run A", Duration::from_hours(1));
    crashed.process = dr_core::lock::ProcessId::exited();
    let a = lock.acquire(&crashed).await.unwrap();
    let b = lock.acquire(&resume).await.unwrap();
    assert!(b.token > a.token);
    assert!(
        lock.renew(&a, Duration::from_hours(1)).await.is_err(),
        "the old holder lost it"
    );
    assert!(!lock.is_current(a.token).await.unwrap());
    lock.release(&b).await.unwrap();
    assert!(lock.holder().await.unwrap().is_none());
}

#[tokio::test]
async fn a_chunk_verify_keeps_the_restore_time_an_earlier_restore_measured() {
    let store = dr_core::store::open_url("memory://verified-markers").unwrap();
    let repo = Repository::init(store, &InitOptions::unencrypted())
        .await
        .unwrap();
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "src");
    w.add_file("f", &b"data"[..]).await.unwrap();
    let snap = w.commit(serde_json::Value::Null).await.unwrap();
    let restored_at = jiff::Timestamp::now();
    repo.mark_verified(&snap.id, &Verified::restore(restored_at, 42.5))
        .await
        .unwrap();
    let later = restored_at + jiff::SignedDuration::from_mins(5);
    let written = repo
        .mark_verified(&snap.id, &Verified::chunks(later))
        .await
        .unwrap();
    let (_, v) = repo.verified().await.unwrap().pop().unwrap();
    assert_eq!(v, written);
    assert_eq!(
        v.at, later,
        "the newest verification counts for verified_within"
    );
    assert_eq!(
        v.restore_seconds,
        Some(42.5),
        "the measured restore time survives"
    );
    assert_eq!(v.restored_at, Some(restored_at));
}
