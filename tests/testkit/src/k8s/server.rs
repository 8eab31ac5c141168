//! HTTP: discovery, the verbs on objects and lists, patches, subresources, watches.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::kinds::{self, Kind};
use super::patch;
use super::select::{fields_match, labels_match};
use super::state::{resource_key, Key, State, Status};

type Body = BoxBody<Bytes, Infallible>;
type Shared = Arc<Mutex<State>>;

/// Serves plain HTTP, or HTTPS with `tls`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        // As the real API server: no Nagle delay on small responses.
        let _ = tcp.set_nodelay(true);
        let st = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(handle(req, st).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                }
                Some(acceptor) => {
                    // A client that does not trust the CA ends the handshake here.
                    if let Ok(stream) = acceptor.accept(tcp).await {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            }
        });
    }
}

fn full(code: u16, content_type: &str, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("a response")
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    full(
        code,
        "application/json",
        serde_json::to_vec(v).expect("json"),
    )
}

fn status_response(s: &Status, kind: Option<&Kind>, name: &str) -> Response<Body> {
    json_response(s.code, &s.body(kind, name))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Where a request goes, once its path is read.
struct Target {
    kind: &'static Kind,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn route(custom: &[&'static Kind], path: &str) -> Result<Option<Target>, Status> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Ok(None),
    };
    let find = |plural: &str| {
        kinds::find_in(custom, group, version, plural).ok_or_else(|| {
            Status::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({plural})"),
            )
        })
    };
    let t = match rest {
        ["namespaces", ns, plural, more @ ..]
            if kinds::find_in(custom, group, version, plural).is_some_and(|k| k.namespaced) =>
        {
            let kind = find(plural)?;
            Target {
                kind,
                namespace: Some((*ns).to_owned()),
                name: more.first().map(|s| (*s).to_owned()),
                sub: more.get(1).map(|s| (*s).to_owned()),
            }
        }
        [plural, more @ ..] => Target {
            kind: find(plural)?,
            namespace: None,
            name: more.first().map(|s| (*s).to_owned()),
            sub: more.get(1).map(|s| (*s).to_owned()),
        },
        [] => return Ok(None),
    };
    Ok(Some(t))
}

fn verb(method: &str, t: &Target, q: &BTreeMap<String, String>) -> &'static str {
    match (method, &t.name) {
        ("GET", None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        _ => "unknown",
    }
}

fn parse_body(bytes: &[u8], content_type: &str) -> Result<Value, Status> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    if content_type.contains("protobuf") {
        // kubectl's typed create commands; other protobuf bodies are refused.
        return super::protobuf::decode(bytes).ok_or_else(|| {
            Status::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the test API reads protobuf only for {} ({content_type}); send JSON",
                    super::protobuf::READ.join(", ")
                ),
            )
        });
    }
    if content_type.contains("yaml") {
        let text = std::str::from_utf8(bytes).map_err(|_| Status::bad("the body is not UTF-8"))?;
        return serde_saphyr::from_str::<Value>(text)
            .map_err(|e| Status::bad(format!("the body is not YAML: {e}")));
    }
    serde_json::from_slice(bytes).map_err(|e| Status::bad(format!("the body is not JSON: {e}")))
}

