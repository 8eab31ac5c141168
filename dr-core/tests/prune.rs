//! Prune on a real folder store: what a policy drops goes, chunks of a backup that is
//! still running are never deleted, and orphans of killed backups are reclaimed.

use std::sync::Arc;
use std::time::Duration;

use dr_core::repo::retention::Policy;
use dr_core::repo::{InitOptions, PruneOptions, Repository, SnapshotKind};
use dr_core::store::{BackupStoreExt, DynStore, LocalStore};
use dr_core::ErrorKind;
use jiff::{SignedDuration, Timestamp};

fn data(len: usize, seed: u64) -> Vec<u8> {
    dr_core::testing::pattern(seed, len).to_vec()
}

async fn backup(repo: &Repository, bytes: &[u8]) -> dr_core::repo::Snapshot {
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "db");
    w.add_file("f", std::io::Cursor::new(bytes.to_vec()))
        .await
        .unwrap();
    w.commit(serde_json::Value::Null).await.unwrap()
}

fn keep_last(n: usize, dry_run: bool) -> PruneOptions {
    PruneOptions {
        policy: Policy {
            keep_last: n,
            ..Policy::default()
        },
        dry_run,
        grace: Duration::ZERO,
    }
}

async fn chunk_count(store: &DynStore) -> usize {
    store.list_all("chunks/").await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_during_a_running_backup_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("repo")));
    let repo = Repository::init(store.clone(), &InitOptions::unencrypted())
        .await
        .unwrap();
    let old = data(6 << 20, 1);
    let first = backup(&repo, &old).await;
    backup(&repo, &data(3 << 20, 2)).await;

    // A backup starts and reuses the old snapshot's chunks, then prune runs mid-way.
    let mut running = repo.begin_snapshot(SnapshotKind::new("test"), "db");
    running
        .add_file("f", std::io::Cursor::new(old.clone()))
        .await
        .unwrap();
    assert!(running.stats().new_chunks == 0, "it reused every chunk");

    let dry = repo
        .prune(&keep_last(1, true), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(dry.removed, vec![first.id.clone()]);
    assert_eq!(
        repo.snapshots().await.unwrap().len(),
        2,
        "a dry run changes nothing"
    );

    let report = repo
        .prune(&keep_last(1, false), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(report.removed, vec![first.id.clone()]);
    assert_eq!(
        report.chunks_deleted, 0,
        "a backup is in progress: {report:?}"
    );
    assert!(report.note.unwrap().contains("in progress"));

    let committed = running.commit(serde_json::Value::Null).await.unwrap();
    assert_eq!(
        repo.read_file_to_vec(&committed, "f").await.unwrap(),
        old,
        "the running backup is whole"
    );

    // With nothing running, the next prune reclaims exactly what no kept snapshot uses.
    let before = chunk_count(&store).await;
    let report = repo
        .prune(&keep_last(1, false), Timestamp::now())
        .await
        .unwrap();
    assert!(report.chunks_deleted > 0, "{report:?}");
    assert_eq!(
        chunk_count(&store).await,
        before - report.chunks_deleted as usize
    );
    let kept = repo.snapshots().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(repo.read_file_to_vec(&kept[0], "f").await.unwrap(), old);
    let report = repo
        .verify_snapshot(&kept[0], &dr_core::progress::NoProgress)
        .await
        .unwrap();
    assert!(report.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_whose_chunks_vanished_under_it_refuses_to_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("repo")));
    let repo = Repository::init(store.clone(), &InitOptions::unencrypted())
        .await
        .unwrap();
    let bytes = data(4 << 20, 3);
    backup(&repo, &bytes).await;
    let mut running = repo.begin_snapshot(SnapshotKind::new("test"), "db");
    running
        .add_file("f", std::io::Cursor::new(bytes))
        .await
        .unwrap();
    // A collector that ignored the in-flight marker: announces itself, deletes a chunk.
    store
        .put_bytes(
            &format!("gc/{}", Timestamp::now().as_nanosecond()),
            bytes::Bytes::new(),
            dr_core::store::PutMode::Overwrite,
        )
        .await
        .unwrap();
    let victim = store.list_all("chunks/").await.unwrap().remove(0).key;
    store.delete(&victim).await.unwrap();
    let e = running.commit(serde_json::Value::Null).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(
        repo.snapshots().await.unwrap().len(),
        1,
        "no snapshot with holes was committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_of_killed_backups_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("repo")));
    let repo = Repository::init(store.clone(), &InitOptions::unencrypted())
        .await
        .unwrap();
    let kept = backup(&repo, &data(2 << 20, 4)).await;
    let before = chunk_count(&store).await;
    {
        // Killed after uploading (no destructor runs, as under SIGKILL): no manifest,
        // only chunks and its in-flight marker.
        let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "db");
        w.add_file("f", std::io::Cursor::new(data(5 << 20, 5)))
            .await
            .unwrap();
        std::mem::forget(w);
    }
    assert!(chunk_count(&store).await > before);
    // Within a day the marker still protects them.
    let r = repo
        .prune(&keep_last(1, false), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(r.chunks_deleted, 0);
    // A day later the marker is stale and the orphans go.
    let later = Timestamp::now() + SignedDuration::from_hours(25);
    let r = repo.prune(&keep_last(1, false), later).await.unwrap();
    assert!(r.chunks_deleted > 0, "{r:?}");
    assert_eq!(chunk_count(&store).await, before);
    assert!(store.list_all("inflight/").await.unwrap().is_empty());
    assert_eq!(repo.snapshots().await.unwrap()[0].id, kept.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_that_fails_takes_its_marker_away_and_prune_reclaims_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("repo")));
    let repo = Repository::init(store.clone(), &InitOptions::unencrypted())
        .await
        .unwrap();
    let kept = backup(&repo, &data(2 << 20, 4)).await;
    let before = chunk_count(&store).await;
    {
        // Stopped (an error, Ctrl-C): the writer is dropped without a commit.
        let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "db");
        w.add_file("f", std::io::Cursor::new(data(5 << 20, 6)))
            .await
            .unwrap();
    }
    assert!(chunk_count(&store).await > before);
    // The marker goes in the background; wait for it, however long that takes.
    while !store.list_all("inflight/").await.unwrap().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = repo
        .prune(
            &keep_last(1, false),
            Timestamp::now() + SignedDuration::from_hours(2),
        )
        .await
        .unwrap();
    assert!(r.chunks_deleted > 0, "{r:?}");
    assert_eq!(chunk_count(&store).await, before);
    assert_eq!(repo.snapshots().await.unwrap()[0].id, kept.id);
}
