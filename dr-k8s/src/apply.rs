//! `k8s.apply`: a snapshot of the repository, or manifest files and folders, applied as
//! `kubectl apply --server-side` would — each object created or updated by server-side
//! apply (field manager `drkit`), what others need first, namespaces renamed by
//! `namespace_map` — after everything was checked: every kind served by the cluster (or
//! defined by a CustomResourceDefinition applied first), every namespace there or
//! created, `kinds:` and `selector:` matching something. A dry run asks the server and
//! diffs against what is live, changing nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use dr_core::repo::Repository;
use dr_core::{err, Result};
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Scope;
use serde_json::{json, Value};

use crate::error::classify;
use crate::manifests::{parse_selector, rank, read_paths, selects, Manifest};
use crate::snapshot::{clean, diff, Applied, ApplyOptions, ApplyOutcome, FILE, KIND_K8S};
use crate::workload::{Workload, WorkloadKind};
use crate::Kubernetes;

/// Objects of one kind applied at once.
const APPLY_CONCURRENCY: usize = 8;

/// One object, resolved: how to reach it, and where it goes.
struct Resolved {
    object: Value,
    resource: ApiResource,
    /// `None` for a cluster-wide object.
    namespace: Option<String>,
    /// Its kind is defined by a CustomResourceDefinition of the same apply (a dry run
    /// cannot ask the server about it).
    pending_crd: bool,
}

impl Kubernetes {
    /// Applies a `k8s` snapshot of `repo` or, with `files`, manifest files and folders
    /// (no repository needed then).
    ///
    /// # Errors
    /// Before anything is applied: `InvalidInput` for both a snapshot and files, a kind
    /// the cluster does not serve, or `kinds:` / `selector:` that match nothing;
    /// `NotFound` for a namespace that does not exist and that nothing creates. Then
    /// the first object the server refuses (what came before it stays applied; applying
    /// again is safe).
    pub async fn apply(&self, repo: Option<&Repository>, o: &ApplyOptions) -> Result<ApplyOutcome> {
        let from_files = o.files.is_some();
        if from_files && (o.snapshot.is_some() || o.source.is_some()) {
            return Err(err!(
                InvalidInput,
                "apply either a snapshot (snapshot, source) or files, not both"
            ));
        }
        let (manifests, default_ns, snapshot) = if let Some(files) = &o.files {
            if files.is_empty() {
                return Err(err!(
                    InvalidInput,
                    "files is empty: give manifest files or folders, or leave it out to apply a snapshot"
                ));
            }
            let ns = self.ns(o.namespace.as_deref()).to_owned();
            (read_paths(files)?, ns, None)
        } else {
            let repo = repo.ok_or_else(|| {
                err!(
                    InvalidInput,
                    "applying a snapshot needs a repository (--repo or DRKIT_REPO); to apply manifests from files give them (-f)"
                )
            })?;
            let (manifests, ns, id) = read_snapshot(repo, o).await?;
            (manifests, ns, Some(id))
        };
        let (mut objects, mut problems) = self.resolve_all(manifests, &default_ns, o).await?;
        objects.sort_by_key(|r| rank(r.object["kind"].as_str().unwrap_or_default()));
        // A snapshot's namespace is made when missing; files must create theirs.
        let created = self
            .namespaces_ready(&objects, !from_files, o.dry_run, &mut problems)
            .await?;
        let mut pp = PatchParams::apply("drkit").force();
        pp.dry_run = o.dry_run;
        // Kind after kind, in dependency order; the objects of one kind eight at a time.
        let mut applied: Vec<Applied> = Vec::new();
        let mut rest = objects.into_iter().peekable();
        while let Some(first) = rest.next() {
            let kind = first.object["kind"].clone();
            let mut group = vec![first];
            while rest.peek().is_some_and(|n| n.object["kind"] == kind) {
                group.extend(rest.next());
            }
            // A kind whose definition was just applied is served once the cluster has
            // taken it in (Established).
            if !o.dry_run && group[0].pending_crd {
                self.wait_served(&group[0].resource, Duration::from_mins(1))
                    .await?;
            }
            let done: Vec<Applied> = futures::stream::iter(group)
                .map(|r| {
                    let assume = o.dry_run
                        && (r.pending_crd
                            || r.namespace.as_ref().is_some_and(|n| created.contains(n)));
                    self.apply_one(r, &pp, assume)
                })
                .buffered(APPLY_CONCURRENCY)
                .try_collect()
                .await?;
            applied.extend(done);
        }
        if o.wait && !o.dry_run {
            let timeout = o.timeout.unwrap_or(Duration::from_mins(10));
            for a in &applied {
                let kind = match a.kind.as_str() {
                    "Deployment" => WorkloadKind::Deployment,
                    "StatefulSet" => WorkloadKind::StatefulSet,
                    _ => continue,
                };
                let w = Workload {
                    kind,
                    name: a.name.clone(),
                };
                self.wait_ready(&w, Some(&a.namespace), timeout).await?;
            }
        }
        Ok(ApplyOutcome {
            snapshot,
            files: o
                .files
                .iter()
                .flatten()
                .map(|f| f.display().to_string())
                .collect(),
            dry_run: o.dry_run,
            objects: applied,
        })
    }

