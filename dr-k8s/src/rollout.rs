//! Rollouts: undo to the previous revision or a named one (found as kubectl finds it: the
//! ReplicaSets' revision annotation for a Deployment, ControllerRevisions for a
//! StatefulSet), restart, and environment variables of a container.

use std::collections::BTreeMap;

use dr_core::{err, Result};
use k8s_openapi::api::apps::v1::{ControllerRevision, Deployment, ReplicaSet, StatefulSet};
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::workload::{Workload, WorkloadKind, CAS_ATTEMPTS};
use crate::{Change, Kubernetes};

const REVISION: &str = "deployment.kubernetes.io/revision";

/// A workload's revisions (`kubectl rollout history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RolloutHistory {
    /// The workload.
    pub workload: Workload,
    /// Its namespace.
    pub namespace: String,
    /// The revision it runs.
    pub current: i64,
    /// Every revision, oldest first.
    pub revisions: Vec<Revision>,
}

/// One revision of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Revision {
    /// Its number.
    pub revision: i64,
    /// Its containers' images.
    pub images: Vec<String>,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UndoOutcome {
    /// The workload.
    pub workload: Workload,
    /// Its namespace.
    pub namespace: String,
    /// The revision it ran before.
    pub from_revision: i64,
    /// The revision whose template it runs now (the controller gives it a new number).
    pub to_revision: i64,
    /// The first container's image before and after.
    pub image_before: Option<String>,
    /// After.
    pub image_after: Option<String>,
}

/// What a restart did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestartOutcome {
    /// The workload.
    pub workload: Workload,
    /// Its namespace.
    pub namespace: String,
    /// The `kubectl.kubernetes.io/restartedAt` it set.
    pub restarted_at: String,
}

/// What `drkit k8s set-env` and the `k8s.set_env` step take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvOptions {
    /// `deployment/api`.
    pub workload: Workload,
    /// The namespace (else the connection's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The container (else every container of the pod template, as kubectl does).
    #[serde(default)]
    pub container: Option<String>,
    /// Variables to set (`null`: remove) in every container chosen.
    #[serde(default)]
    pub env: BTreeMap<String, Option<String>>,
    /// Variables to set per container, by container name, after `env` (what an undo of a
    /// change to several containers puts back).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub containers: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

/// What a change of environment variables did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvChange {
    /// The workload.
    pub workload: Workload,
    /// Its namespace.
    pub namespace: String,
    /// Per container, the old value of each variable touched (`null`: absent).
    pub previous: BTreeMap<String, BTreeMap<String, Option<String>>>,
    /// Whether anything changed.
    pub changed: bool,
}

impl EnvOptions {
    /// `env` set in every container of `workload` (kubectl set env's default).
    #[must_use]
    pub fn new(workload: Workload, env: BTreeMap<String, Option<String>>) -> Self {
        Self {
            workload,
            namespace: None,
            container: None,
            env,
            containers: BTreeMap::new(),
        }
    }

    /// The options that put `change.previous` back, in every container it touched.
    #[must_use]
    pub fn undo(change: &EnvChange) -> Self {
        Self {
            namespace: Some(change.namespace.clone()),
            containers: change.previous.clone(),
            ..Self::new(change.workload.clone(), BTreeMap::new())
        }
    }
}

fn template_of(obj: &Value) -> Value {
    obj["spec"]["template"].clone()
}

fn first_image(template: &Value) -> Option<String> {
    template["spec"]["containers"][0]["image"]
        .as_str()
        .map(str::to_owned)
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
}

