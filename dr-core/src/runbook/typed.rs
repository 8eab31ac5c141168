//! Actions written once, on types: a [`TypedAction`] names its parameters and outputs as
//! Rust types, and [`Typed`] — the one adapter into the object-safe [`Action`] — reads a
//! step's `with:` into them, places every refused parameter at its field, stands in for
//! values a check cannot know yet, and derives the documentation and the JSON Schema from
//! the same types. A parameter cannot exist in the code and not in the docs, or the
//! other way round.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::{self, DeserializeOwned, IntoDeserializer};
use serde::Serialize;
use serde_json::{Map, Value};

use super::action::{Action, ActionSpec, Field, Outcome, StepContext, TargetKind};
use super::model::Call;
use crate::{err, Result};

/// One action on typed parameters and outputs; [`Typed`] makes it an [`Action`].
///
/// ```
/// use dr_core::runbook::{Outcome, StepContext, TypedAction};
///
/// /// `greet`'s parameters.
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct Greet {
///     /// Who to greet.
///     name: String,
/// }
///
/// /// What `greet` returns.
/// #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
/// struct Greeted {
///     /// What was said.
///     text: String,
/// }
///
/// struct GreetAction;
///
/// #[async_trait::async_trait]
/// impl TypedAction for GreetAction {
///     type Params = Greet;
///     type Outputs = Greeted;
///     const NAME: &'static str = "greet";
///     const SUMMARY: &'static str = "Says hello.";
///     const IDEMPOTENT: bool = true;
///     async fn run(&self, _: &StepContext, p: Greet) -> dr_core::Result<Outcome<Greeted>> {
///         Ok(Outcome::Done(Greeted { text: format!("hello {}", p.name) }))
///     }
/// }
///
/// let mut registry = dr_core::runbook::Registry::new();
/// registry.typed(GreetAction);
/// ```
#[async_trait]
pub trait TypedAction: Send + Sync + 'static {
    /// What `with:` reads into (`#[serde(deny_unknown_fields)]`, documented fields).
    type Params: DeserializeOwned + JsonSchema + Send + Sync;
    /// What the step's outputs are (`${steps.<id>.outputs.<field>}`).
    type Outputs: Serialize + DeserializeOwned + JsonSchema + Send;
    /// Its name in `action:`.
    const NAME: &'static str;
    /// One line on what it does.
    const SUMMARY: &'static str;
    /// Whether running it twice has the effect of running it once.
    const IDEMPOTENT: bool;
    /// The parameter naming a declared target (checked to exist, built before the run),
    /// if any.
    const TARGET: Option<&'static str> = None;
    /// Whether it evaluates expressions over the run's names (`StepContext::scope`).
    const READS_SCOPE: bool = false;
    /// What its `TARGET` must be: a step naming a target of another kind is refused
    /// before the run.
    const TARGET_IS: Option<super::action::Provides> = None;
    /// Its outputs that are secrets (see [`Action::secret_outputs`]); only an
    /// `IDEMPOTENT` action may have them, as a resume reads them again.
    const SECRET_OUTPUTS: &'static [&'static str] = &[];
    /// Its parameters that may carry a secret output (see [`Action::secret_inputs`]).
    const SECRET_INPUTS: &'static [&'static str] = &[];

    /// Whether a step with these parameters may run again after its run died mid-step
    /// (`IDEMPOTENT`, unless the parameters say more).
    fn idempotent(&self, p: &Self::Params) -> bool {
        let _ = p;
        Self::IDEMPOTENT
    }

    /// What the parameters' types cannot say (a list that must not be empty): checked
    /// before the run, on parameters whose values are all known.
    fn check(&self, p: &Self::Params) -> std::result::Result<(), ParamError> {
        let _ = p;
        Ok(())
    }

    /// What running it would change, read from live state.
    async fn plan(&self, ctx: &StepContext, p: Self::Params) -> Result<Vec<String>> {
        let _ = (ctx, p);
        Ok(vec![format!("runs {}", Self::NAME)])
    }

    /// One attempt.
    async fn run(&self, ctx: &StepContext, p: Self::Params) -> Result<Outcome<Self::Outputs>>;

    /// What undoes a finished step (see [`Action::undo`]).
    fn undo(&self, p: &Self::Params, out: &Self::Outputs) -> Option<Call> {
        let _ = (p, out);
        None
    }

    /// Whether the effect of a step in flight when its run died is visible (see
    /// [`Action::probe`]).
    async fn probe(&self, ctx: &StepContext, p: Self::Params) -> Result<Option<Self::Outputs>> {
        let _ = (ctx, p);
        Ok(None)
    }
}

