//! Reading a runbook from YAML, reporting every problem at once with its line and column
//! and the fix, before anything runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_saphyr::Spanned;

use super::model::{Runbook, Step};
use crate::{err, Result};

/// A place in a runbook file (1-based).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct At {
    /// Line.
    pub line: u64,
    /// Column.
    pub column: u64,
}

impl At {
    fn of(l: &serde_saphyr::Location) -> Self {
        Self {
            line: l.line(),
            column: l.column(),
        }
    }
}

/// One problem found in a runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Where, when the runbook came from a file.
    pub at: Option<At>,
    /// The included file it is in, when not the runbook's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = self.at {
            write!(f, "{}:{}: ", at.line, at.column)?;
        }
        write!(f, "{}", self.message)?;
        if !self.fix.is_empty() {
            write!(f, "; {}", self.fix)?;
        }
        Ok(())
    }
}

/// Where each part of a runbook was in its file, for diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceMap {
    /// The file's name.
    pub origin: String,
    /// `steps.<id>` and `steps.<id>.<field>` → place; `vars.<name>`, `targets.<name>`.
    pub places: BTreeMap<String, At>,
    /// `steps.<id>` → the included file the step came from (`uses:`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
}

impl SourceMap {
    /// Where `path` (`steps.promote.with`) was, else its parent's place.
    #[must_use]
    pub fn at(&self, path: &str) -> Option<At> {
        let mut p = path;
        loop {
            if let Some(a) = self.places.get(p) {
                return Some(*a);
            }
            p = &p[..p.rfind('.')?];
        }
    }

    /// The included file `path` is in, when it is not in the runbook's own file.
    #[must_use]
    pub fn file_of(&self, path: &str) -> Option<String> {
        let mut p = path;
        loop {
            if let Some(f) = self.files.get(p) {
                return Some(f.clone());
            }
            p = &p[..p.rfind('.')?];
        }
    }

    /// A problem at `path`, placed in whichever file it came from.
    #[must_use]
    pub fn diagnostic(&self, path: &str, message: String, fix: String) -> Diagnostic {
        Diagnostic {
            at: self.at(path),
            file: self.file_of(path),
            message,
            fix,
        }
    }
}

/// Diagnostics in reading order: the runbook's own file first, then each included file.
pub(crate) fn sort(problems: &mut [Diagnostic]) {
    problems.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            (
                d.file.clone(),
                d.at.map_or((u64::MAX, 0), |a| (a.line, a.column)),
            )
        };
        key(a).cmp(&key(b))
    });
}

#[derive(Debug, Clone)]
struct Key {
    name: String,
    at: At,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = Spanned::<String>::deserialize(d)?;
        Ok(Self {
            name: s.value,
            at: At::of(&s.referenced),
        })
    }
}

impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.name.cmp(&o.name)
    }
}

type RawMap = BTreeMap<Key, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    version: Option<Spanned<Value>>,
    name: Option<Spanned<Value>>,
    description: Option<Spanned<Value>>,
    objectives: Option<Spanned<Value>>,
    lock: Option<Spanned<Value>>,
    vars: Option<Spanned<RawMap>>,
    targets: Option<Spanned<RawMap>>,
    notify: Option<Spanned<Value>>,
    concurrency: Option<Spanned<Value>>,
    timeout: Option<Spanned<Value>>,
    steps: Option<Spanned<Vec<Spanned<RawMap>>>>,
}

const STEP_FIELDS: &[&str] = &[
    "id",
    "action",
    "uses",
    "needs",
    "with",
    "if",
    "timeout",
    "kill_grace",
    "retry",
    "on_failure",
    "compensate",
    "always",
    "guard",
    "severity",
];

/// Collects problems while a runbook is read.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<Diagnostic>);

impl Problems {
    pub(crate) fn add(
        &mut self,
        at: Option<At>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(Diagnostic {
            at,
            file: None,
            message: message.into(),
            fix: fix.into(),
        });
    }
}

fn typed<T: DeserializeOwned>(v: Value, at: At, what: &str, problems: &mut Problems) -> Option<T> {
    match serde_json::from_value(v) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.add(Some(at), format!("{what}: {e}"), "");
            None
        }
    }
}

/// A runbook read from YAML text, with where each part was. `origin` names the file in
/// messages. Every problem in the text is reported at once (an `InvalidInput` error
/// whose message lists them, one per line, `file:line:column: problem; fix`).
pub fn parse_yaml(text: &str, origin: &str) -> Result<(Runbook, SourceMap)> {
    let (runbook, map, problems) = parse_yaml_lenient(text, origin)?;
    if problems.is_empty() {
        Ok((runbook, map))
    } else {
        Err(report(origin, &problems))
    }
}

