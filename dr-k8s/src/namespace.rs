//! Namespaces (seed 000's monthly test in a throwaway namespace), every Deployment of a
//! namespace available, a pod deleted and replaced (seed 002's `kubectl delete pod
//! postgres-0`), and the last lines of a pod's logs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dr_core::{err, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::classify;
use crate::workload::{Workload, WorkloadKind};
use crate::Kubernetes;

/// How often the waits here read again (they wait for objects to go or to appear,
/// which a watch of one object cannot tell); never faster than once a second.
const POLL: Duration = Duration::from_secs(1);

/// What a namespace creation or deletion did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NamespaceOutcome {
    /// The namespace.
    pub name: String,
    /// Whether this call created (or deleted) it; false when it already was so.
    pub changed: bool,
}

/// A pod deleted and replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PodReplaced {
    /// The pod deleted.
    pub deleted: String,
    /// The pod that replaced it, ready.
    pub replacement: String,
    /// Seconds until it was ready.
    pub seconds: f64,
}

/// The last lines of a pod's containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PodLogs {
    /// The pod.
    pub pod: String,
    /// Lines per container.
    pub containers: BTreeMap<String, Vec<String>>,
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

impl Kubernetes {
    /// Creates namespace `name` with `labels`; an existing one is left as it is.
    pub async fn namespace_create(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<NamespaceOutcome> {
        let api = Api::<Namespace>::all(self.client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                .map_err(|e| err!(InvalidInput, "namespace {name:?}: {e}"))?;
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(NamespaceOutcome {
                name: name.to_owned(),
                changed: true,
            }),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(NamespaceOutcome {
                name: name.to_owned(),
                changed: false,
            }),
            Err(e) => Err(classify(
                self.context(),
                "create",
                &format!("namespace {name}"),
                e,
            )),
        }
    }

    /// Deletes namespace `name` and waits until it is gone, with everything in it.
    pub async fn namespace_delete(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<NamespaceOutcome> {
        let api = Api::<Namespace>::all(self.client.clone());
        let what = format!("namespace {name}");
        let changed = match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(s)) if s.code == 404 => false,
            Err(e) => return Err(classify(self.context(), "delete", &what, e)),
        };
        let started = Instant::now();
        loop {
            match api.get_opt(name).await {
                Ok(None) => {
                    return Ok(NamespaceOutcome {
                        name: name.to_owned(),
                        changed,
                    })
                }
                Ok(Some(_)) => {}
                Err(e) => return Err(classify(self.context(), "get", &what, e)),
            }
            if started.elapsed() >= timeout {
                return Err(err!(Timeout, "{what} in context {:?} is still terminating after {}; look for finalizers on it and its objects", self.context(), dr_core::duration::format(timeout)));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every Deployment of namespace `ns` is available (seed 000's check
    /// after a restore); returns their names.
    pub async fn wait_available(
        &self,
        namespace: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let ns = self.ns(namespace).to_owned();
        let started = Instant::now();
        let list: Vec<Deployment> = self
            .list(&ns, &ListParams::default(), "deployments")
            .await?;
        let mut names = Vec::new();
        for d in list {
            let name = d.metadata.name.unwrap_or_default();
            let w = Workload {
                kind: WorkloadKind::Deployment,
                name: name.clone(),
            };
            self.wait_ready(&w, Some(&ns), timeout.saturating_sub(started.elapsed()))
                .await?;
            names.push(name);
        }
        Ok(names)
    }

    /// Deletes pod `name` and waits until its controller has replaced it and the
    /// replacement is ready (a StatefulSet's keeps the name).
    pub async fn pod_delete(
        &self,
        name: &str,
        namespace: Option<&str>,
        timeout: Duration,
    ) -> Result<PodReplaced> {
        let ns = self.ns(namespace).to_owned();
        let api = Api::<Pod>::namespaced(self.client.clone(), &ns);
        let what = format!("pod {name} in namespace {ns}");
        let old = api
            .get(name)
            .await
            .map_err(|e| classify(self.context(), "get", &what, e))?;
        let old = serde_json::to_value(old).unwrap_or_default();
        let owner = old["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["controller"] == true).cloned())
            .ok_or_else(|| err!(InvalidInput, "{what} has no controller to replace it; delete it with kubectl if that is what you want"))?;
        let old_uid = old["metadata"]["uid"].clone();
        api.delete(name, &DeleteParams::default())
            .await
            .map_err(|e| classify(self.context(), "delete", &what, e))?;
        let started = Instant::now();
        loop {
            let pods: Vec<Pod> = self.list(&ns, &ListParams::default(), "pods").await?;
            let replacement = pods
                .into_iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .find(|p| {
                    p["metadata"]["uid"] != old_uid
                        && ready(p)
                        && p["metadata"]["ownerReferences"]
                            .as_array()
                            .is_some_and(|r| r.iter().any(|r| r["uid"] == owner["uid"]))
                        && (owner["kind"] != "StatefulSet" || p["metadata"]["name"] == name)
                });
            if let Some(p) = replacement {
                return Ok(PodReplaced {
                    deleted: name.to_owned(),
                    replacement: p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            if started.elapsed() >= timeout {
                return Err(err!(Timeout, "{what} was deleted but {} {} has not replaced it with a ready pod within {}; see its events", owner["kind"].as_str().unwrap_or("its controller"), owner["name"].as_str().unwrap_or_default(), dr_core::duration::format(timeout)));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The last `tail` lines of each container of pod `name`.
    pub async fn logs(&self, name: &str, namespace: Option<&str>, tail: i64) -> Result<PodLogs> {
        let ns = self.ns(namespace).to_owned();
        let api = Api::<Pod>::namespaced(self.client.clone(), &ns);
        let what = format!("pod {name} in namespace {ns}");
        let pod = api
            .get(name)
            .await
            .map_err(|e| classify(self.context(), "get", &what, e))?;
        let containers: Vec<String> = pod
            .spec
            .map(|s| s.containers.into_iter().map(|c| c.name).collect())
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for c in containers {
            let lp = LogParams {
                container: Some(c.clone()),
                tail_lines: Some(tail),
                ..LogParams::default()
            };
            let text = api.logs(name, &lp).await.map_err(|e| {
                classify(
                    self.context(),
                    "get",
                    &format!("logs of container {c} of {what}"),
                    e,
                )
            })?;
            out.insert(c, text.lines().map(str::to_owned).collect());
        }
        Ok(PodLogs {
            pod: name.to_owned(),
            containers: out,
        })
    }
}
