//! The actions every build has: `wait`, `approve`, `assert`, `exec`, `notify`,
//! `tcp.check`, `http.check`, and the ones generic over the traits — `db.health`,
//! `db.check_lag`, `db.promote`, `db.fence`, `traffic.switch`, `traffic.restore`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::action::{Outcome, Registry, StepContext};
use super::typed::{ParamError, TypedAction};
use super::Call;
use crate::target::{Capability, Health, Role};
use crate::traffic::{Destination, Route};
use crate::wait::Wait;
use crate::{err, Result};

fn waits(timeout: Option<Duration>) -> Wait {
    Wait::new(timeout.unwrap_or(Duration::from_mins(30))).poll(Duration::from_secs(1))
}

/// Adds the core actions to `registry`.
pub fn register(registry: &mut Registry) {
    registry
        .typed(WaitAction)
        .typed(Approve)
        .typed(Assert)
        .typed(Exec)
        .typed(Notify)
        .typed(TcpCheck)
        .typed(HttpCheck)
        .typed(DbHealth)
        .typed(DbCheckLag)
        .typed(DbPromote)
        .typed(DbFence)
        .typed(TrafficSwitch)
        .typed(TrafficRestore);
    crate::files::actions::register(registry);
    crate::redis::actions::register(registry);
}

/// No outputs.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct Nothing {}

/// `wait`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// How long.
    #[serde(with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub r#for: Duration,
}

struct WaitAction;

#[async_trait]
impl TypedAction for WaitAction {
    type Params = WaitParams;
    type Outputs = Nothing;
    const NAME: &'static str = "wait";
    const SUMMARY: &'static str = "Waits a while (`for: 30s`).";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: WaitParams) -> Result<Vec<String>> {
        Ok(vec![format!("waits {}", crate::duration::format(p.r#for))])
    }
    async fn run(&self, ctx: &StepContext, p: WaitParams) -> Result<Outcome<Nothing>> {
        tokio::select! {
            () = tokio::time::sleep(p.r#for) => Ok(Outcome::Done(Nothing {})),
            () = ctx.cancel.cancelled() => Err(ctx.cancelled()),
        }
    }
}

/// `approve`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveParams {
    /// What the person approves.
    #[serde(default)]
    pub message: String,
}

/// Who approved.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Approved {
    /// How: `--yes`, `--approve` or `prompt`.
    pub approved_by: String,
}

struct Approve;

#[async_trait]
impl TypedAction for Approve {
    type Params = ApproveParams;
    type Outputs = Approved;
    const NAME: &'static str = "approve";
    const SUMMARY: &'static str = "Waits for a person: given by --yes or --approve STEP, or asked at a terminal; a run without either stops here (waiting) and is resumed later.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, _: ApproveParams) -> Result<Vec<String>> {
        Ok(vec![
            "waits for a person's approval (--yes or --approve)".to_owned()
        ])
    }
    async fn run(&self, ctx: &StepContext, p: ApproveParams) -> Result<Outcome<Approved>> {
        // Ctrl-C or a signal at the prompt stops the run at once (the run waits again on
        // resume).
        let granted = tokio::select! {
            g = ctx.approvals.granted(&ctx.step, &p.message) => g,
            () = ctx.cancel.cancelled() => return Err(ctx.cancelled()),
        };
        Ok(match granted {
            Some(how) => Outcome::Done(Approved {
                approved_by: how.to_owned(),
            }),
            None => Outcome::Waiting(if p.message.is_empty() {
                "approval".to_owned()
            } else {
                format!("approval: {}", p.message)
            }),
        })
    }
}

/// `assert`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertParams {
    /// What must hold: a boolean (an interpolated output), or an expression as `if:`
    /// takes it.
    pub that: Value,
    /// Said when it does not.
    #[serde(default)]
    pub message: Option<String>,
}

struct Assert;

