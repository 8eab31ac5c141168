//! Maintenance mode: every backend of an Ingress pointed at a maintenance Service, and
//! back. The Ingress as it was (spec and annotations) is kept on the Ingress itself, in
//! the annotation `drkit.io/maintenance-original`, so turning it off restores it exactly
//! — from any machine, after any crash. It can create the maintenance Deployment and
//! Service from an image. As a [`TrafficRouter`], `traffic.switch` to `{set:
//! maintenance}` turns it on and `{set: normal}` off.

use async_trait::async_trait;
use dr_core::traffic::{Destination, Route, RoutePlan, RouteRecord, Switched, TrafficRouter};
use dr_core::wait::Wait;
use dr_core::{err, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::classify;
use crate::workload::CAS_ATTEMPTS;
use crate::{Change, Kubernetes};

/// The annotation that keeps the Ingress as it was while maintenance mode is on.
pub const ORIGINAL: &str = "drkit.io/maintenance-original";

/// What `drkit k8s maintenance on|off` and the `k8s.maintenance` step take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceOptions {
    /// The Ingress.
    pub ingress: String,
    /// Its namespace (else the connection's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The maintenance Service every backend points at while on.
    #[serde(default = "default_service")]
    pub service: String,
    /// Its port.
    #[serde(default = "default_port")]
    pub port: i32,
    /// Create (or update) the maintenance Deployment and Service from this image first.
    #[serde(default)]
    pub image: Option<String>,
}

fn default_service() -> String {
    "drkit-maintenance".into()
}

fn default_port() -> i32 {
    80
}

impl MaintenanceOptions {
    /// Maintenance for Ingress `ingress` with the default Service.
    #[must_use]
    pub fn new(ingress: &str) -> Self {
        Self {
            ingress: ingress.to_owned(),
            namespace: None,
            service: default_service(),
            port: default_port(),
            image: None,
        }
    }
}

/// What turning maintenance mode on or off did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MaintenanceOutcome {
    /// The Ingress.
    pub ingress: String,
    /// Its namespace.
    pub namespace: String,
    /// Whether maintenance mode is on now.
    pub on: bool,
    /// Whether this call changed anything.
    pub changed: bool,
    /// The backends (`service:port`) before.
    pub before: Vec<String>,
    /// And after.
    pub after: Vec<String>,
}