/// A parameter an action refuses: which (`url`, `to.weights`; empty for `with:` as a
/// whole) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The field's path under `with:`, dot-separated.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ParamError {
    /// A refusal of `field`.
    #[must_use]
    pub fn at(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl ParamError {
    /// The field it is about: a misspelt field is named by the message
    /// (``unknown field `retires` ``), under the path of the map it is in.
    #[must_use]
    pub fn place(&self) -> String {
        let unknown = self
            .message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next());
        match unknown {
            Some(name) if self.field.is_empty() => name.to_owned(),
            Some(name) if !self.field.ends_with(name) => format!("{}.{name}", self.field),
            _ => self.field.clone(),
        }
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// The adapter of a [`TypedAction`] into an [`Action`]; `Registry::typed` adds one.
pub struct Typed<A>(pub A);

impl<A: TypedAction> Typed<A> {
    fn read(with: &Value) -> Result<A::Params> {
        read_params::<A::Params>(with).map_err(|e| {
            err!(
                InvalidInput,
                "{}: with.{e}; see `drkit runbook actions {}`",
                A::NAME,
                A::NAME
            )
        })
    }
}

#[async_trait]
impl<A: TypedAction> Action for Typed<A> {
    fn spec(&self) -> ActionSpec {
        let mut spec = spec_of::<A::Params, A::Outputs>(A::NAME, A::SUMMARY, A::IDEMPOTENT);
        for f in &mut spec.params {
            if A::SECRET_INPUTS.contains(&f.name.as_str()) {
                f.description
                    .push_str(" May carry a secret output of an earlier step.");
            }
        }
        for f in &mut spec.outputs {
            if A::SECRET_OUTPUTS.contains(&f.name.as_str()) {
                f.description.push_str(
                    " Secret: kept in memory only, never journaled, printed, planned or notified; use it as another step's input.",
                );
            }
        }
        spec
    }

    fn secret_inputs(&self) -> &'static [&'static str] {
        A::SECRET_INPUTS
    }

    fn secret_outputs(&self) -> &'static [&'static str] {
        const {
            assert!(
                A::SECRET_OUTPUTS.is_empty() || A::IDEMPOTENT,
                "an action with secret outputs reads: a resume runs it again"
            );
        }
        A::SECRET_OUTPUTS
    }

    fn idempotent(&self, with: &Value) -> bool {
        read_params::<A::Params>(with).map_or(A::IDEMPOTENT, |p| self.0.idempotent(&p))
    }

    fn check(&self, with: &Value) -> Vec<ParamError> {
        let (p, mut problems) = check_all::<A::Params>(with);
        if let Some(p) = p.filter(|_| !super::validate::is_unknown(with)) {
            problems.extend(self.0.check(&p).err());
        }
        problems
    }

    fn reads_scope(&self) -> bool {
        A::READS_SCOPE
    }

    fn target_is(&self) -> Option<super::action::Provides> {
        A::TARGET_IS
    }

    fn targets(&self, with: &Value) -> Vec<String> {
        A::TARGET
            .and_then(|f| with.get(f))
            .and_then(Value::as_str)
            .map(|t| vec![t.to_owned()])
            .unwrap_or_default()
    }

    async fn plan(&self, ctx: &StepContext, with: &Value) -> Result<Vec<String>> {
        self.0.plan(ctx, Self::read(with)?).await
    }

    async fn run(&self, ctx: &StepContext, with: &Value) -> Result<Outcome> {
        Ok(match self.0.run(ctx, Self::read(with)?).await? {
            Outcome::Done(o) => Outcome::Done(to_outputs(&o)),
            Outcome::RetryAfter(d) => Outcome::RetryAfter(d),
            Outcome::Waiting(w) => Outcome::Waiting(w),
        })
    }

    fn undo(&self, with: &Value, outputs: &Map<String, Value>) -> Option<Call> {
        let p = read_params::<A::Params>(with).ok()?;
        let o: A::Outputs = serde_json::from_value(Value::Object(outputs.clone())).ok()?;
        self.0.undo(&p, &o)
    }

    async fn probe(&self, ctx: &StepContext, with: &Value) -> Result<Option<Map<String, Value>>> {
        Ok(self
            .0
            .probe(ctx, Self::read(with)?)
            .await?
            .map(|o| to_outputs(&o)))
    }
}

