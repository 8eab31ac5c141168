//! The protobuf kubectl's typed commands send (`kubectl create secret|configmap|namespace`),
//! read into the JSON the rest of the test API works on: the `k8s\0` envelope
//! (`runtime.Unknown`) and, inside it, the object's metadata (name, generateName,
//! namespace, labels, annotations) and the fields of Secrets, ConfigMaps and Namespaces.
//! Other kinds are refused with 415, as before.
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
            1 => {
                m.insert("name".into(), json!(text(x)));
            }
            2 => {
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

/// The JSON of a protobuf-encoded Secret, ConfigMap or Namespace; `None` for anything
/// else (or anything that does not parse).
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
            ("Namespace" | "Secret" | "ConfigMap", _, _) => {}
            _ => return None,
        }
    }
    matches!(kind.as_str(), "Secret" | "ConfigMap" | "Namespace").then_some(obj)
}
