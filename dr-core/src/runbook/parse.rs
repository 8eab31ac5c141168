//! Reading a runbook from YAML, reporting every problem at once with its line and column
//! and the fix, before anything runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
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

/// A YAML node with its place, every node below it placed too: what lets each problem
/// point at the exact key or value it is about.
#[derive(Debug, Clone)]
struct Node {
    at: At,
    tree: Tree,
}

#[derive(Debug, Clone)]
enum Tree {
    Map(Vec<(Key, Node)>),
    Seq(Vec<Node>),
    Scalar(Value),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = Spanned::<Tree>::deserialize(d)?;
        Ok(Self {
            at: At::of(&s.referenced),
            tree: s.value,
        })
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Tree, E> {
        Ok(Tree::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Tree, E> {
        Ok(Tree::Scalar(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Tree, E> {
        Ok(Tree::Scalar(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Tree, E> {
        Ok(Tree::Scalar(Value::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Tree, E> {
        Ok(Tree::Scalar(Value::String(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Tree, E> {
        Ok(Tree::Scalar(Value::String(v)))
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Tree, E> {
        Ok(Tree::Scalar(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<Tree, E> {
        Ok(Tree::Scalar(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Tree, D::Error> {
        Tree::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Tree::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<Key>()? {
            let v = map.next_value::<Node>()?;
            entries.push((k, v));
        }
        Ok(Tree::Map(entries))
    }
}

impl Node {
    /// The node as plain JSON.
    fn value(&self) -> Value {
        match &self.tree {
            Tree::Scalar(v) => v.clone(),
            Tree::Seq(items) => Value::Array(items.iter().map(Self::value).collect()),
            Tree::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.value()))
                    .collect(),
            ),
        }
    }

    /// What kind of YAML value it is, for messages.
    fn kind(&self) -> &'static str {
        match &self.tree {
            Tree::Map(_) => "a map",
            Tree::Seq(_) => "a list",
            Tree::Scalar(Value::Null) => "empty",
            Tree::Scalar(Value::String(_)) => "a string",
            Tree::Scalar(Value::Bool(_)) => "a boolean",
            Tree::Scalar(_) => "a number",
        }
    }

    /// The place of key `name` in this map, if it is one and has it.
    fn key_at(&self, name: &str) -> Option<At> {
        match &self.tree {
            Tree::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(k, _)| k.at),
            _ => None,
        }
    }
}

/// The fields of a runbook, in the order the docs give them.
const RUNBOOK_FIELDS: &[&str] = &[
    "version",
    "name",
    "description",
    "objectives",
    "lock",
    "vars",
    "targets",
    "notify",
    "concurrency",
    "timeout",
    "steps",
];

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

    /// Reports serde's complaint about `node` (read as `what`): placed at the value it
    /// is about (found by the path serde followed, `skip` segments of it above `node`), or
    /// at the unknown key it names.
    fn serde(&mut self, node: &Node, skip: usize, what: &str, e: &PathError) {
        let mut segments: Vec<String> = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                _ => None,
            })
            .collect();
        let inner = e.inner().to_string();
        let unknown = ["unknown field `", "unknown variant `"]
            .iter()
            .find_map(|p| inner.strip_prefix(p))
            .and_then(|r| r.split('`').next());
        // An unknown field's path ends with the field itself: name the map it is in.
        if inner.starts_with("unknown field") && segments.last().map(String::as_str) == unknown {
            segments.pop();
        }
        let mut target = node;
        for seg in segments.iter().skip(skip) {
            match target.child(seg) {
                Some(n) => target = n,
                None => break,
            }
        }
        let at = match unknown {
            Some(f) if inner.starts_with("unknown field") => target.key_at(f).unwrap_or(target.at),
            _ => target.at,
        };
        let place = match (what.is_empty(), segments.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{}: ", segments.join(".")),
            (false, true) => format!("{what}: "),
            (false, false) => format!("{what}: {}: ", segments.join(".")),
        };
        let (message, fix) = match inner.split_once(", expected ") {
            Some((first, rest)) if unknown.is_some() => {
                (first.to_owned(), format!("expected {}", humane(rest)))
            }
            Some((first, rest)) => match first.strip_prefix("invalid type: ") {
                Some(found) => (
                    format!("expected {}, found {}", humane(rest), humane(found)),
                    String::new(),
                ),
                None => (format!("{first}, expected {}", humane(rest)), String::new()),
            },
            None => (inner.clone(), String::new()),
        };
        self.add(
            Some(at),
            format!("{place}{}", message.replace('`', "\"")),
            fix.replace('`', "\""),
        );
    }
}

type PathError = serde_path_to_error::Error<serde_json::Error>;

/// serde's names of types, as users of YAML know them.
fn humane(text: &str) -> String {
    let mut t = text.to_owned();
    for (from, to) in [
        ("usize", "a whole number"),
        ("u64", "a whole number"),
        ("u32", "a whole number"),
        ("u16", "a whole number"),
        ("i64", "a whole number"),
        ("a sequence", "a list"),
        ("sequence", "a list"),
        ("struct ", ""),
    ] {
        t = t.replace(from, to);
    }
    t
}

impl Node {
    /// The child `seg` names: a key of a map, an index of a list.
    fn child(&self, seg: &str) -> Option<&Node> {
        match &self.tree {
            Tree::Map(entries) => entries.iter().find(|(k, _)| k.name == seg).map(|(_, v)| v),
            Tree::Seq(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            Tree::Scalar(_) => None,
        }
    }
}

/// Reads `value` as a `T`, keeping the path to whatever it could not read.
fn read<T: DeserializeOwned>(value: Value) -> std::result::Result<T, PathError> {
    serde_path_to_error::deserialize(value)
}

/// Whether `node`, put in `base` as its field `field`, reads as a `T`; a problem placed
/// at the value it is about when it does not. Each field is read on its own, so one bad
/// field never hides another.
fn field_reads_as<T: DeserializeOwned>(
    base: &serde_json::Map<String, Value>,
    field: &str,
    node: &Node,
    what: &str,
    problems: &mut Problems,
) -> bool {
    let mut obj = base.clone();
    obj.insert(field.to_owned(), node.value());
    match read::<T>(Value::Object(obj)) {
        Ok(_) => true,
        Err(e) => {
            problems.serde(node, 1, what, &e);
            false
        }
    }
}

/// Turns what the YAML reader refuses into one sentence with its place.
fn unreadable(origin: &str, e: &serde_saphyr::Error) -> crate::Error {
    let at = e
        .location()
        .map(|l| format!("{}:{}:", l.line(), l.column()))
        .unwrap_or_default();
    let first = e.to_string().lines().next().unwrap_or_default().to_owned();
    // serde-saphyr prefixes its own place: "error: line 3 column 7: …".
    let what = first
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("error"))
        .map_or(first.as_str(), |(_, rest)| rest);
    let what = what
        .split_once(": ")
        .filter(|(head, _)| head.starts_with("line "))
        .map_or(what, |(_, rest)| rest);
    let sentence = if what.contains("recursion limit") || what.contains("depth") {
        "it nests deeper than the 64 levels a runbook may have (lists and maps inside one another); \
         write the deep part flatter, or as a string"
            .to_owned()
    } else {
        format!("it is not valid YAML: {what}; check the indentation and quoting there")
    };
    err!(
        InvalidInput,
        "runbook {origin} has 1 problem:\n  {origin}:{at} {sentence}"
    )
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
/// its own checks and report everything at once. Fails only when the text is not YAML
/// (or nests too deep to read).
pub(crate) fn parse_yaml_lenient(
    text: &str,
    origin: &str,
) -> Result<(Runbook, SourceMap, Vec<Diagnostic>)> {
    let root: Node = serde_saphyr::from_str(text).map_err(|e| unreadable(origin, &e))?;
    let mut problems = Problems::default();
    let mut map = SourceMap {
        origin: origin.to_owned(),
        places: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    let Tree::Map(fields) = &root.tree else {
        problems.add(
            Some(root.at),
            format!("a runbook is a map of fields, this file is {}", root.kind()),
            format!(
                "start with `version: 1`, `name:` and `steps:`; the fields are {}",
                RUNBOOK_FIELDS.join(", ")
            ),
        );
        return Err(report(origin, &problems.0));
    };
    let fields = fields.as_slice();
    // The smallest runbook, to read each top-level field against on its own.
    let base: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::json!({"version": 1, "name": "", "steps": []}))
            .unwrap_or_default();
    let mut doc = base.clone();
    let mut steps = Vec::new();
    let mut has_steps = false;
    for (key, node) in fields {
        let name = key.name.as_str();
        if !RUNBOOK_FIELDS.contains(&name) {
            problems.add(
                Some(key.at),
                format!("unknown field {name:?}"),
                format!("the fields of a runbook are {}", RUNBOOK_FIELDS.join(", ")),
            );
            continue;
        }
        map.places.insert(name.to_owned(), node.at);
        match name {
            "vars" | "targets" => {
                if let Some(section) = read_section(name, node, &mut map, &mut problems) {
                    doc.insert(name.to_owned(), section);
                }
            }
            "steps" => {
                has_steps = true;
                steps = read_steps(node, &mut map, &mut problems);
            }
            _ => {
                if field_reads_as::<Runbook>(&base, name, node, "", &mut problems) {
                    doc.insert(name.to_owned(), node.value());
                }
            }
        }
    }
    if !has_steps {
        problems.add(
            Some(root.at),
            "the runbook has no steps",
            "add a `steps:` list",
        );
    }
    match fields.iter().find(|(k, _)| k.name == "name") {
        None => problems.add(
            Some(root.at),
            "the runbook has no name",
            "add `name: <what it does>` (it is also the lock name)",
        ),
        Some((_, n)) if n.value().as_str().is_some_and(|s| s.trim().is_empty()) => problems.add(
            Some(n.at),
            "the runbook's name is empty",
            "give it a name: it says what the runbook does and is its lock name",
        ),
        Some(_) => {}
    }
    let mut runbook: Runbook = serde_json::from_value(Value::Object(doc)).map_err(|e| {
        err!(
            InvalidInput,
            "runbook {origin}: {e}; see docs/runbooks.md for the format"
        )
    })?;
    if runbook.version != 1 {
        problems.add(
            map.at("version"),
            format!("version {} is not known", runbook.version),
            "use version: 1",
        );
    }
    if runbook.concurrency == 0 {
        problems.add(
            map.at("concurrency"),
            "concurrency 0 would run no step",
            "give at least 1 (the default is 4)",
        );
    }
    runbook.steps = steps;
    Ok((runbook, map, problems.0))
}

/// `vars:` or `targets:`: a map whose entries are read one by one, each bad one named
/// at its own place.
fn read_section(
    section: &str,
    node: &Node,
    map: &mut SourceMap,
    problems: &mut Problems,
) -> Option<Value> {
    let Tree::Map(entries) = &node.tree else {
        if matches!(node.tree, Tree::Scalar(Value::Null)) {
            return None;
        }
        problems.add(
            Some(node.at),
            format!("{section}: is {}, not a map of names", node.kind()),
            if section == "vars" {
                "write `vars:` as `name: { default: …, env: …, secret: … }` entries"
            } else {
                "write `targets:` as `name: { kind: …, … }` entries"
            },
        );
        return None;
    };
    let mut out = serde_json::Map::new();
    for (k, v) in entries {
        map.places.insert(format!("{section}.{}", k.name), k.at);
        let what = format!(
            "{} {:?}",
            if section == "vars" {
                "variable"
            } else {
                "target"
            },
            k.name
        );
        let ok = match section {
            "vars" => read_whole::<super::model::VarSpec>(v, &what, problems),
            _ => read_whole::<super::model::TargetSpec>(v, &what, problems),
        };
        if ok {
            out.insert(k.name.clone(), v.value());
        }
    }
    Some(Value::Object(out))
}

/// Whether `node` reads as a `T` (a problem at the value it is about, if not).
fn read_whole<T: DeserializeOwned>(node: &Node, what: &str, problems: &mut Problems) -> bool {
    match read::<T>(node.value()) {
        Ok(_) => true,
        Err(e) => {
            problems.serde(node, 0, what, &e);
            false
        }
    }
}

/// `steps:`: a list of maps, each field of each step read on its own.
fn read_steps(node: &Node, map: &mut SourceMap, problems: &mut Problems) -> Vec<Step> {
    let Tree::Seq(list) = &node.tree else {
        problems.add(
            Some(node.at),
            format!("steps: is {}, not a list", node.kind()),
            "write each step as a list item: `- id: …` then `action: …`",
        );
        return Vec::new();
    };
    let mut steps = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, s) in list.iter().enumerate() {
        let Tree::Map(fields) = &s.tree else {
            problems.add(
                Some(s.at),
                format!("step {} is {}, not a map of fields", i + 1, s.kind()),
                "write a step as `- id: …` with `action:` and `with:` below it",
            );
            continue;
        };
        let id = fields.iter().find(|(k, _)| k.name == "id").map(|(_, v)| v);
        let Some(id) = id.and_then(|v| match &v.tree {
            Tree::Scalar(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }) else {
            problems.add(
                Some(s.at),
                format!("step {} has no id", i + 1),
                "give every step an `id:` (a string)",
            );
            continue;
        };
        if !seen.insert(id.clone()) {
            problems.add(
                Some(s.at),
                format!("step id {id:?} is used twice"),
                "give each step its own id",
            );
        }
        map.places.insert(format!("steps.{id}"), s.at);
        let what = format!("step {id:?}");
        let base: serde_json::Map<String, Value> =
            std::iter::once(("id".to_owned(), Value::String(id.clone()))).collect();
        let mut obj = base.clone();
        let mut ok = true;
        for (k, v) in fields {
            map.places.insert(format!("steps.{id}.{}", k.name), v.at);
            if !STEP_FIELDS.contains(&k.name.as_str()) {
                problems.add(
                    Some(k.at),
                    format!("step {id:?} has an unknown field {:?}", k.name),
                    format!("a step's fields are {}", STEP_FIELDS.join(", ")),
                );
                continue;
            }
            if k.name == "with" {
                if let Tree::Map(entries) = &v.tree {
                    for (wk, wv) in entries {
                        map.places
                            .insert(format!("steps.{id}.with.{}", wk.name), wv.at);
                    }
                }
            }
            if k.name != "id" && !field_reads_as::<Step>(&base, &k.name, v, &what, problems) {
                ok = false;
                continue;
            }
            obj.insert(k.name.clone(), v.value());
        }
        if !obj.contains_key("action") && !obj.contains_key("uses") {
            if ok {
                problems.add(
                    Some(s.at),
                    format!("step {id:?} has no action"),
                    "give it an `action:` (drkit runbook actions lists them) or `uses: other-runbook.yaml`",
                );
            }
            continue;
        }
        if !ok {
            continue;
        }
        match read::<Step>(Value::Object(obj)) {
            Ok(step) => steps.push(step),
            Err(e) => problems.serde(s, 0, &what, &e),
        }
    }
    steps
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