    /// Each manifest's resource and namespace, those `kinds:` and `selector:` pick, and
    /// every problem found (nothing is applied while there is one).
    async fn resolve_all(
        &self,
        manifests: Vec<Manifest>,
        default_ns: &str,
        o: &ApplyOptions,
    ) -> Result<(Vec<Resolved>, Vec<String>)> {
        let selector = o.selector.as_deref().map(parse_selector).transpose()?;
        let defined = crd_kinds(&manifests);
        let mut served: HashMap<(String, String), Option<(ApiResource, bool)>> = HashMap::new();
        let mut problems = Vec::new();
        let mut out = Vec::new();
        let mut kinds_seen: BTreeSet<String> = BTreeSet::new();
        let mut kinds_matched: BTreeSet<String> = BTreeSet::new();
        let mut origins: BTreeMap<String, String> = BTreeMap::new();
        for m in manifests {
            let api_version = m.object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let kind = m.object["kind"].as_str().unwrap_or_default().to_owned();
            let gvk = gvk_of(&api_version, &kind);
            let key = (api_version.clone(), kind.clone());
            if !served.contains_key(&key) {
                served.insert(key.clone(), self.served(&gvk).await?);
            }
            let (resource, namespaced, pending_crd) = match (
                &served[&key],
                defined.get(&(gvk.group.clone(), kind.clone())),
            ) {
                (Some((ar, namespaced)), _) => (ar.clone(), *namespaced, false),
                (None, Some((plural, namespaced))) => (
                    ApiResource::from_gvk_with_plural(&gvk, plural),
                    *namespaced,
                    true,
                ),
                (None, None) => {
                    problems.push(format!(
                        "{}: kind {kind} ({api_version}) is not served by context {:?}; fix apiVersion, or apply its CustomResourceDefinition first",
                        m.origin,
                        self.context()
                    ));
                    continue;
                }
            };
            kinds_seen.insert(kind.clone());
            if !o.kinds.is_empty() {
                let Some(k) = o
                    .kinds
                    .iter()
                    .find(|k| names_kind(k, &kind, &resource.plural))
                else {
                    continue;
                };
                kinds_matched.insert(k.to_ascii_lowercase());
            }
            if selector.as_ref().is_some_and(|s| !selects(s, &m.object)) {
                continue;
            }
            let own = m.object["metadata"]["namespace"]
                .as_str()
                .filter(|n| !n.is_empty());
            if let (true, Some(given), Some(own)) = (namespaced, &o.namespace, own) {
                if given != own {
                    problems.push(format!(
                        "{}: {kind} {} is in namespace {own}, not {given} (the namespace given); drop one of them, as kubectl refuses this too",
                        m.origin,
                        m.object["metadata"]["name"].as_str().unwrap_or_default()
                    ));
                    continue;
                }
            }
            let r = place(
                m.object,
                resource,
                namespaced,
                pending_crd,
                default_ns,
                &o.namespace_map,
            );
            let key = format!(
                "{kind} {}{}",
                r.namespace
                    .as_ref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                r.object["metadata"]["name"].as_str().unwrap_or_default()
            );
            if let Some(first) = origins.insert(key.clone(), m.origin.clone()) {
                problems.push(format!("{}: {key} is also in {first}; keep one", m.origin));
                continue;
            }
            out.push(r);
        }
        if problems.is_empty() {
            problems.extend(picked_nothing(
                o,
                &kinds_matched,
                kinds_seen,
                out.is_empty(),
            ));
        }
        Ok((out, problems))
    }