/// The same, handing back what could be read and the problems found, so a caller can add
/// its own checks and report everything at once. Fails only when the text is not a
/// runbook at all.
#[allow(clippy::too_many_lines)] // one pass over the document, section by section
pub(crate) fn parse_yaml_lenient(
    text: &str,
    origin: &str,
) -> Result<(Runbook, SourceMap, Vec<Diagnostic>)> {
    let raw: RawDoc = serde_saphyr::from_str(text).map_err(|e| {
        let at = e.location().map(|l| format!("{}:{}:", l.line(), l.column())).unwrap_or_default();
        let first = e.to_string().lines().next().unwrap_or_default().to_owned();
        err!(
            InvalidInput,
            "runbook {origin}:{at} {first}; the fields of a runbook are version, name, description, objectives, lock, vars, targets, notify, concurrency, timeout and steps (see docs/runbooks.md)"
        )
    })?;
    let mut problems = Problems::default();
    let mut map = SourceMap {
        origin: origin.to_owned(),
        places: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    let mut doc = serde_json::Map::new();
    let top = [
        ("version", &raw.version),
        ("name", &raw.name),
        ("description", &raw.description),
        ("objectives", &raw.objectives),
        ("lock", &raw.lock),
        ("notify", &raw.notify),
        ("concurrency", &raw.concurrency),
        ("timeout", &raw.timeout),
    ];
    for (k, v) in top {
        if let Some(v) = v {
            map.places.insert(k.to_owned(), At::of(&v.referenced));
            doc.insert(k.to_owned(), v.value.clone());
        }
    }
    for (section, raw_map) in [("vars", &raw.vars), ("targets", &raw.targets)] {
        let mut m = serde_json::Map::new();
        if let Some(rm) = raw_map {
            map.places
                .insert(section.to_owned(), At::of(&rm.referenced));
            for (k, v) in &rm.value {
                map.places.insert(format!("{section}.{}", k.name), k.at);
                m.insert(k.name.clone(), v.value.clone());
            }
        }
        doc.insert(section.to_owned(), Value::Object(m));
    }
    let mut steps = Vec::new();
    let mut seen = BTreeSet::new();
    match &raw.steps {
        None => problems.add(None, "the runbook has no steps", "add a `steps:` list"),
        Some(list) => {
            for (i, s) in list.value.iter().enumerate() {
                let at = At::of(&s.referenced);
                let id = s.value.iter().find(|(k, _)| k.name == "id").map(|(_, v)| v);
                let Some(id) = id.and_then(|v| v.value.as_str().map(str::to_owned)) else {
                    problems.add(
                        Some(at),
                        format!("step {} has no id", i + 1),
                        "give every step an `id:`",
                    );
                    continue;
                };
                if !seen.insert(id.clone()) {
                    problems.add(
                        Some(at),
                        format!("step id {id:?} is used twice"),
                        "give each step its own id",
                    );
                }
                map.places.insert(format!("steps.{id}"), at);
                let mut obj = serde_json::Map::new();
                for (k, v) in &s.value {
                    map.places
                        .insert(format!("steps.{id}.{}", k.name), At::of(&v.referenced));
                    if !STEP_FIELDS.contains(&k.name.as_str()) {
                        problems.add(
                            Some(k.at),
                            format!("step {id:?} has an unknown field {:?}", k.name),
                            format!("a step's fields are {}", STEP_FIELDS.join(", ")),
                        );
                        continue;
                    }
                    obj.insert(k.name.clone(), v.value.clone());
                    if k.name == "with" {
                        if let Value::Object(w) = &v.value {
                            for key in w.keys() {
                                map.places.insert(
                                    format!("steps.{id}.with.{key}"),
                                    At::of(&v.referenced),
                                );
                            }
                        }
                    }
                }
                if !obj.contains_key("action") && !obj.contains_key("uses") {
                    problems.add(
                        Some(at),
                        format!("step {id:?} has no action"),
                        "give it an `action:` (drkit runbook actions lists them) or `uses: other-runbook.yaml`",
                    );
                    continue;
                }
                if let Some(step) = typed::<Step>(
                    Value::Object(obj),
                    at,
                    &format!("step {id:?}"),
                    &mut problems,
                ) {
                    steps.push(step);
                }
            }
        }
    }
    doc.insert("steps".into(), Value::Array(Vec::new()));
    if !doc.contains_key("name") {
        problems.add(
            None,
            "the runbook has no name",
            "add `name: <what it does>` (it is also the lock name)",
        );
        doc.insert("name".into(), Value::String(String::new()));
    }
    if !doc.contains_key("version") {
        doc.insert("version".into(), Value::from(1));
    }
    let mut runbook: Runbook = match serde_json::from_value(Value::Object(doc)) {
        Ok(r) => r,
        Err(e) => {
            problems.add(None, format!("{e}"), "see docs/runbooks.md for the format");
            return Err(report(origin, &problems.0));
        }
    };
    if runbook.version != 1 {
        problems.add(
            map.at("version"),
            format!("version {} is not known", runbook.version),
            "use version: 1",
        );
    }
    runbook.steps = steps;
    Ok((runbook, map, problems.0))
}

/// One `InvalidInput` error listing `problems`, each as `origin:line:column: …`.
#[must_use]
pub fn report(origin: &str, problems: &[Diagnostic]) -> crate::Error {
    let lines: Vec<String> = problems
        .iter()
        .map(|d| {
            let file = d.file.as_deref().unwrap_or(origin);
            match d.at {
                Some(_) => format!("  {file}:{d}"),
                None => format!("  {file}: {d}"),
            }
        })
        .collect();
    err!(
        InvalidInput,
        "runbook {origin} has {} problem{}:\n{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}
