//! The protobuf kubectl's typed commands send (`kubectl create
//! secret|configmap|namespace|deployment`), read into the JSON the rest of the test API
//! works on: the `k8s\0` envelope (`runtime.Unknown`) and, inside it, the object's
//! metadata (name, generateName, namespace, labels, annotations) and the fields of
//! Secrets, ConfigMaps and Namespaces, and of Deployments what `kubectl create
//! deployment` sets (replicas, selector labels, the pod template's labels and its
//! containers' name, image, command, args, ports and env). Other kinds are refused with
//! 415, as before.
#![allow(clippy::many_single_char_names)] // a wire-format reader: b(ytes), r(eader), f(ield), n(umber)

use base64::Engine as _;
use serde_json::{json, Map, Value};

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, at: 0 }
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at)?;
            self.at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// The next field: number, and its bytes for length-delimited ones (varints as
    /// their value in `varint`).
    fn field(&mut self) -> Option<(u64, Field<'a>)> {
        if self.at >= self.b.len() {
            return None;
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let end = self.at.checked_add(len).filter(|e| *e <= self.b.len())?;
                let s = &self.b[self.at..end];
                self.at = end;
                Field::Bytes(s)
            }
            1 => {
                self.at += 8;
                Field::Varint(0)
            }
            5 => {
                self.at += 4;
                Field::Varint(0)
            }
            _ => return None,
        };
        Some((num, f))
    }
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A `map<string, X>` entry: key and value bytes.
fn entry(b: &[u8]) -> (String, Vec<u8>) {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), Vec::new());
    while let Some((n, f)) = r.field() {
        if let Field::Bytes(x) = f {
            match n {
                1 => k = text(x),
                2 => v = x.to_vec(),
                _ => {}
            }
        }
    }
    (k, v)
}

