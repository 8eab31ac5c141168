//! A Route 53 hosted zone as data: every record set exported into the repository as a
//! snapshot of kind `dns`, and imported back — into the same zone or another — as a plan
//! of creates, changes and deletes, applied in batches within Route 53's limits, each
//! waited on until INSYNC, then read back.

use std::collections::BTreeMap;

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, GeoLocation, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, ResourceRecordSetRegion, RrType,
};
use dr_core::repo::{Repository, Snapshot, SnapshotKind};
use dr_core::wait::Wait;
use dr_core::{err, Result};
use serde::{Deserialize, Serialize};

use crate::error::classify;
use crate::route53::{fqdn, Route53};

/// Snapshot kind of exported zones.
pub const KIND_DNS: &str = "dns";
/// The record sets inside a `dns` snapshot (JSON).
pub const ZONE_FILE: &str = "zone.json";

/// An alias record's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alias {
    /// The target's hosted zone id.
    pub hosted_zone_id: String,
    /// The target's name.
    pub dns_name: String,
    /// Whether the target's health counts.
    pub evaluate_target_health: bool,
}

/// A geolocation record's place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Geo {
    /// Continent code.
    pub continent: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// Subdivision code.
    pub subdivision: Option<String>,
}

/// One record set, everything Route 53 keeps of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecordSet {
    /// Its name, fully qualified.
    pub name: String,
    /// Its type (`A`, `CNAME`, …).
    pub r#type: String,
    /// TTL (none for aliases).
    pub ttl: Option<i64>,
    /// Values.
    pub records: Vec<String>,
    /// Set identifier (weighted, failover, latency, geolocation, multivalue).
    pub set_identifier: Option<String>,
    /// Weight.
    pub weight: Option<i64>,
    /// Latency region.
    pub region: Option<String>,
    /// `PRIMARY` or `SECONDARY`.
    pub failover: Option<String>,
    /// Geolocation.
    pub geo: Option<Geo>,
    /// Multivalue answer.
    pub multi_value_answer: Option<bool>,
    /// Health check id.
    pub health_check_id: Option<String>,
    /// Alias target.
    pub alias: Option<Alias>,
}

impl RecordSet {
    fn from_sdk(r: &ResourceRecordSet) -> Self {
        Self {
            name: fqdn(r.name()),
            r#type: r.r#type().as_str().to_owned(),
            ttl: r.ttl(),
            records: r
                .resource_records()
                .iter()
                .map(|v| v.value().to_owned())
                .collect(),
            set_identifier: r.set_identifier().map(str::to_owned),
            weight: r.weight(),
            region: r.region().map(|v| v.as_str().to_owned()),
            failover: r.failover().map(|v| v.as_str().to_owned()),
            geo: r.geo_location().map(|g| Geo {
                continent: g.continent_code().map(str::to_owned),
                country: g.country_code().map(str::to_owned),
                subdivision: g.subdivision_code().map(str::to_owned),
            }),
            multi_value_answer: r.multi_value_answer(),
            health_check_id: r.health_check_id().map(str::to_owned),
            alias: r.alias_target().map(|a| Alias {
                hosted_zone_id: a.hosted_zone_id().to_owned(),
                dns_name: fqdn(a.dns_name()),
                evaluate_target_health: a.evaluate_target_health(),
            }),
        }
    }

    fn to_sdk(&self) -> Result<ResourceRecordSet> {
        let bad = |e: aws_sdk_route53::error::BuildError| {
            err!(InvalidInput, "record {}: {e}", self.key())
        };
        let records = if self.records.is_empty() {
            None
        } else {
            Some(
                self.records
                    .iter()
                    .map(|v| ResourceRecord::builder().value(v).build().map_err(bad))
                    .collect::<Result<Vec<_>>>()?,
            )
        };
        ResourceRecordSet::builder()
            .name(&self.name)
            .r#type(RrType::from(self.r#type.as_str()))
            .set_ttl(self.ttl)
            .set_resource_records(records)
            .set_set_identifier(self.set_identifier.clone())
            .set_weight(self.weight)
            .set_region(self.region.as_deref().map(ResourceRecordSetRegion::from))
            .set_failover(
                self.failover
                    .as_deref()
                    .map(ResourceRecordSetFailover::from),
            )
            .set_geo_location(self.geo.as_ref().map(|g| {
                GeoLocation::builder()
                    .set_continent_code(g.continent.clone())
                    .set_country_code(g.country.clone())
                    .set_subdivision_code(g.subdivision.clone())
                    .build()
            }))
            .set_multi_value_answer(self.multi_value_answer)
            .set_health_check_id(self.health_check_id.clone())
            .set_alias_target(
                self.alias
                    .as_ref()
                    .map(|a| {
                        AliasTarget::builder()
                            .hosted_zone_id(&a.hosted_zone_id)
                            .dns_name(&a.dns_name)
                            .evaluate_target_health(a.evaluate_target_health)
                            .build()
                            .map_err(bad)
                    })
                    .transpose()?,
            )
            .build()
            .map_err(bad)
    }

