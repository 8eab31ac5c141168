//! The Kubernetes target kind and the `k8s.*` actions: each the `dr_k8s` operation the
//! CLI and Python call, with the same options; each mutating one plans from live state
//! and undoes itself when its run compensates.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dr_core::runbook::{
    params, Action, ActionSpec, Call, Field, Outcome, Registry, StepContext, Target, TargetKind,
};
use dr_core::{err, Result};
use dr_k8s::{ConfigMapOptions, ConnectOptions, Kubernetes, ScaleOptions, Workload};
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

fn known_later(with: &Value) -> bool {
    with.to_string().contains("<known after")
}

struct Scale;

#[async_trait]
impl Action for Scale {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: "k8s.scale".into(),
            summary: "Scales a Deployment or StatefulSet (compare-and-swap on the /scale subresource) and, with wait, waits until its replicas are ready or its pods are gone; compensated by scaling back to the previous count.".into(),
            idempotent: true,
            params: vec![
                Field::required("target", "target", WHAT),
                Field::required("workload", "string", "deployment/NAME or statefulset/NAME"),
                Field::required("replicas", "int", "The count to set"),
                Field::optional("namespace", "string", "Else the target's"),
                Field::optional("wait", "bool", "Wait until ready / gone (default false)"),
                Field::optional("timeout", "duration", "Longest wait (default 5m)"),
            ],
            outputs: vec![
                Field::required("previous", "int", "The count before: what compensation restores"),
                Field::required("replicas", "int", "The count now"),
                Field::required("namespace", "string", "Where"),
                Field::required("ready", "int", "Ready replicas, when it waited"),
            ],
            open_outputs: false,
        }
    }
    fn check(&self, with: &Value) -> Result<()> {
        if known_later(with) {
            return Ok(());
        }
        split::<ScaleOptions>("k8s.scale", with).map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let (t, o): (String, ScaleOptions) = split("k8s.scale", with)?;
        let k = ctx.adapter::<Kubernetes>(&t, WHAT)?;
        Ok(vec![k.plan_scale(&o).await?.to_string()])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let (t, o): (String, ScaleOptions) = split("k8s.scale", with)?;
        let k = ctx.adapter::<Kubernetes>(&t, WHAT)?;
        Ok(outputs(k.scale(&o).await?))
    }
    fn undo(&self, with: &Value, out: &Map<String, Value>) -> Option<Call> {
        Some(Call {
            action: "k8s.scale".into(),
            with: json!({
                "target": with.get("target")?, "workload": with.get("workload")?,
                "namespace": out.get("namespace")?, "replicas": out.get("previous")?,
                "wait": with.get("wait").cloned().unwrap_or(Value::Bool(false)),
            }),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitParams {
    workload: Workload,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

struct WaitReady;

#[async_trait]
impl Action for WaitReady {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: "k8s.wait_ready".into(),
            summary: "Waits until a Deployment or StatefulSet has every replica updated, ready and available (watching it, no polling); fails at the timeout saying what it still waits for.".into(),
            idempotent: true,
            params: vec![
                Field::required("target", "target", WHAT),
                Field::required("workload", "string", "deployment/NAME or statefulset/NAME"),
                Field::optional("namespace", "string", "Else the target's"),
                Field::optional("timeout", "duration", "Longest wait (default 5m)"),
            ],
            outputs: vec![Field::required("ready", "int", "Ready replicas"), Field::required("seconds", "number", "How long it waited")],
            open_outputs: false,
        }
    }
    fn check(&self, with: &Value) -> Result<()> {
        split::<WaitParams>("k8s.wait_ready", with).map(|_| ())
    }
    async fn plan(&self, _: &StepContext, with: &Value) -> Result<Vec<String>> {
        let (_, p): (String, WaitParams) = split("k8s.wait_ready", with)?;
        Ok(vec![format!("waits until {} is ready", p.workload)])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let (t, p): (String, WaitParams) = split("k8s.wait_ready", with)?;
        let k = ctx.adapter::<Kubernetes>(&t, WHAT)?;
        let w = k
            .wait_ready(
                &p.workload,
                p.namespace.as_deref(),
                p.timeout.unwrap_or(Duration::from_mins(5)),
            )
            .await?;
        Ok(outputs(w))
    }
}

struct ConfigMapSet;

#[async_trait]
impl Action for ConfigMapSet {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: "k8s.configmap_set".into(),
            summary: "Sets and removes keys of a ConfigMap (compare-and-swap on its resourceVersion); outputs the old values, and compensation puts them back.".into(),
            idempotent: true,
            params: vec![
                Field::required("target", "target", WHAT),
                Field::required("name", "string", "The ConfigMap"),
                Field::optional("namespace", "string", "Else the target's"),
                Field::optional("set", "{key: value}", "Keys to set"),
                Field::optional("remove", "[key]", "Keys to remove"),
            ],
            outputs: vec![
                Field::required("previous", "{key: value|null}", "The old value of each key touched"),
                Field::required("changed", "bool", "Whether anything changed"),
                Field::required("namespace", "string", "Where"),
            ],
            open_outputs: false,
        }
    }
    fn check(&self, with: &Value) -> Result<()> {
        if known_later(with) {
            return Ok(());
        }
        split::<ConfigMapOptions>("k8s.configmap_set", with).map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let (t, o): (String, ConfigMapOptions) = split("k8s.configmap_set", with)?;
        let k = ctx.adapter::<Kubernetes>(&t, WHAT)?;
        Ok(k.plan_configmap(&o)
            .await?
            .iter()
            .map(ToString::to_string)
            .collect())
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let (t, o): (String, ConfigMapOptions) = split("k8s.configmap_set", with)?;
        let k = ctx.adapter::<Kubernetes>(&t, WHAT)?;
        Ok(outputs(k.configmap_set(&o).await?))
    }
    fn undo(&self, with: &Value, out: &Map<String, Value>) -> Option<Call> {
        let change: dr_k8s::ConfigMapChange =
            serde_json::from_value(Value::Object(out.clone())).ok()?;
        if !change.changed {
            return None;
        }
        let mut w = serde_json::to_value(ConfigMapOptions::undo(&change)).ok()?;
        w["target"] = with.get("target")?.clone();
        Some(Call {
            action: "k8s.configmap_set".into(),
            with: w,
        })
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

/// Adds the `kubernetes` target kind and the `k8s.*` actions.
pub(crate) fn register(r: &mut Registry) {
    r.target_kind(KubernetesKind)
        .action(Scale)
        .action(WaitReady)
        .action(ConfigMapSet);
}
