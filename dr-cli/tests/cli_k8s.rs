//! The `drkit` binary with Kubernetes: a runbook that scales down, repoints the app's
//! ConfigMap, fails on purpose and compensates, read back with kubectl; prune and runs
//! on garage under a Lease lock.

use std::path::Path;

use dr_testkit::k8s::{deployment, kubectl_json, Faults, K8sTestApi, Options, TOKEN};
use dr_testkit::{stderr, Drkit, Garage};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_drkit");

fn cluster(dir: &Path) -> (K8sTestApi, std::path::PathBuf) {
    let api = K8sTestApi::start();
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "dr");
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    let mut api_deployment = deployment("shop", "api", 3, "shop/api:1");
    api_deployment["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "migrate", "image": "shop/api:1", "env": [{"name": "DATABASE_HOST", "value": "db-primary.internal"}]}));
    api.create(api_deployment);
    api.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": "shop"}, "data": {"DB_HOST": "db-primary.internal"}}));
    (api, kubeconfig)
}

const BOOK: &str = r#"version: 1
name: app-to-dr-database
targets:
  dr: { kind: kubernetes, context: dr, kubeconfig: KUBECONFIG, namespace: shop }
steps:
  - id: stop
    action: k8s.scale
    with: { target: dr, workload: deployment/api, replicas: 0, wait: true, timeout: 1m }
  - id: repoint
    action: k8s.configmap_set
    needs: [stop]
    with: { target: dr, name: app-config, set: { DB_HOST: db-dr.internal } }
  - id: env
    action: k8s.set_env
    needs: [stop]
    with: { target: dr, workload: deployment/api, env: { DATABASE_HOST: db-dr.internal } }
  - id: check
    action: assert
    needs: [repoint, env]
    with: { that: "${vars.healthy}" }
    on_failure: compensate
vars:
  healthy: { default: false }
"#;

#[test]
fn a_failing_runbook_compensates_replicas_and_configmap_back() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    let d = Drkit::local(BIN, &dir.path().join("repo"));
    d.json(&["repo", "init"]);
    let book = dir.path().join("book.yaml");
    std::fs::write(
        &book,
        BOOK.replace("KUBECONFIG", &kubeconfig.display().to_string()),
    )
    .unwrap();
    assert!(api.tick_until(50, |a| a
        .object("apps/v1", "deployments", "shop", "api")
        .unwrap()["status"]["readyReplicas"]
        == 3));
    let containers = |a: &K8sTestApi| {
        a.object("apps/v1", "deployments", "shop", "api").unwrap()["spec"]["template"]["spec"]
            ["containers"]
            .clone()
    };
    let original = containers(&api);

    let plan = d.json(&["plan", book.to_str().unwrap()]);
    let changes = plan.to_string();
    assert!(changes.contains("replicas: 3 -> 0"), "{plan}");
    assert!(
        changes.contains("data.DB_HOST: db-primary.internal -> db-dr.internal"),
        "{plan}"
    );
    assert_eq!(
        api.object("apps/v1", "deployments", "shop", "api").unwrap()["spec"]["replicas"],
        3,
        "plan changed nothing"
    );

    let out = d.run(&["--json", "run", book.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outcome"], "compensated", "{run}");
    let steps = run["steps"].as_array().unwrap();
    let stop = steps.iter().find(|s| s["id"] == "stop").unwrap();
    assert_eq!(stop["outputs"]["previous"], 3);

    let Some(dep) = kubectl_json(&kubeconfig, &["-n", "shop", "get", "deployment", "api"]) else {
        return;
    };
    assert_eq!(
        dep["spec"]["replicas"], 3,
        "scaled back to the remembered count"
    );
    let cm = kubectl_json(
        &kubeconfig,
        &["-n", "shop", "get", "configmap", "app-config"],
    )
    .unwrap();
    assert_eq!(
        cm["data"],
        json!({"DB_HOST": "db-primary.internal"}),
        "the ConfigMap as it was"
    );
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"], original,
        "both containers' environment as it was"
    );
    let shown = d.json(&["runs", "show", run["id"].as_str().unwrap()]);
    let events = shown.to_string();
    assert!(
        events.contains("compensat"),
        "the journal records the compensation: {shown}"
    );
}

#[test]
fn on_garage_prune_and_runs_take_a_lease_lock() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = K8sTestApi::start();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "ops");
    let s3 = Drkit::at(BIN, &garage.url("k8s-lock"))
        .with_env(garage.env())
        .with_env([("KUBECONFIG", kubeconfig.display().to_string())]);
    s3.json(&["repo", "init"]);

    let refused = s3.run(&["prune", "--keep-last", "1"]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        stderr(&refused).contains("k8s:"),
        "points at the Lease lock: {}",
        stderr(&refused)
    );

    let pruned = s3.json(&[
        "prune",
        "--keep-last",
        "1",
        "--lock",
        "k8s:ops/default/drkit-prune",
    ]);
    assert!(pruned["report"].is_object(), "{pruned}");
    let lease = api
        .object("coordination.k8s.io/v1", "leases", "default", "drkit-prune")
        .expect("the Lease was used");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released after the prune: {lease}"
    );

    let book = dir.path().join("pause.yaml");
    std::fs::write(
        &book,
        "version: 1\nname: pause\nsteps:\n  - id: nap\n    action: wait\n    with: { for: 10ms }\n",
    )
    .unwrap();
    let run = s3.json(&[
        "run",
        book.to_str().unwrap(),
        "--lock",
        "k8s:ops/default/drkit-runs",
    ]);
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let lease = api
        .object("coordination.k8s.io/v1", "leases", "default", "drkit-runs")
        .expect("the run's Lease");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // While a run holds the Lease, `runs --lock` with the same Lease sees it running.
    let slow = dir.path().join("slow.yaml");
    std::fs::write(
        &slow,
        "version: 1\nname: slow\nsteps:\n  - id: nap\n    action: wait\n    with: { for: 3s }\n",
    )
    .unwrap();
    let child = s3
        .cmd(&[
            "--quiet",
            "run",
            slow.to_str().unwrap(),
            "--lock",
            "k8s:ops/default/drkit-runs",
        ])
        .spawn()
        .unwrap();
    let id = s3.wait_step_started("nap");
    let shown = s3.json(&["runs", "show", &id, "--lock", "k8s:ops/default/drkit-runs"]);
    assert_eq!(shown["outcome"], "running", "{shown}");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let listed = s3.json(&["runs", "--lock", "k8s:ops/default/drkit-runs"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "succeeded"),
        "{listed}"
    );
}

