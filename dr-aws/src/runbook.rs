//! The AWS adapter's runbook actions (`rds.*`, `route53.*`) and its target kinds `rds`
//! and `route53`. What the actions create is tagged (RDS) or referenced (Route 53 health
//! checks) with the run id, so a resumed run adopts it instead of creating it twice.
//! Every action and target takes `region`, `endpoint` and `profile`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dr_core::runbook::actions::{restore_call, split_endpoint, SwitchedRoute};
use dr_core::runbook::{
    Beside, Call, Outcome, ParamError, Provides, Registry, StepContext, Target, TypedAction,
    TypedKind, TypedTargetKind,
};
use dr_core::traffic::{Destination, TrafficRouter};
use dr_core::wait::Wait;
use dr_core::Result;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rds::{DbInstance, DbSnapshot, PitrRequest, ReplicaRequest, SnapshotRestoreRequest};
use crate::{AwsConfig, AwsOverrides, HealthCheckSpec, Rds, RdsTarget, Route53, Route53Router};

/// Adds the `rds` and `route53` target kinds and the RDS and Route 53 actions.
pub fn register(r: &mut Registry) {
    r.target_kind(TypedKind(RdsKind))
        .target_kind(TypedKind(Route53Kind))
        .typed(RdsDescribe)
        .typed(RdsWait)
        .typed(RdsPitr)
        .typed(RdsReplica)
        .typed(RdsSnapshot)
        .typed(RdsRestoreSnapshot)
        .typed(HealthCheck)
        .typed(Record::<SetParams>(std::marker::PhantomData))
        .typed(Record::<WeightsParams>(std::marker::PhantomData))
        .typed(S3VerifyReplica)
        .typed(S3CheckBucket)
        .typed(S3Sync)
        .typed(ZoneExport)
        .typed(ZoneImport)
        .typed(SecretGet);
}

struct SecretGet;

#[async_trait]
impl TypedAction for SecretGet {
    type Params = Located<crate::secrets::GetSecretOptions>;
    type Outputs = crate::secrets::SecretRead;
    const NAME: &'static str = "secretsmanager.get";
    const SUMMARY: &'static str = "Reads a secret's value, or one key of a JSON secret, from AWS Secrets Manager as the secret output `value`: the input of a later step (`k8s.secret_set`, `env:` of `exec`), never journaled, printed, planned or notified.";
    const IDEMPOTENT: bool = true;
    const SECRET_OUTPUTS: &'static [&'static str] = &["value"];

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        let sm = crate::secrets::SecretsManager::connect(&AwsConfig::resolve(&p.extra)?).await?;
        let info = sm.describe(&p.options).await?;
        Ok(vec![format!(
            "reads secret {} (version {}{}){}: {} characters, kept in memory only",
            info.name,
            info.version_id,
            if info.stages.is_empty() {
                String::new()
            } else {
                format!(", {}", info.stages.join(", "))
            },
            info.key.map(|k| format!(", key {k}")).unwrap_or_default(),
            info.length
        )])
    }

    async fn run(
        &self,
        _: &StepContext,
        p: Self::Params,
    ) -> Result<Outcome<crate::secrets::SecretRead>> {
        let sm = crate::secrets::SecretsManager::connect(&AwsConfig::resolve(&p.extra)?).await?;
        Ok(Outcome::Done(sm.get(&p.options).await?))
    }
}

/// What `route53.export` stored.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct ZoneStored {
    /// The snapshot's id.
    pub snapshot: String,
    /// Record sets stored.
    pub records: usize,
}

struct ZoneExport;