    /// `name TYPE [set]`: what identifies it in a zone.
    #[must_use]
    pub fn key(&self) -> String {
        match &self.set_identifier {
            Some(s) => format!("{} {} [{s}]", self.name, self.r#type),
            None => format!("{} {}", self.name, self.r#type),
        }
    }

    /// The zone's own records (SOA, apex NS) are not data to restore.
    fn is_zone_own(&self, zone: &str) -> bool {
        self.name == zone && matches!(self.r#type.as_str(), "SOA" | "NS")
    }
}

/// Every record set of zone `zone_id`.
pub async fn list_records(r53: &Route53, zone_id: &str) -> Result<Vec<RecordSet>> {
    let mut out = Vec::new();
    let (mut name, mut rtype, mut ident) = (None::<String>, None::<RrType>, None::<String>);
    loop {
        let page = r53
            .client()
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .set_start_record_name(name.take())
            .set_start_record_type(rtype.take())
            .set_start_record_identifier(ident.take())
            .send()
            .await
            .map_err(|e| classify(format!("listing the records of zone {zone_id}"), e))?;
        out.extend(page.resource_record_sets().iter().map(RecordSet::from_sdk));
        if !page.is_truncated() {
            return Ok(out);
        }
        name = page.next_record_name().map(str::to_owned);
        rtype = page.next_record_type().cloned();
        ident = page.next_record_identifier().map(str::to_owned);
    }
}

/// What `dns` snapshots record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ZoneMetadata {
    /// The zone's name.
    pub zone: String,
    /// Its id.
    pub zone_id: String,
    /// Record sets stored (SOA and apex NS included, never imported).
    pub records: usize,
}

/// `route53.export`'s options.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportOptions {
    /// The zone: its name (`example.com`) or id.
    pub zone: String,
    /// Tags for the manifest.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Stores every record set of a zone in `repo`.
pub async fn export_zone(
    repo: &Repository,
    r53: &Route53,
    options: &ExportOptions,
) -> Result<Snapshot> {
    let zone_id = r53.zone_id(&options.zone).await?;
    let zone = r53.zone_name(&zone_id).await?;
    let records = list_records(r53, &zone_id).await?;
    let body = serde_json::to_vec_pretty(&records).expect("records serialize");
    let mut w = repo.begin_snapshot(SnapshotKind::new(KIND_DNS), &format!("route53:{zone}"));
    for (k, v) in &options.tags {
        w.tag(k, v);
    }
    w.add_file(ZONE_FILE, std::io::Cursor::new(body)).await?;
    let meta = ZoneMetadata {
        zone,
        zone_id,
        records: records.len(),
    };
    w.commit(serde_json::to_value(&meta).expect("metadata serializes"))
        .await
}

/// `route53.import`'s options.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportOptions {
    /// The zone to restore into (name or id); default the exported zone. Record names
    /// move from the exported zone's name to this one's.
    #[serde(default)]
    pub zone: Option<String>,
    /// Also delete record sets the zone has and the snapshot does not.
    #[serde(default)]
    pub delete: bool,
    /// Show the plan only.
    #[serde(default)]
    pub dry_run: bool,
}

/// What an import changes (or changed).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ZonePlan {
    /// The zone.
    pub zone: String,
    /// Record sets to create.
    pub create: Vec<String>,
    /// Record sets to change (UPSERT).
    pub change: Vec<String>,
    /// Record sets to delete (with `delete`).
    pub delete: Vec<String>,
    /// Record sets the zone has and the snapshot does not, left alone without `delete`.
    pub kept: Vec<String>,
    /// Record sets already as the snapshot has them.
    pub unchanged: usize,
    /// Change batches sent.
    pub batches: usize,
    /// Whether the changes were made (false for a dry run).
    pub applied: bool,
}

/// Moves `name` from zone `from` to zone `to` (both fully qualified).
fn rename(name: &str, from: &str, to: &str) -> String {
    if from == to {
        return name.to_owned();
    }
    match name.strip_suffix(from) {
        Some(head) => format!("{head}{to}"),
        None => name.to_owned(),
    }
}