#[allow(clippy::too_many_lines)] // one match over the served paths
async fn handle(req: Request<hyper::body::Incoming>, st: Shared) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let q = query(req.uri().query());
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    {
        let mut s = st.lock().expect("state");
        s.requests.push(format!(
            "{method} {path}{}",
            if q.is_empty() {
                String::new()
            } else {
                format!(
                    "?{}",
                    q.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("&")
                )
            }
        ));
        if let Some(want) = &s.faults.token {
            if auth.as_deref() != Some(&format!("Bearer {want}")) {
                return json_response(
                    401,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
                );
            }
        }
    }
    // What the stored CustomResourceDefinitions serve, as this request finds them.
    let custom = st.lock().expect("state").custom.clone();
    match path.as_str() {
        "/version" => {
            return json_response(
                200,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-drkit-test", "platform": "linux/amd64"}),
            )
        }
        "/healthz" | "/readyz" | "/livez" => return full(200, "text/plain", b"ok".to_vec()),
        "/api" => return json_response(200, &kinds::core_versions()),
        "/apis" => return json_response(200, &kinds::group_list(&custom)),
        "/openapi/v3" => return json_response(200, &kinds::openapi_root(&custom)),
        // Not a Kubernetes path: how many requests this server answered, by verb, for
        // benchmarks run against the binary.
        "/_test/requests" => {
            let s = st.lock().expect("state");
            let mut by: BTreeMap<String, usize> = BTreeMap::new();
            for r in &s.requests {
                *by.entry(r.split(' ').next().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
            return json_response(200, &json!({"count": s.requests.len(), "by_method": by}));
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3/") {
        let segs: Vec<&str> = rest.split('/').collect();
        let doc = match segs.as_slice() {
            ["api", v] => kinds::openapi_group(&custom, "", v),
            ["apis", g, v] => kinds::openapi_group(&custom, g, v),
            _ => None,
        };
        return match doc {
            Some(d) => json_response(200, &d),
            None => status_response(
                &Status::new(404, "NotFound", "no such OpenAPI document"),
                None,
                "",
            ),
        };
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", v] => {
            return kinds::resource_list(&custom, "", v).map_or_else(
                || {
                    status_response(
                        &Status::new(
                            404,
                            "NotFound",
                            "the server could not find the requested resource",
                        ),
                        None,
                        "",
                    )
                },
                |d| json_response(200, &d),
            )
        }
        ["apis", g, v] => {
            return kinds::resource_list(&custom, g, v).map_or_else(
                || {
                    status_response(
                        &Status::new(
                            404,
                            "NotFound",
                            "the server could not find the requested resource",
                        ),
                        None,
                        "",
                    )
                },
                |d| json_response(200, &d),
            )
        }
        _ => {}
    }
    let t = match route(&custom, &path) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return status_response(
                &Status::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
                None,
                "",
            )
        }
        Err(s) => return status_response(&s, None, ""),
    };
    let v = verb(&method, &t, &q);
    let name = t.name.clone().unwrap_or_default();
    {
        let s = st.lock().expect("state");
        let forbidden = s
            .faults
            .forbidden
            .iter()
            .any(|(fv, fr)| fv == v && fr == t.kind.plural);
        if forbidden {
            let scope = t
                .namespace
                .as_ref()
                .map_or(" at the cluster scope".to_owned(), |ns| {
                    format!(" in the namespace \"{ns}\"")
                });
            let what = if name.is_empty() {
                t.kind.qualified()
            } else {
                format!("{} \"{name}\"", t.kind.qualified())
            };
            let msg = format!("{what} is forbidden: User \"drkit-test\" cannot {v} resource \"{}\" in API group \"{}\"{scope}", t.kind.plural, t.kind.group);
            return status_response(&Status::new(403, "Forbidden", msg), Some(t.kind), &name);
        }
    }
    if v == "watch" {
        return watch(&st, &t, &q);
    }
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    let result = {
        let mut s = st.lock().expect("state");
        apply_verb(&mut s, v, &t, &q, &body, &content_type, dry_run)
    };
    match result {
        Ok(Reply::Json(code, v)) => json_response(code, &v),
        Ok(Reply::Text(text)) => full(200, "text/plain", text.into_bytes()),
        Err(s) => status_response(&s, Some(t.kind), &name),
    }
}

enum Reply {
    Json(u16, Value),
    Text(String),
}

fn list_doc(s: &State, t: &Target, q: &BTreeMap<String, String>) -> Result<Value, Status> {
    let mut items = Vec::new();
    for o in s.list(t.kind, t.namespace.as_deref()) {
        if let Some(sel) = q.get("labelSelector") {
            if !labels_match(sel, &o["metadata"]["labels"])? {
                continue;
            }
        }
        if let Some(sel) = q.get("fieldSelector") {
            if !fields_match(sel, &o)? {
                continue;
            }
        }
        items.push(o);
    }
    // `continue` is the index of the next item, `limit` the page size.
    let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let mut meta = json!({"resourceVersion": s.rv.to_string()});
    if start.saturating_add(page.len()) < total {
        meta["continue"] = json!((start + page.len()).to_string());
        meta["remainingItemCount"] = json!(total - start - page.len());
    }
    Ok(
        json!({"kind": format!("{}List", t.kind.kind), "apiVersion": t.kind.api_version(), "metadata": meta, "items": page}),
    )
}