#[async_trait]
impl TypedAction for ZoneExport {
    type Params = Located<crate::zone::ExportOptions>;
    type Outputs = ZoneStored;
    const NAME: &'static str = "route53.export";
    const SUMMARY: &'static str =
        "Stores every record set of a hosted zone in the run's repository (a `dns` snapshot).";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "exports every record set of zone {} into the repository",
            p.options.zone
        )])
    }

    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<ZoneStored>> {
        let r53 = Route53::connect(&AwsConfig::resolve(&p.extra)?).await?;
        let snap = crate::zone::export_zone(ctx.repository()?, &r53, &p.options).await?;
        let meta: crate::zone::ZoneMetadata =
            serde_json::from_value(snap.metadata.clone()).unwrap_or_default();
        Ok(Outcome::Done(ZoneStored {
            snapshot: snap.id.to_string(),
            records: meta.records,
        }))
    }
}

/// `route53.import`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneImportParams {
    /// `latest` (of `source`, or of the only zone), an id or a unique prefix.
    #[serde(default)]
    pub snapshot: dr_core::repo::SnapshotRef,
    /// With `latest`: the zone as `drkit snapshots` shows it (`route53:example.com.`).
    #[serde(default)]
    pub source: Option<String>,
    /// The zone to restore into (name or id); default the exported zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// Also delete record sets the zone has and the snapshot does not.
    #[serde(default)]
    pub delete: bool,
}

impl ZoneImportParams {
    fn options(&self, dry_run: bool) -> crate::zone::ImportOptions {
        crate::zone::ImportOptions {
            zone: self.zone.clone(),
            delete: self.delete,
            dry_run,
        }
    }
}

struct ZoneImport;

#[async_trait]
impl TypedAction for ZoneImport {
    type Params = Located<ZoneImportParams>;
    type Outputs = crate::zone::ZonePlan;
    const NAME: &'static str = "route53.import";
    const SUMMARY: &'static str = "Restores a `dns` snapshot into its zone or `zone:`: each create, change (and with `delete: true`, delete) in the plan, UPSERTs in batches, INSYNC, read back.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        let Ok(repo) = ctx.repository() else {
            return Ok(vec!["restores a DNS zone snapshot".to_owned()]);
        };
        let r53 = Route53::connect(&AwsConfig::resolve(&p.extra)?).await?;
        let pick = dr_core::repo::Pick {
            snapshot: p.options.snapshot.clone(),
            source: p.options.source.clone(),
            ..dr_core::repo::Pick::default()
        };
        let Ok(snap) = repo.pick(&pick, crate::zone::KIND_DNS, None).await else {
            return Ok(vec![
                "restores the DNS zone snapshot an earlier step takes".to_owned()
            ]);
        };
        let options = p.options.options(true);
        let plan = crate::zone::import_zone(
            repo,
            &r53,
            &snap,
            &options,
            &Wait::new(Duration::from_mins(1)),
        )
        .await?;
        let mut lines = vec![format!(
            "restores zone {} from snapshot {}: {} to create, {} to change, {} to delete, {} unchanged",
            plan.zone,
            snap.id,
            plan.create.len(),
            plan.change.len(),
            plan.delete.len(),
            plan.unchanged
        )];
        for (what, list) in [
            ("create", &plan.create),
            ("change", &plan.change),
            ("delete", &plan.delete),
        ] {
            lines.extend(list.iter().map(|k| format!("  {what} {k}")));
        }
        Ok(lines)
    }

    async fn run(
        &self,
        ctx: &StepContext,
        p: Self::Params,
    ) -> Result<Outcome<crate::zone::ZonePlan>> {
        let repo = ctx.repository()?;
        let r53 = Route53::connect(&AwsConfig::resolve(&p.extra)?).await?;
        let pick = dr_core::repo::Pick {
            snapshot: p.options.snapshot.clone(),
            source: p.options.source.clone(),
            ..dr_core::repo::Pick::default()
        };
        let snap = repo.pick(&pick, crate::zone::KIND_DNS, None).await?;
        let wait = Wait::new(Duration::from_mins(30)).poll(Duration::from_secs(2));
        Ok(Outcome::Done(
            crate::zone::import_zone(repo, &r53, &snap, &p.options.options(false), &wait).await?,
        ))
    }
}

struct S3Sync;

