//! A self-managed Postgres as a database target, against a real primary and a real
//! streaming replica (`pg_basebackup -R`): role and lag read from the servers, the old
//! primary fenced so it refuses writes, the replica promoted until it takes them.

use std::time::Duration;

use dr_core::target::{DatabaseTarget, Role};
use dr_core::wait::Wait;
use dr_pg::{ConnInfo, PgTarget};
use dr_testkit::PgCluster;

fn wait() -> Wait {
    Wait::new(Duration::from_mins(1)).poll(Duration::from_millis(100))
}

fn target(c: &PgCluster) -> PgTarget {
    PgTarget::new(ConnInfo::parse(&c.dsn("postgres")).unwrap())
}

fn try_insert(c: &PgCluster, value: i32) -> Result<(), String> {
    let out = c.tool(
        "psql",
        "postgres",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("INSERT INTO orders VALUES ({value})"),
        ],
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn caught_up(replica: &PgCluster, rows: &str) {
    for _ in 0..300 {
        let out = replica.tool(
            "psql",
            "postgres",
            &["-X", "-At", "-c", "SELECT count(*) FROM orders"],
        );
        if String::from_utf8_lossy(&out.stdout).trim() == rows {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the replica never showed {rows} rows");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streaming_replica_is_promoted_and_the_old_primary_fenced() {
    let Some(primary) = PgCluster::start() else {
        return;
    };
    primary.psql(
        "postgres",
        "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1)",
    );
    let replica = primary.start_replica();
    caught_up(&replica, "1").await;
    let (old, new) = (target(&primary), target(&replica));

    let h = new.health().await.unwrap();
    assert_eq!(
        (h.role, h.writable, h.available),
        (Role::Replica, false, true),
        "{h:?}"
    );
    assert!(
        h.replication_lag.is_some(),
        "a replica reports its lag: {h:?}"
    );
    assert!(
        h.replicating_from
            .as_deref()
            .is_some_and(|s| s.ends_with(&primary.port().to_string())),
        "names the primary it streams from: {h:?}"
    );
    assert!(h.position.is_some());
    let p = old.health().await.unwrap();
    assert_eq!((p.role, p.writable), (Role::Primary, true));
    assert!(try_insert(&replica, 9).is_err(), "a replica refuses writes");

    // Fence the old primary: a new session can no longer write there.
    let fenced = old.fence(&wait()).await.unwrap();
    assert!(!fenced.writable, "{fenced:?}");
    let e = try_insert(&primary, 2).unwrap_err();
    assert!(e.contains("read-only"), "{e}");
    old.fence(&wait()).await.unwrap();

    // Promote the replica: it takes writes, with the primary's rows in it.
    let promoted = new.promote(&wait()).await.unwrap();
    assert_eq!(
        (promoted.role, promoted.writable),
        (Role::Primary, true),
        "{promoted:?}"
    );
    try_insert(&replica, 2).unwrap();
    assert_eq!(
        replica.psql(
            "postgres",
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders"
        ),
        "1,2"
    );
    assert_eq!(
        new.promote(&wait()).await.unwrap().role,
        Role::Primary,
        "promoting twice is success"
    );

    // The fence lifts again; a second replica passes the conformance check of targets.
    assert!(old.unfence(&wait()).await.unwrap().writable);
    try_insert(&primary, 3).unwrap();
    let second = primary.start_replica();
    dr_core::testing::check_database_target(&target(&second), &wait()).await;

    // A server that is gone is reported unavailable, not as an error.
    drop(second);
    drop(replica);
    let gone = PgTarget::new(
        ConnInfo::parse(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=2",
            dr_testkit::free_port()
        ))
        .unwrap(),
    );
    let h = gone.health().await.unwrap();
    assert!(!h.available && !h.writable, "{h:?}");
}
