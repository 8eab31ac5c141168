//! kubectl against the Kubernetes test API: the commands the seed plans run by hand
//! behave as on a real cluster (the test API's referee). These check the test API
//! itself, so they run against it even when `DRKIT_TEST_KUBECONFIG` is set.

use std::path::{Path, PathBuf};

use dr_testkit::k8s::{kubectl, kubectl_json, Faults, K8sTestApi};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: \"shop/web:1\"}]}
";

fn setup() -> (K8sTestApi, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let api = K8sTestApi::start();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc, "test");
    (api, dir, kc)
}

/// kubectl's exit status and output; `None` without kubectl (a skip, a failure in CI).
fn run(kc: &Path, args: &[&str]) -> Option<(i32, String)> {
    let out = kubectl(kc, args)?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.code().unwrap_or(-1), text))
}

#[test]
fn apply_twice_server_side_apply_and_diff() {
    let (api, dir, kc) = setup();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let f = file.to_str().unwrap();
    let Some((code, out)) = run(&kc, &["apply", "-f", f]) else {
        return;
    };
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("created"), "{out}");
    let (code, out) = run(&kc, &["apply", "-f", f]).unwrap();
    assert_eq!(
        (code, out.contains("unchanged")),
        (0, true),
        "the second apply changes nothing: {out}"
    );
    let (code, out) = run(&kc, &["diff", "-f", f]).unwrap();
    assert_eq!(code, 0, "no difference: {out}");

    std::fs::write(&file, DEPLOYMENT.replace("replicas: 2", "replicas: 5")).unwrap();
    let before = api
        .object("apps/v1", "deployments", "default", "web")
        .unwrap();
    let (code, out) = run(&kc, &["diff", "-f", f]).unwrap();
    assert_eq!(code, 1, "a difference exits 1: {out}");
    assert!(
        out.contains("-  replicas: 2") && out.contains("+  replicas: 5"),
        "{out}"
    );
    let after = api
        .object("apps/v1", "deployments", "default", "web")
        .unwrap();
    // The controllers may be moving its status meanwhile; what a client wrote is the
    // spec, and its generation counts every change to it.
    assert_eq!(
        (&before["metadata"]["generation"], &before["spec"]),
        (&after["metadata"]["generation"], &after["spec"]),
        "diff changed nothing"
    );

    let (code, out) = run(&kc, &["apply", "--server-side", "-f", f]).unwrap();
    assert_eq!(code, 0, "{out}");
    let d = kubectl_json(&kc, &["get", "deployment", "web"]).unwrap();
    assert_eq!(d["spec"]["replicas"], 5);
    // kubectl hides managedFields; the server recorded kubectl as the applier.
    let stored = api
        .object("apps/v1", "deployments", "default", "web")
        .unwrap();
    assert!(
        stored["metadata"]["managedFields"]
            .to_string()
            .contains("kubectl"),
        "{stored}"
    );
}

#[test]
fn rollout_history_undo_to_revision_and_status_timeout() {
    let (api, dir, kc) = setup();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let Some((code, out)) = run(&kc, &["apply", "-f", file.to_str().unwrap()]) else {
        return;
    };
    assert_eq!(code, 0, "{out}");
    for image in ["shop/web:2", "shop/web:3"] {
        let (code, out) = run(
            &kc,
            &["rollout", "status", "deployment/web", "--timeout=30s"],
        )
        .unwrap();
        assert_eq!(code, 0, "{out}");
        run(
            &kc,
            &["set", "image", "deployment/web", &format!("app={image}")],
        )
        .unwrap();
    }
    let (code, out) = run(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=30s"],
    )
    .unwrap();
    assert!(
        code == 0 && out.contains("successfully rolled out"),
        "{out}"
    );
    let (_, history) = run(&kc, &["rollout", "history", "deployment/web"]).unwrap();
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2", "3"], "{history}");
    let (code, out) = run(
        &kc,
        &["rollout", "undo", "deployment/web", "--to-revision=1"],
    )
    .unwrap();
    assert_eq!(code, 0, "{out}");
    let d = kubectl_json(&kc, &["get", "deployment", "web"]).unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop/web:1"
    );

    // A rollout that cannot progress: kubectl's own timeout fires.
    api.set_faults(Faults {
        stuck: true,
        ..Faults::default()
    });
    run(&kc, &["set", "image", "deployment/web", "app=shop/web:4"]).unwrap();
    let (code, out) = run(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=2s"],
    )
    .unwrap();
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("timed out"), "{out}");
}

