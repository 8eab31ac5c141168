//! Manifests that run drkit in a cluster: a CronJob per schedule (or a Job for a one-off
//! run or drill), its ServiceAccount with the least RBAC the work needs (the run's Lease,
//! the objects the runbook's `k8s.*` steps touch), the runbook in a ConfigMap, the
//! repository's secrets from a Secret, and a pod that runs as non-root on a read-only
//! root filesystem. Kubernetes is the scheduler: a Job stopped by an eviction or a drain
//! leaves a resumable run, which the Job's next pod — or the schedule's next Job —
//! finishes (`--resume-or-start`); a firing that runs twice runs once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use dr_core::runbook::Runbook;
use dr_core::{err, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where the runbook is mounted in the pod.
pub const RUNBOOK_DIR: &str = "/etc/drkit/runbooks";

/// What the pod runs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Work {
    /// `drkit backup` of the URL in the Secret's key `source_key` (a password stays in
    /// the Secret).
    Backup {
        /// The key of the Secret that holds the database URL.
        source_key: String,
    },
    /// `drkit run` of a runbook file, as the schedule's keyed run.
    Run {
        /// The runbook (YAML), read now: put into a ConfigMap, and its steps tell the RBAC.
        runbook: PathBuf,
    },
    /// `drkit drill` of a runbook file with a `drill:` section.
    Drill {
        /// The drill runbook (YAML).
        runbook: PathBuf,
    },
    /// `drkit prune` with the repository's retention flags.
    Prune {
        /// The flags given to `drkit prune` (`--keep-daily 7`, …).
        #[serde(default)]
        args: Vec<String>,
    },
}

/// What `drkit k8s render` makes: the typed options every frontend builds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderOptions {
    /// What the pod runs.
    pub work: Work,
    /// The name of the CronJob or Job (and the prefix of everything else).
    pub name: String,
    /// The namespace drkit runs in (its Lease, Secret, ConfigMap, ServiceAccount).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// A cron schedule (`0 2 * * *`): a CronJob; none: one Job.
    #[serde(default)]
    pub schedule: Option<String>,
    /// The CronJob's time zone (`Europe/Lisbon`); the controller's by default.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The image holding the `drkit` binary and the PostgreSQL client programs.
    pub image: String,
    /// The repository URL (`s3://bucket/prefix`).
    pub repo: String,
    /// The Secret whose keys become the pod's environment: `DRKIT_PASSWORD` (or
    /// `DRKIT_KEY_FILE`'s key), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, database
    /// URLs and the runbook's secret variables.
    pub secret: String,
    /// Extra environment (`AWS_REGION`, `AWS_ENDPOINT_URL`), not secret.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The Lease the run locks (default: the name).
    #[serde(default)]
    pub lease: Option<String>,
    /// How long the lock lasts unless renewed (`--lock-ttl`): how soon a killed pod's run
    /// is taken over.
    #[serde(default = "default_lock_ttl", with = "dr_core::duration::human")]
    #[schemars(with = "String")]
    pub lock_ttl: Duration,
    /// Longest a Job may run before Kubernetes stops it (`activeDeadlineSeconds`).
    #[serde(default, with = "dr_core::duration::human::option")]
    #[schemars(with = "Option<String>")]
    pub deadline: Option<Duration>,
    /// How late a missed schedule may still start (`startingDeadlineSeconds`).
    #[serde(
        default = "default_starting_deadline",
        with = "dr_core::duration::human"
    )]
    #[schemars(with = "String")]
    pub starting_deadline: Duration,
    /// How long a finished Job is kept (`ttlSecondsAfterFinished`).
    #[serde(default = "default_keep_finished", with = "dr_core::duration::human")]
    #[schemars(with = "String")]
    pub keep_finished: Duration,
    /// Finished Jobs a CronJob keeps, of each outcome.
    #[serde(default = "default_history")]
    pub history: u32,
    /// CPU request and limit (`500m`, `2`).
    #[serde(default = "default_cpu")]
    pub cpu: (String, String),
    /// Memory request and limit (`256Mi`, `1Gi`).
    #[serde(default = "default_memory")]
    pub memory: (String, String),
    /// Size of the pod's scratch folder (/tmp), where restores spool.
    #[serde(default = "default_scratch")]
    pub scratch: String,
}