    /// How the cluster serves `gvk` (its resource, and whether it is namespaced), or
    /// `None` when it does not.
    async fn served(&self, gvk: &GroupVersionKind) -> Result<Option<(ApiResource, bool)>> {
        match kube::discovery::pinned_kind(&self.client, gvk).await {
            Ok((ar, caps)) => Ok(Some((ar, caps.scope == Scope::Namespaced))),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(kube::Error::Discovery(_)) => Ok(None),
            Err(e) => Err(classify(
                self.context(),
                "discover",
                &format!("{} ({}/{})", gvk.kind, gvk.group, gvk.version),
                e,
            )),
        }
    }

    /// Waits until the cluster serves `ar` (a CustomResourceDefinition just applied).
    async fn wait_served(&self, ar: &ApiResource, timeout: Duration) -> Result<()> {
        let gvk = GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.served(&gvk).await?.is_some() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(err!(
                    Timeout,
                    "kind {} ({}) is still not served by context {:?} {}s after its CustomResourceDefinition was applied; look at the CRD's conditions (kubectl get crd -o yaml), then apply again",
                    ar.kind,
                    ar.api_version,
                    self.context(),
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Makes sure every namespace the objects go to is there: created by the apply
    /// itself (a Namespace object), made now (`make`, unless a dry run), or refused.
    /// Returns the namespaces that do not exist yet (a dry run cannot ask the server
    /// about what goes into them).
    async fn namespaces_ready(
        &self,
        objects: &[Resolved],
        make: bool,
        dry_run: bool,
        problems: &mut Vec<String>,
    ) -> Result<BTreeSet<String>> {
        let applied: BTreeSet<&str> = objects
            .iter()
            .filter(|r| r.object["kind"] == "Namespace")
            .filter_map(|r| r.object["metadata"]["name"].as_str())
            .collect();
        let wanted: BTreeSet<&str> = objects
            .iter()
            .filter_map(|r| r.namespace.as_deref())
            .collect();
        let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone());
        let mut missing = BTreeSet::new();
        for n in wanted.iter().chain(applied.iter()) {
            let exists = api
                .get_opt(n)
                .await
                .map_err(|e| classify(self.context(), "get", &format!("namespace {n}"), e))?
                .is_some();
            if !exists {
                missing.insert((*n).to_owned());
            }
        }
        let orphans: Vec<&String> = missing
            .iter()
            .filter(|n| !applied.contains(n.as_str()))
            .collect();
        let unmade = !orphans.is_empty() && !make;
        if unmade {
            problems.push(format!(
                "namespace {} does not exist in context {:?} and no manifest creates it; add a Namespace manifest, create it first (drkit k8s namespace create NAME), or map it (--namespace-map OLD=NEW; namespace_map: in a runbook)",
                orphans.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", "),
                self.context()
            ));
        }
        if !problems.is_empty() {
            let kind = if unmade && problems.len() == 1 {
                dr_core::ErrorKind::NotFound
            } else {
                dr_core::ErrorKind::InvalidInput
            };
            return Err(dr_core::Error::new(
                kind,
                format!("nothing was applied: {}", problems.join("; ")),
            ));
        }
        if !dry_run {
            for n in orphans {
                self.namespace_create(n, &BTreeMap::new()).await?;
            }
        }
        Ok(missing)
    }

    /// Applies one object; `assume_created`: a dry run the server cannot be asked about
    /// (its namespace or its kind comes with the same apply).
    async fn apply_one(
        &self,
        r: Resolved,
        pp: &PatchParams,
        assume_created: bool,
    ) -> Result<Applied> {
        let kind = r.object["kind"].as_str().unwrap_or_default().to_owned();
        let name = r.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let namespace = r.namespace.clone().unwrap_or_default();
        if assume_created {
            return Ok(Applied {
                kind,
                name,
                namespace,
                action: "created".into(),
                diff: Vec::new(),
            });
        }
        let api: Api<DynamicObject> = match &r.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &r.resource),
            None => Api::all_with(self.client.clone(), &r.resource),
        };
        let what = match &r.namespace {
            Some(ns) => format!("{kind} {name} in namespace {ns}"),
            None => format!("{kind} {name}"),
        };
        let live = api
            .get_opt(&name)
            .await
            .map_err(|e| classify(self.context(), "get", &what, e))?;
        let result = api
            .patch(&name, pp, &Patch::Apply(&r.object))
            .await
            .map_err(|e| classify(self.context(), "patch", &what, e))?;
        let after = clean(serde_json::to_value(&result).unwrap_or_default());
        let (action, found) = match live {
            None => ("created", Vec::new()),
            Some(before) => {
                let mut changes = Vec::new();
                diff(
                    "",
                    &clean(serde_json::to_value(&before).unwrap_or_default()),
                    &after,
                    kind == "Secret",
                    &mut changes,
                );
                (
                    if changes.is_empty() {
                        "unchanged"
                    } else {
                        "updated"
                    },
                    changes,
                )
            }
        };
        Ok(Applied {
            kind,
            name,
            namespace,
            action: action.into(),
            diff: found,
        })
    }
}

