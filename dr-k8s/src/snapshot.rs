//! A namespace as a snapshot of the repository (kind `k8s`): clean manifests, stored
//! only encrypted, listed by kind and name (never a Secret's data); applied into the same
//! or another namespace or cluster with server-side apply, in dependency order, with a
//! dry run that diffs against what is live.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dr_core::repo::{Repository, SnapshotKind, SnapshotRef};
use dr_core::{err, Result};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::classify;
use crate::Kubernetes;

/// The kind of the snapshots a namespace export makes.
pub const KIND_K8S: &str = "k8s";
pub(crate) const FILE: &str = "objects.json";

/// The kinds exported, in the order they are applied (what others need comes first).
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
    ),
    ("", "v1", "ConfigMap", "configmaps"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "v1", "Service", "services"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("networking.k8s.io", "v1", "Ingress", "ingresses"),
    ("batch", "v1", "CronJob", "cronjobs"),
];

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn kind_named(
    name: &str,
) -> Option<&'static (&'static str, &'static str, &'static str, &'static str)> {
    let n = name.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(_, _, k, p)| k.to_ascii_lowercase() == n || *p == n)
}

/// What `drkit k8s export` and the `k8s.export` step take.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportOptions {
    /// The namespace (else the connection's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Several namespaces, into one snapshot (instead of `namespace`).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// With the cluster-wide objects the namespaces need: the Namespaces themselves, the
    /// StorageClasses their claims use, the ClusterRoles their RoleBindings name and the
    /// ClusterRoleBindings of their ServiceAccounts (with their ClusterRoles), and the
    /// CustomResourceDefinitions of the custom resources in them (which are exported
    /// too) — what a new cluster needs before the namespaces can be applied.
    #[serde(default)]
    pub cluster: bool,
    /// Only these kinds (`deployments`, `Secret`, …); all of them when empty.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only objects with these labels (`app=shop,tier!=cache`).
    #[serde(default)]
    pub selector: Option<String>,
    /// Snapshot tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// One object in a snapshot: kind, name and namespace (never its content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ObjectRef {
    /// `Deployment`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace; none for a cluster-wide object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What an export stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportOutcome {
    /// The snapshot's id.
    pub snapshot: String,
    /// The namespace exported (the first, when there are several).
    pub namespace: String,
    /// Every namespace exported.
    pub namespaces: Vec<String>,
    /// The objects, in apply order.
    pub objects: Vec<ObjectRef>,
    /// Bytes stored (compressed, encrypted, deduplicated).
    pub new_bytes: u64,
}

