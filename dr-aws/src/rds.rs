//! RDS: promote read replicas, create cross-region replicas, restore to a point in time,
//! snapshots, status and endpoints. Every change waits, bounded by a [`Wait`], until the
//! instance is usable, reporting each state it passes through.

use async_trait::async_trait;
use aws_sdk_rds::Client;
use dr_core::target::{Capability, DatabaseTarget, Health, PointInTime, Role};
use dr_core::wait::Wait;
use dr_core::{err, ErrorKind, Result};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{from_timestamp, to_timestamp, AwsConfig};
use crate::error::classify;

/// What RDS says about one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbInstance {
    /// Instance identifier.
    pub id: String,
    /// Its ARN.
    pub arn: Option<String>,
    /// RDS status (`available`, `creating`, `modifying`, …).
    pub status: String,
    /// Engine (`postgres`, …).
    pub engine: Option<String>,
    /// `host:port` clients connect to, once assigned.
    pub endpoint: Option<String>,
    /// The instance it replicates from (id or ARN), for a read replica.
    pub replication_source: Option<String>,
    /// Its read replicas.
    pub read_replicas: Vec<String>,
    /// The latest moment it can be restored to.
    pub latest_restorable_time: Option<Timestamp>,
    /// The region of the client that read it.
    pub region: String,
}

impl DbInstance {
    /// Whether clients can use it.
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.status == "available"
    }
}

/// What RDS says about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbSnapshot {
    /// Snapshot identifier.
    pub id: String,
    /// Its ARN (what a cross-region copy names).
    pub arn: Option<String>,
    /// The instance it was taken of.
    pub instance: Option<String>,
    /// `available`, `creating`, …
    pub status: String,
    /// When it was taken.
    pub created: Option<Timestamp>,
}

/// States from which an instance never becomes available by itself.
const TERMINAL: &[&str] = &[
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "storage-full",
    "deleting",
    "inaccessible-encryption-credentials",
];

/// An RDS client in one region.
#[derive(Debug, Clone)]
pub struct Rds {
    client: Client,
    region: String,
}

impl Rds {
    /// Connects with `aws` (region, endpoint, credentials, deadlines).
    pub async fn connect(aws: &AwsConfig) -> Result<Self> {
        let sdk = aws.load().await?;
        let region = sdk.region().map(ToString::to_string).unwrap_or_default();
        Ok(Self {
            client: Client::new(&sdk),
            region,
        })
    }

