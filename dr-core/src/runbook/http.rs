//! The HTTP client of checks and notifiers: HTTPS with the system's root certificates,
//! never through an HTTP proxy (a health check must see the service, not a proxy), one
//! deadline per request.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::{err, Result};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

fn client() -> Result<&'static Client<Https, Full<Bytes>>> {
    static CLIENT: OnceLock<std::result::Result<Client<Https, Full<Bytes>>, String>> =
        OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("reading the system's root certificates: {e}"))?
                .https_or_http()
                .enable_http1()
                .build();
            Ok(Client::builder(TokioExecutor::new()).build(https))
        })
        .as_ref()
        .map_err(|e| err!(Unavailable, "{e}"))
}

/// What came back.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
    pub retry_after: Option<Duration>,
}

/// What a request carries.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    /// Nothing.
    Empty,
    /// JSON, sent as `application/json`.
    Json(&'a serde_json::Value),
    /// Text, sent as `text/plain` unless a header says otherwise.
    Text(&'a str),
}

/// One request. `shown` is how errors name the destination (never a webhook's URL).
pub(crate) async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: Body<'_>,
    timeout: Duration,
    shown: &str,
) -> Result<Reply> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("user-agent", concat!("drkit/", env!("CARGO_PKG_VERSION")));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let has_type = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let payload = match body {
        Body::Json(b) => {
            if !has_type {
                req = req.header("content-type", "application/json");
            }
            Bytes::from(serde_json::to_vec(b).expect("JSON serializes"))
        }
        Body::Text(t) => {
            if !has_type {
                req = req.header("content-type", "text/plain; charset=utf-8");
            }
            Bytes::from(t.to_owned())
        }
        Body::Empty => Bytes::new(),
    };
    let req = req.body(Full::new(payload)).map_err(|_| {
        err!(
            InvalidInput,
            "{shown}: not a valid HTTP request (check the URL)"
        )
    })?;
    let started = Instant::now();
    let work = async {
        let resp = client()?
            .request(req)
            .await
            .map_err(|e| err!(Unavailable, "{shown}: {}", crate::error::chain(&e)))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| err!(Unavailable, "{shown}: reading the answer: {e}"))?
            .to_bytes();
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&body[..body.len().min(64 << 10)]).into_owned(),
            elapsed: started.elapsed(),
            retry_after,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| {
            Err(err!(
                Timeout,
                "{shown}: no answer within {}",
                crate::duration::format(timeout)
            ))
        })
}