/// What `drkit k8s apply` and the `k8s.apply` step take: a snapshot of the repository
/// (the default: the latest), or manifest files and folders — all of them, or the
/// objects of some kinds or labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyOptions {
    /// The snapshot: `latest` (the default) is the newest `k8s` snapshot of `source`, or
    /// of the one namespace the repository holds exports of; an id or a prefix.
    #[serde(default)]
    pub snapshot: Option<SnapshotRef>,
    /// With latest: the export's namespace (or source), needed when the repository
    /// holds exports of several.
    #[serde(default)]
    pub source: Option<String>,
    /// Manifest files or folders (read recursively: `*.yaml`, `*.yml`, `*.json`), as
    /// `kubectl apply -f`, instead of a snapshot; relative paths are from the folder
    /// drkit runs in.
    #[serde(default)]
    pub files: Option<Vec<std::path::PathBuf>>,
    /// The namespace of the files' namespaced objects that name none (default the
    /// connection's); an object that names another is refused, as kubectl refuses it.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only objects of these kinds (`Deployment`, `deployments`); all when empty.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only objects whose labels match (`app=shop,tier!=cache`).
    #[serde(default)]
    pub selector: Option<String>,
    /// `OLD: NEW` namespace renames (Velero's `--namespace-mappings`).
    #[serde(default)]
    pub namespace_map: BTreeMap<String, String>,
    /// Diff against what is live and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Wait until the workloads are ready.
    #[serde(default)]
    pub wait: bool,
    /// Longest wait.
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(schema_with = "dr_core::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

/// What applying one object did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Applied {
    /// `Deployment`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace after the mapping (empty for a cluster-wide object).
    pub namespace: String,
    /// `created`, `updated` or `unchanged`.
    pub action: String,
    /// What differs from the live object (`spec.replicas: 3 -> 1`; a Secret's data only
    /// as `data.KEY: changed`).
    pub diff: Vec<String>,
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplyOutcome {
    /// The snapshot applied, when it was one.
    pub snapshot: Option<String>,
    /// The manifest files and folders applied, when they were.
    pub files: Vec<String>,
    /// Whether it was a dry run (nothing changed).
    pub dry_run: bool,
    /// Each object.
    pub objects: Vec<Applied>,
}

/// The manifest as it can be applied anywhere: no status, no server fields, no cluster IP.
pub(crate) fn clean(mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = o["metadata"].as_object_mut() {
        for f in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "ownerReferences",
        ] {
            meta.remove(f);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.retain(|k, _| {
                k != "kubectl.kubernetes.io/last-applied-configuration"
                    && k != "deployment.kubernetes.io/revision"
                    && !k.starts_with("pv.kubernetes.io/")
                    && !k.starts_with("volume.kubernetes.io/")
                    && !k.starts_with("volume.beta.kubernetes.io/")
            });
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if o["kind"] == "Service" {
        if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
    if o["kind"] == "PersistentVolumeClaim" {
        if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("volumeName");
        }
    }
    o
}

/// Objects the cluster makes on its own, which an export leaves out.
fn generated(o: &Value) -> bool {
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    o["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
        || (o["kind"] == "ServiceAccount" && name == "default")
        || (o["kind"] == "ConfigMap" && name == "kube-root-ca.crt")
        || (o["kind"] == "Secret"
            && (o["type"] == "kubernetes.io/service-account-token"
                || name.ends_with(crate::PREVIOUS_SUFFIX)))
}

pub(crate) fn diff(path: &str, live: &Value, want: &Value, secret: bool, out: &mut Vec<String>) {
    match (live, want) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    secret,
                    out,
                );
            }
        }
        (a, b) if a == b => {}
        (a, b) => {
            if secret
                && (path.starts_with("data.") || path.starts_with("stringData.") || path == "data")
            {
                out.push(format!("{path}: changed"));
            } else {
                let show = |v: &Value| {
                    if v.is_null() {
                        "(absent)".to_owned()
                    } else {
                        v.to_string()
                    }
                };
                out.push(format!("{path}: {} -> {}", show(a), show(b)));
            }
        }
    }
}

