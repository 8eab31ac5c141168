//! The cluster a Kubernetes test runs against: the test API by default, or a real
//! cluster when `DRKIT_TEST_KUBECONFIG` names a kubeconfig (its current context, or
//! `DRKIT_TEST_CONTEXT`).
//!
//! Either way a test sees the same things: a kubeconfig whose context `dr` points at the
//! cluster with the test's own namespace as its default, fixtures it creates and reads
//! back, and a way to wait until the cluster has settled. On a real cluster every
//! namespace a test uses is `drkit-test-<id>-<name>` and is deleted when the test ends;
//! images are ones a real cluster can pull ([`PAUSE`], [`BUSYBOX`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::K8sTestApi;

/// The variable that points the Kubernetes tests at a real cluster.
pub const REAL_CLUSTER_VAR: &str = "DRKIT_TEST_KUBECONFIG";

/// Images that a real cluster can pull and run without arguments; three tags for tests
/// of rollouts.
pub const PAUSE: [&str; 3] = [
    "registry.k8s.io/pause:3.8",
    "registry.k8s.io/pause:3.9",
    "registry.k8s.io/pause:3.10",
];

/// A shell image, for containers that print lines and wait.
pub const BUSYBOX: &str = "busybox:1.36";

/// The cluster of one test; it cleans up when dropped.
pub struct TestCluster {
    fake: Option<K8sTestApi>,
    kubeconfig: PathBuf,
    id: String,
    namespace: String,
    made: Mutex<Vec<String>>,
    _dir: tempfile::TempDir,
}

/// The context name every test's kubeconfig has.
pub const CONTEXT: &str = "dr";

