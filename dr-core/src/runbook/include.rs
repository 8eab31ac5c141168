//! `uses:` — a step that runs another runbook's steps in its place, so procedures shared
//! by several plans (stop the app, restore the database, start it) are written once.
//!
//! The included steps get ids `<step>/<id>`; those with no `needs` wait for the using
//! step's `needs`; steps that need the using step wait for all the included ones. Its
//! `with:` gives the included runbook's variables (defaults apply); its targets join the
//! runbook's (the same name twice must be the same target).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::model::{Runbook, Step};
use super::parse::{parse_yaml_lenient, Diagnostic, SourceMap};
use crate::Result;

const MAX_DEPTH: usize = 8;

/// Reads the runbook file at `path` with every `uses:` expanded (paths relative to the
/// file). Problems of the format and of the includes are reported at once, each with its
/// file, line and column; the actions are checked later, by the engine that runs it.
pub fn read_file(path: &Path) -> Result<(Runbook, SourceMap, Vec<Diagnostic>)> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::Error::io(format!("reading runbook {origin}"), e))?;
    let (mut rb, mut map, mut problems) = parse_yaml_lenient(&text, &origin)?;
    expand(&mut rb, &mut map, path, &mut problems)?;
    Ok((rb, map, problems))
}

/// Expands the `uses:` of a runbook built in code (a dict, a struct), with paths
/// relative to the directory `base`.
pub fn expand_uses(rb: &mut Runbook, map: &mut SourceMap, base: &Path) -> Result<()> {
    let mut problems = Vec::new();
    // The origin is a file name inside `base`, never read itself.
    expand(rb, map, &base.join(&map.origin), &mut problems)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(super::parse::report(&map.origin, &problems))
    }
}

/// Expands every `uses:` of `rb` (read from `origin`), reporting problems into `problems`.
fn expand(
    rb: &mut Runbook,
    map: &mut SourceMap,
    origin: &Path,
    problems: &mut Vec<Diagnostic>,
) -> Result<()> {
    let mut seen = BTreeSet::new();
    seen.insert(origin.to_path_buf());
    expand_in(rb, map, origin, problems, &mut seen, 0)
}