fn default_namespace() -> String {
    "drkit".to_owned()
}
fn default_lock_ttl() -> Duration {
    Duration::from_mins(1)
}
fn default_starting_deadline() -> Duration {
    Duration::from_mins(10)
}
fn default_keep_finished() -> Duration {
    Duration::from_hours(24 * 7)
}
fn default_history() -> u32 {
    3
}
fn default_cpu() -> (String, String) {
    ("500m".to_owned(), "2".to_owned())
}
fn default_memory() -> (String, String) {
    ("256Mi".to_owned(), "1Gi".to_owned())
}
fn default_scratch() -> String {
    "2Gi".to_owned()
}

/// The manifests, in the order `kubectl apply -f` should create them, and what the
/// renderer noticed about the runbook.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Rendered {
    /// The objects.
    pub objects: Vec<Value>,
    /// Things to know before applying them (a target that is not in-cluster, a
    /// namespace given by an expression and granted cluster-wide).
    pub notes: Vec<String>,
}

impl Rendered {
    /// The objects as one multi-document YAML text, the notes as comments on top.
    pub fn yaml(&self) -> Result<String> {
        let mut out = String::new();
        for n in &self.notes {
            out.push_str("# note: ");
            out.push_str(n);
            out.push('\n');
        }
        for o in &self.objects {
            out.push_str("---\n");
            out.push_str(
                &serde_saphyr::to_string(o)
                    .map_err(|e| err!(Io, "writing a manifest as YAML: {e}"))?,
            );
        }
        Ok(out)
    }
}

/// One RBAC rule: API group, resources, verbs.
type Rule = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const READ: &[&str] = &["get", "list", "watch"];
const WORKLOADS: &[&str] = &["deployments", "statefulsets"];

const fn r(
    group: &'static str,
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
) -> Rule {
    (group, resources, verbs)
}

const WRITE: &[&str] = &["get", "list", "watch", "patch", "update"];

/// What each of this crate's actions does to the cluster, as RBAC rules: the actions
/// are this crate's, so their needs are written down beside them. Rules on namespaces
/// or on every kind (`*`) are granted cluster-wide.
fn rules_of(action: &str) -> Option<Vec<Rule>> {
    let pods = r("", &["pods"], READ);
    Some(match action {
        "k8s.scale" | "disaster.k8s_scale_zero" => vec![
            r("apps", WORKLOADS, READ),
            r(
                "apps",
                &["deployments/scale", "statefulsets/scale"],
                &["get", "patch", "update"],
            ),
            pods,
        ],
        "k8s.wait_ready" | "k8s.wait_available" | "k8s.rollout_status" => vec![
            r(
                "apps",
                &["deployments", "statefulsets", "replicasets"],
                READ,
            ),
            pods,
        ],
        "k8s.rollout_undo" => vec![
            r("apps", WORKLOADS, WRITE),
            r("apps", &["replicasets", "controllerrevisions"], READ),
            pods,
        ],
        "k8s.restart" | "k8s.set_env" => vec![
            r("apps", WORKLOADS, WRITE),
            r("apps", &["replicasets"], READ),
            pods,
        ],
        "k8s.secret_set" | "k8s.secret_rotate" | "k8s.secret_restore" => vec![
            r("", &["secrets"], &["get", "create", "update", "patch"]),
            r("apps", WORKLOADS, WRITE),
            pods,
        ],
        "k8s.configmap_set" => vec![
            r("", &["configmaps"], &["get", "create", "update", "patch"]),
            r("apps", WORKLOADS, WRITE),
            pods,
        ],
        "k8s.pod_delete" => vec![r("", &["pods"], &["get", "list", "watch", "delete"])],
        "k8s.logs" => vec![pods, r("", &["pods/log"], &["get"])],
        "k8s.maintenance" => vec![
            r(
                "networking.k8s.io",
                &["ingresses"],
                &["get", "patch", "update"],
            ),
            r("", &["services"], &["get", "create", "update", "patch"]),
        ],
        "k8s.namespace_create" | "k8s.namespace_delete" | "disaster.namespace_delete" => {
            vec![r(
                "",
                &["namespaces"],
                &["get", "list", "watch", "create", "delete"],
            )]
        }
        "disaster.k8s_delete" => vec![r("apps", WORKLOADS, &["get", "delete"])],
        "k8s.export" => vec![r("*", &["*"], READ)],
        "k8s.apply" => vec![r(
            "*",
            &["*"],
            &["get", "list", "watch", "create", "patch", "update"],
        )],
        _ => return None,
    })
}

