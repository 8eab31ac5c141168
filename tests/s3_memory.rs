//! The S3 store's memory bound, in a process of its own: the allocator that counts
//! is per process, so no other test may run beside it.
//!
//! The bound is on heap bytes in use (what the store holds: parts in flight plus the
//! SDK's buffers), counted by the allocator, so it does not depend on how the system
//! allocator caches freed pages. Peak RSS of the real binary is measured by
//! `benches/s3_transfer.sh`.

use std::alloc::System;

use bytes::Bytes;
use cap::Cap;
use dr_aws::S3Store;
use dr_core::store::{BackupStore, ByteStream, PutMode};
use dr_testkit::Garage;
use futures::StreamExt;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

fn data(len: usize, seed: u64) -> Vec<u8> {
    dr_core::testing::pattern(seed, len).to_vec()
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
    let before = HEAP.allocated() as u64;
    let stream: ByteStream = futures::stream::iter(0..size / block)
        .map(move |i| Ok(Bytes::from(data(block as usize, i))))
        .boxed();
    assert_eq!(
        s.put("gib", stream, PutMode::Overwrite).await.unwrap().size,
        size
    );
    let upload_peak = (HEAP.max_allocated() as u64).saturating_sub(before);
    let mut want = blake3::Hasher::new();
    for i in 0..size / block {
        want.update(&data(block as usize, i));
    }
    let (n, got) = dr_core::testing::digest(s.get("gib", None).await.unwrap()).await;
    assert_eq!(n, size);
    assert_eq!(got, want.finalize(), "1 GiB reads back identical");
    let peak = (HEAP.max_allocated() as u64).saturating_sub(before);
    let bound = conc * part + (32 << 20);
    eprintln!(
        "heap peak: upload {} MiB, overall {} MiB, bound {} MiB",
        upload_peak >> 20,
        peak >> 20,
        bound >> 20
    );
    assert!(
        peak <= bound,
        "heap in use peaked {} MiB above the start (upload {} MiB), bound {} MiB",
        peak >> 20,
        upload_peak >> 20,
        bound >> 20
    );
}