#[async_trait]
impl TypedAction for S3Sync {
    type Params = crate::s3::SyncOptions;
    type Outputs = crate::s3::SyncReport;
    const NAME: &'static str = "s3.sync";
    const SUMMARY: &'static str = "Copies a folder or bucket prefix to a bucket prefix: only what is missing or differs (size, MD5), in parallel; `delete: true` removes what the source lacks.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: crate::s3::SyncOptions) -> Result<Vec<String>> {
        let dry = crate::s3::SyncOptions { dry_run: true, ..p };
        let r = crate::s3::sync(&dry).await?;
        let mut lines = vec![format!(
            "copies {} object(s) ({} bytes) from {} to {}, {} unchanged{}",
            r.copied.count,
            r.copied.bytes,
            r.source,
            r.destination,
            r.unchanged,
            if r.deleted.count > 0 {
                format!(", deletes {}", r.deleted.count)
            } else {
                String::new()
            }
        )];
        lines.extend(r.copied.first.iter().map(|o| format!("  copy {}", o.key)));
        lines.extend(
            r.deleted
                .first
                .iter()
                .map(|o| format!("  delete {}", o.key)),
        );
        Ok(lines)
    }

    async fn run(
        &self,
        _: &StepContext,
        p: crate::s3::SyncOptions,
    ) -> Result<Outcome<crate::s3::SyncReport>> {
        Ok(Outcome::Done(crate::s3::sync(&p).await?))
    }
}

struct S3CheckBucket;

#[async_trait]
impl TypedAction for S3CheckBucket {
    type Params = crate::s3::CheckBucketOptions;
    type Outputs = crate::s3::BucketReport;
    const NAME: &'static str = "s3.check_bucket";
    const SUMMARY: &'static str = "Fails unless `bucket:` has versioning enabled, replication enabled to `replicates_to:` and (with `lifecycle: true`) a lifecycle rule, read back.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: crate::s3::CheckBucketOptions) -> Result<Vec<String>> {
        // Read-only: the plan says now what the step will find.
        let r = crate::s3::check_bucket(&p).await?;
        if !r.ok {
            return Err(dr_core::err!(
                Conflict,
                "{}: {}",
                r.bucket,
                r.problems.join("; ")
            ));
        }
        Ok(vec![format!(
            "checks {}: versioning {}, {} replication rule(s), {} lifecycle rule(s) now",
            r.bucket,
            r.versioning,
            r.replication.len(),
            r.lifecycle_rules.len()
        )])
    }

    async fn run(
        &self,
        _: &StepContext,
        p: crate::s3::CheckBucketOptions,
    ) -> Result<Outcome<crate::s3::BucketReport>> {
        let r = crate::s3::check_bucket(&p).await?;
        if !r.ok {
            return Err(dr_core::err!(
                Conflict,
                "{}: {}",
                r.bucket,
                r.problems.join("; ")
            ));
        }
        Ok(Outcome::Done(r))
    }
}

struct S3VerifyReplica;

#[async_trait]
impl TypedAction for S3VerifyReplica {
    type Params = crate::s3::VerifyReplicaOptions;
    type Outputs = crate::s3::ReplicaReport;
    const NAME: &'static str = "s3.verify_replica";
    const SUMMARY: &'static str = "Fails unless every object of `source:` is in `replica:` with the same size and ETag; names what is missing, differs or is extra, and how far behind the replica is.";
    const IDEMPOTENT: bool = true;

    async fn plan(
        &self,
        _: &StepContext,
        p: crate::s3::VerifyReplicaOptions,
    ) -> Result<Vec<String>> {
        Ok(vec![format!(
            "compares {} with its replica {} (reads only)",
            p.source, p.replica
        )])
    }

    async fn run(
        &self,
        _: &StepContext,
        p: crate::s3::VerifyReplicaOptions,
    ) -> Result<Outcome<crate::s3::ReplicaReport>> {
        let r = crate::s3::verify_replica(&p).await?;
        if !r.in_sync {
            return Err(dr_core::err!(
                Conflict,
                "{}",
                crate::s3::replica_summary(&r)
            ));
        }
        Ok(Outcome::Done(r))
    }
}

