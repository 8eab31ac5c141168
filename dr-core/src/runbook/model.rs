//! What a runbook is, once parsed: objectives, a lock name, variables, targets,
//! notifiers and steps. The same structure is built from YAML ([`super::parse`]), from
//! Rust, or from Python, and is frozen into the journal of every run.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole runbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    /// Format version; only 1 exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Its name (also the default lock name).
    pub name: String,
    /// What it does, for people.
    #[serde(default)]
    pub description: String,
    /// Recovery objectives the run is measured against.
    #[serde(default)]
    pub objectives: Objectives,
    /// Single-flight name: two runs with the same lock never run at once.
    #[serde(default)]
    pub lock: Option<String>,
    /// Variables: `${vars.<name>}`.
    #[serde(default)]
    pub vars: BTreeMap<String, VarSpec>,
    /// Things steps act on, declared once: `with: { target: <name> }`.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetSpec>,
    /// Where notifications go.
    #[serde(default)]
    pub notify: Vec<Value>,
    /// Steps that may run at the same time (independent branches of the graph).
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1))]
    pub concurrency: usize,
    /// Deadline of the whole run.
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
    /// The steps, in file order (in a drill: the recovery under test).
    pub steps: Vec<Step>,
    /// A drill around the steps: a sandbox is set up, a canary writes, a disaster
    /// strikes, the steps recover, checks say when it is healthy again, teardown always
    /// runs; the run measures the RTO and RPO achieved ([`super::drill`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<Drill>,
}

/// The drill section of a runbook. Its step lists are merged into the runbook's steps
/// (each marked with its [`Phase`]) when it is read; what stays is the canary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    /// Steps that build the sandbox (servers, namespaces, data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<Step>,
    /// A writer that commits a row every `interval` until the disaster, so the data lost
    /// is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// Steps that cause the disaster, on sandbox targets only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disaster: Vec<Step>,
    /// Checks that pass once the service is recovered: the RTO ends when they all have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<Step>,
    /// Steps that fail back once the service is recovered (the way home after a
    /// failover), timed as a whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failback: Vec<Step>,
    /// Steps that remove the sandbox: they always run, after a failure or Ctrl-C too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teardown: Vec<Step>,
}

/// A drill's canary writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// The target it writes to (the primary).
    pub target: String,
    /// The target read after recovery (the promoted replica, the restored database);
    /// `target` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    /// How often it commits a row.
    #[serde(default = "default_canary_interval", with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub interval: Duration,
    /// Keep the canary's schema at teardown (`--keep-canary`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep: bool,
}

fn default_canary_interval() -> Duration {
    Duration::from_millis(100)
}

/// Which part of a drill a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Builds the sandbox.
    Setup,
    /// The canary writer's own steps.
    Canary,
    /// Causes the disaster.
    Disaster,
    /// The recovery under test.
    Recovery,
    /// Checks the service is back.
    Recovered,
    /// Fails back.
    Failback,
    /// Removes the sandbox.
    Teardown,
}

impl Phase {
    /// Its name, as in YAML.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Canary => "canary",
            Self::Disaster => "disaster",
            Self::Recovery => "recovery",
            Self::Recovered => "recovered",
            Self::Failback => "failback",
            Self::Teardown => "teardown",
        }
    }
}

fn default_concurrency() -> usize {
    4
}

impl Runbook {
    /// The JSON Schema of the format (`drkit runbook schema`), for editors.
    #[must_use]
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Runbook)).expect("a schema serializes")
    }

    /// The lock name: `lock:`, else the runbook's name.
    #[must_use]
    pub fn lock_name(&self) -> &str {
        self.lock.as_deref().unwrap_or(&self.name)
    }

    /// The step called `id`.
    #[must_use]
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// Recovery objectives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    /// Longest the recovery may take.
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub rto: Option<Duration>,
    /// Most data that may be lost.
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub rpo: Option<Duration>,
}

/// One variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VarSpec {
    /// Its value when neither `--var` nor `env` gives one.
    #[serde(default)]
    pub default: Option<Value>,
    /// Read from this environment variable when set.
    #[serde(default)]
    pub env: Option<String>,
    /// Never printed, journaled or shown in a plan.
    #[serde(default)]
    pub secret: bool,
    /// What its value is read as; without a type it keeps the text it was given
    /// (`--var v=1.10` stays `"1.10"`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<VarType>,
    /// What it is, for people.
    #[serde(default)]
    pub description: String,
}

/// What a variable's value is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VarType {
    /// Text, as given.
    String,
    /// A number (`1.5`, `1e3`).
    Number,
    /// A whole number.
    Integer,
    /// `true`/`false` (also `yes`/`no`, `1`/`0`).
    Boolean,
}

impl VarSpec {
    /// `value` (given for variable `name`) as this variable's type.
    pub fn typed(&self, name: &str, value: Value) -> crate::Result<Value> {
        let Some(ty) = self.ty else {
            return Ok(value);
        };
        let text = match &value {
            Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        let bad = |what: &str| {
            crate::err!(
                InvalidInput,
                "variable {name:?}: {} is not {what}",
                if self.secret {
                    "its value".to_owned()
                } else {
                    format!("{text:?}")
                }
            )
        };
        Ok(match ty {
            VarType::String => match value {
                Value::String(s) => Value::String(s),
                other => Value::String(other.to_string()),
            },
            VarType::Number => match value {
                Value::Number(n) => Value::Number(n),
                _ => text
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| {
                        text.parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .map(Value::from)
                            .ok_or(())
                    })
                    .map_err(|()| bad("a number"))?,
            },
            VarType::Integer => match value {
                Value::Number(n) if n.is_i64() || n.is_u64() => Value::Number(n),
                _ => text
                    .parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| bad("a whole number"))?,
            },
            VarType::Boolean => match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => return Err(bad("true or false")),
            },
        })
    }
}

