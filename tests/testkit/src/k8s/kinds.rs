//! The resources the test API serves, and its discovery documents.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// One resource type.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::struct_field_names)] // `kind` is the API's own word
pub struct Kind {
    /// API group, "" for core.
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Plural, as in URLs.
    pub plural: &'static str,
    /// Singular.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl's short names.
    pub short: &'static [&'static str],
    /// Subresources (`scale`, `status`, `log`).
    pub subresources: &'static [&'static str],
}

impl Kind {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods`, as the real server names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether the object has a spec whose changes bump `metadata.generation`.
    pub fn has_generation(&self) -> bool {
        !matches!(
            self.plural,
            "configmaps"
                | "secrets"
                | "serviceaccounts"
                | "roles"
                | "rolebindings"
                | "events"
                | "storageclasses"
                | "clusterroles"
                | "clusterrolebindings"
                | "persistentvolumes"
        )
    }
}

#[allow(clippy::too_many_arguments)] // one row of the table below
const fn k(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    subresources: &'static [&'static str],
) -> Kind {
    Kind {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short,
        subresources,
    }
}

/// Every resource served.
pub const KINDS: &[Kind] = &[
    k(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &["status"],
    ),
    k(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        &["status", "log"],
    ),
    k(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        &["status"],
    ),
    k(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        &[],
    ),
    k("", "v1", "secrets", "secret", "Secret", true, &[], &[]),
    k(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        &[],
    ),
    k(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        &["status"],
    ),
    k("", "v1", "events", "event", "Event", true, &["ev"], &[]),
    k(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        &["scale", "status"],
    ),
    k(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        &["scale", "status"],
    ),
    k(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        &["ds"],
        &["status"],
    ),
    k(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        &["rs"],
        &["scale", "status"],
    ),
    k(
        "apps",
        "v1",
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        true,
        &[],
        &[],
    ),
    k(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        &["cj"],
        &["status"],
    ),
    k("batch", "v1", "jobs", "job", "Job", true, &[], &["status"]),
    k(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
        &["status"],
    ),
    k(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        &[],
        &[],
    ),
    k(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        &[],
    ),
    k(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        &[],
    ),
    k(
        "autoscaling",
        "v1",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        &["status"],
    ),
    k(
        "",
        "v1",
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        &["status"],
    ),
    k(
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "storageclass",
        "StorageClass",
        false,
        &["sc"],
        &[],
    ),
    k(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        &[],
    ),
    k(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        &[],
    ),
    k(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        &["status"],
    ),
];

/// Every resource served: the built-in ones, then `custom` (what the stored
/// CustomResourceDefinitions define).
fn all<'a>(custom: &'a [&'static Kind]) -> impl Iterator<Item = &'static Kind> + 'a {
    KINDS.iter().chain(custom.iter().copied())
}

/// The built-in resource at `group`/`version`/`plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    find_in(&[], group, version, plural)
}

/// The resource at `group`/`version`/`plural`, custom ones included.
pub fn find_in(
    custom: &[&'static Kind],
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'static Kind> {
    all(custom).find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// The resource of an object's `apiVersion` and `kind`, custom ones included.
pub fn of_kind_in(
    custom: &[&'static Kind],
    api_version: &str,
    kind: &str,
) -> Option<&'static Kind> {
    all(custom).find(|k| k.api_version() == api_version && k.kind == kind)
}

/// What a CustomResourceDefinition makes served: a resource per served version. The
/// strings live as long as the process (a test server's few CRDs).
pub fn from_crd(crd: &Value) -> Vec<&'static Kind> {
    let leak = |v: &Value| -> &'static str {
        Box::leak(v.as_str().unwrap_or_default().to_owned().into_boxed_str())
    };
    let spec = &crd["spec"];
    let names = &spec["names"];
    let short: &'static [&'static str] = Box::leak(
        names["shortNames"]
            .as_array()
            .map(|a| a.iter().map(leak).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_boxed_slice(),
    );
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] != false)
        .map(|v| {
            let has_status = v["subresources"]["status"].is_object();
            &*Box::leak(Box::new(Kind {
                group: leak(&spec["group"]),
                version: leak(&v["name"]),
                plural: leak(&names["plural"]),
                singular: leak(&names["singular"]),
                kind: leak(&names["kind"]),
                namespaced: spec["scope"] != "Cluster",
                short,
                subresources: if has_status { &["status"] } else { &[] },
            }))
        })
        .collect()
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Each group and its versions.
fn groups(custom: &[&'static Kind]) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut g: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in all(custom).filter(|k| !k.group.is_empty()) {
        let versions = g.entry(k.group).or_default();
        if !versions.contains(&k.version) {
            versions.push(k.version);
        }
    }
    g.into_iter().collect()
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

/// `/apis`.
pub fn group_list(custom: &[&'static Kind]) -> Value {
    let groups: Vec<Value> = groups(custom)
        .into_iter()
        .map(|(g, versions)| {
            let gvs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(custom: &[&'static Kind], group: &str, version: &str) -> Option<Value> {
    let mine: Vec<&Kind> = all(custom)
        .filter(|k| k.group == group && k.version == version)
        .collect();
    if mine.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for k in &mine {
        resources.push(json!({
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": VERBS, "shortNames": k.short,
        }));
        for sub in k.subresources {
            let (kind, group, version, verbs): (&str, &str, &str, &[&str]) = match *sub {
                "scale" => ("Scale", "autoscaling", "v1", &["get", "patch", "update"]),
                "log" => ("Pod", "", "", &["get"]),
                _ => (k.kind, "", "", &["get", "patch", "update"]),
            };
            let mut r = json!({
                "name": format!("{}/{sub}", k.plural), "singularName": "", "namespaced": k.namespaced,
                "kind": kind, "verbs": verbs,
            });
            if !group.is_empty() {
                r["group"] = json!(group);
                r["version"] = json!(version);
            }
            resources.push(r);
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `/openapi/v3`: one entry per group version. Their documents say that writes take the
/// `fieldValidation` parameter, so kubectl leaves validation to the server.
pub fn openapi_root(custom: &[&'static Kind]) -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": "/openapi/v3/api/v1?hash=drkit"}),
    );
    for (g, versions) in groups(custom) {
        for v in versions {
            paths.insert(
                format!("apis/{g}/{v}"),
                json!({"serverRelativeURL": format!("/openapi/v3/apis/{g}/{v}?hash=drkit")}),
            );
        }
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/apis/{group}/{version}`: every write operation with `fieldValidation`.
pub fn openapi_group(custom: &[&'static Kind], group: &str, version: &str) -> Option<Value> {
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    let mut paths = serde_json::Map::new();
    let op = |kind: &Kind| {
        json!({
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}, {"name": "dryRun", "in": "query", "schema": {"type": "string"}}],
            "x-kubernetes-group-version-kind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
            "responses": {"200": {"description": "OK"}},
        })
    };
    for kind in all(custom).filter(|k| k.group == group && k.version == version) {
        let base = if kind.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", kind.plural)
        } else {
            format!("{prefix}/{}", kind.plural)
        };
        paths.insert(base.clone(), json!({"post": op(kind), "get": op(kind)}));
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"put": op(kind), "patch": op(kind), "get": op(kind), "delete": op(kind)}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "drkit k8s test API", "version": version}, "paths": paths, "components": {"schemas": {}}}),
    )
}