/// A request `R` with where to send it: `region`, `endpoint` and `profile` beside the
/// request's own fields, each refused by name when misspelt.
pub type Located<R> = Beside<AwsOverrides, R>;

async fn rds<R>(p: &Located<R>) -> Result<Rds> {
    Rds::connect(&AwsConfig::resolve(&p.extra)?).await
}

/// An instance and how long to wait.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceParams {
    /// The instance identifier.
    pub instance: String,
    /// Longest wait (default 30m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

fn waits(t: Option<Duration>) -> Wait {
    Wait::new(t.unwrap_or(Duration::from_mins(30))).poll(Duration::from_secs(5))
}

/// An RDS instance as a step's outputs: its endpoint also as host and port.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Instance {
    /// Identifier.
    pub id: String,
    /// RDS status (`available`, …).
    pub status: String,
    /// `host:port` clients connect to, once assigned.
    pub endpoint: Option<String>,
    /// The endpoint's host (what `DB_HOST` takes).
    pub host: Option<String>,
    /// The endpoint's port.
    pub port: Option<u16>,
    /// What it replicates from, for a read replica.
    pub replication_source: Option<String>,
    /// The rest of what RDS says (`arn`, `engine`, `read_replicas`,
    /// `latest_restorable_time`, `region`).
    #[serde(flatten)]
    pub more: Map<String, Value>,
}

impl From<&DbInstance> for Instance {
    fn from(db: &DbInstance) -> Self {
        let (host, port) = db
            .endpoint
            .as_deref()
            .map(split_endpoint)
            .unwrap_or_default();
        let mut more = match serde_json::to_value(db) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for k in ["id", "status", "endpoint", "replication_source"] {
            more.remove(k);
        }
        Self {
            id: db.id.clone(),
            status: db.status.clone(),
            endpoint: db.endpoint.clone(),
            host,
            port,
            replication_source: db.replication_source.clone(),
            more,
        }
    }
}

struct RdsDescribe;

#[async_trait]
impl TypedAction for RdsDescribe {
    type Params = Located<InstanceParams>;
    type Outputs = Instance;
    const NAME: &'static str = "rds.describe";
    const SUMMARY: &'static str =
        "Status, endpoint (also as host and port) and replication source of an RDS instance.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!("reads RDS instance {}", p.options.instance)])
    }
    async fn run(&self, _: &StepContext, p: Self::Params) -> Result<Outcome<Instance>> {
        let db = rds(&p).await?.describe(&p.options.instance).await?;
        Ok(Outcome::Done(Instance::from(&db)))
    }
}

struct RdsWait;

#[async_trait]
impl TypedAction for RdsWait {
    type Params = Located<InstanceParams>;
    type Outputs = Instance;
    const NAME: &'static str = "rds.wait";
    const SUMMARY: &'static str =
        "Waits until an RDS instance is available; fails at once on a state it never leaves by itself.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "waits until RDS instance {} is available",
            p.options.instance
        )])
    }
    async fn run(&self, _: &StepContext, p: Self::Params) -> Result<Outcome<Instance>> {
        let db = rds(&p)
            .await?
            .wait_available(&p.options.instance, &waits(p.options.timeout))
            .await?;
        Ok(Outcome::Done(Instance::from(&db)))
    }
}

struct RdsPitr;

#[async_trait]
impl TypedAction for RdsPitr {
    type Params = Located<PitrRequest>;
    type Outputs = Instance;
    const NAME: &'static str = "rds.pitr";
    const SUMMARY: &'static str = "Restores an RDS instance to a point in time (`latest` or `{time: …}`) into a new instance and waits; tagged with the run id, so a resumed run adopts what it created.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        let r = &p.options;
        Ok(vec![format!(
            "restores {} to {:?} into the new instance {}",
            r.source, r.target, r.new_id
        )])
    }
    async fn run(&self, ctx: &StepContext, mut p: Self::Params) -> Result<Outcome<Instance>> {
        p.options.token.get_or_insert_with(|| ctx.run_id.clone());
        let db = rds(&p)
            .await?
            .restore_to_point_in_time(&p.options, &waits(None))
            .await?;
        Ok(Outcome::Done(Instance::from(&db)))
    }
}

