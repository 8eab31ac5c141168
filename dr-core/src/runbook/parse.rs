//! Reading a runbook from YAML, reporting every problem at once with its line and column
//! and the fix, before anything runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_saphyr::Spanned;

use super::model::{Drill, Runbook, Step};
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
    /// Steps some of whose fields could not be read (and were reported): their ids count,
    /// the rest of them is not checked further.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub partial: BTreeSet<String>,
    /// The file could not be read as a runbook at all (not YAML, not a map): its one
    /// problem says why, and nothing else is checked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
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
    "drill",
];

/// The sections of a runbook's `drill:`.
const DRILL_FIELDS: &[&str] = &[
    "setup",
    "canary",
    "disaster",
    "recovered",
    "failback",
    "teardown",
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
    "continue_on_error",
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
            Some((first, rest)) if unknown.is_some() => (
                first.replace('`', "\""),
                format!("expected {}", rest.replace('`', "\"")),
            ),
            Some((first, rest)) => {
                let found = first
                    .strip_prefix("invalid type: ")
                    .or_else(|| first.strip_prefix("invalid value: "))
                    .unwrap_or(first);
                (
                    format!(
                        "expected {}, found {}",
                        humane(rest),
                        found.replace('`', "")
                    ),
                    String::new(),
                )
            }
            None => (inner.replace('`', "\""), String::new()),
        };
        self.add(Some(at), format!("{place}{message}"), fix);
    }
}

type PathError = serde_path_to_error::Error<serde_json::Error>;

