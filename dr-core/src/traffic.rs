//! Where users' traffic goes: DNS records, an ingress. A router reads the current route,
//! switches it, waits until the switch is live, confirms it by reading back, and returns
//! the route as it was so a runbook can switch back.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::wait::Wait;
use crate::{err, Result};

/// One record (or backend) of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alias {
    /// The hosted zone of the target.
    pub zone_id: String,
    /// The target's DNS name.
    pub dns_name: String,
    /// Whether the alias follows the target's health.
    pub evaluate_target_health: bool,
}

/// Every record of one name and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// What a switch would change, read from live state without changing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutePlan {
    /// The route now.
    pub before: Route,
    /// The route the switch would leave.
    pub after: Route,
    /// Each change in words (`set usw2: SECONDARY -> PRIMARY`); empty when the route
    /// already says what was asked.
    pub changes: Vec<String>,
}

impl RoutePlan {
    /// The plan of turning `before` into `after`.
    #[must_use]
    pub fn new(before: Route, after: Route) -> Self {
        let changes = describe_changes(&before, &after);
        Self {
            before,
            after,
            changes,
        }
    }

    /// Whether the switch would change nothing.
    #[must_use]
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }

    /// What a plan shows: each change prefixed with the router's name, or that the
    /// router already sends traffic `to` where asked.
    #[must_use]
    pub fn lines(&self, router: &str, to: &Destination) -> Vec<String> {
        if self.is_noop() {
            vec![format!("{router} already sends traffic to {to}: no change")]
        } else {
            self.changes
                .iter()
                .map(|c| format!("{router}: {c}"))
                .collect()
        }
    }
}

/// Moves users' traffic.
#[async_trait]
pub trait TrafficRouter: Send + Sync + fmt::Debug {
    /// What it routes, for messages and journals.
    fn name(&self) -> String;

    /// The route now.
    async fn current(&self) -> Result<Route>;

    /// What [`TrafficRouter::switch`] to `to` would change, without changing anything.
    async fn plan(&self, to: &Destination) -> Result<RoutePlan>;

    /// Sends traffic to `to`, waits until the change is live and reads it back; fails
    /// unless the route then says what was asked.
    async fn switch(&self, to: &Destination, wait: &Wait) -> Result<Switched>;

    /// Puts `previous` (a [`Switched::before`]) back, the same way.
    async fn restore(&self, previous: &Route, wait: &Wait) -> Result<Switched>;
}

fn record_text(r: &RouteRecord) -> String {
    let mut parts = Vec::new();
    if let Some(f) = &r.failover {
        parts.push(f.clone());
    }
    if let Some(w) = r.weight {
        parts.push(format!("weight {w}"));
    }
    match &r.alias {
        Some(a) => parts.push(format!("alias {}", a.dns_name)),
        None => parts.push(r.values.join(",")),
    }
    parts.join(" ")
}

/// Each difference between two routes of the same name, in words.
#[must_use]
pub fn describe_changes(before: &Route, after: &Route) -> Vec<String> {
    let label = |r: &RouteRecord| {
        r.set_id
            .as_deref()
            .map_or_else(|| "record".to_owned(), |id| format!("set {id}"))
    };
    let mut out = Vec::new();
    for a in &after.records {
        match before.records.iter().find(|b| b.set_id == a.set_id) {
            Some(b) if b == a => {}
            Some(b) => out.push(format!(
                "{}: {} -> {}",
                label(a),
                record_text(b),
                record_text(a)
            )),
            None => out.push(format!("{}: created as {}", label(a), record_text(a))),
        }
    }
    for b in &before.records {
        if !after.records.iter().any(|a| a.set_id == b.set_id) {
            out.push(format!("{}: removed (was {})", label(b), record_text(b)));
        }
    }
    out
}