fn scale_doc(obj: &Value) -> Value {
    let labels = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"], "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"], "creationTimestamp": obj["metadata"]["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": labels},
    })
}

fn patched(old: &Value, body: &Value, content_type: &str) -> Result<Value, Status> {
    let mut new = old.clone();
    if content_type.starts_with("application/json-patch+json") {
        patch::json_patch(&mut new, body).map_err(Status::bad)?;
    } else if content_type.starts_with("application/merge-patch+json") {
        patch::merge(&mut new, body);
    } else if content_type.starts_with("application/strategic-merge-patch+json")
        || content_type.starts_with("application/apply-patch")
    {
        patch::strategic(&mut new, body).map_err(Status::bad)?;
    } else {
        return Err(Status::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})")));
    }
    Ok(new)
}

/// Server-side apply: fields this manager applied before and no longer does are
/// removed; the rest merges like a strategic merge patch. Conflicts between managers
/// are not judged (every apply wins).
/// Server-side apply by field manager `manager`. Each manager owns the fields it last
/// applied while they still hold its values; setting one another manager owns to a
/// different value is a 409 conflict naming the manager and the field, unless `force`
/// (then the field changes hands).
#[allow(clippy::too_many_arguments)] // the request's parts, as the handler has them
fn server_side_apply(
    s: &mut State,
    t: &Target,
    ns: &str,
    name: &str,
    body: &Value,
    manager: &str,
    force: bool,
    dry_run: bool,
) -> Result<Value, Status> {
    let key = (resource_key(t.kind), ns.to_owned(), name.to_owned());
    let mut obj = body.clone();
    if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(Status::bad(
            "the name of the object does not match the name on the URL",
        ));
    }
    let result = match s.get(t.kind, ns, name) {
        Err(_) => {
            obj["metadata"]["name"] = json!(name);
            obj["metadata"]["managedFields"] = managed_fields(s, &key, manager, t.kind);
            s.create(t.kind, ns, obj, dry_run)?
        }
        Ok(old) => {
            let taken = ownership_conflicts(s, &key, &old, body, manager);
            if !taken.is_empty() && !force {
                let list: Vec<String> = taken
                    .iter()
                    .map(|(m, f)| format!("conflict with {m:?}: {f}"))
                    .collect();
                let message = if list.len() == 1 {
                    format!("Apply failed with 1 conflict: {}", list[0])
                } else {
                    format!(
                        "Apply failed with {} conflicts: {}",
                        list.len(),
                        list.join("\n")
                    )
                };
                return Err(Status::new(409, "Conflict", message));
            }
            if !dry_run {
                for (other, field) in taken {
                    s.disowned
                        .entry((key.clone(), other))
                        .or_default()
                        .insert(field);
                }
            }
            let mut new = old.clone();
            if let Some(before) = s.applied.get(&(key.clone(), manager.to_owned())) {
                prune_dropped(&mut new, before, body);
            }
            patch::strategic(&mut new, body).map_err(Status::bad)?;
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            new["metadata"]["managedFields"] = managed_fields(s, &key, manager, t.kind);
            s.update(t.kind, ns, name, new, dry_run, false)?
        }
    };
    if !dry_run {
        s.applied
            .insert((key.clone(), manager.to_owned()), body.clone());
        s.disowned.remove(&(key, manager.to_owned()));
    }
    Ok(result)
}