#[async_trait]
impl TypedAction for Assert {
    type Params = AssertParams;
    type Outputs = Nothing;
    const NAME: &'static str = "assert";
    const READS_SCOPE: bool = true;
    const SUMMARY: &'static str = "Fails unless `that` is true: a boolean (an interpolated output), or an expression over vars, steps, run and now as `if:` takes it (`steps.count.outputs.row.orders == steps.source.outputs.row.orders`).";
    const IDEMPOTENT: bool = true;

    async fn run(&self, ctx: &StepContext, p: AssertParams) -> Result<Outcome<Nothing>> {
        let holds = match &p.that {
            Value::Bool(b) => *b,
            Value::String(s) => super::expr::condition(s, &ctx.scope)?,
            Value::Null => false,
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if holds {
            Ok(Outcome::Done(Nothing {}))
        } else {
            Err(err!(
                Conflict,
                "step {:?}: assertion failed: {}",
                ctx.step,
                p.message.unwrap_or_else(|| p.that.to_string())
            ))
        }
    }
}

/// `exec`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecParams {
    /// Program and arguments (never a shell string).
    pub argv: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working folder.
    #[serde(default)]
    pub cwd: Option<std::path::PathBuf>,
    /// Running it twice does no harm: a resume runs it again.
    #[serde(default)]
    pub idempotent: bool,
}

/// What a program left.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Exited {
    /// Its standard output (the last 64 KiB, after a line saying how much came before).
    pub stdout: String,
    /// Its standard error, kept the same way.
    #[serde(default)]
    pub stderr: String,
    /// Its exit status.
    pub code: i32,
}

struct Exec;

#[async_trait]
impl TypedAction for Exec {
    type Params = ExecParams;
    type Outputs = Exited;
    const NAME: &'static str = "exec";
    const SUMMARY: &'static str = "Runs a program (argv, never a shell string) in its own process group; fails on a non-zero exit. Not idempotent unless it says so: a run that died while it ran asks before running it again.";
    const IDEMPOTENT: bool = false;
    const SECRET_INPUTS: &'static [&'static str] = &["env"];

    fn idempotent(&self, p: &ExecParams) -> bool {
        p.idempotent
    }
    fn check(&self, p: &ExecParams) -> std::result::Result<(), ParamError> {
        if p.argv.is_empty() {
            return Err(ParamError::at(
                "argv",
                "is empty; give the program and its arguments",
            ));
        }
        Ok(())
    }
    async fn plan(&self, _: &StepContext, p: ExecParams) -> Result<Vec<String>> {
        Ok(vec![format!(
            "runs {:?}{}",
            p.argv,
            if p.idempotent {
                ""
            } else {
                " (not idempotent)"
            }
        )])
    }
    async fn run(&self, ctx: &StepContext, p: ExecParams) -> Result<Outcome<Exited>> {
        let Some(program) = p.argv.first() else {
            return Err(err!(
                InvalidInput,
                "step {:?}: exec: argv is empty",
                ctx.step
            ));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&p.argv[1..]);
        // drkit's own secrets stay with drkit; a step that needs one passes it in `env:`.
        for var in super::process::WITHHELD_ENV {
            cmd.env_remove(var);
        }
        cmd.envs(&p.env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: stopping the step stops everything it started.
            .process_group(0);
        if let Some(d) = &p.cwd {
            cmd.current_dir(d);
        }
        let child = cmd
            .spawn()
            .map_err(|e| crate::Error::io(format!("step {:?}: starting {program}", ctx.step), e))?;
        if let Err(e) = ctx.processes.started(child.id().unwrap_or(0)).await {
            // Not journaled (the lock is lost): it must not go on.
            let stop = tokio_util::sync::CancellationToken::new();
            stop.cancel();
            let _ = super::process::wait_or_stop(child, &stop, ctx.kill_grace).await;
            return Err(e);
        }
        let out = super::process::wait_or_stop(child, &ctx.cancel, ctx.kill_grace)
            .await
            .map_err(|e| match e {
                None => err!(
                    Cancelled,
                    "step {:?} was stopped before it finished: {program} and every process it started got SIGTERM (SIGKILL after {})",
                    ctx.step,
                    crate::duration::format(ctx.kill_grace)
                ),
                Some(e) => crate::Error::io(format!("step {:?}: running {program}", ctx.step), e),
            })?;
        if !out.status.success() {
            // What it said on both streams: a program may explain itself on either.
            let said: Vec<String> = [out.stdout.text(), out.stderr.text()]
                .into_iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            return Err(err!(
                External,
                "step {:?}: {program} exited with {}: {}",
                ctx.step,
                out.status,
                if said.is_empty() {
                    "it printed nothing".to_owned()
                } else {
                    said.join("\n")
                }
            ));
        }
        Ok(Outcome::Done(Exited {
            stdout: out.stdout.text(),
            stderr: out.stderr.text(),
            code: out.status.code().unwrap_or(0),
        }))
    }
}

