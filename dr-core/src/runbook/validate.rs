//! Every check that needs no live system: actions and parameters, references to
//! variables and outputs, the dependency graph, guards and `always` steps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::action::Registry;
use super::expr;
use super::model::{Runbook, Step};
use super::parse::{Diagnostic, SourceMap};

/// What checking a runbook file found (`drkit runbook check`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// Whether no problem was found.
    pub ok: bool,
    /// The file checked.
    pub file: String,
    /// The runbook's name, as far as it could be read.
    pub runbook: String,
    /// Its steps, `uses:` expanded.
    pub steps: usize,
    /// Every problem, in reading order (empty: the runbook is good to plan).
    pub problems: Vec<Diagnostic>,
}

/// Reads the runbook file at `path` (with what it `uses:`) and checks it against
/// `registry` without touching a live system: the format, actions and their parameters,
/// targets, references, guards and the graph of `needs`. Fails only when the file cannot
/// be read or is not YAML; every other problem is in the result.
pub fn check_file(
    path: &std::path::Path,
    registry: &Registry,
) -> crate::Result<(Runbook, SourceMap, Check)> {
    let (rb, map, mut problems) = super::include::read_file(path)?;
    problems.extend(validate(&rb, &map, registry));
    super::parse::sort(&mut problems);
    let check = Check {
        ok: problems.is_empty(),
        file: map.origin.clone(),
        runbook: rb.name.clone(),
        steps: rb.steps.len(),
        problems,
    };
    Ok((rb, map, check))
}

/// The value a plan-time check sees for an output of `step`.
#[must_use]
pub fn known_after(step: &str) -> Value {
    Value::String(format!("<known after {step}>"))
}

/// The value a check without the run's variables sees for variable `name`, which has no
/// default (its value comes from `--var` or the environment when the run starts).
#[must_use]
pub fn known_at_start(name: &str) -> Value {
    Value::String(format!("<known when the run starts: vars.{name}>"))
}

/// Whether `value` holds a value a check cannot know yet ([`known_after`],
/// [`known_at_start`]): its type is checked when the run resolves it.
#[must_use]
pub fn is_unknown(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("<known "),
        Value::Array(a) => a.iter().any(is_unknown),
        Value::Object(m) => m.values().any(is_unknown),
        _ => false,
    }
}

