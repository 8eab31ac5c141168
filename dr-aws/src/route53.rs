//! Route 53: read records, switch failover pairs, shift weights, set simple records,
//! health checks. Every change goes in one atomic batch, waits until Route 53 reports it
//! INSYNC, and is read back: a router fails unless the records then say what it set.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, HealthCheckConfig,
    HealthCheckType, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use aws_sdk_route53::Client;
use dr_core::traffic::{
    plan_records, Alias, Destination, Route, RoutePlan, RouteRecord, Switched, TrafficRouter,
};
use dr_core::wait::Wait;
use dr_core::{err, Result};
use serde::{Deserialize, Serialize};

use crate::config::AwsConfig;
use crate::error::classify;

/// A Route 53 client (a global service: the region only signs requests).
#[derive(Debug, Clone)]
pub struct Route53 {
    client: Client,
}

/// What a new health check probes. Unset fields take Route 53's usual values: HTTPS on
/// port 443, every 30 s, unhealthy after 3 failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// `HTTP`, `HTTPS` or `TCP`.
    pub kind: String,
    /// Host name to probe (or use `ip`).
    pub fqdn: Option<String>,
    /// IP address to probe.
    pub ip: Option<String>,
    /// Port.
    pub port: u16,
    /// Path for HTTP(S).
    pub path: Option<String>,
    /// Seconds between probes (10 or 30).
    pub interval: u16,
    /// Failed probes before unhealthy.
    pub failure_threshold: u16,
}

impl Default for HealthCheckSpec {
    fn default() -> Self {
        Self {
            kind: "HTTPS".to_owned(),
            fqdn: None,
            ip: None,
            port: 443,
            path: None,
            interval: 30,
            failure_threshold: 3,
        }
    }
}

/// What Route 53 says about a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Its id.
    pub id: String,
    /// What it probes.
    pub spec: HealthCheckSpec,
    /// The checkers' latest reports (Route 53's own words).
    pub observations: Vec<String>,
}

