//! The Kubernetes target kind and the `k8s.*` actions: each the `dr_k8s` operation the
//! CLI and Python call, with the same options; each mutating one plans from live state
//! and undoes itself when its run compensates.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dr_core::runbook::{
    params, Action, ActionSpec, Call, Field, Outcome, Registry, StepContext, Target, TargetKind,
};
use dr_core::{err, Result};
use dr_k8s::{
    ConfigMapOptions, ConnectOptions, EnvOptions, Kubernetes, ScaleOptions, SecretOptions, Workload,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

const WHAT: &str = "a Kubernetes cluster (kind: kubernetes)";

struct KubernetesKind;

#[async_trait]
impl TargetKind for KubernetesKind {
    #[allow(clippy::unnecessary_literal_bound)] // the trait lends the name from self
    fn kind(&self) -> &str {
        "kubernetes"
    }
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::optional(
                "context",
                "string",
                "kubeconfig context (default: the current one)",
            ),
            Field::optional(
                "kubeconfig",
                "path",
                "kubeconfig file (default: KUBECONFIG, ~/.kube/config)",
            ),
            Field::optional("namespace", "string", "default namespace of its steps"),
            Field::optional("in_cluster", "bool", "use the pod's service account"),
        ]
    }
    async fn build(&self, name: &str, fields: &Map<String, Value>) -> Result<Target> {
        let mut fields = fields.clone();
        fields.remove("kind");
        let options: ConnectOptions = serde_json::from_value(Value::Object(fields))
            .map_err(|e| err!(InvalidInput, "target {name:?} (kubernetes): {e}"))?;
        let k8s = Kubernetes::connect(&options).await?;
        Ok(Target::Adapter {
            name: format!("kubernetes context {}", k8s.context()),
            value: Arc::new(k8s),
        })
    }
}

/// An Ingress whose maintenance mode `traffic.switch` turns on (`{set: maintenance}`)
/// and off (`{set: normal}`).
struct IngressKind;

