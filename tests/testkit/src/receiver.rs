//! An HTTP receiver that records every request (method, path, headers, JSON body), for
//! notification tests: it answers 200 with `{"id": "incident-1"}`, or, for a path given
//! `throttle`, first 429 with `Retry-After: 1`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, `PATCH`.
    pub method: String,
    /// `/slack`.
    pub path: String,
    /// Header values by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// The body, parsed.
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    seen: Vec<Received>,
    throttle: BTreeMap<String, u32>,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts on a free port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let st = st.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(http_body_util::Collected::to_bytes)
                                    .unwrap_or_default();
                                let path = parts.uri.path().to_owned();
                                let received = Received {
                                    method: parts.method.to_string(),
                                    path: path.clone(),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.as_str().to_owned(),
                                                v.to_str().unwrap_or_default().to_owned(),
                                            )
                                        })
                                        .collect(),
                                    body: serde_json::from_slice(&bytes)
                                        .unwrap_or(serde_json::Value::Null),
                                };
                                let mut s = st.lock().unwrap();
                                s.seen.push(received);
                                let throttled = s.throttle.get_mut(&path).is_some_and(|n| {
                                    let hit = *n > 0;
                                    *n = n.saturating_sub(1);
                                    hit
                                });
                                let resp = if throttled {
                                    Response::builder()
                                        .status(429)
                                        .header("retry-after", "1")
                                        .body(Full::new(Bytes::new()))
                                } else {
                                    Response::builder().status(200).body(Full::new(
                                        Bytes::from_static(br#"{"id": "incident-1"}"#),
                                    ))
                                };
                                Ok::<_, Infallible>(resp.unwrap())
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Self { port, state, task }
    }

    /// `http://127.0.0.1:port`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers the next `times` requests to `path` with 429 and `Retry-After: 1`.
    pub fn throttle(&self, path: &str, times: u32) {
        self.state
            .lock()
            .unwrap()
            .throttle
            .insert(path.to_owned(), times);
    }

    /// Every request so far, in order.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
