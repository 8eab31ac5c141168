//! The patch formats the real server takes: JSON patch (RFC 6902), JSON merge patch
//! (RFC 7386) and strategic merge patch for the lists kubectl and drkit send (merged by
//! their key: containers, env, ports, volumes, …; `$patch: delete|replace` and
//! `$setElementOrder` directives understood, `$retainKeys` ignored).

use serde_json::{Map, Value};

/// RFC 7386.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The key a list field's items merge on, in strategic merge patch.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers" | "initContainers" | "env" | "volumes" | "imagePullSecrets" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "tolerations" => "key",
        "ownerReferences" => "uid",
        "conditions" => "type",
        _ => return None,
    })
}

/// Strategic merge patch of `patch` into `target`.
pub fn strategic(target: &mut Value, patch: &Value) -> Result<(), String> {
    strategic_in(target, patch, "")
}

fn strategic_in(target: &mut Value, patch: &Value, _field: &str) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = p.clone();
        clean.remove("$patch");
        *target = Value::Object(clean);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(have)), Value::Array(drop)) = (t.get_mut(list_field), v) {
                have.retain(|x| !drop.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k), v) {
            (Some(key), Value::Array(items)) => {
                let entry = t
                    .entry(k.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !entry.is_array() {
                    *entry = Value::Array(Vec::new());
                }
                let have = entry.as_array_mut().expect("an array");
                merge_list(have, items, key, k)?;
            }
            (_, Value::Object(_)) => {
                strategic_in(t.entry(k.clone()).or_insert(Value::Null), v, k)?;
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(
    have: &mut Vec<Value>,
    items: &[Value],
    key: &str,
    field: &str,
) -> Result<(), String> {
    for item in items {
        let Some(id) = item.get(key).cloned() else {
            // An item without its merge key replaces the whole list (as for an unknown list).
            *have = items.to_vec();
            return Ok(());
        };
        let pos = have.iter().position(|h| h.get(key) == Some(&id));
        match (item.get("$patch").and_then(Value::as_str), pos) {
            (Some("delete"), Some(i)) => {
                have.remove(i);
            }
            (Some("delete"), None) => {}
            (Some(other), _) if other != "merge" => {
                return Err(format!("unknown $patch {other:?} in {field}"));
            }
            (_, Some(i)) => strategic_in(&mut have[i], item, field)?,
            (_, None) => {
                let mut clean = item.clone();
                if let Some(o) = clean.as_object_mut() {
                    o.remove("$patch");
                }
                have.push(clean);
            }
        }
    }
    Ok(())
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch is a list of operations")?;
    for op in ops {
        let kind = op["op"].as_str().ok_or("an operation without op")?;
        let path = op["path"].as_str().ok_or("an operation without path")?;
        match kind {
            "add" => add(target, path, op["value"].clone())?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, op["value"].clone())?;
            }
            "test" => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test at {path} failed"));
                }
            }
            "move" | "copy" => {
                let from = op["from"].as_str().ok_or("move/copy without from")?;
                let v = target
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| format!("nothing at {from}"))?;
                if kind == "move" {
                    remove(target, from)?;
                }
                add(target, path, v)?;
            }
            other => return Err(format!("unknown JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn parent<'a>(target: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let (head, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("bad path {path:?}"))?;
    let p = if head.is_empty() {
        target
    } else {
        target
            .pointer_mut(head)
            .ok_or_else(|| format!("no parent at {head}"))?
    };
    Ok((p, unescape(last)))
}

fn add(target: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = v;
        return Ok(());
    }
    let (p, last) = parent(target, path)?;
    match p {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(v);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad index {last:?}"))?;
                if i > a.len() {
                    return Err(format!("index {i} out of range"));
                }
                a.insert(i, v);
            }
        }
        _ => return Err(format!("cannot add under {path}")),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (p, last) = parent(target, path)?;
    match p {
        Value::Object(m) => m.remove(&last).ok_or_else(|| format!("nothing at {path}")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("bad index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("nothing at {path}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("nothing at {path}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn env_merges_by_name_and_deletes_by_directive() {
        let mut d = json!({"spec": {"containers": [{"name": "app", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}});
        strategic(
            &mut d,
            &json!({"spec": {"$setElementOrder/containers": [{"name": "app"}], "containers": [{"name": "app", "env": [{"name": "A", "value": "9"}, {"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}]}]}}),
        )
        .unwrap();
        assert_eq!(
            d["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "9"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(d["spec"]["containers"][0]["image"], "a:1");
    }

    #[test]
    fn json_patch_replaces_and_merge_patch_removes() {
        let mut d =
            json!({"spec": {"template": {"a": 1}}, "metadata": {"annotations": {"x": "1"}}});
        json_patch(
            &mut d,
            &json!([{"op": "replace", "path": "/spec/template", "value": {"b": 2}}]),
        )
        .unwrap();
        assert_eq!(d["spec"]["template"], json!({"b": 2}));
        merge(&mut d, &json!({"metadata": {"annotations": {"x": null}}}));
        assert_eq!(d["metadata"]["annotations"], json!({}));
    }
}
