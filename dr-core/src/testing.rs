//! The store conformance suite: written once, run against every backend.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() {
//! let store = dr_core::store::MemoryStore::new();
//! dr_core::testing::Conformance::quick().run(store).await;
//! # }
//! ```

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::store::{BackupStore, BackupStoreExt, ByteStream, PutMode};
use crate::ErrorKind;

/// Which checks to run and how big.
#[derive(Debug, Clone)]
pub struct Conformance {
    /// Size of the large-object check; 0 skips it.
    pub large_object_bytes: u64,
    /// Keys in the listing check.
    pub many_keys: usize,
    /// Key prefix, so several runs can share one store.
    pub prefix: String,
    /// Check that create-only puts are atomic; off for servers known not to enforce
    /// them (the repository detects those at init and refuses store locks there).
    pub create_only: bool,
}

impl Conformance {
    /// Every check, with a 256 MiB large object.
    #[must_use]
    pub fn full() -> Self {
        Self {
            large_object_bytes: 256 << 20,
            many_keys: 1500,
            prefix: "conformance".into(),
            create_only: true,
        }
    }

    /// Every check with smaller sizes, for in-memory stores and doctests.
    #[must_use]
    pub fn quick() -> Self {
        Self {
            large_object_bytes: 8 << 20,
            many_keys: 300,
            prefix: "conformance".into(),
            create_only: true,
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}/{k}", self.prefix)
    }

    /// Runs every check; panics naming the first failure.
    pub async fn run(&self, store: Arc<dyn BackupStore>) {
        self.round_trip(&*store).await;
        self.missing_keys(&*store).await;
        self.empty_object(&*store).await;
        self.ranges(&*store).await;
        if self.create_only {
            self.create_only(&*store).await;
            self.create_only_race(store.clone()).await;
        }
        self.listing(&*store).await;
        self.delete(&*store).await;
        if self.large_object_bytes > 0 {
            self.large_object(&*store).await;
        }
    }

