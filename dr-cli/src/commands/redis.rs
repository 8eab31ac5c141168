//! `drkit backup redis://…` and `drkit restore-redis`.

use std::fmt::Write as _;

use dr_core::redis::{
    backup_redis, restore_redis, RedisBackupOptions, RedisMetadata, RedisRestoreOptions, RedisUrl,
};
use dr_core::repo::Pick;
use dr_core::Result;

use crate::args::{BackupArgs, Cli, RestoreRedisArgs};
use crate::output::{bytes, Output};

fn counts(keys: &std::collections::BTreeMap<u64, u64>) -> String {
    if keys.is_empty() {
        return "no keys".to_owned();
    }
    keys.iter()
        .map(|(db, n)| format!("db{db}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Backs up a Redis server.
pub async fn backup(cli: &Cli, a: &BackupArgs, out: Output) -> Result<u8> {
    let url = RedisUrl::parse(&a.database)?;
    let options = RedisBackupOptions {
        url: url.clone(),
        tags: a.tags.iter().cloned().collect(),
        timeout: std::time::Duration::from_mins(5),
    };
    let repo = super::open_repo(cli).await?;
    out.note(&format!("backing up {url} to {}", repo.store().url()));
    let bar = out.progress(None);
    let snap = backup_redis(&repo, &options, bar.clone()).await;
    bar.finish();
    let snap = snap?;
    let meta: RedisMetadata = serde_json::from_value(snap.metadata.clone()).unwrap_or_default();
    let s = snap.summary();
    out.emit(&s, || {
        let mut t = format!(
            "snapshot {}\n  Redis {} (RDB version {}), {}\n  {} read, {} new, took {:.1}s",
            s.id,
            meta.redis_version,
            meta.rdb_version,
            meta.keys
                .as_ref()
                .map_or_else(|| "keys not counted".to_owned(), counts),
            bytes(s.stats.raw_bytes),
            bytes(s.stats.new_bytes),
            s.duration_secs
        );
        if let Some(note) = &meta.keys_note {
            let _ = write!(t, "\n  keys not counted: {note}");
        }
        t
    });
    Ok(0)
}

/// Restores a Redis snapshot.
pub async fn restore(cli: &Cli, a: &RestoreRedisArgs, out: Output) -> Result<u8> {
    let options = RedisRestoreOptions {
        url: a.to.as_deref().map(RedisUrl::parse).transpose()?,
        data_dir: a.data_dir.clone(),
        dbfilename: a.dbfilename.clone(),
        overwrite: a.overwrite,
        timeout: std::time::Duration::from_mins(5),
    };
    let repo = super::open_repo(cli).await?;
    let pick = Pick {
        snapshot: a.snapshot.as_str().into(),
        source: a.source.clone(),
        ..Pick::default()
    };
    let snap = dr_core::redis::pick(&repo, &pick).await?;
    out.note(&format!(
        "restoring snapshot {} (of {})",
        snap.id, snap.source
    ));
    let report = restore_redis(&repo, &snap, &options).await?;
    out.emit(&report, || {
        let mut t = format!(
            "restored snapshot {} into {}\n  keys: {}",
            report.snapshot,
            report.to,
            counts(&report.keys)
        );
        if report.expired > 0 {
            let _ = write!(
                t,
                " ({} expired and {} left out)",
                report.expired,
                if report.expired == 1 { "was" } else { "were" }
            );
        }
        if options.url.is_some() {
            let _ = write!(
                t,
                "\n  the server now holds {}",
                counts(&report.server_keys)
            );
        } else {
            t.push_str("\n  start the server on this folder to load it");
        }
        t
    });
    Ok(0)
}
