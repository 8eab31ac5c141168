//! The objects the test API holds, one global resourceVersion, and the errors the real
//! server answers with (`Status` bodies).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{json, Value};

use super::kinds::Kind;

/// A key: resource (`apps/v1/deployments`), namespace ("" for cluster objects), name.
pub type Key = (String, String, String);

/// An error as the real server returns it.
#[derive(Debug, Clone)]
pub struct Status {
    /// HTTP status.
    pub code: u16,
    /// `NotFound`, `Conflict`, `AlreadyExists`, `Forbidden`, `Invalid`, `BadRequest`.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

impl Status {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }
    pub fn not_found(kind: &Kind, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified()),
        )
    }
    pub fn conflict(kind: &Kind, name: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", kind.qualified()))
    }
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn invalid(kind: &Kind, name: &str, why: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {why}", kind.kind),
        )
    }
    /// The `Status` body.
    pub fn body(&self, kind: Option<&Kind>, name: &str) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
            "details": {"name": name, "group": kind.map_or("", |k| k.group), "kind": kind.map_or("", |k| k.plural)},
        })
    }
}

/// A change, for watches.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion it made.
    pub rv: u64,
    /// Which resource and namespace.
    pub resource: String,
    pub namespace: String,
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub kind: &'static str,
    /// The object after (before, for a deletion).
    pub object: Value,
}

/// What a test can make the server do.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// `(verb, resource plural)` answered 403.
    pub forbidden: Vec<(String, String)>,
    /// Writes (update, patch) to answer 409 before letting one through, per object.
    pub conflicts_per_write: u32,
    /// Controllers make no progress.
    pub stuck: bool,
    /// The only bearer token taken (others are 401), when set.
    pub token: Option<String>,
}

#[derive(Debug, Default)]
pub struct State {
    pub objects: BTreeMap<Key, Value>,
    pub rv: u64,
    pub uid: u64,
    pub history: VecDeque<Change>,
    pub faults: Faults,
    /// Conflicts still to give before the next write of an object passes.
    pub pending_conflicts: BTreeMap<Key, u32>,
    /// Log lines of pods, by pod name prefix.
    pub logs: BTreeMap<String, Vec<String>>,
    /// Requests seen, as `VERB path`.
    pub requests: Vec<String>,
    /// Seconds the test clock is ahead of the real one.
    pub offset: i64,
    /// Every change, to the watches.
    pub tx: Option<tokio::sync::broadcast::Sender<Change>>,
    /// What each field manager last applied (server-side apply), by object.
    pub applied: BTreeMap<(Key, String), Value>,
    /// Fields a manager applied and then lost to another's forced apply, by object.
    pub disowned: BTreeMap<(Key, String), std::collections::BTreeSet<String>>,
    /// The objects each controller (by uid) owns, for the controllers.
    pub owners: BTreeMap<String, std::collections::BTreeSet<Key>>,
    /// Objects (by uid) whose controller step last changed nothing, at the
    /// resourceVersion it saw: skipped until they or an object they own change (the
    /// controllers' watches).
    pub settled: std::collections::HashMap<String, String>,
    /// Whether an object was deleted since the controllers last looked for orphans.
    pub removed: bool,
    /// The resources the stored CustomResourceDefinitions define.
    pub custom: Vec<&'static Kind>,
}

/// Where CustomResourceDefinitions are stored.
const CRDS: &str = "apiextensions.k8s.io/v1/customresourcedefinitions";

const HISTORY: usize = 4096;

pub fn resource_key(k: &Kind) -> String {
    format!("{}/{}", k.api_version(), k.plural)
}

impl State {
    pub fn new() -> Self {
        let mut s = Self {
            tx: Some(tokio::sync::broadcast::channel(4096).0),
            ..Self::default()
        };
        for ns in ["default", "kube-system"] {
            let kind = super::kinds::find("", "v1", "namespaces").expect("namespaces");
            let _ = s.create(kind, "", json!({"metadata": {"name": ns}}), false);
        }
        s
    }

