//! A stateful Kubernetes API for tests, on 127.0.0.1 (no cluster can run on these
//! machines), checked against `kubectl`. What it does, and what it leaves out, is written
//! down in `tests/testkit/K8S_TEST_API.md`.

mod cluster;
mod controllers;
mod kinds;
mod patch;
mod protobuf;
mod select;
mod server;
mod state;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub use cluster::{TestCluster, BUSYBOX, CONTEXT, PAUSE, REAL_CLUSTER_VAR};
pub use controllers::template_hash;
pub use state::Faults;
use state::State;

/// The token the test API takes (any other is 401 when `require_token` is set).
pub const TOKEN: &str = "drkit-test-token";

/// How the test API runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Controllers step on their own every `tick`; `None`: only on [`K8sTestApi::tick`].
    pub tick: Option<Duration>,
    /// Port, 0 for any free one.
    pub port: u16,
    /// HTTPS with a certificate for 127.0.0.1 and localhost signed by a CA made for this
    /// server (written into kubeconfigs as `certificate-authority-data`).
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tick: Some(Duration::from_millis(100)),
            port: 0,
            tls: false,
        }
    }
}

/// A running test API; it stops when dropped.
pub struct K8sTestApi {
    port: u16,
    ca: Option<String>,
    state: Arc<Mutex<State>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl K8sTestApi {
    /// Starts with controllers ticking every 100 ms, on its own runtime (usable from
    /// synchronous tests and inside async ones alike).
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(&Options::default())
    }

    /// Starts with `options`.
    #[must_use]
    pub fn start_with(options: &Options) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let state = Arc::new(Mutex::new(State::new()));
        let std_listener =
            std::net::TcpListener::bind(("127.0.0.1", options.port)).expect("a port");
        std_listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let listener = {
            let _in = rt.enter();
            tokio::net::TcpListener::from_std(std_listener).expect("a tokio socket")
        };
        let port = listener.local_addr().expect("an address").port();
        let (acceptor, ca) = if options.tls {
            let (acceptor, ca) = tls_acceptor();
            (Some(acceptor), Some(ca))
        } else {
            (None, None)
        };
        let mut tasks = vec![rt.spawn(server::serve(listener, state.clone(), acceptor))];
        if let Some(every) = options.tick {
            let st = state.clone();
            tasks.push(rt.spawn(async move {
                let mut t = tokio::time::interval(every);
                // A slow tick (thousands of objects) delays the next, never stacks them.
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    t.tick().await;
                    controllers::tick_shared(&st);
                }
            }));
        }
        Self {
            port,
            ca,
            state,
            tasks,
            runtime: Some(rt),
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://…` with TLS.
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The PEM of the CA that signed this server's certificate (with TLS).
    #[must_use]
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca.as_deref()
    }

    /// Writes a kubeconfig with one context, `context`, for this API (namespace
    /// `default`), and makes it the current one.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) {
        write_kubeconfig(path, &[(self, context)]);
    }

    /// Moves the test clock (the server's timestamps) `seconds` ahead.
    pub fn advance_clock(&self, seconds: i64) {
        self.state.lock().expect("state").offset += seconds;
    }

    /// One controller step.
    pub fn tick(&self) {
        controllers::tick_shared(&self.state);
    }

    /// Ticks until `done` holds of the state, at most `max` ticks; whether it did.
    pub fn tick_until(&self, max: usize, done: impl Fn(&Self) -> bool) -> bool {
        for _ in 0..max {
            if done(self) {
                return true;
            }
            self.tick();
        }
        done(self)
    }

    /// Sets what the server does wrong.
    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.state.lock().expect("state");
        s.faults = faults;
        s.pending_conflicts.clear();
    }

    /// Answers 403 to `verb` (get, list, watch, create, update, patch, delete) on
    /// `resource` (a plural: deployments).
    pub fn forbid(&self, verb: &str, resource: &str) {
        self.state
            .lock()
            .expect("state")
            .faults
            .forbidden
            .push((verb.to_owned(), resource.to_owned()));
    }

    /// The lines `GET …/pods/NAME/log` answers for pods whose name starts with `prefix`.
    pub fn set_logs(&self, prefix: &str, lines: &[&str]) {
        self.state.lock().expect("state").logs.insert(
            prefix.to_owned(),
            lines.iter().map(|l| (*l).to_owned()).collect(),
        );
    }

    /// The object `apiVersion`/`plural` `namespace`/`name`, as stored.
    #[must_use]
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.objects_handle()
            .object(api_version, plural, namespace, name)
    }

    /// Writes `obj` over the stored object of its name, as a client's PUT would (its
    /// `resourceVersion` ignored): a change made by hand, outside drkit.
    pub fn replace(&self, mut obj: Value) -> Value {
        let mut s = self.state.lock().expect("state");
        let kind = s.kind_of(&obj).expect("a served kind");
        let ns = if kind.namespaced {
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        let name = obj["metadata"]["name"].as_str().expect("a name").to_owned();
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        s.update(kind, &ns, &name, obj, false, false)
            .expect("replaced")
    }

    /// A handle that reads this API's objects from anywhere (the test app reads its
    /// configuration through it, as an app reads a mounted ConfigMap).
    #[must_use]
    pub fn objects_handle(&self) -> Objects {
        Objects(self.state.clone())
    }

    /// Every object of `apiVersion`/`plural` in `namespace`.
    #[must_use]
    pub fn objects(&self, api_version: &str, plural: &str, namespace: &str) -> Vec<Value> {
        let rk = format!("{api_version}/{plural}");
        self.state
            .lock()
            .expect("state")
            .objects
            .iter()
            .filter(|((r, ns, _), _)| *r == rk && ns == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Stores `obj` as a client would create it (server fields filled).
    pub fn create(&self, obj: Value) -> Value {
        let mut s = self.state.lock().expect("state");
        let kind = s.kind_of(&obj).expect("a served kind");
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let ns = if kind.namespaced { ns } else { String::new() };
        s.create(kind, &ns, obj, false).expect("created")
    }

    /// The requests served so far, as `VERB /path?query`.
    #[must_use]
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("state").requests.clone()
    }
}

impl Drop for K8sTestApi {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Reads the objects of a [`K8sTestApi`]; cheap to clone.
#[derive(Clone)]
pub struct Objects(Arc<Mutex<State>>);

impl Objects {
    /// The object `apiVersion`/`plural` `namespace`/`name`, as stored.
    #[must_use]
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.0
            .lock()
            .expect("state")
            .objects
            .get(&(
                format!("{api_version}/{plural}"),
                namespace.to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }
}

/// Writes one kubeconfig with a context per `(api, name)`; the first is current.
pub fn write_kubeconfig(path: &Path, apis: &[(&K8sTestApi, &str)]) {
    let mut clusters = String::new();
    let mut contexts = String::new();
    for (api, name) in apis {
        let _ = writeln!(
            clusters,
            "- name: {name}\n  cluster:\n    server: {}",
            api.url()
        );
        if let Some(ca) = api.ca_pem() {
            use base64::Engine as _;
            let data = base64::engine::general_purpose::STANDARD.encode(ca);
            let _ = writeln!(clusters, "    certificate-authority-data: {data}");
        }
        let _ = writeln!(
            contexts,
            "- name: {name}\n  context:\n    cluster: {name}\n    user: drkit-test\n    namespace: default"
        );
    }
    let current = apis.first().map_or("", |(_, n)| n);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n- name: drkit-test\n  user:\n    token: {TOKEN}\ncontexts:\n{contexts}current-context: {current}\npreferences: {{}}\n"
    );
    // Whole or not at all: a script waiting for the file never reads half of it.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("kubeconfig written");
    std::fs::rename(&partial, path).expect("kubeconfig in place");
}

/// A Deployment `name` (label `app: NAME`, one container `app` running `image`) in
/// `namespace`, as a client would send it.
#[must_use]
pub fn deployment(namespace: &str, name: &str, replicas: i64, image: &str) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": image}]}},
        },
    })
}