#[test]
fn drkit_k8s_commands_change_what_kubectl_then_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env([("KUBECONFIG", kubeconfig.display().to_string())]);
    let k = |args: &[&str]| {
        let mut all = vec!["k8s", "-n", "shop"];
        all.extend_from_slice(args);
        d.json(&all)
    };
    let plan = k(&["scale", "deployment/api", "--replicas", "0", "--dry-run"]);
    assert_eq!(
        (plan["from"].as_str(), plan["to"].as_str()),
        (Some("3"), Some("0")),
        "{plan}"
    );
    assert_eq!(
        api.object("apps/v1", "deployments", "shop", "api").unwrap()["spec"]["replicas"],
        3,
        "a dry run changes nothing"
    );

    let s = k(&[
        "scale",
        "deploy/api",
        "--replicas",
        "1",
        "--wait",
        "--timeout",
        "1m",
    ]);
    assert_eq!(
        (s["previous"].as_i64(), s["ready"].as_i64()),
        (Some(3), Some(1)),
        "{s}"
    );
    let st = k(&["rollout", "status", "deployment/api"]);
    assert_eq!(st["ready"], 1);

    let env = k(&["set-env", "deployment/api", "DATABASE_HOST=db-dr.internal"]);
    assert_eq!(env["changed"], true);
    let cm = k(&["configmap", "set", "app-config", "DB_HOST=db-dr.internal"]);
    assert_eq!(cm["previous"]["DB_HOST"], "db-primary.internal", "{cm}");

    let Some(dep) = kubectl_json(&kubeconfig, &["-n", "shop", "get", "deployment", "api"]) else {
        return;
    };
    assert_eq!(dep["spec"]["replicas"], 1);
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "db-dr.internal"
    );
    let cmap = kubectl_json(
        &kubeconfig,
        &["-n", "shop", "get", "configmap", "app-config"],
    )
    .unwrap();
    assert_eq!(cmap["data"]["DB_HOST"], "db-dr.internal");

    // Bad input: an unknown context, a missing object; one clear line each, exit 1.
    let out = d.run(&[
        "k8s",
        "--context",
        "prod",
        "scale",
        "deployment/api",
        "--replicas",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no context \"prod\""),
        "{}",
        stderr(&out)
    );
    let out = d.run(&["k8s", "-n", "shop", "rollout", "undo", "deployment/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("deployment/nope in namespace shop"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn maintenance_through_traffic_switch_is_undone_when_the_run_compensates() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "main-ingress", "namespace": "shop", "annotations": {"team": "web"}},
        "spec": {"rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]},
    });
    let stored = api.create(ingress);
    let d = Drkit::local(BIN, &dir.path().join("repo"));
    d.json(&["repo", "init"]);
    let book = dir.path().join("maintenance.yaml");
    std::fs::write(
        &book,
        format!(
            "version: 1\nname: maintenance\ntargets:\n  front: {{ kind: kubernetes_ingress, ingress: main-ingress, namespace: shop, context: dr, kubeconfig: \"{}\", image: \"shop/maintenance:1\" }}\nsteps:\n  - id: down\n    action: traffic.switch\n    with: {{ target: front, to: {{ set: maintenance }} }}\n  - id: boom\n    action: assert\n    needs: [down]\n    with: {{ that: false }}\n    on_failure: compensate\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    let plan = d.json(&["plan", book.to_str().unwrap()]);
    assert!(plan.to_string().contains("drkit-maintenance:80"), "{plan}");
    let out = d.run(&["--json", "run", book.to_str().unwrap()]);
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outcome"], "compensated", "{run}");
    let now = api
        .object("networking.k8s.io/v1", "ingresses", "shop", "main-ingress")
        .unwrap();
    assert_eq!(now["spec"], stored["spec"], "back to the original backends");
    assert_eq!(
        now["metadata"]["annotations"],
        stored["metadata"]["annotations"]
    );
    assert!(
        api.object("v1", "services", "shop", "drkit-maintenance")
            .is_some(),
        "the maintenance Service was made"
    );
}

#[test]
fn export_apply_secret_rotation_and_maintenance_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    api.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "stringData": {"password": "hunter2-but-longer"}}));
    api.create(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "main-ingress", "namespace": "shop"},
        "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]},
    }));
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env([("KUBECONFIG", kubeconfig.display().to_string())]);
    d.json(&["repo", "init"]);
    let exported = d.json(&["k8s", "-n", "shop", "export"]);
    assert_eq!(
        exported["objects"].as_array().unwrap().len(),
        4,
        "{exported}"
    );
    let listed = d.run(&["snapshots"]);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("hunter2"),
        "no Secret data in the listing"
    );

    let dry = d.json(&[
        "k8s",
        "apply",
        "--namespace-map",
        "shop=shop-dr",
        "--dry-run",
    ]);
    assert_eq!(dry["dry_run"], true);
    assert!(
        api.object("v1", "namespaces", "", "shop-dr").is_none(),
        "a dry run changes nothing"
    );
    let applied = d.json(&[
        "k8s",
        "apply",
        "--namespace-map",
        "shop=shop-dr",
        "--wait",
        "--timeout",
        "1m",
    ]);
    assert!(
        applied["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["action"] == "created"),
        "{applied}"
    );
    assert_eq!(
        api.object("apps/v1", "deployments", "shop-dr", "api")
            .unwrap()["status"]["readyReplicas"],
        3
    );

    let before = api.object("v1", "secrets", "shop", "db").unwrap()["data"]["password"].clone();
    let out = d.run(&[
        "--json", "k8s", "-n", "shop", "secret", "rotate", "db", "password",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = api.object("v1", "secrets", "shop", "db").unwrap()["data"]["password"].clone();
    assert_ne!(before, after, "a new value");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        !printed.contains(after.as_str().unwrap()) && !printed.contains(before.as_str().unwrap()),
        "no value printed: {printed}"
    );

    // kubectl's TYPE/NAME form works as the bare name does.
    let on = d.json(&[
        "k8s",
        "-n",
        "shop",
        "maintenance",
        "on",
        "ingress/main-ingress",
    ]);
    assert_eq!(on["after"], json!(["drkit-maintenance:80"]));
    let out = d.run(&["k8s", "-n", "shop", "maintenance", "on", "deployment/api"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ingress/NAME"), "{}", stderr(&out));
    let off = d.json(&["k8s", "-n", "shop", "maintenance", "off", "main-ingress"]);
    assert_eq!(off["after"], json!(["api:80"]));
}

/// Whether this process may make a private mount namespace (root, with `unshare`).
fn can_unshare() -> bool {
    std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Inside a pod drkit uses its service account. The test gives drkit what a pod has — the
/// token, CA and namespace files under /var/run/secrets/kubernetes.io/serviceaccount and
/// KUBERNETES_SERVICE_HOST/PORT — in a private mount namespace of its own process.
#[test]
fn in_cluster_drkit_uses_the_pods_service_account() {
    if !can_unshare() {
        dr_testkit::missing(
            "a private mount namespace (root and unshare)",
            "run the tests as root with util-linux installed",
        );
        return;
    }
    let api = K8sTestApi::start_with(&Options {
        tls: true,
        ..Options::default()
    });
    api.set_faults(Faults {
        token: Some(TOKEN.into()),
        ..Faults::default()
    });
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    api.create(deployment("shop", "api", 1, "shop/api:1"));
    let port = api.url().rsplit(':').next().unwrap().to_owned();
    let in_pod = |token: &str, args: &[&str]| {
        let sa = tempfile::tempdir().unwrap();
        std::fs::write(sa.path().join("token"), token).unwrap();
        std::fs::write(sa.path().join("ca.crt"), api.ca_pem().unwrap()).unwrap();
        std::fs::write(sa.path().join("namespace"), "shop").unwrap();
        let script = "mount -t tmpfs drkit-test /run \
            && mkdir -p /run/secrets/kubernetes.io/serviceaccount \
            && cp \"$SA\"/* /run/secrets/kubernetes.io/serviceaccount/ \
            && exec \"$@\"";
        std::process::Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
                BIN,
            ])
            .args(args)
            .env("SA", sa.path())
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", &port)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let out = in_pod(
        TOKEN,
        &[
            "--json",
            "k8s",
            "--in-cluster",
            "scale",
            "deployment/api",
            "--replicas",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let scaled: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(scaled["previous"], 1, "{scaled}");
    assert_eq!(
        api.object("apps/v1", "deployments", "shop", "api").unwrap()["spec"]["replicas"],
        2,
        "in the service account's namespace"
    );

    let refused = in_pod(
        "a-revoked-token",
        &[
            "k8s",
            "--in-cluster",
            "scale",
            "deployment/api",
            "--replicas",
            "3",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    let e = stderr(&refused);
    assert!(e.contains("in-cluster") && e.contains("credentials"), "{e}");
    let outside = std::process::Command::new(BIN)
        .args([
            "k8s",
            "--in-cluster",
            "scale",
            "deployment/api",
            "--replicas",
            "3",
        ])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(outside.status.code(), Some(1));
    assert!(
        stderr(&outside).contains("run inside a pod with a service account"),
        "{}",
        stderr(&outside)
    );
}

/// The README's Kubernetes walkthrough, run as written (its first line, starting the
/// test API, is done here in-process; its /tmp paths are this test's folder).
#[test]
fn the_readme_kubernetes_walkthrough_runs_as_written() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("\n## Kubernetes\n").expect("the section")..];
    let start = section.find("```bash\n").expect("its commands") + 8;
    let block = &section[start..start + section[start..].find("```").unwrap()];
    let (first, rest) = block.split_once('\n').unwrap();
    assert!(first.contains("--bin k8s-test-api"), "{first}");

    let dir = tempfile::tempdir().unwrap();
    let api = K8sTestApi::start();
    let tmp = format!("{}/", dir.path().display());
    api.write_kubeconfig(&dir.path().join("kubeconfig"), "drkit-test");
    let script = rest.replace("/tmp/", &tmp);
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("PATH", path)
        .env("HOME", dir.path())
        .env_remove("DRKIT_REPO")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    // What the walkthrough did, read back.
    let api_dep = api.object("apps/v1", "deployments", "shop", "api").unwrap();
    let env: Vec<&str> = api_dep["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        ["DB_PASSWORD"],
        "rollout undo went back to the template before set-env"
    );
    assert_eq!(
        api_dep["spec"]["replicas"], 0,
        "the scale to 3 was a dry run"
    );
    assert!(
        api_dep["spec"]["template"]["spec"]["containers"][0]
            .get("ports")
            .is_none(),
        "no field the manifest did not have: {api_dep}"
    );
    assert_eq!(
        api.object("v1", "configmaps", "shop", "app-config")
            .unwrap()["data"]["DB_HOST"],
        "db-dr.internal"
    );
    assert!(
        api.object("v1", "namespaces", "", "shop-dr").is_none(),
        "the apply was a dry run"
    );
    assert!(api
        .object("apps/v1", "deployments", "shop", "drkit-maintenance")
        .is_some());
}

/// Every `k8s.*` action as a step of one runbook against the test API, each effect read
/// back from the cluster: a Secret set from a secret variable, rotated and restored, a
/// restart and its undo, a pod replaced, logs kept, maintenance on and off, and a
/// namespace exported and applied under a new name (latest of its source), then deleted.
#[test]
#[allow(clippy::too_many_lines)] // one runbook, each effect read back
fn every_k8s_action_runs_as_a_step_and_its_effect_is_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    api.create(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "main-ingress", "namespace": "shop"},
        "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}]},
    }));
    assert!(api.tick_until(50, |a| a
        .object("apps/v1", "deployments", "shop", "api")
        .unwrap()["status"]["readyReplicas"]
        == 3));
    let pods = api.objects("v1", "pods", "shop");
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_owned();
    api.set_logs(&pod, &["ready to serve", "GET /health 200"]);
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env([("SHOP_DB_PASSWORD", "Sekrit-Value-4711".to_owned())]);
    d.json(&["repo", "init"]);
    let book = dir.path().join("every-k8s.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: every-k8s-action
vars:
  db_password: {{ env: SHOP_DB_PASSWORD, secret: true }}
  pod: {{ default: "{pod}" }}
targets:
  dr: {{ kind: kubernetes, context: dr, kubeconfig: "{kc}", namespace: shop }}
steps:
  - id: ns
    action: k8s.namespace_create
    with: {{ target: dr, name: scratch, labels: {{ purpose: drill }} }}
  - id: secret
    action: k8s.secret_set
    with: {{ target: dr, name: db, set: {{ password: "${{vars.db_password}}" }}, create: true, restart: false }}
  - id: rotate
    action: k8s.secret_rotate
    needs: [secret]
    with: {{ target: dr, name: db, rotate: [password], restart: false }}
  - id: unrotate
    action: k8s.secret_restore
    needs: [rotate]
    with: {{ target: dr, name: db }}
  - id: restart
    action: k8s.restart
    needs: [replace]
    with: {{ target: dr, workload: deployment/api }}
  - id: rolled
    action: k8s.rollout_status
    needs: [restart]
    with: {{ target: dr, workload: deployment/api, timeout: 1m }}
  - id: undo
    action: k8s.rollout_undo
    needs: [rolled]
    with: {{ target: dr, workload: deployment/api }}
  - id: ready
    action: k8s.wait_ready
    needs: [undo]
    with: {{ target: dr, workload: deployment/api, timeout: 1m }}
  - id: available
    action: k8s.wait_available
    needs: [ready]
    with: {{ target: dr, timeout: 1m }}
  - id: logs
    action: k8s.logs
    with: {{ target: dr, name: "${{vars.pod}}", tail: 10 }}
  - id: replace
    action: k8s.pod_delete
    needs: [logs]
    with: {{ target: dr, name: "${{vars.pod}}", timeout: 1m }}
  - id: down
    action: k8s.maintenance
    with: {{ target: dr, ingress: main-ingress, state: "on" }}
  - id: up
    action: k8s.maintenance
    needs: [down]
    with: {{ target: dr, ingress: main-ingress, state: "off" }}
  - id: export
    action: k8s.export
    needs: [unrotate, available]
    with: {{ target: dr, namespace: shop, kinds: [deployments, configmaps] }}
  - id: apply
    action: k8s.apply
    needs: [export]
    with: {{ target: dr, source: shop, namespace_map: {{ shop: shop-dr }}, wait: true, timeout: 1m }}
  - id: cleanup
    action: k8s.namespace_delete
    needs: [ns, apply]
    with: {{ target: dr, name: scratch, timeout: 1m }}
"#,
            kc = kubeconfig.display()
        ),
    )
    .unwrap();
    let out = d.run(&["--json", "run", book.to_str().unwrap()]);
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(run["outcome"], "succeeded", "{printed}");
    let outputs = |id: &str| dr_testkit::step(&run, id)["outputs"].clone();
    // The Secret: set, rotated, put back; its value never printed nor journaled.
    let secret = api.object("v1", "secrets", "shop", "db").unwrap();
    let value = secret["data"]["password"].as_str().unwrap().to_owned();
    let decoded =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &value).unwrap();
    assert_eq!(decoded, b"Sekrit-Value-4711", "restored to the value set");
    assert_eq!(outputs("rotate")["changed"], json!(["password"]));
    let shown = d.run(&["--json", "runs", "show", run["id"].as_str().unwrap()]);
    let everything = format!("{printed}{}", String::from_utf8_lossy(&shown.stdout));
    assert!(
        !everything.contains("Sekrit-Value-4711") && !everything.contains(&value),
        "the secret's value is never printed or journaled"
    );
    // The restart and its undo: the template is the one before the restart.
    assert!(outputs("restart")["restarted_at"].is_string());
    let undo = outputs("undo");
    assert!(
        undo["from_revision"].as_i64() > undo["to_revision"].as_i64(),
        "{undo}"
    );
    let dep = api.object("apps/v1", "deployments", "shop", "api").unwrap();
    assert!(
        dep["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null(),
        "undone: {dep}"
    );
    assert_eq!(outputs("available")["deployments"], json!(["api"]));
    // The pod replaced, its logs kept.
    let replacement = outputs("replace")["replacement"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(replacement, pod);
    assert!(
        api.object("v1", "pods", "shop", &pod).is_none(),
        "the old pod is gone"
    );
    assert!(
        outputs("logs").to_string().contains("GET /health 200"),
        "{}",
        outputs("logs")
    );
    // Maintenance on, then off: the Ingress as it was.
    assert_eq!(outputs("down")["after"], json!(["drkit-maintenance:80"]));
    assert_eq!(outputs("up")["after"], json!(["api:80"]));
    // The export applied into shop-dr and ready; the scratch namespace made and deleted.
    assert_eq!(
        outputs("apply")["snapshot"],
        outputs("export")["snapshot"],
        "latest of source shop is the export"
    );
    assert_eq!(
        api.object("apps/v1", "deployments", "shop-dr", "api")
            .unwrap()["status"]["readyReplicas"],
        3
    );
    assert_eq!(outputs("ns")["changed"], true);
    assert!(api.object("v1", "namespaces", "", "scratch").is_none());
}

/// Seed 000's monthly test as a drill: the production namespace exported and restored
/// into a throwaway namespace, the API deleted there, the recovery restores it, and the
/// throwaway namespace is gone at the end — the production namespace untouched.
#[test]
#[allow(clippy::too_many_lines)] // the drill, then both namespaces read back
fn the_monthly_restore_test_runs_as_a_drill_in_a_throwaway_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    assert!(api.tick_until(50, |a| a
        .object("apps/v1", "deployments", "shop", "api")
        .unwrap()["status"]["readyReplicas"]
        == 3));
    let uid =
        api.object("apps/v1", "deployments", "shop", "api").unwrap()["metadata"]["uid"].clone();
    let d = Drkit::local(BIN, &dir.path().join("repo"));
    d.json(&["repo", "init"]);
    let drill = |disaster_namespace: &str| {
        format!(
            r#"version: 1
name: shop-monthly-restore-test
objectives: {{ rto: 5m }}
targets:
  dr: {{ kind: kubernetes, context: dr, kubeconfig: "{kc}", namespace: shop }}
drill:
  setup:
    - {{ id: sandbox, action: k8s.namespace_create, with: {{ target: dr, name: drill-shop, labels: {{ purpose: drill }} }} }}
    - {{ id: export, action: k8s.export, with: {{ target: dr, namespace: shop }} }}
    - id: deployed
      action: k8s.apply
      needs: [sandbox, export]
      with: {{ target: dr, source: shop, namespace_map: {{ shop: drill-shop }}, wait: true, timeout: 1m }}
  disaster:
    - {{ id: api-deleted, action: disaster.k8s_delete, with: {{ target: dr, workload: deployment/api, namespace: "{disaster_namespace}" }} }}
  recovered:
    - {{ id: available, action: k8s.wait_available, with: {{ target: dr, namespace: "${{steps.sandbox.outputs.name}}", timeout: 1m }} }}
  teardown:
    - {{ id: remove-sandbox, action: k8s.namespace_delete, with: {{ target: dr, name: "${{steps.sandbox.outputs.name}}", timeout: 1m }} }}
steps:
  - id: restore
    action: k8s.apply
    with: {{ target: dr, source: shop, namespace_map: {{ shop: drill-shop }}, wait: true, timeout: 1m }}
"#,
            kc = kubeconfig.display()
        )
    };
    // Aimed at the production namespace: refused before anything runs.
    let book = dir.path().join("monthly.yaml");
    std::fs::write(&book, drill("shop")).unwrap();
    let out = d.run(&["drill", book.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("acts on target \"dr\", which is not a sandbox"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.json(&["runs"]), json!([]));

    std::fs::write(&book, drill("${steps.sandbox.outputs.name}")).unwrap();
    let report = d.json(&["drill", book.to_str().unwrap()]);
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let disaster = &report["drill"]["disaster"];
    assert_eq!(disaster["step"], "api-deleted");
    assert!(
        disaster["what"]
            .as_str()
            .unwrap()
            .contains("deployment/api in namespace drill-shop"),
        "{disaster}"
    );
    let rto = report["rto"]["achieved_seconds"].as_f64().unwrap();
    assert!(rto > 0.0 && report["rto"]["verdict"] == "met", "{report}");
    assert_eq!(
        report["rpo"]["verdict"], "no_objective",
        "no canary, no RPO objective"
    );
    // The throwaway namespace is gone; production was never touched.
    assert!(api.tick_until(50, |a| a
        .object("v1", "namespaces", "", "drill-shop")
        .is_none()));
    let prod = api.object("apps/v1", "deployments", "shop", "api").unwrap();
    assert_eq!(prod["metadata"]["uid"], uid);
    assert_eq!(prod["spec"]["replicas"], 3);
}

#[test]
fn namespaces_pods_and_logs_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env([("KUBECONFIG", kubeconfig.display().to_string())]);
    let made = d.json(&[
        "k8s",
        "namespace",
        "create",
        "namespace/restore-test",
        "-l",
        "purpose=drill",
    ]);
    assert_eq!(made["changed"], true);
    let ns = api.object("v1", "namespaces", "", "restore-test").unwrap();
    assert_eq!(ns["metadata"]["labels"]["purpose"], "drill");
    let again = d.json(&["k8s", "namespace", "create", "restore-test"]);
    assert_eq!(
        again["changed"], false,
        "an existing namespace is left as it is"
    );

    let available = d.json(&["k8s", "-n", "shop", "wait-available", "--timeout", "1m"]);
    assert_eq!(available, json!(["api"]));
    let pods = api.objects("v1", "pods", "shop");
    let pod = pods[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let logs = d.json(&[
        "k8s",
        "-n",
        "shop",
        "logs",
        &format!("pod/{pod}"),
        "--tail",
        "5",
    ]);
    assert_eq!(logs["pod"], pod.as_str());
    let replaced = d.json(&[
        "k8s",
        "-n",
        "shop",
        "pod",
        "delete",
        &pod,
        "--timeout",
        "1m",
    ]);
    assert_eq!(replaced["deleted"], pod.as_str());
    assert_ne!(replaced["replacement"], pod.as_str());
    assert!(
        api.object("v1", "pods", "shop", &pod).is_none(),
        "the old pod is gone"
    );

    let gone = d.json(&[
        "k8s",
        "namespace",
        "delete",
        "restore-test",
        "--timeout",
        "1m",
    ]);
    assert_eq!(gone["changed"], true);
    assert!(api.object("v1", "namespaces", "", "restore-test").is_none());
    let out = d.run(&["k8s", "-n", "shop", "logs", "pod/no-such-pod"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-pod"), "{}", stderr(&out));
}

/// Seed 000's `kubectl apply -f infrastructure/k8s/$ENV/`: a folder of manifests (a
/// Namespace, a Secret and a ConfigMap in one file, a Deployment and its Service in
/// another, a JSON Deployment in a subfolder, a README beside them) applied in the order
/// the cluster needs, each object read back; an edit shows as a diff in a dry run; a part
/// picked by kind and label; bad input refused before anything is applied; and one
/// Deployment out of a namespace snapshot (seed 001).
#[test]
#[allow(clippy::too_many_lines)] // one folder of manifests, applied several ways
fn manifests_from_a_folder_are_applied_in_order_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    let m = dir.path().join("k8s/prod");
    std::fs::create_dir_all(m.join("workers")).unwrap();
    std::fs::write(m.join("README.md"), "how to deploy").unwrap();
    std::fs::write(
        m.join("00-namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n  labels: {team: web}\n",
    )
    .unwrap();
    std::fs::write(
        m.join("api.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: web\n  labels: {app: api}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec:\n      containers:\n      - {name: api, image: web/api:7, envFrom: [{configMapRef: {name: web-config}}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: web, labels: {app: api}}\nspec:\n  selector: {app: api}\n  ports: [{port: 80, targetPort: 8000}]\n",
    )
    .unwrap();
    std::fs::write(
        m.join("config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: web}\ndata: {DB_HOST: db-dr.internal}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: web-db, namespace: web}\nstringData: {password: From-A-File-9931}\n",
    )
    .unwrap();
    std::fs::write(
        m.join("workers/worker.json"),
        r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker", "namespace": "web", "labels": {"app": "worker"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "worker"}}, "template": {"metadata": {"labels": {"app": "worker"}}, "spec": {"containers": [{"name": "worker", "image": "web/worker:7"}]}}}}"#,
    )
    .unwrap();
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env([("KUBECONFIG", kubeconfig.display().to_string())]);
    let folder = m.to_str().unwrap();
    let order = |doc: &Value| -> Vec<String> {
        doc["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o["kind"].as_str().unwrap(),
                    o["action"].as_str().unwrap()
                )
            })
            .collect()
    };

    // A dry run: everything would be created, in dependency order; nothing is.
    let dry = d.json(&["k8s", "apply", "-f", folder, "--dry-run"]);
    assert_eq!(
        order(&dry),
        [
            "Namespace created",
            "Secret created",
            "ConfigMap created",
            "Service created",
            "Deployment created",
            "Deployment created"
        ],
        "{dry}"
    );
    assert!(api.object("v1", "namespaces", "", "web").is_none());

    let applied = d.json(&["k8s", "apply", "-f", folder, "--wait", "--timeout", "1m"]);
    assert_eq!(applied["snapshot"], Value::Null);
    assert_eq!(applied["files"], json!([folder]));
    assert_eq!(
        api.object("v1", "namespaces", "", "web").unwrap()["metadata"]["labels"]["team"],
        "web"
    );
    let secret = api.object("v1", "secrets", "web", "web-db").unwrap();
    assert_eq!(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            secret["data"]["password"].as_str().unwrap()
        )
        .unwrap(),
        b"From-A-File-9931"
    );
    assert_eq!(
        api.object("v1", "configmaps", "web", "web-config").unwrap()["data"]["DB_HOST"],
        "db-dr.internal"
    );
    assert_eq!(
        api.object("apps/v1", "deployments", "web", "api").unwrap()["status"]["readyReplicas"],
        2,
        "--wait waited until it was ready"
    );
    assert_eq!(
        api.object("v1", "services", "web", "api").unwrap()["spec"]["ports"][0]["targetPort"],
        8000
    );
    assert!(api
        .object("apps/v1", "deployments", "web", "worker")
        .is_some());

    // An edit: the dry run names the change and nothing else; the apply makes it.
    let text = std::fs::read_to_string(m.join("api.yaml")).unwrap();
    std::fs::write(
        m.join("api.yaml"),
        text.replace("replicas: 2", "replicas: 3"),
    )
    .unwrap();
    let dry = d.json(&["k8s", "apply", "-f", folder, "--dry-run"]);
    let changed: Vec<&Value> = dry["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] != "unchanged")
        .collect();
    assert_eq!(changed.len(), 1, "{dry}");
    assert_eq!(changed[0]["name"], "api");
    assert_eq!(changed[0]["diff"], json!(["spec.replicas: 2 -> 3"]));
    let shown = d.run(&["k8s", "apply", "-f", folder, "--dry-run"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("Namespace web: unchanged"), "{shown}");
    assert!(
        !shown.contains("From-A-File"),
        "a Secret's value is never shown: {shown}"
    );

    // Part of it: one Deployment by kind and label.
    let part = d.json(&[
        "k8s",
        "apply",
        "-f",
        folder,
        "--kinds",
        "deployments",
        "-l",
        "app=api",
    ]);
    assert_eq!(order(&part), ["Deployment updated"], "{part}");
    assert_eq!(
        api.object("apps/v1", "deployments", "web", "api").unwrap()["spec"]["replicas"],
        3
    );

    // Refused before anything is applied, each naming the problem.
    let refused = |args: &[&str], says: &str| {
        let out = d.run(args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        let e = stderr(&out);
        assert!(e.contains(says), "{args:?}: {e}");
    };
    refused(
        &["k8s", "apply", "-f", folder, "--kinds", "Widget"],
        "kinds Widget match no object; the objects' kinds are ConfigMap, Deployment, Namespace, Secret, Service",
    );
    refused(&["k8s", "apply", "-f", folder, "-l", "app="], "match");
    refused(
        &["k8s", "apply", "-f", folder, "--kinds", "Deploymnet"],
        "(did you mean Deployment?)",
    );
    refused(
        &["k8s", "apply", "-f", folder, "-n", "other", "--dry-run"],
        "Deployment api is in namespace web, not other (the namespace given)",
    );
    let short = d.json(&[
        "k8s",
        "apply",
        "-f",
        folder,
        "--kinds",
        "deploy,cm",
        "--dry-run",
    ]);
    assert_eq!(short["objects"].as_array().unwrap().len(), 3, "{short}");
    // Every problem at once: a kind nobody serves, a namespace nothing makes, an object
    // given twice.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("a.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: fresh}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: fresh}\n",
    )
    .unwrap();
    std::fs::write(
        bad.join("b.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: nowhere}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: nowhere}\n",
    )
    .unwrap();
    let out = d.run(&["k8s", "apply", "-f", bad.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let e = stderr(&out);
    for says in [
        "a.yaml, document 2: kind Widget (example.com/v1) is not served by context \"dr\"; fix apiVersion, or apply its CustomResourceDefinition first",
        "b.yaml, document 2: ConfigMap nowhere/c is also in",
        "namespace nowhere does not exist in context \"dr\" and no manifest creates it",
    ] {
        assert!(e.contains(says), "{says}: {e}");
    }
    assert!(
        api.object("v1", "namespaces", "", "fresh").is_none(),
        "nothing was applied"
    );
    refused(
        &["k8s", "apply", "-f", "/no/such/folder"],
        "manifest path /no/such/folder",
    );

    // Seed 001: one Deployment out of a namespace snapshot, into another namespace.
    d.json(&["repo", "init"]);
    d.json(&["k8s", "-n", "shop", "export"]);
    let one = d.json(&[
        "k8s",
        "apply",
        "--kinds",
        "Deployment",
        "-l",
        "app=api",
        "--namespace-map",
        "shop=shop-one",
    ]);
    assert_eq!(order(&one), ["Deployment created"], "{one}");
    assert!(api
        .object("apps/v1", "deployments", "shop-one", "api")
        .is_some());
    assert!(
        api.object("v1", "configmaps", "shop-one", "app-config")
            .is_none(),
        "only what was picked"
    );
}

/// Seed 000's cluster recovery: two namespaces of the `prod` cluster and what they need
/// of it — their Namespaces, the StorageClass their claim uses, the ClusterRoles their
/// RoleBinding and ServiceAccount are bound to, a CustomResourceDefinition and its
/// custom resource — exported into one snapshot, then applied in order into a new,
/// empty cluster (`dr`, a second API behind a second context), and read back there.
/// What the namespaces do not need stays behind.
#[test]
#[allow(clippy::too_many_lines)] // two clusters, each object read back
fn namespaces_and_what_they_need_of_the_cluster_are_restored_into_a_new_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (prod, dr) = (K8sTestApi::start(), K8sTestApi::start());
    let kubeconfig = dir.path().join("kubeconfig");
    dr_testkit::k8s::write_kubeconfig(&kubeconfig, &[(&prod, "prod"), (&dr, "dr")]);
    let crd = |plural: &str, kind: &str| {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.example.com")},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
    };
    for obj in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "shop", "pod-security.kubernetes.io/enforce": "baseline"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "billing"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}, "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "slow"}, "provisioner": "ebs.csi.aws.com"}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"}, "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "shop"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "viewer"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "robot-role"}, "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "unrelated"}, "rules": []}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "robot-binding"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "robot-role"}, "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "shop"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "other-binding"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "unrelated"}, "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "other"}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "read-all", "namespace": "billing"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "viewer"}, "subjects": [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}]}),
        crd("widgets", "Widget"),
        crd("gadgets", "Gadget"),
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"}, "spec": {"size": 3}}),
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1", "namespace": "other"}, "spec": {}}),
        deployment("shop", "api", 2, "shop/api:7"),
        deployment("billing", "worker", 1, "billing/worker:3"),
    ] {
        prod.create(obj);
    }
    let d = Drkit::local(BIN, &dir.path().join("repo"))
        .with_env([("KUBECONFIG", kubeconfig.display().to_string())]);
    d.json(&["repo", "init"]);
    let exported = d.json(&[
        "k8s",
        "--context",
        "prod",
        "export",
        "--namespaces",
        "shop,billing",
        "--cluster",
    ]);
    assert_eq!(exported["namespaces"], json!(["shop", "billing"]));
    let listed: Vec<String> = exported["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "Namespace shop",
        "Namespace billing",
        "CustomResourceDefinition widgets.example.com",
        "StorageClass fast",
        "PersistentVolumeClaim data",
        "ClusterRole viewer",
        "ClusterRole robot-role",
        "ClusterRoleBinding robot-binding",
        "RoleBinding read-all",
        "Deployment api",
        "Deployment worker",
        "Widget w1",
    ] {
        assert!(
            listed.iter().any(|l| l == want),
            "{want} missing from {listed:?}"
        );
    }
    for not in [
        "Namespace other",
        "StorageClass slow",
        "ClusterRole unrelated",
        "ClusterRoleBinding other-binding",
        "CustomResourceDefinition gadgets.example.com",
        "Gadget g1",
    ] {
        assert!(
            !listed.iter().any(|l| l == not),
            "{not} is not needed: {listed:?}"
        );
    }

    // Into the new cluster: a dry run first (nothing there yet, every object created, in
    // the order the cluster needs them), then the apply.
    let dry = d.json(&["k8s", "--context", "dr", "apply", "--dry-run"]);
    let kinds: Vec<&str> = dry["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"Namespace"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"Widget"), "{kinds:?}");
    let at = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(at("CustomResourceDefinition") < at("StorageClass"));
    assert!(at("StorageClass") < at("PersistentVolumeClaim"));
    assert!(
        at("ClusterRole") < at("ClusterRoleBinding")
            && at("ClusterRoleBinding") < at("RoleBinding")
    );
    assert!(
        dry["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["action"] == "created"),
        "{dry}"
    );
    assert!(
        dr.object("v1", "namespaces", "", "shop").is_none(),
        "a dry run changes nothing"
    );

    let applied = d.json(&[
        "k8s",
        "--context",
        "dr",
        "apply",
        "--wait",
        "--timeout",
        "1m",
    ]);
    assert_eq!(
        applied["objects"].as_array().unwrap().len(),
        listed.len(),
        "{applied}"
    );
    let ns = dr.object("v1", "namespaces", "", "shop").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
    assert_eq!(
        dr.object("storage.k8s.io/v1", "storageclasses", "", "fast")
            .unwrap()["parameters"]["type"],
        "gp3"
    );
    assert!(dr
        .object("storage.k8s.io/v1", "storageclasses", "", "slow")
        .is_none());
    assert_eq!(
        dr.object("v1", "persistentvolumeclaims", "shop", "data")
            .unwrap()["spec"]["storageClassName"],
        "fast"
    );
    assert_eq!(
        dr.object(
            "rbac.authorization.k8s.io/v1",
            "clusterrolebindings",
            "",
            "robot-binding"
        )
        .unwrap()["subjects"][0]["namespace"],
        "shop"
    );
    assert_eq!(
        dr.object(
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            "billing",
            "read-all"
        )
        .unwrap()["roleRef"]["name"],
        "viewer"
    );
    assert!(dr
        .object("rbac.authorization.k8s.io/v1", "clusterroles", "", "viewer")
        .is_some());
    assert_eq!(
        dr.object("example.com/v1", "widgets", "shop", "w1")
            .unwrap()["spec"]["size"],
        3,
        "the custom resource, after its definition"
    );
    assert_eq!(
        dr.object("apps/v1", "deployments", "billing", "worker")
            .unwrap()["status"]["readyReplicas"],
        1
    );
    // The same snapshot again: everything unchanged.
    let again = d.json(&["k8s", "--context", "dr", "apply", "--dry-run"]);
    assert!(
        again["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["action"] == "unchanged"),
        "{again}"
    );
}

const SCHEDULED: &str = r"version: 1
name: nightly-failover-check
targets:
  here: { kind: kubernetes, in_cluster: true, namespace: shop }
steps:
  - id: stop
    action: k8s.scale
    with: { target: here, workload: deployment/api, replicas: 0 }
  - id: repoint
    action: k8s.configmap_set
    needs: [stop]
    with: { target: here, name: app-config, set: { DB_HOST: db-dr.internal } }
";

const RENDER: [&str; 6] = [
    "--name",
    "nightly",
    "--image",
    "drkit:test",
    "--secret",
    "drkit-env",
];

/// `drkit k8s render` makes what `kubectl apply` takes: a CronJob that runs the runbook
/// as its schedule's keyed run under a Lease, a pod that cannot write its image or become
/// root, and RBAC that grants the Lease and what the runbook's steps touch, nothing more.
#[test]
fn rendered_manifests_apply_and_grant_what_the_runbook_touches_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = cluster(dir.path());
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "drkit"}}));
    let d = Drkit::local(BIN, &dir.path().join("repo"));
    let book = dir.path().join("nightly.yaml");
    std::fs::write(&book, SCHEDULED).unwrap();
    let mut args = vec!["k8s", "render", "run", book.to_str().unwrap()];
    args.extend(RENDER);
    args.extend(["--schedule", "0 2 * * *", "--env", "AWS_REGION=eu-west-1"]);
    let out = d.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifests = dir.path().join("drkit.yaml");
    std::fs::write(&manifests, &out.stdout).unwrap();
    let Some(applied) =
        dr_testkit::k8s::kubectl(&kubeconfig, &["apply", "-f", manifests.to_str().unwrap()])
    else {
        return;
    };
    assert!(applied.status.success(), "{}", stderr(&applied));

    let get = |args: &[&str]| kubectl_json(&kubeconfig, args).unwrap();
    let cron = get(&["get", "cronjob", "nightly", "-n", "drkit"]);
    assert_eq!(cron["spec"]["schedule"], "0 2 * * *");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["backoffLimit"], 1);
    assert!(job["ttlSecondsAfterFinished"].as_u64().unwrap() > 0);
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["serviceAccountName"], "nightly");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    let container_args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let joined = container_args.join(" ");
    for part in [
        "--result-file /dev/termination-log",
        "run /etc/drkit/runbooks/nightly.yaml",
        "--resume-or-start nightly --occurrence $(DRKIT_JOB_NAME)",
        "--lock k8s:in-cluster/drkit/nightly",
    ] {
        assert!(joined.contains(part), "{part:?} in {joined}");
    }
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "drkit-env");
    let cm = get(&["get", "configmap", "nightly-runbook", "-n", "drkit"]);
    assert_eq!(
        cm["data"]["nightly.yaml"], SCHEDULED,
        "the runbook as written"
    );

    // drkit's own Role: its Lease (by name) and its Job's Events.
    let own = get(&["get", "role", "nightly", "-n", "drkit"]);
    let rules = own["rules"].to_string();
    assert!(rules.contains("\"resourceNames\":[\"nightly\"]"), "{rules}");
    assert!(
        rules.contains("leases") && rules.contains("events"),
        "{rules}"
    );
    // The runbook's Role, where its steps act: scale and the ConfigMap, no Secrets.
    let shop = get(&["get", "role", "nightly-runbook", "-n", "shop"]);
    let rules = shop["rules"].to_string();
    assert!(
        rules.contains("deployments/scale") && rules.contains("configmaps"),
        "{rules}"
    );
    assert!(
        !rules.contains("secrets") && !rules.contains("\"*\""),
        "{rules}"
    );
    let binding = get(&["get", "rolebinding", "nightly-runbook", "-n", "shop"]);
    assert_eq!(binding["subjects"][0]["namespace"], "drkit");
    let cluster_roles = get(&[
        "get",
        "clusterroles",
        "-l",
        "app.kubernetes.io/instance=nightly",
    ]);
    assert_eq!(
        cluster_roles["items"].as_array().unwrap().len(),
        0,
        "nothing cluster-wide"
    );
}