#[test]
fn forbidden_and_missing_objects_read_as_kubectl_expects() {
    let (api, _dir, kc) = setup();
    api.forbid("list", "secrets");
    let Some((code, out)) = run(&kc, &["get", "secrets"]) else {
        return;
    };
    assert_ne!(code, 0);
    assert!(
        out.contains("Forbidden") || out.contains("forbidden"),
        "{out}"
    );
    let (code, out) = run(&kc, &["get", "deployment", "nope"]).unwrap();
    assert_ne!(code, 0);
    assert!(
        out.contains("NotFound") || out.contains("not found"),
        "{out}"
    );
}

#[test]
fn server_side_apply_names_the_other_manager_of_a_field_unless_forced() {
    let (api, dir, kc) = setup();
    let two = dir.path().join("web-2.yaml");
    let five = dir.path().join("web-5.yaml");
    std::fs::write(&two, DEPLOYMENT).unwrap();
    std::fs::write(&five, DEPLOYMENT.replace("replicas: 2", "replicas: 5")).unwrap();
    let apply_as = |manager: &str, file: &Path, force: bool| {
        let mut args = vec![
            "apply".to_owned(),
            "--server-side".to_owned(),
            format!("--field-manager={manager}"),
            "-f".to_owned(),
            file.display().to_string(),
        ];
        if force {
            args.push("--force-conflicts".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&kc, &args)
    };
    let Some((code, out)) = apply_as("drkit", &two, false) else {
        return;
    };
    assert_eq!(code, 0, "{out}");
    let replicas = || {
        api.object("apps/v1", "deployments", "default", "web")
            .unwrap()["spec"]["replicas"]
            .clone()
    };

    let (code, out) = apply_as("kubectl", &five, false).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("conflict with \"drkit\"") && out.contains(".spec.replicas"),
        "{out}"
    );
    assert_eq!(replicas(), 2, "a conflict changes nothing");
    // The same value is no conflict: both own it.
    let (code, out) = apply_as("kubectl", &two, false).unwrap();
    assert_eq!(code, 0, "{out}");

    let (code, out) = apply_as("kubectl", &five, true).unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(replicas(), 5);
    // The field changed hands: now drkit's apply of 2 is the one that conflicts.
    let (code, out) = apply_as("drkit", &two, false).unwrap();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("conflict with \"kubectl\""), "{out}");
    let managers = api
        .object("apps/v1", "deployments", "default", "web")
        .unwrap()["metadata"]["managedFields"]
        .to_string();
    assert!(
        managers.contains("\"drkit\"") && managers.contains("\"kubectl\""),
        "{managers}"
    );
}

/// What a created object holds that its creator chose: no server fields, no status, no
/// address the server assigns, no empty `resources` (kubectl's JSON carries `{}`, its
/// protobuf an empty message).
fn content(mut o: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, v| {
                    let server = matches!(
                        k.as_str(),
                        "creationTimestamp"
                            | "uid"
                            | "resourceVersion"
                            | "generation"
                            | "managedFields"
                            | "status"
                            | "clusterIP"
                            | "clusterIPs"
                    );
                    let empty =
                        k == "resources" && v.as_object().is_some_and(serde_json::Map::is_empty);
                    !server && !empty
                });
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("namespace");
        m.remove("name");
        // Its controller's, set once it has seen it.
        if let Some(a) = m
            .get_mut("annotations")
            .and_then(serde_json::Value::as_object_mut)
        {
            a.remove("deployment.kubernetes.io/revision");
            if a.is_empty() {
                m.remove("annotations");
            }
        }
    }
    strip(&mut o);
    o
}

