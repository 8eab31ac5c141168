//! The Kubernetes adapter's runbook actions (`k8s.*`) and its target kinds
//! `kubernetes` and `kubernetes_ingress`: each action is `target:` (a `kubernetes`
//! target) beside the options of the [`Kubernetes`] operation the CLI and Python call;
//! each mutating one plans from live state and undoes itself when its run compensates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dr_core::runbook::{
    Beside, Call, Outcome, ParamError, Provides, Registry, StepContext, Target, TypedAction,
    TypedKind, TypedTargetKind,
};
use dr_core::Result;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    ApplyOptions, ApplyOutcome, ConfigMapChange, ConfigMapOptions, ConnectOptions, EnvChange,
    EnvOptions, ExportOptions, ExportOutcome, Kubernetes, MaintenanceOptions, MaintenanceOutcome,
    NamespaceOutcome, PodLogs, PodReplaced, RestartOutcome, ScaleOptions, ScaleOutcome,
    SecretChange, SecretOptions, UndoOutcome, WaitOutcome, Workload,
};

const WHAT: &str = "a Kubernetes cluster (kind: kubernetes)";

/// What the `k8s.*` actions act on: a `kubernetes` target.
const CLUSTER: Provides = Provides::Adapter("Kubernetes");

/// Adds the `kubernetes` and `kubernetes_ingress` target kinds and the `k8s.*` actions.
pub fn register(r: &mut Registry) {
    r.target_kind(TypedKind(KubernetesKind))
        .target_kind(TypedKind(IngressKind))
        .typed(Export)
        .typed(Apply)
        .typed(Scale)
        .typed(WaitReady)
        .typed(RolloutStatus)
        .typed(RolloutUndo)
        .typed(Restart)
        .typed(SetEnv)
        .typed(SecretSet)
        .typed(SecretRotate)
        .typed(SecretRestore)
        .typed(NamespaceCreate)
        .typed(NamespaceDelete)
        .typed(WaitAvailable)
        .typed(PodDelete)
        .typed(Logs)
        .typed(Maintenance)
        .typed(ConfigMapSet);
    crate::drill::register(r);
}

/// The cluster a step acts on.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnTarget {
    /// A target of kind kubernetes.
    pub target: String,
}

/// `target:` beside the options `O` of one operation.
pub type OnCluster<O> = Beside<OnTarget, O>;

fn cluster<O>(ctx: &StepContext, p: &OnCluster<O>) -> Result<Arc<Kubernetes>> {
    ctx.adapter::<Kubernetes>(&p.extra.target, WHAT)
}

/// The compensation `action` with `with`, on the same target.
fn call(action: &str, target: &str, mut with: serde_json::Value) -> Call {
    with["target"] = json!(target);
    Call {
        action: action.into(),
        with,
    }
}

fn five_minutes(t: Option<Duration>) -> Duration {
    t.unwrap_or(Duration::from_mins(5))
}

struct KubernetesKind;

#[async_trait]
impl TypedTargetKind for KubernetesKind {
    type Fields = ConnectOptions;
    const KIND: &'static str = "kubernetes";
    const PROVIDES: Provides = CLUSTER;

    async fn build(&self, _: &str, options: ConnectOptions) -> Result<Target> {
        let k8s = Kubernetes::connect(&options).await?;
        Ok(Target::Adapter {
            name: format!("kubernetes context {}", k8s.context()),
            value: Arc::new(k8s),
        })
    }
}

/// How a `kubernetes_ingress` target reaches its cluster.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterFields {
    /// kubeconfig context.
    #[serde(default)]
    pub context: Option<String>,
    /// kubeconfig file.
    #[serde(default)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Use the pod's service account.
    #[serde(default)]
    pub in_cluster: bool,
}

/// A `kubernetes_ingress` target's fields: the Ingress and its maintenance Service,
/// beside how to reach the cluster.
pub type IngressFields = Beside<ClusterFields, MaintenanceFields>;

/// An Ingress whose maintenance mode `traffic.switch` turns on (`{set: maintenance}`)
/// and off (`{set: normal}`).
struct IngressKind;

#[async_trait]
impl TypedTargetKind for IngressKind {
    type Fields = IngressFields;
    const KIND: &'static str = "kubernetes_ingress";
    const PROVIDES: Provides = Provides::Router;