/// `kubectl` with `kubeconfig`; against the test API its cache lives beside the
/// kubeconfig (a temporary HOME), against a real cluster HOME stays (credential plugins
/// read it).
#[must_use]
pub fn kubectl_command(kubeconfig: &Path) -> std::process::Command {
    let mut c = std::process::Command::new("kubectl");
    c.env("KUBECONFIG", kubeconfig);
    if std::env::var_os(REAL_CLUSTER_VAR).is_none() {
        c.env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")));
    }
    c
}

/// Runs the real `kubectl` with `kubeconfig`; `None` (and a skip, or a failure in CI)
/// when it is not installed.
#[must_use]
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Option<std::process::Output> {
    let out = kubectl_command(kubeconfig).args(args).output();
    if let Ok(o) = out {
        Some(o)
    } else {
        crate::missing(
            "kubectl",
            "install kubectl (it is the referee of the Kubernetes tests)",
        );
        None
    }
}

/// `kubectl … -o json`, parsed; panics with kubectl's error when it fails.
#[must_use]
pub fn kubectl_json(kubeconfig: &Path, args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = kubectl(kubeconfig, &all)?;
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("kubectl printed JSON"))
}

/// A CA made now, and a TLS acceptor whose certificate (127.0.0.1, localhost) it signed.
fn tls_acceptor() -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "drkit Kubernetes test API CA");
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("a CA key")).expect("a CA");
    let key = KeyPair::generate().expect("a server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let cert = params.signed_by(&key, &ca).expect("a server certificate");
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("a TLS configuration");
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        ca.pem(),
    )
}