impl Kubernetes {
    /// Exports the namespace's objects (or several namespaces', with the cluster-wide
    /// objects they need) into `repo` as a `k8s` snapshot.
    pub async fn export(&self, repo: &Repository, o: &ExportOptions) -> Result<ExportOutcome> {
        let namespaces: Vec<String> = if o.namespaces.is_empty() {
            vec![self.ns(o.namespace.as_deref()).to_owned()]
        } else {
            o.namespaces.clone()
        };
        // Built-in kinds by name; with `cluster`, other names are custom resources'.
        let (builtin, custom): (Vec<&String>, Vec<&String>) =
            o.kinds.iter().partition(|k| kind_named(k).is_some());
        if !custom.is_empty() && !o.cluster {
            return Err(err!(
                InvalidInput,
                "kind {:?} is not one drkit exports; the kinds are {} (custom resources are exported with cluster: true)",
                custom[0],
                KINDS.iter().map(|k| k.3).collect::<Vec<_>>().join(", ")
            ));
        }
        let wanted: Vec<&(&str, &str, &str, &str)> = if o.kinds.is_empty() {
            KINDS.iter().collect()
        } else {
            builtin.iter().filter_map(|k| kind_named(k)).collect()
        };
        let mut lp = ListParams::default();
        if let Some(s) = &o.selector {
            lp = lp.labels(s);
        }
        let mut objects = Vec::new();
        for ns in &namespaces {
            for (g, v, kind, plural) in KINDS.iter().filter(|k| wanted.contains(k)) {
                let ar = resource(g, v, kind, plural);
                objects.extend(self.list_clean(&ar, Some(ns), &lp).await?);
            }
        }
        if o.cluster {
            let needed = self
                .cluster_needs(&namespaces, &objects, &lp, &custom, o.kinds.is_empty())
                .await?;
            objects.extend(needed);
        }
        let ns = namespaces.first().cloned().unwrap_or_default();
        if !repo.is_encrypted() && objects.iter().any(|o| o["kind"] == "Secret") {
            return Err(err!(
                InvalidInput,
                "namespace {} has Secrets and the repository is not encrypted: they would be stored readable; export into an encrypted repository, or leave Secrets out (kinds without secrets)",
                namespaces.join(", ")
            ));
        }
        objects.sort_by_key(|o| crate::manifests::rank(o["kind"].as_str().unwrap_or_default()));
        let refs: Vec<ObjectRef> = objects
            .iter()
            .map(|o| ObjectRef {
                kind: o["kind"].as_str().unwrap_or_default().to_owned(),
                name: o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                namespace: o["metadata"]["namespace"].as_str().map(str::to_owned),
            })
            .collect();
        let body = serde_json::to_vec(&objects)
            .map_err(|e| err!(External, "serializing the manifests: {e}"))?;
        let mut w = repo.begin_snapshot(
            SnapshotKind::new(KIND_K8S),
            &format!("kubernetes {}/{}", self.context(), namespaces.join("+")),
        );
        for (k, v) in &o.tags {
            w.tag(k, v);
        }
        w.add_file_blocking(FILE, std::io::Cursor::new(body))
            .await?;
        let snap = w
            .commit(json!({"context": self.context(), "namespace": ns, "namespaces": namespaces, "cluster": o.cluster, "objects": refs}))
            .await?;
        Ok(ExportOutcome {
            snapshot: snap.id.to_string(),
            namespace: ns,
            namespaces,
            objects: refs,
            new_bytes: snap.stats.new_bytes,
        })
    }

