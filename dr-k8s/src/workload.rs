//! Deployments and StatefulSets: scale (remembering the previous count), and wait until
//! the controller has done what the spec asks.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use dr_core::{err, Error, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{classify, is_conflict};
use crate::{Change, Kubernetes};

/// How many times a write that lost a race is tried again on fresh state.
pub(crate) const CAS_ATTEMPTS: u32 = 10;

/// A Deployment or a StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

/// `deployment/api`, `sts/postgres` — kubectl's way of naming a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Workload {
    /// Which kind.
    pub kind: WorkloadKind,
    /// Its name.
    pub name: String,
}

impl schemars::JsonSchema for Workload {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Workload".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(deployment|statefulset)/.+$",
            "x-type": "deployment/NAME|statefulset/NAME"
        })
    }
}

impl FromStr for Workload {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (kind, name) = s.split_once('/').ok_or_else(|| {
            err!(
                InvalidInput,
                "workload {s:?} is not KIND/NAME; write deployment/NAME or statefulset/NAME"
            )
        })?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" | "deployment.apps" => WorkloadKind::Deployment,
            "statefulset" | "statefulsets" | "sts" | "statefulset.apps" => WorkloadKind::StatefulSet,
            other => {
                return Err(err!(InvalidInput, "workload kind {other:?} is not one drkit scales; use deployment/NAME or statefulset/NAME"))
            }
        };
        if name.is_empty() {
            return Err(err!(
                InvalidInput,
                "workload {s:?} has no name after the slash"
            ));
        }
        Ok(Self {
            kind,
            name: name.to_owned(),
        })
    }
}

impl TryFrom<String> for Workload {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Workload> for String {
    fn from(w: Workload) -> Self {
        w.to_string()
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
        };
        write!(f, "{kind}/{}", self.name)
    }
}

/// What `drkit k8s scale`, Python and the `k8s.scale` step take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleOptions {
    /// `deployment/api`.
    pub workload: Workload,
    /// The replica count to set.
    pub replicas: i32,
    /// The namespace (else the connection's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Wait until the replicas are ready (scale-up) or the pods are gone (scale-down).
    #[serde(default)]
    pub wait: bool,
    /// Longest wait.
    #[serde(default = "default_timeout", with = "dr_core::duration::human")]
    #[schemars(schema_with = "dr_core::duration::json_schema")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_mins(5)
}

/// What a scale did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScaleOutcome {
    /// The workload.
    pub workload: Workload,
    /// Its namespace.
    pub namespace: String,
    /// The replica count before: give it back to undo.
    pub previous: i32,
    /// The replica count now.
    pub replicas: i32,
    /// Ready replicas when it waited.
    pub ready: Option<i32>,
}

/// Where a workload's rollout stands, read from its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WaitOutcome {
    /// The workload.
    pub workload: Workload,
    /// The spec's replicas.
    pub desired: i32,
    /// Pods the controller counts.
    pub replicas: i32,
    /// Ready pods.
    pub ready: i32,
    /// Pods of the current template.
    pub updated: i32,
    /// Available pods.
    pub available: i32,
    /// Whether the controller has seen the latest spec.
    pub observed: bool,
    /// Seconds waited.
    pub seconds: f64,
}

impl WaitOutcome {
    /// Whether the rollout is done: every replica updated, ready and available, nothing
    /// old left.
    #[must_use]
    pub fn done(&self) -> bool {
        self.observed
            && self.updated == self.desired
            && self.ready == self.desired
            && self.available == self.desired
            && self.replicas == self.desired
    }

    /// kubectl's words for what is still missing.
    #[must_use]
    pub fn waiting_for(&self) -> String {
        if !self.observed {
            "the controller to see the new spec".to_owned()
        } else if self.updated < self.desired {
            format!("{} of {} new replicas updated", self.updated, self.desired)
        } else if self.replicas > self.updated {
            format!("{} old replicas to terminate", self.replicas - self.updated)
        } else {
            format!(
                "{} of {} updated replicas available",
                self.available, self.desired
            )
        }
    }
}

fn progress(w: &Workload, obj: &serde_json::Value) -> WaitOutcome {
    let n = |v: &serde_json::Value| i32::try_from(v.as_i64().unwrap_or(0)).unwrap_or(0);
    let st = &obj["status"];
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
    WaitOutcome {
        workload: w.clone(),
        desired: i32::try_from(obj["spec"]["replicas"].as_i64().unwrap_or(1)).unwrap_or(1),
        replicas: n(&st["replicas"]),
        ready: n(&st["readyReplicas"]),
        updated: n(&st["updatedReplicas"]),
        available: n(&st["availableReplicas"]),
        observed: st["observedGeneration"].as_i64().unwrap_or(0) >= generation,
        seconds: 0.0,
    }
}