/// `notify`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyParams {
    /// What to say.
    pub message: String,
    /// Which notifiers take it (those whose `severities` hold it, or that list none);
    /// by default the step's `severity:`.
    #[serde(default)]
    pub severity: Option<super::model::Severity>,
    /// Fail the step when a notifier fails.
    #[serde(default)]
    pub required: bool,
    /// A status page's incident status (`investigating`, `identified`, `monitoring`,
    /// `resolved`); by default what the run's progress says.
    #[serde(default)]
    pub status: Option<super::notify::IncidentStatus>,
    /// A status page's components and their status by component id
    /// (`{api: degraded_performance}`).
    #[serde(default)]
    pub components: BTreeMap<String, super::notify::ComponentStatus>,
}

/// What was said, and who did not hear it.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Notified {
    /// What was said.
    pub message: String,
    /// The notifiers that failed, and why.
    pub failed: Vec<NotifyFailure>,
}

/// One notifier that failed.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct NotifyFailure {
    /// Its name.
    pub notifier: String,
    /// Why.
    pub error: String,
}

struct Notify;

#[async_trait]
impl TypedAction for Notify {
    type Params = NotifyParams;
    type Outputs = Notified;
    const NAME: &'static str = "notify";
    const SUMMARY: &'static str = "Sends a message to the runbook's notifiers that take its severity (a step no notifier takes is refused before the run), with a status page's status and components; a notifier that fails is a warning in the outputs unless required.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, ctx: &StepContext, p: NotifyParams) -> Result<Vec<String>> {
        let severity = serde_json::to_value(p.severity.unwrap_or(ctx.severity)).unwrap_or_default();
        Ok(vec![format!(
            "notifies ({}): {}",
            severity.as_str().unwrap_or("medium"),
            p.message
        )])
    }
    async fn run(&self, ctx: &StepContext, p: NotifyParams) -> Result<Outcome<Notified>> {
        let severity = p.severity.unwrap_or(ctx.severity);
        tracing::info!("[{}] {:?}: {}", ctx.run_id, severity, p.message);
        let m = super::notify::Message {
            text: p.message.clone(),
            severity,
            event: ctx.step.clone(),
            resolves: false,
            status: p.status,
            components: p.components,
        };
        let failed = ctx.notifiers.send(&m, None).await;
        if p.required && !failed.is_empty() {
            let why: Vec<String> = failed.iter().map(|(n, w)| format!("{n}: {w}")).collect();
            return Err(err!(
                Unavailable,
                "step {:?}: required notification failed: {}",
                ctx.step,
                why.join("; ")
            ));
        }
        Ok(Outcome::Done(Notified {
            message: p.message,
            failed: failed
                .into_iter()
                .map(|(notifier, error)| NotifyFailure { notifier, error })
                .collect(),
        }))
    }
}

/// `tcp.check`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpParams {
    /// Where: `host:port`.
    pub address: String,
    /// How long to try (default 5s).
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

