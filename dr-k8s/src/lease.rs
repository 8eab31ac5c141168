//! A [`Lock`] on a `coordination.k8s.io/v1` Lease: the lock for stores that do not
//! enforce create-only writes (garage), and for runs whose operators share a cluster.
//!
//! - The holder is `spec.holderIdentity`, the purpose an annotation, the fencing token
//!   `spec.leaseTransitions` (incremented on every acquisition).
//! - Every write is a compare-and-swap on `resourceVersion`.
//! - Expiry is judged on the local monotonic clock, not on the holder's `renewTime`: a
//!   lease whose `renewTime` says it is live is refused at once ("held by X until T"); one
//!   that looks expired is watched for its whole duration, and taken over only if nobody
//!   renewed it meanwhile — so a clock skew between machines cannot hand the lock to two
//!   holders.
//! - A renewal has a deadline shorter than the lease: when it cannot renew in time, the
//!   holder is told it lost the lock and must stop.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use dr_core::lock::{FencingToken, Lease, Lock, LockRequest};
use dr_core::{err, Error, ErrorKind, Result};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease as KubeLease;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

use crate::error::classify;
use crate::Kubernetes;

const PURPOSE: &str = "drkit.io/purpose";
/// The holding process (host, boot id, PID namespace, pid, start), as JSON.
const PROCESS: &str = "drkit.io/process";

/// The Lease `name` in `namespace` of a cluster, as a lock.
#[derive(Debug, Clone)]
pub struct LeaseLock {
    k8s: Kubernetes,
    namespace: String,
    name: String,
    /// When this process last renewed (or took) its lease, by its own clock.
    renewed: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
}

impl LeaseLock {
    /// The lock on Lease `namespace`/`name` through `k8s`.
    #[must_use]
    pub fn new(k8s: Kubernetes, namespace: &str, name: &str) -> Self {
        Self {
            k8s,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            renewed: std::sync::Arc::default(),
        }
    }

    /// Parses `k8s:CONTEXT/NAMESPACE/NAME` (the `--lock` flag) into its parts.
    pub fn parse_spec(spec: &str) -> Result<(String, String, String)> {
        let rest = spec.strip_prefix("k8s:").ok_or_else(|| {
            err!(
                InvalidInput,
                "lock {spec:?} is not k8s:CONTEXT/NAMESPACE/NAME"
            )
        })?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [c, ns, n] if !c.is_empty() && !ns.is_empty() && !n.is_empty() => {
                Ok(((*c).to_owned(), (*ns).to_owned(), (*n).to_owned()))
            }
            _ => Err(err!(
                InvalidInput,
                "lock {spec:?} is not k8s:CONTEXT/NAMESPACE/NAME"
            )),
        }
    }

    fn api(&self) -> Api<KubeLease> {
        Api::namespaced(self.k8s.client.clone(), &self.namespace)
    }

    fn what(&self) -> String {
        format!("lease {} in namespace {}", self.name, self.namespace)
    }

    async fn read(&self) -> Result<Option<Value>> {
        match self.api().get_opt(&self.name).await {
            Ok(l) => Ok(l.map(|l| serde_json::to_value(l).unwrap_or_default())),
            Err(e) => Err(classify(self.k8s.context(), "get", &self.what(), e)),
        }
    }

    fn lease_of(&self, v: &Value) -> Option<Lease> {
        let spec = &v["spec"];
        let holder = spec["holderIdentity"].as_str().filter(|h| !h.is_empty())?;
        let parse = |f: &str| spec[f].as_str().and_then(|t| t.parse::<Timestamp>().ok());
        let renewed = parse("renewTime").unwrap_or_else(Timestamp::now);
        let secs = spec["leaseDurationSeconds"].as_i64().unwrap_or(0);
        Some(Lease {
            name: self.name.clone(),
            holder: holder.to_owned(),
            purpose: v["metadata"]["annotations"][PURPOSE]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            token: FencingToken(
                u64::try_from(spec["leaseTransitions"].as_i64().unwrap_or(0)).unwrap_or(0),
            ),
            acquired: parse("acquireTime").unwrap_or(renewed),
            expires: renewed
                .checked_add(jiff::SignedDuration::from_secs(secs))
                .unwrap_or(renewed),
            process: v["metadata"]["annotations"][PROCESS]
                .as_str()
                .and_then(|p| serde_json::from_str(p).ok()),
        })
    }

    fn body(
        &self,
        request: &LockRequest,
        token: u64,
        rv: Option<&str>,
        acquired: Timestamp,
    ) -> Result<KubeLease> {
        let now = micro(Timestamp::now());
        let mut v = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "annotations": {
                PURPOSE: request.purpose,
                PROCESS: serde_json::to_string(&request.process).unwrap_or_default(),
            }},
            "spec": {
                "holderIdentity": request.holder,
                "leaseDurationSeconds": i64::try_from(request.ttl.as_secs().max(1)).unwrap_or(i64::MAX),
                "acquireTime": micro(acquired), "renewTime": now,
                "leaseTransitions": token,
            },
        });
        if let Some(rv) = rv {
            v["metadata"]["resourceVersion"] = json!(rv);
        }
        serde_json::from_value(v).map_err(|e| err!(External, "building {}: {e}", self.what()))
    }

    fn lost(&self, lease: &Lease, why: &str) -> Error {
        err!(
            Conflict,
            "lock {} was lost ({why}); the holder with token {} must stop",
            self.name(),
            lease.token
        )
    }

    /// Writes `body` over the lease read at `rv`; `Ok(false)` when another writer won.
    async fn replace(&self, body: &KubeLease) -> Result<bool> {
        match self
            .api()
            .replace(&self.name, &PostParams::default(), body)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(classify(self.k8s.context(), "update", &self.what(), e)),
        }
    }
}