#[async_trait]
impl TargetKind for IngressKind {
    #[allow(clippy::unnecessary_literal_bound)] // the trait lends the name from self
    fn kind(&self) -> &str {
        "kubernetes_ingress"
    }
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::required("ingress", "string", "The Ingress"),
            Field::optional("namespace", "string", "Its namespace"),
            Field::optional("context", "string", "kubeconfig context"),
            Field::optional("kubeconfig", "path", "kubeconfig file"),
            Field::optional(
                "service",
                "string",
                "The maintenance Service (default drkit-maintenance)",
            ),
            Field::optional("port", "int", "Its port (default 80)"),
            Field::optional(
                "image",
                "string",
                "Create the maintenance app from this image",
            ),
        ]
    }
    async fn build(&self, name: &str, fields: &Map<String, Value>) -> Result<Target> {
        let mut connect = Map::new();
        let mut maint = Map::new();
        for (k, v) in fields {
            match k.as_str() {
                "kind" => {}
                "context" | "kubeconfig" | "in_cluster" => {
                    connect.insert(k.clone(), v.clone());
                }
                _ => {
                    maint.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(ns) = maint.get("namespace") {
            connect.insert("namespace".into(), ns.clone());
        }
        let bad =
            |e: serde_json::Error| err!(InvalidInput, "target {name:?} (kubernetes_ingress): {e}");
        let k8s =
            Kubernetes::connect(&serde_json::from_value(Value::Object(connect)).map_err(bad)?)
                .await?;
        let options: dr_k8s::MaintenanceOptions =
            serde_json::from_value(Value::Object(maint)).map_err(bad)?;
        Ok(Target::Router(Arc::new(dr_k8s::MaintenanceRouter::new(
            k8s, options,
        ))))
    }
}

/// `state` beside the fields of [`dr_k8s::MaintenanceOptions`] (no `flatten`: it and
/// `deny_unknown_fields` do not mix).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceParams {
    state: OnOff,
    ingress: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    port: Option<i32>,
    #[serde(default)]
    image: Option<String>,
}

impl MaintenanceParams {
    fn options(&self) -> dr_k8s::MaintenanceOptions {
        let d = dr_k8s::MaintenanceOptions::new(&self.ingress);
        dr_k8s::MaintenanceOptions {
            namespace: self.namespace.clone(),
            service: self.service.clone().unwrap_or(d.service),
            port: self.port.unwrap_or(d.port),
            image: self.image.clone(),
            ..d
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum OnOff {
    On,
    Off,
}

fn outputs(v: impl serde::Serialize) -> Outcome {
    Outcome::Done(match serde_json::to_value(v).unwrap_or(Value::Null) {
        Value::Object(m) => m,
        _ => Map::new(),
    })
}

/// A step's parameters: `target` beside the operation's own options.
fn split<O: serde::de::DeserializeOwned>(action: &str, with: &Value) -> Result<(String, O)> {
    let mut m = with.as_object().cloned().unwrap_or_default();
    let target = m
        .remove("target")
        .and_then(|t| t.as_str().map(str::to_owned))
        .ok_or_else(|| {
            err!(
                InvalidInput,
                "{action}: give target: (a target of kind kubernetes)"
            )
        })?;
    Ok((target, params(action, &Value::Object(m))?))
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;
type RunFn<O> = fn(Arc<Kubernetes>, O) -> Fut<Value>;
type PlanFn<O> = fn(Arc<Kubernetes>, O) -> Fut<Vec<String>>;
type UndoFn = fn(&Value, &Map<String, Value>) -> Option<Call>;

/// A `k8s.*` action: `target` (a kubernetes target) beside the options `O` of one
/// `dr_k8s` operation, with its plan form and its undo.
struct K8sOp<O> {
    spec: ActionSpec,
    run: RunFn<O>,
    plan: PlanFn<O>,
    undo: Option<UndoFn>,
}

fn k8s_op<O>(
    name: &str,
    summary: &str,
    params: Vec<Field>,
    outputs: Vec<Field>,
    run: RunFn<O>,
    plan: PlanFn<O>,
    undo: Option<UndoFn>,
) -> K8sOp<O> {
    let mut all = vec![Field::required("target", "target", WHAT)];
    all.extend(params);
    K8sOp {
        spec: ActionSpec {
            name: name.into(),
            summary: summary.into(),
            idempotent: true,
            params: all,
            outputs,
            open_outputs: false,
        },
        run,
        plan,
        undo,
    }
}

#[async_trait]
impl<O: serde::de::DeserializeOwned + Send + 'static> Action for K8sOp<O> {
    fn spec(&self) -> ActionSpec {
        self.spec.clone()
    }
    fn check(&self, with: &Value) -> Result<()> {
        if dr_core::runbook::is_unknown(with) {
            return Ok(());
        }
        split::<O>(&self.spec.name, with).map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let (t, o): (String, O) = split(&self.spec.name, with)?;
        (self.plan)(ctx.adapter::<Kubernetes>(&t, WHAT)?, o).await
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let (t, o): (String, O) = split(&self.spec.name, with)?;
        Ok(outputs(
            (self.run)(ctx.adapter::<Kubernetes>(&t, WHAT)?, o).await?,
        ))
    }
    fn undo(&self, with: &Value, out: &Map<String, Value>) -> Option<Call> {
        self.undo.and_then(|u| u(with, out))
    }
}

fn doc<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The undo of a change that returned its previous state as `Options::undo` takes it.
fn call(action: &str, with: &Value, mut params: Value) -> Option<Call> {
    params["target"] = with.get("target")?.clone();
    Some(Call {
        action: action.into(),
        with: params,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadParams {
    workload: Workload,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UndoParams {
    workload: Workload,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    to_revision: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedParams {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
    #[serde(default)]
    tail: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceParams {
    name: String,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailableParams {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

fn five_minutes(t: Option<Duration>) -> Duration {
    t.unwrap_or(Duration::from_mins(5))
}

fn secret_outputs() -> Vec<Field> {
    vec![
        Field::required(
            "changed",
            "[key]",
            "The keys whose value changed (never the values)",
        ),
        Field::required(
            "previous",
            "string",
            "The Secret that keeps what was replaced",
        ),
        Field::required(
            "restarted",
            "[workload]",
            "The workloads restarted because they use it",
        ),
        Field::required("namespace", "string", "Where"),
    ]
}

fn secret_fields(rotate: bool) -> Vec<Field> {
    let mut f = vec![
        Field::required("name", "string", "The Secret"),
        Field::optional("namespace", "string", "Else the target's"),
    ];
    if rotate {
        f.push(Field::required(
            "rotate",
            "[key]",
            "Keys to give fresh random values",
        ));
        f.push(Field::optional(
            "length",
            "int",
            "Random bytes per value (default 32)",
        ));
    } else {
        f.push(Field::optional(
            "set",
            "{key: value}",
            "Values (give them as secret variables)",
        ));
        f.push(Field::optional("from_env_file", "path", "KEY=VALUE lines"));
        f.push(Field::optional(
            "create",
            "bool",
            "Create the Secret when missing",
        ));
    }
    f.push(Field::optional(
        "restart",
        "bool",
        "Restart the workloads that use it (default true)",
    ));
    f
}

fn secret_undo(with: &Value, out: &Map<String, Value>) -> Option<Call> {
    let changed = out.get("changed")?.as_array()?;
    if changed.is_empty() || out.get("created") == Some(&Value::Bool(true)) {
        return None;
    }
    call(
        "k8s.secret_restore",
        with,
        json!({"name": with.get("name")?, "namespace": out.get("namespace")?}),
    )
}

fn workload_fields() -> Vec<Field> {
    vec![
        Field::required("workload", "string", "deployment/NAME or statefulset/NAME"),
        Field::optional("namespace", "string", "Else the target's"),
    ]
}

/// Adds the `kubernetes` target kind and the `k8s.*` actions.
#[allow(clippy::too_many_lines)] // one registration per operation
pub(crate) fn register(r: &mut Registry) {
    let mut scale_fields = workload_fields();
    scale_fields.extend([
        Field::required("replicas", "int", "The count to set"),
        Field::optional("wait", "bool", "Wait until ready / gone (default false)"),
        Field::optional("timeout", "duration", "Longest wait (default 5m)"),
    ]);
    let mut wait_fields = workload_fields();
    wait_fields.push(Field::optional(
        "timeout",
        "duration",
        "Longest wait (default 5m)",
    ));
    let mut undo_fields = workload_fields();
    undo_fields.push(Field::optional(
        "to_revision",
        "int",
        "Else the revision before the current one",
    ));
    let mut env_fields = workload_fields();
    env_fields.extend([
        Field::optional("container", "string", "Else every container"),
        Field::optional(
            "env",
            "{NAME: value|null}",
            "Variables to set (null removes) in the containers chosen",
        ),
        Field::optional(
            "containers",
            "{container: {NAME: value|null}}",
            "Variables to set per container (what an undo of several containers puts back)",
        ),
    ]);
    r.action(RepoOp {
        spec: ActionSpec {
            name: "k8s.export".into(),
            summary: "Exports a namespace (Deployments, StatefulSets, DaemonSets, Services, ConfigMaps, Secrets, Ingresses, CronJobs, ServiceAccounts, RBAC, PVC specs) into the run's repository as a k8s snapshot: clean manifests, Secrets only encrypted.".into(),
            idempotent: true,
            params: vec![
                Field::required("target", "target", WHAT),
                Field::optional("namespace", "string", "Else the target's"),
                Field::optional("kinds", "[kind]", "Only these kinds"),
                Field::optional("selector", "string", "Only objects with these labels"),
                Field::optional("tags", "{key: value}", "Snapshot tags"),
            ],
            outputs: vec![Field::required("snapshot", "string", "The snapshot's id"), Field::required("objects", "[{kind, name}]", "What it holds")],
            open_outputs: false,
        },
        export: true,
    })
    .action(RepoOp {
        spec: ActionSpec {
            name: "k8s.apply".into(),
            summary: "Applies a k8s snapshot of the run's repository (latest by default) into the target cluster with server-side apply as drkit, in dependency order, namespaces renamed by namespace_map; plan shows each object's diff against what is live.".into(),
            idempotent: true,
            params: vec![
                Field::required("target", "target", WHAT),
                Field::optional("snapshot", "string", "latest k8s snapshot, an id or a prefix"),
                Field::optional("namespace_map", "{old: new}", "Namespace renames"),
                Field::optional("dry_run", "bool", "Change nothing"),
                Field::optional("wait", "bool", "Wait for the workloads"),
                Field::optional("timeout", "duration", "Longest wait (default 10m)"),
            ],
            outputs: vec![Field::required("objects", "[{kind, name, namespace, action, diff}]", "Each object")],
            open_outputs: false,
        },
        export: false,
    });
    r.target_kind(KubernetesKind)
        .target_kind(IngressKind)
        .action(k8s_op::<ScaleOptions>(
            "k8s.scale",
            "Scales a Deployment or StatefulSet (compare-and-swap on the /scale subresource) and, with wait, waits until its replicas are ready or its pods are gone; compensated by scaling back to the previous count.",
            scale_fields,
            vec![
                Field::required("previous", "int", "The count before: what compensation restores"),
                Field::required("replicas", "int", "The count now"),
                Field::required("namespace", "string", "Where"),
                Field::required("ready", "int", "Ready replicas, when it waited"),
            ],
            |k, o| Box::pin(async move { Ok(doc(&k.scale(&o).await?)) }),
            |k, o| Box::pin(async move { Ok(vec![k.plan_scale(&o).await?.to_string()]) }),
            Some(|with, out| {
                call("k8s.scale", with, json!({
                    "workload": with.get("workload")?, "namespace": out.get("namespace")?,
                    "replicas": out.get("previous")?, "wait": with.get("wait").cloned().unwrap_or(Value::Bool(false)),
                }))
            }),
        ))
        .action(k8s_op::<WorkloadParams>(
            "k8s.wait_ready",
            "Waits until a Deployment or StatefulSet has every replica updated, ready and available (watching it, no polling); fails at the timeout saying what it still waits for.",
            wait_fields.clone(),
            vec![Field::required("ready", "int", "Ready replicas"), Field::required("seconds", "number", "How long it waited")],
            |k, p| Box::pin(async move { Ok(doc(&k.wait_ready(&p.workload, p.namespace.as_deref(), p.timeout.unwrap_or(Duration::from_mins(5))).await?)) }),
            |_, p| Box::pin(async move { Ok(vec![format!("waits until {} is ready", p.workload)]) }),
            None,
        ))
        .action(k8s_op::<WorkloadParams>(
            "k8s.rollout_status",
            "kubectl rollout status: waits until the rollout of a Deployment or StatefulSet is done (the same wait as k8s.wait_ready).",
            wait_fields,
            vec![Field::required("ready", "int", "Ready replicas"), Field::required("updated", "int", "Replicas of the current template")],
            |k, p| Box::pin(async move { Ok(doc(&k.wait_ready(&p.workload, p.namespace.as_deref(), p.timeout.unwrap_or(Duration::from_mins(5))).await?)) }),
            |_, p| Box::pin(async move { Ok(vec![format!("waits until the rollout of {} is done", p.workload)]) }),
            None,
        ))
        .action(k8s_op::<UndoParams>(
            "k8s.rollout_undo",
            "Rolls a Deployment or StatefulSet back to the previous revision, or to_revision (found as kubectl does); compensated by rolling forward to the revision it left.",
            undo_fields,
            vec![
                Field::required("from_revision", "int", "The revision it ran"),
                Field::required("to_revision", "int", "The revision whose template it runs now"),
                Field::required("image_before", "string", "First container's image before"),
                Field::required("image_after", "string", "And after"),
            ],
            |k, p| Box::pin(async move { Ok(doc(&k.rollout_undo(&p.workload, p.namespace.as_deref(), p.to_revision).await?)) }),
            |k, p| Box::pin(async move { Ok(vec![k.plan_rollout_undo(&p.workload, p.namespace.as_deref(), p.to_revision).await?.to_string()]) }),
            Some(|with, out| {
                call("k8s.rollout_undo", with, json!({"workload": with.get("workload")?, "namespace": out.get("namespace")?, "to_revision": out.get("from_revision")?}))
            }),
        ))
        .action(k8s_op::<WorkloadParams>(
            "k8s.restart",
            "kubectl rollout restart: new pods for a Deployment or StatefulSet (the restartedAt annotation on its template).",
            workload_fields(),
            vec![Field::required("restarted_at", "string", "The annotation's value")],
            |k, p| Box::pin(async move { Ok(doc(&k.rollout_restart(&p.workload, p.namespace.as_deref()).await?)) }),
            |_, p| Box::pin(async move { Ok(vec![format!("restarts the pods of {}", p.workload)]) }),
            None,
        ))
        .action(k8s_op::<EnvOptions>(
            "k8s.set_env",
            "Sets (or, with null, removes) environment variables of a workload's containers; outputs the old values, and compensation puts them back.",
            env_fields,
            vec![Field::required("previous", "{container: {NAME: value|null}}", "The old values"), Field::required("changed", "bool", "Whether anything changed")],
            |k, o| Box::pin(async move { Ok(doc(&k.set_env(&o).await?)) }),
            |k, o| Box::pin(async move { Ok(k.plan_set_env(&o).await?.iter().map(ToString::to_string).collect()) }),
            Some(|with, out| {
                let change: dr_k8s::EnvChange = serde_json::from_value(Value::Object(out.clone())).ok()?;
                let undo = EnvOptions::undo(&change);
                if !change.changed {
                    return None;
                }
                call("k8s.set_env", with, doc(&undo))
            }),
        ))
        .action(k8s_op::<SecretOptions>(
            "k8s.secret_set",
            "Sets keys of a Secret from values or an env file (compare-and-swap), keeping what it replaced in NAME-drkit-previous, then restarts the workloads that use it; values are never printed, journaled or planned; compensated by k8s.secret_restore.",
            secret_fields(false),
            secret_outputs(),
            |k, o| Box::pin(async move { Ok(doc(&k.secret_set(&o).await?)) }),
            |k, o| Box::pin(async move { Ok(vec![k.plan_secret(&o).await?.to_string()]) }),
            Some(secret_undo),
        ))
        .action(k8s_op::<SecretOptions>(
            "k8s.secret_rotate",
            "Rotates keys of a Secret to fresh random values (a breach), keeping the old ones in NAME-drkit-previous, then restarts the workloads that use it; compensated by k8s.secret_restore.",
            secret_fields(true),
            secret_outputs(),
            |k, o| {
                Box::pin(async move {
                    if o.rotate.is_empty() {
                        return Err(dr_core::err!(InvalidInput, "k8s.secret_rotate: give rotate: [KEY, …]"));
                    }
                    Ok(doc(&k.secret_set(&o).await?))
                })
            },
            |k, o| Box::pin(async move { Ok(vec![k.plan_secret(&o).await?.to_string()]) }),
            Some(secret_undo),
        ))
        .action(k8s_op::<NamedParams>(
            "k8s.secret_restore",
            "Puts back what the last k8s.secret_set or k8s.secret_rotate of a Secret replaced (from NAME-drkit-previous), then restarts its users.",
            vec![Field::required("name", "string", "The Secret"), Field::optional("namespace", "string", "Else the target's")],
            secret_outputs(),
            |k, p| Box::pin(async move { Ok(doc(&k.secret_restore(&p.name, p.namespace.as_deref()).await?)) }),
            |_, p| Box::pin(async move { Ok(vec![format!("puts back the values secret {} had before its last change", p.name)]) }),
            None,
        ))
        .action(k8s_op::<NamespaceParams>(
            "k8s.namespace_create",
            "Creates a namespace with labels (an existing one is left as it is); compensated by deleting it when this step created it.",
            vec![Field::required("name", "string", "The namespace"), Field::optional("labels", "{key: value}", "Its labels")],
            vec![Field::required("changed", "bool", "Whether this step created it")],
            |k, p| Box::pin(async move { Ok(doc(&k.namespace_create(&p.name, &p.labels).await?)) }),
            |_, p| Box::pin(async move { Ok(vec![format!("creates namespace {} (if missing)", p.name)]) }),
            Some(|with, out| {
                if out.get("changed") != Some(&Value::Bool(true)) {
                    return None;
                }
                call("k8s.namespace_delete", with, json!({"name": with.get("name")?}))
            }),
        ))
        .action(k8s_op::<NamespaceParams>(
            "k8s.namespace_delete",
            "Deletes a namespace and waits until it is gone with everything in it.",
            vec![Field::required("name", "string", "The namespace"), Field::optional("timeout", "duration", "Longest wait (default 5m)")],
            vec![Field::required("changed", "bool", "Whether it existed")],
            |k, p| Box::pin(async move { Ok(doc(&k.namespace_delete(&p.name, five_minutes(p.timeout)).await?)) }),
            |_, p| Box::pin(async move { Ok(vec![format!("deletes namespace {} and everything in it", p.name)]) }),
            None,
        ))
        .action(k8s_op::<AvailableParams>(
            "k8s.wait_available",
            "Waits until every Deployment of a namespace is available.",
            vec![Field::optional("namespace", "string", "Else the target's"), Field::optional("timeout", "duration", "Longest wait (default 5m)")],
            vec![Field::required("deployments", "[name]", "The Deployments, all available")],
            |k, p| Box::pin(async move { Ok(json!({"deployments": k.wait_available(p.namespace.as_deref(), five_minutes(p.timeout)).await?})) }),
            |_, p| Box::pin(async move { Ok(vec![format!("waits until every Deployment of {} is available", p.namespace.as_deref().unwrap_or("the target's namespace"))]) }),
            None,
        ))
        .action(k8s_op::<NamedParams>(
            "k8s.pod_delete",
            "Deletes a pod and waits until its controller has replaced it with a ready one (a StatefulSet's keeps the name).",
            vec![Field::required("name", "string", "The pod"), Field::optional("namespace", "string", "Else the target's"), Field::optional("timeout", "duration", "Longest wait (default 5m)")],
            vec![Field::required("replacement", "string", "The ready pod that replaced it"), Field::required("seconds", "number", "Until ready")],
            |k, p| Box::pin(async move { Ok(doc(&k.pod_delete(&p.name, p.namespace.as_deref(), five_minutes(p.timeout)).await?)) }),
            |_, p| Box::pin(async move { Ok(vec![format!("deletes pod {} and waits for its replacement", p.name)]) }),
            None,
        ))
        .action(k8s_op::<NamedParams>(
            "k8s.logs",
            "The last tail (default 50) lines of each container of a pod, kept in the run's journal for the report.",
            vec![Field::required("name", "string", "The pod"), Field::optional("namespace", "string", "Else the target's"), Field::optional("tail", "int", "Lines per container (default 50)")],
            vec![Field::required("containers", "{container: [line]}", "The lines")],
            |k, p| Box::pin(async move { Ok(doc(&k.logs(&p.name, p.namespace.as_deref(), p.tail.unwrap_or(50)).await?)) }),
            |_, p| Box::pin(async move { Ok(vec![format!("reads the last lines of pod {}", p.name)]) }),
            None,
        ))
        .action(k8s_op::<MaintenanceParams>(
            "k8s.maintenance",
            "Maintenance mode: state on points every backend of an Ingress at the maintenance Service (made from image: when given), keeping the Ingress as it was in an annotation; off puts it back exactly; compensated by the opposite state.",
            vec![
                Field::required("ingress", "string", "The Ingress"),
                Field::required("state", "on|off", "Maintenance on or off"),
                Field::optional("namespace", "string", "Else the target's"),
                Field::optional("service", "string", "The maintenance Service (default drkit-maintenance)"),
                Field::optional("port", "int", "Its port (default 80)"),
                Field::optional("image", "string", "Create the maintenance Deployment and Service from this image"),
            ],
            vec![Field::required("on", "bool", "Whether it is on now"), Field::required("changed", "bool", "Whether this step changed it"), Field::required("before", "[backend]", "Backends before"), Field::required("after", "[backend]", "Backends after")],
            |k, p| {
                Box::pin(async move {
                    let options = p.options();
                    let o = if p.state == OnOff::On { k.maintenance_on(&options).await? } else { k.maintenance_off(&options).await? };
                    Ok(doc(&o))
                })
            },
            |k, p| Box::pin(async move { Ok(vec![k.plan_maintenance(&p.options(), p.state == OnOff::On).await?.to_string()]) }),
            Some(|with, out| {
                if out.get("changed") != Some(&Value::Bool(true)) {
                    return None;
                }
                let mut w = with.clone();
                w["state"] = json!(if out.get("on") == Some(&Value::Bool(true)) { "off" } else { "on" });
                if let Some(o) = w.as_object_mut() {
                    o.remove("image");
                }
                Some(Call { action: "k8s.maintenance".into(), with: w })
            }),
        ))
        .action(k8s_op::<ConfigMapOptions>(
            "k8s.configmap_set",
            "Sets and removes keys of a ConfigMap (compare-and-swap on its resourceVersion); outputs the old values, and compensation puts them back.",
            vec![
                Field::required("name", "string", "The ConfigMap"),
                Field::optional("namespace", "string", "Else the target's"),
                Field::optional("set", "{key: value}", "Keys to set"),
                Field::optional("remove", "[key]", "Keys to remove"),
            ],
            vec![
                Field::required("previous", "{key: value|null}", "The old value of each key touched"),
                Field::required("changed", "bool", "Whether anything changed"),
                Field::required("namespace", "string", "Where"),
            ],
            |k, o| Box::pin(async move { Ok(doc(&k.configmap_set(&o).await?)) }),
            |k, o| Box::pin(async move { Ok(k.plan_configmap(&o).await?.iter().map(ToString::to_string).collect()) }),
            Some(|with, out| {
                let change: dr_k8s::ConfigMapChange = serde_json::from_value(Value::Object(out.clone())).ok()?;
                if !change.changed {
                    return None;
                }
                call("k8s.configmap_set", with, doc(&ConfigMapOptions::undo(&change)))
            }),
        ));
}

/// `k8s.export` and `k8s.apply`: the namespace snapshots of the run's repository.
struct RepoOp {
    spec: ActionSpec,
    export: bool,
}

#[async_trait]
impl Action for RepoOp {
    fn spec(&self) -> ActionSpec {
        self.spec.clone()
    }
    fn check(&self, with: &Value) -> Result<()> {
        if self.export {
            split::<dr_k8s::ExportOptions>(&self.spec.name, with).map(|_| ())
        } else {
            split::<dr_k8s::ApplyOptions>(&self.spec.name, with).map(|_| ())
        }
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        if self.export {
            let (_, o): (String, dr_k8s::ExportOptions) = split(&self.spec.name, with)?;
            return Ok(vec![format!(
                "exports namespace {} into the repository",
                o.namespace.as_deref().unwrap_or("of the target")
            )]);
        }
        let (t, mut o): (String, dr_k8s::ApplyOptions) = split(&self.spec.name, with)?;
        let k = ctx.adapter::<Kubernetes>(&t, WHAT)?;
        let Ok(repo) = ctx.repository() else {
            return Ok(vec![
                "applies a namespace snapshot of the run's repository".into()
            ]);
        };
        o.dry_run = true;
        let dry = k.apply(repo, &o).await?;
        Ok(dry
            .objects
            .iter()
            .map(|a| {
                let what = format!("{} {}/{}: {}", a.kind, a.namespace, a.name, a.action);
                if a.diff.is_empty() {
                    what
                } else {
                    format!("{what} ({})", a.diff.join("; "))
                }
            })
            .collect())
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let repo = ctx.repository()?;
        if self.export {
            let (t, o): (String, dr_k8s::ExportOptions) = split(&self.spec.name, with)?;
            let k = ctx.adapter::<Kubernetes>(&t, WHAT)?;
            return Ok(outputs(k.export(repo, &o).await?));
        }
        let (t, o): (String, dr_k8s::ApplyOptions) = split(&self.spec.name, with)?;
        let k = ctx.adapter::<Kubernetes>(&t, WHAT)?;
        Ok(outputs(k.apply(repo, &o).await?))
    }
}

/// The lock a `--lock` flag names: `k8s:CONTEXT/NAMESPACE/NAME`, a Kubernetes Lease
/// reached through the kubeconfig (`KUBECONFIG`, else `~/.kube/config`). It is the lock
/// for stores that ignore create-only writes (garage), where the store's own lock
/// refuses to run.
pub async fn open_lock(spec: &str) -> Result<Arc<dyn dr_core::lock::Lock>> {
    let (context, namespace, name) = dr_k8s::LeaseLock::parse_spec(spec)?;
    let k8s = Kubernetes::connect(&ConnectOptions {
        context: Some(context),
        ..ConnectOptions::default()
    })
    .await?;
    Ok(Arc::new(dr_k8s::LeaseLock::new(k8s, &namespace, &name)))
}
