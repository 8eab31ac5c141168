//! A fault-injecting HTTP proxy between drkit and a real S3 server: it answers some
//! requests with 500/503, drops connections, delays past deadlines or cuts bodies
//! half-way, chosen by request number, method and path.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// What to do to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and an S3-style error body, without forwarding.
    Status(u16),
    /// Close the connection without answering.
    Drop,
    /// Wait this long, then forward.
    Delay(Duration),
    /// Forward, then send only the first half of the response body and break off.
    CutBody,
}

#[derive(Debug, Clone)]
struct Rule {
    fault: Fault,
    every: u64,
    offset: u64,
    method: Option<String>,
    path: Option<String>,
    seen: u64,
}

#[derive(Debug, Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    injected: AtomicU64,
    requests: AtomicU64,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    port: u16,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:3900`) on a free port.
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (st, client, upstream) = (st.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, st.clone(), client.clone(), upstream.clone())
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
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Applies `fault` to every `every`-th request whose method and path match (`None`
    /// matches all).
    pub fn inject(
        &self,
        fault: Fault,
        every: u64,
        method: Option<&str>,
        path_contains: Option<&str>,
    ) {
        self.state.rules.lock().unwrap().push(Rule {
            fault,
            every: every.max(1),
            offset: 0,
            method: method.map(str::to_owned),
            path: path_contains.map(str::to_owned),
            seen: 0,
        });
    }

    /// One fault every `every`-th request, taking `faults` in turn.
    pub fn inject_rotating(&self, faults: &[Fault], every: u64) {
        let every = every.max(1);
        let period = every * faults.len() as u64;
        let mut rules = self.state.rules.lock().unwrap();
        for (i, f) in faults.iter().enumerate() {
            rules.push(Rule {
                fault: *f,
                every: period,
                offset: period - every * (i as u64 + 1) % period,
                method: None,
                path: None,
                seen: 0,
            });
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Faults injected so far.
    #[must_use]
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::Relaxed)
    }

    /// Requests seen so far.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pick(state: &State, method: &str, path: &str) -> Option<Fault> {
    let mut rules = state.rules.lock().unwrap();
    let mut chosen = None;
    // Every rule counts every request it matches; the first that fires applies.
    for rule in rules.iter_mut() {
        let matches = rule.method.as_deref().is_none_or(|m| m == method)
            && rule.path.as_deref().is_none_or(|p| path.contains(p));
        if matches {
            rule.seen += 1;
            if (rule.seen + rule.offset) % rule.every == 0 && chosen.is_none() {
                chosen = Some(rule.fault);
            }
        }
    }
    if chosen.is_some() {
        state.injected.fetch_add(1, Ordering::Relaxed);
    }
    chosen
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: String,
) -> Result<Response<Body>, Box<dyn std::error::Error + Send + Sync>> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let path = req
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    let fault = pick(&state, req.method().as_str(), &path);
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    match fault {
        Some(Fault::Status(code)) => {
            let (tag, msg) = if code == 503 {
                ("SlowDown", "Please reduce your request rate.")
            } else {
                (
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                )
            };
            let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{tag}</Code><Message>{msg}</Message></Error>");
            return Ok(Response::builder()
                .status(code)
                .header("content-type", "application/xml")
                .body(full(Bytes::from(xml)))
                .unwrap());
        }
        Some(Fault::Drop) => return Err("fault proxy: dropped connection".into()),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::CutBody) | None => {}
    }
    let mut fwd = Request::from_parts(parts, Full::new(body));
    *fwd.uri_mut() = format!("{upstream}{path}").parse()?;
    let resp = client.request(fwd).await?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    if fault == Some(Fault::CutBody) && bytes.len() > 1 {
        let half = bytes.slice(..bytes.len() / 2);
        let frames: Vec<Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>> =
            vec![Ok(Frame::data(half)), Err("fault proxy: body cut".into())];
        let stream = StreamBody::new(futures::stream::iter(frames));
        return Ok(Response::from_parts(parts, BoxBody::new(stream)));
    }
    Ok(Response::from_parts(parts, full(bytes)))
}

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|e: Infallible| match e {}).boxed()
}
