//! What a step runs: an [`Action`], registered by the crate that owns it into a
//! [`Registry`] the composition root builds (nothing registers itself in a global).
//! Targets (`targets:` of a runbook) are built the same way, per kind, by a
//! [`TargetKind`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::Mode;
use crate::target::DatabaseTarget;
use crate::traffic::TrafficRouter;
use crate::{err, Result};

/// One documented parameter or output of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Its name in `with:` (or in `outputs`).
    pub name: String,
    /// Its type, as users write it (`duration`, `string`, `target`, `[string]`).
    pub ty: String,
    /// Whether it must be given.
    pub required: bool,
    /// What it means.
    pub description: String,
}

impl Field {
    /// A required field.
    #[must_use]
    pub fn required(name: &str, ty: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            ty: ty.to_owned(),
            required: true,
            description: description.to_owned(),
        }
    }

    /// An optional field.
    #[must_use]
    pub fn optional(name: &str, ty: &str, description: &str) -> Self {
        Self {
            required: false,
            ..Self::required(name, ty, description)
        }
    }
}

/// What an action is, for `drkit runbook actions`, the docs and the planner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSpec {
    /// `db.promote`.
    pub name: String,
    /// One line on what it does.
    pub summary: String,
    /// Whether running it twice has the effect of running it once: a step of an
    /// idempotent action that was in flight when a run died is simply run again.
    pub idempotent: bool,
    /// Its parameters.
    pub params: Vec<Field>,
    /// Its outputs (`${steps.<id>.outputs.<name>}`).
    pub outputs: Vec<Field>,
    /// Whether it may return outputs beyond those listed (an action written in Python):
    /// references to other names are then not refused before the run.
    #[serde(default)]
    pub open_outputs: bool,
    /// The JSON Schema of its parameters (`null`: not known, an action written in
    /// Python).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params_schema: Value,
    /// The JSON Schema of its outputs.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub outputs_schema: Value,
}

/// What one attempt of an action came to (`T`: its outputs).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T = Map<String, Value>> {
    /// Finished, with these outputs.
    Done(T),
    /// Not yet: try again after this long (counts against the step's deadline, not its
    /// retries).
    RetryAfter(Duration),
    /// It cannot finish until something outside the run happens (a person's approval):
    /// the run stops to wait, saying why, and the step runs again when it is resumed.
    Waiting(String),
}

/// Records in the run's journal the process groups a step starts, so that a resume after
/// the run's process died can stop what they left running.
#[derive(Clone, Default)]
pub struct ProcessLog {
    journal: Option<Arc<tokio::sync::Mutex<super::journal::Journal>>>,
    step: String,
}

impl ProcessLog {
    pub(super) fn new(
        journal: Arc<tokio::sync::Mutex<super::journal::Journal>>,
        step: &str,
    ) -> Self {
        Self {
            journal: Some(journal),
            step: step.to_owned(),
        }
    }

    /// Journals that the step started process group `leader` (on this machine).
    pub async fn started(&self, leader: u32) -> Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        journal
            .lock()
            .await
            .append(super::journal::EventKind::StepProcess {
                step: self.step.clone(),
                group: crate::lock::ProcessId::of_pid(leader),
            })
            .await
            .map(|_| ())
    }
}

/// Who approves `approve` steps in this run: `--yes`, `--approve STEP`, or a person
/// asked at a terminal.
#[derive(Clone, Default)]
pub struct Approvals {
    /// Every approval step is approved.
    pub all: bool,
    /// These approval steps are approved.
    pub steps: std::collections::BTreeSet<String>,
    /// Asks a person (a terminal's prompt): step id and message in, yes or no out.
    pub ask: Option<super::engine::Approver>,
}

impl Approvals {
    /// How step `step` is approved (`--yes`, `--approve`, `prompt`), or `None` while it is
    /// not.
    pub async fn granted(&self, step: &str, message: &str) -> Option<&'static str> {
        if self.all {
            return Some("--yes");
        }
        if self.steps.contains(step) {
            return Some("--approve");
        }
        let ask = self.ask.clone()?;
        let (step, message) = (step.to_owned(), message.to_owned());
        // A thread of its own, not the blocking pool: a prompt nobody answers must not
        // keep a stopped run's process from exiting.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = tx.send(ask(&step, &message));
        });
        rx.await.unwrap_or(false).then_some("prompt")
    }
}

