//! The S3 store's memory bound, in a process of its own: peak RSS is per process, so
//! no other test may run beside it.

use bytes::Bytes;
use dr_aws::S3Store;
use dr_core::store::{BackupStore, ByteStream, PutMode};
use dr_testkit::Garage;
use futures::{StreamExt, TryStreamExt};

fn data(len: usize, seed: u64) -> Vec<u8> {
    dr_core::testing::pattern(seed, len).to_vec()
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn one_gib_round_trip_with_bounded_memory() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let c = garage.s3("big");
    let (part, conc) = (c.part_size, c.concurrency as u64);
    let s = S3Store::new(c).unwrap();
    let size: u64 = 1 << 30;
    let block = 1u64 << 20;
    let before = rss_bytes();
    let stream: ByteStream = futures::stream::iter(0..size / block)
        .map(move |i| Ok(Bytes::from(data(block as usize, i))))
        .boxed();
    assert_eq!(
        s.put("gib", stream, PutMode::Overwrite).await.unwrap().size,
        size
    );
    let mut want = blake3::Hasher::new();
    for i in 0..size / block {
        want.update(&data(block as usize, i));
    }
    let mut got = blake3::Hasher::new();
    let mut n = 0u64;
    let mut read = s.get("gib", None).await.unwrap();
    while let Some(b) = read.try_next().await.unwrap() {
        n += b.len() as u64;
        got.update(&b);
    }
    assert_eq!(n, size);
    assert_eq!(
        got.finalize(),
        want.finalize(),
        "1 GiB reads back identical"
    );
    let grown = rss_bytes().saturating_sub(before);
    let bound = (conc + 2) * part + (32 << 20);
    assert!(
        grown <= bound,
        "peak RSS grew {} MiB, bound {} MiB",
        grown >> 20,
        bound >> 20
    );
}
