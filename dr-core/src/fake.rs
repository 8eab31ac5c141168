//! In-memory stand-ins for the traits a runbook drives — a database that can be promoted
//! and fenced, a router, a lock — so a whole failover replays in a unit test without a
//! socket. Each records the calls that changed it, so a test can count side effects, and
//! can be told to fail its next calls.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> dr_core::Result<()> {
//! use dr_core::fake::FakeDatabase;
//! use dr_core::target::{DatabaseTarget, Role};
//! use dr_core::wait::Wait;
//! let replica = FakeDatabase::replica("shop-usw2", "shop-use1");
//! assert_eq!(replica.health().await?.role, Role::Replica);
//! let promoted = replica.promote(&Wait::default()).await?;
//! assert!(promoted.writable);
//! assert_eq!(replica.calls(), ["promote"]);
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::lock::{FencingToken, Lease, Lock, LockRequest};
use crate::target::{Capability, DatabaseTarget, Health, PointInTime, Role};
use crate::traffic::{plan_records, Destination, Route, RoutePlan, Switched, TrafficRouter};
use crate::wait::Wait;
use crate::{err, Error, ErrorKind, Result};

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Failures queued for the next calls of a fake.
#[derive(Debug, Default)]
struct Failures(VecDeque<(ErrorKind, String)>);