    /// The region this client talks to.
    #[must_use]
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Status, endpoint and replication of instance `id`.
    pub async fn describe(&self, id: &str) -> Result<DbInstance> {
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| {
                let mapped = classify(format!("describing RDS instance {id} in {}", self.region), e);
                if mapped.kind() == ErrorKind::NotFound {
                    err!(NotFound, "RDS instance {id} does not exist in {}; check the identifier and the region", self.region)
                } else {
                    mapped
                }
            })?;
        let db = out.db_instances().first().ok_or_else(|| {
            err!(
                NotFound,
                "RDS instance {id} does not exist in {}",
                self.region
            )
        })?;
        Ok(DbInstance {
            id: db.db_instance_identifier().unwrap_or(id).to_owned(),
            arn: db.db_instance_arn().map(str::to_owned),
            status: db.db_instance_status().unwrap_or("unknown").to_owned(),
            engine: db.engine().map(str::to_owned),
            endpoint: db.endpoint().and_then(|e| {
                let host = e.address()?;
                Some(match e.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_owned(),
                })
            }),
            replication_source: db
                .read_replica_source_db_instance_identifier()
                .map(str::to_owned),
            read_replicas: db.read_replica_db_instance_identifiers().to_vec(),
            latest_restorable_time: db.latest_restorable_time().and_then(to_timestamp),
            region: self.region.clone(),
        })
    }

    /// Waits until `id` is available; fails at once on a state it cannot leave.
    pub async fn wait_available(&self, id: &str, wait: &Wait) -> Result<DbInstance> {
        wait.until(&format!("RDS instance {id}"), || async {
            let db = self.describe(id).await?;
            if TERMINAL.contains(&db.status.as_str()) {
                return Err(err!(
                    External,
                    "RDS instance {id} entered state {:?} and will not become available; see its events in the console",
                    db.status
                ));
            }
            let state = db.status.clone();
            Ok((db.is_available().then_some(db), state))
        })
        .await
    }

    /// Promotes read replica `id` to a standalone instance and waits until it is
    /// available and no longer replicating. An instance that is not a replica is left
    /// alone and returned: promoting twice is success.
    pub async fn promote(&self, id: &str, wait: &Wait) -> Result<DbInstance> {
        let db = self.describe(id).await?;
        if db.replication_source.is_none() {
            tracing::info!("RDS instance {id} is not a read replica; nothing to promote");
            return Ok(db);
        }
        self.client
            .promote_read_replica()
            .db_instance_identifier(id)
            .send()
            .await
            .map_err(|e| classify(format!("promoting RDS instance {id}"), e))?;
        // Promoted means RDS itself says so: available and no longer naming a source.
        wait.until(&format!("promoting RDS instance {id}"), || async {
            let db = self.describe(id).await?;
            if TERMINAL.contains(&db.status.as_str()) {
                return Err(err!(
                    External,
                    "RDS instance {id} entered state {:?} while being promoted",
                    db.status
                ));
            }
            let linked = db.replication_source.is_some();
            let state = if linked {
                format!("{} (still a replica)", db.status)
            } else {
                db.status.clone()
            };
            Ok(((db.is_available() && !linked).then_some(db), state))
        })
        .await
    }

    /// Starts creating the read replica `request.id` of `request.source` (an ARN for a
    /// source in another region) in this client's region, without waiting. Called again
    /// with the same `token`, it adopts the instance the first call created.
    pub async fn start_read_replica(
        &self,
        request: &ReplicaRequest,
    ) -> Result<Started<DbInstance>> {
        let (id, source) = (&request.id, &request.source);
        if let Some(db) = self.adopt(id, request.token.as_deref()).await? {
            return Ok(Started {
                resource: db,
                adopted: true,
            });
        }
        self.client
            .create_db_instance_read_replica()
            .db_instance_identifier(id)
            .source_db_instance_identifier(source)
            .set_db_instance_class(request.instance_class.clone())
            .set_tags(token_tags(request.token.as_deref()))
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!("creating read replica {id} of {source} in {}", self.region),
                    e,
                )
            })?;
        Ok(Started {
            resource: self.describe(id).await?,
            adopted: false,
        })
    }

    /// [`Rds::start_read_replica`], then waits until it is available.
    pub async fn create_read_replica(
        &self,
        request: &ReplicaRequest,
        wait: &Wait,
    ) -> Result<DbInstance> {
        self.start_read_replica(request).await?;
        self.wait_available(&request.id, wait).await
    }

    /// Starts restoring `request.source` to `request.target` into the new instance
    /// `request.new_id`, without waiting; adopts what an earlier call with the same
    /// `token` created. RDS restores to a time or the latest restorable time only.
    pub async fn start_point_in_time_restore(
        &self,
        request: &PitrRequest,
    ) -> Result<Started<DbInstance>> {
        let (source, new_id, target) = (&request.source, &request.new_id, &request.target);
        if let Some(db) = self.adopt(new_id, request.token.as_deref()).await? {
            return Ok(Started {
                resource: db,
                adopted: true,
            });
        }
        match target {
            PointInTime::Time(t) => {
                if *t > Timestamp::now() {
                    return Err(err!(
                        InvalidInput,
                        "restore time {t} is in the future; give a past time or --latest"
                    ));
                }
                let src = self.describe(source).await?;
                if let Some(latest) = src.latest_restorable_time {
                    if *t > latest {
                        return Err(err!(InvalidInput, "restore time {t} is after the latest restorable time of {source} ({latest}); give an earlier time or --latest"));
                    }
                }
            }
            PointInTime::Latest => {}
            PointInTime::Lsn(_) | PointInTime::Name(_) => {
                return Err(err!(
                    Unsupported,
                    "RDS instance {source} restores to a time or the latest restorable time, not to {target}; give a time"
                ))
            }
        }
        let mut req = self
            .client
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(source)
            .target_db_instance_identifier(new_id)
            .set_tags(token_tags(request.token.as_deref()));
        req = match target {
            PointInTime::Time(t) => req.restore_time(from_timestamp(*t)),
            _ => req.use_latest_restorable_time(true),
        };
        req.send()
            .await
            .map_err(|e| classify(format!("restoring {source} to {target} as {new_id}"), e))?;
        Ok(Started {
            resource: self.describe(new_id).await?,
            adopted: false,
        })
    }

    /// [`Rds::start_point_in_time_restore`], then waits until the new instance is available.
    pub async fn restore_to_point_in_time(
        &self,
        request: &PitrRequest,
        wait: &Wait,
    ) -> Result<DbInstance> {
        self.start_point_in_time_restore(request).await?;
        self.wait_available(&request.new_id, wait).await
    }

    /// The instance `id` when an earlier call with `token` created it; `AlreadyExists`
    /// when something else did; `None` when it does not exist.
    async fn adopt(&self, id: &str, token: Option<&str>) -> Result<Option<DbInstance>> {
        let db = match self.describe(id).await {
            Ok(db) => db,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if let (Some(token), Some(arn)) = (token, db.arn.as_deref()) {
            if self.tag(arn, TOKEN_TAG).await?.as_deref() == Some(token) {
                tracing::info!("RDS instance {id} was created by an earlier call with request token {token}; adopting it");
                return Ok(Some(db));
            }
        }
        Err(err!(
            AlreadyExists,
            "RDS instance {id} already exists in {} and was not created by this request{}; pick another name, or delete it first if it is left over from an earlier attempt",
            self.region,
            token.map_or(String::new(), |t| format!(" (token {t})"))
        ))
    }

    async fn tag(&self, arn: &str, key: &str) -> Result<Option<String>> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| classify(format!("reading the tags of {arn}"), e))?;
        Ok(out
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value().map(str::to_owned)))
    }

    /// Takes snapshot `snapshot_id` of instance `id` and waits until it is available.
    pub async fn create_snapshot(
        &self,
        id: &str,
        snapshot_id: &str,
        wait: &Wait,
    ) -> Result<DbSnapshot> {
        self.start_snapshot(id, snapshot_id, None).await?;
        self.wait_snapshot(snapshot_id, wait).await
    }

    /// Starts snapshot `snapshot_id` of instance `id` without waiting; called again with
    /// the same `token`, adopts the snapshot the first call started.
    pub async fn start_snapshot(
        &self,
        id: &str,
        snapshot_id: &str,
        token: Option<&str>,
    ) -> Result<Started<DbSnapshot>> {
        if let Some(existing) = self
            .snapshots(Some(id))
            .await?
            .into_iter()
            .find(|s| s.id == snapshot_id)
        {
            let ours = match (token, existing.arn.as_deref()) {
                (Some(t), Some(arn)) => self.tag(arn, TOKEN_TAG).await?.as_deref() == Some(t),
                _ => false,
            };
            if ours {
                return Ok(Started {
                    resource: existing,
                    adopted: true,
                });
            }
            return Err(err!(
                AlreadyExists,
                "RDS snapshot {snapshot_id} of {id} already exists in {} and was not taken by this request; pick another name",
                self.region
            ));
        }
        self.client
            .create_db_snapshot()
            .db_instance_identifier(id)
            .db_snapshot_identifier(snapshot_id)
            .set_tags(token_tags(token))
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!("snapshotting RDS instance {id} as {snapshot_id}"),
                    e,
                )
            })?;
        let snap = self
            .snapshots(Some(id))
            .await?
            .into_iter()
            .find(|s| s.id == snapshot_id)
            .ok_or_else(|| {
                err!(
                    NotFound,
                    "RDS snapshot {snapshot_id} vanished right after it was started"
                )
            })?;
        Ok(Started {
            resource: snap,
            adopted: false,
        })
    }

    /// Snapshots of instance `id`, or all of them, oldest first.
    pub async fn snapshots(&self, id: Option<&str>) -> Result<Vec<DbSnapshot>> {
        let out = self
            .client
            .describe_db_snapshots()
            .set_db_instance_identifier(id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify(format!("listing RDS snapshots in {}", self.region), e))?;
        let mut all: Vec<DbSnapshot> = out
            .db_snapshots()
            .iter()
            .map(|s| DbSnapshot {
                id: s.db_snapshot_identifier().unwrap_or_default().to_owned(),
                arn: s.db_snapshot_arn().map(str::to_owned),
                instance: s.db_instance_identifier().map(str::to_owned),
                status: s.status().unwrap_or("unknown").to_owned(),
                created: s.snapshot_create_time().and_then(to_timestamp),
            })
            .collect();
        all.sort_by_key(|s| s.created);
        Ok(all)
    }

    /// Waits until snapshot `snapshot_id` is available; fails at once if it failed.
    pub async fn wait_snapshot(&self, snapshot_id: &str, wait: &Wait) -> Result<DbSnapshot> {
        wait.until(&format!("RDS snapshot {snapshot_id}"), || async {
            let snap = self
                .snapshots(None)
                .await?
                .into_iter()
                .find(|s| s.id == snapshot_id)
                .ok_or_else(|| {
                    err!(
                        NotFound,
                        "RDS snapshot {snapshot_id} does not exist in {}",
                        self.region
                    )
                })?;
            if snap.status == "failed" {
                return Err(err!(External, "RDS snapshot {snapshot_id} failed"));
            }
            let state = snap.status.clone();
            Ok(((snap.status == "available").then_some(snap), state))
        })
        .await
    }

    /// Copies snapshot `source` (an ARN when it lives in another region) into this
    /// region as `new_id` and waits for it.
    pub async fn copy_snapshot(
        &self,
        source: &str,
        new_id: &str,
        wait: &Wait,
    ) -> Result<DbSnapshot> {
        self.client
            .copy_db_snapshot()
            .source_db_snapshot_identifier(source)
            .target_db_snapshot_identifier(new_id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!(
                        "copying RDS snapshot {source} to {new_id} in {}",
                        self.region
                    ),
                    e,
                )
            })?;
        self.wait_snapshot(new_id, wait).await
    }

    /// Restores snapshot `snapshot_id` into new instance `new_id` and waits for it.
    pub async fn restore_snapshot(
        &self,
        snapshot_id: &str,
        new_id: &str,
        wait: &Wait,
    ) -> Result<DbInstance> {
        let request = SnapshotRestoreRequest {
            snapshot: snapshot_id.to_owned(),
            new_id: new_id.to_owned(),
            instance_class: None,
            token: None,
        };
        self.start_snapshot_restore(&request).await?;
        self.wait_available(new_id, wait).await
    }

    /// Starts restoring snapshot `request.snapshot` into the new instance
    /// `request.new_id`, without waiting; called again with the same `token`, adopts the
    /// instance the first call created.
    pub async fn start_snapshot_restore(
        &self,
        request: &SnapshotRestoreRequest,
    ) -> Result<Started<DbInstance>> {
        let (snapshot, new_id) = (&request.snapshot, &request.new_id);
        if let Some(db) = self.adopt(new_id, request.token.as_deref()).await? {
            return Ok(Started {
                resource: db,
                adopted: true,
            });
        }
        self.client
            .restore_db_instance_from_db_snapshot()
            .db_snapshot_identifier(snapshot)
            .db_instance_identifier(new_id)
            .set_db_instance_class(request.instance_class.clone())
            .set_tags(token_tags(request.token.as_deref()))
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!(
                        "restoring RDS snapshot {snapshot} as {new_id} in {}",
                        self.region
                    ),
                    e,
                )
            })?;
        Ok(Started {
            resource: self.describe(new_id).await?,
            adopted: false,
        })
    }
}