    async fn build(&self, _: &str, f: IngressFields) -> Result<Target> {
        let k8s = Kubernetes::connect(&ConnectOptions {
            kubeconfig: f.extra.kubeconfig,
            context: f.extra.context,
            namespace: f.options.namespace.clone(),
            in_cluster: f.extra.in_cluster,
        })
        .await?;
        let options = f.options.options();
        Ok(Target::Router(Arc::new(crate::MaintenanceRouter::new(
            k8s, options,
        ))))
    }
}

struct Export;

#[async_trait]
impl TypedAction for Export {
    type Params = OnCluster<ExportOptions>;
    type Outputs = ExportOutcome;
    const NAME: &'static str = "k8s.export";
    const SUMMARY: &'static str = "Exports a namespace (Deployments, StatefulSets, DaemonSets, Services, ConfigMaps, Secrets, Ingresses, CronJobs, ServiceAccounts, RBAC, PVC specs) into the run's repository as a k8s snapshot: clean manifests, Secrets only encrypted.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "exports namespace {} into the repository",
            p.options.namespace.as_deref().unwrap_or("of the target")
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<ExportOutcome>> {
        let k = cluster(ctx, &p)?;
        Ok(Outcome::Done(
            k.export(ctx.repository()?, &p.options).await?,
        ))
    }
}

struct Apply;

#[async_trait]
impl TypedAction for Apply {
    type Params = OnCluster<ApplyOptions>;
    type Outputs = ApplyOutcome;
    const NAME: &'static str = "k8s.apply";
    const SUMMARY: &'static str = "Applies manifest `files:` (files or folders, as kubectl apply -f) or a k8s snapshot of the run's repository (latest: the newest export of `source`, or of the one namespace exported) — all of it, or the objects `kinds:` and `selector:` pick — into the target cluster with server-side apply as drkit, what others need first, namespaces renamed by namespace_map; every kind and namespace checked before anything is applied; plan shows each object's diff against what is live.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    fn check(&self, p: &Self::Params) -> std::result::Result<(), ParamError> {
        if p.options.files.as_ref().is_some_and(Vec::is_empty) {
            return Err(ParamError::at(
                "files",
                "is empty: give manifest files or folders, or leave it out to apply a snapshot",
            ));
        }
        if p.options.files.is_some() && (p.options.snapshot.is_some() || p.options.source.is_some())
        {
            return Err(ParamError::at(
                "files",
                "applies manifests from files; a snapshot (snapshot, source) is the other way: give one of them",
            ));
        }
        if let Some(s) = &p.options.selector {
            if let Err(e) = crate::manifests::parse_selector(s) {
                return Err(ParamError::at("selector", e.message()));
            }
        }
        Ok(())
    }

    async fn plan(&self, ctx: &StepContext, mut p: Self::Params) -> Result<Vec<String>> {
        let k = cluster(ctx, &p)?;
        let repo = ctx.repository().ok();
        if repo.is_none() && p.options.files.is_none() {
            return Ok(vec![
                "applies a namespace snapshot of the run's repository".into()
            ]);
        }
        // A step that is a dry run itself says so on every line.
        let only = if p.options.dry_run { "(dry run) " } else { "" };
        p.options.dry_run = true;
        let dry = k.apply(repo, &p.options).await?;
        Ok(dry
            .objects
            .iter()
            .map(|a| {
                let what = if a.namespace.is_empty() {
                    format!("{} {}: {}", a.kind, a.name, a.action)
                } else {
                    format!("{} {}/{}: {}", a.kind, a.namespace, a.name, a.action)
                };
                if a.diff.is_empty() {
                    format!("{only}{what}")
                } else {
                    format!("{only}{what} ({})", a.diff.join("; "))
                }
            })
            .collect())
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<ApplyOutcome>> {
        let k = cluster(ctx, &p)?;
        let repo = if p.options.files.is_none() {
            Some(ctx.repository()?)
        } else {
            None
        };
        Ok(Outcome::Done(k.apply(repo, &p.options).await?))
    }
}

struct Scale;

#[async_trait]
impl TypedAction for Scale {
    type Params = OnCluster<ScaleOptions>;
    type Outputs = ScaleOutcome;
    const NAME: &'static str = "k8s.scale";
    const SUMMARY: &'static str = "Scales a Deployment or StatefulSet (compare-and-swap on the /scale subresource) and, with wait, waits until its replicas are ready or its pods are gone; compensated by scaling back to the previous count.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![cluster(ctx, &p)?
            .plan_scale(&p.options)
            .await?
            .to_string()])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<ScaleOutcome>> {
        Ok(Outcome::Done(cluster(ctx, &p)?.scale(&p.options).await?))
    }
    fn undo(&self, p: &Self::Params, out: &ScaleOutcome) -> Option<Call> {
        Some(call(
            Self::NAME,
            &p.extra.target,
            json!({
                "workload": p.options.workload.to_string(), "namespace": out.namespace,
                "replicas": out.previous, "wait": p.options.wait,
            }),
        ))
    }
}