/// One `Apply` entry per manager that applied to `key`, `manager` last.
fn managed_fields(s: &State, key: &Key, manager: &str, kind: &Kind) -> Value {
    let time = s.timestamp();
    let entry = |m: &str| json!({"manager": m, "operation": "Apply", "apiVersion": kind.api_version(), "time": time, "fieldsType": "FieldsV1", "fieldsV1": {}});
    let mut all: Vec<Value> = s
        .applied
        .keys()
        .filter(|(k, m)| k == key && m != manager)
        .map(|(_, m)| entry(m))
        .collect();
    all.push(entry(manager));
    Value::Array(all)
}

/// The fields other managers own (applied, still at their value, not lost to a forced
/// apply) that `body` sets to another value: `(manager, .spec.replicas)`.
fn ownership_conflicts(
    s: &State,
    key: &Key,
    live: &Value,
    body: &Value,
    manager: &str,
) -> Vec<(String, String)> {
    let mut live_fields = BTreeMap::new();
    leaves(live, String::new(), &mut live_fields);
    let mut wanted = BTreeMap::new();
    leaves(&config_of(body), String::new(), &mut wanted);
    let mut out = Vec::new();
    for ((k, other), applied) in &s.applied {
        if k != key || other == manager {
            continue;
        }
        let lost = s.disowned.get(&(key.clone(), other.clone()));
        let mut owned = BTreeMap::new();
        leaves(&config_of(applied), String::new(), &mut owned);
        for (field, value) in owned {
            let still_theirs = live_fields.get(&field) == Some(&value)
                && !lost.is_some_and(|l| l.contains(&field));
            if still_theirs && wanted.get(&field).is_some_and(|w| *w != value) {
                out.push((other.clone(), field));
            }
        }
    }
    out
}

/// What an applied configuration sets: its fields without the object's identity.
fn config_of(body: &Value) -> Value {
    let mut c = body.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
        o.remove("status");
    }
    if let Some(m) = c["metadata"].as_object_mut() {
        m.retain(|k, _| k == "labels" || k == "annotations");
    }
    c
}

/// Every leaf field of `v` by its path as the API server names it in a conflict:
/// `.spec.replicas`, `.spec.template.spec.containers[name="app"].image` (lists of named
/// items are keyed by name; other lists are one field).
fn leaves(v: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                leaves(x, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a)
            if !a.is_empty()
                && a.iter()
                    .all(|e| e.get("name").is_some_and(Value::is_string)) =>
        {
            for e in a {
                let name = e["name"].as_str().unwrap_or_default();
                leaves(e, format!("{path}[name={name:?}]"), out);
            }
        }
        other => {
            out.insert(path, other.clone());
        }
    }
}

fn prune_dropped(obj: &mut Value, before: &Value, now: &Value) {
    let (Some(b), Some(o)) = (before.as_object(), obj.as_object_mut()) else {
        return;
    };
    for (k, bv) in b {
        match now.get(k) {
            None => {
                o.remove(k);
            }
            Some(nv) if bv.is_object() && nv.is_object() => {
                if let Some(child) = o.get_mut(k) {
                    prune_dropped(child, bv, nv);
                }
            }
            Some(_) => {}
        }
    }
}