/// A target kind on typed fields; [`TypedKind`] makes it a [`TargetKind`].
#[async_trait]
pub trait TypedTargetKind: Send + Sync + 'static {
    /// Its fields (`#[serde(deny_unknown_fields)]`: a misspelt field is refused by name,
    /// at its line and column, before the run).
    type Fields: DeserializeOwned + JsonSchema + Send;
    /// Its name in `kind:`.
    const KIND: &'static str;
    /// What its targets are.
    const PROVIDES: super::action::Provides;

    /// Builds target `name`.
    async fn build(&self, name: &str, fields: Self::Fields) -> Result<super::Target>;
}

/// The adapter of a [`TypedTargetKind`] into a [`TargetKind`].
pub struct TypedKind<K>(pub K);

#[async_trait]
impl<K: TypedTargetKind> TargetKind for TypedKind<K> {
    fn kind(&self) -> &str {
        K::KIND
    }
    fn provides(&self) -> Option<super::action::Provides> {
        Some(K::PROVIDES)
    }
    fn fields(&self) -> Vec<Field> {
        fields(&schema_of::<K::Fields>())
    }
    fn schema(&self) -> Value {
        schema_of::<K::Fields>()
    }
    fn check(&self, fields: &Map<String, Value>) -> Vec<ParamError> {
        check_all::<K::Fields>(&Value::Object(fields.clone())).1
    }
    async fn build(&self, name: &str, fields: &Map<String, Value>) -> Result<super::Target> {
        let f = read_params::<K::Fields>(&Value::Object(fields.clone())).map_err(|e| {
            err!(
                InvalidInput,
                "target {name:?} ({}): {e}; see `drkit runbook actions` for its fields",
                K::KIND
            )
        })?;
        self.0.build(name, f).await
    }
}

/// Parameters of two parts side by side in one `with:` map: the fields of `E` (the
/// target, where to reach a service) beside those of `R` (a library operation's own
/// options, as the CLI and Python take them). Each part refuses its own unknown fields.
#[derive(Debug, Clone)]
pub struct Beside<E, R> {
    /// The fields of `E`.
    pub extra: E,
    /// The rest.
    pub options: R,
}

fn property_names<T: JsonSchema>() -> Vec<String> {
    schema_of::<T>()
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

impl<'de, E: DeserializeOwned + JsonSchema, R: DeserializeOwned + JsonSchema>
    serde::Deserialize<'de> for Beside<E, R>
{
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut rest = Map::<String, Value>::deserialize(d)?;
        let mut extra = Map::new();
        for k in property_names::<E>() {
            if let Some(v) = rest.remove(&k) {
                extra.insert(k, v);
            }
        }
        // A misspelt field is named by the message alone (so that it is placed at
        // itself), with every field of both parts.
        let shown = |e: ParamError| {
            de::Error::custom(match e.message.strip_prefix("unknown field `") {
                Some(rest) => {
                    let name = rest.split('`').next().unwrap_or_default();
                    let mut all = property_names::<E>();
                    all.extend(property_names::<R>());
                    format!("unknown field `{name}`; the fields are {}", all.join(", "))
                }
                None => e.to_string(),
            })
        };
        let extra = read_params(&Value::Object(extra)).map_err(shown)?;
        let options = read_params(&Value::Object(rest)).map_err(shown)?;
        Ok(Self { extra, options })
    }
}

