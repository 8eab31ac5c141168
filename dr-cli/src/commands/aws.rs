//! `drkit rds` and `drkit dns`.

use std::fmt::Write as _;
use std::sync::Arc;

use dr_aws::route53::parse_weights;
use dr_aws::{
    AwsConfig, AwsOverrides, DbInstance, HealthCheckSpec, PitrRequest, Rds, ReplicaRequest,
    Route53, Route53Router,
};
use dr_core::target::PointInTime;
use dr_core::traffic::{Destination, Route, Switched, TrafficRouter};
use dr_core::wait::Wait;
use dr_core::Result;
use serde_json::json;

use crate::args::{AwsArgs, DnsCommand, RdsCommand, RecordArgs, SecretsCommand};
use crate::output::{secs, Output};

fn aws_config<C: clap::Subcommand>(a: &AwsArgs<C>) -> Result<AwsConfig> {
    AwsConfig::resolve(&AwsOverrides {
        region: a.region.clone(),
        endpoint: a.endpoint.clone(),
        profile: a.profile.clone(),
    })
}

fn wait<C: clap::Subcommand>(a: &AwsArgs<C>, out: Output) -> (Wait, Arc<crate::output::Bar>) {
    let bar = out.progress(None);
    let wait = Wait::new(a.timeout).progress(bar.clone());
    (wait, bar)
}

fn instance_text(db: &DbInstance) -> String {
    format!(
        "{} ({}): {}\n  endpoint: {}\n  replicating from: {}\n  latest restorable: {}",
        db.id,
        db.region,
        db.status,
        db.endpoint.as_deref().unwrap_or("-"),
        db.replication_source.as_deref().unwrap_or("- (a primary)"),
        db.latest_restorable_time
            .map_or("-".to_owned(), |t| t.to_string())
    )
}