/// A workload and how long to wait.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadParams {
    /// `deployment/NAME` or `statefulset/NAME`.
    pub workload: Workload,
    /// Else the target's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Longest wait (default 5m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

struct WaitReady;

#[async_trait]
impl TypedAction for WaitReady {
    type Params = OnCluster<WorkloadParams>;
    type Outputs = WaitOutcome;
    const NAME: &'static str = "k8s.wait_ready";
    const SUMMARY: &'static str = "Waits until a Deployment or StatefulSet has every replica updated, ready and available (watching it, no polling); fails at the timeout saying what it still waits for.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!("waits until {} is ready", p.options.workload)])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<WaitOutcome>> {
        let o = &p.options;
        Ok(Outcome::Done(
            cluster(ctx, &p)?
                .wait_ready(&o.workload, o.namespace.as_deref(), five_minutes(o.timeout))
                .await?,
        ))
    }
}

struct RolloutStatus;

#[async_trait]
impl TypedAction for RolloutStatus {
    type Params = OnCluster<WorkloadParams>;
    type Outputs = WaitOutcome;
    const NAME: &'static str = "k8s.rollout_status";
    const SUMMARY: &'static str = "kubectl rollout status: waits until the rollout of a Deployment or StatefulSet is done (the same wait as k8s.wait_ready).";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "waits until the rollout of {} is done",
            p.options.workload
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<WaitOutcome>> {
        WaitReady.run(ctx, p).await
    }
}

/// `k8s.rollout_undo`'s options.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoParams {
    /// `deployment/NAME` or `statefulset/NAME`.
    pub workload: Workload,
    /// Else the target's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Else the revision before the current one.
    #[serde(default)]
    pub to_revision: Option<i64>,
}

struct RolloutUndo;

#[async_trait]
impl TypedAction for RolloutUndo {
    type Params = OnCluster<UndoParams>;
    type Outputs = UndoOutcome;
    const NAME: &'static str = "k8s.rollout_undo";
    const SUMMARY: &'static str = "Rolls a Deployment or StatefulSet back to the previous revision, or to_revision (found as kubectl does); compensated by rolling forward to the revision it left.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        let o = &p.options;
        Ok(vec![cluster(ctx, &p)?
            .plan_rollout_undo(&o.workload, o.namespace.as_deref(), o.to_revision)
            .await?
            .to_string()])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<UndoOutcome>> {
        let o = &p.options;
        Ok(Outcome::Done(
            cluster(ctx, &p)?
                .rollout_undo(&o.workload, o.namespace.as_deref(), o.to_revision)
                .await?,
        ))
    }
    fn undo(&self, p: &Self::Params, out: &UndoOutcome) -> Option<Call> {
        Some(call(
            Self::NAME,
            &p.extra.target,
            json!({"workload": p.options.workload.to_string(), "namespace": out.namespace, "to_revision": out.from_revision}),
        ))
    }
}

/// A workload.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartParams {
    /// `deployment/NAME` or `statefulset/NAME`.
    pub workload: Workload,
    /// Else the target's.
    #[serde(default)]
    pub namespace: Option<String>,
}

struct Restart;

#[async_trait]
impl TypedAction for Restart {
    type Params = OnCluster<RestartParams>;
    type Outputs = RestartOutcome;
    const NAME: &'static str = "k8s.restart";
    const SUMMARY: &'static str = "kubectl rollout restart: new pods for a Deployment or StatefulSet (the restartedAt annotation on its template).";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!("restarts the pods of {}", p.options.workload)])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<RestartOutcome>> {
        let o = &p.options;
        Ok(Outcome::Done(
            cluster(ctx, &p)?
                .rollout_restart(&o.workload, o.namespace.as_deref())
                .await?,
        ))
    }
}

struct SetEnv;