/// The tag a request token is kept in, on what a start-or-adopt call creates.
pub const TOKEN_TAG: &str = "drkit:request";

fn token_tags(token: Option<&str>) -> Option<Vec<aws_sdk_rds::types::Tag>> {
    token.map(|t| {
        vec![aws_sdk_rds::types::Tag::builder()
            .key(TOKEN_TAG)
            .value(t)
            .build()]
    })
}

/// What a start-or-adopt call returns: the resource, and whether an earlier call with
/// the same token had already created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started<T> {
    /// The instance or snapshot, as it is now (it may still be creating).
    pub resource: T,
    /// True when it was found, created by an earlier call with the same token.
    pub adopted: bool,
}

/// A new read replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicaRequest {
    /// Source instance id, or its ARN across regions.
    pub source: String,
    /// The replica's identifier.
    pub id: String,
    /// Instance class (default: the source's).
    #[serde(default)]
    pub instance_class: Option<String>,
    /// Caller's token (a run id): a second call with it adopts the first one's replica.
    #[serde(default)]
    pub token: Option<String>,
}

/// A point-in-time restore into a new instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PitrRequest {
    /// Source instance identifier.
    pub source: String,
    /// The new instance's identifier.
    pub new_id: String,
    /// When to restore to: a time or `latest`.
    pub target: PointInTime,
    /// Caller's token: a second call with it adopts the first one's instance.
    #[serde(default)]
    pub token: Option<String>,
}