/// The records `to` makes of `current`: the PRIMARY (or all the weight) to one set, new
/// weights, or a simple record with new values (TTL kept, else `default_ttl`). Shared by
/// every DNS-like router, so a plan and a switch never disagree.
pub fn plan_records(
    current: &Route,
    to: &Destination,
    default_ttl: i64,
) -> Result<Vec<RouteRecord>> {
    let (name, rtype) = (&current.name, &current.record_type);
    let mut records = current.records.clone();
    let sets: Vec<String> = records.iter().filter_map(|r| r.set_id.clone()).collect();
    let unknown = |id: &str| {
        err!(
            NotFound,
            "{name} {rtype} has no record with set id {id:?}; its sets are: {}",
            if sets.is_empty() {
                "none".to_owned()
            } else {
                sets.join(", ")
            }
        )
    };
    match to {
        Destination::Set(id) => {
            if !sets.contains(id) {
                return Err(unknown(id));
            }
            if records.iter().any(|r| r.failover.is_some()) {
                for r in &mut records {
                    let primary = r.set_id.as_deref() == Some(id.as_str());
                    r.failover = Some(if primary { "PRIMARY" } else { "SECONDARY" }.to_owned());
                }
            } else if records.iter().any(|r| r.weight.is_some()) {
                let total: i64 = records.iter().filter_map(|r| r.weight).sum();
                for r in &mut records {
                    let chosen = r.set_id.as_deref() == Some(id.as_str());
                    r.weight = Some(if chosen { total.max(1) } else { 0 });
                }
            } else {
                return Err(err!(
                    InvalidInput,
                    "{name} {rtype} is neither a failover pair nor a weighted set"
                ));
            }
        }
        Destination::Weights(w) => {
            for id in w.keys() {
                if !sets.contains(id) {
                    return Err(unknown(id));
                }
            }
            if w.values().any(|v| !(0..=255).contains(v)) {
                return Err(err!(InvalidInput, "weights are 0..=255"));
            }
            for r in &mut records {
                if let Some(v) = r.set_id.as_ref().and_then(|id| w.get(id)) {
                    r.weight = Some(*v);
                }
            }
        }
        Destination::Values(values) => {
            if records.iter().any(|r| r.set_id.is_some()) {
                return Err(err!(
                    InvalidInput,
                    "{name} {rtype} has routing sets ({}); switch to a set, not to values",
                    sets.join(", ")
                ));
            }
            if values.is_empty() {
                return Err(err!(InvalidInput, "give at least one value for {name}"));
            }
            let ttl = records.first().and_then(|r| r.ttl).unwrap_or(default_ttl);
            records = vec![RouteRecord {
                set_id: None,
                failover: None,
                weight: None,
                values: values.clone(),
                ttl: Some(ttl),
                health_check: records.first().and_then(|r| r.health_check.clone()),
                alias: None,
            }];
        }
    }
    records.sort_by(|a, b| a.set_id.cmp(&b.set_id));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, failover: Option<&str>, weight: Option<i64>, value: &str) -> RouteRecord {
        RouteRecord {
            set_id: Some(id.to_owned()),
            failover: failover.map(str::to_owned),
            weight,
            values: vec![value.to_owned()],
            ttl: Some(60),
            health_check: None,
            alias: None,
        }
    }

    fn route(records: Vec<RouteRecord>) -> Route {
        Route {
            name: "app.example.com.".into(),
            record_type: "CNAME".into(),
            records,
        }
    }

    #[test]
    fn failover_swaps_primary_and_says_so() {
        let before = route(vec![
            rec("use1", Some("PRIMARY"), None, "a.use1"),
            rec("usw2", Some("SECONDARY"), None, "a.usw2"),
        ]);
        let after = plan_records(&before, &Destination::Set("usw2".into()), 60).unwrap();
        assert_eq!(after[0].failover.as_deref(), Some("SECONDARY"));
        assert_eq!(after[1].failover.as_deref(), Some("PRIMARY"));
        let plan = RoutePlan::new(
            before.clone(),
            Route {
                records: after.clone(),
                ..before.clone()
            },
        );
        assert_eq!(
            plan.changes,
            vec![
                "set use1: PRIMARY a.use1 -> SECONDARY a.use1".to_owned(),
                "set usw2: SECONDARY a.usw2 -> PRIMARY a.usw2".to_owned()
            ]
        );
        // Switching again changes nothing.
        let again = plan_records(
            &Route {
                records: after.clone(),
                ..before
            },
            &Destination::Set("usw2".into()),
            60,
        )
        .unwrap();
        assert_eq!(again, after);
    }

    #[test]
    fn weights_and_values_and_unknown_sets() {
        let before = route(vec![
            rec("a", None, Some(100), "x"),
            rec("b", None, Some(0), "y"),
        ]);
        let to_b = plan_records(&before, &Destination::Set("b".into()), 60).unwrap();
        assert_eq!((to_b[0].weight, to_b[1].weight), (Some(0), Some(100)));
        let e = plan_records(&before, &Destination::Set("c".into()), 60).unwrap_err();
        assert!(e.to_string().contains("a, b"), "{e}");
        let e = plan_records(&before, &Destination::Values(vec!["z".into()]), 60).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        let simple = route(Vec::new());
        let created = plan_records(&simple, &Destination::Values(vec!["z".into()]), 30).unwrap();
        assert_eq!(
            (created[0].values.clone(), created[0].ttl),
            (vec!["z".to_owned()], Some(30))
        );
        let plan = RoutePlan::new(
            simple.clone(),
            Route {
                records: created,
                ..simple
            },
        );
        assert_eq!(plan.changes, vec!["record: created as z".to_owned()]);
    }
}
