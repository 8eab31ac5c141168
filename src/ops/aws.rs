//! The RDS and Route 53 operations as runbook actions. What they create is tagged (RDS)
//! or referenced (Route 53 health checks) with the run id, so a resumed run adopts it
//! instead of creating it twice.

use std::time::Duration;

use async_trait::async_trait;
use dr_core::runbook::{params, Action, ActionSpec, Field, Outcome, Registry, StepContext};
use dr_core::traffic::{Destination, TrafficRouter};
use dr_core::Result;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{doc, op};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RdsStep {
    instance: String,
    #[serde(default, flatten)]
    aws: dr_aws::AwsOverrides,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

/// A request of dr-aws with where to send it: `region:` and `endpoint:` beside the
/// request's own fields. Serde does not apply `deny_unknown_fields` through `flatten`,
/// so what no part took is caught here and refused by name.
#[derive(Deserialize)]
#[serde(try_from = "RdsRequestFields<R>")]
#[serde(bound(deserialize = "R: serde::de::DeserializeOwned"))]
struct RdsRequestStep<R> {
    request: R,
    region: Option<String>,
    endpoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "R: serde::de::DeserializeOwned"))]
struct RdsRequestFields<R> {
    #[serde(flatten)]
    request: R,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, Value>,
}

impl<R> TryFrom<RdsRequestFields<R>> for RdsRequestStep<R> {
    type Error = String;
    fn try_from(f: RdsRequestFields<R>) -> std::result::Result<Self, String> {
        if let Some(name) = f.unknown.keys().next() {
            return Err(format!("unknown field `{name}`"));
        }
        Ok(Self {
            request: f.request,
            region: f.region,
            endpoint: f.endpoint,
        })
    }
}

