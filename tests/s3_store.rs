//! The S3 store against real S3 servers: garage (which does not enforce create-only
//! puts) and moto (which does), plus a fault-injecting proxy in front of garage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dr_aws::{S3Config, S3Store};
use dr_core::repo::{CreateOnly, InitOptions, OpenOptions, Repository, Secret, SnapshotKind};
use dr_core::store::{BackupStoreExt, ByteStream, DynStore, PutMode};
use dr_core::testing::Conformance;
use dr_core::ErrorKind;
use dr_testkit::{Fault, FaultProxy, Garage, Moto, BUCKET};
use futures::StreamExt;

fn store(config: S3Config) -> DynStore {
    Arc::new(S3Store::new(config).unwrap())
}

fn secret() -> Secret {
    Secret::Passphrase("s3 test passphrase".to_owned().into())
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    dr_core::testing::pattern(seed, len).to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_on_garage() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let mut c = garage.s3("conf");
    c.part_size = 5 << 20;
    let mut suite = Conformance::full();
    // garage 2.5 accepts a second create-only put; see `garage_ignores_create_only`.
    suite.create_only = false;
    suite.run(store(c)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_on_moto() {
    let Some(moto) = Moto::start() else { return };
    let mut c = moto.bucket("conf", "p").await;
    c.part_size = 5 << 20;
    let mut suite = Conformance::quick();
    suite.large_object_bytes = 12 << 20; // three parts: multipart on moto
    suite.run(store(c)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garage_ignores_create_only_so_locks_refuse() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let s = store(garage.s3("repo"));
    let repo = Repository::init(s.clone(), &InitOptions::encrypted(secret()))
        .await
        .unwrap();
    assert_eq!(repo.config().create_only, Some(CreateOnly::Ignored));
    let e = repo
        .lock("failover", "test", Duration::from_mins(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("Kubernetes Lease"), "{e}");
    // A second init must not replace the first one's keys, even without create-only.
    let again = Repository::init(s.clone(), &InitOptions::encrypted(secret()))
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{again}");
    // Backups still work there.
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "garage");
    let payload = data(3 << 20, 1);
    w.add_file("f", std::io::Cursor::new(payload.clone()))
        .await
        .unwrap();
    let snap = w.commit(serde_json::Value::Null).await.unwrap();
    let reopened = Repository::open(s, &OpenOptions::with_secret(secret()))
        .await
        .unwrap();
    assert_eq!(
        reopened.read_file_to_vec(&snap, "f").await.unwrap(),
        payload
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn moto_enforces_create_only_and_locks_exclude() {
    let Some(moto) = Moto::start() else { return };
    let s = store(moto.bucket("locks", "repo").await);
    let repo = Repository::init(s.clone(), &InitOptions::unencrypted())
        .await
        .unwrap();
    assert_eq!(repo.config().create_only, Some(CreateOnly::Enforced));
    let held = repo
        .lock("failover", "drill", Duration::from_mins(1))
        .await
        .unwrap();
    let e = repo
        .lock("failover", "second", Duration::from_mins(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string().contains("drill"),
        "names the holder's purpose: {e}"
    );
    held.release().await.unwrap();
    repo.lock("failover", "third", Duration::from_mins(1))
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    // A holder that crashed lets its lock expire; of six processes taking it over at
    // once, exactly one holds it (If-None-Match on the next generation decides).
    drop(
        repo.lock("failover", "crashed", Duration::ZERO)
            .await
            .unwrap(),
    );
    let takers: Vec<_> = (0..6)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.lock("failover", &format!("taker {i}"), Duration::from_mins(1))
                    .await
            })
        })
        .collect();
    let mut holders = 0;
    for t in takers {
        match t.await.unwrap() {
            Ok(_) => holders += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(holders, 1, "exactly one process took over the expired lock");
}

#[tokio::test(flavor = "multi_thread")]
async fn repository_on_garage_round_trips_dedups_and_detects_damage() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let s = store(garage.s3("repo"));
    let repo = Repository::init(s.clone(), &InitOptions::encrypted(secret()))
        .await
        .unwrap();
    let mut base = data(16 << 20, 7);
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "src");
    w.add_file("dump", std::io::Cursor::new(base.clone()))
        .await
        .unwrap();
    let first = w.commit(serde_json::Value::Null).await.unwrap();
    assert!(first.stats.new_chunks >= 10, "{:?}", first.stats);

    // 1 % appended: only the tail is new.
    base.extend_from_slice(&data(160 << 10, 8));
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "src");
    w.add_file("dump", std::io::Cursor::new(base.clone()))
        .await
        .unwrap();
    let second = w.commit(serde_json::Value::Null).await.unwrap();
    assert!(second.stats.new_chunks <= 3, "{:?}", second.stats);

    let repo = Repository::open(s.clone(), &OpenOptions::with_secret(secret()))
        .await
        .unwrap();
    assert_eq!(repo.read_file_to_vec(&second, "dump").await.unwrap(), base);

    // Nothing stored reads as plaintext.
    let client = garage.client().await;
    let needle = &base[1000..1064];
    for meta in s.list_all("").await.unwrap() {
        let obj = client
            .get_object()
            .bucket(BUCKET)
            .key(format!("repo/{}", meta.key))
            .send()
            .await
            .unwrap();
        let bytes = obj.body.collect().await.unwrap().into_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} holds plaintext",
            meta.key
        );
    }

    // Flip one byte of a chunk the second snapshot uses, through a separate client:
    // verify names it, reads fail.
    let chunk = second.file("dump").unwrap().chunks[0].id.key();
    let mut raw = s.get_bytes(&chunk).await.unwrap().to_vec();
    raw[40] ^= 1;
    client
        .put_object()
        .bucket(BUCKET)
        .key(format!("repo/{chunk}"))
        .body(raw.into())
        .send()
        .await
        .unwrap();
    let report = repo
        .verify_snapshot(&second, &dr_core::progress::NoProgress)
        .await
        .unwrap();
    assert!(!report.is_ok(), "verify finds the flipped byte");
    let shown = format!("{report:?}");
    let id = chunk.rsplit('/').next().unwrap();
    assert!(shown.contains(&id[..16]), "{shown}");
    let e = repo.read_file_to_vec(&second, "dump").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_retried_and_a_dead_server_fails_in_time() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let proxy = FaultProxy::start(&garage.endpoint()).await;
    let mut c = garage.s3("faulty");
    c.aws.endpoint = Some(proxy.endpoint());
    c.aws.attempt_timeout = Duration::from_secs(2);
    c.aws.read_timeout = Duration::from_secs(2);
    c.part_size = 5 << 20;
    let s = store(c.clone());
    let repo = Repository::init(s.clone(), &InitOptions::encrypted(secret()))
        .await
        .unwrap();
    // Every fifth request fails, one way after another.
    proxy.inject_rotating(
        &[
            Fault::Status(503),
            Fault::Status(500),
            Fault::Drop,
            Fault::Delay(Duration::from_secs(3)),
            Fault::CutBody,
        ],
        5,
    );
    // A backup through the faults completes and reads back whole.
    let payload = data(24 << 20, 3);
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "faulty");
    w.add_file("f", std::io::Cursor::new(payload.clone()))
        .await
        .unwrap();
    let snap = w.commit(serde_json::Value::Null).await.unwrap();
    assert_eq!(repo.read_file_to_vec(&snap, "f").await.unwrap(), payload);
    // So does a multipart object read with ranged parallel gets.
    let big = Bytes::from(data(17 << 20, 4));
    let parts: Vec<dr_core::Result<Bytes>> = big
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream: ByteStream = futures::stream::iter(parts).boxed();
    s.put("big", stream, PutMode::Overwrite).await.unwrap();
    assert_eq!(s.get_bytes("big").await.unwrap(), big);
    assert!(
        proxy.injected() >= 10,
        "faults were injected: {}",
        proxy.injected()
    );

    // Chunk uploads that always fail: the backup fails naming the key, and no snapshot appears.
    proxy.clear();
    proxy.inject(Fault::Status(503), 1, Some("PUT"), Some("/chunks/"));
    let before = repo.snapshots().await.unwrap().len();
    let mut w = repo.begin_snapshot(SnapshotKind::new("test"), "doomed");
    let res = async {
        w.add_file("f", std::io::Cursor::new(data(4 << 20, 9)))
            .await?;
        w.commit(serde_json::Value::Null).await
    }
    .await;
    let e = res.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("s3://drkit/faulty/chunks/"), "{msg}");
    assert!(msg.contains("SlowDown"), "{msg}");
    assert_eq!(
        repo.snapshots().await.unwrap().len(),
        before,
        "no snapshot from a failed backup"
    );

    // A server that never answers: a clear Timeout within the deadline, no hang.
    proxy.clear();
    proxy.inject(Fault::Delay(Duration::from_hours(1)), 1, None, None);
    let mut c2 = c.clone();
    c2.aws.attempts = 2;
    let slow = S3Store::new(c2).unwrap();
    let started = Instant::now();
    let e = slow.get_bytes("big").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("s3://drkit/faulty/big"), "{e}");
}