/// How long something took.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Took {
    /// Seconds.
    pub seconds: f64,
}

struct TcpCheck;

#[async_trait]
impl TypedAction for TcpCheck {
    type Params = TcpParams;
    type Outputs = Took;
    const NAME: &'static str = "tcp.check";
    const SUMMARY: &'static str = "Fails unless a TCP connection to host:port opens in time.";
    const IDEMPOTENT: bool = true;

    async fn plan(&self, _: &StepContext, p: TcpParams) -> Result<Vec<String>> {
        Ok(vec![format!("opens a TCP connection to {}", p.address)])
    }
    async fn run(&self, ctx: &StepContext, p: TcpParams) -> Result<Outcome<Took>> {
        let started = std::time::Instant::now();
        let limit = p.timeout.unwrap_or(Duration::from_secs(5));
        match tokio::time::timeout(limit, tokio::net::TcpStream::connect(&p.address)).await {
            Ok(Ok(_)) => Ok(Outcome::Done(Took {
                seconds: started.elapsed().as_secs_f64(),
            })),
            Ok(Err(e)) => Err(err!(
                Unavailable,
                "step {:?}: cannot connect to {}: {e}",
                ctx.step,
                p.address
            )),
            Err(_) => Err(err!(
                Timeout,
                "step {:?}: no connection to {} within {}",
                ctx.step,
                p.address,
                crate::duration::format(limit)
            )),
        }
    }
}

/// A database target and how long to wait.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbParams {
    /// A database target.
    pub target: String,
    /// Longest wait (default 30m).
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

/// `db.check_lag`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LagParams {
    /// A database target (a replica).
    pub target: String,
    /// Most lag allowed (often `${objectives.rpo}`).
    #[serde(with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub max: Duration,
}

/// A database as it reports itself, its endpoint also as host and port (what a client's
/// settings take).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DbState {
    /// Its name (instance id, cluster name).
    pub name: String,
    /// Whether it accepts connections.
    pub available: bool,
    /// The service's own word for its state.
    pub status: String,
    /// `primary` or `replica`.
    pub role: String,
    /// Whether it takes writes now.
    pub writable: bool,
    /// Where clients connect (`host:port`).
    pub endpoint: Option<String>,
    /// The endpoint's host.
    pub host: Option<String>,
    /// The endpoint's port.
    pub port: Option<u16>,
    /// What it replicates from (a replica).
    pub replicating_from: Option<String>,
    /// How far behind its source it is, in seconds (a replica).
    pub lag_seconds: Option<f64>,
}

impl From<&Health> for DbState {
    fn from(h: &Health) -> Self {
        let (host, port) = h
            .endpoint
            .as_deref()
            .map(split_endpoint)
            .unwrap_or_default();
        Self {
            name: h.name.clone(),
            available: h.available,
            status: h.status.clone(),
            role: match h.role {
                Role::Primary => "primary",
                Role::Replica => "replica",
            }
            .to_owned(),
            writable: h.writable,
            endpoint: h.endpoint.clone(),
            host,
            port,
            replicating_from: h.replicating_from.clone(),
            lag_seconds: h.replication_lag.map(|d| d.as_secs_f64()),
        }
    }
}

/// `host:port` (or `[v6]:port`, or a bare host) as host and port.
#[must_use]
pub fn split_endpoint(endpoint: &str) -> (Option<String>, Option<u16>) {
    match endpoint.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => (
            Some(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            ),
            port.parse().ok(),
        ),
        _ if endpoint.is_empty() => (None, None),
        _ => (Some(endpoint.to_owned()), None),
    }
}

fn need(
    ctx: &StepContext,
    target: &str,
    cap: Capability,
) -> Result<std::sync::Arc<dyn crate::target::DatabaseTarget>> {
    let db = ctx.database(target)?;
    if !db.capabilities().contains(&cap) {
        return Err(
            crate::target::unsupported(&db.name(), cap).context(format!("step {:?}", ctx.step))
        );
    }
    Ok(db)
}