impl Failures {
    fn next(&mut self, what: &str) -> Result<()> {
        match self.0.pop_front() {
            Some((kind, msg)) => Err(Error::new(kind, format!("{what}: {msg}"))),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct DbState {
    health: Health,
    calls: Vec<String>,
    failures: Failures,
    restored: Vec<(String, PointInTime)>,
}

/// An in-memory database: a primary or a replica that can be promoted, fenced, restored
/// to a point in time (into a new name) and asked for its health and lag.
#[derive(Debug, Clone)]
pub struct FakeDatabase {
    state: Arc<Mutex<DbState>>,
    capabilities: Vec<Capability>,
}

impl FakeDatabase {
    fn new(name: &str, role: Role, source: Option<&str>) -> Self {
        Self {
            state: Arc::new(Mutex::new(DbState {
                health: Health {
                    name: name.to_owned(),
                    available: true,
                    status: "available".into(),
                    role,
                    writable: role == Role::Primary,
                    endpoint: Some(format!("{name}.internal:5432")),
                    replicating_from: source.map(str::to_owned),
                    replication_lag: source.map(|_| Duration::ZERO),
                    position: None,
                },
                calls: Vec::new(),
                failures: Failures::default(),
                restored: Vec::new(),
            })),
            capabilities: vec![
                Capability::Health,
                Capability::ReplicationLag,
                Capability::Promote,
                Capability::Fence,
                Capability::PointInTimeRestore,
            ],
        }
    }

    /// A writable primary.
    #[must_use]
    pub fn primary(name: &str) -> Self {
        Self::new(name, Role::Primary, None)
    }

    /// A replica of `source`, zero lag.
    #[must_use]
    pub fn replica(name: &str, source: &str) -> Self {
        Self::new(name, Role::Replica, Some(source))
    }

    /// Advertises only `capabilities` (the rest answer `Unsupported`).
    #[must_use]
    pub fn with_capabilities(mut self, capabilities: &[Capability]) -> Self {
        self.capabilities = capabilities.to_vec();
        self
    }

    /// Sets the replication lag a replica reports.
    pub fn set_lag(&self, lag: Duration) {
        locked(&self.state).health.replication_lag = Some(lag);
    }

    /// Makes it (un)reachable: health says unavailable, changes fail `Unavailable`.
    pub fn set_available(&self, available: bool) {
        let mut s = locked(&self.state);
        s.health.available = available;
        s.health.status = if available {
            "available"
        } else {
            "unreachable"
        }
        .into();
    }

    /// The next `times` calls fail with `kind`.
    pub fn fail_next(&self, kind: ErrorKind, times: usize) {
        let mut s = locked(&self.state);
        for _ in 0..times {
            s.failures.0.push_back((kind, "injected failure".into()));
        }
    }

    /// The calls that changed it, in order (`promote`, `fence`, `pitr <name>`).
    #[must_use]
    pub fn calls(&self) -> Vec<String> {
        locked(&self.state).calls.clone()
    }

    /// The point-in-time restores it made: new name and target.
    #[must_use]
    pub fn restored(&self) -> Vec<(String, PointInTime)> {
        locked(&self.state).restored.clone()
    }

    fn change(&self, call: &str, cap: Capability, f: impl FnOnce(&mut Health)) -> Result<Health> {
        if !self.capabilities.contains(&cap) {
            return Err(crate::target::unsupported(&self.name(), cap));
        }
        let mut s = locked(&self.state);
        let name = s.health.name.clone();
        s.failures.next(&format!("{call} of {name}"))?;
        if !s.health.available {
            return Err(err!(Unavailable, "{name} is unreachable"));
        }
        s.calls.push(call.to_owned());
        f(&mut s.health);
        Ok(s.health.clone())
    }
}

#[async_trait]
impl DatabaseTarget for FakeDatabase {
    fn name(&self) -> String {
        locked(&self.state).health.name.clone()
    }

    fn capabilities(&self) -> Vec<Capability> {
        self.capabilities.clone()
    }

    async fn health(&self) -> Result<Health> {
        let mut s = locked(&self.state);
        let name = s.health.name.clone();
        s.failures.next(&format!("health of {name}"))?;
        Ok(s.health.clone())
    }

    async fn promote(&self, _wait: &Wait) -> Result<Health> {
        if locked(&self.state).health.role == Role::Primary
            && self.capabilities.contains(&Capability::Promote)
        {
            return Ok(locked(&self.state).health.clone());
        }
        self.change("promote", Capability::Promote, |h| {
            h.role = Role::Primary;
            h.writable = true;
            h.replicating_from = None;
            h.replication_lag = None;
        })
    }

    async fn fence(&self, _wait: &Wait) -> Result<Health> {
        self.change("fence", Capability::Fence, |h| h.writable = false)
    }

    async fn restore_to_point_in_time(
        &self,
        target: &PointInTime,
        new_name: &str,
        _wait: &Wait,
    ) -> Result<Health> {
        let mut restored = None;
        self.change(
            &format!("pitr {new_name}"),
            Capability::PointInTimeRestore,
            |h| {
                restored = Some(Health {
                    name: new_name.to_owned(),
                    role: Role::Primary,
                    writable: true,
                    endpoint: Some(format!("{new_name}.internal:5432")),
                    replicating_from: None,
                    replication_lag: None,
                    ..h.clone()
                });
            },
        )?;
        locked(&self.state)
            .restored
            .push((new_name.to_owned(), target.clone()));
        Ok(restored.expect("set by change"))
    }
}

#[derive(Debug)]
struct RouterState {
    route: Route,
    switches: usize,
    failures: Failures,
}

/// A failover pair for `name`: set `primary` is PRIMARY, set `secondary` SECONDARY, each
/// pointing at `<set>.example.com` (CNAME, TTL 60) — the route of most failover tests.
#[must_use]
pub fn failover_pair(name: &str, primary: &str, secondary: &str) -> Route {
    let rec = |id: &str, role: &str| crate::traffic::RouteRecord {
        set_id: Some(id.to_owned()),
        failover: Some(role.to_owned()),
        weight: None,
        values: vec![format!("{id}.example.com")],
        ttl: Some(60),
        health_check: None,
        alias: None,
    };
    Route {
        name: name.to_owned(),
        record_type: "CNAME".into(),
        records: vec![rec(primary, "PRIMARY"), rec(secondary, "SECONDARY")],
    }
}

/// An in-memory router over one route (a failover pair, a weighted set or a simple
/// record), planned and switched exactly as the DNS routers are.
#[derive(Debug, Clone)]
pub struct FakeRouter {
    state: Arc<Mutex<RouterState>>,
}

impl FakeRouter {
    /// A router whose route is `route` now.
    #[must_use]
    pub fn new(route: Route) -> Self {
        Self {
            state: Arc::new(Mutex::new(RouterState {
                route,
                switches: 0,
                failures: Failures::default(),
            })),
        }
    }

    /// How many switches (and restores) changed it.
    #[must_use]
    pub fn switches(&self) -> usize {
        locked(&self.state).switches
    }

    /// The next `times` calls fail with `kind`.
    pub fn fail_next(&self, kind: ErrorKind, times: usize) {
        let mut s = locked(&self.state);
        for _ in 0..times {
            s.failures.0.push_back((kind, "injected failure".into()));
        }
    }

    fn set(&self, route: Route) -> Result<Switched> {
        let mut s = locked(&self.state);
        let what = format!("switching {}", s.route.name);
        s.failures.next(&what)?;
        let before = std::mem::replace(&mut s.route, route);
        s.switches += 1;
        Ok(Switched {
            before,
            after: s.route.clone(),
            took: Duration::ZERO,
        })
    }
}

#[async_trait]
impl TrafficRouter for FakeRouter {
    fn name(&self) -> String {
        let s = locked(&self.state);
        format!("fake:{} {}", s.route.name, s.route.record_type)
    }

    async fn current(&self) -> Result<Route> {
        Ok(locked(&self.state).route.clone())
    }

    async fn plan(&self, to: &Destination) -> Result<RoutePlan> {
        let before = self.current().await?;
        let records = plan_records(&before, to, 60)?;
        let after = Route {
            records,
            ..before.clone()
        };
        Ok(RoutePlan::new(before, after))
    }

    async fn switch(&self, to: &Destination, _wait: &Wait) -> Result<Switched> {
        let plan = self.plan(to).await?;
        self.set(plan.after)
    }

    async fn restore(&self, previous: &Route, _wait: &Wait) -> Result<Switched> {
        let current = self.current().await?;
        if previous.name != current.name || previous.record_type != current.record_type {
            return Err(err!(
                InvalidInput,
                "cannot restore {} {} with a route of {} {}",
                current.name,
                current.record_type,
                previous.name,
                previous.record_type
            ));
        }
        self.set(previous.clone())
    }
}

/// A lock in memory, shared by clones: the lock of engine tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryLock {
    state: Arc<Mutex<(Option<Lease>, u64)>>,
    name: String,
}

impl MemoryLock {
    /// A free lock called `name`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            state: Arc::default(),
            name: name.to_owned(),
        }
    }
}