/// `name.` in lower case, as Route 53 returns names.
pub(crate) fn fqdn(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

impl Route53 {
    /// Connects with `aws`.
    pub async fn connect(aws: &AwsConfig) -> Result<Self> {
        let sdk = aws.load().await?;
        Ok(Self {
            client: Client::new(&sdk),
        })
    }

    /// The SDK client.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The name of hosted zone `zone_id`, fully qualified.
    pub async fn zone_name(&self, zone_id: &str) -> Result<String> {
        let out = self
            .client
            .get_hosted_zone()
            .id(zone_id)
            .send()
            .await
            .map_err(|e| classify(format!("reading hosted zone {zone_id}"), e))?;
        Ok(fqdn(
            out.hosted_zone()
                .map(aws_sdk_route53::types::HostedZone::name)
                .unwrap_or_default(),
        ))
    }

    /// The id of hosted zone `zone` (an id like `Z123…` or a name like `example.com`).
    pub async fn zone_id(&self, zone: &str) -> Result<String> {
        let zone = zone.trim_start_matches("/hostedzone/");
        if !zone.contains('.') {
            return Ok(zone.to_owned());
        }
        let name = fqdn(zone);
        let out = self
            .client
            .list_hosted_zones_by_name()
            .dns_name(&name)
            .send()
            .await
            .map_err(|e| classify(format!("looking up hosted zone {name}"), e))?;
        out.hosted_zones()
            .iter()
            .find(|z| fqdn(z.name()) == name)
            .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
            .ok_or_else(|| {
                err!(
                    NotFound,
                    "no hosted zone {name} in this account; check the zone name, or pass its id"
                )
            })
    }

    /// Every record of `name` and `record_type` in `zone_id`.
    pub async fn route(&self, zone_id: &str, name: &str, record_type: &str) -> Result<Route> {
        let name = fqdn(name);
        let rtype = RrType::from(record_type.to_ascii_uppercase().as_str());
        let mut records = Vec::new();
        let (mut start_name, mut start_type, mut start_id) =
            (Some(name.clone()), Some(rtype.clone()), None::<String>);
        'pages: loop {
            let out = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .set_start_record_name(start_name.take())
                .set_start_record_type(start_type.take())
                .set_start_record_identifier(start_id.take())
                .send()
                .await
                .map_err(|e| {
                    classify(format!("reading {name} {record_type} in zone {zone_id}"), e)
                })?;
            for set in out.resource_record_sets() {
                if fqdn(set.name()) != name || set.r#type() != &rtype {
                    if fqdn(set.name()) == name {
                        continue;
                    }
                    break 'pages;
                }
                records.push(from_sdk(set));
            }
            if !out.is_truncated() {
                break;
            }
            start_name = out.next_record_name().map(str::to_owned);
            start_type = out.next_record_type().cloned();
            start_id = out.next_record_identifier().map(str::to_owned);
        }
        records.sort_by(|a, b| a.set_id.cmp(&b.set_id));
        Ok(Route {
            name,
            record_type: record_type.to_ascii_uppercase(),
            records,
        })
    }

    /// Replaces the records of `from` with `to` in one atomic batch and waits until it is
    /// INSYNC. Unchanged records are left alone.
    pub async fn replace(
        &self,
        zone_id: &str,
        from: &Route,
        to: &[RouteRecord],
        comment: &str,
        wait: &Wait,
    ) -> Result<()> {
        // Records keep their identity by set id: changed ones are UPSERTed in place, the
        // rest deleted or created, all in one batch that Route 53 applies atomically.
        let mut changes = Vec::new();
        for old in &from.records {
            if !to.iter().any(|n| n.set_id == old.set_id) {
                changes.push(change(ChangeAction::Delete, from, old)?);
            }
        }
        for new in to {
            match from.records.iter().find(|o| o.set_id == new.set_id) {
                Some(old) if old == new => {}
                Some(_) => changes.push(change(ChangeAction::Upsert, from, new)?),
                None => changes.push(change(ChangeAction::Create, from, new)?),
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .comment(comment)
                    .set_changes(Some(changes))
                    .build()
                    .map_err(|e| err!(InvalidInput, "change batch: {e}"))?,
            )
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!(
                        "changing {} {} in zone {zone_id}",
                        from.name, from.record_type
                    ),
                    e,
                )
            })?;
        let id = out
            .change_info()
            .map(|c| c.id().to_owned())
            .ok_or_else(|| err!(External, "Route 53 returned no change id"))?;
        self.wait_insync(&id, wait).await
    }

    /// Waits until change `id` is INSYNC (live on every Route 53 server).
    pub async fn wait_insync(&self, id: &str, wait: &Wait) -> Result<()> {
        wait.until(&format!("Route 53 change {id}"), || async {
            let out = self
                .client
                .get_change()
                .id(id)
                .send()
                .await
                .map_err(|e| classify(format!("reading Route 53 change {id}"), e))?;
            let status = out.change_info().map(|c| c.status().clone());
            let insync = status == Some(ChangeStatus::Insync);
            Ok((
                insync.then_some(()),
                status.map_or("unknown".into(), |s| s.as_str().to_owned()),
            ))
        })
        .await
    }

    /// Creates a health check; returns its id.
    pub async fn create_health_check(&self, spec: &HealthCheckSpec) -> Result<String> {
        let reference = format!(
            "drkit-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        );
        Ok(self.ensure_health_check(spec, &reference).await?.resource)
    }

    /// The health check created with caller reference `reference` (adopted when an
    /// earlier call made it), else a new one made with it.
    pub async fn ensure_health_check(
        &self,
        spec: &HealthCheckSpec,
        reference: &str,
    ) -> Result<crate::Started<String>> {
        let mut marker = None;
        loop {
            let out = self
                .client
                .list_health_checks()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| classify("listing Route 53 health checks", e))?;
            if let Some(h) = out
                .health_checks()
                .iter()
                .find(|h| h.caller_reference() == reference)
            {
                return Ok(crate::Started {
                    resource: h.id().to_owned(),
                    adopted: true,
                });
            }
            match out.next_marker() {
                Some(m) if out.is_truncated() => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        let kind = HealthCheckType::from(spec.kind.to_ascii_uppercase().as_str());
        if !HealthCheckType::values().contains(&spec.kind.to_ascii_uppercase().as_str()) {
            return Err(err!(
                InvalidInput,
                "health check type {:?} is unknown; use HTTP, HTTPS or TCP",
                spec.kind
            ));
        }
        if spec.fqdn.is_none() && spec.ip.is_none() {
            return Err(err!(
                InvalidInput,
                "a health check needs a host name or an IP address to probe"
            ));
        }
        let config = HealthCheckConfig::builder()
            .r#type(kind)
            .set_fully_qualified_domain_name(spec.fqdn.clone())
            .set_ip_address(spec.ip.clone())
            .port(i32::from(spec.port))
            .set_resource_path(spec.path.clone())
            .request_interval(i32::from(spec.interval))
            .failure_threshold(i32::from(spec.failure_threshold))
            .build()
            .map_err(|e| err!(InvalidInput, "health check: {e}"))?;
        let out = self
            .client
            .create_health_check()
            .caller_reference(reference)
            .health_check_config(config)
            .send()
            .await
            .map_err(|e| classify("creating a Route 53 health check", e))?;
        out.health_check()
            .map(|h| crate::Started {
                resource: h.id().to_owned(),
                adopted: false,
            })
            .ok_or_else(|| err!(External, "Route 53 returned no health check"))
    }

    /// Reads health check `id` and its checkers' latest reports.
    pub async fn health_check(&self, id: &str) -> Result<HealthCheck> {
        let out = self
            .client
            .get_health_check()
            .health_check_id(id)
            .send()
            .await
            .map_err(|e| classify(format!("reading Route 53 health check {id}"), e))?;
        let hc = out
            .health_check()
            .ok_or_else(|| err!(NotFound, "Route 53 health check {id} does not exist"))?;
        let c = hc.health_check_config();
        let status = self
            .client
            .get_health_check_status()
            .health_check_id(id)
            .send()
            .await
            .map_err(|e| {
                classify(
                    format!("reading the status of Route 53 health check {id}"),
                    e,
                )
            })?;
        Ok(HealthCheck {
            id: hc.id().to_owned(),
            spec: HealthCheckSpec {
                kind: c.map_or("?".into(), |c| c.r#type().as_str().to_owned()),
                fqdn: c.and_then(|c| c.fully_qualified_domain_name().map(str::to_owned)),
                ip: c.and_then(|c| c.ip_address().map(str::to_owned)),
                port: c.and_then(HealthCheckConfig::port).unwrap_or(0) as u16,
                path: c.and_then(|c| c.resource_path().map(str::to_owned)),
                interval: c
                    .and_then(HealthCheckConfig::request_interval)
                    .unwrap_or(30) as u16,
                failure_threshold: c
                    .and_then(HealthCheckConfig::failure_threshold)
                    .unwrap_or(3) as u16,
            },
            observations: status
                .health_check_observations()
                .iter()
                .filter_map(|o| {
                    o.status_report()
                        .and_then(|r| r.status())
                        .map(str::to_owned)
                })
                .collect(),
        })
    }
}

fn from_sdk(set: &ResourceRecordSet) -> RouteRecord {
    RouteRecord {
        set_id: set.set_identifier().map(str::to_owned),
        failover: set.failover().map(|f| f.as_str().to_owned()),
        weight: set.weight(),
        values: set
            .resource_records()
            .iter()
            .map(|r| r.value().to_owned())
            .collect(),
        ttl: set.ttl(),
        health_check: set.health_check_id().map(str::to_owned),
        alias: set.alias_target().map(|a| Alias {
            zone_id: a.hosted_zone_id().to_owned(),
            dns_name: a.dns_name().to_owned(),
            evaluate_target_health: a.evaluate_target_health(),
        }),
    }
}

fn change(action: ChangeAction, route: &Route, r: &RouteRecord) -> Result<Change> {
    let bad = |e: aws_sdk_route53::error::BuildError| {
        err!(
            InvalidInput,
            "record {} {}: {e}",
            route.name,
            route.record_type
        )
    };
    let mut b = ResourceRecordSet::builder()
        .name(&route.name)
        .r#type(RrType::from(route.record_type.as_str()))
        .set_set_identifier(r.set_id.clone())
        .set_weight(r.weight)
        .set_failover(r.failover.as_deref().map(ResourceRecordSetFailover::from))
        .set_health_check_id(r.health_check.clone());
    if let Some(a) = &r.alias {
        b = b.alias_target(
            AliasTarget::builder()
                .hosted_zone_id(&a.zone_id)
                .dns_name(&a.dns_name)
                .evaluate_target_health(a.evaluate_target_health)
                .build()
                .map_err(bad)?,
        );
    } else {
        b = b.set_ttl(r.ttl);
        for v in &r.values {
            b = b.resource_records(ResourceRecord::builder().value(v).build().map_err(bad)?);
        }
    }
    Change::builder()
        .action(action)
        .resource_record_set(b.build().map_err(bad)?)
        .build()
        .map_err(bad)
}

/// The records of one name and type in one zone, as a [`TrafficRouter`]: a failover
/// pair, a weighted set, or a simple record.
#[derive(Debug, Clone)]
pub struct Route53Router {
    r53: Route53,
    zone_id: String,
    name: String,
    record_type: String,
    /// TTL for a simple record created where none existed.
    pub default_ttl: i64,
}

impl Route53Router {
    /// Routes `name` (`record_type`, e.g. `CNAME`) in zone `zone` (name or id).
    pub async fn new(r53: Route53, zone: &str, name: &str, record_type: &str) -> Result<Self> {
        let zone_id = r53.zone_id(zone).await?;
        Ok(Self {
            r53,
            zone_id,
            name: fqdn(name),
            record_type: record_type.to_ascii_uppercase(),
            default_ttl: 60,
        })
    }

    async fn apply(
        &self,
        before: Route,
        target: Vec<RouteRecord>,
        comment: &str,
        wait: &Wait,
    ) -> Result<Switched> {
        let started = Instant::now();
        self.r53
            .replace(&self.zone_id, &before, &target, comment, wait)
            .await?;
        let after = self
            .r53
            .route(&self.zone_id, &self.name, &self.record_type)
            .await?;
        let mut want_sorted = target;
        want_sorted.sort_by(|a, b| a.set_id.cmp(&b.set_id));
        if after.records != want_sorted {
            return Err(err!(
                Conflict,
                "Route 53 reports {} {} as {} after the change, not what was set ({}); another change may have raced this one: read it with `drkit dns show`",
                self.name,
                self.record_type,
                serde_json::to_string(&after.records).unwrap_or_default(),
                serde_json::to_string(&want_sorted).unwrap_or_default()
            ));
        }
        Ok(Switched {
            before,
            after,
            took: started.elapsed(),
        })
    }
}

#[async_trait]
impl TrafficRouter for Route53Router {
    fn name(&self) -> String {
        format!(
            "route53:{}/{} {}",
            self.zone_id, self.name, self.record_type
        )
    }

    async fn current(&self) -> Result<Route> {
        self.r53
            .route(&self.zone_id, &self.name, &self.record_type)
            .await
    }

    async fn plan(&self, to: &Destination) -> Result<RoutePlan> {
        let before = self.current().await?;
        let records = plan_records(&before, to, self.default_ttl)?;
        let after = Route {
            records,
            ..before.clone()
        };
        Ok(RoutePlan::new(before, after))
    }

    async fn switch(&self, to: &Destination, wait: &Wait) -> Result<Switched> {
        let before = self.current().await?;
        let target = plan_records(&before, to, self.default_ttl)?;
        self.apply(before, target, &format!("drkit: switch to {to}"), wait)
            .await
    }

    async fn restore(&self, previous: &Route, wait: &Wait) -> Result<Switched> {
        if fqdn(&previous.name) != self.name || previous.record_type != self.record_type {
            return Err(err!(
                InvalidInput,
                "cannot restore {} {} with a route of {} {}",
                self.name,
                self.record_type,
                previous.name,
                previous.record_type
            ));
        }
        let before = self.current().await?;
        self.apply(before, previous.records.clone(), "drkit: switch back", wait)
            .await
    }
}

/// Weights from `a=1,b=3`.
pub fn parse_weights(s: &str) -> Result<BTreeMap<String, i64>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| err!(InvalidInput, "weight {p:?} is not set=number"))?;
            let v: i64 = v
                .trim()
                .parse()
                .map_err(|_| err!(InvalidInput, "weight {p:?} is not set=number"))?;
            Ok((k.trim().to_owned(), v))
        })
        .collect()
}