/// What is wrong with `kinds:` and `selector:` when they pick nothing: kinds that match
/// no object (with the nearest kind there is), or no object at all.
fn picked_nothing(
    o: &ApplyOptions,
    kinds_matched: &BTreeSet<String>,
    kinds_seen: BTreeSet<String>,
    nothing: bool,
) -> Option<String> {
    let unmatched: Vec<&String> = o
        .kinds
        .iter()
        .filter(|k| !kinds_matched.contains(&k.to_ascii_lowercase()))
        .collect();
    if !unmatched.is_empty() {
        let seen: Vec<String> = kinds_seen.into_iter().collect();
        let near: Vec<&str> = unmatched.iter().filter_map(|k| closest(k, &seen)).collect();
        return Some(format!(
            "kinds {} match no object; the objects' kinds are {}{}",
            unmatched
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            seen.join(", "),
            if near.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", near.join(", "))
            }
        ));
    }
    nothing.then(|| {
        format!(
            "nothing to apply: no object {}",
            match (&o.selector, o.kinds.is_empty()) {
                (Some(s), _) => format!("matches selector {s:?}"),
                (None, false) => "is of those kinds".to_owned(),
                (None, true) => "was found".to_owned(),
            }
        )
    })
}

/// The group, version and kind of an object's `apiVersion` and `kind`.
fn gvk_of(api_version: &str, kind: &str) -> GroupVersionKind {
    match api_version.split_once('/') {
        Some((g, v)) => GroupVersionKind::gvk(g, v, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    }
}

/// kubectl's short names of the kinds drkit applies most.
const SHORT: &[(&str, &str)] = &[
    ("cm", "ConfigMap"),
    ("cj", "CronJob"),
    ("crd", "CustomResourceDefinition"),
    ("crds", "CustomResourceDefinition"),
    ("deploy", "Deployment"),
    ("ds", "DaemonSet"),
    ("hpa", "HorizontalPodAutoscaler"),
    ("ing", "Ingress"),
    ("ns", "Namespace"),
    ("pdb", "PodDisruptionBudget"),
    ("pv", "PersistentVolume"),
    ("pvc", "PersistentVolumeClaim"),
    ("sa", "ServiceAccount"),
    ("sc", "StorageClass"),
    ("sts", "StatefulSet"),
    ("svc", "Service"),
];

/// Whether `name` (as `kinds:` gives it: `Deployment`, `deployment`, `deployments`,
/// `deploy`) names kind `kind`, served as `plural`.
fn names_kind(name: &str, kind: &str, plural: &str) -> bool {
    name.eq_ignore_ascii_case(kind)
        || name.eq_ignore_ascii_case(plural)
        || SHORT
            .iter()
            .any(|(s, k)| name.eq_ignore_ascii_case(s) && *k == kind)
}

/// The kind among `seen` that `name` most likely meant (at most two letters off its
/// name or its plural).
fn closest<'a>(name: &str, seen: &'a [String]) -> Option<&'a str> {
    let singular = name.strip_suffix('s').unwrap_or(name);
    dr_core::nearest::nearest(singular, seen.iter().map(String::as_str), 2, 1)
        .first()
        .copied()
}