struct RdsReplica;

#[async_trait]
impl TypedAction for RdsReplica {
    type Params = Located<ReplicaRequest>;
    type Outputs = Instance;
    const NAME: &'static str = "rds.replica";
    const SUMMARY: &'static str = "Creates a read replica (of an ARN across regions) and waits; tagged with the run id, so a resumed run adopts it.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "creates read replica {} of {}",
            p.options.id, p.options.source
        )])
    }
    async fn run(&self, ctx: &StepContext, mut p: Self::Params) -> Result<Outcome<Instance>> {
        p.options.token.get_or_insert_with(|| ctx.run_id.clone());
        let db = rds(&p)
            .await?
            .create_read_replica(&p.options, &waits(None))
            .await?;
        Ok(Outcome::Done(Instance::from(&db)))
    }
}

/// `rds.snapshot`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotParams {
    /// The instance.
    pub instance: String,
    /// The new snapshot's identifier.
    pub snapshot: String,
    /// Longest wait (default 30m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

/// An RDS snapshot as a step's outputs.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    /// Identifier.
    pub id: String,
    /// `available`.
    pub status: String,
    /// Its ARN (what a cross-region copy names).
    pub arn: Option<String>,
    /// The rest of what RDS says.
    #[serde(flatten)]
    pub more: Map<String, Value>,
}

impl From<&DbSnapshot> for Snapshot {
    fn from(s: &DbSnapshot) -> Self {
        let mut more = match serde_json::to_value(s) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for k in ["id", "status", "arn"] {
            more.remove(k);
        }
        Self {
            id: s.id.clone(),
            status: s.status.clone(),
            arn: s.arn.clone(),
            more,
        }
    }
}

struct RdsSnapshot;

#[async_trait]
impl TypedAction for RdsSnapshot {
    type Params = Located<SnapshotParams>;
    type Outputs = Snapshot;
    const NAME: &'static str = "rds.snapshot";
    const SUMMARY: &'static str = "Takes a snapshot of an instance and waits until it is available; tagged with the run id, so a resumed run adopts it.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "snapshots RDS instance {} as {}",
            p.options.instance, p.options.snapshot
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<Snapshot>> {
        let client = rds(&p).await?;
        let r = &p.options;
        client
            .start_snapshot(&r.instance, &r.snapshot, Some(&ctx.run_id))
            .await?;
        let snap = client.wait_snapshot(&r.snapshot, &waits(r.timeout)).await?;
        Ok(Outcome::Done(Snapshot::from(&snap)))
    }
}

/// `rds.restore_snapshot`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRestoreParams {
    /// The snapshot's identifier or ARN.
    pub snapshot: String,
    /// The new instance.
    pub new_id: String,
    /// Its class (the snapshot's when unset).
    #[serde(default)]
    pub instance_class: Option<String>,
    /// Longest wait (default 30m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

struct RdsRestoreSnapshot;

#[async_trait]
impl TypedAction for RdsRestoreSnapshot {
    type Params = Located<SnapshotRestoreParams>;
    type Outputs = Instance;
    const NAME: &'static str = "rds.restore_snapshot";
    const SUMMARY: &'static str = "Restores an RDS snapshot into a new instance and waits; tagged with the run id, so a resumed run adopts it.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "restores snapshot {} into the new instance {}",
            p.options.snapshot, p.options.new_id
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<Instance>> {
        let client = rds(&p).await?;
        let r = p.options;
        let request = SnapshotRestoreRequest {
            snapshot: r.snapshot,
            new_id: r.new_id,
            instance_class: r.instance_class,
            token: Some(ctx.run_id.clone()),
        };
        client.start_snapshot_restore(&request).await?;
        let db = client
            .wait_available(&request.new_id, &waits(r.timeout))
            .await?;
        Ok(Outcome::Done(Instance::from(&db)))
    }
}

