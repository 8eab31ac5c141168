//! `drkit store`: raw objects, for operators and for measuring a store.

use std::time::Instant;

use bytes::Bytes;
use dr_core::progress::Progress;
use dr_core::store::{BackupStoreExt, ByteStream, PutMode};
use dr_core::{Error, Result};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use crate::args::{Cli, StoreCommand};
use crate::output::{bytes, secs, Output};

/// Runs a `drkit store` subcommand against the store at --repo.
pub async fn store(cli: &Cli, c: &StoreCommand, out: Output) -> Result<u8> {
    let store = drkit::open_store(super::repo_url(cli)?)?;
    match c {
        StoreCommand::Ls { prefix } => {
            let mut all = store.list_all(prefix).await?;
            all.sort_by(|a, b| a.key.cmp(&b.key));
            let doc: Vec<_> = all
                .iter()
                .map(|m| json!({"key": m.key, "size": m.size, "modified": m.modified}))
                .collect();
            out.emit(&doc, || {
                all.iter()
                    .map(|m| format!("{:>12}  {}", m.size, m.key))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        StoreCommand::Put { key, file } => {
            let started = Instant::now();
            let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = if file.as_os_str() == "-" {
                Box::new(tokio::io::stdin())
            } else {
                Box::new(
                    tokio::fs::File::open(file)
                        .await
                        .map_err(|e| Error::io(format!("opening {}", file.display()), e))?,
                )
            };
            let bar = out.progress(None);
            bar.phase("upload");
            let b2 = bar.clone();
            let stream: ByteStream = ReaderStream::with_capacity(reader, 1 << 20)
                .map_err(|e| Error::io("reading the input", e))
                .inspect_ok(move |b: &Bytes| b2.advance(b.len() as u64, 0))
                .boxed();
            let meta = store.put(key, stream, PutMode::Overwrite).await;
            bar.finish();
            let meta = meta?;
            let took = started.elapsed();
            let doc = json!({"key": key, "size": meta.size, "seconds": secs(took), "bytes_per_second": meta.size as f64 / took.as_secs_f64()});
            out.emit(&doc, || {
                format!(
                    "wrote {} ({}) in {:.2}s",
                    key,
                    bytes(meta.size),
                    took.as_secs_f64()
                )
            });
        }
        StoreCommand::Get { key, file } => {
            let started = Instant::now();
            let mut stream = store.get(key, None).await?;
            let to_stdout = file.as_os_str() == "-";
            let mut w: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = if to_stdout {
                Box::new(tokio::io::stdout())
            } else {
                Box::new(
                    tokio::fs::File::create(file)
                        .await
                        .map_err(|e| Error::io(format!("creating {}", file.display()), e))?,
                )
            };
            let bar = out.progress(None);
            bar.phase("download");
            let mut n = 0u64;
            while let Some(part) = stream.try_next().await? {
                w.write_all(&part)
                    .await
                    .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
                n += part.len() as u64;
                bar.advance(part.len() as u64, 0);
            }
            w.flush()
                .await
                .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
            bar.finish();
            let took = started.elapsed();
            if !to_stdout {
                let doc = json!({"key": key, "size": n, "seconds": secs(took), "bytes_per_second": n as f64 / took.as_secs_f64()});
                out.emit(&doc, || {
                    format!("read {} ({}) in {:.2}s", key, bytes(n), took.as_secs_f64())
                });
            }
        }
    }
    Ok(0)
}
