//! Manifests as `kubectl apply -f` reads them — files, folders (recursively: `*.yaml`,
//! `*.yml`, `*.json`, in name order), multi-document YAML, `List`s — picked by kind and
//! label selector (`app=shop,tier!=cache,env in (prod,dr),!canary`), and put in the order
//! a cluster needs them: what others refer to first (Helm's install order).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dr_core::{err, Result};
use kube::core::{Expression, Selector, SelectorExt};
use serde_json::Value;

/// One object to apply, and where it came from (`k8s/prod/api.yaml, document 2`).
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The object.
    pub object: Value,
    /// Its file and document, or its snapshot, for messages.
    pub origin: String,
}

/// The order kinds are applied in; kinds not listed come last, in the order given.
const ORDER: &[&str] = &[
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
];

/// Where `kind` goes in the apply order.
#[must_use]
pub fn rank(kind: &str) -> usize {
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

/// Every manifest under `paths` (files, and folders read recursively), in order.
///
/// # Errors
/// `NotFound` for a path that does not exist or a folder without manifests;
/// `InvalidInput` for a file that is not YAML or JSON, or a document that is not a
/// Kubernetes object — each naming the file and document.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| {
            err!(
                NotFound,
                "manifest path {}: {e}; give files or folders of YAML or JSON manifests",
                p.display()
            )
        })?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files)?;
            if files.is_empty() {
                return Err(err!(
                    NotFound,
                    "folder {} holds no manifests (*.yaml, *.yml, *.json)",
                    p.display()
                ));
            }
            files
        } else {
            vec![p.clone()]
        };
        for f in files {
            out.extend(read_file(&f)?);
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| dr_core::Error::io(format!("reading folder {}", dir.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn read_file(f: &Path) -> Result<Vec<Manifest>> {
    let text = std::fs::read_to_string(f)
        .map_err(|e| dr_core::Error::io(format!("reading manifest {}", f.display()), e))?;
    let docs: Vec<Value> = if f.extension().is_some_and(|e| e == "json") {
        vec![serde_json::from_str(&text)
            .map_err(|e| err!(InvalidInput, "{}: not JSON: {e}", f.display()))?]
    } else {
        serde_saphyr::from_multiple(&text)
            .map_err(|e| err!(InvalidInput, "{}: not YAML: {e}", f.display()))?
    };
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let origin = format!("{}, document {}", f.display(), i + 1);
        if doc.is_null() {
            continue;
        }
        let items = match doc.get("items").and_then(Value::as_array) {
            Some(items) if doc["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
                items.clone()
            }
            _ => vec![doc],
        };
        for object in items {
            let named = object["metadata"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty());
            if !object["apiVersion"].is_string() || !object["kind"].is_string() || !named {
                return Err(err!(
                    InvalidInput,
                    "{origin}: not a Kubernetes object: apiVersion, kind and metadata.name are needed"
                ));
            }
            out.push(Manifest {
                object,
                origin: origin.clone(),
            });
        }
    }
    Ok(out)
}

/// A label selector as kubectl's `-l` takes it: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
/// `k in (a,b)`, `k notin (a,b)`, joined by commas.
///
/// # Errors
/// `InvalidInput` naming the term that is none of those.
pub fn parse_selector(s: &str) -> Result<Selector> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    let bad = |t: &str| {
        err!(
            InvalidInput,
            "selector {s:?}: {t:?} is not a label requirement; write key=value, key!=value, key, !key, key in (a,b) or key notin (a,b)"
        )
    };
    let mut selector = Selector::default();
    for t in terms.iter().map(|t| t.trim()) {
        let key_ok = |k: &str| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        };
        // A label value: empty, or up to 63 letters, digits, `-`, `_`, `.`, starting and
        // ending with a letter or digit.
        let value_ok = |v: &str| {
            v.is_empty()
                || (v.len() <= 63
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
        };
        let set = |rest: &str| -> Option<std::collections::BTreeSet<String>> {
            let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            let values: std::collections::BTreeSet<String> =
                inner.split(',').map(|v| v.trim().to_owned()).collect();
            values.iter().all(|v| value_ok(v)).then_some(values)
        };
        let e = if let Some(k) = t.strip_prefix('!') {
            key_ok(k.trim()).then(|| Expression::DoesNotExist(k.trim().to_owned()))
        } else if let Some((k, v)) = t.split_once("!=") {
            (key_ok(k.trim()) && value_ok(v.trim()))
                .then(|| Expression::NotEqual(k.trim().to_owned(), v.trim().to_owned()))
        } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
            (key_ok(k.trim()) && value_ok(v.trim()))
                .then(|| Expression::Equal(k.trim().to_owned(), v.trim().to_owned()))
        } else if let Some((k, rest)) = t.split_once(" notin ") {
            set(rest)
                .filter(|_| key_ok(k.trim()))
                .map(|v| Expression::NotIn(k.trim().to_owned(), v))
        } else if let Some((k, rest)) = t.split_once(" in ") {
            set(rest)
                .filter(|_| key_ok(k.trim()))
                .map(|v| Expression::In(k.trim().to_owned(), v))
        } else {
            key_ok(t).then(|| Expression::Exists(t.to_owned()))
        };
        selector.extend([e.ok_or_else(|| bad(t))?]);
    }
    Ok(selector)
}