#[async_trait]
impl Lock for MemoryLock {
    fn name(&self) -> String {
        format!("memory:{}", self.name)
    }

    async fn acquire(&self, request: &LockRequest) -> Result<Lease> {
        let mut s = locked(&self.state);
        if let Some(h) = &s.0 {
            if !request.may_take_over(h) {
                return Err(h.held_error(" in memory"));
            }
        }
        s.1 += 1;
        let lease = request.lease(&self.name, FencingToken(s.1));
        s.0 = Some(lease.clone());
        Ok(lease)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let mut s = locked(&self.state);
        match &mut s.0 {
            Some(h) if h.token == lease.token => {
                h.expires = crate::lock::expiry(Timestamp::now(), ttl);
                Ok(h.clone())
            }
            _ => Err(err!(
                Conflict,
                "lock {:?} was lost; the holder with token {} must stop",
                self.name,
                lease.token
            )),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<()> {
        let mut s = locked(&self.state);
        if s.0.as_ref().is_some_and(|h| h.token == lease.token) {
            s.0 = None;
        }
        Ok(())
    }

    async fn holder(&self) -> Result<Option<Lease>> {
        Ok(locked(&self.state).0.clone())
    }
}

/// A target kind (`fake`) that hands out fakes built beforehand, by name: the targets of
/// engine tests (`targets: { db: { kind: fake } }` gets the fake registered as `db`, or
/// as its `name:` field).
#[derive(Clone, Default)]
pub struct FakeTargets {
    targets: Arc<Mutex<std::collections::BTreeMap<String, crate::runbook::Target>>>,
}

impl FakeTargets {
    /// No targets yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a database under `name`.
    #[must_use]
    pub fn database(self, name: &str, db: FakeDatabase) -> Self {
        locked(&self.targets).insert(
            name.to_owned(),
            crate::runbook::Target::Database(Arc::new(db)),
        );
        self
    }

    /// Adds a router under `name`.
    #[must_use]
    pub fn router(self, name: &str, router: FakeRouter) -> Self {
        locked(&self.targets).insert(
            name.to_owned(),
            crate::runbook::Target::Router(Arc::new(router)),
        );
        self
    }
}

#[async_trait]
impl crate::runbook::TargetKind for FakeTargets {
    #[allow(clippy::unnecessary_literal_bound)] // the trait lends the name from self
    fn kind(&self) -> &str {
        "fake"
    }

    fn fields(&self) -> Vec<crate::runbook::Field> {
        vec![crate::runbook::Field::optional(
            "name",
            "string",
            "Which registered fake (default: the target's name)",
        )]
    }

    async fn build(
        &self,
        name: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<crate::runbook::Target> {
        let key = fields
            .get("name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(name);
        locked(&self.targets)
            .get(key)
            .cloned()
            .ok_or_else(|| err!(NotFound, "no fake target {key:?} was registered"))
    }
}