/// serde's names of types, as users of YAML know them.
fn humane(text: &str) -> String {
    let mut t = text.to_owned();
    if t.starts_with("struct ") {
        return "a map of fields".to_owned();
    }
    for (from, to) in [
        ("usize", "a whole number, 0 or more"),
        ("u64", "a whole number, 0 or more"),
        ("u32", "a whole number, 0 or more"),
        ("u16", "a whole number, 0 or more"),
        ("i64", "a whole number"),
        ("a sequence", "a list"),
        ("sequence", "a list"),
    ] {
        t = t.replace(from, to);
    }
    t.replace('`', "")
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

/// What the YAML reader refuses, as one problem with its place and a sentence.
fn unreadable(e: &serde_saphyr::Error) -> Diagnostic {
    let at = e.location().map(|l| At::of(&l));
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
    let (message, fix) = if what.contains("recursion limit") || what.contains("depth") {
        (
            "it nests deeper than the 64 levels a runbook may have (lists and maps inside one another)".to_owned(),
            "write the deep part flatter, or as a string",
        )
    } else if let Some(key) = what.strip_prefix("duplicate mapping key: ") {
        let key = key.split(", set ").next().unwrap_or(key);
        (
            format!("the key {key:?} appears twice in the same map"),
            "keep one of them",
        )
    } else if what.starts_with("multiple YAML documents") {
        (
            "the file holds more than one YAML document (a `---` line between them)".to_owned(),
            "keep one runbook per file",
        )
    } else if what.starts_with("budget breached") {
        (
            "the file expands into more YAML nodes than a runbook may have (anchors and aliases multiplied)".to_owned(),
            "write it without nested aliases",
        )
    } else {
        (
            format!("it is not valid YAML: {what}"),
            "check the indentation (spaces, not tabs) and quoting there",
        )
    };
    Diagnostic {
        at,
        file: None,
        message,
        fix: fix.to_owned(),
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
/// its own checks and report everything at once. Text that is not a runbook at all comes
/// back as an empty runbook, its one problem, and `map.unreadable`.
pub(crate) fn parse_yaml_lenient(
    text: &str,
    origin: &str,
) -> Result<(Runbook, SourceMap, Vec<Diagnostic>)> {
    let mut problems = Problems::default();
    let mut map = SourceMap {
        origin: origin.to_owned(),
        ..SourceMap::default()
    };
    // The smallest runbook, to read each top-level field against on its own.
    let base: serde_json::Map<String, Value> =
        serde_json::from_value(serde_json::json!({"version": 1, "name": "", "steps": []}))
            .unwrap_or_default();
    let unread = |map: SourceMap, problem: Diagnostic| {
        let runbook: Runbook = serde_json::from_value(Value::Object(base.clone()))
            .expect("the smallest runbook reads");
        Ok((
            runbook,
            SourceMap {
                unreadable: true,
                ..map
            },
            vec![problem],
        ))
    };
    // YAML 1.2's booleans only (`true`, `false`): `name: n` or `to: no` stay text.
    let options = serde_saphyr::options! { strict_booleans: true };
    let root: Node = match serde_saphyr::from_str_with_options(text, options) {
        Ok(root) => root,
        Err(e) => return unread(map, unreadable(&e)),
    };
    let Tree::Map(fields) = &root.tree else {
        return unread(
            map,
            Diagnostic {
                at: Some(root.at),
                file: None,
                message: format!("a runbook is a map of fields, this file is {}", root.kind()),
                fix: format!(
                    "start with `version: 1`, `name:` and `steps:`; the fields are {}",
                    RUNBOOK_FIELDS.join(", ")
                ),
            },
        );
    };
    let fields = fields.as_slice();
    let mut doc = base.clone();
    let mut steps = Vec::new();
    let mut drill = None;
    for (key, node) in fields {
        let name = key.name.as_str();
        // `x-…`: the reader's own extension fields (anchors to reuse), ignored.
        if name.starts_with("x-") {
            continue;
        }
        // `vars:` with nothing under it is no variables, and so on.
        let collection = ["vars", "targets", "notify", "objectives"].contains(&name);
        if collection && matches!(node.tree, Tree::Scalar(Value::Null)) {
            map.places.insert(name.to_owned(), node.at);
            continue;
        }
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
            "steps" => steps = read_steps(node, &mut map, &mut problems),
            "drill" => {
                if let Some(d) = read_drill(node, &mut map, &mut problems) {
                    drill = Some(d);
                }
            }
            "notify" => {
                if field_reads_as::<Runbook>(&base, name, node, "", &mut problems)
                    && read_notifiers(node, &mut problems)
                {
                    doc.insert(name.to_owned(), node.value());
                }
            }
            _ => {
                if field_reads_as::<Runbook>(&base, name, node, "", &mut problems) {
                    doc.insert(name.to_owned(), node.value());
                }
            }
        }
    }
    required_fields(root.at, fields, &mut problems);
    let mut runbook: Runbook = serde_json::from_value(Value::Object(doc)).map_err(|e| {
        err!(
            InvalidInput,
            "runbook {origin}: {e}; see docs/runbooks.md for the format"
        )
    })?;
    runbook.steps = steps;
    runbook.drill = drill;
    super::drill::compile(&mut runbook, &mut map, &mut problems);
    Ok((runbook, map, problems.0))
}

/// `drill:`: its step lists read as `steps:` is (each step at its place, ids unique
/// across the runbook), its canary as a whole.
fn read_drill(node: &Node, map: &mut SourceMap, problems: &mut Problems) -> Option<Drill> {
    let Tree::Map(entries) = &node.tree else {
        problems.add(
            Some(node.at),
            format!("drill: is {}, not a map of sections", node.kind()),
            format!(
                "write `drill:` with the sections {}",
                DRILL_FIELDS.join(", ")
            ),
        );
        return None;
    };
    let mut drill = Drill::default();
    for (k, v) in entries {
        map.places.insert(format!("drill.{}", k.name), v.at);
        let list = |map: &mut SourceMap, problems: &mut Problems| {
            if matches!(v.tree, Tree::Scalar(Value::Null)) {
                Vec::new()
            } else {
                read_step_list(v, &format!("drill.{}", k.name), false, map, problems)
            }
        };
        match k.name.as_str() {
            "setup" => drill.setup = list(map, problems),
            "disaster" => drill.disaster = list(map, problems),
            "recovered" => drill.recovered = list(map, problems),
            "failback" => drill.failback = list(map, problems),
            "teardown" => drill.teardown = list(map, problems),
            "canary" => {
                place_within(map, "drill.canary", v);
                if read_whole::<super::model::Canary>(v, "the drill's canary", problems) {
                    drill.canary = read(v.value()).ok();
                }
            }
            other => problems.add(
                Some(k.at),
                format!("drill: unknown section {other:?}"),
                format!("the sections of a drill are {}", DRILL_FIELDS.join(", ")),
            ),
        }
    }
    Some(drill)
}

/// Each `notify:` entry read as the notifier it declares: its kind, the kind's fields and
/// no other (values may still be `${…}`).
fn read_notifiers(node: &Node, problems: &mut Problems) -> bool {
    let Tree::Seq(entries) = &node.tree else {
        return true;
    };
    let mut ok = true;
    for (i, entry) in entries.iter().enumerate() {
        let what = format!("notifier {}", i + 1);
        if !read_whole::<super::notify::Notifier>(entry, &what, problems) {
            ok = false;
            continue;
        }
        let kind = entry
            .child("kind")
            .and_then(|k| k.value().as_str().map(str::to_owned));
        let fields: &[&str] = match kind.as_deref() {
            Some("slack" | "webhook") => &["url"],
            Some("pagerduty") => &["routing_key", "url"],
            Some("statuspage") => &["page_id", "api_key", "url"],
            _ => &[],
        };
        if let Tree::Map(keys) = &entry.tree {
            for (k, _) in keys {
                let common = ["name", "kind", "severities", "on"].contains(&k.name.as_str());
                if !common && !fields.contains(&k.name.as_str()) {
                    ok = false;
                    problems.add(
                        Some(k.at),
                        format!("{what}: unknown field {:?}", k.name),
                        format!(
                            "a {} notifier's fields are name, kind, severities, on, {}",
                            kind.as_deref().unwrap_or("?"),
                            fields.join(", ")
                        ),
                    );
                }
            }
        }
    }
    ok
}

/// The fields every runbook has: a version, a name that says something, steps.
fn required_fields(top: At, fields: &[(Key, Node)], problems: &mut Problems) {
    let field = |name: &str| fields.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
    if field("steps").is_none() {
        problems.add(Some(top), "the runbook has no steps", "add a `steps:` list");
    }
    if field("version").is_none() {
        problems.add(
            Some(top),
            "the runbook has no version",
            "add `version: 1` (the format's version) as its first line",
        );
    }
    match field("name") {
        None => problems.add(
            Some(top),
            "the runbook has no name",
            "add `name: <what it does>` (it is also the lock name)",
        ),
        Some(n) if n.value().as_str().is_some_and(|s| s.trim().is_empty()) => problems.add(
            Some(n.at),
            "the runbook's name is empty",
            "give it a name: it says what the runbook does and is its lock name",
        ),
        Some(_) => {}
    }
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
        place_within(map, &format!("{section}.{}", k.name), v);
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
    read_step_list(node, "steps", true, map, problems)
}

/// A list of steps under `section` (`steps`, `drill.setup`, …).
fn read_step_list(
    node: &Node,
    section: &str,
    needed: bool,
    map: &mut SourceMap,
    problems: &mut Problems,
) -> Vec<Step> {
    let Tree::Seq(list) = &node.tree else {
        problems.add(
            Some(node.at),
            format!("{section}: is {}, not a list", node.kind()),
            "write each step as a list item: `- id: …` then `action: …`",
        );
        return Vec::new();
    };
    if list.is_empty() && needed {
        problems.add(
            Some(node.at),
            "steps: is empty",
            "add the steps the runbook runs",
        );
    }
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
        if !seen.insert(id.clone()) || map.places.contains_key(&format!("steps.{id}")) {
            problems.add(
                Some(s.at),
                format!("step id {id:?} is used twice"),
                "give each step its own id",
            );
        }
        if id.contains('/') {
            problems.add(
                Some(s.at),
                format!("step id {id:?} has a '/', which is kept for the steps `uses:` brings in (shop/stop is step stop of step shop)"),
                "name it without '/' (e.g. with '-')",
            );
        }
        if let Some(step) = read_step(&id, s, fields, map, problems) {
            steps.push(step);
        }
    }
    steps
}

/// One step, each field read on its own; what could be read of a step with a bad field
/// (its id counts for the others), its id in `map.partial`.
fn read_step(
    id: &str,
    s: &Node,
    fields: &[(Key, Node)],
    map: &mut SourceMap,
    problems: &mut Problems,
) -> Option<Step> {
    map.places.insert(format!("steps.{id}"), s.at);
    let what = format!("step {id:?}");
    let base: serde_json::Map<String, Value> =
        std::iter::once(("id".to_owned(), Value::String(id.to_owned()))).collect();
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
        if k.name == "with" && matches!(v.tree, Tree::Scalar(Value::Null)) {
            // `with:` and nothing under it: no parameters.
            continue;
        }
        if k.name == "with" {
            place_within(map, &format!("steps.{id}.with"), v);
        }
        if k.name != "id" && !field_reads_as::<Step>(&base, &k.name, v, &what, problems) {
            ok = false;
            continue;
        }
        obj.insert(k.name.clone(), v.value());
    }
    let has_action = obj.contains_key("action") || obj.contains_key("uses");
    if ok && !has_action {
        problems.add(
            Some(s.at),
            format!("step {id:?} has no action"),
            "give it an `action:` (drkit runbook actions lists them) or `uses: other-runbook.yaml`",
        );
    }
    if !(ok && has_action) {
        // What could be read of it, so that its id counts for the other steps.
        map.partial.insert(id.to_owned());
        obj.remove("uses");
    }
    match read::<Step>(Value::Object(obj)) {
        Ok(step) => Some(step),
        Err(e) => {
            problems.serde(s, 0, &what, &e);
            None
        }
    }
}