impl<E: JsonSchema, R: JsonSchema> JsonSchema for Beside<E, R> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("{}And{}", E::schema_name(), R::schema_name()).into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut s = R::json_schema(g);
        let e = serde_json::to_value(E::json_schema(g)).unwrap_or(Value::Null);
        if let Some(o) = s.as_object_mut() {
            if let Some(props) = e.get("properties").and_then(Value::as_object) {
                let mine = o
                    .entry("properties")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(mine) = mine.as_object_mut() {
                    for (k, v) in props {
                        mine.insert(k.clone(), v.clone());
                    }
                }
            }
            if let Some(req) = e.get("required").and_then(Value::as_array) {
                let mine = o
                    .entry("required")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(mine) = mine.as_array_mut() {
                    mine.extend(req.iter().cloned());
                }
            }
        }
        s
    }
}

/// Outputs as the journal keeps them: a map (a value that is not one is `result`).
fn to_outputs<T: Serialize>(o: &T) -> Map<String, Value> {
    match serde_json::to_value(o).unwrap_or(Value::Null) {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => std::iter::once(("result".to_owned(), other)).collect(),
    }
}

/// The spec of an action on `P` and `O`: fields, types and descriptions from their
/// schemas.
#[must_use]
pub fn spec_of<P: JsonSchema, O: JsonSchema>(
    name: &str,
    summary: &str,
    idempotent: bool,
) -> ActionSpec {
    let params = schema_of::<P>();
    let outputs = schema_of::<O>();
    ActionSpec {
        name: name.to_owned(),
        summary: summary.to_owned(),
        idempotent,
        params: fields(&params),
        outputs: fields(&outputs),
        // Outputs that keep the rest of a report beside their documented fields.
        open_outputs: outputs
            .get("additionalProperties")
            .is_some_and(|a| a.as_bool() == Some(true) || a.is_object()),
        params_schema: params,
        outputs_schema: outputs,
    }
}

/// The JSON Schema of `T`, definitions inlined where they are used once.
#[must_use]
pub fn schema_of<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
    });
    serde_json::to_value(settings.into_generator().into_root_schema_for::<T>())
        .unwrap_or(Value::Null)
}

/// The documented fields of an object schema.
fn fields(schema: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, s)| Field {
            name: name.clone(),
            ty: type_name(s),
            required: required.contains(&name.as_str()),
            description: s
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace('\n', " "),
        })
        .collect()
}

/// A schema's type as a person writes it: `duration`, `[string]`, `{key: int}`, `on|off`.
#[must_use]
pub fn type_name(s: &Value) -> String {
    if let Some(t) = s.get("x-type").and_then(Value::as_str) {
        return t.to_owned();
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = e
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        return names.join("|");
    }
    if let Some(c) = s.get("const") {
        return c.as_str().map_or_else(|| c.to_string(), str::to_owned);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(any) = s.get(key).and_then(Value::as_array) {
            let mut names: Vec<String> = Vec::new();
            for a in any {
                let n = type_name(a);
                if n != "null" && !names.contains(&n) {
                    names.push(n);
                }
            }
            return names.join("|");
        }
    }
    if s.get("pattern").and_then(Value::as_str) == Some(crate::duration::PATTERN) {
        return "duration".to_owned();
    }
    let ty = match s.get("type") {
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("value")
            .to_owned(),
        Some(Value::String(t)) => t.clone(),
        _ => return "value".to_owned(),
    };
    match ty.as_str() {
        "integer" => "int".to_owned(),
        "boolean" => "bool".to_owned(),
        "array" => format!(
            "[{}]",
            s.get("items").map_or_else(|| "value".to_owned(), type_name)
        ),
        "object" => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                let names: Vec<&str> = props.keys().map(String::as_str).collect();
                format!("{{{}}}", names.join(", "))
            } else if let Some(v) = s.get("additionalProperties").filter(|v| v.is_object()) {
                format!("{{key: {}}}", type_name(v))
            } else {
                "map".to_owned()
            }
        }
        "string" if s.get("format").and_then(Value::as_str) == Some("date-time") => {
            "timestamp".to_owned()
        }
        other => other.to_owned(),
    }
}

