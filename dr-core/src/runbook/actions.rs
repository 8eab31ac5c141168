//! The actions every build has: `wait`, `approve`, `assert`, `exec`, `notify`,
//! `tcp.check`, `http.check`, and the ones generic over the traits — `db.health`, `db.check_lag`,
//! `db.promote`, `db.fence`, `traffic.switch`, `traffic.restore`.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::action::{params, Action, ActionSpec, Field, Outcome, Registry, StepContext};
use crate::target::Capability;
use crate::traffic::{Destination, Route};
use crate::wait::Wait;
use crate::{err, Result};

fn spec(
    name: &str,
    summary: &str,
    idempotent: bool,
    params: Vec<Field>,
    outputs: Vec<Field>,
) -> ActionSpec {
    ActionSpec {
        name: name.to_owned(),
        summary: summary.to_owned(),
        idempotent,
        params,
        outputs,
        open_outputs: false,
    }
}

fn outputs(v: Value) -> Outcome {
    match v {
        Value::Object(m) => Outcome::Done(m),
        _ => Outcome::Done(Map::new()),
    }
}

fn waits(timeout: Option<Duration>) -> Wait {
    Wait::new(timeout.unwrap_or(Duration::from_mins(30))).poll(Duration::from_secs(1))
}

/// Adds the core actions to `registry`.
pub fn register(registry: &mut Registry) {
    registry
        .action(WaitAction)
        .action(Approve)
        .action(Assert)
        .action(Exec)
        .action(Notify)
        .action(TcpCheck)
        .action(HttpCheck)
        .action(DbHealth)
        .action(DbCheckLag)
        .action(DbPromote)
        .action(DbFence)
        .action(TrafficSwitch)
        .action(TrafficRestore);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitParams {
    #[serde(with = "crate::duration::human")]
    r#for: Duration,
}

struct WaitAction;

#[async_trait]
impl Action for WaitAction {
    fn spec(&self) -> ActionSpec {
        spec(
            "wait",
            "Waits a while (`for: 30s`).",
            true,
            vec![Field::required("for", "duration", "How long")],
            vec![],
        )
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<WaitParams>("wait", with).map(|_| ())
    }
    async fn plan(&self, _: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: WaitParams = params("wait", with)?;
        Ok(vec![format!("waits {}", crate::duration::format(p.r#for))])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: WaitParams = params("wait", with)?;
        tokio::select! {
            () = tokio::time::sleep(p.r#for) => Ok(Outcome::Done(Map::new())),
            () = ctx.cancel.cancelled() => Err(ctx.cancelled()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveParams {
    #[serde(default)]
    message: String,
}

struct Approve;

#[async_trait]
impl Action for Approve {
    fn spec(&self) -> ActionSpec {
        spec("approve", "Waits for a person: given by --yes or --approve STEP, or asked at a terminal; a run without either stops here (waiting) and is resumed later.", true, vec![Field::optional("message", "string", "What the person approves")], vec![Field::required("approved_by", "string", "How: --yes, --approve or prompt")])
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<ApproveParams>("approve", with).map(|_| ())
    }
    async fn plan(&self, _: &StepContext, _: &Value) -> Result<Vec<String>> {
        Ok(vec![
            "waits for a person's approval (--yes or --approve)".to_owned()
        ])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: ApproveParams = params("approve", with)?;
        Ok(match ctx.approvals.granted(&ctx.step, &p.message).await {
            Some(how) => outputs(json!({ "approved_by": how })),
            None => Outcome::Waiting(if p.message.is_empty() {
                "approval".to_owned()
            } else {
                format!("approval: {}", p.message)
            }),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertParams {
    that: Value,
    #[serde(default)]
    message: Option<String>,
}

struct Assert;

#[async_trait]
impl Action for Assert {
    fn spec(&self) -> ActionSpec {
        spec("assert", "Fails unless `that` is true (a boolean, usually an interpolated output or `if`-style comparison done by an earlier step).", true, vec![Field::required("that", "bool", "What must hold"), Field::optional("message", "string", "Said when it does not")], vec![])
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<AssertParams>("assert", with).map(|_| ())
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: AssertParams = params("assert", with)?;
        let holds = match &p.that {
            Value::Bool(b) => *b,
            Value::String(s) => super::expr::condition(s, &json!({}))?,
            Value::Null => false,
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if holds {
            Ok(Outcome::Done(Map::new()))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecParams {
    argv: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<std::path::PathBuf>,
    #[serde(default)]
    idempotent: bool,
}

struct Exec;

#[async_trait]
impl Action for Exec {
    fn spec(&self) -> ActionSpec {
        spec(
            "exec",
            "Runs a program (argv, never a shell string); fails on a non-zero exit. Not idempotent: a run that died while it ran asks before running it again.",
            false,
            vec![Field::required("argv", "[string]", "Program and arguments"), Field::optional("env", "map", "Extra environment"), Field::optional("cwd", "path", "Working folder"), Field::optional("idempotent", "bool", "Running it twice does no harm: a resume runs it again")],
            vec![Field::required("stdout", "string", "Its standard output (the last 64 KiB, after a line saying how much came before)"), Field::required("code", "int", "Exit status")],
        )
    }
    fn idempotent(&self, with: &Value) -> bool {
        params::<ExecParams>("exec", with).is_ok_and(|p| p.idempotent)
    }
    fn check(&self, with: &Value) -> Result<()> {
        let p: ExecParams = params("exec", with)?;
        if p.argv.is_empty() {
            return Err(err!(
                InvalidInput,
                "exec: argv is empty; give the program and its arguments"
            ));
        }
        Ok(())
    }
    async fn plan(&self, _: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: ExecParams = params("exec", with)?;
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
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: ExecParams = params("exec", with)?;
        let mut cmd = tokio::process::Command::new(&p.argv[0]);
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
        let child = cmd.spawn().map_err(|e| {
            crate::Error::io(format!("step {:?}: starting {}", ctx.step, p.argv[0]), e)
        })?;
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
                    "step {:?} was stopped before it finished: {} and every process it started got SIGTERM (SIGKILL after {})",
                    ctx.step,
                    p.argv[0],
                    crate::duration::format(ctx.kill_grace)
                ),
                Some(e) => crate::Error::io(format!("step {:?}: running {}", ctx.step, p.argv[0]), e),
            })?;
        if !out.status.success() {
            return Err(err!(
                External,
                "step {:?}: {} exited with {}: {}",
                ctx.step,
                p.argv[0],
                out.status,
                out.stderr.text().trim()
            ));
        }
        Ok(outputs(
            json!({"stdout": out.stdout.text(), "code": out.status.code().unwrap_or(0)}),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyParams {
    message: String,
    #[serde(default)]
    severity: super::model::Severity,
    #[serde(default)]
    required: bool,
}

struct Notify;

#[async_trait]
impl Action for Notify {
    fn spec(&self) -> ActionSpec {
        spec("notify", "Sends a message to the runbook's notifiers that take its severity; a notifier that fails is a warning in the outputs unless required.", true, vec![Field::required("message", "string", "What to say"), Field::optional("severity", "info|low|medium|high|critical", "Routing"), Field::optional("required", "bool", "Fail the step when a notifier fails")], vec![Field::required("message", "string", "What was said"), Field::required("failed", "list", "Notifiers that failed, and why")])
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<NotifyParams>("notify", with).map(|_| ())
    }
    async fn plan(&self, _: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: NotifyParams = params("notify", with)?;
        let severity = serde_json::to_value(p.severity).unwrap_or_default();
        Ok(vec![format!(
            "notifies ({}): {}",
            severity.as_str().unwrap_or("medium"),
            p.message
        )])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: NotifyParams = params("notify", with)?;
        tracing::info!("[{}] {:?}: {}", ctx.run_id, p.severity, p.message);
        let m = super::notify::Message {
            text: p.message.clone(),
            severity: p.severity,
            event: ctx.step.clone(),
            resolves: false,
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
        let failed: Vec<Value> = failed
            .into_iter()
            .map(|(n, w)| json!({"notifier": n, "error": w}))
            .collect();
        Ok(outputs(json!({"message": p.message, "failed": failed})))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpParams {
    address: String,
    #[serde(default, with = "crate::duration::human::option")]
    timeout: Option<Duration>,
}

struct TcpCheck;

#[async_trait]
impl Action for TcpCheck {
    fn spec(&self) -> ActionSpec {
        spec(
            "tcp.check",
            "Fails unless a TCP connection to host:port opens in time.",
            true,
            vec![
                Field::required("address", "host:port", "Where"),
                Field::optional("timeout", "duration", "How long to try (default 5s)"),
            ],
            vec![Field::required("seconds", "number", "Time to connect")],
        )
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<TcpParams>("tcp.check", with).map(|_| ())
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: TcpParams = params("tcp.check", with)?;
        let started = std::time::Instant::now();
        let limit = p.timeout.unwrap_or(Duration::from_secs(5));
        match tokio::time::timeout(limit, tokio::net::TcpStream::connect(&p.address)).await {
            Ok(Ok(_)) => Ok(outputs(json!({"seconds": started.elapsed().as_secs_f64()}))),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DbParams {
    target: String,
    #[serde(default, with = "crate::duration::human::option")]
    max: Option<Duration>,
    #[serde(default, with = "crate::duration::human::option")]
    timeout: Option<Duration>,
}

fn health_doc(h: &crate::target::Health) -> Value {
    json!({
        "name": h.name,
        "available": h.available,
        "role": h.role,
        "writable": h.writable,
        "endpoint": h.endpoint,
        "replicating_from": h.replicating_from,
        "lag_seconds": h.replication_lag.map(|d| d.as_secs_f64()),
    })
}

fn db_fields() -> Vec<Field> {
    vec![
        Field::required("target", "target", "A database target"),
        Field::optional("timeout", "duration", "Longest wait (default 30m)"),
    ]
}

fn health_outputs() -> Vec<Field> {
    [
        "name",
        "available",
        "role",
        "writable",
        "endpoint",
        "replicating_from",
        "lag_seconds",
    ]
    .iter()
    .map(|n| Field::required(n, "value", "As the target reports it"))
    .collect()
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
impl Action for DbHealth {
    fn spec(&self) -> ActionSpec {
        spec("db.health", "Reads a database's availability, role, writability and lag; fails when it is unreachable.", true, db_fields(), health_outputs())
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<DbParams>("db.health", with).map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: DbParams = params("db.health", with)?;
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
            "reads {} (now {:?}, {})",
            h.name, h.role, h.status
        )])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: DbParams = params("db.health", with)?;
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
        Ok(outputs(health_doc(&h)))
    }
}

struct DbCheckLag;

#[async_trait]
impl Action for DbCheckLag {
    fn spec(&self) -> ActionSpec {
        let mut p = db_fields();
        p.push(Field::required(
            "max",
            "duration",
            "Most lag allowed (often ${objectives.rpo})",
        ));
        spec(
            "db.check_lag",
            "Fails unless a replica's replication lag is at most `max`.",
            true,
            p,
            health_outputs(),
        )
    }
    fn check(&self, with: &Value) -> Result<()> {
        let p: DbParams = params("db.check_lag", with)?;
        if p.max.is_none() {
            return Err(err!(
                InvalidInput,
                "db.check_lag: give max (a duration, e.g. ${{objectives.rpo}})"
            ));
        }
        Ok(())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: DbParams = params("db.check_lag", with)?;
        let h = need(ctx, &p.target, Capability::ReplicationLag)?
            .health()
            .await?;
        let lag = h
            .replication_lag
            .map_or("unknown".to_owned(), crate::duration::format);
        Ok(vec![format!(
            "checks {}: replication lag now {lag}, objective at most {}",
            h.name,
            p.max.map(crate::duration::format).unwrap_or_default()
        )])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: DbParams = params("db.check_lag", with)?;
        let max = p.max.unwrap_or_default();
        let h = need(ctx, &p.target, Capability::ReplicationLag)?
            .health()
            .await?;
        match h.replication_lag {
            Some(lag) if lag <= max => Ok(outputs(health_doc(&h))),
            Some(lag) => Err(err!(
                Conflict,
                "step {:?}: {} is {} behind, more than the {} allowed",
                ctx.step,
                h.name,
                crate::duration::format(lag),
                crate::duration::format(max)
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
impl Action for DbPromote {
    fn spec(&self) -> ActionSpec {
        spec(
            "db.promote",
            "Promotes a replica and waits until it takes writes; a primary is left alone.",
            true,
            db_fields(),
            health_outputs(),
        )
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<DbParams>("db.promote", with).map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: DbParams = params("db.promote", with)?;
        let h = need(ctx, &p.target, Capability::Promote)?.health().await?;
        Ok(vec![match h.role {
            crate::target::Role::Replica => format!(
                "promotes {} from replica (of {}) to primary",
                h.name,
                h.replicating_from.as_deref().unwrap_or("?")
            ),
            crate::target::Role::Primary => format!("{} is already a primary: no change", h.name),
        }])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: DbParams = params("db.promote", with)?;
        let h = need(ctx, &p.target, Capability::Promote)?
            .promote(&waits(p.timeout))
            .await?;
        Ok(outputs(health_doc(&h)))
    }
}

struct DbFence;

#[async_trait]
impl Action for DbFence {
    fn spec(&self) -> ActionSpec {
        spec("db.fence", "Makes an old primary refuse writes (where it is still reachable) and waits until it does.", true, db_fields(), health_outputs())
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<DbParams>("db.fence", with).map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: DbParams = params("db.fence", with)?;
        let h = need(ctx, &p.target, Capability::Fence)?.health().await?;
        Ok(vec![if h.writable {
            format!("fences {}: it stops taking writes", h.name)
        } else {
            format!("{} already refuses writes: no change", h.name)
        }])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: DbParams = params("db.fence", with)?;
        let h = need(ctx, &p.target, Capability::Fence)?
            .fence(&waits(p.timeout))
            .await?;
        Ok(outputs(health_doc(&h)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchParams {
    target: String,
    to: Destination,
    #[serde(default, with = "crate::duration::human::option")]
    timeout: Option<Duration>,
}

struct TrafficSwitch;

#[async_trait]
impl Action for TrafficSwitch {
    fn spec(&self) -> ActionSpec {
        spec(
            "traffic.switch",
            "Sends traffic to `to` ({set: ID}, {weights: {ID: N}}, {values: [..]}), waits until live and reads it back.",
            true,
            vec![Field::required("target", "target", "A traffic router"), Field::required("to", "destination", "Where to"), Field::optional("timeout", "duration", "Longest wait")],
            vec![Field::required("before", "route", "The route before: give it to traffic.restore"), Field::required("after", "route", "The route read back")],
        )
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<SwitchParams>("traffic.switch", with).map(|_| ())
    }
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: SwitchParams = params("traffic.switch", with)?;
        let r = ctx.router(&p.target)?;
        Ok(r.plan(&p.to).await?.lines(&r.name(), &p.to))
    }
    fn undo(&self, with: &Value, outputs: &Map<String, Value>) -> Option<super::Call> {
        Some(super::Call {
            action: "traffic.restore".into(),
            with: json!({"target": with.get("target")?, "route": outputs.get("before")?}),
        })
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: SwitchParams = params("traffic.switch", with)?;
        let s = ctx
            .router(&p.target)?
            .switch(&p.to, &waits(p.timeout))
            .await?;
        Ok(outputs(
            json!({"before": s.before, "after": s.after, "seconds": s.took.as_secs_f64()}),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreParams {
    target: String,
    route: Route,
    #[serde(default, with = "crate::duration::human::option")]
    timeout: Option<Duration>,
}

struct TrafficRestore;

#[async_trait]
impl Action for TrafficRestore {
    fn spec(&self) -> ActionSpec {
        spec(
            "traffic.restore",
            "Puts a route back as it was (the `before` of traffic.switch).",
            true,
            vec![
                Field::required("target", "target", "A traffic router"),
                Field::required("route", "route", "${steps.<switch>.outputs.before}"),
            ],
            vec![
                Field::required("before", "route", "The route before"),
                Field::required("after", "route", "The route read back"),
            ],
        )
    }
    fn check(&self, with: &Value) -> Result<()> {
        if with.get("route").is_some_and(super::validate::is_unknown) {
            return Ok(());
        }
        params::<RestoreParams>("traffic.restore", with).map(|_| ())
    }
    async fn plan(&self, _: &StepContext, with: &Value) -> Result<Vec<String>> {
        Ok(vec![format!(
            "puts {} back as it was",
            with.get("target")
                .and_then(Value::as_str)
                .unwrap_or("the route")
        )])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: RestoreParams = params("traffic.restore", with)?;
        let s = ctx
            .router(&p.target)?
            .restore(&p.route, &waits(p.timeout))
            .await?;
        Ok(outputs(json!({"before": s.before, "after": s.after})))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpParams {
    url: String,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    status: Option<Vec<u16>>,
    #[serde(default)]
    body_contains: Option<String>,
    #[serde(default, with = "crate::duration::human::option")]
    max_latency: Option<Duration>,
    #[serde(default = "one")]
    successes: u32,
    #[serde(default, with = "crate::duration::human::option")]
    interval: Option<Duration>,
    #[serde(default, with = "crate::duration::human::option")]
    timeout: Option<Duration>,
    #[serde(default)]
    breaker: Option<Breaker>,
}

/// After `threshold` failures in a row the breaker opens: no request for `cool_down`,
/// then one probe (half-open) that closes it again on success.
#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct Breaker {
    threshold: u32,
    #[serde(with = "crate::duration::human")]
    cool_down: Duration,
}

fn get() -> String {
    "GET".into()
}

fn one() -> u32 {
    1
}

struct HttpCheck;

impl HttpCheck {
    async fn probe_once(p: &HttpParams) -> std::result::Result<f64, String> {
        let r = super::http::request(
            &p.method,
            &p.url,
            &[],
            None,
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
        Ok(secs)
    }
}

#[async_trait]
impl Action for HttpCheck {
    fn spec(&self) -> ActionSpec {
        spec(
            "http.check",
            "Requests a URL (never through a proxy) until it answers `successes` times in a row with an expected status (default 2xx/3xx), the body text and within max_latency; gives up after timeout. An optional breaker pauses after repeated failures.",
            true,
            vec![
                Field::required("url", "url", "What to ask"),
                Field::optional("method", "string", "GET by default"),
                Field::optional("status", "[int]", "Accepted statuses"),
                Field::optional("body_contains", "string", "Text the answer must hold"),
                Field::optional("max_latency", "duration", "Slowest acceptable answer (seed 001: 1s)"),
                Field::optional("successes", "int", "Good answers in a row (default 1)"),
                Field::optional("interval", "duration", "Between tries (default 2s)"),
                Field::optional("timeout", "duration", "Give up after (default 1m)"),
                Field::optional("breaker", "{threshold, cool_down}", "Circuit breaker"),
            ],
            vec![Field::required("seconds", "number", "Latency of the last good answer"), Field::required("attempts", "int", "Requests made")],
        )
    }
    fn check(&self, with: &Value) -> Result<()> {
        params::<HttpParams>("http.check", with).map(|_| ())
    }
    async fn plan(&self, _: &StepContext, with: &Value) -> Result<Vec<String>> {
        let p: HttpParams = params("http.check", with)?;
        Ok(vec![format!(
            "checks {} {} ({} good answer(s) in a row)",
            p.method, p.url, p.successes
        )])
    }
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        let p: HttpParams = params("http.check", with)?;
        let deadline = tokio::time::Instant::now() + p.timeout.unwrap_or(Duration::from_mins(1));
        let interval = p.interval.unwrap_or(Duration::from_secs(2));
        let (mut good, mut bad, mut attempts) = (0u32, 0u32, 0u32);
        let mut last = String::new();
        loop {
            attempts += 1;
            match Self::probe_once(&p).await {
                Ok(secs) => {
                    good += 1;
                    bad = 0;
                    if good >= p.successes.max(1) {
                        return Ok(outputs(json!({"seconds": secs, "attempts": attempts})));
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
            tokio::time::sleep(pause).await;
        }
    }
}