/// Whether `object`'s labels match `selector`.
#[must_use]
pub fn selects(selector: &Selector, object: &Value) -> bool {
    let labels: BTreeMap<String, String> = object["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    selector.matches(&labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_read_as_kubectl_reads_them() {
        let obj = |labels: Value| json!({"metadata": {"labels": labels}});
        let s = parse_selector("app=shop, tier!=cache,env in (prod, dr),!canary").unwrap();
        assert!(selects(&s, &obj(json!({"app": "shop", "env": "dr"}))));
        assert!(!selects(&s, &obj(json!({"app": "shop", "env": "dev"}))));
        assert!(!selects(
            &s,
            &obj(json!({"app": "shop", "env": "dr", "canary": "1"}))
        ));
        assert!(!selects(
            &s,
            &obj(json!({"app": "shop", "env": "dr", "tier": "cache"}))
        ));
        let exists = parse_selector("app").unwrap();
        assert!(selects(&exists, &obj(json!({"app": "x"}))));
        assert!(!selects(&exists, &json!({"metadata": {}})));
        assert!(parse_selector("app==shop").is_ok());
        assert!(parse_selector("app=(").is_err(), "not a label value");
        assert!(parse_selector("env in (prod,-x)").is_err());
        let e = parse_selector("app=shop,=x").unwrap_err();
        assert!(
            e.message().contains("\"=x\" is not a label requirement"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn folders_lists_and_documents_are_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: two}}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b/c.json"),
            r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "three"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a manifest").unwrap();
        let got = read_paths(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<&str> = got
            .iter()
            .map(|m| m.object["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["one", "two", "three"]);
        assert!(
            got[1].origin.ends_with("a.yaml, document 2"),
            "{}",
            got[1].origin
        );
        std::fs::write(dir.path().join("bad.yaml"), "kind: ConfigMap\n").unwrap();
        let e = read_paths(&[dir.path().join("bad.yaml")]).unwrap_err();
        assert!(
            e.message()
                .contains("bad.yaml, document 1: not a Kubernetes object"),
            "{}",
            e.message()
        );
        let e = read_paths(&[dir.path().join("nope")]).unwrap_err();
        assert_eq!(e.kind(), dr_core::ErrorKind::NotFound);
    }

    #[test]
    fn what_others_need_is_applied_first() {
        let mut kinds = vec![
            "Deployment",
            "Widget",
            "Service",
            "ConfigMap",
            "Namespace",
            "CustomResourceDefinition",
        ];
        kinds.sort_by_key(|k| rank(k));
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ConfigMap",
                "Service",
                "Deployment",
                "Widget"
            ]
        );
    }
}