fn micro(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[async_trait]
impl Lock for LeaseLock {
    fn name(&self) -> String {
        format!(
            "k8s:{}/{}/{}",
            self.k8s.context(),
            self.namespace,
            self.name
        )
    }

    async fn acquire(&self, request: &LockRequest) -> Result<Lease> {
        let location = format!(
            " (Lease {}/{} in context {})",
            self.namespace,
            self.name,
            self.k8s.context()
        );
        let Some(current) = self.read().await? else {
            let body = self.body(request, 1, None, Timestamp::now())?;
            return match self.api().create(&PostParams::default(), &body).await {
                Ok(_) => {
                    *self.renewed.lock().expect("lock state") = Some(Instant::now());
                    Ok(request.lease(&self.name, FencingToken(1)))
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    match self.read().await?.and_then(|v| self.lease_of(&v)) {
                        Some(l) => Err(l.held_error(&location)),
                        None => Err(err!(
                            Conflict,
                            "lock {} was just taken by another process",
                            self.name()
                        )),
                    }
                }
                Err(e) => Err(classify(self.k8s.context(), "create", &self.what(), e)),
            };
        };
        let rv = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let transitions =
            u64::try_from(current["spec"]["leaseTransitions"].as_i64().unwrap_or(0)).unwrap_or(0);
        if let Some(held) = self.lease_of(&current) {
            if !request.holder_is_dead(&held) {
                if held.expires > Timestamp::now() {
                    return Err(held.held_error(&location));
                }
                // It looks expired by the holder's clock; believe it only after watching
                // it go unrenewed for its whole duration by ours.
                let secs = current["spec"]["leaseDurationSeconds"]
                    .as_u64()
                    .unwrap_or(0);
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(secs) {
                    tokio::time::sleep(Duration::from_millis(500).min(Duration::from_secs(secs)))
                        .await;
                    let again = self.read().await?;
                    if again
                        .as_ref()
                        .and_then(|v| v["metadata"]["resourceVersion"].as_str())
                        != Some(rv.as_str())
                    {
                        return match again.and_then(|v| self.lease_of(&v)) {
                            Some(l) => Err(l.held_error(&location)),
                            None => Err(err!(Conflict, "lock {} changed hands while drkit waited to take it over; try again", self.name())),
                        };
                    }
                }
            }
        }
        let token = transitions + 1;
        let body = self.body(request, token, Some(&rv), Timestamp::now())?;
        if self.replace(&body).await? {
            *self.renewed.lock().expect("lock state") = Some(Instant::now());
            Ok(request.lease(&self.name, FencingToken(token)))
        } else {
            match self.read().await?.and_then(|v| self.lease_of(&v)) {
                Some(l) => Err(l.held_error(&location)),
                None => Err(err!(
                    Conflict,
                    "lock {} was just taken by another process",
                    self.name()
                )),
            }
        }
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        // The renewal must land before the lease runs out by this process's clock.
        let last = *self.renewed.lock().expect("lock state");
        let deadline = last.map_or(ttl, |t| (t + ttl).saturating_duration_since(Instant::now()));
        let attempt = async {
            let current = self
                .read()
                .await?
                .ok_or_else(|| self.lost(lease, "the Lease was deleted"))?;
            match self.lease_of(&current) {
                Some(l) if l.holder == lease.holder && l.token == lease.token => {}
                Some(l) => {
                    return Err(self.lost(
                        lease,
                        &format!("taken over by {} with token {}", l.holder, l.token),
                    ))
                }
                None => return Err(self.lost(lease, "released")),
            }
            let rv = current["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let request = LockRequest {
                holder: lease.holder.clone(),
                purpose: lease.purpose.clone(),
                ttl,
                take_over_from: None,
                process: lease
                    .process
                    .clone()
                    .unwrap_or_else(dr_core::lock::ProcessId::current),
            };
            let body = self.body(&request, lease.token.0, Some(&rv), lease.acquired)?;
            if !self.replace(&body).await? {
                return Err(self.lost(lease, "another writer changed the Lease"));
            }
            *self.renewed.lock().expect("lock state") = Some(Instant::now());
            Ok(Lease {
                expires: dr_core::lock::expiry(Timestamp::now(), ttl),
                ..lease.clone()
            })
        };
        match tokio::time::timeout(deadline, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Conflict,
                format!("lock {} could not be renewed before it expired; the holder with token {} must stop", self.name(), lease.token),
            )),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let Some(current) = self.read().await? else {
            return Ok(());
        };
        match self.lease_of(&current) {
            Some(l) if l.holder == lease.holder && l.token == lease.token => {}
            _ => return Ok(()),
        }
        let mut v = current.clone();
        v["spec"]["holderIdentity"] = Value::Null;
        v["spec"]["renewTime"] = Value::Null;
        let body: KubeLease = serde_json::from_value(v)
            .map_err(|e| err!(External, "building {}: {e}", self.what()))?;
        // Lost a race on release: whoever wrote last holds it now; nothing to undo.
        let _ = self.replace(&body).await?;
        *self.renewed.lock().expect("lock state") = None;
        Ok(())
    }

    async fn holder(&self) -> Result<Option<Lease>> {
        Ok(self.read().await?.and_then(|v| self.lease_of(&v)))
    }
}