/// What a step sees while it plans or runs.
#[derive(Clone)]
pub struct StepContext {
    /// The run's id.
    pub run_id: String,
    /// The step's id.
    pub step: String,
    /// Planned or forced.
    pub mode: Mode,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The run's targets by name.
    pub targets: Arc<BTreeMap<String, Target>>,
    /// The repository the run journals into (backups, restores and copies use it).
    pub repo: Option<crate::repo::Repository>,
    /// The run's notifiers (the `notify` action sends through them).
    pub notifiers: super::notify::Notifiers,
    /// Cancelled when this attempt must stop (its timeout, Ctrl-C, a signal, a lost
    /// lock): an action holding processes stops them before it returns.
    pub cancel: tokio_util::sync::CancellationToken,
    /// How long a stopped attempt's processes get between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Who approves `approve` steps.
    pub approvals: Approvals,
    /// Where the process groups it starts are recorded.
    pub processes: ProcessLog,
    /// Every name expressions read (`vars`, `steps`, `run`, `now`), for an action that
    /// [`Action::reads_scope`] (`assert` evaluates its `that:` over it); else null.
    pub scope: Value,
    /// The step's `severity:` (a `notify` step without one of its own says it at this).
    pub severity: super::model::Severity,
    /// What one step of the run left in this process for a later one.
    pub scratch: Scratch,
}

/// What one step of a run leaves in this process for a later step of the same run (a
/// drill's canary writer, started by one step and stopped by another). It is gone with
/// the process: a step that finds nothing after a resume says so.
#[derive(Clone, Default)]
pub struct Scratch(Arc<std::sync::Mutex<BTreeMap<String, Box<dyn std::any::Any + Send>>>>);

impl Scratch {
    /// Leaves `value` under `key`.
    pub fn put<T: std::any::Any + Send>(&self, key: &str, value: T) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), Box::new(value));
    }

    /// Takes what is under `key`, if it is a `T`.
    #[must_use]
    pub fn take<T: std::any::Any + Send>(&self, key: &str) -> Option<T> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let v = m.remove(key)?;
        match v.downcast::<T>() {
            Ok(v) => Some(*v),
            Err(v) => {
                m.insert(key.to_owned(), v);
                None
            }
        }
    }
}

impl StepContext {
    /// A context for step `step` of run `run_id` with no targets, repository or
    /// notifiers (plans, tests, actions run on their own).
    #[must_use]
    pub fn new(run_id: &str, step: &str, mode: Mode) -> Self {
        Self {
            run_id: run_id.to_owned(),
            step: step.to_owned(),
            mode,
            attempt: 1,
            targets: Arc::default(),
            repo: None,
            notifiers: super::notify::Notifiers::default(),
            cancel: tokio_util::sync::CancellationToken::new(),
            kill_grace: super::model::DEFAULT_KILL_GRACE,
            approvals: Approvals::default(),
            processes: ProcessLog::default(),
            scope: Value::Null,
            severity: super::model::Severity::default(),
            scratch: Scratch::default(),
        }
    }

    /// The `Cancelled` error of a stopped attempt.
    #[must_use]
    pub fn cancelled(&self) -> crate::Error {
        err!(
            Cancelled,
            "step {:?} was stopped before it finished",
            self.step
        )
    }
}