    pub fn timestamp(&self) -> String {
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + self.offset)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    }

    fn record(&mut self, kind: &Kind, namespace: &str, change: &'static str, object: Value) {
        if let Some(uid) = object["metadata"]["uid"].as_str() {
            self.settled.remove(uid);
        }
        if let Some(owner) = Self::controller_of(&object) {
            self.settled.remove(&owner);
        }
        self.removed |= change == "DELETED";
        let c = Change {
            rv: self.rv,
            resource: resource_key(kind),
            namespace: namespace.to_owned(),
            kind: change,
            object,
        };
        if let Some(tx) = &self.tx {
            let _ = tx.send(c.clone());
        }
        self.history.push_back(c);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    pub fn get(&self, kind: &Kind, namespace: &str, name: &str) -> Result<Value, Status> {
        self.objects
            .get(&(resource_key(kind), namespace.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| Status::not_found(kind, name))
    }

    /// Objects of `kind` in `namespace` (all namespaces when `None`), by key order.
    pub fn list(&self, kind: &Kind, namespace: Option<&str>) -> Vec<Value> {
        let rk = resource_key(kind);
        let start = (
            rk.clone(),
            namespace.unwrap_or_default().to_owned(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(|((r, ns, _), _)| *r == rk && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The objects of `kind` whose controller is `owner_uid`.
    pub fn owned(&self, kind: &Kind, owner_uid: &Value) -> Vec<Value> {
        let rk = resource_key(kind);
        let Some(keys) = owner_uid.as_str().and_then(|u| self.owners.get(u)) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|(r, _, _)| *r == rk)
            .filter_map(|k| self.objects.get(k).cloned())
            .collect()
    }

    fn controller_of(obj: &Value) -> Option<String> {
        obj["metadata"]["ownerReferences"]
            .as_array()?
            .iter()
            .find(|r| r["controller"] == true)
            .and_then(|r| r["uid"].as_str().map(str::to_owned))
    }

    fn store(&mut self, key: Key, obj: Value) {
        if let Some(old) = self.objects.get(&key) {
            if let Some(u) = Self::controller_of(old) {
                if let Some(set) = self.owners.get_mut(&u) {
                    set.remove(&key);
                }
            }
        }
        if let Some(u) = Self::controller_of(&obj) {
            self.owners.entry(u).or_default().insert(key.clone());
        }
        let crd = key.0 == CRDS;
        self.objects.insert(key, obj);
        if crd {
            self.crds_changed();
        }
    }

    /// Serves what the CustomResourceDefinitions now define (and no longer what a
    /// deleted one did).
    fn crds_changed(&mut self) {
        self.custom = self
            .objects
            .iter()
            .filter(|(k, _)| k.0 == CRDS)
            .flat_map(|(_, crd)| super::kinds::from_crd(crd))
            .collect();
    }

    /// The resource of an object's `apiVersion` and `kind`, custom ones included.
    pub fn kind_of(&self, obj: &Value) -> Option<&'static Kind> {
        super::kinds::of_kind_in(
            &self.custom,
            obj["apiVersion"].as_str()?,
            obj["kind"].as_str()?,
        )
    }

    fn namespace_exists(&self, namespace: &str) -> Result<(), Status> {
        if namespace.is_empty() {
            return Ok(());
        }
        let ns = super::kinds::find("", "v1", "namespaces").expect("namespaces");
        match self.get(ns, "", namespace) {
            Ok(n) if n["status"]["phase"] == "Terminating" => Err(Status::new(
                403,
                "Forbidden",
                format!("unable to create new content in namespace {namespace} because it is being terminated"),
            )),
            Ok(_) => Ok(()),
            Err(_) => Err(Status::new(404, "NotFound", format!("namespaces \"{namespace}\" not found"))),
        }
    }

    /// Fills the server's fields of a new object and stores it (unless `dry_run`).
    pub fn create(
        &mut self,
        kind: &Kind,
        namespace: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, Status> {
        let name = match obj["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match obj["metadata"]["generateName"].as_str() {
                Some(prefix) => format!("{prefix}{}", self.suffix()),
                None => {
                    return Err(Status::invalid(
                        kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ))
                }
            },
        };
        validate(kind, &name, &obj)?;
        self.namespace_exists(namespace)?;
        let key = (resource_key(kind), namespace.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            return Err(Status::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", kind.qualified()),
            ));
        }
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind);
        let ts = self.timestamp();
        let m = &mut obj["metadata"];
        m["name"] = json!(name);
        if kind.namespaced {
            m["namespace"] = json!(namespace);
        } else if let Some(o) = m.as_object_mut() {
            o.remove("namespace");
        }
        self.uid += 1;
        m["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uid));
        m["creationTimestamp"] = json!(ts);
        if kind.has_generation() {
            m["generation"] = json!(1);
        }
        defaults(kind, &mut obj);
        if dry_run {
            obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            return Ok(obj);
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.store(key, obj.clone());
        self.record(kind, namespace, "ADDED", obj.clone());
        if kind.plural == "namespaces" {
            self.namespace_defaults(&name);
        }
        Ok(obj)
    }

    /// What the service account and root CA publisher controllers put in every new
    /// namespace: the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap.
    fn namespace_defaults(&mut self, namespace: &str) {
        let made = [
            ("serviceaccounts", json!({"metadata": {"name": "default"}})),
            (
                "configmaps",
                json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n(test API)\n-----END CERTIFICATE-----\n"}}),
            ),
        ];
        for (plural, obj) in made {
            let kind = super::kinds::find("", "v1", plural).expect("a core kind");
            let _ = self.create(kind, namespace, obj, false);
        }
    }

    fn suffix(&mut self) -> String {
        self.uid += 1;
        let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
        let mut n = self.uid.wrapping_mul(2_654_435_761);
        (0..5)
            .map(|_| {
                let c = alphabet[usize::try_from(n % 27).unwrap_or(0)] as char;
                n /= 27;
                c
            })
            .collect()
    }

    /// A write of `new` over the stored object: the `resourceVersion` in `new`, when set,
    /// is a precondition; the server's fields are kept; `generation` bumps when the spec
    /// changes. `status_only` writes only `status` (the `/status` subresource).
    pub fn update(
        &mut self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        mut new: Value,
        dry_run: bool,
        status_only: bool,
    ) -> Result<Value, Status> {
        let key = (resource_key(kind), namespace.to_owned(), name.to_owned());
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Status::not_found(kind, name))?;
        if let Some(rv) = new["metadata"]["resourceVersion"].as_str() {
            if rv
                != old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
            {
                return Err(Status::conflict(kind, name));
            }
        }
        if new["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(Status::bad(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                new["metadata"]["name"].as_str().unwrap_or_default()
            )));
        }
        if status_only {
            let status = new["status"].clone();
            new = old.clone();
            new["status"] = status;
        } else {
            // The status is not written through the main resource.
            if old.get("status").is_some() {
                new["status"] = old["status"].clone();
            }
        }
        validate(kind, name, &new)?;
        for f in [
            "uid",
            "creationTimestamp",
            "name",
            "namespace",
            "generation",
            "deletionTimestamp",
        ] {
            match old["metadata"].get(f) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        new["apiVersion"] = json!(kind.api_version());
        new["kind"] = json!(kind.kind);
        defaults(kind, &mut new);
        if kind.has_generation() && new.get("spec") != old.get("spec") {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(g);
        }
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if new == old {
            return Ok(old);
        }
        if dry_run {
            return Ok(new);
        }
        self.rv += 1;
        new["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.store(key, new.clone());
        self.record(kind, namespace, "MODIFIED", new.clone());
        Ok(new)
    }

    /// A conflict storm: whether this write of `key` loses (then the next ones until
    /// `conflicts_per_write` have, after which one passes and the count starts again).
    pub fn loses_race(&mut self, key: &Key) -> bool {
        let n = self.faults.conflicts_per_write;
        if n == 0 {
            return false;
        }
        let left = self.pending_conflicts.entry(key.clone()).or_insert(n);
        if *left > 0 {
            *left -= 1;
            true
        } else {
            *left = n;
            false
        }
    }

    pub fn delete(
        &mut self,
        kind: &Kind,
        namespace: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Value, Status> {
        let key = (resource_key(kind), namespace.to_owned(), name.to_owned());
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Status::not_found(kind, name))?;
        if dry_run {
            return Ok(old);
        }
        if kind.plural == "namespaces" {
            // Terminating until its content is gone (the next tick).
            let mut t = old;
            t["status"]["phase"] = json!("Terminating");
            t["metadata"]["deletionTimestamp"] = json!(self.timestamp());
            self.rv += 1;
            t["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.store(key, t.clone());
            self.record(kind, namespace, "MODIFIED", t.clone());
            return Ok(t);
        }
        self.remove(&key);
        Ok(old)
    }

    /// Removes an object at once (no finalizers here).
    pub fn remove(&mut self, key: &Key) {
        // A new object of the same name starts with no field owners.
        self.applied.retain(|(k, _), _| k != key);
        self.disowned.retain(|(k, _), _| k != key);
        if let Some(mut old) = self.objects.remove(key) {
            if let Some(u) = Self::controller_of(&old) {
                if let Some(set) = self.owners.get_mut(&u) {
                    set.remove(key);
                }
            }
            self.rv += 1;
            old["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            let defined = if key.0 == CRDS {
                super::kinds::from_crd(&old)
            } else {
                Vec::new()
            };
            if let Some(kind) = self.kind_of(&old) {
                self.record(kind, &key.1, "DELETED", old);
            }
            if key.0 == CRDS {
                // Its custom resources go with it, as the real server deletes them.
                let gone: Vec<String> = defined.iter().map(|k| resource_key(k)).collect();
                let doomed: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| gone.contains(&k.0))
                    .cloned()
                    .collect();
                for k in doomed {
                    self.remove(&k);
                }
                self.crds_changed();
            }
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn validate(kind: &Kind, name: &str, obj: &Value) -> Result<(), Status> {
    if !is_dns_label(name) {
        return Err(Status::invalid(kind, name, &format!("metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'")));
    }
    match kind.plural {
        "deployments" | "statefulsets" | "replicasets" | "daemonsets" => {
            let t = &obj["spec"]["template"];
            if t["spec"]["containers"].as_array().is_none_or(Vec::is_empty) {
                return Err(Status::invalid(
                    kind,
                    name,
                    "spec.template.spec.containers: Required value",
                ));
            }
            if let Some(r) = obj["spec"]["replicas"].as_i64() {
                if r < 0 {
                    return Err(Status::invalid(
                        kind,
                        name,
                        "spec.replicas: Invalid value: must be greater than or equal to 0",
                    ));
                }
            }
            if obj["spec"]["selector"].is_null() {
                return Err(Status::invalid(kind, name, "spec.selector: Required value"));
            }
        }
        "secrets" => {
            if let Some(data) = obj["data"].as_object() {
                for (k, v) in data {
                    let ok = v.as_str().is_some_and(|s| {
                        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s)
                            .is_ok()
                    });
                    if !ok {
                        return Err(Status::invalid(
                            kind,
                            name,
                            &format!("data[{k}]: Invalid value: not base64"),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A container port without a protocol is TCP. (Only fields that are there are
/// touched: indexing a JSON value mutably would add the missing ones as null.)
fn default_port_protocols(obj: &mut Value) {
    let containers = ["spec", "template", "spec", "containers"]
        .iter()
        .try_fold(obj, |v, k| v.get_mut(*k))
        .and_then(Value::as_array_mut);
    for c in containers.into_iter().flatten() {
        let ports = c.get_mut("ports").and_then(Value::as_array_mut);
        for p in ports.into_iter().flatten() {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
        }
    }
}

/// The defaults the real server fills, where drkit or kubectl read them.
fn defaults(kind: &Kind, obj: &mut Value) {
    match kind.plural {
        "deployments" | "statefulsets" | "replicasets" => {
            if obj["spec"]["replicas"].is_null() {
                obj["spec"]["replicas"] = json!(1);
            }
            // No strategy, `{}` (what kubectl create deployment sends) or one without a
            // type: a rolling update, as the server defaults it.
            if kind.plural == "deployments" && obj["spec"]["strategy"]["type"].is_null() {
                obj["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            }
            default_port_protocols(obj);
            if kind.plural != "replicasets" && obj["spec"]["revisionHistoryLimit"].is_null() {
                obj["spec"]["revisionHistoryLimit"] = json!(10);
            }
        }
        "secrets" => {
            if obj["type"].is_null() {
                obj["type"] = json!("Opaque");
            }
            // stringData is write-only: it lands in data.
            if let Some(sd) = obj.get("stringData").and_then(Value::as_object).cloned() {
                for (k, v) in sd {
                    let enc = base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        v.as_str().unwrap_or_default(),
                    );
                    obj["data"][k] = json!(enc);
                }
                if let Some(o) = obj.as_object_mut() {
                    o.remove("stringData");
                }
            }
        }
        "services" => {
            if obj["spec"]["type"].is_null() {
                obj["spec"]["type"] = json!("ClusterIP");
            }
            if obj["spec"]["clusterIP"].is_null() && obj["spec"]["type"] == "ClusterIP" {
                obj["spec"]["clusterIP"] = json!("10.96.0.10");
                obj["spec"]["clusterIPs"] = json!(["10.96.0.10"]);
            }
        }
        "namespaces" => {
            if obj["status"]["phase"].is_null() {
                obj["status"]["phase"] = json!("Active");
            }
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
        }
        _ => {}
    }
}