/// Reads a step's parameters, naming the field of the first problem.
pub fn read_params<P: DeserializeOwned>(with: &Value) -> std::result::Result<P, ParamError> {
    serde_path_to_error::deserialize(Lenient(with)).map_err(|e| ParamError {
        field: path_text(e.path()),
        message: humane(&e.inner().to_string()),
    })
}

/// Every problem of `with` as `P`, each field's on its own (a bad field never hides
/// another): after a problem, the field it is in is left out and the rest read again.
/// Also the parameters, when they read.
fn check_all<P: DeserializeOwned>(with: &Value) -> (Option<P>, Vec<ParamError>) {
    let mut with = with.clone();
    let mut found: Vec<ParamError> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    loop {
        let e = match check_params::<P>(&with) {
            Ok(p) => return (p, found),
            Err(e) => e,
        };
        // A field left out is missing now: every other field was read by then.
        let missing = e
            .message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        if missing.is_some_and(|m| left_out.iter().any(|l| l == m)) {
            return (None, found);
        }
        let place = e.place();
        let top = place.split('.').next().unwrap_or_default().to_owned();
        found.push(e);
        let Some(fields) = with.as_object_mut() else {
            return (None, found);
        };
        if top.is_empty() || fields.remove(&top).is_none() {
            return (None, found);
        }
        left_out.push(top);
    }
}

/// Reads parameters some of whose values may not be known yet (`<known after STEP>`):
/// such a value reads as whatever its field's type asks (a zero, an empty list, the
/// text, or else the first of a few stand-ins its type takes), and a problem inside one
/// is left for the run, which has the value. `None`: it could not be read past one.
fn check_params<P: DeserializeOwned>(with: &Value) -> std::result::Result<Option<P>, ParamError> {
    const STAND_INS: [fn() -> Value; 5] = [
        || Value::Null,
        || Value::from(0),
        || Value::from(""),
        || Value::Array(Vec::new()),
        || Value::Object(Map::new()),
    ];
    let mut with = with.clone();
    let mut tried: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    loop {
        let e = match serde_path_to_error::deserialize::<_, P>(Lenient(&with)) {
            Ok(p) => return Ok(Some(p)),
            Err(e) => e,
        };
        let message = humane(&e.inner().to_string());
        let about_field =
            message.starts_with("missing field") || message.starts_with("unknown field");
        match locate(&with, e.path(), &tried) {
            Place::Unknown(pointer) => {
                let n = tried.entry(pointer.clone()).or_insert(0);
                let (Some(stand_in), Some(slot)) = (STAND_INS.get(*n), with.pointer_mut(&pointer))
                else {
                    return Ok(None);
                };
                *n += 1;
                *slot = stand_in();
            }
            Place::Holds if !about_field => return Ok(None),
            Place::Holds | Place::Known => {
                return Err(ParamError {
                    field: path_text(e.path()),
                    message,
                })
            }
        }
    }
}

/// A serde message in a runbook author's words: `expected u32` is "expected a whole
/// number", not a Rust type.
fn humane(message: &str) -> String {
    const NAMES: [(&str, &str); 12] = [
        ("usize", "a whole number (0 or more)"),
        ("u64", "a whole number (0 or more)"),
        ("u32", "a whole number (0 or more)"),
        ("u16", "a whole number from 0 to 65535"),
        ("u8", "a whole number from 0 to 255"),
        ("isize", "a whole number"),
        ("i64", "a whole number"),
        ("i32", "a whole number"),
        ("i16", "a whole number"),
        ("i8", "a whole number"),
        ("f64", "a number"),
        ("f32", "a number"),
    ];
    let mut out = message.to_owned();
    for (rust, words) in NAMES {
        out = out.replace(&format!("expected {rust}"), &format!("expected {words}"));
    }
    out
}

fn path_text(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." {
        String::new()
    } else {
        text
    }
}

/// Where a problem is, as to values not known yet.
enum Place {
    /// At or under a placeholder, at this JSON pointer (or a stand-in put there).
    Unknown(String),
    /// At a value that holds one.
    Holds,
    /// At a value that holds none.
    Known,
}