impl StepContext {
    fn target(&self, name: &str) -> Result<&Target> {
        self.targets.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.targets.keys().map(String::as_str).collect();
            err!(
                InvalidInput,
                "step {:?}: no target {name:?}; the runbook declares {}",
                self.step,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// The database target `name`.
    pub fn database(&self, name: &str) -> Result<Arc<dyn DatabaseTarget>> {
        match self.target(name)? {
            Target::Database(d) => Ok(d.clone()),
            Target::Router(_) | Target::Adapter { .. } => Err(err!(
                InvalidInput,
                "step {:?}: target {name:?} is not a database; this action needs one",
                self.step
            )),
        }
    }

    /// The repository, for actions that read or write snapshots.
    pub fn repository(&self) -> Result<&crate::repo::Repository> {
        self.repo.as_ref().ok_or_else(|| {
            err!(InvalidInput, "step {:?} needs a repository", self.step)
                .with_hint(crate::Hint::Repository)
        })
    }

    /// The traffic router `name`.
    pub fn router(&self, name: &str) -> Result<Arc<dyn TrafficRouter>> {
        match self.target(name)? {
            Target::Router(r) => Ok(r.clone()),
            Target::Database(_) | Target::Adapter { .. } => Err(err!(
                InvalidInput,
                "step {:?}: target {name:?} does not route traffic; this action needs a traffic router",
                self.step
            )),
        }
    }

    /// The adapter target `name` as its client type `T` (a `dr_k8s::Kubernetes`).
    pub fn adapter<T: std::any::Any + Send + Sync>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Arc<T>> {
        match self.target(name)? {
            Target::Adapter { value, .. } => value.clone().downcast::<T>().map_err(|_| {
                err!(
                    InvalidInput,
                    "step {:?}: target {name:?} is not {what}",
                    self.step
                )
            }),
            _ => Err(err!(
                InvalidInput,
                "step {:?}: target {name:?} is not {what}",
                self.step
            )),
        }
    }
}

/// What a target of a kind is, as the actions that act on one need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provides {
    /// A database (`db.*`).
    Database,
    /// Where traffic goes (`traffic.*`, `route53.*`).
    Router,
    /// A client only its adapter's actions use (`kubernetes`).
    Adapter(&'static str),
}

impl std::fmt::Display for Provides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Database => f.write_str("a database"),
            Self::Router => f.write_str("a traffic router"),
            Self::Adapter(what) => write!(f, "a {what} cluster"),
        }
    }
}

/// A built target.
#[derive(Clone)]
pub enum Target {
    /// A database.
    Database(Arc<dyn DatabaseTarget>),
    /// Where traffic goes.
    Router(Arc<dyn TrafficRouter>),
    /// Something only its own adapter's actions use (a Kubernetes cluster), named for
    /// messages.
    Adapter {
        /// What it is, for messages (`kubernetes context dr`).
        name: String,
        /// The adapter's client; its actions take it with [`StepContext::adapter`].
        value: Arc<dyn std::any::Any + Send + Sync>,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Database(d) => write!(f, "Database({})", d.name()),
            Self::Router(r) => write!(f, "Router({})", r.name()),
            Self::Adapter { name, .. } => write!(f, "Adapter({name})"),
        }
    }
}

/// One step's action, as the engine calls it. Actions of Rust crates are written as a
/// [`super::TypedAction`] (parameters and outputs as types) and added with
/// [`Registry::typed`], which adapts them; this object-safe form takes parameters as
/// JSON for the actions whose shape is only known at run time (written in Python).
#[async_trait]
pub trait Action: Send + Sync {
    /// Name, documentation, idempotence.
    fn spec(&self) -> ActionSpec;

    /// Whether a step of this action with these parameters may simply run again when it
    /// was in flight as its run died (the spec's `idempotent`, unless the parameters say
    /// more: `exec` with `idempotent: true`).
    fn idempotent(&self, with: &Value) -> bool {
        let _ = with;
        self.spec().idempotent
    }

    /// Checks the parameters before anything runs (values only known after an earlier
    /// step read as the string `"<known after STEP>"`): every field refused, each named.
    fn check(&self, with: &Value) -> Vec<super::ParamError> {
        let _ = with;
        Vec::new()
    }

    /// Whether it evaluates expressions over the run's names (`assert`): its context
    /// then carries them in `scope`.
    fn reads_scope(&self) -> bool {
        false
    }