/// A restore of a snapshot into a new instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRestoreRequest {
    /// The snapshot's identifier (or ARN).
    pub snapshot: String,
    /// The new instance's identifier.
    pub new_id: String,
    /// Instance class; the snapshot's when unset.
    #[serde(default)]
    pub instance_class: Option<String>,
    /// Caller's token: a second call with it adopts the first one's instance.
    #[serde(default)]
    pub token: Option<String>,
}

/// One RDS instance as a [`DatabaseTarget`].
#[derive(Debug, Clone)]
pub struct RdsTarget {
    rds: Rds,
    id: String,
}

impl RdsTarget {
    /// Instance `id` through `rds`.
    #[must_use]
    pub fn new(rds: Rds, id: impl Into<String>) -> Self {
        Self { rds, id: id.into() }
    }
}

fn health(db: DbInstance) -> Health {
    Health {
        name: db.id.clone(),
        available: db.is_available(),
        role: if db.replication_source.is_some() {
            Role::Replica
        } else {
            Role::Primary
        },
        writable: db.is_available() && db.replication_source.is_none(),
        status: db.status,
        endpoint: db.endpoint,
        replicating_from: db.replication_source,
        // DescribeDBInstances does not report lag; CloudWatch's ReplicaLag does.
        replication_lag: None,
        position: None,
    }
}

#[async_trait]
impl DatabaseTarget for RdsTarget {
    fn name(&self) -> String {
        format!("rds:{}/{}", self.rds.region, self.id)
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::Health,
            Capability::Promote,
            Capability::PointInTimeRestore,
            Capability::Backup,
        ]
    }

    async fn health(&self) -> Result<Health> {
        self.rds.describe(&self.id).await.map(health)
    }

    async fn promote(&self, wait: &Wait) -> Result<Health> {
        self.rds.promote(&self.id, wait).await.map(health)
    }

    async fn restore_to_point_in_time(
        &self,
        target: &PointInTime,
        new_name: &str,
        wait: &Wait,
    ) -> Result<Health> {
        let request = PitrRequest {
            source: self.id.clone(),
            new_id: new_name.to_owned(),
            target: target.clone(),
            token: None,
        };
        self.rds
            .restore_to_point_in_time(&request, wait)
            .await
            .map(health)
    }
}
