//! Watches a tar stream as it passes and keeps copies of a few small members
//! (`backup_label`, `backup_manifest`), so a base backup's facts are read from what
//! was stored, without a second pass.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

const BLOCK: usize = 512;
const MAX_CAPTURE: u64 = 64 << 20;

#[derive(Debug, Default)]
struct State {
    header: Vec<u8>,
    /// Bytes of the current member still to come, then the padding to skip.
    remaining: u64,
    padding: u64,
    capturing: Option<(String, Vec<u8>)>,
    wanted: Vec<String>,
    captured: Vec<(String, Vec<u8>)>,
}

impl State {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining as usize).min(data.len());
                if let Some((_, buf)) = &mut self.capturing {
                    buf.extend_from_slice(&data[..n]);
                }
                self.remaining -= n as u64;
                data = &data[n..];
                if self.remaining == 0 {
                    if let Some(done) = self.capturing.take() {
                        self.captured.push(done);
                    }
                }
                continue;
            }
            if self.padding > 0 {
                let n = (self.padding as usize).min(data.len());
                self.padding -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (BLOCK - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == BLOCK {
                let h = std::mem::take(&mut self.header);
                self.start_member(&h);
            }
        }
    }

    fn start_member(&mut self, h: &[u8]) {
        if h.iter().all(|b| *b == 0) {
            return; // end-of-archive blocks
        }
        let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..name_end]).into_owned();
        let size_field = String::from_utf8_lossy(&h[124..136]);
        let size = u64::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap_or(0);
        self.remaining = size;
        self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        let base = name.trim_start_matches("./");
        if size <= MAX_CAPTURE && self.wanted.iter().any(|w| w == base) {
            self.capturing = Some((base.to_owned(), Vec::with_capacity(size as usize)));
            if size == 0 {
                let done = self.capturing.take().expect("just set");
                self.captured.push(done);
            }
        }
    }
}

/// What a [`TarTap`] caught; read it after the stream is done.
#[derive(Debug, Clone, Default)]
pub(crate) struct Caught(Arc<Mutex<State>>);

impl Caught {
    /// The captured contents of `name`, if the stream held it.
    pub(crate) fn get(&self, name: &str) -> Option<Vec<u8>> {
        let s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.captured
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }
}

/// An `AsyncRead` that passes a tar stream through unchanged while watching it.
pub(crate) struct TarTap<R> {
    inner: R,
    caught: Caught,
}

impl<R> TarTap<R> {
    /// Watches `inner` for members named in `wanted`.
    pub(crate) fn new(inner: R, wanted: &[&str]) -> (Self, Caught) {
        let caught = Caught::default();
        caught
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .wanted = wanted.iter().map(|s| (*s).to_owned()).collect();
        (
            Self {
                inner,
                caught: caught.clone(),
            },
            caught,
        )
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for TarTap<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &res {
            let new = &buf.filled()[before..];
            self.caught
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .feed(new);
        }
        res
    }
}

impl<R: std::io::Read> std::io::Read for TarTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.caught
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .feed(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, body: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{:011o}\0", body.len());
        h[124..136].copy_from_slice(size.as_bytes());
        let mut out = h;
        out.extend_from_slice(body);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    #[tokio::test]
    async fn catches_members_across_any_read_sizes() {
        let mut tar = member("base/1/1234", &vec![9u8; 3000]);
        tar.extend(member("backup_label", b"START WAL LOCATION: 0/2000028"));
        tar.extend(member("backup_manifest", b"{\"x\":1}"));
        tar.extend(vec![0u8; 1024]);
        for step in [1usize, 7, 512, 4096] {
            let reader = std::io::Cursor::new(tar.clone());
            let (mut tap, caught) = TarTap::new(reader, &["backup_label", "backup_manifest"]);
            let mut out = Vec::new();
            let mut buf = vec![0u8; step];
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut tap, &mut buf)
                    .await
                    .unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, tar, "passes through unchanged");
            assert_eq!(
                caught.get("backup_label").unwrap(),
                b"START WAL LOCATION: 0/2000028"
            );
            assert_eq!(caught.get("backup_manifest").unwrap(), b"{\"x\":1}");
        }
    }
}