    /// Its outputs that are secrets (`secretsmanager.get`'s `value`): kept in the
    /// running process only — never journaled, printed, planned or notified — masked
    /// wherever they would appear, and read again when a resume needs them. An action
    /// with secret outputs is idempotent (it reads).
    fn secret_outputs(&self) -> &'static [&'static str] {
        &[]
    }

    /// Its parameters that may carry a secret output of an earlier step (`env` of
    /// `exec`): a secret anywhere else is refused before the run.
    fn secret_inputs(&self) -> &'static [&'static str] {
        &[]
    }

    /// What its target must be (`None`: it takes none, or any).
    fn target_is(&self) -> Option<Provides> {
        None
    }

    /// The target names among the parameters (checked to exist, and built, before the
    /// run).
    fn targets(&self, with: &Value) -> Vec<String> {
        with.get("target")
            .and_then(Value::as_str)
            .map(|t| vec![t.to_owned()])
            .unwrap_or_default()
    }

    /// What running it would change, read from live state without changing anything.
    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        let _ = (ctx, with);
        Ok(vec![format!("runs {}", self.spec().name)])
    }

    /// One attempt.
    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome>;

    /// What undoes a finished step of this action, from its parameters and outputs
    /// (`k8s.scale` back to the previous count): the compensation of a step that gives
    /// none of its own. `None`: nothing to undo, or not undoable.
    fn undo(&self, with: &Value, outputs: &Map<String, Value>) -> Option<super::model::Call> {
        let _ = (with, outputs);
        None
    }

    /// For a non-idempotent action whose step was in flight when a run died: whether
    /// its effect is visible in live state (then the outputs it would have returned).
    /// `None` when it cannot tell: the run then stops and asks.
    async fn probe(&self, ctx: &StepContext, with: &Value) -> Result<Option<Map<String, Value>>> {
        let _ = (ctx, with);
        Ok(None)
    }
}

/// Builds the targets of one kind (`rds`, `route53`, `postgres`) from their fields.
#[async_trait]
pub trait TargetKind: Send + Sync {
    /// The kind's name.
    fn kind(&self) -> &str;
    /// Its fields, documented.
    fn fields(&self) -> Vec<Field>;
    /// What its targets are (`None`: not said; any action may use them).
    fn provides(&self) -> Option<Provides> {
        None
    }
    /// The JSON Schema of its fields (`null`: not known).
    fn schema(&self) -> Value {
        Value::Null
    }
    /// Checks its fields before anything runs (values not known yet read as
    /// `"<known when the run starts: …>"`): every field refused, each named.
    fn check(&self, fields: &Map<String, Value>) -> Vec<super::ParamError> {
        let _ = fields;
        Vec::new()
    }
    /// Builds target `name` from `fields` (variables already replaced).
    async fn build(&self, name: &str, fields: &Map<String, Value>) -> Result<Target>;
}

/// The actions and target kinds a runbook may use.
#[derive(Clone, Default)]
pub struct Registry {
    actions: BTreeMap<String, Arc<dyn Action>>,
    kinds: BTreeMap<String, Arc<dyn TargetKind>>,
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `action` under its spec's name (replacing one of the same name).
    pub fn action(&mut self, action: impl Action + 'static) -> &mut Self {
        let a: Arc<dyn Action> = Arc::new(action);
        self.actions.insert(a.spec().name, a);
        self
    }

    /// Adds a [`super::TypedAction`].
    pub fn typed(&mut self, action: impl super::TypedAction) -> &mut Self {
        self.action(super::Typed(action))
    }

    /// Adds a target kind.
    pub fn target_kind(&mut self, kind: impl TargetKind + 'static) -> &mut Self {
        let k: Arc<dyn TargetKind> = Arc::new(kind);
        self.kinds.insert(k.kind().to_owned(), k);
        self
    }

