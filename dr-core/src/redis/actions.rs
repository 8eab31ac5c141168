//! The runbook actions of Redis: `redis.backup`, `redis.restore`.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{RedisBackupOptions, RedisMetadata, RedisRestoreOptions, RedisRestoreReport};
use crate::progress::NoProgress;
use crate::repo::{Pick, SnapshotRef};
use crate::runbook::action::{Outcome, Registry, StepContext};
use crate::runbook::{ParamError, TypedAction};
use crate::Result;

/// Adds the Redis actions to `registry`.
pub fn register(registry: &mut Registry) {
    registry.typed(RedisBackup).typed(RedisRestore);
}

/// What `redis.backup` stored.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct RedisStored {
    /// The snapshot's id.
    pub snapshot: String,
    /// Keys per database counted in the RDB.
    pub keys: Option<std::collections::BTreeMap<u64, u64>>,
    /// Bytes uploaded.
    pub new_bytes: u64,
}

struct RedisBackup;

#[async_trait]
impl TypedAction for RedisBackup {
    type Params = RedisBackupOptions;
    type Outputs = RedisStored;
    const NAME: &'static str = "redis.backup";
    const SUMMARY: &'static str =
        "Backs up a Redis server's RDB (taken as a replica takes it) into the run's repository.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: RedisBackupOptions) -> Result<Vec<String>> {
        let keys = super::keyspace(&p.url, p.timeout).await?;
        Ok(vec![format!(
            "backs up {} ({} keys now) into the repository",
            p.url,
            keys.values().sum::<u64>()
        )])
    }

    async fn run(&self, ctx: &StepContext, p: RedisBackupOptions) -> Result<Outcome<RedisStored>> {
        let snap = super::backup_redis(ctx.repository()?, &p, Arc::new(NoProgress)).await?;
        let meta: RedisMetadata = serde_json::from_value(snap.metadata.clone()).unwrap_or_default();
        Ok(Outcome::Done(RedisStored {
            snapshot: snap.id.to_string(),
            keys: meta.keys,
            new_bytes: snap.stats.new_bytes,
        }))
    }
}

/// `redis.restore`'s parameters: which snapshot, and where.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisRestoreParams {
    /// `latest` (of `source`, or of the only server), an id or a unique prefix.
    #[serde(default)]
    pub snapshot: SnapshotRef,
    /// With `latest`: the server, as `drkit snapshots` shows it.
    #[serde(default)]
    pub source: Option<String>,
    /// A running server: every key replayed with `RESTORE … REPLACE`.
    #[serde(default)]
    pub url: Option<super::RedisUrl>,
    /// Or a stopped server's data folder: the RDB written there as `dbfilename`.
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
    /// The RDB's file name in `data_dir`.
    #[serde(default = "super::default_dbfilename")]
    pub dbfilename: String,
    /// Into a server that holds keys, or over an existing RDB file.
    #[serde(default)]
    pub overwrite: bool,
    /// How long the server may take to answer.
    #[serde(default = "super::default_timeout", with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub timeout: std::time::Duration,
}

impl RedisRestoreParams {
    fn options(&self) -> RedisRestoreOptions {
        RedisRestoreOptions {
            url: self.url.clone(),
            data_dir: self.data_dir.clone(),
            dbfilename: self.dbfilename.clone(),
            overwrite: self.overwrite,
            timeout: self.timeout,
        }
    }
}

struct RedisRestore;

#[async_trait]
impl TypedAction for RedisRestore {
    type Params = RedisRestoreParams;
    type Outputs = RedisRestoreReport;
    const NAME: &'static str = "redis.restore";
    const SUMMARY: &'static str = "Restores a Redis snapshot into a running server (`url:`, every key replayed, counts compared) or a stopped server's `data_dir:`.";
    const IDEMPOTENT: bool = false;

    fn idempotent(&self, p: &RedisRestoreParams) -> bool {
        // RESTORE … REPLACE of the same keys again gives the same keys.
        p.overwrite
    }

    fn check(&self, p: &RedisRestoreParams) -> std::result::Result<(), ParamError> {
        match (&p.url, &p.data_dir) {
            (Some(_), Some(_)) | (None, None) => Err(ParamError::at(
                "",
                "give either url (a running server) or data_dir (a stopped server's folder)",
            )),
            _ => Ok(()),
        }
    }

    async fn plan(&self, ctx: &StepContext, p: RedisRestoreParams) -> Result<Vec<String>> {
        let which = match ctx.repository() {
            Ok(repo) => {
                let pick = Pick {
                    snapshot: p.snapshot.clone(),
                    source: p.source.clone(),
                    ..Pick::default()
                };
                match super::pick(repo, &pick).await {
                    Ok(s) => format!("snapshot {} (of {}, {})", s.id, s.source, s.finished_at),
                    Err(e) if e.kind() == crate::ErrorKind::NotFound => {
                        "the snapshot an earlier step takes".to_owned()
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(_) => format!("snapshot {}", p.snapshot),
        };
        Ok(vec![match (&p.url, &p.data_dir) {
            (Some(url), _) => {
                let held: u64 = super::keyspace(url, p.timeout).await?.values().sum();
                if held > 0 && !p.overwrite {
                    return Err(crate::err!(
                        Conflict,
                        "{url} holds {held} keys; restore into an empty server, or set overwrite: true to replace the snapshot's keys among them"
                    ));
                }
                format!("replays {which} into {url} ({held} keys now), key by key")
            }
            (None, Some(dir)) => {
                let file = dir.join(&p.dbfilename);
                if file.exists() && !p.overwrite {
                    return Err(crate::err!(
                        Conflict,
                        "{} already exists; stop the server and set overwrite: true to replace it",
                        file.display()
                    ));
                }
                format!("writes {which} as {}", file.display())
            }
            (None, None) => "restores a Redis snapshot".to_owned(),
        }])
    }

    async fn run(
        &self,
        ctx: &StepContext,
        p: RedisRestoreParams,
    ) -> Result<Outcome<RedisRestoreReport>> {
        let repo = ctx.repository()?;
        let pick = Pick {
            snapshot: p.snapshot.clone(),
            source: p.source.clone(),
            ..Pick::default()
        };
        let snap = super::pick(repo, &pick).await?;
        Ok(Outcome::Done(
            super::restore_redis(repo, &snap, &p.options()).await?,
        ))
    }
}