    /// The objects of resource `ar` (in namespace `ns`, or cluster-wide) that `lp`
    /// selects, cleaned, without what the cluster makes on its own.
    async fn list_clean(
        &self,
        ar: &ApiResource,
        ns: Option<&str>,
        lp: &ListParams,
    ) -> Result<Vec<Value>> {
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        };
        let list = api.list(lp).await.map_err(|e| {
            let what = match ns {
                Some(ns) => format!("{} in namespace {ns}", ar.plural),
                None => ar.plural.clone(),
            };
            classify(self.context(), "list", &what, e)
        })?;
        let mut out = Vec::new();
        for item in list.items {
            let mut obj =
                serde_json::to_value(&item).map_err(|e| err!(External, "{}: {e}", ar.plural))?;
            obj["apiVersion"] = json!(ar.api_version);
            obj["kind"] = json!(ar.kind);
            if !generated(&obj) {
                out.push(clean(obj));
            }
        }
        Ok(out)
    }

    /// One cluster-wide object, cleaned; `None` when it does not exist.
    async fn get_clean(&self, ar: &ApiResource, name: &str) -> Result<Option<Value>> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), ar);
        let found = api
            .get_opt(name)
            .await
            .map_err(|e| classify(self.context(), "get", &format!("{} {name}", ar.kind), e))?;
        Ok(found.map(|item| {
            let mut obj = serde_json::to_value(&item).unwrap_or_default();
            obj["apiVersion"] = json!(ar.api_version);
            obj["kind"] = json!(ar.kind);
            clean(obj)
        }))
    }

    /// What the namespaces need of the cluster (see [`ExportOptions::cluster`]), given
    /// their `objects`: the Namespaces, StorageClasses, ClusterRoles and
    /// ClusterRoleBindings, CustomResourceDefinitions and the custom resources in the
    /// namespaces (those `custom` names, or all when `all_kinds`).
    async fn cluster_needs(
        &self,
        namespaces: &[String],
        objects: &[Value],
        lp: &ListParams,
        custom: &[&String],
        all_kinds: bool,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let ns_resource = resource("", "v1", "Namespace", "namespaces");
        for ns in namespaces {
            let Some(mut n) = self.get_clean(&ns_resource, ns).await? else {
                return Err(err!(
                    NotFound,
                    "namespace {ns} does not exist in context {:?}",
                    self.context()
                ));
            };
            if let Some(spec) = n.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
            out.push(n);
        }
        // StorageClasses the claims name.
        let classes: BTreeSet<&str> = objects
            .iter()
            .filter(|o| o["kind"] == "PersistentVolumeClaim")
            .filter_map(|o| o["spec"]["storageClassName"].as_str())
            .collect();
        let sc = resource("storage.k8s.io", "v1", "StorageClass", "storageclasses");
        for c in classes {
            out.extend(self.get_clean(&sc, c).await?);
        }
        // ClusterRoles the RoleBindings name; ClusterRoleBindings of the namespaces'
        // ServiceAccounts, and their ClusterRoles.
        let rbac = "rbac.authorization.k8s.io";
        let mut roles: BTreeSet<String> = objects
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" && o["roleRef"]["kind"] == "ClusterRole")
            .filter_map(|o| o["roleRef"]["name"].as_str().map(str::to_owned))
            .collect();
        let crb = resource(rbac, "v1", "ClusterRoleBinding", "clusterrolebindings");
        for b in self.list_clean(&crb, None, &ListParams::default()).await? {
            let ours = b["subjects"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["namespace"]
                            .as_str()
                            .is_some_and(|n| namespaces.iter().any(|x| x == n))
                })
            });
            if ours
                && !b["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("system:"))
            {
                if b["roleRef"]["kind"] == "ClusterRole" {
                    roles.extend(b["roleRef"]["name"].as_str().map(str::to_owned));
                }
                out.push(b);
            }
        }
        let cr = resource(rbac, "v1", "ClusterRole", "clusterroles");
        for r in roles.iter().filter(|r| !r.starts_with("system:")) {
            out.extend(self.get_clean(&cr, r).await?);
        }
        out.extend(
            self.custom_resources(namespaces, lp, custom, all_kinds)
                .await?,
        );
        Ok(out)
    }

    /// The custom resources in the namespaces (those `custom` names, or all when
    /// `all_kinds`), each kind after its CustomResourceDefinition.
    async fn custom_resources(
        &self,
        namespaces: &[String],
        lp: &ListParams,
        custom: &[&String],
        all_kinds: bool,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        // Custom resources in the namespaces, and their definitions.
        let crd_resource = resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        );
        let mut matched: BTreeSet<String> = BTreeSet::new();
        for crd in self
            .list_clean(&crd_resource, None, &ListParams::default())
            .await?
        {
            let spec = &crd["spec"];
            let (kind, plural) = (
                spec["names"]["kind"].as_str().unwrap_or_default(),
                spec["names"]["plural"].as_str().unwrap_or_default(),
            );
            let named = custom
                .iter()
                .find(|k| k.eq_ignore_ascii_case(kind) || k.eq_ignore_ascii_case(plural));
            if spec["scope"] != "Namespaced" || !(all_kinds || named.is_some()) {
                continue;
            }
            matched.extend(named.map(|k| k.to_ascii_lowercase()));
            let version = spec["versions"]
                .as_array()
                .and_then(|vs| {
                    vs.iter()
                        .find(|v| v["storage"] == true)
                        .or_else(|| vs.first())
                })
                .and_then(|v| v["name"].as_str())
                .unwrap_or("v1");
            let ar = resource(
                spec["group"].as_str().unwrap_or_default(),
                version,
                kind,
                plural,
            );
            let mut found = Vec::new();
            for ns in namespaces {
                found.extend(self.list_clean(&ar, Some(ns), lp).await?);
            }
            if !found.is_empty() {
                let mut crd = crd;
                if let Some(m) = crd.as_object_mut() {
                    m.remove("status");
                }
                out.push(crd);
                out.extend(found);
            }
        }
        if let Some(k) = custom
            .iter()
            .find(|k| !matched.contains(&k.to_ascii_lowercase()))
        {
            return Err(err!(
                InvalidInput,
                "kind {k:?} is neither one drkit exports ({}) nor a custom resource of context {:?}",
                KINDS.iter().map(|k| k.3).collect::<Vec<_>>().join(", "),
                self.context()
            ));
        }
        Ok(out)
    }
}