/// Steps that must finish before `id`, directly or not.
fn ancestors(steps: &HashMap<&str, &Step>, id: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![id.to_owned()];
    while let Some(s) = todo.pop() {
        if let Some(step) = steps.get(s.as_str()) {
            for n in &step.needs {
                if out.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
    }
    out
}

/// A cycle through the `needs` graph, named step by step, if there is one.
#[must_use]
pub fn find_cycle(rb: &Runbook) -> Option<Vec<String>> {
    fn visit(
        rb: &Runbook,
        id: &str,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(id) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == id).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(id.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(id.to_owned(), 1);
        path.push(id.to_owned());
        if let Some(step) = rb.step(id) {
            for n in &step.needs {
                if let Some(c) = visit(rb, n, state, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        state.insert(id.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for s in &rb.steps {
        if let Some(c) = visit(rb, &s.id, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// Every problem `rb` has that can be found without touching a live system.
#[must_use]
pub fn validate(rb: &Runbook, map: &SourceMap, registry: &Registry) -> Vec<Diagnostic> {
    validate_with_vars(rb, map, registry, None)
}

/// [`validate`], with the values the variables will have in a run (`--var`, `env:`):
/// a value that does not fit where it is used is named before anything runs.
#[must_use]
#[allow(clippy::too_many_lines)] // one pass over the steps, one check after another
pub fn validate_with_vars(
    rb: &Runbook,
    map: &SourceMap,
    registry: &Registry,
    vars: Option<&serde_json::Map<String, Value>>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if map.unreadable {
        return out;
    }
    let mut add = |path: &str, message: String, fix: String| {
        out.push(map.diagnostic(path, message, fix));
    };
    let ids: BTreeSet<&str> = rb.steps.iter().map(|s| s.id.as_str()).collect();
    let by_id: HashMap<&str, &Step> = rb.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    // A runbook without a name is reported as such when it is read.
    let unnamed = rb.lock.is_none() && rb.name.trim().is_empty();
    if let Err(e) =
        crate::lock::check_name(rb.lock_name()).or_else(|e| if unnamed { Ok(()) } else { Err(e) })
    {
        add(
            if rb.lock.is_some() { "lock" } else { "name" },
            e.message().to_owned(),
            "name the lock with `lock:` (runs with the same lock never run at once)".into(),
        );
    }
    out.extend(super::drill::check(rb, map));
    let mut add = |path: &str, message: String, fix: String| {
        out.push(map.diagnostic(path, message, fix));
    };
    let start = scope_with_vars(rb, vars);
    for (name, t) in &rb.targets {
        let Some(kind) = registry.kind(&t.kind) else {
            add(
                &format!("targets.{name}"),
                format!("target {name:?} has an unknown kind {:?}", t.kind),
                format!("the kinds are {}", registry.kinds().join(", ")),
            );
            continue;
        };
        // Fields as the run will have them (a variable without a default: not known yet).
        if let Ok(Value::Object(fields)) =
            expr::resolve(&Value::Object(t.fields.clone()), &start, None)
        {
            for e in kind.check(&fields) {
                let place = format!("targets.{name}.{}", e.place());
                add(
                    &place,
                    format!("target {name:?} ({}): {e}", t.kind),
                    format!("see its fields with `drkit runbook actions {}`", t.kind),
                );
            }
        }
    }
    let mut names = BTreeSet::new();
    for n in &rb.notify {
        if let Some(name) = n.get("name").and_then(Value::as_str) {
            if !names.insert(name) {
                add(
                    "notify",
                    format!("two notifiers are named {name:?}"),
                    "give each notifier its own name (journals and warnings name them by it)"
                        .into(),
                );
            }
        }
    }
    if rb.version != 1 {
        add(
            "version",
            format!("version {} is not known", rb.version),
            "use version: 1".into(),
        );
    }
    if rb.concurrency == 0 {
        add(
            "concurrency",
            "concurrency 0 would run no step".into(),
            "give at least 1 (the default is 4)".into(),
        );
    }
    if rb.timeout.is_some_and(|t| t.is_zero()) {
        add(
            "timeout",
            "timeout: a deadline of 0s stops the run before its first step".into(),
            "give a deadline above 0, or leave timeout: out for none".into(),
        );
    }
    for step in rb
        .steps
        .iter()
        .filter(|s| s.timeout.is_some_and(|t| t.is_zero()))
    {
        add(
            &format!("steps.{}.timeout", step.id),
            format!(
                "step {:?}: a timeout of 0s fails every attempt at once",
                step.id
            ),
            "give a timeout above 0, or leave timeout: out for none".into(),
        );
    }
    for (name, v) in &rb.vars {
        if let Some(default) = &v.default {
            if let Err(e) = v.typed(name, default.clone()) {
                add(
                    &format!("vars.{name}"),
                    e.message().replacen(
                        &format!("variable {name:?}: "),
                        &format!("variable {name:?}: its default "),
                        1,
                    ),
                    "give a default of the variable's type, or change its type".into(),
                );
            }
        }
    }
    // Ids are unique also in runbooks built as data (the YAML reader says so itself).
    let mut seen = BTreeSet::new();
    for step in &rb.steps {
        if !seen.insert(step.id.as_str()) && map.places.is_empty() {
            add(
                &format!("steps.{}", step.id),
                format!("step id {:?} is used twice", step.id),
                "give each step its own id".into(),
            );
        }
    }
    // Steps that might not run: an `if:` or a guard, or after one that might not.
    let conditional: BTreeSet<&str> = rb
        .steps
        .iter()
        .filter(|s| s.when.is_some() || s.guard.is_some())
        .map(|s| s.id.as_str())
        .collect();
    for step in &rb.steps {
        let here = format!("steps.{}", step.id);
        // Computed when a reference, a guard or `always` needs it (a long chain of
        // steps has long ancestries).
        let before_cell = std::cell::OnceCell::new();
        let before = || before_cell.get_or_init(|| ancestors(&by_id, &step.id));
        for n in &step.needs {
            if !ids.contains(n.as_str()) {
                add(
                    &format!("{here}.needs"),
                    format!("step {:?} needs {n:?}, which is no step", step.id),
                    format!(
                        "the steps are {}",
                        ids.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                );
            } else if !step.always && by_id.get(n.as_str()).is_some_and(|o| o.always) {
                add(
                    &format!("{here}.needs"),
                    format!(
                        "step {:?} needs {n:?}, which runs `always` (after every other step): it would wait forever",
                        step.id
                    ),
                    "make it `always` too, or drop the need".to_owned(),
                );
            }
        }
        // A step whose fields could not all be read was reported as such: its id counts,
        // the rest of it is not guessed at.
        if map.partial.contains(&step.id) {
            continue;
        }
        for (place, with) in std::iter::once((format!("{here}.with"), &step.with)).chain(
            step.compensate
                .iter()
                .map(|c| (format!("{here}.compensate"), &c.with)),
        ) {
            if !with.is_object() {
                add(
                    &place,
                    format!("step {:?}: with: is not a map of parameters", step.id),
                    "write `with: { name: value, … }`".into(),
                );
            }
        }
        let Some(action) = registry.get(&step.action) else {
            let near = registry.closest(&step.action);
            add(
                &format!("{here}.action"),
                format!(
                    "step {:?} uses an unknown action {:?}",
                    step.id, step.action
                ),
                if near.is_empty() {
                    "list the actions with `drkit runbook actions`".to_owned()
                } else {
                    format!("did you mean {}?", near.join(" or "))
                },
            );
            continue;
        };
        if step.continue_on_error && step.on_failure != super::model::OnFailure::Abort {
            add(
                &format!("{here}.continue_on_error"),
                format!("step {:?} has both continue_on_error and on_failure: a failure of it is a branch, so on_failure never applies", step.id),
                "keep one: continue_on_error: true (the run goes on, its dependents run), or on_failure".into(),
            );
        }
        if step.action == "notify" {
            if let Some((place, message, fix)) = unheard(rb, step, map.at("notify").is_some()) {
                add(&format!("{here}.{place}"), message, fix);
            }
        }
        // References in `with`, the compensation and `if:`, each with where it is.
        let mut refs: Vec<(String, String, String)> = expr::references(&step.with)
            .into_iter()
            .map(|r| (format!("{here}.with"), format!("${{{r}}}"), r))
            .collect();
        if step.action == "assert" {
            // `that:` is an expression over the run's names even without `${…}`.
            if let Some(that) = step
                .with
                .get("that")
                .and_then(Value::as_str)
                .filter(|t| !t.contains("${"))
            {
                refs.extend(
                    expr::condition_paths(that)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| p.starts_with("steps."))
                        .map(|p| (format!("{here}.with"), format!("that: {p}"), p)),
                );
            }
        }
        if let Some(c) = &step.compensate {
            refs.extend(
                expr::references(&c.with)
                    .into_iter()
                    .map(|r| (format!("{here}.compensate"), format!("${{{r}}}"), r)),
            );
            if registry.get(&c.action).is_none() {
                add(
                    &format!("{here}.compensate"),
                    format!(
                        "step {:?} compensates with an unknown action {:?}",
                        step.id, c.action
                    ),
                    "list the actions with `drkit runbook actions`".into(),
                );
            }
        }
        if let Some(cond) = &step.when {
            match expr::condition_paths(cond) {
                Err(e) => add(
                    &format!("{here}.if"),
                    format!("step {:?}: {}", step.id, e.message()),
                    "write a minijinja expression, e.g. steps.lag.outputs.seconds < 300".into(),
                ),
                Ok(paths) => {
                    for path in paths {
                        let top = path.split('.').next().unwrap_or_default();
                        if ["vars", "steps", "run", "objectives", "now"].contains(&top) {
                            refs.push((format!("{here}.if"), format!("if: {path}"), path.clone()));
                        } else {
                            add(
                                &format!("{here}.if"),
                                format!(
                                    "step {:?}: if: uses {top:?}, which names nothing",
                                    step.id
                                ),
                                "use vars, steps, run or objectives".into(),
                            );
                        }
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        refs.retain(|(place, shown, _)| seen.insert((place.clone(), shown.clone())));
        for (place, shown, r) in &refs {
            let parts: Vec<&str> = r.split('.').collect();
            let in_compensation = place.ends_with(".compensate");
            match parts.as_slice() {
                ["vars", name, ..] if !rb.vars.contains_key(*name) => add(
                    place,
                    format!("step {:?} uses {shown}, but there is no variable {name:?}", step.id),
                    if rb.vars.is_empty() {
                        "declare it under vars: (none is declared yet)".to_owned()
                    } else {
                        format!("declare it under vars: (declared: {})", rb.vars.keys().cloned().collect::<Vec<_>>().join(", "))
                    },
                ),
                ["vars", _, ..] | ["now"] | ["run", "id" | "mode" | "outcome" | "started"] | ["objectives", "rto" | "rpo"] => {}
                ["steps", other, rest @ ..] if matches!(rest, ["state" | "started" | "ended" | "seconds"] | ["outputs", ..]) => match rb.step(other) {
                    None => add(place, format!("step {:?} uses {shown}, but there is no step {other:?}", step.id), format!("the steps are {}", ids.iter().copied().collect::<Vec<_>>().join(", "))),
                    Some(o) => {
                        // An always-step runs after every other step: what did not run reads as null.
                        if *other != step.id && !step.always && !before().contains(*other) {
                            add(place, format!("step {:?} uses {shown}, but {other:?} may not have run before it", step.id), format!("add {other:?} to its needs"));
                        } else if *other == step.id && !in_compensation {
                            add(place, format!("step {:?} uses its own output {shown}", step.id), "only its compensation can use its outputs".into());
                        }
                        if let (["outputs", key, ..], Some(a)) = (rest, registry.get(&o.action)) {
                            let spec = a.spec();
                            let outs = spec.outputs;
                            if !spec.open_outputs && !map.partial.contains(&o.id) && !outs.iter().any(|f| f.name == *key) {
                                add(place, format!("step {:?} uses {shown}, but {} has no output {key:?}", step.id, o.action), format!("its outputs are {}", if outs.is_empty() { "none".to_owned() } else { outs.iter().map(|f| f.name.clone()).collect::<Vec<_>>().join(", ") }));
                            }
                        }
                        if let Some(a) = registry.get(&o.action) {
                            // The whole map, a key read by subscript or filter, or a secret field.
                            let secret = match rest {
                                ["outputs"] => !a.secret_outputs().is_empty(),
                                ["outputs", key, ..] => a.secret_outputs().contains(key),
                                _ => false,
                            };
                            if secret {
                                if let Some((why, fix)) = secret_misused(step, registry, place, r) {
                                    add(place, format!("step {:?} uses {shown}, a secret, {why}", step.id), fix);
                                }
                            }
                        }
                    }
                },
                _ => add(place, format!("step {:?} uses {shown}, which names nothing", step.id), "references are vars.<name>, steps.<id>.outputs.<key>, steps.<id>.state|started|ended|seconds, objectives.rto|rpo, run.id|mode|outcome|started, now".into()),
            }
        }
        if let Some(g) = &step.guard {
            if !ids.contains(g.step.as_str()) {
                add(
                    &format!("{here}.guard"),
                    format!(
                        "step {:?} is guarded by {:?}, which is no step",
                        step.id, g.step
                    ),
                    String::new(),
                );
            } else if !before().contains(&g.step) {
                add(
                    &format!("{here}.guard"),
                    format!(
                        "step {:?} is guarded by {:?}, which is not among the steps it needs",
                        step.id, g.step
                    ),
                    format!("add {:?} to its needs", g.step),
                );
            }
        }
        // A drill's canary and teardown steps are ordered after everything by the drill
        // itself, not by needs someone wrote.
        let ordered_by_drill = matches!(
            step.phase,
            Some(super::model::Phase::Canary | super::model::Phase::Teardown)
        );
        if step.always && !ordered_by_drill {
            let mut maybe: Vec<&str> = before()
                .iter()
                .map(String::as_str)
                .filter(|b| {
                    conditional.contains(b)
                        || ancestors(&by_id, b)
                            .iter()
                            .any(|a| conditional.contains(a.as_str()))
                })
                .collect();
            maybe.sort_unstable();
            if !maybe.is_empty() {
                add(&format!("{here}.needs"), format!("always-step {:?} needs {}, which may be skipped (an if: or a guard on the way)", step.id, maybe.join(", ")), "an always-step runs after every other step anyway: drop its needs, and read what may be missing as null".into());
            }
        }
        let placeholder = |p: &str| {
            let id = p
                .strip_prefix("steps.")
                .and_then(|r| r.split('.').next())
                .unwrap_or("an earlier step");
            known_after(id)
        };
        let scope = scope_with_vars(rb, vars);
        match expr::resolve(&step.with, &scope, Some(&placeholder)) {
            Ok(with) => {
                // A parameter whose value is not known yet is checked when the run has it.
                for e in action.check(&with) {
                    let place = format!("{here}.with.{}", e.place());
                    let what = if e.field.is_empty() {
                        String::new()
                    } else {
                        format!("with.{}: ", e.field)
                    };
                    add(
                        &place,
                        format!("step {:?}: {what}{}", step.id, e.message),
                        format!("see `drkit runbook actions {}`", step.action),
                    );
                }
                // A drill's canary and disaster steps have their targets named by
                // `drill::check`, in the drill's words.
                let drill_named = step.phase.is_some()
                    && (step.action.starts_with("canary.")
                        || step.action.starts_with(super::drill::DISASTER_PREFIX));
                for t in action.targets(&with) {
                    if !drill_named && !t.starts_with('<') && !rb.targets.contains_key(&t) {
                        add(
                            &format!("{here}.with"),
                            format!(
                                "step {:?} acts on target {t:?}, which is not declared",
                                step.id
                            ),
                            if rb.targets.is_empty() {
                                "declare it under targets: (none is declared yet)".to_owned()
                            } else {
                                format!(
                                    "declare it under targets: (declared: {})",
                                    rb.targets.keys().cloned().collect::<Vec<_>>().join(", ")
                                )
                            },
                        );
                    }
                    // A target of a kind that is not what the action acts on.
                    let declared = rb.targets.get(&t).and_then(|spec| {
                        Some((spec.kind.as_str(), registry.kind(&spec.kind)?.provides()?))
                    });
                    if let (Some(need), Some((kind, is))) = (action.target_is(), declared) {
                        if need != is {
                            let fitting: Vec<String> = rb
                                .targets
                                .iter()
                                .filter(|(_, spec)| {
                                    registry.kind(&spec.kind).and_then(|k| k.provides())
                                        == Some(need)
                                })
                                .map(|(name, _)| name.clone())
                                .collect();
                            add(
                                &format!("{here}.with.target"),
                                format!(
                                    "step {:?}: {} acts on {need}, but target {t:?} (kind {kind}) is {is}",
                                    step.id, step.action
                                ),
                                if fitting.is_empty() {
                                    format!("declare a target that is {need}")
                                } else {
                                    format!("use one of {}", fitting.join(", "))
                                },
                            );
                        }
                    }
                }
            }
            Err(e) => add(
                &format!("{here}.with"),
                format!("step {:?}: {}", step.id, e.message()),
                String::new(),
            ),
        }
    }
    if let Some(cycle) = find_cycle(rb) {
        out.push(map.diagnostic(
            &format!("steps.{}.needs", cycle[0]),
            format!("the steps' needs form a cycle: {}", cycle.join(" -> ")),
            "remove one of those needs".into(),
        ));
    }
    super::parse::sort(&mut out);
    out
}

/// A `notify` step no notifier of the runbook takes (by its severity): where, why and
/// the fix. A severity known only at run time is left to the run.
fn unheard(
    rb: &Runbook,
    step: &Step,
    notify_written: bool,
) -> Option<(&'static str, String, String)> {
    let severity = match step.with.get("severity") {
        None | Some(Value::Null) => serde_json::to_value(step.severity).unwrap_or_default(),
        Some(Value::String(s)) if s.contains("${") => return None,
        Some(v) => v.clone(),
    };
    let takes = |n: &Value| match n.get("severities").and_then(Value::as_array) {
        None => true,
        Some(list) => list.is_empty() || list.contains(&severity),
    };
    // A `notify:` section written but unreadable was reported as such.
    if rb.notify.iter().any(takes) || (rb.notify.is_empty() && notify_written) {
        return None;
    }
    let shown = severity.as_str().unwrap_or("?").to_owned();
    Some(if rb.notify.is_empty() {
        (
            "action",
            format!(
                "step {:?} notifies, but the runbook has no notifier: its message would reach no one",
                step.id
            ),
            "declare one under notify: (slack, webhook, pagerduty or statuspage)".to_owned(),
        )
    } else {
        (
            "with.severity",
            format!(
                "step {:?} notifies with severity {shown}, which none of the runbook's notifiers takes",
                step.id
            ),
            format!("add {shown} to a notifier's severities:, or give the step another severity"),
        )
    })
}

/// The scope a check sees: variables as their defaults (or a placeholder), no outputs.
#[must_use]
pub fn plan_scope(rb: &Runbook) -> Value {
    scope_with_vars(rb, None)
}

/// [`plan_scope`], with the variables' values when they are known.
fn scope_with_vars(rb: &Runbook, given: Option<&serde_json::Map<String, Value>>) -> Value {
    let vars: serde_json::Map<String, Value> = rb
        .vars
        .iter()
        .map(|(k, v)| {
            let value = given
                .and_then(|g| g.get(k).cloned())
                .or_else(|| v.default.clone())
                .unwrap_or_else(|| known_at_start(k));
            (k.clone(), value)
        })
        .collect();
    serde_json::json!({
        "vars": vars,
        "steps": {},
        "objectives": {
            "rto": rb.objectives.rto.map(crate::duration::format),
            "rpo": rb.objectives.rpo.map(crate::duration::format),
        },
        "now": jiff::Timestamp::now().to_string(),
        "run": {
            "id": "<run id>",
            "mode": "planned",
            "outcome": "<outcome>",
            "started": "<known when the run starts: run.started>",
        },
    })
}

/// Why step `step` may not use the secret output `r` where it does (`place`): a secret
/// is the input of a parameter that takes one (`env:` of `exec`, `set:` of
/// `k8s.secret_set`, `headers:` of `http.check`: `drkit runbook actions` names them), not
/// a condition, a message, a label or a command line.
fn secret_misused(
    step: &Step,
    registry: &Registry,
    place: &str,
    r: &str,
) -> Option<(String, String)> {
    if place.rsplit('.').next() == Some("if") {
        return Some((
            "in its if: (what a condition decides is journaled)".into(),
            "decide on something that is not secret, or check the secret in the step that uses it"
                .into(),
        ));
    }
    if place.rsplit('.').next() == Some("compensate") {
        return Some((
            "in its compensation".into(),
            "compensate with what is not secret".into(),
        ));
    }
    let takes: &[&str] = registry
        .get(&step.action)
        .map_or(&[], |a| a.secret_inputs());
    let mut rest = step.with.clone();
    if let Some(m) = rest.as_object_mut() {
        for f in takes {
            m.remove(*f);
        }
    }
    let mut outside = expr::references(&rest);
    if step.action == "assert" {
        // `that:` is an expression over the run's names even without `${…}`.
        if let Some(that) = step.with.get("that").and_then(Value::as_str) {
            outside.extend(expr::condition_paths(that).unwrap_or_default());
        }
    }
    if !outside
        .iter()
        .any(|x| x == r || x.starts_with(&format!("{r}.")) || r.starts_with(&format!("{x}.")))
    {
        return None;
    }
    Some(if takes.is_empty() {
        (
            format!("in {} (which takes no secret)", step.action),
            "a secret is the input of env: of exec, set: of k8s.secret_set, or headers:, body: or json: of http.check".into(),
        )
    } else {
        (
            format!(
                "outside {} (what {} takes a secret in)",
                takes
                    .iter()
                    .map(|t| format!("{t}:"))
                    .collect::<Vec<_>>()
                    .join(", "),
                step.action
            ),
            format!(
                "pass it in {}",
                takes
                    .iter()
                    .map(|t| format!("{t}:"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        )
    })
}