fn object_name(w: &Workload, ns: &str) -> String {
    format!("{w} in namespace {ns}")
}

impl Kubernetes {
    async fn read_scale(&self, w: &Workload, ns: &str) -> Result<(i32, String)> {
        let scale = match w.kind {
            WorkloadKind::Deployment => {
                Api::<Deployment>::namespaced(self.client.clone(), ns)
                    .get_scale(&w.name)
                    .await
            }
            WorkloadKind::StatefulSet => {
                Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                    .get_scale(&w.name)
                    .await
            }
        }
        .map_err(|e| classify(self.context(), "get", &object_name(w, ns), e))?;
        let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        let rv = scale.metadata.resource_version.unwrap_or_default();
        Ok((replicas, rv))
    }

    /// Deletes `w` (its pods go with it); returns its namespace, and whether it was
    /// there to delete.
    pub async fn delete_workload(
        &self,
        w: &Workload,
        namespace: Option<&str>,
    ) -> Result<(String, bool)> {
        let ns = self.ns(namespace).to_owned();
        let dp = kube::api::DeleteParams::foreground();
        let deleted = match w.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(self.client.clone(), &ns)
                .delete(&w.name, &dp)
                .await
                .map(|_| ()),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), &ns)
                .delete(&w.name, &dp)
                .await
                .map(|_| ()),
        };
        match deleted {
            Ok(()) => Ok((ns, true)),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok((ns, false)),
            Err(e) => Err(classify(self.context(), "delete", &object_name(w, &ns), e)),
        }
    }

    /// The change [`Kubernetes::scale`] would make, read from live state.
    pub async fn plan_scale(&self, o: &ScaleOptions) -> Result<Change> {
        let ns = self.ns(o.namespace.as_deref());
        let (now, _) = self.read_scale(&o.workload, ns).await?;
        Ok(Change {
            object: format!(
                "{} in context {}",
                object_name(&o.workload, ns),
                self.context()
            ),
            field: "replicas".into(),
            from: Some(now.to_string()),
            to: Some(o.replicas.to_string()),
        })
    }

    /// Sets the replica count through the `/scale` subresource, as a compare-and-swap on
    /// its `resourceVersion`; returns the count before. With `wait`, waits until the
    /// replicas are ready, or, scaling to zero, until the pods are gone.
    pub async fn scale(&self, o: &ScaleOptions) -> Result<ScaleOutcome> {
        if o.replicas < 0 {
            return Err(err!(
                InvalidInput,
                "replicas must be 0 or more, not {}",
                o.replicas
            ));
        }
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        let w = &o.workload;
        let mut previous = None;
        for attempt in 1..=CAS_ATTEMPTS {
            let (now, rv) = self.read_scale(w, &ns).await?;
            previous.get_or_insert(now);
            if now == o.replicas {
                break;
            }
            let patch = Patch::Merge(
                json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": o.replicas}}),
            );
            let pp = PatchParams::default();
            let r = match w.kind {
                WorkloadKind::Deployment => {
                    Api::<Deployment>::namespaced(self.client.clone(), &ns)
                        .patch_scale(&w.name, &pp, &patch)
                        .await
                }
                WorkloadKind::StatefulSet => {
                    Api::<StatefulSet>::namespaced(self.client.clone(), &ns)
                        .patch_scale(&w.name, &pp, &patch)
                        .await
                }
            };
            match r {
                Ok(_) => break,
                Err(e) if is_conflict(&e) && attempt < CAS_ATTEMPTS => {
                    tracing::debug!(
                        "scale of {w} lost a race (attempt {attempt}); reading it again"
                    );
                }
                Err(e) => return Err(classify(self.context(), "patch", &object_name(w, &ns), e)),
            }
        }
        let ready = if o.wait {
            Some(self.wait_ready(w, Some(&ns), o.timeout).await?.ready)
        } else {
            None
        };
        Ok(ScaleOutcome {
            workload: w.clone(),
            namespace: ns,
            previous: previous.unwrap_or(0),
            replicas: o.replicas,
            ready,
        })
    }

    /// `w` as JSON.
    pub(crate) async fn workload_json(&self, w: &Workload, ns: &str) -> Result<serde_json::Value> {
        let v = match w.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(self.client.clone(), ns)
                .get(&w.name)
                .await
                .map(|d| serde_json::to_value(d).unwrap_or_default()),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                .get(&w.name)
                .await
                .map(|d| serde_json::to_value(d).unwrap_or_default()),
        };
        v.map_err(|e| classify(self.context(), "get", &object_name(w, ns), e))
    }

    /// Every Deployment and StatefulSet of `ns`, as JSON.
    pub(crate) async fn workloads_in(
        &self,
        ns: &str,
    ) -> Result<Vec<(Workload, serde_json::Value)>> {
        let lp = ListParams::default();
        let mut out = Vec::new();
        for d in self.list::<Deployment>(ns, &lp, "deployments").await? {
            let name = d.metadata.name.clone().unwrap_or_default();
            out.push((
                Workload {
                    kind: WorkloadKind::Deployment,
                    name,
                },
                serde_json::to_value(d).unwrap_or_default(),
            ));
        }
        for s in self.list::<StatefulSet>(ns, &lp, "statefulsets").await? {
            let name = s.metadata.name.clone().unwrap_or_default();
            out.push((
                Workload {
                    kind: WorkloadKind::StatefulSet,
                    name,
                },
                serde_json::to_value(s).unwrap_or_default(),
            ));
        }
        Ok(out)
    }

    async fn pods_left(&self, obj: &serde_json::Value, ns: &str) -> Result<usize> {
        let labels = obj["spec"]["selector"]["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let lp = ListParams::default().labels(&labels);
        let pods: Vec<Pod> = self.list(ns, &lp, &format!("pods {labels}")).await?;
        Ok(pods.len())
    }

    /// Waits until `w`'s rollout is done (see [`WaitOutcome::done`]); scaled to zero,
    /// until its pods are gone. It watches the object (no polling); past `timeout` it
    /// fails saying what it was still waiting for.
    pub async fn wait_ready(
        &self,
        w: &Workload,
        namespace: Option<&str>,
        timeout: Duration,
    ) -> Result<WaitOutcome> {
        let ns = self.ns(namespace).to_owned();
        let started = Instant::now();
        let mut last = progress(w, &self.workload_json(w, &ns).await?);
        loop {
            if last.done()
                && (last.desired > 0
                    || self
                        .pods_left(&self.workload_json(w, &ns).await?, &ns)
                        .await?
                        == 0)
            {
                last.seconds = started.elapsed().as_secs_f64();
                return Ok(last);
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(err!(
                    Timeout,
                    "{} in context {}: not ready after {}: waiting for {}; see `kubectl rollout status {w} -n {ns}` and the pods' events",
                    object_name(w, &ns),
                    self.context(),
                    dr_core::duration::format(timeout),
                    last.waiting_for()
                ));
            }
            // Past the deadline, the loop says so above.
            if let Ok(r) = tokio::time::timeout(left, self.next_change(w, &ns, &last)).await {
                last = r?;
            }
        }
    }

    /// The workload's state after its next change (or after a second, when a scale-down
    /// waits for pods the workload's status no longer counts).
    async fn next_change(&self, w: &Workload, ns: &str, last: &WaitOutcome) -> Result<WaitOutcome> {
        if last.done() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(progress(w, &self.workload_json(w, ns).await?));
        }
        let obj = self.workload_json(w, ns).await?;
        let now = progress(w, &obj);
        if now != *last {
            return Ok(now);
        }
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_owned();
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={}", w.name))
            .timeout(60);
        let what = object_name(w, ns);
        let mut stream = match w.kind {
            WorkloadKind::Deployment => Api::<Deployment>::namespaced(self.client.clone(), ns)
                .watch(&wp, &rv)
                .await
                .map_err(|e| classify(self.context(), "watch", &what, e))?
                .map_ok(MapValue::map_value)
                .boxed(),
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                .watch(&wp, &rv)
                .await
                .map_err(|e| classify(self.context(), "watch", &what, e))?
                .map_ok(MapValue::map_value)
                .boxed(),
        };
        while let Some(ev) = stream.next().await {
            match ev.map_err(|e| classify(self.context(), "watch", &what, e))? {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    let p = progress(w, &o);
                    if p != *last {
                        return Ok(p);
                    }
                }
                WatchEvent::Deleted(_) => {
                    return Err(err!(
                        NotFound,
                        "{what} in context {} was deleted while drkit waited for it",
                        self.context()
                    ))
                }
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => {
                    return Err(err!(External, "watching {what}: {}", e.message))
                }
            }
        }
        // The watch ended (its timeout): read again.
        Ok(progress(w, &self.workload_json(w, ns).await?))
    }
}

/// Turns typed watch events into JSON ones.
trait MapValue {
    fn map_value(self) -> WatchEvent<serde_json::Value>;
}

impl<K: Serialize + Clone + for<'de> Deserialize<'de> + fmt::Debug> MapValue for WatchEvent<K> {
    fn map_value(self) -> WatchEvent<serde_json::Value> {
        let v = |o: K| serde_json::to_value(o).unwrap_or_default();
        match self {
            WatchEvent::Added(o) => WatchEvent::Added(v(o)),
            WatchEvent::Modified(o) => WatchEvent::Modified(v(o)),
            WatchEvent::Deleted(o) => WatchEvent::Deleted(v(o)),
            WatchEvent::Bookmark(b) => WatchEvent::Bookmark(b),
            WatchEvent::Error(e) => WatchEvent::Error(e),
        }
    }
}