/// Where a runbook's Kubernetes steps act, and what they need there.
#[derive(Default)]
struct Access {
    /// Rules by namespace, for the namespaces written out.
    by_namespace: BTreeMap<String, BTreeSet<Rule>>,
    /// Rules granted cluster-wide.
    cluster: BTreeSet<Rule>,
    /// What to tell the person applying them.
    notes: Vec<String>,
}

/// What a runbook's Kubernetes steps need, by namespace: a step's `namespace:`, else its
/// target's, else the pod's own (`release`); one given by an expression is granted
/// cluster-wide.
fn access(rb: &Runbook, release: &str) -> Access {
    let mut a = Access::default();
    for (name, t) in &rb.targets {
        if t.kind.starts_with("kubernetes") && t.fields.get("in_cluster") != Some(&json!(true)) {
            a.notes.push(format!(
                "target {name:?} ({}) is not in_cluster: true; inside the pod there is no kubeconfig, so give it `in_cluster: true` (a variable can choose: in_cluster: ${{vars.in_cluster}})",
                t.kind
            ));
        }
    }
    for step in &rb.steps {
        let Some(rules) = rules_of(&step.action) else {
            continue;
        };
        let literal = |v: Option<&Value>| -> Option<Option<String>> {
            match v {
                None => None,
                Some(Value::String(s)) if !s.contains("${") => Some(Some(s.clone())),
                Some(_) => Some(None),
            }
        };
        let target_ns = step
            .with
            .get("target")
            .and_then(Value::as_str)
            .and_then(|t| rb.targets.get(t))
            .and_then(|t| literal(t.fields.get("namespace")));
        let ns = literal(step.with.get("namespace"))
            .or(target_ns)
            .unwrap_or_else(|| Some(release.to_owned()));
        for rule in rules {
            match &ns {
                Some(ns) if !rule.1.contains(&"namespaces") && rule.0 != "*" => {
                    a.by_namespace.entry(ns.clone()).or_default().insert(rule);
                }
                _ => {
                    a.cluster.insert(rule);
                }
            }
        }
        if ns.is_none() {
            a.notes.push(format!(
                "step {:?} ({}) names its namespace by an expression: its access is granted in every namespace (a ClusterRoleBinding); write the namespace out to narrow it",
                step.id, step.action
            ));
        }
        if step.action == "k8s.export" || step.action == "k8s.apply" {
            a.notes.push(format!(
                "step {:?} ({}) reads{} any kind: its rule covers every resource; narrow it by hand if the kinds are known",
                step.id,
                step.action,
                if step.action == "k8s.apply" { " and writes" } else { "" }
            ));
        }
    }
    a
}

fn rule_json(rules: impl IntoIterator<Item = Rule>) -> Vec<Value> {
    // One rule per (group, resource), verbs merged: what `kubectl describe role` reads best.
    let mut merged: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for (group, resources, verbs) in rules {
        for &resource in resources {
            merged
                .entry((group, resource))
                .or_default()
                .extend(verbs.iter().copied());
        }
    }
    merged
        .into_iter()
        .map(|((group, resource), verbs)| {
            json!({ "apiGroups": [group], "resources": [resource], "verbs": verbs })
        })
        .collect()
}

fn labels(o: &RenderOptions) -> Value {
    json!({
        "app.kubernetes.io/name": "drkit",
        "app.kubernetes.io/instance": o.name,
        "app.kubernetes.io/managed-by": "drkit",
    })
}

fn meta(o: &RenderOptions, name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({ "name": name, "labels": labels(o) });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// Checks a Kubernetes object name (RFC 1123 label, as Jobs need).
fn check_name(what: &str, name: &str, max: usize) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(err!(
            InvalidInput,
            "{what} {name:?} is not a Kubernetes name: lower-case letters, digits and '-', at most {max} characters, starting and ending with a letter or digit"
        ))
    }
}