#[async_trait]
impl TypedAction for SetEnv {
    type Params = OnCluster<EnvOptions>;
    type Outputs = EnvChange;
    const NAME: &'static str = "k8s.set_env";
    const SUMMARY: &'static str = "Sets (or, with null, removes) environment variables of a workload's containers; outputs the old values, and compensation puts them back.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(cluster(ctx, &p)?
            .plan_set_env(&p.options)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect())
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<EnvChange>> {
        Ok(Outcome::Done(cluster(ctx, &p)?.set_env(&p.options).await?))
    }
    fn undo(&self, p: &Self::Params, out: &EnvChange) -> Option<Call> {
        if !out.changed {
            return None;
        }
        Some(call(
            Self::NAME,
            &p.extra.target,
            serde_json::to_value(EnvOptions::undo(out)).ok()?,
        ))
    }
}

fn secret_undo(target: &str, name: &str, out: &SecretChange) -> Option<Call> {
    if out.changed.is_empty() || out.created {
        return None;
    }
    Some(call(
        "k8s.secret_restore",
        target,
        json!({"name": name, "namespace": out.namespace}),
    ))
}

struct SecretSet;

#[async_trait]
impl TypedAction for SecretSet {
    type Params = OnCluster<SecretOptions>;
    type Outputs = SecretChange;
    const NAME: &'static str = "k8s.secret_set";
    const SUMMARY: &'static str = "Sets keys of a Secret from values or an env file (compare-and-swap), keeping what it replaced in NAME-drkit-previous, then restarts the workloads that use it; values are never printed, journaled or planned; compensated by k8s.secret_restore.";
    const IDEMPOTENT: bool = true;
    const SECRET_INPUTS: &'static [&'static str] = &["set"];
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    fn check(&self, p: &Self::Params) -> std::result::Result<(), ParamError> {
        if !p.options.rotate.is_empty() {
            return Err(ParamError::at(
                "rotate",
                "belongs to k8s.secret_rotate; k8s.secret_set takes set: or from_env_file:",
            ));
        }
        Ok(())
    }
    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![cluster(ctx, &p)?
            .plan_secret(&p.options)
            .await?
            .to_string()])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<SecretChange>> {
        Ok(Outcome::Done(
            cluster(ctx, &p)?.secret_set(&p.options).await?,
        ))
    }
    fn undo(&self, p: &Self::Params, out: &SecretChange) -> Option<Call> {
        secret_undo(&p.extra.target, &p.options.name, out)
    }
}

struct SecretRotate;

#[async_trait]
impl TypedAction for SecretRotate {
    type Params = OnCluster<SecretOptions>;
    type Outputs = SecretChange;
    const NAME: &'static str = "k8s.secret_rotate";
    const SUMMARY: &'static str = "Rotates keys of a Secret to fresh random values (a breach), keeping the old ones in NAME-drkit-previous, then restarts the workloads that use it; compensated by k8s.secret_restore.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    fn check(&self, p: &Self::Params) -> std::result::Result<(), ParamError> {
        if p.options.rotate.is_empty() {
            return Err(ParamError::at(
                "rotate",
                "give the keys to rotate: [KEY, …]",
            ));
        }
        Ok(())
    }
    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        SecretSet.plan(ctx, p).await
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<SecretChange>> {
        Ok(Outcome::Done(
            cluster(ctx, &p)?.secret_set(&p.options).await?,
        ))
    }
    fn undo(&self, p: &Self::Params, out: &SecretChange) -> Option<Call> {
        secret_undo(&p.extra.target, &p.options.name, out)
    }
}

/// A named object and its namespace.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedParams {
    /// Its name.
    pub name: String,
    /// Else the target's.
    #[serde(default)]
    pub namespace: Option<String>,
}

struct SecretRestore;

#[async_trait]
impl TypedAction for SecretRestore {
    type Params = OnCluster<NamedParams>;
    type Outputs = SecretChange;
    const NAME: &'static str = "k8s.secret_restore";
    const SUMMARY: &'static str = "Puts back what the last k8s.secret_set or k8s.secret_rotate of a Secret replaced (from NAME-drkit-previous), then restarts its users.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "puts back the values secret {} had before its last change",
            p.options.name
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<SecretChange>> {
        let o = &p.options;
        Ok(Outcome::Done(
            cluster(ctx, &p)?
                .secret_restore(&o.name, o.namespace.as_deref())
                .await?,
        ))
    }
}

/// `k8s.namespace_create`'s options.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceParams {
    /// The namespace.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

struct NamespaceCreate;