/// Records the place of every value under `node` (`steps.x.with.to.weights`,
/// `steps.x.with.argv.0`), so that a refused parameter is pointed at exactly.
fn place_within(map: &mut SourceMap, prefix: &str, node: &Node) {
    match &node.tree {
        Tree::Map(entries) => {
            for (k, v) in entries {
                let path = format!("{prefix}.{}", k.name);
                map.places.insert(path.clone(), v.at);
                place_within(map, &path, v);
            }
        }
        Tree::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                let path = format!("{prefix}.{i}");
                map.places.insert(path.clone(), v.at);
                place_within(map, &path, v);
            }
        }
        Tree::Scalar(_) => {}
    }
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

#[cfg(test)]
mod tests {
    use super::parse_yaml;

    #[test]
    fn only_true_and_false_are_booleans() {
        // YAML 1.1's yes/no/on/off/y/n are text: a variable's default `no` stays "no".
        let yaml = "version: 1\nname: n\nvars:\n  answer: { default: no }\nsteps:\n  - id: a\n    action: wait\n    with: { for: 1s }\n";
        let (rb, _) = parse_yaml(yaml, "yn.yaml").unwrap();
        assert_eq!(rb.name, "n");
        assert_eq!(rb.vars["answer"].default, Some(serde_json::json!("no")));
        let e = parse_yaml(
            &yaml.replace("    with:", "    always: yes\n    with:"),
            "yn.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "yn.yaml:8:13: step \"a\": always: expected a boolean, found string \"yes\""
            ),
            "{e}"
        );
    }
}