fn snapshots_text(all: &[dr_aws::DbSnapshot]) -> String {
    all.iter()
        .map(|s| {
            format!(
                "{}  {}  {}  {}",
                s.id,
                s.instance.as_deref().unwrap_or("-"),
                s.status,
                s.created.map_or("-".into(), |t| t.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a `drkit rds` subcommand.
pub async fn rds(a: &AwsArgs<RdsCommand>, out: Output) -> Result<u8> {
    let rds = Rds::connect(&aws_config(a)?).await?;
    let (w, bar) = wait(a, out);
    let result = async {
        Ok::<_, dr_core::Error>(match &a.command {
            RdsCommand::Describe { id } => {
                let db = rds.describe(id).await?;
                (json!(db), instance_text(&db))
            }
            RdsCommand::Promote { id } => {
                out.note(&format!("promoting {id} in {}", rds.region()));
                let db = rds.promote(id, &w).await?;
                (json!(db), format!("promoted: {}", instance_text(&db)))
            }
            RdsCommand::Replica {
                id,
                source,
                instance_class,
                token,
            } => {
                let request = ReplicaRequest {
                    source: source.clone(),
                    id: id.clone(),
                    instance_class: instance_class.clone(),
                    token: token.clone(),
                };
                let db = rds.create_read_replica(&request, &w).await?;
                (
                    json!(db),
                    format!("created replica: {}", instance_text(&db)),
                )
            }
            RdsCommand::Pitr {
                source,
                to,
                time,
                latest,
                token,
            } => {
                let request = PitrRequest {
                    source: source.clone(),
                    new_id: to.clone(),
                    target: PointInTime::from_parts(*time, None, None, *latest)?,
                    token: token.clone(),
                };
                let db = rds.restore_to_point_in_time(&request, &w).await?;
                (
                    json!(db),
                    format!(
                        "restored {source} to {}: {}",
                        request.target,
                        instance_text(&db)
                    ),
                )
            }
            RdsCommand::Snapshot { id, name } => {
                let s = rds.create_snapshot(id, name, &w).await?;
                (json!(s), format!("snapshot {} of {id}: {}", s.id, s.status))
            }
            RdsCommand::Snapshots { id } => {
                let all = rds.snapshots(id.as_deref()).await?;
                (json!(all), snapshots_text(&all))
            }
            RdsCommand::CopySnapshot { source, to } => {
                let s = rds.copy_snapshot(source, to, &w).await?;
                (
                    json!(s),
                    format!(
                        "copied {source} to {} in {}: {}",
                        s.id,
                        rds.region(),
                        s.status
                    ),
                )
            }
            RdsCommand::RestoreSnapshot { snapshot, to } => {
                let db = rds.restore_snapshot(snapshot, to, &w).await?;
                (
                    json!(db),
                    format!("restored {snapshot}: {}", instance_text(&db)),
                )
            }
        })
    }
    .await;
    bar.finish();
    let (doc, text) = result?;
    out.emit(&doc, || text);
    Ok(0)
}

fn route_text(r: &Route) -> String {
    if r.records.is_empty() {
        return format!("{} {}: no records", r.name, r.record_type);
    }
    let mut lines = vec![format!("{} {}", r.name, r.record_type)];
    for rec in &r.records {
        let mut l = format!("  {:<10}", rec.set_id.as_deref().unwrap_or("(simple)"));
        if let Some(f) = &rec.failover {
            let _ = write!(l, " {f:<9}");
        }
        if let Some(w) = rec.weight {
            let _ = write!(l, " weight {w:<3}");
        }
        match &rec.alias {
            Some(a) => {
                let _ = write!(l, " alias {}", a.dns_name);
            }
            None => {
                let _ = write!(l, " {}", rec.values.join(", "));
            }
        }
        if let Some(h) = &rec.health_check {
            let _ = write!(l, " (health check {h})");
        }
        lines.push(l);
    }
    lines.join("\n")
}

fn zone_plan_text(p: &dr_aws::zone::ZonePlan, snapshot: &str) -> String {
    let mut t = format!(
        "{} zone {} from snapshot {snapshot}: {} to create, {} to change, {} to delete, {} unchanged",
        if p.applied { "restored" } else { "plan for" },
        p.zone,
        p.create.len(),
        p.change.len(),
        p.delete.len(),
        p.unchanged
    );
    for (what, list) in [
        ("create", &p.create),
        ("change", &p.change),
        ("delete", &p.delete),
    ] {
        for k in list {
            let _ = write!(t, "\n  {what} {k}");
        }
    }
    if !p.kept.is_empty() {
        let _ = write!(
            t,
            "\n  {} record sets not in the snapshot kept (--delete removes them): {}",
            p.kept.len(),
            p.kept.join(", ")
        );
    }
    if p.applied {
        let _ = write!(
            t,
            "\n  {} batches, INSYNC, every record read back",
            p.batches
        );
    }
    t
}

fn switched_doc(s: &Switched) -> (serde_json::Value, String) {
    (
        json!({"before": s.before, "after": s.after, "seconds": secs(s.took)}),
        format!(
            "live after {:.1}s (read back):\n{}\nbefore:\n{}",
            s.took.as_secs_f64(),
            route_text(&s.after),
            route_text(&s.before)
        ),
    )
}

async fn router(r53: &Route53, r: &RecordArgs) -> Result<Route53Router> {
    Route53Router::new(r53.clone(), &r.zone, &r.name, &r.record_type).await
}

/// `drkit dns export|import`; `None` for the other subcommands.
async fn zone_command(
    cli: &crate::args::Cli,
    a: &AwsArgs<DnsCommand>,
    r53: &Route53,
    out: Output,
) -> Result<Option<u8>> {
    match &a.command {
        DnsCommand::Export { zone } => {
            let repo = super::open_repo(cli).await?;
            let options = dr_aws::zone::ExportOptions {
                zone: zone.clone(),
                tags: std::collections::BTreeMap::new(),
            };
            let snap = dr_aws::zone::export_zone(&repo, r53, &options).await?;
            let s = snap.summary();
            let meta: dr_aws::zone::ZoneMetadata =
                serde_json::from_value(snap.metadata.clone()).unwrap_or_default();
            out.emit(&s, || {
                format!(
                    "snapshot {}\n  zone {} ({}): {} record sets",
                    s.id, meta.zone, meta.zone_id, meta.records
                )
            });
            Ok(Some(0))
        }
        DnsCommand::Import {
            snapshot,
            zone,
            delete,
            dry_run,
            source,
        } => {
            let repo = super::open_repo(cli).await?;
            let pick = dr_core::repo::Pick {
                snapshot: snapshot.as_str().into(),
                source: source.clone(),
                ..dr_core::repo::Pick::default()
            };
            let snap = repo.pick(&pick, dr_aws::zone::KIND_DNS, None).await?;
            let options = dr_aws::zone::ImportOptions {
                zone: zone.clone(),
                delete: *delete,
                dry_run: *dry_run,
            };
            let (w, bar) = wait(a, out);
            let plan = dr_aws::zone::import_zone(&repo, r53, &snap, &options, &w).await;
            bar.finish();
            let plan = plan?;
            out.emit(&plan, || zone_plan_text(&plan, &snap.id.to_string()));
            Ok(Some(0))
        }
        _ => Ok(None),
    }
}

/// Runs a `drkit dns` subcommand.
pub async fn dns(cli: &crate::args::Cli, a: &AwsArgs<DnsCommand>, out: Output) -> Result<u8> {
    let r53 = Route53::connect(&aws_config(a)?).await?;
    if let Some(code) = zone_command(cli, a, &r53, out).await? {
        return Ok(code);
    }
    let (w, bar) = wait(a, out);
    let result = async {
        Ok::<_, dr_core::Error>(match &a.command {
            DnsCommand::Show(r) => {
                let route = router(&r53, r).await?.current().await?;
                (json!(route), route_text(&route))
            }
            DnsCommand::Failover { record, to } => switched_doc(
                &router(&r53, record)
                    .await?
                    .switch(&Destination::Set(to.clone()), &w)
                    .await?,
            ),
            DnsCommand::Weights { record, weights } => {
                let weights = parse_weights(weights)?;
                switched_doc(
                    &router(&r53, record)
                        .await?
                        .switch(&Destination::Weights(weights), &w)
                        .await?,
                )
            }
            DnsCommand::Set { record, values } => switched_doc(
                &router(&r53, record)
                    .await?
                    .switch(&Destination::Values(values.clone()), &w)
                    .await?,
            ),
            DnsCommand::Export { .. } | DnsCommand::Import { .. } => unreachable!("handled above"),
            DnsCommand::HealthCheck {
                kind,
                fqdn,
                ip,
                port,
                path,
            } => {
                let spec = HealthCheckSpec {
                    kind: kind.clone(),
                    fqdn: fqdn.clone(),
                    ip: ip.clone(),
                    port: *port,
                    path: path.clone(),
                    ..HealthCheckSpec::default()
                };
                let id = r53.create_health_check(&spec).await?;
                let hc = r53.health_check(&id).await?;
                (json!(hc), format!("health check {id}"))
            }
        })
    }
    .await;
    bar.finish();
    let (doc, text) = result?;
    out.emit(&doc, || text);
    Ok(0)
}

/// `drkit s3 verify-replica|sync|check-bucket`.
#[allow(clippy::too_many_lines)] // one arm per subcommand, each building its options and text
pub async fn s3(c: &crate::args::S3Command, out: Output) -> Result<u8> {
    use crate::args::S3Command;
    match c {
        S3Command::VerifyReplica {
            source,
            replica,
            list,
        } => {
            let options = dr_aws::s3::VerifyReplicaOptions {
                source: source.clone(),
                replica: replica.clone(),
                list: *list,
            };
            out.note(&format!("comparing {source} with {replica}"));
            let report = dr_aws::s3::verify_replica(&options).await?;
            out.emit(&report, || dr_aws::s3::replica_summary(&report));
            Ok(if report.in_sync {
                0
            } else {
                crate::EXIT_CHECK_FAILED
            })
        }
        S3Command::Sync {
            source,
            destination,
            delete,
            dry_run,
            parallel,
        } => {
            let options = dr_aws::s3::SyncOptions {
                source: source.clone(),
                destination: destination.clone(),
                delete: *delete,
                dry_run: *dry_run,
                parallel: *parallel,
                list: 20,
            };
            out.note(&format!("syncing {source} to {destination}"));
            let r = dr_aws::s3::sync(&options).await?;
            out.emit(&r, || {
                let verb = if r.dry_run { "would copy" } else { "copied" };
                let mut t = format!(
                    "{verb} {} object(s), {} bytes; {} unchanged",
                    r.copied.count, r.copied.bytes, r.unchanged
                );
                for o in &r.copied.first {
                    let _ = write!(t, "\n  {verb} {}", o.key);
                }
                if r.deleted.count > 0 {
                    let verb = if r.dry_run { "would delete" } else { "deleted" };
                    let _ = write!(t, "\n{verb} {} object(s)", r.deleted.count);
                    for o in &r.deleted.first {
                        let _ = write!(t, "\n  {verb} {}", o.key);
                    }
                }
                if r.kept > 0 {
                    let _ = write!(
                        t,
                        "\n{} object(s) only in the destination kept (--delete removes them)",
                        r.kept
                    );
                }
                t
            });
            Ok(0)
        }
        S3Command::CheckBucket {
            bucket,
            replicates_to,
            lifecycle,
            no_versioning,
        } => {
            let options = dr_aws::s3::CheckBucketOptions {
                bucket: bucket.clone(),
                versioning: !no_versioning,
                replicates_to: replicates_to.clone(),
                lifecycle: *lifecycle,
            };
            let r = dr_aws::s3::check_bucket(&options).await?;
            out.emit(&r, || {
                let mut t = format!(
                    "{}: versioning {}, {} replication rule(s), {} enabled lifecycle rule(s)",
                    r.bucket,
                    r.versioning,
                    r.replication.len(),
                    r.lifecycle_rules.len()
                );
                for rule in &r.replication {
                    let _ = write!(
                        t,
                        "\n  replicates to {} ({})",
                        rule.destination, rule.status
                    );
                }
                for p in &r.problems {
                    let _ = write!(t, "\n  problem: {p}");
                }
                t
            });
            Ok(if r.ok { 0 } else { crate::EXIT_CHECK_FAILED })
        }
    }
}

/// `drkit secrets get`: what a secret holds, never its value.
pub async fn secrets(a: &AwsArgs<SecretsCommand>, out: Output) -> Result<u8> {
    let SecretsCommand::Get {
        secret,
        key,
        stage,
        version_id,
    } = &a.command;
    let options = dr_aws::secrets::GetSecretOptions {
        secret: secret.clone(),
        key: key.clone(),
        stage: stage.clone(),
        version_id: version_id.clone(),
    };
    let sm = dr_aws::secrets::SecretsManager::connect(&aws_config(a)?).await?;
    let info = sm.describe(&options).await?;
    out.emit(&json!(info), || {
        let mut lines = vec![
            format!("secret {} ({})", info.name, info.arn),
            format!(
                "version {}{}{}",
                info.version_id,
                if info.stages.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", info.stages.join(", "))
                },
                info.created
                    .as_ref()
                    .map(|c| format!(", made {c}"))
                    .unwrap_or_default()
            ),
        ];
        match info.format.as_str() {
            "json" => lines.push(format!("a JSON object with keys {}", info.keys.join(", "))),
            other => lines.push(format!("{other} value")),
        }
        lines.push(format!(
            "{}: {} characters (not shown)",
            info.key
                .as_ref()
                .map_or_else(|| "the value".to_owned(), |k| format!("key {k}")),
            info.length
        ));
        lines.join("\n")
    });
    Ok(0)
}