#[async_trait]
impl TypedAction for NamespaceCreate {
    type Params = OnCluster<NamespaceParams>;
    type Outputs = NamespaceOutcome;
    const NAME: &'static str = "k8s.namespace_create";
    const SUMMARY: &'static str = "Creates a namespace with labels (an existing one is left as it is); compensated by deleting it when this step created it.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "creates namespace {} (if missing)",
            p.options.name
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<NamespaceOutcome>> {
        let o = &p.options;
        Ok(Outcome::Done(
            cluster(ctx, &p)?
                .namespace_create(&o.name, &o.labels)
                .await?,
        ))
    }
    fn undo(&self, p: &Self::Params, out: &NamespaceOutcome) -> Option<Call> {
        if !out.changed {
            return None;
        }
        Some(call(
            "k8s.namespace_delete",
            &p.extra.target,
            json!({"name": p.options.name}),
        ))
    }
}

/// `k8s.namespace_delete`'s options.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDeleteParams {
    /// The namespace.
    pub name: String,
    /// Longest wait (default 5m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

struct NamespaceDelete;

#[async_trait]
impl TypedAction for NamespaceDelete {
    type Params = OnCluster<NamespaceDeleteParams>;
    type Outputs = NamespaceOutcome;
    const NAME: &'static str = "k8s.namespace_delete";
    const SUMMARY: &'static str =
        "Deletes a namespace and waits until it is gone with everything in it.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "deletes namespace {} and everything in it",
            p.options.name
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<NamespaceOutcome>> {
        let o = &p.options;
        Ok(Outcome::Done(
            cluster(ctx, &p)?
                .namespace_delete(&o.name, five_minutes(o.timeout))
                .await?,
        ))
    }
}

/// A namespace and how long to wait.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailableParams {
    /// Else the target's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Longest wait (default 5m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

/// The Deployments found available.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Available {
    /// Their names.
    pub deployments: Vec<String>,
}

struct WaitAvailable;

#[async_trait]
impl TypedAction for WaitAvailable {
    type Params = OnCluster<AvailableParams>;
    type Outputs = Available;
    const NAME: &'static str = "k8s.wait_available";
    const SUMMARY: &'static str = "Waits until every Deployment of a namespace is available.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "waits until every Deployment of {} is available",
            p.options
                .namespace
                .as_deref()
                .unwrap_or("the target's namespace")
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<Available>> {
        let o = &p.options;
        Ok(Outcome::Done(Available {
            deployments: cluster(ctx, &p)?
                .wait_available(o.namespace.as_deref(), five_minutes(o.timeout))
                .await?,
        }))
    }
}

/// A pod and how long to wait for its replacement.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodParams {
    /// The pod.
    pub name: String,
    /// Else the target's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Longest wait (default 5m).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

struct PodDelete;

#[async_trait]
impl TypedAction for PodDelete {
    type Params = OnCluster<PodParams>;
    type Outputs = PodReplaced;
    const NAME: &'static str = "k8s.pod_delete";
    const SUMMARY: &'static str = "Deletes a pod and waits until its controller has replaced it with a ready one (a StatefulSet's keeps the name).";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "deletes pod {} and waits for its replacement",
            p.options.name
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<PodReplaced>> {
        let o = &p.options;
        Ok(Outcome::Done(
            cluster(ctx, &p)?
                .pod_delete(&o.name, o.namespace.as_deref(), five_minutes(o.timeout))
                .await?,
        ))
    }
}

/// A pod's last lines.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// The pod.
    pub name: String,
    /// Else the target's.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Lines per container (default 50).
    #[serde(default)]
    pub tail: Option<i64>,
}

struct Logs;

#[async_trait]
impl TypedAction for Logs {
    type Params = OnCluster<LogsParams>;
    type Outputs = PodLogs;
    const NAME: &'static str = "k8s.logs";
    const SUMMARY: &'static str = "The last tail (default 50) lines of each container of a pod, kept in the run's journal for the report.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(vec![format!(
            "reads the last lines of pod {}",
            p.options.name
        )])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<PodLogs>> {
        let o = &p.options;
        Ok(Outcome::Done(
            cluster(ctx, &p)?
                .logs(&o.name, o.namespace.as_deref(), o.tail.unwrap_or(50))
                .await?,
        ))
    }
}

/// Maintenance on or off.
#[derive(Deserialize, Serialize, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    /// Every backend points at the maintenance Service.
    On,
    /// The Ingress as it was.
    Off,
}

/// An Ingress and its maintenance Service.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceFields {
    /// The Ingress.
    pub ingress: String,
    /// Its namespace (else the target's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The maintenance Service (default drkit-maintenance).
    #[serde(default)]
    pub service: Option<String>,
    /// Its port (default 80).
    #[serde(default)]
    pub port: Option<i32>,
    /// Create the maintenance Deployment and Service from this image.
    #[serde(default)]
    pub image: Option<String>,
}