/// Without a schedule, one Job; a target that would look for a kubeconfig in the pod is
/// pointed out; names Kubernetes or cron would refuse are refused first.
#[test]
fn render_makes_a_job_without_a_schedule_and_points_out_what_cannot_work_in_a_pod() {
    let dir = tempfile::tempdir().unwrap();
    let d = Drkit::local(BIN, &dir.path().join("repo"));
    let book = dir.path().join("nightly.yaml");
    std::fs::write(
        &book,
        SCHEDULED.replace("in_cluster: true", "context: prod"),
    )
    .unwrap();
    let mut args = vec!["k8s", "render", "drill", book.to_str().unwrap()];
    args.extend(RENDER);
    let doc = d.json(&args);
    let kinds: Vec<&str> = doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"Job"), "{kinds:?}");
    assert!(
        doc["notes"][0]
            .as_str()
            .unwrap()
            .contains("in_cluster: true"),
        "{doc}"
    );

    // Bad input is refused, naming the fix.
    for (name, schedule, says) in [
        ("Nightly_Backup", "0 2 * * *", "not a Kubernetes name"),
        ("nightly", "at 2am", "not a cron schedule"),
    ] {
        let mut args = vec!["k8s", "render", "backup", "--source-key", "DATABASE_URL"];
        args.extend(&RENDER[2..]);
        args.extend(["--name", name, "--schedule", schedule]);
        let out = d.run(&args);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}