fn selector(obj: &Value) -> String {
    obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

impl Kubernetes {
    /// A JSON patch of `w` as read at `rv` (see [`Kubernetes::json_patch_cas`]).
    pub(crate) async fn patch_workload(
        &self,
        w: &Workload,
        ns: &str,
        rv: &str,
        ops: Vec<Value>,
    ) -> Result<bool> {
        let what = format!("{w} in namespace {ns}");
        match w.kind {
            WorkloadKind::Deployment => {
                self.json_patch_cas(
                    &Api::<Deployment>::namespaced(self.client.clone(), ns),
                    &w.name,
                    rv,
                    ops,
                    &what,
                )
                .await
            }
            WorkloadKind::StatefulSet => {
                self.json_patch_cas(
                    &Api::<StatefulSet>::namespaced(self.client.clone(), ns),
                    &w.name,
                    rv,
                    ops,
                    &what,
                )
                .await
            }
        }
    }

    /// The revisions of `w` as `(revision, pod template)`, oldest first, and the current
    /// revision.
    async fn revisions(
        &self,
        w: &Workload,
        ns: &str,
        obj: &Value,
    ) -> Result<(Vec<(i64, Value)>, i64)> {
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let lp = ListParams::default().labels(&selector(obj));
        let mut revs: Vec<(i64, Value)> = match w.kind {
            WorkloadKind::Deployment => {
                let rss: Vec<ReplicaSet> =
                    self.list(ns, &lp, &format!("replicasets of {w}")).await?;
                rss.into_iter()
                    .map(|rs| serde_json::to_value(rs).unwrap_or_default())
                    .filter(|rs| owned_by(rs, &uid))
                    .filter_map(|rs| {
                        let n = rs["metadata"]["annotations"][REVISION]
                            .as_str()?
                            .parse()
                            .ok()?;
                        let mut t = rs["spec"]["template"].clone();
                        if let Some(l) = t["metadata"]["labels"].as_object_mut() {
                            l.remove("pod-template-hash");
                        }
                        Some((n, t))
                    })
                    .collect()
            }
            WorkloadKind::StatefulSet => {
                let crs: Vec<ControllerRevision> = self
                    .list(ns, &lp, &format!("controllerrevisions of {w}"))
                    .await?;
                crs.into_iter()
                    .map(|c| serde_json::to_value(c).unwrap_or_default())
                    .filter(|c| owned_by(c, &uid))
                    .map(|c| {
                        let mut t = c["data"]["spec"]["template"].clone();
                        if let Some(o) = t.as_object_mut() {
                            o.remove("$patch");
                        }
                        (c["revision"].as_i64().unwrap_or(0), t)
                    })
                    .collect()
            }
        };
        revs.sort_by_key(|(n, _)| *n);
        // A template no revision has yet is one the controller has not seen: it is the
        // current revision, the next number, and the newest recorded one is before it
        // (an undo right after a change goes back to what ran before the change).
        let now = template_of(obj);
        if !revs.is_empty() && !revs.iter().any(|(_, t)| same_template(t, &now)) {
            let pending = revs.last().map_or(1, |(n, _)| n + 1);
            return Ok((revs, pending));
        }
        // The revision whose template the workload runs: a Deployment's own annotation
        // lags behind its new ReplicaSet for a moment after a change, the template does not.
        let by_template = revs
            .iter()
            .rev()
            .find(|(_, t)| same_template(t, &now))
            .map(|(n, _)| *n);
        let current = match w.kind {
            WorkloadKind::Deployment => by_template.or_else(|| {
                obj["metadata"]["annotations"][REVISION]
                    .as_str()
                    .and_then(|r| r.parse().ok())
            }),
            WorkloadKind::StatefulSet => by_template,
        }
        .or_else(|| revs.last().map(|(n, _)| *n))
        .unwrap_or(0);
        Ok((revs, current))
    }

    /// `kubectl rollout history`: every revision of `w` with its images, and which one
    /// runs now.
    pub async fn rollout_history(
        &self,
        w: &Workload,
        namespace: Option<&str>,
    ) -> Result<RolloutHistory> {
        let ns = self.ns(namespace).to_owned();
        let obj = self.workload_json(w, &ns).await?;
        let (revs, current) = self.revisions(w, &ns, &obj).await?;
        Ok(RolloutHistory {
            workload: w.clone(),
            namespace: ns,
            current,
            revisions: revs
                .iter()
                .map(|(n, t)| Revision {
                    revision: *n,
                    images: t["spec"]["containers"]
                        .as_array()
                        .map(|cs| {
                            cs.iter()
                                .filter_map(|c| c["image"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// The change [`Kubernetes::rollout_undo`] would make.
    pub async fn plan_rollout_undo(
        &self,
        w: &Workload,
        namespace: Option<&str>,
        to_revision: Option<i64>,
    ) -> Result<Change> {
        let ns = self.ns(namespace).to_owned();
        let obj = self.workload_json(w, &ns).await?;
        let (revs, current) = self.revisions(w, &ns, &obj).await?;
        let (to, template) = pick(w, &revs, current, to_revision)?;
        Ok(Change {
            object: format!("{w} in namespace {ns}, context {}", self.context()),
            field: "revision (image)".into(),
            from: Some(format!(
                "{current} ({})",
                first_image(&template_of(&obj)).unwrap_or_default()
            )),
            to: Some(format!(
                "{to} ({})",
                first_image(&template).unwrap_or_default()
            )),
        })
    }

    /// Rolls `w` back to `to_revision`, or to the revision before the current one, by
    /// putting that revision's pod template back (compare-and-swap).
    pub async fn rollout_undo(
        &self,
        w: &Workload,
        namespace: Option<&str>,
        to_revision: Option<i64>,
    ) -> Result<UndoOutcome> {
        let ns = self.ns(namespace).to_owned();
        for _ in 0..CAS_ATTEMPTS {
            let obj = self.workload_json(w, &ns).await?;
            let (revs, current) = self.revisions(w, &ns, &obj).await?;
            let (to, template) = pick(w, &revs, current, to_revision)?;
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ops = vec![json!({"op": "replace", "path": "/spec/template", "value": template})];
            if self.patch_workload(w, &ns, &rv, ops).await? {
                return Ok(UndoOutcome {
                    workload: w.clone(),
                    namespace: ns,
                    from_revision: current,
                    to_revision: to,
                    image_before: first_image(&template_of(&obj)),
                    image_after: first_image(&template),
                });
            }
        }
        Err(crate::cas::lost_races(&format!("{w} in namespace {ns}")))
    }

    /// Restarts `w`'s pods the way `kubectl rollout restart` does: a new
    /// `kubectl.kubernetes.io/restartedAt` annotation on its pod template.
    pub async fn rollout_restart(
        &self,
        w: &Workload,
        namespace: Option<&str>,
    ) -> Result<RestartOutcome> {
        let ns = self.ns(namespace).to_owned();
        let at = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        for _ in 0..CAS_ATTEMPTS {
            let obj = self.workload_json(w, &ns).await?;
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut annotations = obj["spec"]["template"]["metadata"]["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            annotations.insert("kubectl.kubernetes.io/restartedAt".into(), json!(at));
            let ops = vec![
                json!({"op": "add", "path": "/spec/template/metadata/annotations", "value": annotations}),
            ];
            let ops = if obj["spec"]["template"]["metadata"].is_object() {
                ops
            } else {
                vec![
                    json!({"op": "add", "path": "/spec/template/metadata", "value": {"annotations": annotations}}),
                ]
            };
            if self.patch_workload(w, &ns, &rv, ops).await? {
                return Ok(RestartOutcome {
                    workload: w.clone(),
                    namespace: ns,
                    restarted_at: at,
                });
            }
        }
        Err(crate::cas::lost_races(&format!("{w} in namespace {ns}")))
    }

    /// The changes [`Kubernetes::set_env`] would make, one per container and variable.
    pub async fn plan_set_env(&self, o: &EnvOptions) -> Result<Vec<Change>> {
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        let obj = self.workload_json(&o.workload, &ns).await?;
        let (_, edits) = env_edit(&obj, o)?;
        Ok(edits
            .into_iter()
            .map(|e| Change {
                object: format!(
                    "{} container {} in namespace {ns}, context {}",
                    o.workload,
                    e.container,
                    self.context()
                ),
                field: format!("env.{}", e.name),
                from: e.from,
                to: e.to,
            })
            .collect())
    }

    /// Sets (or, for `null`, removes) environment variables of the pod template's
    /// containers (seed 003's `kubectl set env DATABASE_HOST=…`); returns the old values.
    pub async fn set_env(&self, o: &EnvOptions) -> Result<EnvChange> {
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        for _ in 0..CAS_ATTEMPTS {
            let obj = self.workload_json(&o.workload, &ns).await?;
            let (containers, edits) = env_edit(&obj, o)?;
            let changed = edits.iter().any(|e| e.from != e.to);
            let mut previous = Previous::new();
            for e in edits {
                previous
                    .entry(e.container)
                    .or_default()
                    .insert(e.name, e.from);
            }
            if !changed {
                return Ok(EnvChange {
                    workload: o.workload.clone(),
                    namespace: ns,
                    previous,
                    changed: false,
                });
            }
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ops = vec![
                json!({"op": "replace", "path": "/spec/template/spec/containers", "value": containers}),
            ];
            if self.patch_workload(&o.workload, &ns, &rv, ops).await? {
                return Ok(EnvChange {
                    workload: o.workload.clone(),
                    namespace: ns,
                    previous,
                    changed: true,
                });
            }
        }
        Err(crate::cas::lost_races(&format!(
            "{} in namespace {ns}",
            o.workload
        )))
    }
}

type Previous = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// One variable of one container: its value before and after (`None`: absent).
struct EnvEdit {
    container: String,
    name: String,
    from: Option<String>,
    to: Option<String>,
}

/// The containers with `o.env` and `o.containers` applied, and each variable touched.
fn env_edit(obj: &Value, o: &EnvOptions) -> Result<(Vec<Value>, Vec<EnvEdit>)> {
    if o.env.is_empty() && o.containers.values().all(BTreeMap::is_empty) {
        return Err(err!(InvalidInput, "{}: give variables to set", o.workload));
    }
    let mut containers = obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<String> = containers
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    for want in o.container.iter().chain(o.containers.keys()) {
        if !names.contains(want) {
            return Err(err!(
                NotFound,
                "{} has no container {want:?}; its containers are {}",
                o.workload,
                names.join(", ")
            ));
        }
    }
    let mut edits = Vec::new();
    for c in &mut containers {
        let name = c["name"].as_str().unwrap_or_default().to_owned();
        let mut wanted = BTreeMap::new();
        if o.container.as_ref().is_none_or(|w| *w == name) {
            wanted.extend(o.env.clone());
        }
        if let Some(vars) = o.containers.get(&name) {
            wanted.extend(vars.clone());
        }
        if wanted.is_empty() {
            continue;
        }
        let mut env = c["env"].as_array().cloned().unwrap_or_default();
        for (k, v) in wanted {
            let pos = env.iter().position(|e| e["name"] == k.as_str());
            let from = pos.and_then(|i| env[i]["value"].as_str().map(str::to_owned));
            match (pos, &v) {
                (Some(i), Some(v)) => env[i] = json!({"name": k, "value": v}),
                (None, Some(v)) => env.push(json!({"name": k, "value": v})),
                (Some(i), None) => {
                    env.remove(i);
                }
                (None, None) => {}
            }
            edits.push(EnvEdit {
                container: name.clone(),
                name: k,
                from,
                to: v,
            });
        }
        if env.is_empty() {
            // As the API server stores it: no empty list.
            if let Some(m) = c.as_object_mut() {
                m.remove("env");
            }
        } else {
            c["env"] = Value::Array(env);
        }
    }
    Ok((containers, edits))
}

fn same_template(a: &Value, b: &Value) -> bool {
    fn clean(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, x)| {
                        !(x.is_null()
                            || x.as_object().is_some_and(serde_json::Map::is_empty)
                            || x.as_array().is_some_and(Vec::is_empty))
                    })
                    .map(|(k, x)| (k.clone(), clean(x)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(clean).collect()),
            other => other.clone(),
        }
    }
    clean(a) == clean(b)
}

fn pick(
    w: &Workload,
    revs: &[(i64, Value)],
    current: i64,
    to: Option<i64>,
) -> Result<(i64, Value)> {
    let known = || {
        revs.iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match to {
        Some(n) => revs.iter().find(|(r, _)| *r == n).cloned().ok_or_else(|| {
            err!(
                NotFound,
                "{w} has no revision {n}; its revisions are {}",
                known()
            )
        }),
        None => revs
            .iter()
            .rev()
            .find(|(r, _)| *r < current)
            .cloned()
            .ok_or_else(|| {
                err!(
                    NotFound,
                    "{w} has no revision before {current} to go back to (revisions: {})",
                    known()
                )
            }),
    }
}