struct DbHealth;

#[async_trait]
impl TypedAction for DbHealth {
    type Params = DbParams;
    type Outputs = DbState;
    const NAME: &'static str = "db.health";
    const SUMMARY: &'static str = "Reads a database's availability, role, writability, endpoint (also as host and port) and lag; fails when it is unreachable.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<super::action::Provides> = Some(super::action::Provides::Database);

    async fn plan(&self, ctx: &StepContext, p: DbParams) -> Result<Vec<String>> {
        let h = need(ctx, &p.target, Capability::Health)?.health().await?;
        if !h.available {
            return Err(err!(
                Unavailable,
                "{} is unavailable now ({}): the step would fail",
                h.name,
                h.status
            ));
        }
        Ok(vec![format!(
            "reads {} (now a {}, {})",
            h.name,
            DbState::from(&h).role,
            h.status
        )])
    }
    async fn run(&self, ctx: &StepContext, p: DbParams) -> Result<Outcome<DbState>> {
        let h = need(ctx, &p.target, Capability::Health)?.health().await?;
        if !h.available {
            return Err(err!(
                Unavailable,
                "step {:?}: {} is unavailable: {}",
                ctx.step,
                h.name,
                h.status
            ));
        }
        Ok(Outcome::Done(DbState::from(&h)))
    }
}

struct DbCheckLag;

#[async_trait]
impl TypedAction for DbCheckLag {
    type Params = LagParams;
    type Outputs = DbState;
    const NAME: &'static str = "db.check_lag";
    const SUMMARY: &'static str = "Fails unless a replica's replication lag is at most `max`.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<super::action::Provides> = Some(super::action::Provides::Database);

    async fn plan(&self, ctx: &StepContext, p: LagParams) -> Result<Vec<String>> {
        let h = need(ctx, &p.target, Capability::ReplicationLag)?
            .health()
            .await?;
        let lag = h
            .replication_lag
            .map_or("unknown".to_owned(), crate::duration::format);
        Ok(vec![format!(
            "checks {}: replication lag now {lag}, objective at most {}",
            h.name,
            crate::duration::format(p.max)
        )])
    }
    async fn run(&self, ctx: &StepContext, p: LagParams) -> Result<Outcome<DbState>> {
        let h = need(ctx, &p.target, Capability::ReplicationLag)?
            .health()
            .await?;
        match h.replication_lag {
            Some(lag) if lag <= p.max => Ok(Outcome::Done(DbState::from(&h))),
            Some(lag) => Err(err!(
                Conflict,
                "step {:?}: {} is {} behind, more than the {} allowed",
                ctx.step,
                h.name,
                crate::duration::format(lag),
                crate::duration::format(p.max)
            )),
            None => Err(err!(
                Unavailable,
                "step {:?}: {} reports no replication lag (is it a replica?)",
                ctx.step,
                h.name
            )),
        }
    }
}

struct DbPromote;

#[async_trait]
impl TypedAction for DbPromote {
    type Params = DbParams;
    type Outputs = DbState;
    const NAME: &'static str = "db.promote";
    const SUMMARY: &'static str = "Promotes a replica and waits until it takes writes; a primary is left alone. Outputs its endpoint, host and port.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<super::action::Provides> = Some(super::action::Provides::Database);

    async fn plan(&self, ctx: &StepContext, p: DbParams) -> Result<Vec<String>> {
        let h = need(ctx, &p.target, Capability::Promote)?.health().await?;
        Ok(vec![match h.role {
            Role::Replica => format!(
                "promotes {} from replica (of {}) to primary",
                h.name,
                h.replicating_from.as_deref().unwrap_or("?")
            ),
            Role::Primary => format!("{} is already a primary: no change", h.name),
        }])
    }
    async fn run(&self, ctx: &StepContext, p: DbParams) -> Result<Outcome<DbState>> {
        let h = need(ctx, &p.target, Capability::Promote)?
            .promote(&waits(p.timeout))
            .await?;
        Ok(Outcome::Done(DbState::from(&h)))
    }
}