fn backends(spec: &Value) -> Vec<String> {
    let one = |b: &Value| {
        let s = &b["service"];
        let port = s["port"]["number"].as_i64().map_or_else(
            || s["port"]["name"].as_str().unwrap_or_default().to_owned(),
            |n| n.to_string(),
        );
        format!("{}:{port}", s["name"].as_str().unwrap_or_default())
    };
    let mut out = Vec::new();
    if spec["defaultBackend"].is_object() {
        out.push(one(&spec["defaultBackend"]));
    }
    for rule in spec["rules"].as_array().into_iter().flatten() {
        for p in rule["http"]["paths"].as_array().into_iter().flatten() {
            out.push(one(&p["backend"]));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn pointed_at(spec: &Value, service: &str, port: i32) -> Value {
    let backend = json!({"service": {"name": service, "port": {"number": port}}});
    let mut spec = spec.clone();
    if spec["defaultBackend"].is_object() {
        spec["defaultBackend"] = backend.clone();
    }
    if let Some(rules) = spec.get_mut("rules").and_then(Value::as_array_mut) {
        for rule in rules {
            if let Some(paths) = rule
                .get_mut("http")
                .and_then(|h| h.get_mut("paths"))
                .and_then(Value::as_array_mut)
            {
                for p in paths {
                    p["backend"] = backend.clone();
                }
            }
        }
    }
    spec
}

impl Kubernetes {
    async fn read_ingress(&self, ns: &str, name: &str) -> Result<Value> {
        Api::<Ingress>::namespaced(self.client.clone(), ns)
            .get(name)
            .await
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .map_err(|e| {
                classify(
                    self.context(),
                    "get",
                    &format!("ingress {name} in namespace {ns}"),
                    e,
                )
            })
    }

    /// The change turning maintenance mode `on` (or off) would make.
    pub async fn plan_maintenance(&self, o: &MaintenanceOptions, on: bool) -> Result<Change> {
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        let ing = self.read_ingress(&ns, &o.ingress).await?;
        let before = backends(&ing["spec"]);
        let after = match (on, ing["metadata"]["annotations"][ORIGINAL].as_str()) {
            (true, Some(_)) | (false, None) => before.clone(),
            (true, None) => backends(&pointed_at(&ing["spec"], &o.service, o.port)),
            (false, Some(orig)) => {
                backends(&serde_json::from_str::<Value>(orig).unwrap_or_default()["spec"])
            }
        };
        Ok(Change {
            object: format!(
                "ingress {} in namespace {ns}, context {}",
                o.ingress,
                self.context()
            ),
            field: "backends".into(),
            from: Some(before.join(", ")),
            to: Some(after.join(", ")),
        })
    }

    /// Points every backend of the Ingress at the maintenance Service (creating it from
    /// `image` first when given), keeping the Ingress as it was in an annotation.
    pub async fn maintenance_on(&self, o: &MaintenanceOptions) -> Result<MaintenanceOutcome> {
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        if let Some(image) = &o.image {
            self.maintenance_app(&ns, o, image).await?;
        }
        for _ in 0..CAS_ATTEMPTS {
            let ing = self.read_ingress(&ns, &o.ingress).await?;
            let before = backends(&ing["spec"]);
            if ing["metadata"]["annotations"][ORIGINAL].is_string() {
                return Ok(MaintenanceOutcome {
                    ingress: o.ingress.clone(),
                    namespace: ns,
                    on: true,
                    changed: false,
                    after: before.clone(),
                    before,
                });
            }
            let original =
                json!({"spec": ing["spec"], "annotations": ing["metadata"]["annotations"]});
            let mut annotations = ing["metadata"]["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            annotations.insert(ORIGINAL.into(), json!(original.to_string()));
            let spec = pointed_at(&ing["spec"], &o.service, o.port);
            let rv = ing["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ops = vec![
                json!({"op": "replace", "path": "/spec", "value": spec}),
                json!({"op": "add", "path": "/metadata/annotations", "value": annotations}),
            ];
            if self.patch_ingress(&ns, &o.ingress, &rv, ops).await? {
                return Ok(MaintenanceOutcome {
                    ingress: o.ingress.clone(),
                    namespace: ns,
                    on: true,
                    changed: true,
                    before,
                    after: backends(&spec),
                });
            }
        }
        Err(crate::cas::lost_races(&format!(
            "ingress {} in namespace {ns}",
            o.ingress
        )))
    }

    /// Puts the Ingress back exactly as it was before maintenance mode (spec and
    /// annotations).
    pub async fn maintenance_off(&self, o: &MaintenanceOptions) -> Result<MaintenanceOutcome> {
        let ns = self.ns(o.namespace.as_deref()).to_owned();
        for _ in 0..CAS_ATTEMPTS {
            let ing = self.read_ingress(&ns, &o.ingress).await?;
            let before = backends(&ing["spec"]);
            let Some(orig) = ing["metadata"]["annotations"][ORIGINAL].as_str() else {
                return Ok(MaintenanceOutcome {
                    ingress: o.ingress.clone(),
                    namespace: ns,
                    on: false,
                    changed: false,
                    after: before.clone(),
                    before,
                });
            };
            let orig: Value = serde_json::from_str(orig).map_err(|e| err!(Corrupt, "ingress {}: annotation {ORIGINAL} is not the JSON drkit wrote ({e}); restore the Ingress from its manifest", o.ingress))?;
            let rv = ing["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut ops = vec![json!({"op": "replace", "path": "/spec", "value": orig["spec"]})];
            ops.push(if orig["annotations"].is_object() {
                json!({"op": "replace", "path": "/metadata/annotations", "value": orig["annotations"]})
            } else {
                json!({"op": "remove", "path": "/metadata/annotations"})
            });
            if self.patch_ingress(&ns, &o.ingress, &rv, ops).await? {
                return Ok(MaintenanceOutcome {
                    ingress: o.ingress.clone(),
                    namespace: ns,
                    on: false,
                    changed: true,
                    before,
                    after: backends(&orig["spec"]),
                });
            }
        }
        Err(crate::cas::lost_races(&format!(
            "ingress {} in namespace {ns}",
            o.ingress
        )))
    }

    async fn patch_ingress(&self, ns: &str, name: &str, rv: &str, ops: Vec<Value>) -> Result<bool> {
        let api = Api::<Ingress>::namespaced(self.client.clone(), ns);
        self.json_patch_cas(
            &api,
            name,
            rv,
            ops,
            &format!("ingress {name} in namespace {ns}"),
        )
        .await
    }

    /// The maintenance Deployment and Service, applied server-side as `drkit`.
    async fn maintenance_app(&self, ns: &str, o: &MaintenanceOptions, image: &str) -> Result<()> {
        let labels =
            json!({"app.kubernetes.io/name": o.service, "app.kubernetes.io/managed-by": "drkit"});
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": o.service, "namespace": ns, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": o.service}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "maintenance", "image": image, "ports": [{"containerPort": o.port}]}]}}},
        });
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": o.service, "namespace": ns, "labels": labels},
            "spec": {"selector": {"app.kubernetes.io/name": o.service}, "ports": [{"port": o.port, "targetPort": o.port}]},
        });
        let pp = PatchParams::apply("drkit").force();
        Api::<Deployment>::namespaced(self.client.clone(), ns)
            .patch(&o.service, &pp, &Patch::Apply(deployment))
            .await
            .map_err(|e| {
                classify(
                    self.context(),
                    "patch",
                    &format!("deployment {} in namespace {ns}", o.service),
                    e,
                )
            })?;
        Api::<Service>::namespaced(self.client.clone(), ns)
            .patch(&o.service, &pp, &Patch::Apply(service))
            .await
            .map_err(|e| {
                classify(
                    self.context(),
                    "patch",
                    &format!("service {} in namespace {ns}", o.service),
                    e,
                )
            })?;
        Ok(())
    }
}