#[allow(clippy::too_many_lines)] // read, bind, merge targets, rename, rewire: one include at a time
fn expand_in(
    rb: &mut Runbook,
    map: &mut SourceMap,
    origin: &Path,
    problems: &mut Vec<Diagnostic>,
    seen: &mut BTreeSet<PathBuf>,
    depth: usize,
) -> Result<()> {
    let base = origin.parent().unwrap_or(Path::new("."));
    // Problems of a `uses:` inside an included file are placed in that file.
    let here = (depth > 0).then(|| origin.display().to_string());
    let mut out: Vec<Step> = Vec::new();
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for step in std::mem::take(&mut rb.steps) {
        let Some(uses) = step.uses.clone() else {
            out.push(step);
            continue;
        };
        let at = map.at(&format!("steps.{}.uses", step.id));
        let path = base.join(&uses);
        if depth >= MAX_DEPTH || seen.contains(&path) {
            add(
                problems,
                here.as_ref(),
                at,
                format!(
                    "step {:?} uses {uses}, which uses itself (directly or not)",
                    step.id
                ),
                "break the cycle of uses:",
            );
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                add(
                    problems,
                    here.as_ref(),
                    at,
                    format!(
                        "step {:?} uses {}, which cannot be read: {e}",
                        step.id,
                        path.display()
                    ),
                    "give a path relative to this runbook",
                );
                continue;
            }
        };
        let file = path.display().to_string();
        let (mut child, mut child_map, child_problems) = parse_yaml_lenient(&text, &file)?;
        problems.extend(child_problems.into_iter().map(|d| Diagnostic {
            file: Some(d.file.unwrap_or_else(|| file.clone())),
            ..d
        }));
        if child.drill.is_some() {
            add(
                problems,
                here.as_ref(),
                at,
                format!("step {:?} uses {uses}, which is a drill", step.id),
                "use the recovery runbook the drill tests, not the drill",
            );
            continue;
        }
        seen.insert(path.clone());
        expand_in(&mut child, &mut child_map, &path, problems, seen, depth + 1)?;
        seen.remove(&path);
        // Variables of the included runbook: given by `with`, else their default.
        let given = step.with.as_object().cloned().unwrap_or_default();
        for k in given.keys() {
            if !child.vars.contains_key(k) {
                add(
                    problems,
                    here.as_ref(),
                    at,
                    format!(
                        "step {:?} gives {k:?} to {uses}, which declares no such variable",
                        step.id
                    ),
                    &format!(
                        "its variables are {}",
                        child.vars.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
        let mut bindings = serde_json::Map::new();
        for (k, spec) in &child.vars {
            match given.get(k).cloned().or_else(|| spec.default.clone()) {
                Some(v) => {
                    bindings.insert(k.clone(), v);
                }
                None => add(
                    problems,
                    here.as_ref(),
                    at,
                    format!("step {:?} uses {uses} without its variable {k:?}", step.id),
                    &format!("give it under with: ({k}: …)"),
                ),
            }
        }
        for (name, mut t) in child.targets {
            // A target's fields read the included runbook's variables: give them theirs.
            t.fields = match rewrite(&Value::Object(t.fields), &bindings, "", &BTreeSet::new()) {
                Value::Object(m) => m,
                _ => unreachable!("an object rewrites to an object"),
            };
            match rb.targets.get(&name) {
                Some(mine) if *mine != t => add(
                    problems,
                    here.as_ref(),
                    at,
                    format!("{uses} declares target {name:?} differently from this runbook"),
                    "rename one of them",
                ),
                _ => {
                    rb.targets.insert(name, t);
                }
            }
        }
        let prefix = format!("{}/", step.id);
        let ids: BTreeSet<String> = child.steps.iter().map(|c| c.id.clone()).collect();
        let needed: BTreeSet<String> = child.steps.iter().flat_map(|c| c.needs.clone()).collect();
        let mut leaves = Vec::new();
        for mut c in child.steps {
            // Problems found later in an included step point into its own file.
            let key = format!("steps.{}", c.id);
            let renamed = format!("steps.{prefix}{}", c.id);
            for (k, a) in &child_map.places {
                if let Some(rest) = k
                    .strip_prefix(&key)
                    .filter(|r| r.is_empty() || r.starts_with('.'))
                {
                    map.places.insert(format!("{renamed}{rest}"), *a);
                }
            }
            for (k, f) in &child_map.files {
                if let Some(rest) = k
                    .strip_prefix(&key)
                    .filter(|r| r.is_empty() || r.starts_with('.') || r.starts_with('/'))
                {
                    map.files.insert(format!("{renamed}{rest}"), f.clone());
                }
            }
            map.files
                .entry(renamed)
                .or_insert_with(|| child_map.file_of(&key).unwrap_or_else(|| file.clone()));
            // An `always` step runs after every other one: a step that needs the using
            // step waits for the rest, not for it.
            if !needed.contains(&c.id) && !c.always {
                leaves.push(format!("{prefix}{}", c.id));
            }
            c.needs = if c.needs.is_empty() {
                step.needs.clone()
            } else {
                c.needs.iter().map(|n| format!("{prefix}{n}")).collect()
            };
            c.id = format!("{prefix}{}", c.id);
            c.phase = step.phase;
            c.with = rewrite(&c.with, &bindings, &prefix, &ids);
            if let Some(comp) = &mut c.compensate {
                comp.with = rewrite(&comp.with, &bindings, &prefix, &ids);
            }
            let own = c
                .when
                .as_ref()
                .map(|w| rewrite_text(w, &bindings, &prefix, &ids, true));
            // The using step's `if:` (in this runbook's names) holds for every step it
            // brings in.
            c.when = match (&step.when, own) {
                (Some(outer), Some(own)) => Some(format!("({outer}) and ({own})")),
                (Some(outer), None) => Some(outer.clone()),
                (None, own) => own,
            };
            if let Some(g) = &mut c.guard {
                g.step = format!("{prefix}{}", g.step);
            }
            out.push(c);
        }
        groups.push((step.id.clone(), leaves));
    }
    // Steps that need an including step wait for everything it included.
    for s in &mut out {
        let mut needs = Vec::new();
        for n in std::mem::take(&mut s.needs) {
            match groups.iter().find(|(g, _)| *g == n) {
                Some((_, leaves)) => needs.extend(leaves.iter().cloned()),
                None => needs.push(n),
            }
        }
        s.needs = needs;
    }
    rb.steps = out;
    Ok(())
}

fn add(
    problems: &mut Vec<Diagnostic>,
    file: Option<&String>,
    at: Option<super::parse::At>,
    message: String,
    fix: &str,
) {
    problems.push(Diagnostic {
        at,
        file: file.cloned(),
        message,
        fix: fix.to_owned(),
    });
}

fn rewrite(
    v: &Value,
    bindings: &serde_json::Map<String, Value>,
    prefix: &str,
    ids: &BTreeSet<String>,
) -> Value {
    match v {
        Value::String(s) => {
            let t = s.trim();
            if let Some(name) = t.strip_prefix("${vars.").and_then(|r| r.strip_suffix('}')) {
                if let Some(b) = bindings.get(name.trim()) {
                    return b.clone();
                }
            }
            Value::String(rewrite_text(s, bindings, prefix, ids, false))
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| rewrite(x, bindings, prefix, ids))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), rewrite(x, bindings, prefix, ids)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Rewrites `${vars.X}` to the binding's text and `${steps.Y.` to the prefixed id; in an
/// `if:` expression (`bare`), `vars.X` becomes the binding as an expression (a binding
/// that is one reference, `${vars.P}` of the including runbook, becomes `vars.P`; any
/// other value a literal) and `steps.Y.` the prefixed id. One pass: a binding's own text
/// is never rewritten again.
fn rewrite_text(
    s: &str,
    bindings: &serde_json::Map<String, Value>,
    prefix: &str,
    ids: &BTreeSet<String>,
    bare: bool,
) -> String {
    let open = if bare { "vars." } else { "${vars." };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        let name_at = i + open.len();
        let len = rest[name_at..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - name_at);
        let name = &rest[name_at..name_at + len];
        let word_start = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let closed = bare || rest[name_at + len..].starts_with('}');
        match bindings.get(name) {
            Some(v) if word_start && closed => {
                out.push_str(&rest[..i]);
                if bare {
                    out.push_str(&as_expression(v));
                    rest = &rest[name_at + len..];
                } else {
                    out.push_str(&match v {
                        Value::String(t) => t.clone(),
                        other => other.to_string(),
                    });
                    rest = &rest[name_at + len + 1..];
                }
            }
            _ => {
                out.push_str(&rest[..name_at]);
                rest = &rest[name_at..];
            }
        }
    }
    out.push_str(rest);
    for id in ids {
        if bare {
            out = out.replace(
                &format!("steps.{id}."),
                &format!("steps[\"{prefix}{id}\"]."),
            );
        } else {
            out = out.replace(
                &format!("${{steps.{id}."),
                &format!("${{steps.{prefix}{id}."),
            );
        }
    }
    out
}

/// A binding as an `if:` expression: one reference of the including runbook
/// (`${vars.P}`, `${steps.S.outputs.K}`) is that name; anything else a literal.
fn as_expression(v: &Value) -> String {
    if let Some(inner) = v
        .as_str()
        .map(str::trim)
        .and_then(|t| t.strip_prefix("${"))
        .and_then(|t| t.strip_suffix('}'))
        .filter(|t| !t.contains("${") && !t.contains('}') && !t.contains('|'))
    {
        let inner = inner.trim();
        if inner.starts_with("vars.") || inner.starts_with("steps.") {
            return inner.to_owned();
        }
    }
    serde_json::to_string(v).unwrap_or_default()
}
