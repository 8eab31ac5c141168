//! The test app: a small HTTP service standing for the seed plans' applications, so that
//! a recovery runbook is judged by what its users see. It finds its database the way the
//! seed's app does — `DB_HOST` in a ConfigMap (seed 001), `DATABASE_URL` in a Secret
//! (seed 002), `DATABASE_HOST` in a Deployment's env (seed 003), an env file (seed 004) —
//! reading it again for every request, so a repointing step that is wrong (or missing)
//! makes `/health` fail. The Kubernetes test API has no containers: the app runs beside
//! it, and a Deployment scaled to zero means the app refuses traffic, as it would be gone.
//!
//! - `GET /health`: 200 `{"status": "ok", "database": HOST, "rows": N}` after counting the
//!   rows of its table through the database it found; 503 `{"status": "down", "why": …}`
//!   otherwise.
//! - `POST /login` `{"user", "password"}`: 200 `{"token"}` when the `users` table holds
//!   them, 401 otherwise, 503 when the database is down.
//! - `POST /items` `{"sku"}`: inserts a row (the next id) and answers 201 `{"id"}`; 503 on
//!   a read-only database (a replica not promoted yet).

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::k8s::Objects;

/// Where the app finds its database.
#[derive(Debug, Clone)]
pub enum Source {
    /// Key `key` of ConfigMap `name` (seed 001's `DB_HOST`).
    ConfigMap {
        /// The ConfigMap.
        name: String,
        /// Its key.
        key: String,
    },
    /// Key `key` of Secret `name` (seed 002's `DATABASE_URL`).
    Secret {
        /// The Secret.
        name: String,
        /// Its key.
        key: String,
    },
    /// Variable `var` of the first container of Deployment `name` (seed 003's
    /// `DATABASE_HOST`).
    DeploymentEnv {
        /// The Deployment.
        name: String,
        /// The variable.
        var: String,
    },
    /// Variable `var` of an env file (seed 004's `.env`).
    EnvFile {
        /// The file.
        path: PathBuf,
        /// The variable.
        var: String,
    },
}

/// How the app is set up.
#[derive(Clone)]
pub struct AppOptions {
    /// The test API it reads (not needed for an env file).
    pub objects: Option<Objects>,
    /// The namespace its objects are in.
    pub namespace: String,
    /// Where it finds the database.
    pub source: Source,
    /// The connection URL, `{}` standing for the value found (`postgres://app:pw@{}/shop`
    /// for a host, `{}` alone for a whole URL).
    pub dsn: String,
    /// The Deployment that runs it: scaled to zero, the app refuses traffic.
    pub deployment: Option<String>,
    /// The table `/health` counts and `/items` writes (`items`).
    pub table: String,
    /// While this file exists the app is stopped (`docker compose stop backend` in a
    /// compose deployment): it refuses traffic.
    pub stopped_when: Option<PathBuf>,
}

/// A running test app; it stops when dropped.
pub struct TestApp {
    port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestApp {
    /// Starts on a free port, on its own runtime.
    #[must_use]
    pub fn start(options: AppOptions) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("an address").port();
        let listener = {
            let _in = rt.enter();
            tokio::net::TcpListener::from_std(listener).expect("a tokio socket")
        };
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let o = options.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let o = o.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(http_body_util::Collected::to_bytes)
                                    .unwrap_or_default();
                                let body: Value =
                                    serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                                let (status, doc) =
                                    answer(&o, parts.method.as_str(), parts.uri.path(), &body)
                                        .await;
                                Ok::<_, Infallible>(
                                    Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(doc.to_string())))
                                        .expect("a response"),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self {
            port,
            runtime: Some(rt),
        }
    }

    /// `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn down(why: impl Into<String>) -> (u16, Value) {
    (503, json!({"status": "down", "why": why.into()}))
}