    /// The action called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.actions.get(name)
    }

    /// The target kind called `name`.
    #[must_use]
    pub fn kind(&self, name: &str) -> Option<&Arc<dyn TargetKind>> {
        self.kinds.get(name)
    }

    /// The JSON Schema of runbooks this registry runs (`drkit runbook schema`): the
    /// format, with the names of its actions and target kinds. It checks a runbook's
    /// shape; references, the graph of `needs` and each action's parameters are checked
    /// by `drkit runbook check` and `plan`.
    #[must_use]
    pub fn json_schema(&self) -> Value {
        let mut s = super::model::Runbook::json_schema();
        let actions: Vec<Value> = self.actions.keys().cloned().map(Value::String).collect();
        let kinds: Vec<Value> = self.kinds.keys().cloned().map(Value::String).collect();
        if let Some(step) = s.pointer_mut("/$defs/Step") {
            if let Some(a) = step.pointer_mut("/properties/action") {
                a["enum"] = Value::Array(actions.clone());
                if let Some(o) = a.as_object_mut() {
                    o.remove("default");
                }
            }
            // A step runs an action or `uses` another runbook.
            step["anyOf"] = serde_json::json!([{"required": ["action"]}, {"required": ["uses"]}]);
            // Ids name steps in references; `/` is kept for the steps `uses:` brings in.
            step["properties"]["id"]["pattern"] = Value::from("^[^/]+$");
            step["properties"]["with"] = serde_json::json!({
                "description": "The action's parameters (may use `${…}`).",
                "anyOf": [{"type": "object"}, {"type": "null"}]
            });
            step["properties"]["timeout"] = crate::duration::positive_json_schema();
            // Each action's parameters, as its types say (a value may be a `${…}`).
            let each: Vec<Value> = self
                .actions
                .values()
                .map(|a| a.spec())
                .filter(|spec| spec.params_schema.is_object())
                .map(|spec| {
                    let mut with = spec.params_schema.clone();
                    if let Some(o) = with.as_object_mut() {
                        o.remove("$schema");
                        o.remove("title");
                    }
                    serde_json::json!({
                        "if": {"properties": {"action": {"const": spec.name}}, "required": ["action"]},
                        "then": {"properties": {"with": {"anyOf": [{"type": "null"}, references_in_fields(with)]}}}
                    })
                })
                .collect();
            step["allOf"] = Value::Array(each);
        }
        if let Some(c) = s.pointer_mut("/$defs/Call") {
            c["properties"]["action"]["enum"] = Value::Array(actions);
            c["properties"]["with"] = serde_json::json!({"type": "object"});
        }
        s["properties"]["timeout"] = crate::duration::positive_json_schema();
        s["properties"]["notify"]["items"] = super::notify::json_schema();
        // Sections may be written with nothing under them.
        for section in ["vars", "targets", "notify", "objectives"] {
            let field = &mut s["properties"][section];
            let mut inner = field.take();
            let description = inner
                .as_object_mut()
                .and_then(|o| o.remove("description"))
                .unwrap_or_default();
            *field =
                serde_json::json!({"description": description, "anyOf": [inner, {"type": "null"}]});
        }
        // `x-…` fields are the reader's own (anchors to reuse).
        s["patternProperties"] = serde_json::json!({"^x-": true});
        if let Some(t) = s.pointer_mut("/$defs/TargetSpec") {
            t["properties"]["kind"]["enum"] = Value::Array(kinds);
            // Each kind's fields, as its types say (a value may be a `${…}`).
            let each: Vec<Value> = self
                .kinds
                .values()
                .filter_map(|k| {
                    let mut fields = references_in_fields(k.schema());
                    let o = fields.as_object_mut()?;
                    o.remove("$schema");
                    o.remove("title");
                    o.entry("properties")
                        .or_insert_with(|| serde_json::json!({}))
                        .as_object_mut()?
                        .insert("kind".into(), serde_json::json!({"const": k.kind()}));
                    o.get_mut("properties")?.as_object_mut()?.insert(
                        "sandbox".into(),
                        serde_json::json!({"type": "boolean", "description": "A throwaway made for drills: a drill's disaster steps may act on it."}),
                    );
                    Some(serde_json::json!({
                        "if": {"properties": {"kind": {"const": k.kind()}}, "required": ["kind"]},
                        "then": fields,
                    }))
                })
                .collect();
            t["allOf"] = Value::Array(each);
        }
        // The lock's name (`lock:`, else the runbook's name), as `lock::check_name` takes it.
        let lock = serde_json::json!({"type": "string", "pattern": crate::lock::NAME_PATTERN});
        if let Some(l) = s.pointer_mut("/properties/lock") {
            l["anyOf"] = serde_json::json!([lock, {"type": "null"}]);
            if let Some(o) = l.as_object_mut() {
                o.remove("type");
            }
        }
        s["if"] = serde_json::json!({"not": {"required": ["lock"]}});
        s["then"] = serde_json::json!({"properties": {"name": lock}});
        s
    }

    /// The reference of every action and target kind, in Markdown (docs/actions.md is
    /// this text): what each does, its parameters and outputs with their types, from the
    /// types the code reads them into.
    #[must_use]
    pub fn reference_markdown(&self) -> String {
        use std::fmt::Write as _;
        let cell = |t: &str| t.replace('|', "\\|").replace('\n', " ");
        let table = |out: &mut String, head: &str, fields: &[Field], optional: &str| {
            if fields.is_empty() {
                return;
            }
            let _ = writeln!(out, "\n| {head} | type | |\n|---|---|---|");
            for f in fields {
                let _ = writeln!(
                    out,
                    "| `{}`{} | `{}` | {} |",
                    f.name,
                    if f.required { "" } else { optional },
                    cell(&f.ty),
                    cell(&f.description)
                );
            }
        };
        let mut out = String::from(
            "# Actions and target kinds\n\nGenerated from the types each action reads its `with:` into \\\n(`drkit runbook actions --markdown`); a test keeps this file equal to them.\n",
        );
        for a in self.actions.values() {
            let s = a.spec();
            let _ = writeln!(
                out,
                "\n## `{}`{}\n\n{}",
                s.name,
                if s.idempotent {
                    ""
                } else {
                    " (not idempotent)"
                },
                s.summary
            );
            table(&mut out, "parameter", &s.params, " (optional)");
            table(&mut out, "output", &s.outputs, " (may be null)");
            if s.open_outputs {
                out.push_str(
                    "\nAnd the rest of the report, as the command's `--json` prints it.\n",
                );
            }
        }
        out.push_str("\n# Target kinds\n");
        for k in self.kinds.values() {
            let _ = writeln!(out, "\n## `{}`", k.kind());
            table(&mut out, "field", &k.fields(), " (optional)");
        }
        out
    }

    /// Every action's spec, by name.
    #[must_use]
    pub fn specs(&self) -> Vec<ActionSpec> {
        self.actions.values().map(|a| a.spec()).collect()
    }

    /// Every target kind's name.
    #[must_use]
    pub fn kinds(&self) -> Vec<String> {
        self.kinds.keys().cloned().collect()
    }

    /// The action names closest to `name`, for "did you mean".
    #[must_use]
    pub fn closest(&self, name: &str) -> Vec<String> {
        crate::nearest::nearest(name, self.actions.keys().map(String::as_str), 3, 3)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}

