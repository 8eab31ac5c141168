//! The repository against the in-memory and local stores: round trips, dedup,
//! encryption, corruption and crash safety.

use std::sync::Arc;

use dr_core::repo::{InitOptions, OpenOptions, Repository, Secret, SnapshotKind};
use dr_core::store::{BackupStoreExt, DynStore, LocalStore, MemoryStore};
use dr_core::ErrorKind;
use zeroize::Zeroizing;

fn passphrase(p: &str) -> Secret {
    Secret::Passphrase(Zeroizing::new(p.to_owned()))
}

/// Deterministic, poorly compressible-but-not-random test data: text rows.
fn rows(from: usize, to: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in from..to {
        let h = blake3::hash(&(i as u64).to_le_bytes());
        out.extend_from_slice(
            format!(
                "{i}\tcustomer-{}\t{}\tSECRET-MARKER-{}\n",
                &h.to_hex()[..12],
                i * 37 % 1000,
                i % 7
            )
            .as_bytes(),
        );
    }
    out
}

async fn backup(repo: &Repository, data: Vec<u8>) -> dr_core::repo::Snapshot {
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "unit");
    w.add_file("data", std::io::Cursor::new(data))
        .await
        .unwrap();
    w.commit(serde_json::json!({"rows": 1})).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trip_and_dedup() {
    let store: DynStore = MemoryStore::new();
    let repo = Repository::init(store.clone(), &InitOptions::unencrypted())
        .await
        .unwrap();
    let first = rows(0, 200_000);
    let s1 = backup(&repo, first.clone()).await;
    assert_eq!(repo.read_file_to_vec(&s1, "data").await.unwrap(), first);

    let mut second = first.clone();
    second.extend(rows(200_000, 202_000));
    let s2 = backup(&repo, second.clone()).await;
    assert_eq!(repo.read_file_to_vec(&s2, "data").await.unwrap(), second);
    assert!(
        s2.stats.new_bytes * 20 <= s1.stats.new_bytes,
        "1 % appended stores ≤ 5 %: first {} new {}",
        s1.stats.new_bytes,
        s2.stats.new_bytes
    );
    let listed = repo.snapshots().await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![s1.id.clone(), s2.id.clone()]
    );
    assert_eq!(repo.find_snapshot("latest").await.unwrap().id, s2.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encryption_hides_plaintext_and_refuses_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(LocalStore::new(dir.path()));
    let repo = Repository::init(
        store.clone(),
        &InitOptions::encrypted(passphrase("correct horse")),
    )
    .await
    .unwrap();
    let data = rows(0, 50_000);
    let snap = backup(&repo, data.clone()).await;

    for obj in store.list_all("").await.unwrap() {
        let bytes = store.get_bytes(&obj.key).await.unwrap();
        assert!(
            !bytes.windows(13).any(|w| w == b"SECRET-MARKER"),
            "{} holds plaintext",
            obj.key
        );
        assert!(
            !bytes.windows(9).any(|w| w == b"customer-"),
            "{} holds plaintext",
            obj.key
        );
    }
    let e = Repository::open(
        store.clone(),
        &OpenOptions::with_secret(passphrase("wrong")),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey);
    assert!(
        e.to_string().contains("does not open this repository"),
        "{e}"
    );
    let e = Repository::open(store.clone(), &OpenOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("DRKIT_PASSWORD"), "{e}");

    let reopened = Repository::open(
        store,
        &OpenOptions::with_secret(passphrase("correct horse")),
    )
    .await
    .unwrap();
    let again = reopened
        .find_snapshot(&snap.id.to_string()[..18])
        .await
        .unwrap();
    assert_eq!(
        reopened.read_file_to_vec(&again, "data").await.unwrap(),
        data
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flipped_byte_is_named_by_verify_and_fails_reads() {
    let store = MemoryStore::new();
    let repo = Repository::init(store.clone(), &InitOptions::encrypted(passphrase("p")))
        .await
        .unwrap();
    let snap = backup(&repo, rows(0, 100_000)).await;
    let victim = snap.files[0].chunks[1].id;
    store
        .tamper(&victim.key(), |b| {
            let mid = b.len() / 2;
            b[mid] ^= 0x40;
        })
        .unwrap();

    let report = repo
        .verify_snapshot(&snap, &dr_core::progress::NoProgress)
        .await
        .unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].chunk, victim.to_string());
    let e = repo.read_file_to_vec(&snap, "data").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let msg = e.to_string();
    assert!(
        msg.contains(snap.id.as_str()) && msg.contains(&victim.short()),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_writer_leaves_no_snapshot() {
    let store = MemoryStore::new();
    let repo = Repository::init(store.clone(), &InitOptions::unencrypted())
        .await
        .unwrap();
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "unit");
    w.add_file("data", std::io::Cursor::new(rows(0, 10_000)))
        .await
        .unwrap();
    drop(w);
    assert!(repo.snapshots().await.unwrap().is_empty());
    assert!(
        !store.list_all("chunks/").await.unwrap().is_empty(),
        "chunks were written, the manifest was not"
    );
    let e = repo.find_snapshot("latest").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn opening_an_empty_store_says_how_to_init() {
    let e = Repository::open(MemoryStore::new(), &OpenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        matches!(e.hint(), Some(dr_core::Hint::InitRepository { .. })),
        "says how to create one: {e}"
    );
    let store = MemoryStore::new();
    Repository::init(store.clone(), &InitOptions::unencrypted())
        .await
        .unwrap();
    let e = Repository::init(store, &InitOptions::unencrypted())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_slots_add_secrets_that_open_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("repo")));
    let repo = Repository::init(store.clone(), &InitOptions::encrypted(passphrase("typed")))
        .await
        .unwrap();
    let data = rows(0, 20_000);
    let snap = backup(&repo, data.clone()).await;
    let open = |secret: Secret| {
        let store = store.clone();
        async move { Repository::open(store, &OpenOptions::with_secret(secret)).await }
    };

    // A key file cannot open a passphrase repository until it is added as a slot.
    let key = Secret::generate_key_file(&dir.path().join("archive.key")).unwrap();
    let e = open(key.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
    let slot = repo.add_key(&key, "archive_command").await.unwrap();
    assert_eq!(
        (slot.kind(), slot.label.as_str()),
        ("key file", "archive_command")
    );
    let by_key = open(key.clone()).await.unwrap();
    assert_eq!(by_key.read_file_to_vec(&snap, "data").await.unwrap(), data);
    // What the key file writes, the passphrase reads.
    let more = rows(20_000, 21_000);
    let snap2 = backup(&by_key, more.clone()).await;
    let by_pass = open(passphrase("typed")).await.unwrap();
    assert_eq!(
        by_pass.read_file_to_vec(&snap2, "data").await.unwrap(),
        more
    );

    // A second passphrase; a wrong one names the slots it tried.
    repo.add_key(&passphrase("second person"), "on-call")
        .await
        .unwrap();
    open(passphrase("second person")).await.unwrap();
    let e = open(passphrase("nobody")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongKey, "{e}");
    assert!(e.to_string().contains("2 key slots"), "{e}");
    let other = Secret::generate_key_file(&dir.path().join("other.key")).unwrap();
    assert_eq!(open(other).await.unwrap_err().kind(), ErrorKind::WrongKey);

    // The slot holds no plaintext keys, and removing it shuts its secret out.
    let stored = store.get_bytes(&format!("keys/{}", slot.id)).await.unwrap();
    let key_bytes = std::fs::read(dir.path().join("archive.key")).unwrap();
    assert!(!stored
        .windows(16)
        .any(|w| key_bytes.windows(16).any(|k| k == w)));
    assert_eq!(repo.key_slots().await.unwrap().len(), 2);
    repo.remove_key(&slot.id).await.unwrap();
    assert_eq!(open(key).await.unwrap_err().kind(), ErrorKind::WrongKey);
    open(passphrase("typed")).await.unwrap();
    let e = repo.remove_key("nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // A replica takes the slots along: the second passphrase opens it too.
    let replica = repo
        .init_replica(Arc::new(LocalStore::new(dir.path().join("replica"))))
        .await
        .unwrap();
    drop(replica);
    Repository::open(
        Arc::new(LocalStore::new(dir.path().join("replica"))),
        &OpenOptions::with_secret(passphrase("second person")),
    )
    .await
    .unwrap();

    // An unencrypted repository has no keys to add to.
    let plain = Repository::init(MemoryStore::new(), &InitOptions::unencrypted())
        .await
        .unwrap();
    let e = plain.add_key(&passphrase("x"), "").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
}