    async fn round_trip(&self, s: &dyn BackupStore) {
        let k = self.key("rt/a");
        let meta = s
            .put_bytes(&k, Bytes::from_static(b"hello"), PutMode::Overwrite)
            .await
            .unwrap();
        assert_eq!(meta.size, 5, "put reports the size");
        assert_eq!(&s.get_bytes(&k).await.unwrap()[..], b"hello");
        s.put_bytes(&k, Bytes::from_static(b"world!"), PutMode::Overwrite)
            .await
            .unwrap();
        assert_eq!(
            &s.get_bytes(&k).await.unwrap()[..],
            b"world!",
            "overwrite replaces"
        );
        assert_eq!(s.head(&k).await.unwrap().size, 6);
        // A multi-part stream arrives whole and in order.
        let parts: Vec<crate::Result<Bytes>> =
            (0..10u8).map(|i| Ok(Bytes::from(vec![i; 1000]))).collect();
        let stream: ByteStream = futures::stream::iter(parts).boxed();
        s.put(&self.key("rt/parts"), stream, PutMode::Overwrite)
            .await
            .unwrap();
        let back = s.get_bytes(&self.key("rt/parts")).await.unwrap();
        assert_eq!(back.len(), 10_000);
        assert!(back
            .chunks(1000)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| usize::from(*b) == i)));
    }

    async fn missing_keys(&self, s: &dyn BackupStore) {
        let k = self.key("missing/nothing-here");
        assert_eq!(
            s.get(&k, None).await.err().map(|e| e.kind()),
            Some(ErrorKind::NotFound),
            "get of a missing key"
        );
        assert_eq!(
            s.head(&k).await.err().map(|e| e.kind()),
            Some(ErrorKind::NotFound),
            "head of a missing key"
        );
        assert!(s.list_all(&self.key("missing/")).await.unwrap().is_empty());
    }

    async fn empty_object(&self, s: &dyn BackupStore) {
        let k = self.key("empty");
        s.put_bytes(&k, Bytes::new(), PutMode::Overwrite)
            .await
            .unwrap();
        assert_eq!(s.head(&k).await.unwrap().size, 0);
        assert!(s.get_bytes(&k).await.unwrap().is_empty());
        let empty_stream: ByteStream = futures::stream::empty().boxed();
        s.put(&self.key("empty2"), empty_stream, PutMode::CreateOnly)
            .await
            .unwrap();
        assert_eq!(s.head(&self.key("empty2")).await.unwrap().size, 0);
    }

    async fn ranges(&self, s: &dyn BackupStore) {
        let k = self.key("ranges");
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        s.put_bytes(&k, data.clone().into(), PutMode::Overwrite)
            .await
            .unwrap();
        for (r, want) in [
            (0..10, &data[0..10]),
            (5000..5100, &data[5000..5100]),
            (9990..20_000, &data[9990..]),
            (10_000..10_010, &[][..]),
        ] {
            let got: Vec<Bytes> = s
                .get(&k, Some(r.clone()))
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            assert_eq!(got.concat(), want, "range {r:?}");
        }
    }

    async fn create_only(&self, s: &dyn BackupStore) {
        let k = self.key("create-only");
        s.put_bytes(&k, Bytes::from_static(b"first"), PutMode::CreateOnly)
            .await
            .unwrap();
        let e = s
            .put_bytes(&k, Bytes::from_static(b"second"), PutMode::CreateOnly)
            .await
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::AlreadyExists,
            "second create-only put: {e}"
        );
        assert_eq!(
            &s.get_bytes(&k).await.unwrap()[..],
            b"first",
            "the loser wrote nothing"
        );
    }

    async fn create_only_race(&self, s: Arc<dyn BackupStore>) {
        for round in 0..20 {
            let k = self.key(&format!("race/{round}"));
            let writers: Vec<_> = (0..2u8)
                .map(|w| {
                    let s = s.clone();
                    let k = k.clone();
                    tokio::spawn(async move {
                        s.put_bytes(&k, Bytes::from(vec![w; 64 * 1024]), PutMode::CreateOnly)
                            .await
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for (w, h) in writers.into_iter().enumerate() {
                match h.await.unwrap() {
                    Ok(_) => winners.push(w as u8),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "race loser: {e}"),
                }
            }
            assert_eq!(
                winners.len(),
                1,
                "exactly one create-only writer wins (round {round})"
            );
            let stored = s.get_bytes(&k).await.unwrap();
            assert!(
                stored.iter().all(|b| *b == winners[0]),
                "the winner's bytes are stored, unmixed"
            );
        }
    }

    async fn listing(&self, s: &dyn BackupStore) {
        let base = self.key("list");
        let writes = futures::stream::iter(0..self.many_keys)
            .map(|i| {
                let key = format!("{base}/{:02}/{i:05}", i % 16);
                async move {
                    s.put_bytes(&key, Bytes::from(i.to_string()), PutMode::Overwrite)
                        .await
                }
            })
            .buffer_unordered(16);
        writes.try_collect::<Vec<_>>().await.unwrap();
        s.put_bytes(&format!("{base}-sibling"), Bytes::new(), PutMode::Overwrite)
            .await
            .unwrap();
        let mut all: Vec<String> = s
            .list_all(&format!("{base}/"))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        all.sort();
        assert_eq!(
            all.len(),
            self.many_keys,
            "listing returns every key under the prefix and nothing else"
        );
        assert_eq!(
            all.iter()
                .filter(|k| k.starts_with(&format!("{base}/03/")))
                .count(),
            s.list_all(&format!("{base}/03/")).await.unwrap().len()
        );
        let partial = s.list_all(&format!("{base}/0")).await.unwrap();
        assert_eq!(
            partial.len(),
            all.iter()
                .filter(|k| k.starts_with(&format!("{base}/0")))
                .count(),
            "a prefix may end mid-segment"
        );
    }

    async fn delete(&self, s: &dyn BackupStore) {
        let k = self.key("delete/x");
        s.put_bytes(&k, Bytes::from_static(b"x"), PutMode::Overwrite)
            .await
            .unwrap();
        s.delete(&k).await.unwrap();
        assert_eq!(s.head(&k).await.unwrap_err().kind(), ErrorKind::NotFound);
        s.delete(&k).await.expect("deleting a missing key succeeds");
    }

    async fn large_object(&self, s: &dyn BackupStore) {
        let k = self.key("large");
        let size = self.large_object_bytes;
        let part = 1u64 << 20;
        let parts = size.div_ceil(part);
        let stream: ByteStream = futures::stream::iter(0..parts)
            .map(move |i| Ok(pattern(i, part.min(size - i * part) as usize)))
            .boxed();
        let meta = s.put(&k, stream, PutMode::Overwrite).await.unwrap();
        assert_eq!(meta.size, size);
        assert_eq!(s.head(&k).await.unwrap().size, size);
        let mut want = blake3::Hasher::new();
        for i in 0..parts {
            want.update(&pattern(i, part.min(size - i * part) as usize));
        }
        let (n, got) = digest(s.get(&k, None).await.unwrap()).await;
        assert_eq!(n, size);
        assert_eq!(got, want.finalize(), "large object reads back identical");
        let tail: Vec<Bytes> = s
            .get(&k, Some(size - 100..size + 100))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(tail.concat().len(), 100);
        s.delete(&k).await.unwrap();
    }
}

/// Reads `stream` to its end: its length and BLAKE3 hash, without holding it.
///
/// # Panics
/// When the stream fails.
pub async fn digest(mut stream: ByteStream) -> (u64, blake3::Hash) {
    let mut hasher = blake3::Hasher::new();
    let mut n = 0u64;
    while let Some(b) = stream.try_next().await.unwrap() {
        n += b.len() as u64;
        hasher.update(&b);
    }
    (n, hasher.finalize())
}

/// `len` deterministic, incompressible bytes for seed `i`: test data that compresses
/// and deduplicates only where a test repeats it on purpose.
#[must_use]
pub fn pattern(i: u64, len: usize) -> Bytes {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&i.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    Bytes::from(out)
}

/// Checks that every capability a database target advertises really works, the way a
/// runbook would use it: health answers and names it; a replica reports its source (and
/// lag, with `ReplicationLag`); `Promote` turns it into a writable primary and a second
/// promotion is success; `Fence` (run after promotion) makes it refuse writes and a
/// second fence is success. Give it a replica to exercise promotion; capabilities it
/// does not advertise must answer `Unsupported`. Panics with the capability that failed.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let replica = dr_core::fake::FakeDatabase::replica("b", "a");
/// dr_core::testing::check_database_target(&replica, &dr_core::wait::Wait::default()).await;
/// # }
/// ```
pub async fn check_database_target(
    target: &dyn crate::target::DatabaseTarget,
    wait: &crate::wait::Wait,
) {
    use crate::target::{Capability, PointInTime, Role};
    let caps = target.capabilities();
    let name = target.name();
    assert!(!name.is_empty(), "a target has a name");
    let h = target
        .health()
        .await
        .unwrap_or_else(|e| panic!("health of {name}: {e}"));
    assert!(h.available, "{name} is available: {h:?}");
    if h.role == Role::Replica {
        assert!(!h.writable, "{name}: a replica does not take writes");
        if caps.contains(&Capability::ReplicationLag) {
            assert!(
                h.replication_lag.is_some(),
                "{name} advertises lag but reports none"
            );
        }
    }
    let unsupported = |cap: Capability, r: crate::Result<crate::target::Health>| {
        let e = r.expect_err(&format!("{name} does not advertise {cap} but did it"));
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{name} {cap}: {e}");
    };
    if caps.contains(&Capability::Promote) {
        let p = target
            .promote(wait)
            .await
            .unwrap_or_else(|e| panic!("promoting {name}: {e}"));
        assert_eq!(p.role, Role::Primary, "{name} is a primary after promotion");
        assert!(p.writable, "{name} takes writes after promotion");
        let again = target.health().await.unwrap();
        assert_eq!(
            (again.role, again.writable),
            (Role::Primary, true),
            "{name} reads back as a writable primary"
        );
        target
            .promote(wait)
            .await
            .unwrap_or_else(|e| panic!("promoting {name} twice: {e}"));
    } else {
        unsupported(Capability::Promote, target.promote(wait).await);
    }
    if caps.contains(&Capability::Fence) {
        let f = target
            .fence(wait)
            .await
            .unwrap_or_else(|e| panic!("fencing {name}: {e}"));
        assert!(!f.writable, "{name} refuses writes once fenced");
        assert!(
            !target.health().await.unwrap().writable,
            "{name} reads back as fenced"
        );
        target
            .fence(wait)
            .await
            .unwrap_or_else(|e| panic!("fencing {name} twice: {e}"));
    } else {
        unsupported(Capability::Fence, target.fence(wait).await);
    }
    if !caps.contains(&Capability::PointInTimeRestore) {
        unsupported(
            Capability::PointInTimeRestore,
            target
                .restore_to_point_in_time(&PointInTime::Latest, "conformance-copy", wait)
                .await,
        );
    }
}