impl MaintenanceFields {
    fn options(&self) -> MaintenanceOptions {
        let d = MaintenanceOptions::new(&self.ingress);
        MaintenanceOptions {
            namespace: self.namespace.clone(),
            service: self.service.clone().unwrap_or(d.service),
            port: self.port.unwrap_or(d.port),
            image: self.image.clone(),
            ..d
        }
    }
}

/// Maintenance on or off.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateField {
    /// On or off.
    pub state: OnOff,
}

/// `k8s.maintenance`'s options: the state beside the Ingress.
pub type MaintenanceParams = Beside<StateField, MaintenanceFields>;

struct Maintenance;

#[async_trait]
impl TypedAction for Maintenance {
    type Params = OnCluster<MaintenanceParams>;
    type Outputs = MaintenanceOutcome;
    const NAME: &'static str = "k8s.maintenance";
    const SUMMARY: &'static str = "Maintenance mode: state on points every backend of an Ingress at the maintenance Service (made from image: when given), keeping the Ingress as it was in an annotation; off puts it back exactly; compensated by the opposite state.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        let o = &p.options;
        Ok(vec![cluster(ctx, &p)?
            .plan_maintenance(&o.options.options(), o.extra.state == OnOff::On)
            .await?
            .to_string()])
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<MaintenanceOutcome>> {
        let k = cluster(ctx, &p)?;
        let options = p.options.options.options();
        Ok(Outcome::Done(if p.options.extra.state == OnOff::On {
            k.maintenance_on(&options).await?
        } else {
            k.maintenance_off(&options).await?
        }))
    }
    fn undo(&self, p: &Self::Params, out: &MaintenanceOutcome) -> Option<Call> {
        if !out.changed {
            return None;
        }
        let o = &p.options.options;
        Some(call(
            Self::NAME,
            &p.extra.target,
            json!({
                "state": if out.on { "off" } else { "on" },
                "ingress": o.ingress, "namespace": o.namespace, "service": o.service, "port": o.port,
            }),
        ))
    }
}

struct ConfigMapSet;

#[async_trait]
impl TypedAction for ConfigMapSet {
    type Params = OnCluster<ConfigMapOptions>;
    type Outputs = ConfigMapChange;
    const NAME: &'static str = "k8s.configmap_set";
    const SUMMARY: &'static str = "Sets and removes keys of a ConfigMap (compare-and-swap on its resourceVersion); outputs the old values, and compensation puts them back.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        Ok(cluster(ctx, &p)?
            .plan_configmap(&p.options)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect())
    }
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<ConfigMapChange>> {
        Ok(Outcome::Done(
            cluster(ctx, &p)?.configmap_set(&p.options).await?,
        ))
    }
    fn undo(&self, p: &Self::Params, out: &ConfigMapChange) -> Option<Call> {
        if !out.changed {
            return None;
        }
        Some(call(
            Self::NAME,
            &p.extra.target,
            serde_json::to_value(ConfigMapOptions::undo(out)).ok()?,
        ))
    }
}

/// The context name of `--lock k8s:in-cluster/NAMESPACE/NAME`: the pod's own service
/// account, not a kubeconfig context.
pub const IN_CLUSTER: &str = "in-cluster";

/// The lock a `--lock` flag names: `k8s:CONTEXT/NAMESPACE/NAME`, a Kubernetes Lease
/// reached through the kubeconfig (`KUBECONFIG`, else `~/.kube/config`), or
/// `k8s:in-cluster/NAMESPACE/NAME` through the pod's service account. It is the lock
/// for stores that ignore create-only writes (garage), where the store's own lock
/// refuses to run.
pub async fn open_lock(spec: &str) -> Result<Arc<dyn dr_core::lock::Lock>> {
    let (context, namespace, name) = crate::LeaseLock::parse_spec(spec)?;
    // Inside a pod: its service account, as kubectl does there.
    let options = if context == IN_CLUSTER {
        ConnectOptions {
            in_cluster: true,
            ..ConnectOptions::default()
        }
    } else {
        ConnectOptions {
            context: Some(context),
            ..ConnectOptions::default()
        }
    };
    let k8s = Kubernetes::connect(&options).await?;
    Ok(Arc::new(crate::LeaseLock::new(k8s, &namespace, &name)))
}
