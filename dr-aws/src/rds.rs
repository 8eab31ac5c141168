//! RDS: promote read replicas, create cross-region replicas, restore to a point in time,
//! snapshots, status and endpoints. Every change waits, bounded by a [`Wait`], until the
//! instance is usable, reporting each state it passes through.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::Client;
use dr_core::target::{Capability, DatabaseTarget, Health, PitrTarget, Role};
use dr_core::wait::Wait;
use dr_core::{err, ErrorKind, Result};
use jiff::Timestamp;
use serde::Serialize;

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
    /// How long a promoted instance may stay `available` while still naming its source
    /// before it counts as promoted (RDS clears the link within seconds; moto never does).
    pub settle: Duration,
}

impl Rds {
    /// Connects with `aws` (region, endpoint, credentials, deadlines).
    pub async fn connect(aws: &AwsConfig) -> Result<Self> {
        let sdk = aws.load().await?;
        let region = sdk.region().map(ToString::to_string).unwrap_or_default();
        Ok(Self {
            client: Client::new(&sdk),
            region,
            settle: Duration::from_mins(1),
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
                let mapped = classify(format!("describing RDS instance {id} in {}", self.region), &e);
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

    async fn exists(&self, id: &str) -> Result<bool> {
        match self.describe(id).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
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
            .map_err(|e| classify(format!("promoting RDS instance {id}"), &e))?;
        let started = std::time::Instant::now();
        wait.until(&format!("promoting RDS instance {id}"), || async {
            let db = self.describe(id).await?;
            if TERMINAL.contains(&db.status.as_str()) {
                return Err(err!(External, "RDS instance {id} entered state {:?} while being promoted", db.status));
            }
            let linked = db.replication_source.is_some();
            if db.is_available() && linked && started.elapsed() >= self.settle {
                tracing::warn!("RDS instance {id} is available but still names its source after {} s; taking it as promoted", self.settle.as_secs());
                return Ok((Some(db), "available".to_owned()));
            }
            let state = if linked { format!("{} (still a replica)", db.status) } else { db.status.clone() };
            Ok(((db.is_available() && !linked).then_some(db), state))
        })
        .await
    }

    /// Creates read replica `id` in this client's region of `source` (an ARN for a
    /// source in another region) and waits until it is available.
    pub async fn create_read_replica(
        &self,
        source: &str,
        id: &str,
        instance_class: Option<&str>,
        wait: &Wait,
    ) -> Result<DbInstance> {
        self.refuse_existing(id).await?;
        self.client
            .create_db_instance_read_replica()
            .db_instance_identifier(id)
            .source_db_instance_identifier(source)
            .set_db_instance_class(instance_class.map(str::to_owned))
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!("creating read replica {id} of {source} in {}", self.region),
                    &e,
                )
            })?;
        self.wait_available(id, wait).await
    }

    /// Restores `source` to `target` into a new instance `new_id` and waits for it.
    pub async fn restore_to_point_in_time(
        &self,
        source: &str,
        new_id: &str,
        target: PitrTarget,
        wait: &Wait,
    ) -> Result<DbInstance> {
        if let PitrTarget::Time(t) = target {
            if t > Timestamp::now() {
                return Err(err!(
                    InvalidInput,
                    "restore time {t} is in the future; give a past time or --latest"
                ));
            }
            let src = self.describe(source).await?;
            if let Some(latest) = src.latest_restorable_time {
                if t > latest {
                    return Err(err!(InvalidInput, "restore time {t} is after the latest restorable time of {source} ({latest}); give an earlier time or --latest"));
                }
            }
        }
        self.refuse_existing(new_id).await?;
        let mut req = self
            .client
            .restore_db_instance_to_point_in_time()
            .source_db_instance_identifier(source)
            .target_db_instance_identifier(new_id);
        req = match target {
            PitrTarget::Latest => req.use_latest_restorable_time(true),
            PitrTarget::Time(t) => req.restore_time(from_timestamp(t)),
        };
        req.send()
            .await
            .map_err(|e| classify(format!("restoring {source} to {target} as {new_id}"), &e))?;
        self.wait_available(new_id, wait).await
    }

    async fn refuse_existing(&self, id: &str) -> Result<()> {
        if self.exists(id).await? {
            return Err(err!(
                AlreadyExists,
                "RDS instance {id} already exists in {}; pick another name, or delete it first if it is left over from an earlier attempt",
                self.region
            ));
        }
        Ok(())
    }

    /// Takes snapshot `snapshot_id` of instance `id` and waits until it is available.
    pub async fn create_snapshot(
        &self,
        id: &str,
        snapshot_id: &str,
        wait: &Wait,
    ) -> Result<DbSnapshot> {
        self.client
            .create_db_snapshot()
            .db_instance_identifier(id)
            .db_snapshot_identifier(snapshot_id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!("snapshotting RDS instance {id} as {snapshot_id}"),
                    &e,
                )
            })?;
        self.wait_snapshot(snapshot_id, wait).await
    }

    /// Snapshots of instance `id`, or all of them, oldest first.
    pub async fn snapshots(&self, id: Option<&str>) -> Result<Vec<DbSnapshot>> {
        let out = self
            .client
            .describe_db_snapshots()
            .set_db_instance_identifier(id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify(format!("listing RDS snapshots in {}", self.region), &e))?;
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

    async fn wait_snapshot(&self, snapshot_id: &str, wait: &Wait) -> Result<DbSnapshot> {
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
                    &e,
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
        self.refuse_existing(new_id).await?;
        self.client
            .restore_db_instance_from_db_snapshot()
            .db_snapshot_identifier(snapshot_id)
            .db_instance_identifier(new_id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!("restoring RDS snapshot {snapshot_id} as {new_id}"),
                    &e,
                )
            })?;
        self.wait_available(new_id, wait).await
    }
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
        status: db.status,
        endpoint: db.endpoint,
        replicating_from: db.replication_source,
        // DescribeDBInstances does not report lag; CloudWatch's ReplicaLag does.
        replication_lag: None,
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
        target: PitrTarget,
        new_name: &str,
        wait: &Wait,
    ) -> Result<Health> {
        self.rds
            .restore_to_point_in_time(&self.id, new_name, target, wait)
            .await
            .map(health)
    }
}