/// An object's `schema`, where the value of every field may also be a `${…}` reference.
fn references_in_fields(mut schema: Value) -> Value {
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        for v in props.values_mut() {
            *v = accept_references(v.take());
        }
    }
    schema
}

/// `schema`, where every value may also be a `${…}` reference (resolved at run time).
fn accept_references(mut schema: Value) -> Value {
    let Some(o) = schema.as_object_mut() else {
        return schema;
    };
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = o.get_mut(key) {
            for v in props.values_mut() {
                *v = accept_references(v.take());
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = o.get_mut(key).filter(|v| v.is_object()) {
            *v = accept_references(v.take());
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(list)) = o.get_mut(key) {
            for v in list.iter_mut() {
                *v = accept_references(v.take());
            }
        }
    }
    let is_text = o.get("type") == Some(&Value::from("string")) && !o.contains_key("pattern");
    let constrains = ["type", "enum", "const", "anyOf", "oneOf", "pattern"]
        .iter()
        .any(|k| o.contains_key(*k));
    if is_text || !constrains {
        return schema;
    }
    let description = o.remove("description");
    let mut wrapped = serde_json::json!({
        "anyOf": [schema, {"type": "string", "pattern": "\\$\\{"}]
    });
    if let Some(d) = description {
        wrapped["description"] = d;
    }
    wrapped
}