async fn answer(o: &AppOptions, method: &str, path: &str, body: &Value) -> (u16, Value) {
    if let Some(why) = scaled_away(o) {
        return down(why);
    }
    if let Some(flag) = o.stopped_when.as_ref().filter(|f| f.exists()) {
        return down(format!("stopped ({} exists)", flag.display()));
    }
    let dsn = match found(o) {
        Ok(v) => o.dsn.replace("{}", &v),
        Err(why) => return down(why),
    };
    let client = match connect(&dsn).await {
        Ok(c) => c,
        Err(why) => return down(why),
    };
    let table = &o.table;
    match (method, path) {
        ("GET", "/health") => {
            match client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
            {
                Ok(row) => (
                    200,
                    json!({"status": "ok", "database": host_of(&dsn), "rows": row.get::<_, i64>(0)}),
                ),
                Err(e) => down(format!("counting {table}: {e}")),
            }
        }
        ("POST", "/login") => {
            let (user, password) = (
                body["user"].as_str().unwrap_or_default(),
                body["password"].as_str().unwrap_or_default(),
            );
            match client
                .query_opt(
                    "SELECT 1 FROM users WHERE name = $1 AND password = $2",
                    &[&user, &password],
                )
                .await
            {
                Ok(Some(_)) => (200, json!({"token": format!("token-for-{user}")})),
                Ok(None) => (401, json!({"error": "wrong user or password"})),
                Err(e) => down(format!("reading users: {e}")),
            }
        }
        ("POST", "/items") => {
            let sku = body["sku"].as_str().unwrap_or("SKU-new");
            match client
                .query_one(
                    &format!(
                        "INSERT INTO {table} (id, sku, qty, price) SELECT coalesce(max(id), 0) + 1, $1, 1, 1 FROM {table} RETURNING id"
                    ),
                    &[&sku],
                )
                .await
            {
                Ok(row) => (201, json!({"id": row.get::<_, i64>(0)})),
                Err(e) => down(format!("writing {table}: {e}")),
            }
        }
        _ => (404, json!({"error": format!("no {method} {path}")})),
    }
}

/// Why the app is not running: its Deployment scaled to zero (or gone).
fn scaled_away(o: &AppOptions) -> Option<String> {
    let (name, objects) = (o.deployment.as_ref()?, o.objects.as_ref()?);
    match objects.object("apps/v1", "deployments", &o.namespace, name) {
        None => Some(format!("deployment {name} does not exist")),
        Some(d) if d["spec"]["replicas"].as_i64() == Some(0) => {
            Some(format!("deployment {name} is scaled to zero"))
        }
        Some(_) => None,
    }
}

/// The value the app's configuration holds now.
fn found(o: &AppOptions) -> Result<String, String> {
    let objects = || {
        o.objects
            .as_ref()
            .ok_or("no Kubernetes API to read".to_owned())
    };
    let ns = &o.namespace;
    match &o.source {
        Source::ConfigMap { name, key } => objects()?
            .object("v1", "configmaps", ns, name)
            .and_then(|c| c["data"][key].as_str().map(str::to_owned))
            .ok_or(format!("configmap {name} has no key {key}")),
        Source::Secret { name, key } => {
            let s = objects()?
                .object("v1", "secrets", ns, name)
                .ok_or(format!("secret {name} does not exist"))?;
            let b64 = s["data"][key]
                .as_str()
                .ok_or(format!("secret {name} has no key {key}"))?;
            let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                .map_err(|e| format!("secret {name} key {key}: {e}"))?;
            String::from_utf8(raw).map_err(|e| format!("secret {name} key {key}: {e}"))
        }
        Source::DeploymentEnv { name, var } => objects()?
            .object("apps/v1", "deployments", ns, name)
            .and_then(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_array()
                    .and_then(|env| env.iter().find(|e| e["name"] == var.as_str()))
                    .and_then(|e| e["value"].as_str().map(str::to_owned))
            })
            .ok_or(format!("deployment {name} has no env {var}")),
        Source::EnvFile { path, var } => std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{var}="))
                    .map(|v| v.trim().trim_matches('"').to_owned())
            })
            .ok_or(format!("{} has no {var}", path.display())),
    }
}

async fn connect(dsn: &str) -> Result<tokio_postgres::Client, String> {
    let connecting = tokio_postgres::connect(dsn, tokio_postgres::NoTls);
    let (client, conn) = tokio::time::timeout(Duration::from_secs(3), connecting)
        .await
        .map_err(|_| format!("{} does not answer", host_of(dsn)))?
        .map_err(|e| format!("connecting to {}: {e}", host_of(dsn)))?;
    tokio::spawn(conn);
    Ok(client)
}

/// `host:port/db` of a URL, without its user or password.
fn host_of(dsn: &str) -> String {
    let rest = dsn.split_once("://").map_or(dsn, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// One HTTP request to the app (or any plain-HTTP server on 127.0.0.1): its status and
/// JSON body (`null` when the body is not JSON).
///
/// # Panics
/// When nothing listens at `url`.
#[must_use]
pub fn request(method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut tcp = std::net::TcpStream::connect(host).expect("the server answers");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("a request sent");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("an answer");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}