/// A target: its kind (`rds`, `route53`, `postgres`, …) and the kind's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetSpec {
    /// Which adapter builds it.
    pub kind: String,
    /// A throwaway made for drills: a drill's disaster steps may act on it (and on
    /// nothing else but what its setup made).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
    /// The kind's own fields (may use `${vars.…}`).
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

/// What happens when a step fails (after its retries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Stop: no new steps start; `always` steps still run.
    #[default]
    Abort,
    /// Go on: steps that need this one are skipped, the rest run.
    Continue,
    /// Undo: the compensations of the finished steps run in reverse order, then stop.
    Compensate,
}

/// Bounded retries, for retryable errors only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time.
    #[serde(default = "default_backoff", with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub backoff: Duration,
    /// Longest wait between attempts.
    #[serde(default = "default_max_backoff", with = "crate::duration::human")]
    #[schemars(schema_with = "crate::duration::json_schema")]
    pub max_backoff: Duration,
}

fn default_backoff() -> Duration {
    Duration::from_secs(5)
}

fn default_max_backoff() -> Duration {
    Duration::from_mins(2)
}

impl Retry {
    /// The wait before attempt `n` (2, 3, …).
    #[must_use]
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(2));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// `planned` or `forced`: a guard runs its check only in planned mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Everything is checked first: guards hold.
    #[default]
    Planned,
    /// The primary is gone: guards are skipped, with a journal note.
    Forced,
}

impl std::str::FromStr for Mode {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "planned" => Ok(Self::Planned),
            "forced" => Ok(Self::Forced),
            other => Err(crate::err!(
                InvalidInput,
                "mode {other:?} is not planned or forced"
            )),
        }
    }
}

/// A step that must have succeeded before this one, in some modes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// The mode the guard holds in.
    pub mode: Mode,
    /// The step that must have succeeded.
    pub step: String,
}

/// How urgent a step's notifications are.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Worth a look.
    Low,
    /// The default.
    #[default]
    Medium,
    /// Page someone.
    High,
    /// Page everyone.
    Critical,
}

/// An action and its parameters, as a compensation runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// The action.
    pub action: String,
    /// Its parameters.
    #[serde(default = "empty_map")]
    pub with: Value,
}

fn empty_map() -> Value {
    Value::Object(serde_json::Map::new())
}

/// One step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique id: `${steps.<id>.outputs.<key>}`.
    pub id: String,
    /// The action it runs (empty for a step that `uses` another runbook).
    #[serde(default)]
    pub action: String,
    /// Another runbook file whose steps run here, its variables given by `with:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<String>,
    /// Steps that must finish first.
    #[serde(default)]
    pub needs: Vec<String>,
    /// The action's parameters (may use `${…}`).
    #[serde(default = "empty_map")]
    pub with: Value,
    /// Runs only when this expression is true.
    #[serde(default, rename = "if")]
    pub when: Option<String>,
    /// Deadline of one attempt.
    #[serde(default, with = "crate::duration::human::option")]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub timeout: Option<Duration>,
    /// How long a stopped step's processes get between SIGTERM and SIGKILL (default 10s).
    #[serde(
        default,
        with = "crate::duration::human::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "crate::duration::optional_json_schema")]
    pub kill_grace: Option<Duration>,
    /// Retries of retryable errors.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// What a failure does to the run.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// A failure of this step is a branch, not a failure of the run: the step stays
    /// `failed`, the run goes on, the steps that need it run and can test
    /// `steps.<id>.state` (`if: steps.restart.state == "failed"`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
    /// What undoes this step, when a later failure compensates.
    #[serde(default)]
    pub compensate: Option<Call>,
    /// Runs whatever happened before it.
    #[serde(default)]
    pub always: bool,
    /// Skipped (with a note) unless the guard holds.
    #[serde(default)]
    pub guard: Option<Guard>,
    /// Notification routing.
    #[serde(default)]
    pub severity: Severity,
    /// The drill phase it belongs to (set when a drill is read, never written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub phase: Option<Phase>,
}

/// How long a stopped step's processes get between SIGTERM and SIGKILL by default.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

impl Step {
    /// How long its processes get between SIGTERM and SIGKILL when it is stopped.
    #[must_use]
    pub fn kill_grace(&self) -> Duration {
        self.kill_grace.unwrap_or(DEFAULT_KILL_GRACE)
    }

    /// A step running `action` with `with`.
    #[must_use]
    pub fn new(id: &str, action: &str, with: Value) -> Self {
        Self {
            id: id.to_owned(),
            action: action.to_owned(),
            uses: None,
            needs: Vec::new(),
            with,
            when: None,
            timeout: None,
            kill_grace: None,
            retry: None,
            on_failure: OnFailure::Abort,
            continue_on_error: false,
            compensate: None,
            always: false,
            guard: None,
            severity: Severity::Medium,
            phase: None,
        }
    }

    /// The same, after `needs`.
    #[must_use]
    pub fn needs(mut self, needs: &[&str]) -> Self {
        self.needs = needs.iter().map(|s| (*s).to_owned()).collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Runbook;

    #[test]
    fn the_schema_names_the_format() {
        let s = Runbook::json_schema();
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, ["version", "name", "steps"]);
        let text = s.to_string();
        for part in [
            "\"on_failure\"",
            "\"compensate\"",
            "\"always\"",
            "\"guard\"",
            "\"needs\"",
        ] {
            assert!(text.contains(part), "{part}");
        }
    }
}
