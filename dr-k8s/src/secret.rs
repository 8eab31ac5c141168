//! Secrets: set keys (given values or an env file) or rotate them to fresh random values
//! (seed 002's breach), then restart the workloads that use the Secret.
//!
//! A value is never printed, returned, journaled or shown in a plan: results and plans
//! name keys only. What a change replaced is kept in the cluster, in the Secret
//! `NAME-drkit-previous` beside it (written before the change), so that an undo can put
//! it back without the old values ever leaving the cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use dr_core::{err, Result};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{classify, is_conflict};
use crate::workload::{Workload, CAS_ATTEMPTS};
use crate::{Change, Kubernetes};

/// The suffix of the Secret that keeps what the last change replaced.
pub const PREVIOUS_SUFFIX: &str = "-drkit-previous";

/// What `drkit k8s secret set|rotate` and the `k8s.secret_set` / `k8s.secret_rotate`
/// steps take.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretOptions {
    /// The Secret.
    pub name: String,
    /// Its namespace (else the connection's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Keys to set to these values.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Keys to set from a `KEY=VALUE` file (`kubectl create secret --from-env-file`).
    #[serde(default)]
    pub from_env_file: Option<PathBuf>,
    /// Keys to rotate to fresh random values.
    #[serde(default)]
    pub rotate: Vec<String>,
    /// Random bytes per rotated value (encoded base64url, no padding).
    #[serde(default = "default_length")]
    pub length: usize,
    /// Restart the Deployments and StatefulSets that use the Secret (default true).
    #[serde(default = "yes")]
    pub restart: bool,
    /// Create the Secret when it does not exist.
    #[serde(default)]
    pub create: bool,
}

fn default_length() -> usize {
    32
}

fn yes() -> bool {
    true
}

/// What a Secret change did: key names only, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SecretChange {
    /// The Secret.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The keys whose value changed.
    pub changed: Vec<String>,
    /// The Secret that holds what was replaced (`NAME-drkit-previous`), for an undo.
    pub previous: String,
    /// Whether the Secret was created.
    pub created: bool,
    /// The workloads restarted because they use it.
    pub restarted: Vec<String>,
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn fresh(length: usize) -> Result<String> {
    let mut bytes = vec![0u8; length.max(16)];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| err!(External, "no randomness for a new secret value: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn env_file(path: &PathBuf) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| dr_core::Error::io(format!("reading env file {}", path.display()), e))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| err!(InvalidInput, "{}:{}: not KEY=VALUE", path.display(), i + 1))?;
        out.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(out)
}

impl SecretOptions {
    /// The new values by key (fresh random ones for `rotate`).
    fn values(&self) -> Result<BTreeMap<String, String>> {
        let mut v = self.set.clone();
        if let Some(f) = &self.from_env_file {
            v.extend(env_file(f)?);
        }
        for k in &self.rotate {
            if v.insert(k.clone(), fresh(self.length)?).is_some() {
                return Err(err!(
                    InvalidInput,
                    "Secret {}: key {k:?} is both set and rotated",
                    self.name
                ));
            }
        }
        if v.is_empty() {
            return Err(err!(
                InvalidInput,
                "Secret {}: give keys to set or rotate",
                self.name
            ));
        }
        Ok(v)
    }
}

fn uses_secret(obj: &Value, name: &str) -> bool {
    let spec = &obj["spec"]["template"]["spec"];
    let in_containers = |field: &str| {
        spec[field].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["env"].as_array().is_some_and(|env| {
                    env.iter()
                        .any(|e| e["valueFrom"]["secretKeyRef"]["name"] == name)
                }) || c["envFrom"]
                    .as_array()
                    .is_some_and(|ef| ef.iter().any(|e| e["secretRef"]["name"] == name))
            })
        })
    };
    let in_volumes = spec["volumes"]
        .as_array()
        .is_some_and(|vs| vs.iter().any(|v| v["secret"]["secretName"] == name));
    in_containers("containers") || in_containers("initContainers") || in_volumes
}

impl Kubernetes {
    async fn read_secret(&self, ns: &str, name: &str) -> Result<Option<Secret>> {
        Api::<Secret>::namespaced(self.client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|e| {
                classify(
                    self.context(),
                    "get",
                    &format!("secret {name} in namespace {ns}"),
                    e,
                )
            })
    }

