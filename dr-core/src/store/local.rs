//! A store in a local folder: the embedded default.
//!
//! Every write goes to a temporary file under `.tmp/`, is fsynced, and is then moved into
//! place: `rename` for overwrites, `link` for create-only puts (the kernel makes exactly one
//! of two racing links succeed). A crash leaves at most a stray temporary file.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use jiff::Timestamp;
use tokio::io::AsyncWriteExt;

use super::{clamp_range, validate_key, BackupStore, ByteStream, ListStream, ObjectMeta, PutMode};
use crate::{err, Error, Result};

const TMP_DIR: &str = ".tmp";
const READ_BUF: usize = 1 << 20;

/// A [`BackupStore`] in a folder.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root`; the folder is created on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder this store writes to.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn tmp_path(&self) -> Result<PathBuf> {
        let mut rnd = [0u8; 12];
        getrandom::getrandom(&mut rnd).map_err(|e| err!(Io, "no randomness: {e}"))?;
        Ok(self.root.join(TMP_DIR).join(hex::encode(rnd)))
    }
}

fn meta_of(key: String, md: &std::fs::Metadata) -> ObjectMeta {
    let modified = md.modified().ok().and_then(|t| Timestamp::try_from(t).ok());
    ObjectMeta {
        key,
        size: md.len(),
        modified,
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err!(Io, "store worker failed: {e}"))?
}

/// Moves a finished temporary file to `dest`, honouring `mode`.
fn publish(tmp: &Path, dest: &Path, key: &str, mode: PutMode) -> Result<()> {
    let parent = dest.parent().expect("keys have a parent under the root");
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    match mode {
        PutMode::Overwrite => std::fs::rename(tmp, dest)
            .map_err(|e| Error::io(format!("moving object into {}", dest.display()), e))?,
        PutMode::CreateOnly => {
            let linked = std::fs::hard_link(tmp, dest);
            let _ = std::fs::remove_file(tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(err!(AlreadyExists, "object {key} already exists"));
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("linking object into {}", dest.display()),
                        e,
                    ))
                }
            }
        }
    }
    sync_dir(parent).map_err(|e| Error::io(format!("syncing {}", parent.display()), e))
}

#[async_trait]
impl BackupStore for LocalStore {
    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn put(&self, key: &str, mut data: ByteStream, mode: PutMode) -> Result<ObjectMeta> {
        let dest = self.path(key)?;
        let tmp = self.tmp_path()?;
        let tmp_dir = tmp.parent().expect("tmp has a parent").to_owned();
        let written: Result<u64> = async {
            tokio::fs::create_dir_all(&tmp_dir)
                .await
                .map_err(|e| Error::io(format!("creating {}", tmp_dir.display()), e))?;
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
            let mut size = 0u64;
            while let Some(part) = data.next().await {
                let part = part?;
                size += part.len() as u64;
                file.write_all(&part)
                    .await
                    .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
            }
            file.sync_all()
                .await
                .map_err(|e| Error::io(format!("syncing {}", tmp.display()), e))?;
            Ok(size)
        }
        .await;
        let result = match written {
            Ok(size) => {
                let (tmp, key) = (tmp.clone(), key.to_owned());
                blocking(move || publish(&tmp, &dest, &key, mode))
                    .await
                    .map(|()| size)
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        let size = result.map_err(|e| e.context(format!("writing {key} to {}", self.url())))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size,
            modified: Some(Timestamp::now()),
        })
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let path = self.path(key)?;
        let key_owned = key.to_owned();
        let (file, range) = blocking(move || {
            let mut file =
                std::fs::File::open(&path).map_err(|e| map_missing(e, &key_owned, &path))?;
            let size = file
                .metadata()
                .map_err(|e| Error::io(path.display(), e))?
                .len();
            let range = clamp_range(range, size);
            file.seek(SeekFrom::Start(range.start))
                .map_err(|e| Error::io(path.display(), e))?;
            Ok((file, range))
        })
        .await?;
        let remaining = range.end - range.start;
        let stream =
            futures::stream::unfold((Some(file), remaining), |(file, remaining)| async move {
                let mut file = file?;
                if remaining == 0 {
                    return None;
                }
                let want = remaining.min(READ_BUF as u64) as usize;
                let res = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; want];
                    let n = read_full(&mut file, &mut buf)?;
                    buf.truncate(n);
                    Ok::<_, std::io::Error>((file, buf))
                })
                .await;
                match res {
                    Ok(Ok((_, buf))) if buf.is_empty() => None,
                    Ok(Ok((file, buf))) => {
                        let left = remaining - buf.len() as u64;
                        Some((Ok(Bytes::from(buf)), (Some(file), left)))
                    }
                    Ok(Err(e)) => Some((Err(Error::io("reading object", e)), (None, 0))),
                    Err(e) => Some((Err(err!(Io, "store worker failed: {e}")), (None, 0))),
                }
            });
        Ok(stream.boxed())
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path(key)?;
        let key = key.to_owned();
        blocking(move || {
            let md = std::fs::metadata(&path).map_err(|e| map_missing(e, &key, &path))?;
            Ok(meta_of(key, &md))
        })
        .await
    }

    fn list<'a>(&'a self, prefix: &'a str) -> ListStream<'a> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        let fut = blocking(move || {
            // Walk only the folder the prefix points into, then filter by the rest.
            let start_rel = prefix.rfind('/').map_or("", |i| &prefix[..i]);
            let start = if start_rel.is_empty() {
                root.clone()
            } else {
                root.join(start_rel)
            };
            let mut out = Vec::new();
            walk(&root, &start, &prefix, &mut out)?;
            Ok(out)
        });
        futures::stream::once(fut)
            .flat_map(|res| match res {
                Ok(items) => futures::stream::iter(items.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
            })
            .boxed()
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("deleting {}", path.display()), e)),
        }
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn map_missing(e: std::io::Error, key: &str, path: &Path) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        err!(NotFound, "object {key} not found ({})", path.display())
    } else {
        Error::io(format!("reading {}", path.display()), e)
    }
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<ObjectMeta>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else { continue };
        if rel == TMP_DIR || rel.starts_with(".tmp/") {
            continue;
        }
        let ft = entry
            .file_type()
            .map_err(|e| Error::io(path.display(), e))?;
        if ft.is_dir() {
            let as_dir = format!("{rel}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, out)?;
            }
        } else if ft.is_file() && rel.starts_with(prefix) {
            match entry.metadata() {
                Ok(md) => out.push(meta_of(rel.to_owned(), &md)),
                // Deleted between the directory read and now: not there, as in an
                // object store's listing taken a moment later.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path.display(), e)),
            }
        }
    }
    Ok(())
}
