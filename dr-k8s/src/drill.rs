//! The Kubernetes adapter's disaster actions, for drills only: a workload deleted or
//! scaled to zero, a namespace deleted. Each names a `kubernetes` target; a drill's
//! check refuses one that acts on anything but a sandbox (a target declared
//! `sandbox: true`, or a namespace its setup made).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dr_core::clock::Moment;
use dr_core::runbook::drill::DisasterEffect;
use dr_core::runbook::{Outcome, Provides, Registry, StepContext, TypedAction};
use dr_core::Result;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{Kubernetes, ScaleOptions, Workload};

const WHAT: &str = "a Kubernetes cluster (kind: kubernetes)";
const CLUSTER: Provides = Provides::Adapter("Kubernetes");

/// Adds the `disaster.k8s_*` actions.
pub fn register(r: &mut Registry) {
    r.typed(DeleteWorkload)
        .typed(ScaleToZero)
        .typed(DeleteNamespace);
}

/// A workload of a sandbox.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadDisaster {
    /// A target of kind kubernetes.
    pub target: String,
    /// `deployment/NAME` or `statefulset/NAME`.
    pub workload: Workload,
    /// Else the target's (a namespace the drill's setup made: `${steps.<id>.outputs.name}`).
    #[serde(default)]
    pub namespace: Option<String>,
}

fn cluster(ctx: &StepContext, target: &str) -> Result<Arc<Kubernetes>> {
    ctx.adapter::<Kubernetes>(target, WHAT)
}

struct DeleteWorkload;

#[async_trait]
impl TypedAction for DeleteWorkload {
    type Params = WorkloadDisaster;
    type Outputs = DisasterEffect;
    const NAME: &'static str = "disaster.k8s_delete";
    const SUMMARY: &'static str = "Drills only: deletes a sandbox Deployment or StatefulSet (its pods go with it), as a bad `kubectl delete` would; journals the moment.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, ctx: &StepContext, p: WorkloadDisaster) -> Result<Vec<String>> {
        let k = cluster(ctx, &p.target)?;
        Ok(vec![format!(
            "deletes {} in namespace {} (context {})",
            p.workload,
            k.ns(p.namespace.as_deref()),
            k.context()
        )])
    }
    async fn run(&self, ctx: &StepContext, p: WorkloadDisaster) -> Result<Outcome<DisasterEffect>> {
        let k = cluster(ctx, &p.target)?;
        let (ns, deleted) = k
            .delete_workload(&p.workload, p.namespace.as_deref())
            .await?;
        Ok(Outcome::Done(DisasterEffect {
            took_effect: Moment::now(),
            lsn: None,
            what: format!(
                "deleted {} in namespace {ns}{}",
                p.workload,
                if deleted {
                    ""
                } else {
                    " (it was gone already)"
                }
            ),
        }))
    }
}

struct ScaleToZero;

#[async_trait]
impl TypedAction for ScaleToZero {
    type Params = WorkloadDisaster;
    type Outputs = DisasterEffect;
    const NAME: &'static str = "disaster.k8s_scale_zero";
    const SUMMARY: &'static str = "Drills only: scales a sandbox Deployment or StatefulSet to zero and waits until its pods are gone; journals the moment the last one went.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, ctx: &StepContext, p: WorkloadDisaster) -> Result<Vec<String>> {
        let k = cluster(ctx, &p.target)?;
        Ok(vec![format!(
            "scales {} in namespace {} to 0",
            p.workload,
            k.ns(p.namespace.as_deref())
        )])
    }
    async fn run(&self, ctx: &StepContext, p: WorkloadDisaster) -> Result<Outcome<DisasterEffect>> {
        let k = cluster(ctx, &p.target)?;
        let out = k
            .scale(&ScaleOptions {
                workload: p.workload.clone(),
                replicas: 0,
                namespace: p.namespace.clone(),
                wait: true,
                timeout: Duration::from_mins(5),
            })
            .await?;
        Ok(Outcome::Done(DisasterEffect {
            took_effect: Moment::now(),
            lsn: None,
            what: format!(
                "scaled {} in namespace {} from {} to 0; its pods are gone",
                p.workload, out.namespace, out.previous
            ),
        }))
    }
}

/// A sandbox namespace.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDisaster {
    /// A target of kind kubernetes.
    pub target: String,
    /// The namespace (one the drill's setup made: `${steps.<id>.outputs.name}`).
    pub name: String,
}

struct DeleteNamespace;

#[async_trait]
impl TypedAction for DeleteNamespace {
    type Params = NamespaceDisaster;
    type Outputs = DisasterEffect;
    const NAME: &'static str = "disaster.namespace_delete";
    const SUMMARY: &'static str = "Drills only: deletes a sandbox namespace and waits until it is gone with everything in it; journals the moment the deletion was asked (the service is down from then).";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<Provides> = Some(CLUSTER);

    async fn plan(&self, _: &StepContext, p: NamespaceDisaster) -> Result<Vec<String>> {
        Ok(vec![format!(
            "deletes namespace {} and everything in it",
            p.name
        )])
    }
    async fn run(
        &self,
        ctx: &StepContext,
        p: NamespaceDisaster,
    ) -> Result<Outcome<DisasterEffect>> {
        let k = cluster(ctx, &p.target)?;
        let took_effect = Moment::now();
        let out = k.namespace_delete(&p.name, Duration::from_mins(5)).await?;
        Ok(Outcome::Done(DisasterEffect {
            took_effect,
            lsn: None,
            what: format!(
                "deleted namespace {}{}",
                p.name,
                if out.changed {
                    ""
                } else {
                    " (it was gone already)"
                }
            ),
        }))
    }
}
