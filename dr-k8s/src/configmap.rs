//! ConfigMap keys: set and remove, returning the old values (seed 001's `DB_HOST`).

use std::collections::BTreeMap;

use dr_core::{err, Result};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{classify, is_conflict};
use crate::workload::CAS_ATTEMPTS;
use crate::{Change, Kubernetes};

/// What `drkit k8s configmap set` and the `k8s.configmap_set` step take.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigMapOptions {
    /// The ConfigMap.
    pub name: String,
    /// Its namespace (else the connection's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Keys to set.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Keys to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// What a ConfigMap change did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfigMapChange {
    /// The ConfigMap.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The old value of every key touched (`null`: it was absent): give it back to undo.
    pub previous: BTreeMap<String, Option<String>>,
    /// Whether anything changed.
    pub changed: bool,
}

impl ConfigMapOptions {
    /// The options that put `previous` back (a compensation).
    #[must_use]
    pub fn undo(change: &ConfigMapChange) -> Self {
        Self {
            name: change.name.clone(),
            namespace: Some(change.namespace.clone()),
            set: change
                .previous
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect(),
            remove: change
                .previous
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }

    fn wanted(&self) -> Result<BTreeMap<String, Option<String>>> {
        let mut w: BTreeMap<String, Option<String>> = self
            .set
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        for k in &self.remove {
            if w.insert(k.clone(), None).is_some() {
                return Err(err!(
                    InvalidInput,
                    "ConfigMap {}: key {k:?} is both set and removed",
                    self.name
                ));
            }
        }
        if w.is_empty() {
            return Err(err!(
                InvalidInput,
                "ConfigMap {}: give keys to set or remove",
                self.name
            ));
        }
        Ok(w)
    }
}

impl Kubernetes {
    async fn read_configmap(&self, ns: &str, name: &str) -> Result<ConfigMap> {
        Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .map_err(|e| {
                classify(
                    self.context(),
                    "get",
                    &format!("configmap {name} in namespace {ns}"),
                    e,
                )
            })
    }

    /// The changes [`Kubernetes::configmap_set`] would make, one per key.
    pub async fn plan_configmap(&self, o: &ConfigMapOptions) -> Result<Vec<Change>> {
        let ns = self.ns(o.namespace.as_deref());
        let cm = self.read_configmap(ns, &o.name).await?;
        let data = cm.data.unwrap_or_default();
        Ok(o.wanted()?
            .into_iter()
            .map(|(k, to)| Change {
                object: format!(
                    "configmap {} in namespace {ns}, context {}",
                    o.name,
                    self.context()
                ),
                field: format!("data.{k}"),
                from: data.get(&k).cloned(),
                to,
            })
            .collect())
    }

    /// Sets and removes keys, as a compare-and-swap on the ConfigMap's
    /// `resourceVersion`; returns the old values.
    pub async fn configmap_set(&self, o: &ConfigMapOptions) -> Result<ConfigMapChange> {
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        let wanted = o.wanted()?;
        let what = format!("configmap {} in namespace {ns}", o.name);
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), &ns);
        for attempt in 1..=CAS_ATTEMPTS {
            let cm = self.read_configmap(&ns, &o.name).await?;
            let data = cm.data.unwrap_or_default();
            let previous: BTreeMap<String, Option<String>> = wanted
                .keys()
                .map(|k| (k.clone(), data.get(k).cloned()))
                .collect();
            if previous == wanted {
                return Ok(ConfigMapChange {
                    name: o.name.clone(),
                    namespace: ns,
                    previous,
                    changed: false,
                });
            }
            let patch_data: Map<String, Value> = wanted
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect();
            let rv = cm.metadata.resource_version.unwrap_or_default();
            let patch =
                Patch::Merge(json!({"metadata": {"resourceVersion": rv}, "data": patch_data}));
            match api.patch(&o.name, &PatchParams::default(), &patch).await {
                Ok(_) => {
                    return Ok(ConfigMapChange {
                        name: o.name.clone(),
                        namespace: ns,
                        previous,
                        changed: true,
                    })
                }
                Err(e) if is_conflict(&e) && attempt < CAS_ATTEMPTS => {
                    tracing::debug!("{what}: lost a race (attempt {attempt}); reading it again");
                }
                Err(e) => return Err(classify(self.context(), "patch", &what, e)),
            }
        }
        Err(crate::cas::lost_races(&what))
    }
}