struct DbFence;

#[async_trait]
impl TypedAction for DbFence {
    type Params = DbParams;
    type Outputs = DbState;
    const NAME: &'static str = "db.fence";
    const SUMMARY: &'static str =
        "Makes an old primary refuse writes (where it is still reachable) and waits until it does.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<super::action::Provides> = Some(super::action::Provides::Database);

    async fn plan(&self, ctx: &StepContext, p: DbParams) -> Result<Vec<String>> {
        let h = need(ctx, &p.target, Capability::Fence)?.health().await?;
        Ok(vec![if h.writable {
            format!("fences {}: it stops taking writes", h.name)
        } else {
            format!("{} already refuses writes: no change", h.name)
        }])
    }
    async fn run(&self, ctx: &StepContext, p: DbParams) -> Result<Outcome<DbState>> {
        let h = need(ctx, &p.target, Capability::Fence)?
            .fence(&waits(p.timeout))
            .await?;
        Ok(Outcome::Done(DbState::from(&h)))
    }
}

/// `traffic.switch`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchParams {
    /// A traffic router.
    pub target: String,
    /// Where to: `{set: ID}`, `{weights: {ID: N}}` or `{values: [..]}`.
    pub to: Destination,
    /// Longest wait until the change is live.
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

/// A route before and after a switch.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct SwitchedRoute {
    /// The route before: give it to `traffic.restore`.
    pub before: Route,
    /// The route read back.
    pub after: Route,
    /// From the request to live, in seconds.
    #[serde(default)]
    pub seconds: f64,
}

impl From<crate::traffic::Switched> for SwitchedRoute {
    fn from(s: crate::traffic::Switched) -> Self {
        Self {
            before: s.before,
            after: s.after,
            seconds: s.took.as_secs_f64(),
        }
    }
}

/// The compensation of a switch: `traffic.restore` of the route it found.
#[must_use]
pub fn restore_call(target: &str, out: &SwitchedRoute) -> Option<Call> {
    Some(Call {
        action: "traffic.restore".into(),
        with: json!({"target": target, "route": out.before}),
    })
}

struct TrafficSwitch;

#[async_trait]
impl TypedAction for TrafficSwitch {
    type Params = SwitchParams;
    type Outputs = SwitchedRoute;
    const NAME: &'static str = "traffic.switch";
    const SUMMARY: &'static str = "Sends traffic to `to` ({set: ID}, {weights: {ID: N}}, {values: [..]}), waits until live and reads it back; compensated by traffic.restore.";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<super::action::Provides> = Some(super::action::Provides::Router);

    async fn plan(&self, ctx: &StepContext, p: SwitchParams) -> Result<Vec<String>> {
        let r = ctx.router(&p.target)?;
        Ok(r.plan(&p.to).await?.lines(&r.name(), &p.to))
    }
    async fn run(&self, ctx: &StepContext, p: SwitchParams) -> Result<Outcome<SwitchedRoute>> {
        let s = ctx
            .router(&p.target)?
            .switch(&p.to, &waits(p.timeout))
            .await?;
        Ok(Outcome::Done(s.into()))
    }
    fn undo(&self, p: &SwitchParams, out: &SwitchedRoute) -> Option<Call> {
        restore_call(&p.target, out)
    }
}

/// `traffic.restore`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreParams {
    /// A traffic router.
    pub target: String,
    /// The route to put back: `${steps.<switch>.outputs.before}`.
    pub route: Route,
    /// Longest wait until the change is live.
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
}

struct TrafficRestore;