/// What a container whose command is `sh -c "echo a; echo b; …"` prints: its `echo`
/// lines (the test API runs no containers, so this is all a pod's log can be made of).
fn echoed(pod: &Value, container: Option<&str>) -> Vec<String> {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(c) = containers
        .iter()
        .find(|c| container.is_none_or(|n| c["name"] == n))
    else {
        return Vec::new();
    };
    let words: Vec<&str> = c["command"]
        .as_array()
        .into_iter()
        .chain(c["args"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let script = match words.as_slice() {
        [sh, "-c", script, ..] if sh.ends_with("sh") => *script,
        _ => return Vec::new(),
    };
    script
        .split([';', '\n'])
        .flat_map(|s| s.split("&&"))
        .filter_map(|s| s.trim().strip_prefix("echo "))
        .map(|s| s.trim().trim_matches(['"', '\'']).to_owned())
        .collect()
}

#[allow(clippy::too_many_lines, clippy::many_single_char_names)] // each verb, with subresources; s(tate), v(erb), t(arget), q(uery) throughout
fn apply_verb(
    s: &mut State,
    v: &str,
    t: &Target,
    q: &BTreeMap<String, String>,
    body: &[u8],
    content_type: &str,
    dry_run: bool,
) -> Result<Reply, Status> {
    let ns = if t.kind.namespaced {
        t.namespace.clone().unwrap_or_else(|| "default".to_owned())
    } else {
        String::new()
    };
    let name = t.name.clone().unwrap_or_default();
    let key = (resource_key(t.kind), ns.clone(), name.clone());
    let body = parse_body(body, content_type)?;
    match (v, t.sub.as_deref()) {
        ("list", _) => Ok(Reply::Json(200, list_doc(s, t, q)?)),
        ("get", None | Some("status")) => Ok(Reply::Json(200, s.get(t.kind, &ns, &name)?)),
        ("get", Some("scale")) => Ok(Reply::Json(200, scale_doc(&s.get(t.kind, &ns, &name)?))),
        ("get", Some("log")) => {
            let pod = s.get(t.kind, &ns, &name)?;
            let lines = s
                .logs
                .iter()
                .filter(|(prefix, _)| name.starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map_or_else(
                    || echoed(&pod, q.get("container").map(String::as_str)),
                    |(_, l)| l.clone(),
                );
            let tail: usize = q
                .get("tailLines")
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            let skip = lines.len().saturating_sub(tail);
            let mut text = lines[skip..].join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            Ok(Reply::Text(text))
        }
        ("create", None) => {
            if body.is_null() {
                return Err(Status::bad("a create needs a body"));
            }
            if let Some(k) = s.kind_of(&body) {
                if k.plural != t.kind.plural {
                    return Err(Status::bad(format!("the API version in the data ({}) does not match the expected API version ({})", body["apiVersion"], t.kind.api_version())));
                }
            }
            let body_ns = body["metadata"]["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(&ns);
            if t.kind.namespaced && body_ns != ns {
                return Err(Status::bad("the namespace of the provided object does not match the namespace sent on the request"));
            }
            Ok(Reply::Json(201, s.create(t.kind, &ns, body, dry_run)?))
        }
        ("update", None | Some("status")) => {
            if !dry_run && s.loses_race(&key) {
                return Err(Status::conflict(t.kind, &name));
            }
            Ok(Reply::Json(
                200,
                s.update(t.kind, &ns, &name, body, dry_run, t.sub.is_some())?,
            ))
        }
        ("patch", None | Some("status")) => {
            if content_type.starts_with("application/apply-patch") {
                let manager = q
                    .get("fieldManager")
                    .cloned()
                    .ok_or_else(|| Status::bad("PATCH with apply-patch requires fieldManager"))?;
                let force = q.get("force").is_some_and(|f| f == "true");
                let applied = server_side_apply(s, t, &ns, &name, &body, &manager, force, dry_run)?;
                return Ok(Reply::Json(200, applied));
            }
            if !dry_run && s.loses_race(&key) {
                return Err(Status::conflict(t.kind, &name));
            }
            let old = s.get(t.kind, &ns, &name)?;
            let mut new = patched(&old, &body, content_type)?;
            // A resourceVersion in the patch is a precondition; otherwise the patch
            // applies to the current version.
            if new["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"] {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
            }
            Ok(Reply::Json(
                200,
                s.update(t.kind, &ns, &name, new, dry_run, t.sub.is_some())?,
            ))
        }
        ("update" | "patch", Some("scale")) => {
            if !dry_run && s.loses_race(&key) {
                return Err(Status::conflict(t.kind, &name));
            }
            let obj = s.get(t.kind, &ns, &name)?;
            let scale = scale_doc(&obj);
            let new_scale = if v == "update" {
                body
            } else {
                patched(&scale, &body, content_type)?
            };
            let replicas = new_scale["spec"]["replicas"]
                .as_i64()
                .ok_or_else(|| Status::invalid(t.kind, &name, "spec.replicas: Required value"))?;
            let mut new = obj.clone();
            new["spec"]["replicas"] = json!(replicas);
            match new_scale["metadata"]["resourceVersion"].as_str() {
                Some(rv)
                    if rv
                        != obj["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or_default() =>
                {
                    return Err(Status::conflict(t.kind, &name));
                }
                _ => {}
            }
            let stored = s.update(t.kind, &ns, &name, new, dry_run, false)?;
            Ok(Reply::Json(200, scale_doc(&stored)))
        }
        ("delete", None) => {
            if let Some(pre) = body.get("preconditions") {
                let cur = s.get(t.kind, &ns, &name)?;
                if pre
                    .get("resourceVersion")
                    .is_some_and(|rv| *rv != cur["metadata"]["resourceVersion"])
                    || pre.get("uid").is_some_and(|u| *u != cur["metadata"]["uid"])
                {
                    return Err(Status::conflict(t.kind, &name));
                }
            }
            Ok(Reply::Json(200, s.delete(t.kind, &ns, &name, dry_run)?))
        }
        ("deletecollection", None) => {
            let doc = list_doc(s, t, q)?;
            for o in doc["items"].as_array().cloned().unwrap_or_default() {
                let n = o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                s.delete(t.kind, &ns, &n, dry_run)?;
            }
            Ok(Reply::Json(200, doc))
        }
        (_, Some(sub)) => Err(Status::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({sub})"),
        )),
        _ => Err(Status::new(
            405,
            "MethodNotAllowed",
            format!("{v} is not supported here"),
        )),
    }
}

fn watch(st: &Shared, t: &Target, q: &BTreeMap<String, String>) -> Response<Body> {
    let rk = resource_key(t.kind);
    let ns = t.namespace.clone();
    let labels = q.get("labelSelector").cloned();
    let fields = q.get("fieldSelector").cloned();
    let since: Option<u64> = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0);
    let timeout = q.get("timeoutSeconds").and_then(|t| t.parse().ok()).map_or(
        std::time::Duration::from_mins(30),
        std::time::Duration::from_secs,
    );
    let matches = {
        let (labels, fields, rk, ns) = (labels.clone(), fields.clone(), rk.clone(), ns.clone());
        move |resource: &str, namespace: &str, obj: &Value| {
            resource == rk
                && ns.as_deref().is_none_or(|n| n == namespace)
                && labels
                    .as_deref()
                    .is_none_or(|l| labels_match(l, &obj["metadata"]["labels"]).unwrap_or(false))
                && fields
                    .as_deref()
                    .is_none_or(|f| fields_match(f, obj).unwrap_or(false))
        }
    };
    let (first, rx) = {
        let s = st.lock().expect("state");
        let first: Vec<Value> = match since {
            Some(rv) => s
                .history
                .iter()
                .filter(|c| c.rv > rv && matches(&c.resource, &c.namespace, &c.object))
                .map(|c| json!({"type": c.kind, "object": c.object}))
                .collect(),
            None => s
                .list(t.kind, ns.as_deref())
                .into_iter()
                .filter(|o| {
                    matches(
                        &rk,
                        o["metadata"]["namespace"].as_str().unwrap_or_default(),
                        o,
                    )
                })
                .map(|o| json!({"type": "ADDED", "object": o}))
                .collect(),
        };
        (first, s.tx.as_ref().expect("a change channel").subscribe())
    };
    let last_sent = since.unwrap_or(0);
    let initial = futures::stream::iter(first.into_iter().map(|e| line(&e)));
    let live = futures::stream::unfold((rx, last_sent), move |(mut rx, last)| {
        let matches = matches.clone();
        async move {
            loop {
                match rx.recv().await {
                    Ok(c) if c.rv > last && matches(&c.resource, &c.namespace, &c.object) => {
                        let e = json!({"type": c.kind, "object": c.object});
                        return Some((line(&e), (rx, c.rv)));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    let deadline = tokio::time::sleep(timeout);
    let stream = initial
        .chain(live)
        .take_until(deadline)
        .map(|b| Ok::<_, Infallible>(Frame::data(b)));
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("a response")
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).expect("json");
    b.push(b'\n');
    Bytes::from(b)
}