/// Maintenance mode of one Ingress as a traffic router: set `maintenance` or `normal`.
#[derive(Debug, Clone)]
pub struct MaintenanceRouter {
    k8s: Kubernetes,
    options: MaintenanceOptions,
}

impl MaintenanceRouter {
    /// The router of `options.ingress` through `k8s`.
    #[must_use]
    pub fn new(k8s: Kubernetes, options: MaintenanceOptions) -> Self {
        Self { k8s, options }
    }

    fn route(&self, on: bool, backends: Vec<String>) -> Route {
        Route {
            name: format!(
                "ingress {}/{}",
                self.k8s.ns(self.options.namespace.as_deref()),
                self.options.ingress
            ),
            record_type: "Ingress".into(),
            records: vec![RouteRecord {
                set_id: Some(if on { "maintenance" } else { "normal" }.into()),
                failover: None,
                weight: None,
                values: backends,
                ttl: None,
                health_check: None,
                alias: None,
            }],
        }
    }

    fn wants_on(to: &Destination) -> Result<bool> {
        match to {
            Destination::Set(s) if s == "maintenance" => Ok(true),
            Destination::Set(s) if s == "normal" => Ok(false),
            other => Err(err!(InvalidInput, "an Ingress's maintenance mode switches to {{set: maintenance}} or {{set: normal}}, not {other}")),
        }
    }

    fn switched(&self, o: &MaintenanceOutcome, took: std::time::Duration) -> Switched {
        Switched {
            before: self.route(o.on != o.changed, o.before.clone()),
            after: self.route(o.on, o.after.clone()),
            took,
        }
    }
}

#[async_trait]
impl TrafficRouter for MaintenanceRouter {
    fn name(&self) -> String {
        format!(
            "kubernetes {}: ingress {}",
            self.k8s.context(),
            self.options.ingress
        )
    }

    async fn current(&self) -> Result<Route> {
        let ns = self.k8s.ns(self.options.namespace.as_deref()).to_owned();
        let ing = self.k8s.read_ingress(&ns, &self.options.ingress).await?;
        Ok(self.route(
            ing["metadata"]["annotations"][ORIGINAL].is_string(),
            backends(&ing["spec"]),
        ))
    }

    async fn plan(&self, to: &Destination) -> Result<RoutePlan> {
        let on = Self::wants_on(to)?;
        let before = self.current().await?;
        let change = self.k8s.plan_maintenance(&self.options, on).await?;
        let after = self.route(
            on,
            change
                .to
                .unwrap_or_default()
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        );
        Ok(RoutePlan::new(before, after))
    }

    async fn switch(&self, to: &Destination, _wait: &Wait) -> Result<Switched> {
        let started = std::time::Instant::now();
        let o = if Self::wants_on(to)? {
            self.k8s.maintenance_on(&self.options).await?
        } else {
            self.k8s.maintenance_off(&self.options).await?
        };
        Ok(self.switched(&o, started.elapsed()))
    }

    async fn restore(&self, previous: &Route, wait: &Wait) -> Result<Switched> {
        let set = previous
            .records
            .first()
            .and_then(|r| r.set_id.clone())
            .unwrap_or_else(|| "normal".into());
        self.switch(&Destination::Set(set), wait).await
    }
}