/// A health check made (or adopted).
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct HealthCheckMade {
    /// The health check's id.
    pub id: String,
    /// Made by an earlier attempt of this step.
    pub adopted: bool,
}

struct HealthCheck;

#[async_trait]
impl TypedAction for HealthCheck {
    type Params = Located<HealthCheckSpec>;
    type Outputs = HealthCheckMade;
    const NAME: &'static str = "route53.health_check";
    const SUMMARY: &'static str = "Creates a Route 53 health check (HTTP, HTTPS or TCP) once per run and step: a resumed run adopts the one it made.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        let s = &p.options;
        Ok(vec![format!(
            "creates a {} health check of {}:{}",
            s.kind,
            s.fqdn.as_deref().or(s.ip.as_deref()).unwrap_or("?"),
            s.port
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<HealthCheckMade>> {
        let r53 = Route53::connect(&AwsConfig::resolve(&p.extra)?).await?;
        // Route 53 caller references are at most 64 characters.
        let reference: String = format!("drkit-{}-{}", ctx.run_id, ctx.step)
            .chars()
            .take(64)
            .collect();
        let made = r53.ensure_health_check(&p.options, &reference).await?;
        Ok(Outcome::Done(HealthCheckMade {
            id: made.resource,
            adopted: made.adopted,
        }))
    }
}

/// `route53.set`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetParams {
    /// A `route53` target (a simple record).
    pub target: String,
    /// Addresses or host names.
    pub values: Vec<String>,
    /// Longest wait until the change is live (default 5m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

/// `route53.weights`' parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightsParams {
    /// A `route53` target (a weighted set).
    pub target: String,
    /// Weights by set id (`{use1: 0, usw2: 100}`).
    pub weights: BTreeMap<String, i64>,
    /// Longest wait until the change is live (default 5m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

/// A change of a `route53` target whose shape the action's name says: `route53.set`
/// (values) and `route53.weights` (weights), each `traffic.switch` narrowed to Route 53.
pub trait RecordChange: DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The action's name.
    const NAME: &'static str;
    /// Its summary.
    const SUMMARY: &'static str;
    /// The `route53` target.
    fn target(&self) -> &str;
    /// Where the record then points; a refusal of an empty change.
    fn destination(&self) -> std::result::Result<Destination, ParamError>;
    /// Longest wait until the change is live.
    fn timeout(&self) -> Option<Duration>;
}

impl RecordChange for SetParams {
    const NAME: &'static str = "route53.set";
    const SUMMARY: &'static str = "Points a simple record (a `route53` target) at `values`, waits until live and reads it back; compensated by traffic.restore.";
    fn target(&self) -> &str {
        &self.target
    }
    fn destination(&self) -> std::result::Result<Destination, ParamError> {
        if self.values.is_empty() {
            return Err(ParamError::at(
                "values",
                "is empty; give the addresses or host names",
            ));
        }
        Ok(Destination::Values(self.values.clone()))
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

impl RecordChange for WeightsParams {
    const NAME: &'static str = "route53.weights";
    const SUMMARY: &'static str = "Sets the weights of a weighted set (a `route53` target) by set id, waits until live and reads it back; compensated by traffic.restore.";
    fn target(&self) -> &str {
        &self.target
    }
    fn destination(&self) -> std::result::Result<Destination, ParamError> {
        if self.weights.is_empty() {
            return Err(ParamError::at(
                "weights",
                "is empty; give a weight per set id",
            ));
        }
        Ok(Destination::Weights(self.weights.clone()))
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// The action of a [`RecordChange`].
struct Record<P>(std::marker::PhantomData<fn() -> P>);

impl<P> Record<P> {
    fn router(ctx: &StepContext, target: &str) -> Result<Arc<dyn TrafficRouter>> {
        let r = ctx.router(target)?;
        if !r.name().starts_with("route53:") {
            return Err(dr_core::err!(
                InvalidInput,
                "step {:?}: this action needs a target of kind route53; {target:?} is {}; use traffic.switch for other routers",
                ctx.step,
                r.name()
            ));
        }
        Ok(r)
    }
}

fn destination<P: RecordChange>(p: &P) -> Result<Destination> {
    p.destination()
        .map_err(|e| dr_core::err!(InvalidInput, "{}: with.{e}", P::NAME))
}

#[async_trait]
impl<P: RecordChange> TypedAction for Record<P> {
    type Params = P;
    type Outputs = SwitchedRoute;
    const NAME: &'static str = P::NAME;
    const SUMMARY: &'static str = P::SUMMARY;
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(Provides::Router);

    fn check(&self, p: &P) -> std::result::Result<(), ParamError> {
        p.destination().map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, p: P) -> Result<Vec<String>> {
        let to = destination(&p)?;
        let r = Self::router(ctx, p.target())?;
        Ok(r.plan(&to).await?.lines(&r.name(), &to))
    }
    async fn run(&self, ctx: &StepContext, p: P) -> Result<Outcome<SwitchedRoute>> {
        let to = destination(&p)?;
        let r = Self::router(ctx, p.target())?;
        let wait =
            Wait::new(p.timeout().unwrap_or(Duration::from_mins(5))).poll(Duration::from_secs(2));
        Ok(Outcome::Done(r.switch(&to, &wait).await?.into()))
    }
    fn undo(&self, p: &P, out: &SwitchedRoute) -> Option<Call> {
        restore_call(p.target(), out)
    }
}

/// The instance of an `rds` target.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RdsInstance {
    /// The instance identifier.
    pub instance: String,
}

struct RdsKind;

#[async_trait]
impl TypedTargetKind for RdsKind {
    type Fields = Located<RdsInstance>;
    const KIND: &'static str = "rds";
    const PROVIDES: Provides = Provides::Database;

    async fn build(&self, _: &str, f: Self::Fields) -> Result<Target> {
        let rds = rds(&f).await?;
        Ok(Target::Database(Arc::new(RdsTarget::new(
            rds,
            f.options.instance,
        ))))
    }
}

/// The record of a `route53` target.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordName {
    /// Hosted zone name or id.
    pub zone: String,
    /// Record name.
    pub name: String,
    /// Record type (default CNAME).
    #[serde(default, rename = "type")]
    pub record_type: Option<String>,
}

struct Route53Kind;

#[async_trait]
impl TypedTargetKind for Route53Kind {
    type Fields = Located<RecordName>;
    const KIND: &'static str = "route53";
    const PROVIDES: Provides = Provides::Router;

    async fn build(&self, _: &str, f: Self::Fields) -> Result<Target> {
        let r53 = Route53::connect(&AwsConfig::resolve(&f.extra)?).await?;
        let r = f.options;
        let rtype = r.record_type.unwrap_or_else(|| "CNAME".into());
        let router = Route53Router::new(r53, &r.zone, &r.name, &rtype).await?;
        Ok(Target::Router(Arc::new(router)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_misspelt_field_of_an_rds_request_step_is_refused_by_name() {
        let ok: Located<PitrRequest> = serde_json::from_value(
            json!({"source": "shop", "new_id": "shop-pitr", "target": "latest", "region": "us-west-2"}),
        )
        .unwrap();
        assert_eq!(
            (ok.options.source.as_str(), ok.extra.region.as_deref()),
            ("shop", Some("us-west-2"))
        );
        let e = serde_json::from_value::<Located<PitrRequest>>(
            json!({"source": "shop", "new_id": "x", "target": "latest", "regoin": "us-west-2"}),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("unknown field `regoin`"), "{e}");
        let e = serde_json::from_value::<Located<ReplicaRequest>>(
            json!({"source": "shop", "id": "shop-replica", "endpiont": "http://127.0.0.1:5000"}),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("unknown field `endpiont`"), "{e}");
    }
}