impl TestCluster {
    /// The test API (controllers ticking every 100 ms), or the real cluster of
    /// `DRKIT_TEST_KUBECONFIG`, with a fresh namespace as the context's default.
    #[must_use]
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let kubeconfig = dir.path().join("kubeconfig");
        match std::env::var_os(REAL_CLUSTER_VAR) {
            None => {
                let api = K8sTestApi::start();
                api.write_kubeconfig(&kubeconfig, CONTEXT);
                Self {
                    fake: Some(api),
                    kubeconfig,
                    id: String::new(),
                    namespace: "default".into(),
                    made: Mutex::new(Vec::new()),
                    _dir: dir,
                }
            }
            Some(real) => {
                let id = unique_id();
                let namespace = format!("drkit-test-{id}");
                derive_kubeconfig(Path::new(&real), &kubeconfig, &namespace);
                let c = Self {
                    fake: None,
                    kubeconfig,
                    id,
                    namespace: namespace.clone(),
                    made: Mutex::new(vec![namespace.clone()]),
                    _dir: dir,
                };
                c.kubectl_ok(&["create", "namespace", &namespace]);
                c.wait_for_default_service_account(&namespace);
                c
            }
        }
    }

    /// The test API, when the test runs against it (`None` on a real cluster).
    #[must_use]
    pub fn fake(&self) -> Option<&K8sTestApi> {
        self.fake.as_ref()
    }

    /// Whether this is a real cluster.
    #[must_use]
    pub fn is_real(&self) -> bool {
        self.fake.is_none()
    }

    /// The test API; on a real cluster, says that the test needs the test API's fault
    /// injection and returns `None` (the test then ends: it ran in the run without
    /// `DRKIT_TEST_KUBECONFIG`).
    #[must_use]
    pub fn fake_only(&self, why: &str) -> Option<&K8sTestApi> {
        if self.fake.is_none() {
            eprintln!(
                "NOT ON A REAL CLUSTER: {why} needs the test API's fault injection; it runs without {REAL_CLUSTER_VAR}"
            );
        }
        self.fake.as_ref()
    }

    /// The kubeconfig (context [`CONTEXT`]).
    #[must_use]
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The test's own namespace, the context's default: `default` on the test API.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A further namespace of this test: `name` on the test API; on a real cluster a
    /// name of this test's own, deleted when the test ends. Nothing is created.
    #[must_use]
    pub fn ns(&self, name: &str) -> String {
        if self.fake.is_some() {
            return name.to_owned();
        }
        let full = format!("drkit-test-{}-{name}", self.id);
        self.made.lock().expect("namespaces").push(full.clone());
        full
    }

    /// How long a wait may take: image pulls and schedulers make a real cluster slower.
    #[must_use]
    pub fn patience(&self) -> Duration {
        if self.fake.is_some() {
            Duration::from_mins(1)
        } else {
            Duration::from_mins(5)
        }
    }

    /// Creates `obj` (its namespace, when it has none, is the test's) and returns it as
    /// stored.
    pub fn create(&self, mut obj: Value) -> Value {
        let namespaced = obj["kind"] != "Namespace";
        if namespaced && obj["metadata"]["namespace"].is_null() {
            obj["metadata"]["namespace"] = Value::String(self.namespace.clone());
        }
        if let Some(api) = &self.fake {
            return api.create(obj);
        }
        let out = self.kubectl_stdin(&["create", "-f", "-", "-o", "json"], &obj.to_string());
        serde_json::from_str(&out).expect("kubectl create printed JSON")
    }

    /// The object `apiVersion`/`plural` `namespace`/`name` (`namespace` empty for
    /// cluster-scoped ones) as the server has it, `None` when there is none.
    #[must_use]
    pub fn object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        if let Some(api) = &self.fake {
            return api.object(api_version, plural, namespace, name);
        }
        let resource = resource(api_version, plural);
        let mut args = vec!["get", resource.as_str(), name, "-o", "json"];
        if !namespace.is_empty() {
            args.extend(["-n", namespace]);
        }
        let out = super::kubectl(&self.kubeconfig, &args).expect("kubectl");
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).expect("kubectl printed JSON"));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "kubectl {args:?}: {err}"
        );
        None
    }

    /// Every object of `apiVersion`/`plural` in `namespace`.
    #[must_use]
    pub fn objects(&self, api_version: &str, plural: &str, namespace: &str) -> Vec<Value> {
        if let Some(api) = &self.fake {
            return api.objects(api_version, plural, namespace);
        }
        let resource = resource(api_version, plural);
        let list = super::kubectl_json(&self.kubeconfig, &["get", &resource, "-n", namespace])
            .expect("kubectl");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `done` holds (the test API's controllers stepped by hand, a real
    /// cluster polled twice a second); panics naming `what` when it never does.
    pub fn settle(&self, what: &str, done: impl Fn(&Self) -> bool) {
        if let Some(api) = &self.fake {
            assert!(api.tick_until(200, |_| done(self)), "never settled: {what}");
            return;
        }
        let deadline = Instant::now() + self.patience();
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "never settled within {:?}: {what}",
                self.patience()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn wait_for_default_service_account(&self, namespace: &str) {
        // Pods are refused until the service account controller made `default`.
        let deadline = Instant::now() + Duration::from_mins(1);
        while self
            .object("v1", "serviceaccounts", namespace, "default")
            .is_none()
        {
            assert!(
                Instant::now() < deadline,
                "no default ServiceAccount in {namespace}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = super::kubectl(&self.kubeconfig, args).expect("kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn kubectl_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write as _;
        let mut child = super::kubectl_command(&self.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("written to kubectl");
        let out = child.wait_with_output().expect("kubectl ends");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if self.fake.is_some() {
            return;
        }
        let made = std::mem::take(&mut *self.made.lock().expect("namespaces"));
        let mut args = vec!["delete", "namespace", "--ignore-not-found", "--wait=false"];
        args.extend(made.iter().map(String::as_str));
        let _ = super::kubectl(&self.kubeconfig, &args);
    }
}

/// kubectl's name for a resource: `deployments.v1.apps`, or `pods` for the core group.
fn resource(api_version: &str, plural: &str) -> String {
    match api_version.split_once('/') {
        Some((group, version)) => format!("{plural}.{version}.{group}"),
        None => plural.to_owned(),
    }
}

/// A kubeconfig of the one context of `real` to use (`DRKIT_TEST_CONTEXT` or its
/// current one), credentials embedded, renamed [`CONTEXT`], with `namespace` as default.
fn derive_kubeconfig(real: &Path, to: &Path, namespace: &str) {
    let mut view = super::kubectl_command(real);
    view.args(["config", "view", "--raw", "--minify", "--flatten"]);
    if let Some(c) = std::env::var_os("DRKIT_TEST_CONTEXT") {
        view.arg("--context").arg(c);
    }
    let out = view.output().expect("kubectl runs");
    assert!(
        out.status.success(),
        "{REAL_CLUSTER_VAR}={}: kubectl config view: {}",
        real.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(to, &out.stdout).expect("kubeconfig written");
    let current = super::kubectl_command(to)
        .args(["config", "current-context"])
        .output()
        .expect("kubectl runs");
    let current = String::from_utf8_lossy(&current.stdout).trim().to_owned();
    assert!(
        !current.is_empty(),
        "{} names no context to use (set DRKIT_TEST_CONTEXT)",
        real.display()
    );
    for args in [
        vec!["config", "rename-context", current.as_str(), CONTEXT],
        vec!["config", "set-context", CONTEXT, "--namespace", namespace],
    ] {
        let out = super::kubectl_command(to)
            .args(&args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Eight hex digits, different for every test of every process.
fn unique_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mixed =
        (nanos ^ std::process::id().rotate_left(16)).wrapping_add(n.wrapping_mul(0x9e37_79b9));
    format!("{mixed:08x}")
}
