//! Where users' traffic goes: DNS records, an ingress. A router reads the current route,
//! switches it, waits until the switch is live, confirms it by reading back, and returns
//! the route as it was so a runbook can switch back.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::wait::Wait;
use crate::Result;

/// One record (or backend) of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRecord {
    /// Which of several records this is (a Route 53 set identifier); `None` for a simple
    /// record.
    pub set_id: Option<String>,
    /// `PRIMARY` or `SECONDARY` in a failover pair.
    pub failover: Option<String>,
    /// Share of traffic in a weighted set.
    pub weight: Option<i64>,
    /// Where it points: addresses, host names, or an alias target.
    pub values: Vec<String>,
    /// Cache lifetime in seconds, for non-alias records.
    pub ttl: Option<i64>,
    /// The health check that gates it.
    pub health_check: Option<String>,
    /// For an alias record: what it aliases (then `values` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
}

/// The target of an alias record (a load balancer, a CloudFront distribution, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// The hosted zone of the target.
    pub zone_id: String,
    /// The target's DNS name.
    pub dns_name: String,
    /// Whether the alias follows the target's health.
    pub evaluate_target_health: bool,
}

/// Every record of one name and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The name (`app.example.com.`).
    pub name: String,
    /// The record type (`A`, `CNAME`, …).
    pub record_type: String,
    /// Its records, ordered by set id.
    pub records: Vec<RouteRecord>,
}

impl Route {
    /// The record with set id `id`.
    #[must_use]
    pub fn record(&self, id: &str) -> Option<&RouteRecord> {
        self.records
            .iter()
            .find(|r| r.set_id.as_deref() == Some(id))
    }
}

/// Where to send traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// All traffic to the record with this set id (the PRIMARY of a failover pair, all
    /// the weight of a weighted set).
    Set(String),
    /// These weights by set id.
    Weights(BTreeMap<String, i64>),
    /// A simple record with these values.
    Values(Vec<String>),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Set(id) => write!(f, "set {id}"),
            Self::Weights(w) => {
                let parts: Vec<String> = w.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "weights {}", parts.join(","))
            }
            Self::Values(v) => write!(f, "{}", v.join(",")),
        }
    }
}

/// What a switch did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switched {
    /// The route before: pass it to [`TrafficRouter::restore`] to switch back.
    pub before: Route,
    /// The route read back after the switch was live.
    pub after: Route,
    /// From the request to live.
    #[serde(with = "crate::duration_secs")]
    pub took: Duration,
}

/// Moves users' traffic.
#[async_trait]
pub trait TrafficRouter: Send + Sync + fmt::Debug {
    /// What it routes, for messages and journals.
    fn name(&self) -> String;

    /// The route now.
    async fn current(&self) -> Result<Route>;

    /// Sends traffic to `to`, waits until the change is live and reads it back; fails
    /// unless the route then says what was asked.
    async fn switch(&self, to: &Destination, wait: &Wait) -> Result<Switched>;

    /// Puts `previous` (a [`Switched::before`]) back, the same way.
    async fn restore(&self, previous: &Route, wait: &Wait) -> Result<Switched>;
}