#[async_trait]
impl TypedAction for TrafficRestore {
    type Params = RestoreParams;
    type Outputs = SwitchedRoute;
    const NAME: &'static str = "traffic.restore";
    const SUMMARY: &'static str = "Puts a route back as it was (the `before` of traffic.switch).";
    const IDEMPOTENT: bool = true;
    const TARGET: Option<&'static str> = Some("target");
    const TARGET_IS: Option<super::action::Provides> = Some(super::action::Provides::Router);

    async fn plan(&self, _: &StepContext, p: RestoreParams) -> Result<Vec<String>> {
        Ok(vec![format!("puts {} back as it was", p.target)])
    }
    async fn run(&self, ctx: &StepContext, p: RestoreParams) -> Result<Outcome<SwitchedRoute>> {
        let s = ctx
            .router(&p.target)?
            .restore(&p.route, &waits(p.timeout))
            .await?;
        Ok(Outcome::Done(s.into()))
    }
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET (the default).
    #[default]
    Get,
    /// HEAD.
    Head,
    /// POST (not idempotent).
    Post,
    /// PUT.
    Put,
    /// PATCH (not idempotent).
    Patch,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
        }
    }
}

/// `http.check`'s parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpParams {
    /// What to ask.
    pub url: String,
    /// GET by default; POST and PATCH make the step not idempotent unless
    /// `idempotent: true`.
    #[serde(default)]
    pub method: Method,
    /// Request headers (give secrets as secret variables: they are never journaled).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A request body, as text.
    #[serde(default)]
    pub body: Option<String>,
    /// A request body, as JSON (sent with `content-type: application/json`).
    #[serde(default)]
    pub json: Option<Value>,
    /// Accepted statuses (default 2xx and 3xx).
    #[serde(default)]
    pub status: Option<Vec<u16>>,
    /// Text the answer must hold.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Slowest acceptable answer.
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub max_latency: Option<Duration>,
    /// Good answers in a row (default 1).
    #[serde(default = "one")]
    pub successes: u32,
    /// Between tries (default 2s).
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub interval: Option<Duration>,
    /// Give up after (default 1m).
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
    /// A circuit breaker: after `threshold` failures in a row, no request for
    /// `cool_down`.
    #[serde(default)]
    pub breaker: Option<Breaker>,
    /// Whether the request may be repeated by a resume (default: yes, but for POST and
    /// PATCH).
    #[serde(default)]
    pub idempotent: Option<bool>,
}

/// After `threshold` failures in a row the breaker opens: no request for `cool_down`,
/// then one probe (half-open) that closes it again on success.
#[derive(Deserialize, Clone, Copy, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Breaker {
    /// Failures in a row that open it.
    pub threshold: u32,
    /// How long it stays open.
    #[serde(with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub cool_down: Duration,
}

fn one() -> u32 {
    1
}

/// The last good answer.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Answered {
    /// Its latency in seconds.
    pub seconds: f64,
    /// Requests made.
    pub attempts: u32,
    /// Its status.
    pub status: u16,
    /// Its body (the first 64 KiB).
    pub body: String,
    /// Its body read as JSON, when it is JSON (`${steps.login.outputs.json.token}`).
    pub json: Option<Value>,
}

struct HttpCheck;