/// Every `kubectl create <kind>` whose kind the test API serves sends protobuf; what it
/// makes must be what the same command's JSON (its client-side dry run, applied in
/// another namespace) makes.
#[test]
#[allow(clippy::too_many_lines)] // one table of commands
fn every_kubectl_create_in_protobuf_makes_what_its_json_makes() {
    let (api, dir, kc) = setup();
    // (apiVersion, plural, name, the command after `create`)
    let commands: &[(&str, &str, &str, &[&str])] = &[
        (
            "v1",
            "secrets",
            "s",
            &[
                "secret",
                "generic",
                "s",
                "--from-literal=password=hunter2-long",
                "--type=Opaque",
            ],
        ),
        (
            "v1",
            "secrets",
            "reg",
            &[
                "secret",
                "docker-registry",
                "reg",
                "--docker-server=r.example.com",
                "--docker-username=u",
                "--docker-password=p",
            ],
        ),
        (
            "v1",
            "configmaps",
            "c",
            &[
                "configmap",
                "c",
                "--from-literal=A=1",
                "--from-literal=B=two",
            ],
        ),
        (
            "apps/v1",
            "deployments",
            "web",
            &[
                "deployment",
                "web",
                "--image=shop/web:1",
                "--replicas=2",
                "--port=8080",
                "--",
                "serve",
                "--fast",
            ],
        ),
        (
            "v1",
            "services",
            "api",
            &[
                "service",
                "clusterip",
                "api",
                "--tcp=80:8000",
                "--tcp=443:https",
            ],
        ),
        (
            "v1",
            "services",
            "headless",
            &[
                "service",
                "clusterip",
                "headless",
                "--clusterip=None",
                "--tcp=5432:5432",
            ],
        ),
        (
            "v1",
            "services",
            "np",
            &[
                "service",
                "nodeport",
                "np",
                "--tcp=80:8080",
                "--node-port=30080",
            ],
        ),
        (
            "v1",
            "services",
            "lb",
            &["service", "loadbalancer", "lb", "--tcp=80:8080"],
        ),
        (
            "v1",
            "services",
            "ext",
            &[
                "service",
                "externalname",
                "ext",
                "--external-name",
                "db.example.com",
            ],
        ),
        (
            "networking.k8s.io/v1",
            "ingresses",
            "main",
            &[
                "ingress",
                "main",
                "--class=nginx",
                "--rule=shop.example.com/=api:80",
                "--rule=shop.example.com/admin*=admin:http",
                "--rule=tls.example.com/*=api:80,tls=tls-secret",
                "--default-backend=api:80",
                "--annotation",
                "a=b",
            ],
        ),
        (
            "v1",
            "serviceaccounts",
            "robot",
            &["serviceaccount", "robot"],
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "roles",
            "reader",
            &[
                "role",
                "reader",
                "--verb=get,list",
                "--resource=pods,deployments.apps",
                "--resource-name=x",
            ],
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            "rb",
            &[
                "rolebinding",
                "rb",
                "--role=reader",
                "--serviceaccount=proto:robot",
                "--user=alice",
                "--group=ops",
            ],
        ),
        (
            "batch/v1",
            "jobs",
            "once",
            &["job", "once", "--image=busybox", "--", "echo", "hi"],
        ),
        (
            "batch/v1",
            "cronjobs",
            "nightly",
            &[
                "cronjob",
                "nightly",
                "--image=busybox",
                "--schedule=0 3 * * *",
                "--restart=Never",
                "--",
                "echo",
                "hi",
            ],
        ),
    ];
    for ns in ["proto", "json"] {
        let Some((code, out)) = run(&kc, &["create", "namespace", ns]) else {
            return;
        };
        assert_eq!(code, 0, "kubectl create namespace (protobuf): {out}");
    }
    for (api_version, plural, name, command) in commands {
        let mut create = vec!["-n", "proto", "create"];
        create.extend(*command);
        let (code, out) = run(&kc, &create).unwrap();
        assert_eq!(code, 0, "kubectl {}: {out}", create.join(" "));
        // The same command's JSON, flags before a `--`.
        let mut dry = vec!["-n", "json", "create"];
        let at = command
            .iter()
            .position(|a| *a == "--")
            .unwrap_or(command.len());
        dry.extend(&command[..at]);
        dry.extend(["--dry-run=client", "-o", "json"]);
        dry.extend(&command[at..]);
        let (code, json_text) = run(&kc, &dry).unwrap();
        assert_eq!(code, 0, "{json_text}");
        let file = dir.path().join(format!("{plural}-{name}.json"));
        std::fs::write(&file, json_text).unwrap();
        let (code, out) =
            run(&kc, &["-n", "json", "create", "-f", file.to_str().unwrap()]).unwrap();
        assert_eq!(code, 0, "{out}");
        let made = |ns: &str| content(api.object(api_version, plural, ns, name).unwrap());
        assert_eq!(
            made("proto"),
            made("json"),
            "kubectl create {}",
            command.join(" ")
        );
    }
    let svc = api.object("v1", "services", "proto", "api").unwrap();
    assert_eq!(svc["spec"]["ports"][1]["targetPort"], "https", "{svc}");
    let ing = api
        .object("networking.k8s.io/v1", "ingresses", "proto", "main")
        .unwrap();
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][1]["backend"]["service"]["port"]["name"], "http",
        "{ing}"
    );
    assert_eq!(ing["spec"]["tls"][0]["secretName"], "tls-secret");
    let role = api
        .object("rbac.authorization.k8s.io/v1", "roles", "proto", "reader")
        .unwrap();
    assert_eq!(
        role["rules"][0]["apiGroups"],
        serde_json::json!([""]),
        "the core group: {role}"
    );
    let (code, out) = run(
        &kc,
        &[
            "-n",
            "proto",
            "rollout",
            "status",
            "deployment/web",
            "--timeout=30s",
        ],
    )
    .unwrap();
    assert_eq!(code, 0, "{out}");
}