type RdsReplicaStep = RdsRequestStep<dr_aws::ReplicaRequest>;
type RdsPitrStep = RdsRequestStep<dr_aws::PitrRequest>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RdsSnapshotStep {
    instance: String,
    snapshot: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

async fn rds(aws: &dr_aws::AwsOverrides) -> Result<dr_aws::Rds> {
    dr_aws::Rds::connect(&dr_aws::AwsConfig::resolve(aws)?).await
}

fn wait(t: Option<Duration>) -> dr_core::wait::Wait {
    dr_core::wait::Wait::new(t.unwrap_or(Duration::from_mins(30))).poll(Duration::from_secs(5))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RdsSnapshotRestoreStep {
    snapshot: String,
    new_id: String,
    #[serde(default)]
    instance_class: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthCheckStep {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    fqdn: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    interval: Option<u16>,
    #[serde(default)]
    failure_threshold: Option<u16>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

/// Adds the RDS and Route 53 operations.
#[allow(clippy::too_many_lines)] // one registration per operation
pub(super) fn register(r: &mut Registry) {
    r.action(RecordAction {
        name: "route53.set",
        summary: "Points a simple record (a `route53` target) at `values`, waits until live and reads it back.",
        param: Field::required("values", "[string]", "Addresses or host names"),
    })
    .action(RecordAction {
        name: "route53.weights",
        summary: "Sets the weights of a weighted set (a `route53` target) by set id, waits until live and reads it back.",
        param: Field::required("weights", "{set: weight}", "e.g. {use1: 0, usw2: 100}"),
    })
    .action(op::<HealthCheckStep>(
        "route53.health_check",
        "Creates a Route 53 health check (HTTP, HTTPS or TCP) once per run and step: a resumed run adopts the one it made.",
        true,
        vec![Field::optional("kind", "string", "HTTP, HTTPS (default) or TCP"), Field::optional("fqdn", "string", "Host name to probe (or ip)"), Field::optional("port", "int", "Default 443"), Field::optional("path", "string", "For HTTP(S)")],
        vec![Field::required("id", "string", "The health check's id"), Field::required("adopted", "bool", "Made by an earlier attempt of this step")],
        |ctx, s| {
            Box::pin(async move {
                let d = dr_aws::HealthCheckSpec::default();
                let spec = dr_aws::HealthCheckSpec {
                    kind: s.kind.unwrap_or(d.kind),
                    fqdn: s.fqdn,
                    ip: s.ip,
                    port: s.port.unwrap_or(d.port),
                    path: s.path,
                    interval: s.interval.unwrap_or(d.interval),
                    failure_threshold: s.failure_threshold.unwrap_or(d.failure_threshold),
                };
                let aws = dr_aws::AwsOverrides { region: s.region, endpoint: s.endpoint, profile: s.profile };
                let r53 = dr_aws::Route53::connect(&dr_aws::AwsConfig::resolve(&aws)?).await?;
                // Route 53 caller references are at most 64 characters.
                let reference: String = format!("drkit-{}-{}", ctx.run_id, ctx.step).chars().take(64).collect();
                let made = r53.ensure_health_check(&spec, &reference).await?;
                Ok(json!({"id": made.resource, "adopted": made.adopted, "spec": spec}))
            })
        },
    ))
    .action(op::<RdsSnapshotRestoreStep>(
        "rds.restore_snapshot",
        "Restores an RDS snapshot into a new instance and waits; tagged with the run id, so a resumed run adopts it.",
        true,
        vec![Field::required("snapshot", "string", "Snapshot identifier or ARN"), Field::required("new_id", "string", "The new instance"), Field::optional("instance_class", "string", "The snapshot's when unset"), Field::optional("region", "string", "Where"), Field::optional("timeout", "duration", "Longest wait (default 30m)")],
        vec![Field::required("endpoint", "string", "host:port of the new instance")],
        |ctx, s| {
            Box::pin(async move {
                let aws = dr_aws::AwsOverrides { region: s.region, endpoint: s.endpoint, profile: None };
                let client = rds(&aws).await?;
                let request = dr_aws::SnapshotRestoreRequest { snapshot: s.snapshot, new_id: s.new_id, instance_class: s.instance_class, token: Some(ctx.run_id.clone()) };
                client.start_snapshot_restore(&request).await?;
                Ok(doc(&client.wait_available(&request.new_id, &wait(s.timeout)).await?))
            })
        },
    ))
    .action(op::<RdsStep>(
        "rds.describe",
        "Status, endpoint and replication source of an RDS instance.",
        true,
        vec![Field::required("instance", "string", "Identifier"), Field::optional("region", "string", "AWS region")],
        vec![Field::required("status", "string", "RDS status"), Field::required("endpoint", "string", "host:port")],
        |_, s| Box::pin(async move { Ok(doc(&rds(&s.aws).await?.describe(&s.instance).await?)) }),
    ))
    .action(op::<RdsStep>(
        "rds.wait",
        "Waits until an RDS instance is available.",
        true,
        vec![Field::required("instance", "string", "Identifier"), Field::optional("timeout", "duration", "Longest wait")],
        vec![Field::required("status", "string", "RDS status")],
        |_, s| Box::pin(async move { Ok(doc(&rds(&s.aws).await?.wait_available(&s.instance, &wait(s.timeout)).await?)) }),
    ))
    .action(op::<RdsPitrStep>(
        "rds.pitr",
        "Restores an RDS instance to a point in time into a new instance and waits; tagged with the run id, so a resumed run adopts what it created.",
        true,
        vec![Field::required("source", "string", "Source instance"), Field::required("new_id", "string", "The new instance"), Field::required("target", "latest|{time}", "When")],
        vec![Field::required("endpoint", "string", "host:port of the new instance")],
        |ctx, mut s| {
            Box::pin(async move {
                s.request.token.get_or_insert_with(|| ctx.run_id.clone());
                let aws = dr_aws::AwsOverrides { region: s.region, endpoint: s.endpoint, profile: None };
                Ok(doc(&rds(&aws).await?.restore_to_point_in_time(&s.request, &wait(None)).await?))
            })
        },
    ))
    .action(op::<RdsReplicaStep>(
        "rds.replica",
        "Creates a read replica (of an ARN across regions) and waits; tagged with the run id, so a resumed run adopts it.",
        true,
        vec![Field::required("source", "string", "Source instance or ARN"), Field::required("id", "string", "The replica"), Field::optional("region", "string", "Where")],
        vec![Field::required("endpoint", "string", "host:port")],
        |ctx, mut s| {
            Box::pin(async move {
                s.request.token.get_or_insert_with(|| ctx.run_id.clone());
                let aws = dr_aws::AwsOverrides { region: s.region, endpoint: s.endpoint, profile: None };
                Ok(doc(&rds(&aws).await?.create_read_replica(&s.request, &wait(None)).await?))
            })
        },
    ))
    .action(op::<RdsSnapshotStep>(
        "rds.snapshot",
        "Takes a snapshot of an instance and waits; tagged with the run id, so a resumed run adopts it.",
        true,
        vec![Field::required("instance", "string", "Identifier"), Field::required("snapshot", "string", "Snapshot identifier")],
        vec![Field::required("status", "string", "available")],
        |ctx, s| {
            Box::pin(async move {
                let aws = dr_aws::AwsOverrides { region: s.region, endpoint: s.endpoint, profile: None };
                let client = rds(&aws).await?;
                client.start_snapshot(&s.instance, &s.snapshot, Some(&ctx.run_id)).await?;
                Ok(doc(&client.wait_snapshot(&s.snapshot, &wait(s.timeout)).await?))
            })
        },
    ));
}

/// `route53.set` and `route53.weights`: `traffic.switch` on a `route53` target with the
/// destination's shape in the action's name.
struct RecordAction {
    name: &'static str,
    summary: &'static str,
    param: Field,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordParams {
    target: String,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    weights: Option<std::collections::BTreeMap<String, i64>>,
    #[serde(default, with = "dr_core::duration::human::option")]
    timeout: Option<Duration>,
}

impl RecordAction {
    fn destination(&self, with: &Value) -> Result<(String, Destination, Option<Duration>)> {
        let p: RecordParams = params(self.name, with)?;
        let to = match (self.name, p.values, p.weights) {
            ("route53.set", Some(v), None) if !v.is_empty() => Destination::Values(v),
            ("route53.weights", None, Some(w)) if !w.is_empty() => Destination::Weights(w),
            _ => {
                return Err(dr_core::err!(
                    InvalidInput,
                    "{}: give {} (and only that) beside target",
                    self.name,
                    self.param.name
                ))
            }
        };
        Ok((p.target, to, p.timeout))
    }

    fn router(
        ctx: &StepContext,
        name: &str,
        target: &str,
    ) -> Result<std::sync::Arc<dyn TrafficRouter>> {
        let r = ctx.router(target)?;
        if !r.name().starts_with("route53:") {
            return Err(dr_core::err!(
                InvalidInput,
                "step {:?}: {name} needs a target of kind route53; {target:?} is {}; use traffic.switch for other routers",
                ctx.step,
                r.name()
            ));
        }
        Ok(r)
    }
}

#[async_trait]
impl Action for RecordAction {
    fn spec(&self) -> ActionSpec {
        ActionSpec {
            name: self.name.into(),
            summary: self.summary.into(),
            idempotent: true,
            params: vec![
                Field::required("target", "target", "A route53 target"),
                self.param.clone(),
                Field::optional(
                    "timeout",
                    "duration",
                    "Longest wait until the change is live",
                ),
            ],
            outputs: vec![
                Field::required(
                    "before",
                    "route",
                    "The records before: give them to traffic.restore",
                ),
                Field::required("after", "route", "The records read back"),
            ],
            open_outputs: false,
        }
    }
    fn check(&self, with: &Value) -> Result<()> {
        self.destination(with).map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let (target, to, _) = self.destination(with)?;
        let r = Self::router(ctx, self.name, &target)?;
        Ok(r.plan(&to).await?.lines(&r.name(), &to))
    }
    fn undo(&self, with: &Value, outputs: &Map<String, Value>) -> Option<dr_core::runbook::Call> {
        Some(dr_core::runbook::Call {
            action: "traffic.restore".into(),
            with: json!({"target": with.get("target")?, "route": outputs.get("before")?}),
        })
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let (target, to, timeout) = self.destination(with)?;
        let r = Self::router(ctx, self.name, &target)?;
        let wait = dr_core::wait::Wait::new(timeout.unwrap_or(Duration::from_mins(5)))
            .poll(Duration::from_secs(2));
        let s = r.switch(&to, &wait).await?;
        let doc = json!({"before": s.before, "after": s.after, "seconds": s.took.as_secs_f64()});
        Ok(Outcome::Done(match doc {
            Value::Object(m) => m,
            _ => Map::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_field_of_an_rds_request_step_is_refused_by_name() {
        let ok: RdsPitrStep = serde_json::from_value(
            json!({"source": "shop", "new_id": "shop-pitr", "target": "latest", "region": "us-west-2"}),
        )
        .unwrap();
        assert_eq!(
            (ok.request.source.as_str(), ok.region.as_deref()),
            ("shop", Some("us-west-2"))
        );
        for (with, bad) in [
            (
                json!({"source": "shop", "new_id": "x", "target": "latest", "regoin": "us-west-2"}),
                "regoin",
            ),
            (
                json!({"source": "shop", "id": "shop-replica", "endpiont": "http://127.0.0.1:5000"}),
                "endpiont",
            ),
        ] {
            let e = if with.get("id").is_some() {
                serde_json::from_value::<RdsReplicaStep>(with).err()
            } else {
                serde_json::from_value::<RdsPitrStep>(with).err()
            };
            let e = e.map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(&format!("unknown field `{bad}`")), "{e}");
        }
    }
}
