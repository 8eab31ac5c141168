//! The protobuf kubectl's typed commands send (`kubectl create namespace | secret |
//! configmap | deployment | service clusterip|nodeport|loadbalancer|externalname |
//! ingress | serviceaccount | role | rolebinding | job | cronjob`), read into the JSON
//! the rest of the test API works on: the `k8s\0` envelope (`runtime.Unknown`) and,
//! inside it, the object's metadata (name, generateName, namespace, labels, annotations)
//! and what those commands set of each kind: Secrets' and ConfigMaps' data; a
//! Deployment's replicas, selector and pod template; a Service's ports (target ports
//! by number or name, node ports), selector, type, cluster IP and external name; an
//! Ingress's class, default backend, TLS and rules; a Role's rules; a RoleBinding's
//! subjects and role; a Job's and a CronJob's schedule, policies and pod template (the
//! containers' name, image, command, args, ports and env; the restart policy). Other
//! kinds are refused with 415.
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

/// A LabelSelector's matchLabels.
fn label_selector(b: &[u8]) -> Value {
    let mut labels = json!({});
    for (n, f) in fields(b) {
        if let (1, Field::Bytes(y)) = (n, f) {
            string_map(&mut labels, y);
        }
    }
    json!({"matchLabels": labels})
}

/// A PodTemplateSpec: metadata, and of its PodSpec the containers and restart policy.
fn pod_template(b: &[u8]) -> Value {
    let mut template = json!({"metadata": {}, "spec": {"containers": []}});
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Bytes(y)) => template["metadata"] = metadata(y),
            (2, Field::Bytes(y)) => {
                for (pn, pf) in fields(y) {
                    match (pn, pf) {
                        (2, Field::Bytes(z)) => {
                            push(&mut template["spec"]["containers"], container(z));
                        }
                        (3, Field::Bytes(z)) if !z.is_empty() => {
                            template["spec"]["restartPolicy"] = json!(text(z));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    template
}

/// A DeploymentSpec: replicas, selector.matchLabels, template.
fn deployment_spec(b: &[u8]) -> Value {
    let mut spec = json!({});
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Varint(v)) => spec["replicas"] = json!(v),
            (2, Field::Bytes(x)) => spec["selector"] = label_selector(x),
            (3, Field::Bytes(x)) => spec["template"] = pod_template(x),
            _ => {}
        }
    }
    spec
}

/// A JobSpec: parallelism, completions, backoffLimit, template.
fn job_spec(b: &[u8]) -> Value {
    let mut spec = json!({});
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Varint(v)) => spec["parallelism"] = json!(v),
            (2, Field::Varint(v)) => spec["completions"] = json!(v),
            (7, Field::Varint(v)) => spec["backoffLimit"] = json!(v),
            (6, Field::Bytes(x)) => spec["template"] = pod_template(x),
            _ => {}
        }
    }
    spec
}

/// A CronJobSpec: schedule, concurrency policy, suspend, time zone, job template.
fn cronjob_spec(b: &[u8]) -> Value {
    let mut spec = json!({});
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Bytes(x)) => spec["schedule"] = json!(text(x)),
            (3, Field::Bytes(x)) if !x.is_empty() => spec["concurrencyPolicy"] = json!(text(x)),
            (4, Field::Varint(v)) => spec["suspend"] = json!(v != 0),
            (8, Field::Bytes(x)) => spec["timeZone"] = json!(text(x)),
            (5, Field::Bytes(x)) => {
                let mut jt = json!({"metadata": {}});
                for (jn, jf) in fields(x) {
                    match (jn, jf) {
                        (1, Field::Bytes(y)) => jt["metadata"] = metadata(y),
                        (2, Field::Bytes(y)) => jt["spec"] = job_spec(y),
                        _ => {}
                    }
                }
                spec["jobTemplate"] = jt;
            }
            _ => {}
        }
    }
    spec
}

/// An IntOrString: a number, or a name.
fn int_or_string(b: &[u8]) -> Value {
    let (mut kind, mut int, mut name) = (0, 0, String::new());
    for (n, f) in fields(b) {
        match (n, f) {
            (1, Field::Varint(v)) => kind = v,
            (2, Field::Varint(v)) => int = v,
            (3, Field::Bytes(x)) => name = text(x),
            _ => {}
        }
    }
    if kind == 1 {
        json!(name)
    } else {
        json!(int)
    }
}

/// A ServiceSpec: ports, selector, clusterIP, type, externalName.
fn service_spec(b: &[u8]) -> Value {
    let mut spec = json!({});
    for (n, f) in fields(b) {
        let Field::Bytes(x) = f else { continue };
        match n {
            1 => {
                let mut port = json!({});
                for (pn, pf) in fields(x) {
                    match (pn, pf) {
                        (1, Field::Bytes(y)) if !y.is_empty() => port["name"] = json!(text(y)),
                        (2, Field::Bytes(y)) if !y.is_empty() => port["protocol"] = json!(text(y)),
                        (3, Field::Varint(v)) => port["port"] = json!(v),
                        (4, Field::Bytes(y)) => port["targetPort"] = int_or_string(y),
                        (5, Field::Varint(v)) if v != 0 => port["nodePort"] = json!(v),
                        _ => {}
                    }
                }
                push(&mut spec["ports"], port);
            }
            2 => {
                if !spec["selector"].is_object() {
                    spec["selector"] = json!({});
                }
                string_map(&mut spec["selector"], x);
            }
            3 if !x.is_empty() => spec["clusterIP"] = json!(text(x)),
            4 if !x.is_empty() => spec["type"] = json!(text(x)),
            10 if !x.is_empty() => spec["externalName"] = json!(text(x)),
            _ => {}
        }
    }
    spec
}

