//! Part buffers reused within one transfer: a 1 GiB object moves through the same few
//! part-sized buffers instead of 64 fresh 16 MiB allocations, so the process's memory
//! stays at the parts in flight and does not grow with what the allocator keeps of freed
//! buffers.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Free part buffers of one transfer.
#[derive(Clone)]
pub(super) struct PartPool {
    inner: Arc<Inner>,
}

struct Inner {
    free: Mutex<Vec<Vec<u8>>>,
    size: usize,
    keep: usize,
}

impl PartPool {
    /// Buffers of `size` bytes; at most `keep` are kept for reuse.
    pub(super) fn new(size: usize, keep: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                free: Mutex::new(Vec::new()),
                size,
                keep,
            }),
        }
    }

    /// An empty buffer with room for a whole part.
    pub(super) fn take(&self) -> Vec<u8> {
        self.inner
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.inner.size))
    }

    /// Shares `buf` as `Bytes`; it comes back to the pool when the last clone is dropped.
    pub(super) fn freeze(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled {
            buf,
            pool: self.inner.clone(),
        })
    }
}

/// A pooled buffer behind a `Bytes`.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<Inner>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() < self.pool.size {
            return;
        }
        buf.clear();
        let mut free = self
            .pool
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if free.len() < self.pool.keep {
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_clone_goes() {
        let pool = PartPool::new(1024, 2);
        let mut a = pool.take();
        a.extend_from_slice(b"part");
        let ptr = a.as_ptr();
        let bytes = pool.freeze(a);
        let clone = bytes.slice(1..3);
        drop(bytes);
        assert_eq!(&clone[..], b"ar");
        assert!(pool.inner.free.lock().unwrap().is_empty(), "still shared");
        drop(clone);
        let again = pool.take();
        assert_eq!(again.as_ptr(), ptr, "the same buffer, reused");
        assert!(again.is_empty() && again.capacity() >= 1024);
        // Never more than `keep` are kept.
        let many: Vec<Bytes> = (0..4).map(|_| pool.freeze(pool.take())).collect();
        drop(many);
        assert_eq!(pool.inner.free.lock().unwrap().len(), 2);
    }
}
