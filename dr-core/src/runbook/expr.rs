//! `${…}` interpolation and `if:` conditions.
//!
//! A string that is exactly one reference (`"${vars.port}"`) becomes the referenced value
//! with its type (a number stays a number, a map stays a map); references inside longer
//! strings are replaced by their text. References: `vars.<name>`,
//! `steps.<id>.outputs.<key>[.<key>…]`, `steps.<id>.state`, `objectives.rto`,
//! `objectives.rpo`, `run.id`, `run.mode`, `run.outcome`, and time: `now`,
//! `run.started`, `steps.<id>.started`, `steps.<id>.ended` (RFC 3339 timestamps) and
//! `steps.<id>.seconds`. A reference may pass its value through filters:
//! `${now | date("%Y%m%d")}` formats a timestamp (strftime), `${steps.x.seconds |
//! duration}` writes seconds as a duration (`1m30s`). `if:` takes a minijinja
//! expression over the same names (`steps.lag.outputs.lag_seconds < 300`,
//! `run.mode == "forced"`).

use serde_json::Value;

use crate::{err, Result};

/// One piece of a string with references: text as it is, or a reference.
enum Piece<'a> {
    Text(&'a str),
    Reference(&'a str),
}

/// Splits `s` into text and `${…}` references; `$${` is a literal `${` (shell code in an
/// `exec`). Fails on a `${` that is never closed.
fn pieces(s: &str) -> Result<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            out.push(Piece::Text(&rest[..i - 1]));
            out.push(Piece::Text("${"));
            rest = &rest[i + 2..];
            continue;
        }
        let Some(j) = rest[i..].find('}') else {
            return Err(err!(
                InvalidInput,
                "{s:?} opens a reference with ${{ that is never closed; close it with }}, or write $${{ for a literal ${{"
            ));
        };
        out.push(Piece::Text(&rest[..i]));
        out.push(Piece::Reference(rest[i + 2..i + j].trim()));
        rest = &rest[i + j + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Every `${…}` reference in `value`, in order, as the path it reads (without its
/// filters).
#[must_use]
pub fn references(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_strings(value, &mut |s| {
        for p in pieces(s).unwrap_or_default() {
            if let Piece::Reference(r) = p {
                out.push(split_reference(r).0.to_owned());
            }
        }
    });
    out
}

/// A reference's path and its filters (`now | date("%Y")` → `now`, [`date("%Y")`]).
#[must_use]
pub fn split_reference(r: &str) -> (&str, Vec<&str>) {
    let mut parts = r.split('|').map(str::trim);
    let path = parts.next().unwrap_or_default();
    (path, parts.collect())
}

/// `value` through `filter`: `date("FORMAT")` on a timestamp, `duration` on seconds.
/// A value not known yet (a plan's placeholder) stays as it is.
fn apply_filter(value: Value, filter: &str) -> Result<Value> {
    let (name, arg) = match filter.split_once('(') {
        Some((name, rest)) => {
            let arg = rest
                .trim()
                .strip_suffix(')')
                .map(str::trim)
                .ok_or_else(|| {
                    err!(InvalidInput, "filter {filter:?} opens ( without closing it")
                })?;
            let unquoted = arg
                .strip_prefix('"')
                .and_then(|a| a.strip_suffix('"'))
                .or_else(|| arg.strip_prefix('\'').and_then(|a| a.strip_suffix('\'')))
                .ok_or_else(|| {
                    err!(
                        InvalidInput,
                        "filter {filter:?}: quote its argument, e.g. date(\"%Y%m%d\")"
                    )
                })?;
            (name.trim(), Some(unquoted))
        }
        None => (filter, None),
    };
    let known = matches!((name, arg), ("date", Some(_)) | ("duration", None));
    if known && value.as_str().is_some_and(|s| s.contains("<known ")) {
        return Ok(value);
    }
    match (name, arg) {
        ("date", Some(format)) => {
            let t: jiff::Timestamp = value
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| err!(InvalidInput, "date() takes a timestamp (now, run.started, steps.<id>.started), not {value}"))?;
            let zoned = t.to_zoned(jiff::tz::TimeZone::UTC);
            let mut out = String::new();
            jiff::fmt::strtime::BrokenDownTime::from(&zoned)
                .format(format, &mut out)
                .map_err(|e| err!(InvalidInput, "date({format:?}): {e}"))?;
            Ok(Value::String(out))
        }
        ("duration", None) => {
            let secs = value.as_f64().ok_or_else(|| {
                err!(
                    InvalidInput,
                    "duration takes a number of seconds, not {value}"
                )
            })?;
            let d = std::time::Duration::try_from_secs_f64(secs.max(0.0))
                .map_err(|e| err!(InvalidInput, "duration: {e}"))?;
            Ok(Value::String(crate::duration::format(d)))
        }
        _ => Err(err!(
            InvalidInput,
            "unknown filter {filter:?}; the filters are date(\"FORMAT\") and duration"
        )),
    }
}

fn walk_strings(value: &Value, f: &mut impl FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(m) => m.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

/// What a reference names in `scope` (a JSON object with `vars`, `steps`, `objectives`,
/// `run`), or `None` when it is not there (yet).
#[must_use]
pub fn lookup<'a>(scope: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(scope, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `value` with every reference replaced from `scope`. `missing` says what to put for a
/// reference `scope` lacks: `None` fails naming it; `Some(f)` asks `f` (a plan's
/// "known after <step>").
pub fn resolve(
    value: &Value,
    scope: &Value,
    missing: Option<&dyn Fn(&str) -> Value>,
) -> Result<Value> {
    Ok(match value {
        Value::String(s) => resolve_str(s, scope, missing)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| resolve(v, scope, missing))
                .collect::<Result<_>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, scope, missing)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

fn resolve_str(s: &str, scope: &Value, missing: Option<&dyn Fn(&str) -> Value>) -> Result<Value> {
    let find = |reference: &str| -> Result<Value> {
        let (path, filters) = split_reference(reference);
        let value = match lookup(scope, path) {
            Some(v) => Ok(v.clone()),
            None => match missing {
                Some(f) => Ok(f(path)),
                None => Err(err!(
                    InvalidInput,
                    "${{{path}}} has no value here; check the name, and that the step it names ran before"
                )),
            },
        }?;
        filters.into_iter().try_fold(value, apply_filter)
    };
    let parts = pieces(s)?;
    let refs: Vec<&str> = parts
        .iter()
        .filter_map(|p| match p {
            Piece::Reference(r) => Some(*r),
            Piece::Text(_) => None,
        })
        .collect();
    let only_text_around = parts.iter().all(|p| match p {
        Piece::Text(t) => t.trim().is_empty(),
        Piece::Reference(_) => true,
    });
    if refs.len() == 1 && only_text_around {
        return find(refs[0]);
    }
    let mut out = String::new();
    for p in parts {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Reference(r) => out.push_str(&text(&find(r)?)),
        }
    }
    Ok(Value::String(out))
}

fn compile<'env>(
    env: &'env minijinja::Environment<'env>,
    expr: &'env str,
) -> Result<minijinja::Expression<'env, 'env>> {
    env.compile_expression(expr)
        .map_err(|e| err!(InvalidInput, "{expr:?} is not an expression: {e}"))
}

/// Checks an `if:` expression compiles, and returns the dotted paths it reads
/// (`steps.lag.outputs.seconds`, `vars.region`), as far as they are written with dots.
pub fn condition_paths(expr: &str) -> Result<Vec<String>> {
    // A step of an included runbook is read by subscript (`steps["db/restore"].state`,
    // its id holding a `/`), which minijinja does not follow: name it for the analysis.
    let mut ids = Vec::new();
    let mut plain = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find("steps[\"") {
        let from = i + "steps[\"".len();
        let Some(len) = rest[from..].find("\"]") else {
            break;
        };
        plain.push_str(&rest[..i]);
        plain.push_str("steps.drkit_step_");
        plain.push_str(&ids.len().to_string());
        ids.push(rest[from..from + len].to_owned());
        rest = &rest[from + len + 2..];
    }
    plain.push_str(rest);
    let env = minijinja::Environment::new();
    let mut paths: Vec<String> = compile(&env, &plain)?
        .undeclared_variables(true)
        .into_iter()
        .map(|p| {
            ids.iter().enumerate().rev().fold(p, |p, (n, id)| {
                p.replace(&format!("steps.drkit_step_{n}"), &format!("steps.{id}"))
            })
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// Evaluates an `if:` expression against `scope`: true unless it is false, `none`,
/// zero or empty.
pub fn condition(expr: &str, scope: &Value) -> Result<bool> {
    let env = minijinja::Environment::new();
    let v = compile(&env, expr)?
        .eval(minijinja::Value::from(minijinja::value::Serde(scope)))
        .map_err(|e| err!(InvalidInput, "{expr:?} failed: {e}"))?;
    Ok(v.is_true())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_included_steps_subscript_is_a_path() {
        assert_eq!(
            condition_paths(r#"steps["db/answers"].state == "failed" and vars.x"#).unwrap(),
            ["steps.db/answers.state", "vars.x"]
        );
    }

    #[test]
    fn a_doubled_dollar_is_a_literal_and_an_unclosed_reference_an_error() {
        let scope = json!({"vars": {"x": 1}});
        assert_eq!(
            resolve(&json!("echo $${HOME} ${vars.x}"), &scope, None).unwrap(),
            json!("echo ${HOME} 1")
        );
        assert!(references(&json!("$${HOME}")).is_empty());
        let e = resolve(&json!("echo ${vars.x"), &scope, None).unwrap_err();
        assert!(e.message().contains("never closed"), "{e}");
    }

    #[test]
    fn whole_references_keep_their_type_and_embedded_ones_become_text() {
        let scope = json!({"vars": {"port": 5432, "db": {"host": "h"}}, "steps": {"promote": {"outputs": {"endpoint": "db:5432"}}}});
        let with = json!({"port": "${vars.port}", "db": "${ vars.db }", "msg": "at ${steps.promote.outputs.endpoint} on ${vars.port}", "n": 3});
        let r = resolve(&with, &scope, None).unwrap();
        assert_eq!(
            r,
            json!({"port": 5432, "db": {"host": "h"}, "msg": "at db:5432 on 5432", "n": 3})
        );
        assert_eq!(
            references(&with),
            [
                "vars.db",
                "steps.promote.outputs.endpoint",
                "vars.port",
                "vars.port"
            ]
        );
        let e = resolve(&json!("${vars.nope}"), &scope, None).unwrap_err();
        assert!(e.to_string().contains("vars.nope"), "{e}");
        let later = resolve(
            &json!("${steps.x.outputs.y}"),
            &scope,
            Some(&|p: &str| json!(format!("<{p}>"))),
        )
        .unwrap();
        assert_eq!(later, json!("<steps.x.outputs.y>"));
    }

    #[test]
    fn conditions_evaluate_and_name_what_they_use() {
        let scope =
            json!({"run": {"mode": "forced"}, "steps": {"lag": {"outputs": {"seconds": 12}}}});
        assert!(condition("run.mode == 'forced'", &scope).unwrap());
        assert!(!condition("steps.lag.outputs.seconds > 60", &scope).unwrap());
        assert_eq!(
            condition_paths("steps.lag.outputs.seconds > vars.limit").unwrap(),
            ["steps.lag.outputs.seconds", "vars.limit"]
        );
        assert!(condition_paths("run.mode ==").is_err());
    }
}
