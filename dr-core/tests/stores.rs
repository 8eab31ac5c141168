//! Every store passes the same conformance suite.

use std::sync::Arc;

use dr_core::store::{LocalStore, MemoryStore};
use dr_core::testing::Conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    Conformance::quick().run(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    Conformance::full()
        .run(Arc::new(LocalStore::new(dir.path().join("repo"))))
        .await;
    let leftovers = std::fs::read_dir(dir.path().join("repo/.tmp"))
        .unwrap()
        .count();
    assert_eq!(
        leftovers, 0,
        "no temporary files remain after successful and failed puts"
    );
}

#[tokio::test]
async fn local_store_reports_unwritable_folders() {
    let store = LocalStore::new("/proc/drkit-cannot-write-here");
    let e = dr_core::store::BackupStoreExt::put_bytes(
        &store,
        "config",
        "x".into(),
        dr_core::store::PutMode::CreateOnly,
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("/proc/drkit-cannot-write-here"),
        "{e}"
    );
}