/// Restores a `dns` snapshot into a zone.
#[allow(clippy::too_many_lines)] // the plan, its batches and the read-back, in order
pub async fn import_zone(
    repo: &Repository,
    r53: &Route53,
    snapshot: &Snapshot,
    options: &ImportOptions,
    wait: &Wait,
) -> Result<ZonePlan> {
    if snapshot.kind.as_str() != KIND_DNS {
        return Err(err!(
            InvalidInput,
            "snapshot {} is a {} snapshot, not a DNS zone",
            snapshot.id,
            snapshot.kind
        ));
    }
    let meta: ZoneMetadata = serde_json::from_value(snapshot.metadata.clone()).unwrap_or_default();
    let body = repo.read_file_to_vec(snapshot, ZONE_FILE).await?;
    let stored: Vec<RecordSet> = serde_json::from_slice(&body).map_err(|e| {
        err!(
            Corrupt,
            "snapshot {}: the zone file does not parse: {e}",
            snapshot.id
        )
    })?;
    let zone_id = r53
        .zone_id(options.zone.as_deref().unwrap_or(&meta.zone))
        .await?;
    let zone = r53.zone_name(&zone_id).await?;
    let from = fqdn(&meta.zone);
    let wanted: BTreeMap<String, RecordSet> = stored
        .into_iter()
        .filter(|r| !r.is_zone_own(&from))
        .map(|mut r| {
            r.name = rename(&r.name, &from, &zone);
            (r.key(), r)
        })
        .collect();
    let current: BTreeMap<String, RecordSet> = list_records(r53, &zone_id)
        .await?
        .into_iter()
        .filter(|r| !r.is_zone_own(&zone))
        .map(|r| (r.key(), r))
        .collect();
    let mut plan = ZonePlan {
        zone: zone.clone(),
        ..ZonePlan::default()
    };
    let mut changes = Vec::new();
    for (k, r) in &wanted {
        match current.get(k) {
            Some(c) if c == r => plan.unchanged += 1,
            Some(_) => {
                plan.change.push(k.clone());
                changes.push((ChangeAction::Upsert, r));
            }
            None => {
                plan.create.push(k.clone());
                changes.push((ChangeAction::Upsert, r));
            }
        }
    }
    for (k, c) in &current {
        if !wanted.contains_key(k) {
            if options.delete {
                plan.delete.push(k.clone());
                changes.push((ChangeAction::Delete, c));
            } else {
                plan.kept.push(k.clone());
            }
        }
    }
    if options.dry_run || changes.is_empty() {
        return Ok(plan);
    }
    plan.batches = apply(
        r53,
        &zone_id,
        &zone,
        &snapshot.id.to_string(),
        changes,
        wait,
    )
    .await?;
    // Read back: every record set as the snapshot has it.
    let after: BTreeMap<String, RecordSet> = list_records(r53, &zone_id)
        .await?
        .into_iter()
        .map(|r| (r.key(), r))
        .collect();
    let wrong: Vec<&String> = wanted
        .iter()
        .filter(|(k, r)| after.get(*k) != Some(r))
        .map(|(k, _)| k)
        .collect();
    if !wrong.is_empty() {
        return Err(err!(
            External,
            "zone {zone} does not hold what was restored for: {}",
            wrong
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    plan.applied = true;
    Ok(plan)
}

/// Sends `changes` in batches, each waited on until INSYNC; returns how many batches.
async fn apply(
    r53: &Route53,
    zone_id: &str,
    zone: &str,
    snapshot: &str,
    mut changes: Vec<(ChangeAction, &RecordSet)>,
    wait: &Wait,
) -> Result<usize> {
    let mut batches = 0;
    // Route 53 takes at most 1,000 records and 32,000 characters of values per batch;
    // 100 record sets stay well inside both. Deletes go last: aliases to them change first.
    changes.sort_by_key(|(a, _)| *a == ChangeAction::Delete);
    for batch in changes.chunks(100) {
        let sdk: Vec<Change> = batch
            .iter()
            .map(|(action, r)| {
                Change::builder()
                    .action(action.clone())
                    .resource_record_set(r.to_sdk()?)
                    .build()
                    .map_err(|e| err!(InvalidInput, "change of {}: {e}", r.key()))
            })
            .collect::<Result<_>>()?;
        let out = r53
            .client()
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .comment(format!("drkit: zone restored from snapshot {snapshot}"))
                    .set_changes(Some(sdk))
                    .build()
                    .map_err(|e| err!(InvalidInput, "change batch: {e}"))?,
            )
            .send()
            .await
            .map_err(|e| classify(format!("restoring records into zone {zone}"), e))?;
        let id = out
            .change_info()
            .map(|c| c.id().to_owned())
            .ok_or_else(|| err!(External, "Route 53 returned no change id"))?;
        r53.wait_insync(&id, wait).await?;
        batches += 1;
    }
    Ok(batches)
}