/// The manifests for `o`; the runbook, for run and drill, read from its file now.
pub fn render(o: &RenderOptions) -> Result<Rendered> {
    check(o)?;
    let lease = o.lease.clone().unwrap_or_else(|| o.name.clone());
    check_name("lease", &lease, 253)?;
    let mut notes = Vec::new();
    let mut objects = Vec::new();

    // The command, and for runbooks the ConfigMap and the rules their steps need.
    let lock = format!("k8s:in-cluster/{}/{lease}", o.namespace);
    let ttl = format!("{}s", o.lock_ttl.as_secs().max(1));
    let mut args: Vec<String> = vec![
        "--result-file".into(),
        "/dev/termination-log".into(),
        "--quiet".into(),
    ];
    let mut needs = Access::default();
    let mut config_map = None;
    match &o.work {
        Work::Backup { source_key } => {
            args.extend([
                "backup".into(),
                format!("$(DRKIT_SOURCE_{})", env_name(source_key)),
            ]);
        }
        Work::Prune { args: flags } => {
            args.extend(["prune".into(), "--lock".into(), lock.clone()]);
            args.extend(flags.iter().cloned());
        }
        Work::Run { runbook } | Work::Drill { runbook } => {
            let text = std::fs::read_to_string(runbook).map_err(|e| {
                dr_core::Error::io(format!("reading runbook {}", runbook.display()), e)
            })?;
            let (rb, map, problems) = dr_core::runbook::read_file(runbook)?;
            if !problems.is_empty() {
                return Err(dr_core::runbook::report_problems(&map.origin, &problems));
            }
            if rb.steps.iter().any(|st| st.id.contains('/')) {
                notes.push(format!(
                    "{} includes other files (uses:); only it is put in the ConfigMap: add the files it uses to the image or to the ConfigMap, at the same relative paths under {RUNBOOK_DIR}",
                    runbook.display()
                ));
            }
            let file = runbook.file_name().map_or_else(
                || "runbook.yaml".to_owned(),
                |f| f.to_string_lossy().into_owned(),
            );
            needs = access(&rb, &o.namespace);
            notes.append(&mut needs.notes);
            let verb = if matches!(o.work, Work::Drill { .. }) {
                "drill"
            } else {
                "run"
            };
            args.extend([
                verb.into(),
                format!("{RUNBOOK_DIR}/{file}"),
                "--resume-or-start".into(),
                o.name.clone(),
                "--occurrence".into(),
                "$(DRKIT_JOB_NAME)".into(),
                "--lock".into(),
                lock.clone(),
                "--lock-ttl".into(),
                ttl,
            ]);
            config_map = Some(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(o, &format!("{}-runbook", o.name), Some(&o.namespace)),
                "data": { file: text },
            }));
        }
    }

    let sa = o.name.clone();
    objects.extend(rbac(o, &lease, needs, &sa));
    objects.extend(config_map.clone());

    let job_spec = job_spec(o, &args, config_map.is_some(), &sa);
    objects.push(workload(o, &job_spec));
    Ok(Rendered { objects, notes })
}

/// Refuses what Kubernetes or cron would refuse, before anything is printed.
fn check(o: &RenderOptions) -> Result<()> {
    // A CronJob's Jobs are named NAME-<minutes>: 52 characters leave room for it.
    check_name("name", &o.name, 52)?;
    check_name("namespace", &o.namespace, 63)?;
    if let Some(s) = &o.schedule {
        if s.split_whitespace().count() != 5 && !s.starts_with('@') {
            return Err(err!(
                InvalidInput,
                "schedule {s:?} is not a cron schedule: five fields (minute hour day month weekday, e.g. \"0 2 * * *\") or @daily, @hourly"
            ));
        }
    }
    for (what, v) in [
        ("image", &o.image),
        ("repo", &o.repo),
        ("secret", &o.secret),
    ] {
        if v.trim().is_empty() {
            return Err(err!(InvalidInput, "{what} is empty: give the {what}"));
        }
    }
    Ok(())
}

/// The CronJob (with a schedule) or the Job that runs `job_spec`.
fn workload(o: &RenderOptions, job_spec: &Value) -> Value {
    match &o.schedule {
        Some(schedule) => {
            let mut spec = json!({
                "schedule": schedule,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": o.starting_deadline.as_secs(),
                "successfulJobsHistoryLimit": o.history,
                "failedJobsHistoryLimit": o.history,
                "jobTemplate": { "metadata": { "labels": labels(o) }, "spec": job_spec },
            });
            if let Some(tz) = &o.time_zone {
                spec["timeZone"] = json!(tz);
            }
            json!({
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": meta(o, &o.name, Some(&o.namespace)),
                "spec": spec,
            })
        }
        None => json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta(o, &o.name, Some(&o.namespace)),
            "spec": job_spec,
        }),
    }
}

