//! Label selectors (`a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and
//! field selectors on `metadata.name` and `metadata.namespace`.

use serde_json::Value;

use super::state::Status;

/// Splits on commas outside parentheses.
fn terms(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn set(s: &str) -> Result<Vec<String>, Status> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| Status::bad(format!("unable to parse requirement: {s:?}")))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

/// Whether `labels` match `selector`.
pub fn labels_match(selector: &str, labels: &Value) -> Result<bool, Status> {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    for t in terms(selector) {
        let ok = if let Some((k, v)) = t.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else if let Some((k, v)) = t.split_once(" notin ") {
            let vs = set(v)?;
            get(k.trim()).is_none_or(|x| !vs.iter().any(|s| s == x))
        } else if let Some((k, v)) = t.split_once(" in ") {
            let vs = set(v)?;
            get(k.trim()).is_some_and(|x| vs.iter().any(|s| s == x))
        } else if let Some(k) = t.strip_prefix('!') {
            get(k.trim()).is_none()
        } else {
            get(&t).is_some()
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `obj` matches a field selector.
pub fn fields_match(selector: &str, obj: &Value) -> Result<bool, Status> {
    for t in terms(selector) {
        let (k, v, eq) = if let Some((k, v)) = t.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            (k, v, true)
        } else {
            return Err(Status::bad(format!("invalid field selector {t:?}")));
        };
        let have = match k.trim() {
            "metadata.name" => obj["metadata"]["name"].as_str(),
            "metadata.namespace" => obj["metadata"]["namespace"].as_str(),
            "status.phase" => obj["status"]["phase"].as_str(),
            other => return Err(Status::bad(format!("field label not supported: {other}"))),
        };
        if (have == Some(v.trim())) != eq {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_operator() {
        let l = json!({"app": "shop", "tier": "web"});
        for (s, want) in [
            ("app=shop", true),
            ("app==shop,tier=web", true),
            ("app!=shop", false),
            ("tier in (web, db)", true),
            ("tier notin (web)", false),
            ("app", true),
            ("!app", false),
            ("!missing,app in (shop)", true),
        ] {
            assert_eq!(labels_match(s, &l).unwrap(), want, "{s}");
        }
    }
}