    /// What [`Kubernetes::secret_set`] would change: key names, never values.
    pub async fn plan_secret(&self, o: &SecretOptions) -> Result<Change> {
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        let now = self.read_secret(&ns, &o.name).await?;
        if now.is_none() && !o.create {
            return Err(err!(NotFound, "secret {} in namespace {ns} in context {:?} does not exist; give create: true to create it", o.name, self.context()));
        }
        // Values known now are compared with what the Secret holds; a value a plan
        // cannot know yet (another step's output) is said to be set at run time.
        let current = now
            .as_ref()
            .and_then(|s| s.data.clone())
            .unwrap_or_default();
        let mut values: BTreeMap<String, String> = o.set.clone();
        if let Some(f) = &o.from_env_file {
            values.extend(env_file(f)?);
        }
        let later =
            |v: &str| dr_core::runbook::is_unknown(&serde_json::Value::String(v.to_owned()));
        let mut keys: Vec<String> = values
            .iter()
            .filter(|(k, v)| !later(v) && current.get(*k).is_none_or(|c| c.0 != v.as_bytes()))
            .map(|(k, _)| k.clone())
            .collect();
        let at_run: Vec<&String> = values
            .iter()
            .filter(|(_, v)| later(v))
            .map(|(k, _)| k)
            .collect();
        keys.extend(o.rotate.iter().cloned());
        keys.sort();
        keys.dedup();
        Ok(Change {
            object: format!(
                "secret {} in namespace {ns}, context {}",
                o.name,
                self.context()
            ),
            field: "data".into(),
            from: Some(if now.is_some() {
                "(current values)".into()
            } else {
                "(absent)".into()
            }),
            to: Some({
                let mut said = Vec::new();
                if !keys.is_empty() {
                    said.push(format!(
                        "{} key{} change ({}){}",
                        keys.len(),
                        if keys.len() == 1 { "" } else { "s" },
                        keys.join(", "),
                        if o.rotate.is_empty() {
                            ""
                        } else {
                            ", rotated to fresh random values"
                        }
                    ));
                }
                if !at_run.is_empty() {
                    said.push(format!(
                        "set from what an earlier step gives at run time: {}",
                        at_run
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if said.is_empty() {
                    "no key changes (every value is the one it holds)".to_owned()
                } else {
                    said.join("; ")
                }
            }),
        })
    }

    /// Sets or rotates keys of a Secret (compare-and-swap), keeping what it replaced in
    /// `NAME-drkit-previous`, then restarts the workloads that use it.
    pub async fn secret_set(&self, o: &SecretOptions) -> Result<SecretChange> {
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        let what = format!("secret {} in namespace {ns}", o.name);
        let values = o.values()?;
        let api = Api::<Secret>::namespaced(self.client.clone(), &ns);
        let previous_name = format!("{}{PREVIOUS_SUFFIX}", o.name);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.read_secret(&ns, &o.name).await?;
            let Some(current) = current else {
                if !o.create {
                    return Err(err!(NotFound, "{what} in context {:?} does not exist; give create: true (--create) to create it", self.context()));
                }
                let data: BTreeMap<String, String> = values
                    .iter()
                    .map(|(k, v)| (k.clone(), b64(v.as_bytes())))
                    .collect();
                let s: Secret = serde_json::from_value(json!({"metadata": {"name": o.name, "namespace": ns}, "type": "Opaque", "data": data}))
                    .map_err(|e| err!(External, "building {what}: {e}"))?;
                match api.create(&PostParams::default(), &s).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => return Err(classify(self.context(), "create", &what, e)),
                }
                let restarted = if o.restart {
                    self.restart_users(&ns, &o.name).await?
                } else {
                    Vec::new()
                };
                return Ok(SecretChange {
                    name: o.name.clone(),
                    namespace: ns,
                    changed: values.into_keys().collect(),
                    previous: previous_name,
                    created: true,
                    restarted,
                });
            };
            let old = serde_json::to_value(&current).unwrap_or_default();
            let rv = old["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let changed: Vec<String> = values
                .iter()
                .filter(|(k, v)| {
                    old["data"][k.as_str()].as_str() != Some(b64(v.as_bytes()).as_str())
                })
                .map(|(k, _)| k.clone())
                .collect();
            if changed.is_empty() {
                return Ok(SecretChange {
                    name: o.name.clone(),
                    namespace: ns,
                    changed,
                    previous: previous_name,
                    created: false,
                    restarted: Vec::new(),
                });
            }
            self.keep_previous(&ns, &previous_name, &o.name, &old)
                .await?;
            let data: serde_json::Map<String, Value> = values
                .iter()
                .map(|(k, v)| (k.clone(), json!(b64(v.as_bytes()))))
                .collect();
            let patch = Patch::Merge(json!({"metadata": {"resourceVersion": rv}, "data": data}));
            match api.patch(&o.name, &PatchParams::default(), &patch).await {
                Ok(_) => {
                    let restarted = if o.restart {
                        self.restart_users(&ns, &o.name).await?
                    } else {
                        Vec::new()
                    };
                    return Ok(SecretChange {
                        name: o.name.clone(),
                        namespace: ns,
                        changed,
                        previous: previous_name,
                        created: false,
                        restarted,
                    });
                }
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(classify(self.context(), "patch", &what, e)),
            }
        }
        Err(crate::cas::lost_races(&what))
    }

    /// Puts back what the last change of Secret `name` replaced (from
    /// `NAME-drkit-previous`), then restarts the workloads that use it.
    pub async fn secret_restore(
        &self,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<SecretChange> {
        let ns = self.ns(namespace).to_owned();
        let previous_name = format!("{name}{PREVIOUS_SUFFIX}");
        let kept = self
            .read_secret(&ns, &previous_name)
            .await?
            .ok_or_else(|| err!(NotFound, "secret {previous_name} in namespace {ns} does not exist: nothing was kept to put back"))?;
        let kept = serde_json::to_value(kept).unwrap_or_default();
        let what = format!("secret {name} in namespace {ns}");
        let api = Api::<Secret>::namespaced(self.client.clone(), &ns);
        for _ in 0..CAS_ATTEMPTS {
            let current = self
                .read_secret(&ns, name)
                .await?
                .ok_or_else(|| err!(NotFound, "{what} does not exist"))?;
            let mut s = serde_json::to_value(current).unwrap_or_default();
            s["data"] = kept["data"].clone();
            let body: Secret =
                serde_json::from_value(s).map_err(|e| err!(External, "building {what}: {e}"))?;
            match api.replace(name, &PostParams::default(), &body).await {
                Ok(_) => {
                    let restarted = self.restart_users(&ns, name).await?;
                    let changed = kept["data"]
                        .as_object()
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    return Ok(SecretChange {
                        name: name.to_owned(),
                        namespace: ns,
                        changed,
                        previous: previous_name,
                        created: false,
                        restarted,
                    });
                }
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(classify(self.context(), "update", &what, e)),
            }
        }
        Err(crate::cas::lost_races(&what))
    }

    async fn keep_previous(
        &self,
        ns: &str,
        previous_name: &str,
        of: &str,
        old: &Value,
    ) -> Result<()> {
        let api = Api::<Secret>::namespaced(self.client.clone(), ns);
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": previous_name, "namespace": ns, "labels": {"drkit.io/previous-of": of}},
            "type": old["type"].as_str().unwrap_or("Opaque"), "data": old["data"],
        });
        let pp = PatchParams::apply("drkit").force();
        api.patch(previous_name, &pp, &Patch::Apply(body))
            .await
            .map(|_| ())
            .map_err(|e| {
                classify(
                    self.context(),
                    "patch",
                    &format!("secret {previous_name} in namespace {ns}"),
                    e,
                )
            })
    }

    /// Restarts every Deployment and StatefulSet of `ns` that uses Secret `name`.
    async fn restart_users(&self, ns: &str, name: &str) -> Result<Vec<String>> {
        let users: Vec<Workload> = self
            .workloads_in(ns)
            .await?
            .into_iter()
            .filter(|(_, v)| uses_secret(v, name))
            .map(|(w, _)| w)
            .collect();
        for w in &users {
            self.rollout_restart(w, Some(ns)).await?;
        }
        Ok(users.iter().map(ToString::to_string).collect())
    }
}