fn metadata(b: &[u8]) -> Value {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    while let Some((n, f)) = r.field() {
        let Field::Bytes(x) = f else { continue };
        match n {
            // Empty strings are on the wire but not in the object (the JSON omits them).
            1 if !x.is_empty() => {
                m.insert("name".into(), json!(text(x)));
            }
            2 if !x.is_empty() => {
                m.insert("generateName".into(), json!(text(x)));
            }
            3 if !x.is_empty() => {
                m.insert("namespace".into(), json!(text(x)));
            }
            11 => {
                let (k, v) = entry(x);
                labels.insert(k, json!(text(&v)));
            }
            12 => {
                let (k, v) = entry(x);
                annotations.insert(k, json!(text(&v)));
            }
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    Value::Object(m)
}

/// The fields of a message, in order.
fn fields(b: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut r = Reader::new(b);
    std::iter::from_fn(|| r.field()).collect()
}

/// A `map<string, string>` field collected over its entries.
fn string_map(into: &mut Value, x: &[u8]) {
    let (k, v) = entry(x);
    into[k] = json!(text(&v));
}

/// A Container (name, image, command, args, ports, env).
fn container(b: &[u8]) -> Value {
    let mut c = json!({});
    for (n, f) in fields(b) {
        let Field::Bytes(x) = f else { continue };
        match n {
            _ if x.is_empty() => {}
            1 => c["name"] = json!(text(x)),
            2 => c["image"] = json!(text(x)),
            3 | 4 => {
                let key = if n == 3 { "command" } else { "args" };
                push(&mut c[key], json!(text(x)));
            }
            6 => {
                let mut port = json!({});
                for (pn, pf) in fields(x) {
                    match (pn, pf) {
                        (1, Field::Bytes(y)) if !y.is_empty() => port["name"] = json!(text(y)),
                        (3, Field::Varint(v)) => port["containerPort"] = json!(v),
                        (4, Field::Bytes(y)) if !y.is_empty() => {
                            port["protocol"] = json!(text(y));
                        }
                        _ => {}
                    }
                }
                push(&mut c["ports"], port);
            }
            7 => {
                let mut env = json!({});
                for (en, ef) in fields(x) {
                    match (en, ef) {
                        (1, Field::Bytes(y)) => env["name"] = json!(text(y)),
                        (2, Field::Bytes(y)) => env["value"] = json!(text(y)),
                        _ => {}
                    }
                }
                push(&mut c["env"], env);
            }
            _ => {}
        }
    }
    c
}

fn push(list: &mut Value, item: Value) {
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(a) = list.as_array_mut() {
        a.push(item);
    }
}

/// A DeploymentSpec: replicas, selector.matchLabels, template (metadata, containers).
fn deployment_spec(b: &[u8]) -> Value {
    let mut spec = json!({});
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Varint(v)) => spec["replicas"] = json!(v),
            (2, Field::Bytes(x)) => {
                let mut labels = json!({});
                for (sn, sf) in fields(x) {
                    if let (1, Field::Bytes(y)) = (sn, sf) {
                        string_map(&mut labels, y);
                    }
                }
                spec["selector"] = json!({"matchLabels": labels});
            }
            (3, Field::Bytes(x)) => {
                let mut template = json!({"metadata": {}, "spec": {"containers": []}});
                for (tn, tf) in fields(x) {
                    match (tn, tf) {
                        (1, Field::Bytes(y)) => template["metadata"] = metadata(y),
                        (2, Field::Bytes(y)) => {
                            for (pn, pf) in fields(y) {
                                if let (2, Field::Bytes(z)) = (pn, pf) {
                                    push(&mut template["spec"]["containers"], container(z));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                spec["template"] = template;
            }
            _ => {}
        }
    }
    spec
}

/// The JSON of a protobuf-encoded Secret, ConfigMap, Namespace or Deployment; `None`
/// for anything else (or anything that does not parse).
pub fn decode(body: &[u8]) -> Option<Value> {
    let inner = body.strip_prefix(b"k8s\0")?;
    let mut r = Reader::new(inner);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((n, f)) = r.field() {
        if let Field::Bytes(x) = f {
            match n {
                1 => {
                    let mut t = Reader::new(x);
                    while let Some((tn, tf)) = t.field() {
                        if let Field::Bytes(y) = tf {
                            match tn {
                                1 => api_version = text(y),
                                2 => kind = text(y),
                                _ => {}
                            }
                        }
                    }
                }
                2 => raw = x,
                _ => {}
            }
        }
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": {}});
    let mut r = Reader::new(raw);
    let b64 = |v: &[u8]| json!(base64::engine::general_purpose::STANDARD.encode(v));
    while let Some((n, f)) = r.field() {
        match (kind.as_str(), n, f) {
            (_, 1, Field::Bytes(x)) => obj["metadata"] = metadata(x),
            ("Secret", 2, Field::Bytes(x)) => {
                let (k, v) = entry(x);
                obj["data"][k] = b64(&v);
            }
            ("Secret", 3, Field::Bytes(x)) if !x.is_empty() => obj["type"] = json!(text(x)),
            ("Secret", 4, Field::Bytes(x)) => {
                let (k, v) = entry(x);
                obj["stringData"][k] = json!(text(&v));
            }
            ("Secret" | "ConfigMap", 5, Field::Varint(v)) if kind == "Secret" => {
                obj["immutable"] = json!(v != 0);
            }
            ("ConfigMap", 2, Field::Bytes(x)) => {
                let (k, v) = entry(x);
                obj["data"][k] = json!(text(&v));
            }
            ("ConfigMap", 3, Field::Bytes(x)) => {
                let (k, v) = entry(x);
                obj["binaryData"][k] = b64(&v);
            }
            ("Deployment", 2, Field::Bytes(x)) => obj["spec"] = deployment_spec(x),
            ("Namespace" | "Secret" | "ConfigMap" | "Deployment", _, _) => {}
            _ => return None,
        }
    }
    matches!(
        kind.as_str(),
        "Secret" | "ConfigMap" | "Namespace" | "Deployment"
    )
    .then_some(obj)
}