/// Kinds a CustomResourceDefinition among `manifests` defines: (group, kind) → its
/// plural and whether it is namespaced.
fn crd_kinds(manifests: &[Manifest]) -> HashMap<(String, String), (String, bool)> {
    manifests
        .iter()
        .filter(|m| m.object["kind"] == "CustomResourceDefinition")
        .map(|m| {
            let spec = &m.object["spec"];
            (
                (
                    spec["group"].as_str().unwrap_or_default().to_owned(),
                    spec["names"]["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                ),
                (
                    spec["names"]["plural"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    spec["scope"] == "Namespaced",
                ),
            )
        })
        .collect()
}

/// The object as it goes to the cluster: its namespace (its own, else `default_ns`)
/// renamed by `map`, a Namespace's own name and binding subjects' namespaces too; a
/// cluster-wide object without one.
fn place(
    mut object: Value,
    resource: ApiResource,
    namespaced: bool,
    pending_crd: bool,
    default_ns: &str,
    map: &BTreeMap<String, String>,
) -> Resolved {
    let mapped = |n: &str| map.get(n).cloned().unwrap_or_else(|| n.to_owned());
    let namespace = if namespaced {
        let ns = mapped(
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(default_ns),
        );
        object["metadata"]["namespace"] = json!(ns);
        Some(ns)
    } else {
        if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if object["kind"] == "Namespace" {
            let name = mapped(object["metadata"]["name"].as_str().unwrap_or_default());
            object["metadata"]["name"] = json!(name);
        }
        None
    };
    if let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects {
            if let Some(n) = s["namespace"].as_str().and_then(|n| map.get(n)) {
                s["namespace"] = json!(n);
            }
        }
    }
    Resolved {
        object,
        resource,
        namespace,
        pending_crd,
    }
}

/// The objects of the snapshot `o` picks, the namespace it was exported from, its id.
async fn read_snapshot(
    repo: &Repository,
    o: &ApplyOptions,
) -> Result<(Vec<Manifest>, String, String)> {
    let pick = dr_core::repo::Pick {
        snapshot: o.snapshot.clone().unwrap_or_default(),
        source: o.source.clone(),
        ..dr_core::repo::Pick::default()
    };
    let snap = repo.pick(&pick, KIND_K8S, None).await?;
    if snap.kind.as_str() != KIND_K8S {
        return Err(err!(
            InvalidInput,
            "snapshot {} is a {} snapshot, not a Kubernetes export",
            snap.id,
            snap.kind.as_str()
        ));
    }
    let bytes = repo.read_file_to_vec(&snap, FILE).await?;
    let objects: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| {
        err!(
            Corrupt,
            "snapshot {}: {FILE} is not the JSON drkit wrote: {e}",
            snap.id
        )
    })?;
    let exported_ns = snap.metadata["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id = snap.id.to_string();
    let manifests = objects
        .into_iter()
        .map(|object| Manifest {
            object,
            origin: format!("snapshot {id}"),
        })
        .collect();
    Ok((manifests, exported_ns, id))
}