fn locate(
    with: &Value,
    path: &serde_path_to_error::Path,
    stood_in: &std::collections::BTreeMap<String, usize>,
) -> Place {
    use serde_path_to_error::Segment;
    let mut at = with;
    let mut pointer = String::new();
    for seg in path {
        if is_placeholder(at) || stood_in.contains_key(&pointer) {
            return Place::Unknown(pointer);
        }
        let (next, key) = match seg {
            Segment::Map { key } => (at.get(key.as_str()), key.clone()),
            Segment::Seq { index } => (at.get(*index), index.to_string()),
            Segment::Enum { variant } => match at.get(variant.as_str()) {
                Some(v) => (Some(v), variant.clone()),
                None => continue,
            },
            Segment::Unknown => (None, String::new()),
        };
        match next {
            Some(n) => {
                at = n;
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            None => break,
        }
    }
    if is_placeholder(at) || stood_in.contains_key(&pointer) {
        Place::Unknown(pointer)
    } else if super::validate::is_unknown(at) {
        Place::Holds
    } else {
        Place::Known
    }
}

fn is_placeholder(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.contains("<known "))
}

/// A JSON value as a serde `Deserializer` in which a value not known yet reads as any
/// value of the type asked for (a zero, an empty list, the placeholder text).
struct Lenient<'a>(&'a Value);

type DeError = de::value::Error;

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

macro_rules! placeholder_as {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: de::Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DeError> {
            if is_placeholder(self.0) {
                return v.$visit($($value)?);
            }
            self.deserialize_any(v)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Lenient<'_> {
    type Error = DeError;

    fn deserialize_any<V: de::Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    v.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    v.visit_i64(i)
                } else {
                    v.visit_f64(n.as_f64().unwrap_or_default())
                }
            }
            Value::String(s) => v.visit_str(s),
            Value::Array(a) => v.visit_seq(Items(a.iter())),
            Value::Object(m) => v.visit_map(Entries {
                iter: m.iter(),
                value: None,
            }),
        }
    }

    placeholder_as! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_unit => visit_unit(),
        deserialize_seq => visit_seq(Items(<&[Value]>::default().iter())),
        deserialize_map => visit_map(Entries { iter: EMPTY.iter(), value: None }),
    }

    // A number or a boolean where text is asked for (`argv: ["${vars.replicas}"]`, an
    // `env:` value) is its text, as it would be inside a longer string.
    fn deserialize_str<V: de::Visitor<'de>>(self, v: V) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::Number(n) => v.visit_string(n.to_string()),
            Value::Bool(b) => v.visit_string(b.to_string()),
            _ => self.deserialize_any(v),
        }
    }

    fn deserialize_string<V: de::Visitor<'de>>(
        self,
        v: V,
    ) -> std::result::Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: de::Visitor<'de>>(
        self,
        v: V,
    ) -> std::result::Result<V::Value, DeError> {
        if self.0.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> std::result::Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_tuple<V: de::Visitor<'de>>(
        self,
        _: usize,
        v: V,
    ) -> std::result::Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, DeError> {
        match self.0 {
            Value::String(s) => v.visit_enum(s.as_str().into_deserializer()),
            Value::Object(m) if m.len() == 1 => {
                let (variant, value) = m.iter().next().expect("one entry");
                v.visit_enum(Variant { variant, value })
            }
            other => Err(de::Error::invalid_type(unexpected(other), &v)),
        }
    }

    serde::forward_to_deserialize_any! {
        char bytes byte_buf unit_struct tuple_struct identifier ignored_any
        i128 u128
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

struct Items<'a>(std::slice::Iter<'a, Value>);