/// An IngressBackend's service: name, and port by number or name.
fn ingress_backend(b: &[u8]) -> Value {
    let mut backend = json!({});
    for (n, f) in fields(b) {
        let (4, Field::Bytes(x)) = (n, f) else {
            continue;
        };
        let mut service = json!({});
        for (sn, sf) in fields(x) {
            match (sn, sf) {
                (1, Field::Bytes(y)) => service["name"] = json!(text(y)),
                (2, Field::Bytes(y)) => {
                    let mut port = json!({});
                    for (pn, pf) in fields(y) {
                        match (pn, pf) {
                            (1, Field::Bytes(z)) if !z.is_empty() => port["name"] = json!(text(z)),
                            (2, Field::Varint(v)) if v != 0 => port["number"] = json!(v),
                            _ => {}
                        }
                    }
                    service["port"] = port;
                }
                _ => {}
            }
        }
        backend["service"] = service;
    }
    backend
}

/// An HTTPIngressPath: path, backend, pathType.
fn http_path(b: &[u8]) -> Value {
    let mut path = json!({});
    for (n, f) in fields(b) {
        let Field::Bytes(z) = f else { continue };
        match n {
            1 if !z.is_empty() => path["path"] = json!(text(z)),
            2 => path["backend"] = ingress_backend(z),
            3 if !z.is_empty() => path["pathType"] = json!(text(z)),
            _ => {}
        }
    }
    path
}

/// An IngressSpec: class, default backend, TLS, rules with their HTTP paths.
fn ingress_spec(b: &[u8]) -> Value {
    let mut spec = json!({});
    for (n, f) in fields(b) {
        let Field::Bytes(x) = f else { continue };
        match n {
            1 => spec["defaultBackend"] = ingress_backend(x),
            2 => {
                let mut tls = json!({});
                for (tn, tf) in fields(x) {
                    match (tn, tf) {
                        (1, Field::Bytes(y)) => push(&mut tls["hosts"], json!(text(y))),
                        (2, Field::Bytes(y)) if !y.is_empty() => tls["secretName"] = json!(text(y)),
                        _ => {}
                    }
                }
                push(&mut spec["tls"], tls);
            }
            3 => {
                let mut rule = json!({});
                for (rn, rf) in fields(x) {
                    match (rn, rf) {
                        (1, Field::Bytes(y)) if !y.is_empty() => rule["host"] = json!(text(y)),
                        (2, Field::Bytes(y)) => {
                            for (hn, hf) in fields(y) {
                                let (1, Field::Bytes(h)) = (hn, hf) else {
                                    continue;
                                };
                                let mut http = json!({"paths": []});
                                for (pn, pf) in fields(h) {
                                    let (1, Field::Bytes(p)) = (pn, pf) else {
                                        continue;
                                    };
                                    push(&mut http["paths"], http_path(p));
                                }
                                rule["http"] = http;
                            }
                        }
                        _ => {}
                    }
                }
                push(&mut spec["rules"], rule);
            }
            4 if !x.is_empty() => spec["ingressClassName"] = json!(text(x)),
            _ => {}
        }
    }
    spec
}

/// A Role's PolicyRule: verbs, apiGroups (the core group is ""), resources, names, URLs.
fn policy_rule(b: &[u8]) -> Value {
    let mut rule = json!({});
    for (n, f) in fields(b) {
        let Field::Bytes(x) = f else { continue };
        let key = match n {
            1 => "verbs",
            2 => "apiGroups",
            3 => "resources",
            4 => "resourceNames",
            5 => "nonResourceURLs",
            _ => continue,
        };
        push(&mut rule[key], json!(text(x)));
    }
    rule
}

/// A RoleBinding subject (kind, apiGroup, name, namespace) or its roleRef.
fn reference(b: &[u8], names: [&str; 4]) -> Value {
    let mut out = json!({});
    for (n, f) in fields(b) {
        let Field::Bytes(x) = f else { continue };
        if let Some(key) = usize::try_from(n)
            .ok()
            .and_then(|i| names.get(i.wrapping_sub(1)))
        {
            if !x.is_empty() && !key.is_empty() {
                out[*key] = json!(text(x));
            }
        }
    }
    out
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
            ("Service", 2, Field::Bytes(x)) => obj["spec"] = service_spec(x),
            ("Ingress", 2, Field::Bytes(x)) => obj["spec"] = ingress_spec(x),
            ("Job", 2, Field::Bytes(x)) => obj["spec"] = job_spec(x),
            ("CronJob", 2, Field::Bytes(x)) => obj["spec"] = cronjob_spec(x),
            ("Role", 2, Field::Bytes(x)) => push(&mut obj["rules"], policy_rule(x)),
            ("RoleBinding", 2, Field::Bytes(x)) => push(
                &mut obj["subjects"],
                reference(x, ["kind", "apiGroup", "name", "namespace"]),
            ),
            ("RoleBinding", 3, Field::Bytes(x)) => {
                obj["roleRef"] = reference(x, ["apiGroup", "kind", "name", ""]);
            }
            (k, _, _) if READ.contains(&k) => {}
            _ => return None,
        }
    }
    READ.contains(&kind.as_str()).then_some(obj)
}

/// The kinds whose protobuf the test API reads.
pub const READ: &[&str] = &[
    "Namespace",
    "Secret",
    "ConfigMap",
    "Deployment",
    "Service",
    "Ingress",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Job",
    "CronJob",
];
