//! dr-k8s against the Kubernetes test API, with kubectl reading back what drkit did — or
//! against a real cluster when `DRKIT_TEST_KUBECONFIG` names a kubeconfig (README,
//! "Kubernetes tests on a real cluster"). Tests that need the test API's fault injection
//! say so and end there on a real cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use dr_core::lock::{Lock, LockRequest};
use dr_k8s::{ConfigMapOptions, ConnectOptions, Kubernetes, LeaseLock, ScaleOptions};
use dr_testkit::k8s::{
    deployment, kubectl, kubectl_json, Faults, TestCluster, BUSYBOX, CONTEXT, PAUSE,
};
use serde_json::json;

struct World(TestCluster);

impl std::ops::Deref for World {
    type Target = TestCluster;
    fn deref(&self) -> &TestCluster {
        &self.0
    }
}

fn world() -> World {
    World(TestCluster::start())
}

impl World {
    async fn k8s(&self) -> Kubernetes {
        Kubernetes::connect(&ConnectOptions {
            kubeconfig: Some(self.kubeconfig().to_owned()),
            context: Some(CONTEXT.into()),
            ..ConnectOptions::default()
        })
        .await
        .unwrap()
    }
}

fn scale(workload: &str, replicas: i32) -> ScaleOptions {
    ScaleOptions {
        workload: workload.parse().unwrap(),
        replicas,
        namespace: None,
        wait: true,
        timeout: Duration::from_mins(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_and_back_up_to_the_remembered_count() {
    let w = world();
    w.create(deployment(w.namespace(), "api", 3, PAUSE[0]));
    let k = w.k8s().await;
    k.wait_ready(&"deployment/api".parse().unwrap(), None, w.patience())
        .await
        .unwrap();

    let plan = k.plan_scale(&scale("deployment/api", 0)).await.unwrap();
    assert_eq!(
        (plan.from.as_deref(), plan.to.as_deref()),
        (Some("3"), Some("0"))
    );
    assert_eq!(
        w.object("apps/v1", "deployments", w.namespace(), "api")
            .unwrap()["spec"]["replicas"],
        3,
        "a plan writes nothing"
    );

    let down = k.scale(&scale("deployment/api", 0)).await.unwrap();
    assert_eq!(down.previous, 3);
    let Some(pods) = kubectl_json(w.kubeconfig(), &["get", "pods", "-l", "app=api"]) else {
        return;
    };
    assert_eq!(
        pods["items"].as_array().unwrap().len(),
        0,
        "the pods are gone once the scale-down returned"
    );

    let up = k
        .scale(&scale("deployment/api", down.previous))
        .await
        .unwrap();
    assert_eq!((up.previous, up.ready), (0, Some(3)));
    let d = kubectl_json(w.kubeconfig(), &["get", "deployment", "api"]).unwrap();
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["status"]["readyReplicas"], 3,
        "kubectl sees three ready replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drkit_and_kubectl_scale_to_the_same_object() {
    let w = world();
    w.create(deployment(w.namespace(), "a", 1, PAUSE[0]));
    w.create(deployment(w.namespace(), "b", 1, PAUSE[0]));
    let k = w.k8s().await;
    k.scale(&ScaleOptions {
        wait: false,
        ..scale("deployment/a", 4)
    })
    .await
    .unwrap();
    let Some(out) = kubectl(w.kubeconfig(), &["scale", "deployment/b", "--replicas=4"]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = kubectl_json(w.kubeconfig(), &["get", "deployment", "a"]).unwrap();
    let b = kubectl_json(w.kubeconfig(), &["get", "deployment", "b"]).unwrap();
    // The same spec, but for the name in the labels.
    let b_as_a: serde_json::Value =
        serde_json::from_str(&b["spec"].to_string().replace("\"b\"", "\"a\"")).unwrap();
    assert_eq!(
        a["spec"], b_as_a,
        "drkit's scale and kubectl's leave the same object"
    );
    assert_eq!(a["spec"]["replicas"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_change_returns_the_old_values_and_kubectl_reads_the_new_ones() {
    let w = world();
    w.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config"}, "data": {"DB_HOST": "db-primary", "LOG": "info"}}));
    let k = w.k8s().await;
    let o = ConfigMapOptions {
        name: "app-config".into(),
        set: BTreeMap::from([
            ("DB_HOST".into(), "db-dr".into()),
            ("NEW".into(), "1".into()),
        ]),
        remove: vec!["LOG".into()],
        ..ConfigMapOptions::default()
    };
    let plan = k.plan_configmap(&o).await.unwrap();
    assert_eq!(plan.len(), 3);
    let changed = k.configmap_set(&o).await.unwrap();
    assert_eq!(changed.previous["DB_HOST"].as_deref(), Some("db-primary"));
    assert_eq!(changed.previous["NEW"], None);
    let Some(cm) = kubectl_json(w.kubeconfig(), &["get", "configmap", "app-config"]) else {
        return;
    };
    assert_eq!(cm["data"], json!({"DB_HOST": "db-dr", "NEW": "1"}));

    k.configmap_set(&ConfigMapOptions::undo(&changed))
        .await
        .unwrap();
    let cm = kubectl_json(w.kubeconfig(), &["get", "configmap", "app-config"]).unwrap();
    assert_eq!(
        cm["data"],
        json!({"DB_HOST": "db-primary", "LOG": "info"}),
        "undone exactly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_storm_still_converges() {
    let w = world();
    let Some(api) = w.fake_only("a conflict storm") else {
        return;
    };
    w.create(deployment(w.namespace(), "api", 1, PAUSE[0]));
    w.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"K": "1"}}));
    api.set_faults(Faults {
        conflicts_per_write: 2,
        ..Faults::default()
    });
    let k = w.k8s().await;
    let s = k
        .scale(&ScaleOptions {
            wait: false,
            ..scale("deployment/api", 5)
        })
        .await
        .unwrap();
    assert_eq!(s.previous, 1);
    let c = k
        .configmap_set(&ConfigMapOptions {
            name: "c".into(),
            set: BTreeMap::from([("K".into(), "2".into())]),
            ..ConfigMapOptions::default()
        })
        .await
        .unwrap();
    assert_eq!(c.previous["K"].as_deref(), Some("1"));
    assert_eq!(
        w.object("apps/v1", "deployments", w.namespace(), "api")
            .unwrap()["spec"]["replicas"],
        5
    );
    assert_eq!(
        w.object("v1", "configmaps", w.namespace(), "c").unwrap()["data"]["K"],
        "2"
    );
    let patches = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH"))
        .count();
    assert_eq!(
        patches,
        6,
        "each write lost twice, then passed: {:?}",
        api.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_context_the_object_and_the_verb() {
    let w = world();
    let e = Kubernetes::connect(&ConnectOptions {
        kubeconfig: Some(w.kubeconfig().to_owned()),
        context: Some("prod".into()),
        ..ConnectOptions::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("no context \"prod\"") && e.contains("dr"), "{e}");

    let k = w.k8s().await;
    let e = k.scale(&scale("deployment/missing", 1)).await.unwrap_err();
    assert_eq!(e.kind(), dr_core::ErrorKind::NotFound);
    assert!(
        e.to_string().contains(&format!(
            "deployment/missing in namespace {}",
            w.namespace()
        )),
        "{e}"
    );

    let Some(api) = w.fake_only("an RBAC refusal") else {
        return;
    };
    w.create(deployment(w.namespace(), "api", 1, PAUSE[0]));
    api.forbid("patch", "deployments");
    let e = k.scale(&scale("deployment/api", 2)).await.unwrap_err();
    assert_eq!(e.kind(), dr_core::ErrorKind::PermissionDenied);
    let m = e.to_string();
    assert!(
        m.contains("cannot patch resource \"deployments\"")
            && m.contains("context \"dr\"")
            && m.contains("RBAC"),
        "{m}"
    );

    let e = "pods/x"
        .parse::<dr_k8s::Workload>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("deployment/NAME"), "{e}");
}

fn request(holder: &str, ttl: Duration) -> LockRequest {
    LockRequest {
        holder: holder.into(),
        purpose: format!("run of {holder}"),
        ttl,
        take_over_from: None,
        process: dr_core::lock::ProcessId::current(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_lease_holders_exactly_one_wins_and_an_expired_one_is_taken_over() {
    let w = world();
    let k = w.k8s().await;
    let alice = LeaseLock::new(k.clone(), w.namespace(), "shop");
    let bob = LeaseLock::new(k.clone(), w.namespace(), "shop");
    let (for_alice, for_bob) = (
        request("alice", Duration::from_secs(2)),
        request("bob", Duration::from_secs(2)),
    );
    let (got_alice, got_bob) = tokio::join!(alice.acquire(&for_alice), bob.acquire(&for_bob));
    let (won, lost) = match (got_alice, got_bob) {
        (Ok(l), Err(e)) | (Err(e), Ok(l)) => (l, e),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert_eq!(won.token.0, 1);
    let m = lost.to_string();
    assert!(
        m.contains(&format!("held by {}", won.holder)) && m.contains("until"),
        "{m}"
    );
    assert!(alice.is_current(won.token).await.unwrap());

    // The winner renews, then stops (its process died); the lease is taken over once it
    // has gone unrenewed for its duration, with a higher token.
    let renewed = alice.renew(&won, Duration::from_secs(2)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let carol = LeaseLock::new(k.clone(), w.namespace(), "shop");
    let taken = carol
        .acquire(&request("carol", Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(
        taken.token > renewed.token,
        "{} > {}",
        taken.token,
        renewed.token
    );
    assert!(
        !carol.is_current(renewed.token).await.unwrap(),
        "the old token is stale"
    );
    let e = alice
        .renew(&renewed, Duration::from_secs(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("must stop"),
        "a holder that cannot renew in time is told to stop: {e}"
    );
    let Some(lease) = kubectl_json(w.kubeconfig(), &["get", "lease", "shop"]) else {
        return;
    };
    assert_eq!(lease["spec"]["holderIdentity"], "carol");
    assert_eq!(lease["spec"]["leaseTransitions"], 2);

    carol.release(&taken).await.unwrap();
    assert!(carol.holder().await.unwrap().is_none(), "released");
}

fn image(w: &World, name: &str) -> String {
    w.object("apps/v1", "deployments", w.namespace(), name)
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn set_image(w: &World, name: &str, image: &str) {
    let out = kubectl(
        w.kubeconfig(),
        &[
            "set",
            "image",
            &format!("deployment/{name}"),
            &format!("app={image}"),
        ],
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.settle(&format!("deployment/{name} rolled out"), |c| {
        let d = c
            .object("apps/v1", "deployments", c.namespace(), name)
            .unwrap();
        d["status"]["updatedReplicas"] == d["spec"]["replicas"]
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_undo_returns_the_previous_image_and_to_revision_a_named_one() {
    let w = world();
    w.create(deployment(w.namespace(), "api", 2, PAUSE[0]));
    let k = w.k8s().await;
    let api: dr_k8s::Workload = "deployment/api".parse().unwrap();
    k.wait_ready(&api, None, w.patience()).await.unwrap();
    if kubectl(w.kubeconfig(), &["version", "--client"]).is_none() {
        return;
    }
    set_image(&w, "api", PAUSE[1]);
    set_image(&w, "api", PAUSE[2]);

    let plan = k.plan_rollout_undo(&api, None, None).await.unwrap();
    assert_eq!(
        plan.to.as_deref(),
        Some(format!("2 ({})", PAUSE[1]).as_str()),
        "{plan}"
    );
    let undo = k.rollout_undo(&api, None, None).await.unwrap();
    assert_eq!(
        (undo.image_before.as_deref(), undo.image_after.as_deref()),
        (Some(PAUSE[2]), Some(PAUSE[1]))
    );
    assert_eq!(image(&w, "api"), PAUSE[1]);
    k.wait_ready(&api, None, w.patience()).await.unwrap();

    let named = k.rollout_undo(&api, None, Some(1)).await.unwrap();
    assert_eq!(named.image_after.as_deref(), Some(PAUSE[0]));
    k.wait_ready(&api, None, w.patience()).await.unwrap();
    // kubectl sees the history renumbered as the real controller does: 1 became 5.
    let out = kubectl(w.kubeconfig(), &["rollout", "history", "deployment/api"]).unwrap();
    let history = String::from_utf8_lossy(&out.stdout);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["3", "4", "5"], "{history}");
    let out = kubectl(
        w.kubeconfig(),
        &[
            "rollout",
            "history",
            "deployment/api",
            "--revision=5",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    )
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), PAUSE[0]);

    let e = k
        .rollout_undo(&api, None, Some(9))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no revision 9") && e.contains("3, 4, 5"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_env_and_restart_leave_what_kubectl_leaves() {
    let w = world();
    // Two containers each, the sidecar with a value of its own that the change replaces.
    for name in ["a", "b"] {
        let mut d = deployment(w.namespace(), name, 1, PAUSE[0]);
        d["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": PAUSE[1], "env": [{"name": "POOL", "value": "1"}]}));
        w.create(d);
    }
    let k = w.k8s().await;
    let opts = dr_k8s::EnvOptions::new(
        "deployment/a".parse().unwrap(),
        BTreeMap::from([
            ("DATABASE_HOST".into(), Some("db-dr.internal".into())),
            ("POOL".into(), Some("5".into())),
        ]),
    );
    let plan = k.plan_set_env(&opts).await.unwrap();
    assert_eq!(plan.len(), 4, "two variables in each of two containers");
    let original = w
        .object("apps/v1", "deployments", w.namespace(), "a")
        .unwrap();
    let changed = k.set_env(&opts).await.unwrap();
    assert_eq!(changed.previous["app"]["DATABASE_HOST"], None);
    assert_eq!(changed.previous["sidecar"]["POOL"].as_deref(), Some("1"));
    let Some(out) = kubectl(
        w.kubeconfig(),
        &[
            "set",
            "env",
            "deployment/b",
            "DATABASE_HOST=db-dr.internal",
            "POOL=5",
        ],
    ) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dep_a = kubectl_json(w.kubeconfig(), &["get", "deployment", "a"]).unwrap();
    let dep_b = kubectl_json(w.kubeconfig(), &["get", "deployment", "b"]).unwrap();
    let env = |d: &serde_json::Value, i: usize| {
        d["spec"]["template"]["spec"]["containers"][i]["env"].clone()
    };
    for i in [0, 1] {
        assert_eq!(
            env(&dep_a, i),
            env(&dep_b, i),
            "drkit and kubectl set the same env in container {i}"
        );
    }
    assert_eq!(
        env(&dep_a, 0),
        json!([{"name": "DATABASE_HOST", "value": "db-dr.internal"}, {"name": "POOL", "value": "5"}])
    );
    assert_eq!(
        env(&dep_a, 1),
        json!([{"name": "POOL", "value": "5"}, {"name": "DATABASE_HOST", "value": "db-dr.internal"}])
    );

    // Undo puts both containers back as they were, in one write.
    let undone = k
        .set_env(&dr_k8s::EnvOptions::undo(&changed))
        .await
        .unwrap();
    assert!(undone.changed);
    let dep_a = kubectl_json(w.kubeconfig(), &["get", "deployment", "a"]).unwrap();
    assert_eq!(env(&dep_a, 0), json!(null));
    assert_eq!(
        dep_a["spec"]["template"]["spec"]["containers"],
        original["spec"]["template"]["spec"]["containers"],
        "the containers exactly as they were"
    );

    let restart = k
        .rollout_restart(&"deployment/a".parse().unwrap(), None)
        .await
        .unwrap();
    let dep_a = kubectl_json(w.kubeconfig(), &["get", "deployment", "a"]).unwrap();
    assert_eq!(
        dep_a["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        json!(restart.restarted_at)
    );
    let out = kubectl(w.kubeconfig(), &["rollout", "restart", "deployment/b"]).unwrap();
    assert!(out.status.success());
    let dep_b = kubectl_json(w.kubeconfig(), &["get", "deployment", "b"]).unwrap();
    assert!(
        dep_b["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_string(),
        "the same annotation as kubectl's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_differs_is_never_shown_and_its_users_restart() {
    let w = world();
    w.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg==", "user": "YXBw"}}));
    let mut user = deployment(w.namespace(), "api", 1, PAUSE[0]);
    user["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]);
    w.create(user);
    w.create(deployment(w.namespace(), "other", 1, PAUSE[0]));
    let k = w.k8s().await;
    let o = dr_k8s::SecretOptions {
        name: "db".into(),
        rotate: vec!["password".into()],
        ..serde_json::from_value(json!({"name": "db"})).unwrap()
    };
    let plan = k.plan_secret(&o).await.unwrap();
    let shown = plan.to_string();
    assert!(
        shown.contains("1 key change (password)")
            && !shown.contains("aHVudGVyMg")
            && !shown.contains("hunter2"),
        "{shown}"
    );

    let changed = k.secret_set(&o).await.unwrap();
    assert_eq!(changed.changed, ["password"]);
    assert_eq!(
        changed.restarted,
        ["deployment/api"],
        "only the workload that uses it"
    );
    let doc = serde_json::to_string(&changed).unwrap();
    let now = w.object("v1", "secrets", w.namespace(), "db").unwrap();
    let new_value = now["data"]["password"].as_str().unwrap().to_owned();
    assert_ne!(new_value, "aHVudGVyMg==", "a new value");
    assert_eq!(now["data"]["user"], "YXBw", "other keys untouched");
    assert!(
        !doc.contains(&new_value) && !doc.contains("aHVudGVyMg=="),
        "no value in the result: {doc}"
    );
    let api_dep = w
        .object("apps/v1", "deployments", w.namespace(), "api")
        .unwrap();
    assert!(api_dep["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .is_string());
    let other = w
        .object("apps/v1", "deployments", w.namespace(), "other")
        .unwrap();
    assert!(
        other["spec"]["template"]["metadata"]["annotations"].is_null(),
        "{other}"
    );

    // A second rotation gives another value; a restore puts back the one before it.
    let again = k.secret_set(&o).await.unwrap();
    assert_eq!(again.changed, ["password"]);
    let newer = w.object("v1", "secrets", w.namespace(), "db").unwrap()["data"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(newer, new_value);
    k.secret_restore("db", None).await.unwrap();
    assert_eq!(
        w.object("v1", "secrets", w.namespace(), "db").unwrap()["data"]["password"],
        new_value.as_str()
    );

    let e = k
        .secret_set(&dr_k8s::SecretOptions {
            name: "missing".into(),
            ..o.clone()
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist") && e.contains("create"), "{e}");
}

/// A container that prints three lines, as a database does starting, then waits.
const LOG_LINES: &str = "echo starting; echo database system is ready to accept connections; echo checkpoint complete; exec sleep 3600";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_pod_deleted_is_replaced_ready_and_logs_are_read() {
    let w = world();
    w.create(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "postgres"},
        "spec": {"replicas": 1, "serviceName": "postgres", "selector": {"matchLabels": {"app": "postgres"}},
                 "template": {"metadata": {"labels": {"app": "postgres"}}, "spec": {"containers": [{"name": "pg", "image": BUSYBOX, "command": ["sh", "-c", LOG_LINES]}]}}},
    }));
    let k = w.k8s().await;
    k.wait_ready(&"sts/postgres".parse().unwrap(), None, w.patience())
        .await
        .unwrap();
    let before =
        w.object("v1", "pods", w.namespace(), "postgres-0").unwrap()["metadata"]["uid"].clone();
    let replaced = k
        .pod_delete("postgres-0", None, w.patience())
        .await
        .unwrap();
    assert_eq!(
        replaced.replacement, "postgres-0",
        "a StatefulSet keeps the name"
    );
    let after = w.object("v1", "pods", w.namespace(), "postgres-0").unwrap();
    assert_ne!(after["metadata"]["uid"], before, "a new pod");
    assert_eq!(after["status"]["phase"], "Running");

    let logs = k.logs("postgres-0", None, 2).await.unwrap();
    assert_eq!(
        logs.containers["pg"],
        [
            "database system is ready to accept connections",
            "checkpoint complete"
        ]
    );
    let e = k
        .pod_delete("nope", None, Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("pod nope in namespace {}", w.namespace())),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throwaway_namespace_is_made_filled_checked_and_deleted() {
    let w = world();
    let k = w.k8s().await;
    let ns = w.ns("dr-test-2026-12");
    let made = k
        .namespace_create(
            &ns,
            &BTreeMap::from([("purpose".into(), "dr-drill".into())]),
        )
        .await
        .unwrap();
    assert!(made.changed);
    assert!(
        !k.namespace_create(&ns, &BTreeMap::new())
            .await
            .unwrap()
            .changed,
        "already there"
    );
    w.create(deployment(&ns, "api", 2, PAUSE[0]));
    w.create(deployment(&ns, "worker", 1, PAUSE[0]));
    let available = k
        .wait_available(Some(ns.as_str()), w.patience())
        .await
        .unwrap();
    assert_eq!(available, ["api", "worker"]);
    let Some(seen) = kubectl_json(w.kubeconfig(), &["get", "namespace", &ns]) else {
        return;
    };
    assert_eq!(seen["metadata"]["labels"]["purpose"], "dr-drill");
    let gone = k.namespace_delete(&ns, w.patience()).await.unwrap();
    assert!(gone.changed);
    assert!(
        w.objects("apps/v1", "deployments", &ns).is_empty(),
        "its content went with it"
    );
    assert!(w.object("v1", "namespaces", "", &ns).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_on_then_off_leaves_the_ingress_as_it_was() {
    use dr_core::traffic::{Destination, TrafficRouter};
    let w = world();
    w.create(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "main-ingress", "labels": {"app": "shop"},
                     "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/", "team": "web"}},
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                 "rules": [{"host": "shop.example.com", "http": {"paths": [
                     {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                     {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}}]},
    }));
    let k = w.k8s().await;
    let Some(before) = kubectl_json(w.kubeconfig(), &["get", "ingress", "main-ingress"]) else {
        return;
    };
    let o = dr_k8s::MaintenanceOptions {
        image: Some(PAUSE[0].into()),
        ..dr_k8s::MaintenanceOptions::new("main-ingress")
    };
    let plan = k.plan_maintenance(&o, true).await.unwrap();
    assert_eq!(
        (plan.from.as_deref(), plan.to.as_deref()),
        (Some("api:http, web:80"), Some("drkit-maintenance:80"))
    );

    let on = k.maintenance_on(&o).await.unwrap();
    assert!(on.changed && on.on);
    let during = kubectl_json(w.kubeconfig(), &["get", "ingress", "main-ingress"]).unwrap();
    let paths = during["spec"]["rules"][0]["http"]["paths"]
        .as_array()
        .unwrap();
    assert!(
        paths
            .iter()
            .all(|p| p["backend"]["service"]["name"] == "drkit-maintenance"),
        "{during}"
    );
    assert_eq!(
        during["spec"]["tls"], before["spec"]["tls"],
        "TLS untouched"
    );
    assert!(
        w.object("apps/v1", "deployments", w.namespace(), "drkit-maintenance")
            .is_some(),
        "the maintenance app was made"
    );
    assert!(w
        .object("v1", "services", w.namespace(), "drkit-maintenance")
        .is_some());
    assert!(
        !k.maintenance_on(&o).await.unwrap().changed,
        "on twice is on once"
    );

    // Through traffic.switch's trait, from another connection: off restores it exactly.
    let router = dr_k8s::MaintenanceRouter::new(
        w.k8s().await,
        dr_k8s::MaintenanceOptions::new("main-ingress"),
    );
    assert_eq!(
        router.current().await.unwrap().records[0].set_id.as_deref(),
        Some("maintenance")
    );
    let s = router
        .switch(
            &Destination::Set("normal".into()),
            &dr_core::wait::Wait::new(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(s.before.records[0].set_id.as_deref(), Some("maintenance"));
    let after = kubectl_json(w.kubeconfig(), &["get", "ingress", "main-ingress"]).unwrap();
    for field in [
        &["spec"][..],
        &["metadata", "annotations"],
        &["metadata", "labels"],
    ] {
        let pick = |v: &serde_json::Value| field.iter().fold(v.clone(), |v, f| v[*f].clone());
        assert_eq!(
            serde_json::to_string(&pick(&after)).unwrap(),
            serde_json::to_string(&pick(&before)).unwrap(),
            "{field:?} byte for byte"
        );
    }
}

fn walk(dir: &std::path::Path, out: &mut Vec<Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(std::fs::read(&p).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one namespace taken through export, dry run, apply and re-apply
async fn a_namespace_exported_then_applied_elsewhere_has_the_same_objects() {
    use dr_core::repo::{InitOptions, Repository, Secret};
    let w = world();
    let (shop, shop_dr) = (w.ns("shop"), w.ns("shop-dr"));
    w.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": shop}}));
    w.create(deployment(&shop, "api", 2, PAUSE[0]));
    w.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": shop}, "data": {"DB_HOST": "db"}}));
    w.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": shop}, "stringData": {"password": "correct-horse-battery"}}));
    w.create(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": shop}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}}));
    w.create(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader", "namespace": shop},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}, "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": shop}]}));
    let k = w.k8s().await;
    k.wait_ready(
        &"deployment/api".parse().unwrap(),
        Some(shop.as_str()),
        w.patience(),
    )
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store: dr_core::store::DynStore =
        std::sync::Arc::new(dr_core::store::LocalStore::new(dir.path()));
    let options = InitOptions {
        secret: Secret::from_one_of(Some("pw".into()), None, None).unwrap(),
        ..InitOptions::unencrypted()
    };
    let repo = Repository::init(store, &options).await.unwrap();
    let out = k
        .export(
            &repo,
            &dr_k8s::ExportOptions {
                namespace: Some(shop.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let names: Vec<String> = out
        .objects
        .iter()
        .map(|o| format!("{}/{}", o.kind, o.name))
        .collect();
    assert_eq!(
        names,
        [
            "Secret/db",
            "ConfigMap/app-config",
            "RoleBinding/reader",
            "Service/api",
            "Deployment/api"
        ],
        "in apply order, no ReplicaSets or Pods"
    );
    let mut files = Vec::new();
    walk(dir.path(), &mut files);
    for needle in [
        &b"correct-horse-battery"[..],
        b"Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5",
        b"app-config",
    ] {
        assert!(
            !files
                .iter()
                .any(|f| f.windows(needle.len()).any(|x| x == needle)),
            "{:?} appears unencrypted in the repository",
            String::from_utf8_lossy(needle)
        );
    }
    let snap = repo.find_snapshot(&out.snapshot).await.unwrap();
    assert!(
        !snap.metadata.to_string().contains("correct-horse"),
        "the listing names the Secret, never its data"
    );

    // A dry run into a new namespace changes nothing and shows what it would create.
    let map = BTreeMap::from([(shop.clone(), shop_dr.clone())]);
    let dry = k
        .apply(
            Some(&repo),
            &dr_k8s::ApplyOptions {
                namespace_map: map.clone(),
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(dry.objects.iter().all(|o| o.action == "created"), "{dry:?}");
    assert!(
        w.object("v1", "namespaces", "", &shop_dr).is_none(),
        "a dry run changes nothing"
    );

    let applied = k
        .apply(
            Some(&repo),
            &dr_k8s::ApplyOptions {
                namespace_map: map,
                wait: true,
                timeout: Some(w.patience()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(applied.objects.len(), 5);
    let strip = |mut o: serde_json::Value| {
        for f in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "namespace",
            "annotations",
        ] {
            o["metadata"].as_object_mut().unwrap().remove(f);
        }
        o.as_object_mut().unwrap().remove("status");
        o
    };
    for (plural, name) in [
        ("deployments", "api"),
        ("configmaps", "app-config"),
        ("secrets", "db"),
    ] {
        let api_version = if plural == "deployments" {
            "apps/v1"
        } else {
            "v1"
        };
        let a = strip(w.object(api_version, plural, &shop, name).unwrap());
        let b = strip(w.object(api_version, plural, &shop_dr, name).unwrap());
        assert_eq!(a, b, "{plural}/{name} is the same object");
    }
    let rb = w
        .object(
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            &shop_dr,
            "reader",
        )
        .unwrap();
    assert_eq!(
        rb["subjects"][0]["namespace"],
        shop_dr.as_str(),
        "subjects follow the namespace mapping"
    );
    assert_eq!(
        w.object("apps/v1", "deployments", &shop_dr, "api").unwrap()["status"]["readyReplicas"],
        2,
        "waited for the workloads"
    );

    // Applied again, with a change live: the dry run's diff names it, values of Secrets never.
    let mut cm = w
        .object("v1", "configmaps", &shop_dr, "app-config")
        .unwrap();
    cm["data"]["DB_HOST"] = json!("changed-live");
    k.configmap_set(&dr_k8s::ConfigMapOptions {
        name: "app-config".into(),
        namespace: Some(shop_dr.clone()),
        set: BTreeMap::from([("DB_HOST".into(), "changed-live".into())]),
        ..Default::default()
    })
    .await
    .unwrap();
    let dry = k
        .apply(
            Some(&repo),
            &dr_k8s::ApplyOptions {
                namespace_map: BTreeMap::from([(shop.clone(), shop_dr.clone())]),
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cm_diff = dry.objects.iter().find(|o| o.name == "app-config").unwrap();
    assert_eq!(
        cm_diff.diff,
        ["data.DB_HOST: \"changed-live\" -> \"db\""],
        "{dry:?}"
    );
    assert_eq!(
        w.object("v1", "configmaps", &shop_dr, "app-config")
            .unwrap()["data"]["DB_HOST"],
        "changed-live",
        "still a dry run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_not_exported_into_an_unencrypted_repository() {
    use dr_core::repo::{InitOptions, Repository};
    let w = world();
    w.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "x-very-secret"}}));
    let k = w.k8s().await;
    let repo = Repository::init(
        dr_core::store::MemoryStore::new(),
        &InitOptions::unencrypted(),
    )
    .await
    .unwrap();
    let e = k
        .export(&repo, &dr_k8s::ExportOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not encrypted") && e.contains("Secrets"), "{e}");
    assert!(repo.snapshots().await.unwrap().is_empty(), "nothing stored");
    let without = k
        .export(
            &repo,
            &dr_k8s::ExportOptions {
                kinds: vec!["configmaps".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(without.objects.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_secret_and_drkit_make_the_same_secret() {
    let w = world();
    let Some(out) = kubectl(
        w.kubeconfig(),
        &[
            "create",
            "secret",
            "generic",
            "by-kubectl",
            "--from-literal=password=s3cret-value",
            "--from-literal=user=app",
        ],
    ) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let options: dr_k8s::SecretOptions = serde_json::from_value(json!({
        "name": "by-drkit", "create": true, "set": {"password": "s3cret-value", "user": "app"},
    }))
    .unwrap();
    w.k8s().await.secret_set(&options).await.unwrap();
    let a = kubectl_json(w.kubeconfig(), &["get", "secret", "by-kubectl"]).unwrap();
    let b = kubectl_json(w.kubeconfig(), &["get", "secret", "by-drkit"]).unwrap();
    assert_eq!(a["data"], b["data"], "the same data");
    assert_eq!(a["type"], b["type"]);
    assert_eq!(a["data"]["password"], "czNjcmV0LXZhbHVl");
}

/// Against a test API serving HTTPS with a CA of its own (on a real cluster too: the
/// test needs a server whose CA it controls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_kubeconfigs_ca_is_trusted_and_no_other() {
    use base64::Engine as _;
    use dr_testkit::k8s::{K8sTestApi, Options};
    let tls = Options {
        tls: true,
        ..Options::default()
    };
    let (api, other) = (K8sTestApi::start_with(&tls), K8sTestApi::start_with(&tls));
    assert!(api.url().starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("kubeconfig");
    api.write_kubeconfig(&good, "secure");
    api.create(deployment("default", "api", 1, PAUSE[0]));
    let connect = |path: std::path::PathBuf| async move {
        Kubernetes::connect(&ConnectOptions {
            kubeconfig: Some(path),
            context: Some("secure".into()),
            ..ConnectOptions::default()
        })
        .await
    };
    let k = connect(good.clone()).await.unwrap();
    let scaled = k
        .scale(&ScaleOptions {
            wait: false,
            ..scale("deployment/api", 2)
        })
        .await
        .unwrap();
    assert_eq!(scaled.previous, 1);
    let Some(seen) = kubectl_json(&good, &["get", "deployment", "api"]) else {
        return;
    };
    assert_eq!(
        seen["spec"]["replicas"], 2,
        "kubectl trusts the same CA data"
    );

    // The same server, a kubeconfig carrying another CA: refused, and the error says why.
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace(&b64(api.ca_pem().unwrap()), &b64(other.ca_pem().unwrap()));
    let wrong = dir.path().join("wrong-ca");
    std::fs::write(&wrong, text).unwrap();
    let refused = match connect(wrong).await {
        Err(e) => e,
        Ok(k) => k
            .scale(&ScaleOptions {
                wait: false,
                ..scale("deployment/api", 3)
            })
            .await
            .unwrap_err(),
    };
    let m = refused.to_string();
    assert!(
        m.contains("certificate") && m.contains("certificate-authority"),
        "{m}"
    );
    assert_eq!(
        api.object("apps/v1", "deployments", "default", "api")
            .unwrap()["spec"]["replicas"],
        2,
        "nothing was written"
    );
}

/// Against a test API whose controllers step only when told (on a real cluster too: the
/// race needs a controller that has not caught up yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_right_after_a_change_the_controller_has_not_seen_goes_back_before_it() {
    use dr_testkit::k8s::{K8sTestApi, Options};
    let api = K8sTestApi::start_with(&Options {
        tick: None,
        ..Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "paused");
    api.create(deployment("default", "api", 1, PAUSE[0]));
    assert!(api.tick_until(20, |a| !a
        .objects("apps/v1", "replicasets", "default")
        .is_empty()));
    let k = Kubernetes::connect(&ConnectOptions {
        kubeconfig: Some(kubeconfig),
        context: Some("paused".into()),
        ..ConnectOptions::default()
    })
    .await
    .unwrap();
    let w: dr_k8s::Workload = "deployment/api".parse().unwrap();
    let before = api
        .object("apps/v1", "deployments", "default", "api")
        .unwrap();
    k.set_env(&dr_k8s::EnvOptions::new(
        w.clone(),
        BTreeMap::from([("DATABASE_HOST".into(), Some("db-dr.internal".into()))]),
    ))
    .await
    .unwrap();
    // No tick: the controller has made no ReplicaSet for the new template.
    let undo = k.rollout_undo(&w, None, None).await.unwrap();
    assert_eq!((undo.from_revision, undo.to_revision), (2, 1));
    let after = api
        .object("apps/v1", "deployments", "default", "api")
        .unwrap();
    assert_eq!(
        after["spec"]["template"]["spec"]["containers"],
        before["spec"]["template"]["spec"]["containers"],
        "the template from before the change"
    );
}