/// The ServiceAccount and its RBAC: the Lease and the Job's Events in drkit's namespace,
/// the runbook's access where its steps act.
fn rbac(o: &RenderOptions, lease: &str, mut needs: Access, sa: &str) -> Vec<Value> {
    let mut objects = Vec::new();
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(o, sa, Some(&o.namespace)),
    }));
    let mut own: Vec<Value> = vec![
        json!({ "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"] }),
        json!({ "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease], "verbs": ["get", "update", "patch"] }),
        json!({ "apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"] }),
        json!({ "apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"] }),
    ];
    if let Some(rules) = needs.by_namespace.remove(&o.namespace) {
        own.extend(rule_json(rules));
    }
    objects.push(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(o, &o.name, Some(&o.namespace)),
        "rules": own,
    }));
    objects.push(role_binding(o, &o.name, &o.namespace, "Role", &o.name, sa));
    for (ns, rules) in needs.by_namespace {
        let role = format!("{}-runbook", o.name);
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(o, &role, Some(&ns)),
            "rules": rule_json(rules),
        }));
        objects.push(role_binding(o, &role, &ns, "Role", &role, sa));
    }
    if !needs.cluster.is_empty() {
        let role = format!("drkit-{}-{}", o.namespace, o.name);
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(o, &role, None),
            "rules": rule_json(needs.cluster),
        }));
        objects.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(o, &role, None),
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{ "kind": "ServiceAccount", "name": sa, "namespace": o.namespace }],
        }));
    }
    objects
}

/// `DATABASE_URL` → `DATABASE_URL`; other characters a shell variable cannot hold, `_`.
fn env_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn role_binding(
    o: &RenderOptions,
    name: &str,
    ns: &str,
    kind: &str,
    role: &str,
    sa: &str,
) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(o, name, Some(ns)),
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role },
        "subjects": [{ "kind": "ServiceAccount", "name": sa, "namespace": o.namespace }],
    })
}

fn job_spec(o: &RenderOptions, args: &[String], runbook: bool, sa: &str) -> Value {
    let mut env = vec![
        json!({ "name": "DRKIT_REPO", "value": o.repo }),
        // The Job's name: one firing of the schedule (`--occurrence`).
        json!({ "name": "DRKIT_JOB_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.labels['job-name']" } } }),
        json!({ "name": "HOME", "value": "/tmp" }),
    ];
    if let Work::Backup { source_key } = &o.work {
        env.push(json!({
            "name": format!("DRKIT_SOURCE_{}", env_name(source_key)),
            "valueFrom": { "secretKeyRef": { "name": o.secret, "key": source_key } },
        }));
    }
    for (k, v) in &o.env {
        env.push(json!({ "name": k, "value": v }));
    }
    let mut mounts = vec![json!({ "name": "scratch", "mountPath": "/tmp" })];
    let mut volumes = vec![json!({ "name": "scratch", "emptyDir": { "sizeLimit": o.scratch } })];
    if runbook {
        mounts.push(json!({ "name": "runbook", "mountPath": RUNBOOK_DIR, "readOnly": true }));
        volumes.push(
            json!({ "name": "runbook", "configMap": { "name": format!("{}-runbook", o.name) } }),
        );
    }
    let mut spec = json!({
        "backoffLimit": 1,
        "ttlSecondsAfterFinished": o.keep_finished.as_secs(),
        // An eviction or a drain does not count as a failure: the next pod resumes the run.
        "podFailurePolicy": { "rules": [
            { "action": "Ignore", "onPodConditions": [{ "type": "DisruptionTarget" }] },
        ] },
        "template": {
            "metadata": { "labels": labels(o) },
            "spec": {
                "serviceAccountName": sa,
                "restartPolicy": "Never",
                "securityContext": {
                    "runAsNonRoot": true,
                    "runAsUser": 65532,
                    "runAsGroup": 65532,
                    "fsGroup": 65532,
                    "seccompProfile": { "type": "RuntimeDefault" },
                },
                "containers": [{
                    "name": "drkit",
                    "image": o.image,
                    "args": args,
                    "env": env,
                    "envFrom": [{ "secretRef": { "name": o.secret } }],
                    "resources": {
                        "requests": { "cpu": o.cpu.0, "memory": o.memory.0 },
                        "limits": { "cpu": o.cpu.1, "memory": o.memory.1 },
                    },
                    "securityContext": {
                        "readOnlyRootFilesystem": true,
                        "allowPrivilegeEscalation": false,
                        "capabilities": { "drop": ["ALL"] },
                    },
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "volumeMounts": mounts,
                }],
                "volumes": volumes,
            },
        },
    });
    if let Some(d) = o.deadline {
        spec["activeDeadlineSeconds"] = json!(d.as_secs());
    }
    spec
}