impl<'de> de::SeqAccess<'de> for Items<'_> {
    type Error = DeError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> std::result::Result<Option<T::Value>, DeError> {
        self.0
            .next()
            .map(|v| seed.deserialize(Lenient(v)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = DeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, DeError> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(k.as_str().into_deserializer()).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, DeError> {
        let v = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("a value without its key"))?;
        seed.deserialize(Lenient(v))
    }
}

struct Variant<'a> {
    variant: &'a str,
    value: &'a Value,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = DeError;
    type Variant = Lenient<'a>;
    fn variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> std::result::Result<(T::Value, Lenient<'a>), DeError> {
        let name = seed.deserialize(self.variant.into_deserializer())?;
        Ok((name, Lenient(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for Lenient<'_> {
    type Error = DeError;
    fn unit_variant(self) -> std::result::Result<(), DeError> {
        if self.0.is_null() {
            Ok(())
        } else {
            Err(de::Error::invalid_type(
                unexpected(self.0),
                &"nothing after the variant's name",
            ))
        }
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> std::result::Result<T::Value, DeError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: de::Visitor<'de>>(
        self,
        _: usize,
        v: V,
    ) -> std::result::Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, v)
    }
    fn struct_variant<V: de::Visitor<'de>>(
        self,
        _: &'static [&'static str],
        v: V,
    ) -> std::result::Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(self, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        url: String,
        port: u16,
        #[serde(default, with = "crate::duration::human::option")]
        #[schemars(schema_with = "crate::duration::optional_json_schema")]
        timeout: Option<std::time::Duration>,
        #[serde(default)]
        tags: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn a_refused_parameter_is_named_by_its_field() {
        let e = read_params::<P>(&json!({"url": "x", "port": "five"})).unwrap_err();
        assert_eq!(e.field, "port");
        let e = read_params::<P>(&json!({"url": "x", "port": 1, "prot": 2})).unwrap_err();
        assert!(e.message.contains("unknown field `prot`"), "{e}");
        let e = read_params::<P>(&json!({"url": "x", "port": 1, "timeout": "soon"})).unwrap_err();
        assert_eq!(e.field, "timeout");
        let e = read_params::<P>(&json!({"port": 1})).unwrap_err();
        assert!(e.message.contains("missing field `url`"), "{e}");
    }

    #[test]
    fn a_number_or_boolean_where_text_is_asked_for_is_its_text() {
        #[derive(Debug, Deserialize)]
        struct Argv {
            argv: Vec<String>,
            env: std::collections::BTreeMap<String, String>,
        }
        let a: Argv =
            read_params(&json!({"argv": ["scale", 3], "env": {"ON": true, "N": 2.5}})).unwrap();
        assert_eq!(a.argv, ["scale", "3"]);
        assert_eq!(a.env["ON"], "true");
        assert_eq!(a.env["N"], "2.5");
    }

    #[test]
    fn values_known_later_are_left_to_the_run_and_the_rest_is_checked() {
        let later = "<known after promote>";
        // Any type takes a value not known yet.
        for with in [
            json!({"url": later, "port": later}),
            json!({"url": "x", "port": later, "timeout": later, "tags": later}),
            json!({"url": later, "port": 2, "timeout": later}),
            json!({"url": "x", "port": 1, "tags": {"a": later}}),
        ] {
            assert_eq!(
                check_params::<P>(&with).map(|p| p.is_some()),
                Ok(true),
                "{with}"
            );
        }
        // What is known is still checked, and a missing or misspelt field is missing
        // whatever the others hold.
        let e = check_params::<P>(&json!({"url": later, "port": "five"})).unwrap_err();
        assert_eq!(e.field, "port");
        let e = check_params::<P>(&json!({"url": later})).unwrap_err();
        assert!(e.message.contains("missing field `port`"), "{e}");
        let e = check_params::<P>(&json!({"url": later, "port": 1, "tiemout": "1s"})).unwrap_err();
        assert!(e.message.contains("unknown field `tiemout`"), "{e}");
    }

    #[test]
    fn fields_and_types_come_from_the_schema() {
        let f = fields(&schema_of::<P>());
        let by: std::collections::BTreeMap<&str, (&str, bool)> = f
            .iter()
            .map(|f| (f.name.as_str(), (f.ty.as_str(), f.required)))
            .collect();
        assert_eq!(by["url"], ("string", true));
        assert_eq!(by["port"], ("int", true));
        assert_eq!(by["timeout"], ("duration", false));
        assert_eq!(by["tags"], ("{key: string}", false));
    }
}