impl HttpCheck {
    async fn probe_once(p: &HttpParams) -> std::result::Result<Answered, String> {
        let headers: Vec<(&str, String)> = p
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let body = match (&p.json, &p.body) {
            (Some(j), _) => super::http::Body::Json(j),
            (None, Some(t)) => super::http::Body::Text(t),
            (None, None) => super::http::Body::Empty,
        };
        let r = super::http::request(
            p.method.as_str(),
            &p.url,
            &headers,
            body,
            p.max_latency
                .unwrap_or(Duration::from_secs(10))
                .max(Duration::from_secs(10)),
            &p.url,
        )
        .await
        .map_err(|e| e.message().to_owned())?;
        let ok_status = p
            .status
            .as_ref()
            .map_or((200..400).contains(&r.status), |s| s.contains(&r.status));
        if !ok_status {
            return Err(format!("HTTP {}", r.status));
        }
        if let Some(needle) = &p.body_contains {
            if !r.body.contains(needle.as_str()) {
                return Err(format!("the answer does not contain {needle:?}"));
            }
        }
        let secs = r.elapsed.as_secs_f64();
        if let Some(max) = p.max_latency {
            if r.elapsed > max {
                return Err(format!(
                    "answered in {secs:.3} s, more than {}",
                    crate::duration::format(max)
                ));
            }
        }
        Ok(Answered {
            seconds: secs,
            attempts: 0,
            status: r.status,
            json: serde_json::from_str(&r.body).ok(),
            body: r.body,
        })
    }
}

#[async_trait]
impl TypedAction for HttpCheck {
    type Params = HttpParams;
    type Outputs = Answered;
    const NAME: &'static str = "http.check";
    const SUMMARY: &'static str = "Requests a URL (never through a proxy; any method, headers and a text or JSON body) until it answers `successes` times in a row with an expected status (default 2xx/3xx), the body text and within max_latency; gives up after timeout. Outputs the last answer's status, body and JSON. An optional breaker pauses after repeated failures.";
    const IDEMPOTENT: bool = true;
    const SECRET_INPUTS: &'static [&'static str] = &["headers", "body", "json"];

    fn idempotent(&self, p: &HttpParams) -> bool {
        p.idempotent
            .unwrap_or(!matches!(p.method, Method::Post | Method::Patch))
    }
    fn check(&self, p: &HttpParams) -> std::result::Result<(), ParamError> {
        if p.json.is_some() && p.body.is_some() {
            return Err(ParamError::at(
                "json",
                "give either body (text) or json, not both",
            ));
        }
        Ok(())
    }
    async fn plan(&self, _: &StepContext, p: HttpParams) -> Result<Vec<String>> {
        Ok(vec![format!(
            "checks {} {} ({} good answer(s) in a row)",
            p.method.as_str(),
            p.url,
            p.successes
        )])
    }
    async fn run(&self, ctx: &StepContext, p: HttpParams) -> Result<Outcome<Answered>> {
        let deadline = tokio::time::Instant::now() + p.timeout.unwrap_or(Duration::from_mins(1));
        let interval = p.interval.unwrap_or(Duration::from_secs(2));
        let (mut good, mut bad, mut attempts) = (0u32, 0u32, 0u32);
        let mut last = String::new();
        loop {
            attempts += 1;
            match Self::probe_once(&p).await {
                Ok(answer) => {
                    good += 1;
                    bad = 0;
                    if good >= p.successes.max(1) {
                        return Ok(Outcome::Done(Answered { attempts, ..answer }));
                    }
                }
                Err(why) => {
                    good = 0;
                    bad += 1;
                    last = why;
                }
            }
            let mut pause = interval;
            if let Some(b) = p.breaker {
                if bad >= b.threshold.max(1) {
                    tracing::warn!(
                        "step {:?}: breaker open for {} after {bad} failures",
                        ctx.step,
                        crate::duration::format(b.cool_down)
                    );
                    pause = b.cool_down;
                }
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(err!(
                    Timeout,
                    "step {:?}: {} did not pass in time ({attempts} tries; last: {last})",
                    ctx.step,
                    p.url
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = ctx.cancel.cancelled() => return Err(ctx.cancelled()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_endpoint_splits_into_host_and_port() {
        use super::split_endpoint;
        assert_eq!(
            split_endpoint("db.example.com:5432"),
            (Some("db.example.com".into()), Some(5432))
        );
        assert_eq!(
            split_endpoint("[::1]:5433"),
            (Some("::1".into()), Some(5433))
        );
        assert_eq!(split_endpoint("db"), (Some("db".into()), None));
        assert_eq!(split_endpoint(""), (None, None));
    }
}
