"""drkit.Kubernetes from Python against the Kubernetes test API, kubectl reading back."""

import json
import os
import subprocess
import time

import pytest

import drkit

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, labels: {app: api}}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: app, image: "shop/api:1"}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {DB_HOST: db-primary.internal}
"""


@pytest.fixture()
def cluster(tmp_path):
    binary = os.environ.get("DRKIT_K8S_TEST_API") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "/var/tmp/drkit-target"), "debug", "k8s-test-api"
    )
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen([binary, "--kubeconfig", str(kubeconfig), "--context", "dr"], stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while not kubeconfig.exists() and time.time() < deadline:
        time.sleep(0.05)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
    subprocess.run(["kubectl", "apply", "-f", "-"], input=MANIFEST, text=True, env=env, check=True, capture_output=True)
    yield kubeconfig, env
    proc.kill()
    proc.wait()


def kubectl_json(env, *args):
    out = subprocess.run(["kubectl", *args, "-o", "json"], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_scale_configmap_and_env_from_python(cluster):
    kubeconfig, env = cluster
    k = drkit.Kubernetes(kubeconfig=kubeconfig, context="dr")
    assert k.context == "dr"
    k.wait_ready("deployment/api", timeout=60)
    plan = k.scale("deployment/api", 0, dry_run=True)
    assert (plan["from"], plan["to"]) == ("2", "0")
    down = k.scale("deployment/api", 0, wait=True, timeout=60)
    assert down["previous"] == 2
    assert kubectl_json(env, "get", "pods", "-l", "app=api")["items"] == [], "the pods are gone"
    up = k.scale("deployment/api", down["previous"], wait=True, timeout=60)
    assert up["ready"] == 2

    changed = k.configmap_set("app-config", set={"DB_HOST": "db-dr.internal"})
    assert changed["previous"] == {"DB_HOST": "db-primary.internal"}
    assert kubectl_json(env, "get", "configmap", "app-config")["data"] == {"DB_HOST": "db-dr.internal"}
    e = k.set_env("deployment/api", {"DATABASE_HOST": "db-dr.internal"})
    assert e["previous"] == {"app": {"DATABASE_HOST": None}}
    dep = kubectl_json(env, "get", "deployment", "api")
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "DATABASE_HOST", "value": "db-dr.internal"}]

    with pytest.raises(drkit.NotFoundError, match="deployment/nope in namespace default"):
        k.scale("deployment/nope", 1)
    with pytest.raises(drkit.InvalidInputError, match="no context"):
        drkit.Kubernetes(kubeconfig=kubeconfig, context="prod")


def test_export_apply_secret_and_maintenance_from_python(cluster, tmp_path):
    kubeconfig, env = cluster
    k = drkit.Kubernetes(kubeconfig=kubeconfig, context="dr")
    k.secret_set("db", set={"password": "swordfish-long-enough"}, create=True)
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    exported = k.export(repo)
    kinds = sorted(o["kind"] for o in exported["objects"])
    assert kinds == ["ConfigMap", "Deployment", "Secret"], exported
    dry = k.apply(repo, namespace_map={"default": "restored"}, dry_run=True)
    assert dry["dry_run"] and all(o["action"] == "created" for o in dry["objects"])
    k.apply(repo, namespace_map={"default": "restored"}, wait=True, timeout=60)
    assert kubectl_json(env, "-n", "restored", "get", "deployment", "api")["spec"]["replicas"] == 2

    rotated = k.secret_set("db", rotate=["password"])
    assert rotated["changed"] == ["password"]
    assert "swordfish" not in json.dumps(rotated)
    assert kubectl_json(env, "get", "secret", "db")["data"]["password"] != "c3dvcmRmaXNoLWxvbmctZW5vdWdo"
    restored = k.secret_restore("db")
    assert "swordfish" not in json.dumps(restored)
    assert kubectl_json(env, "get", "secret", "db")["data"]["password"] == "c3dvcmRmaXNoLWxvbmctZW5vdWdo"


def test_a_throwaway_namespace_its_pods_and_logs_from_python(cluster):
    kubeconfig, env = cluster
    k = drkit.Kubernetes(kubeconfig=kubeconfig, context="dr")
    made = k.namespace_create("dr-drill", labels={"purpose": "drill"})
    assert made["changed"]
    assert kubectl_json(env, "get", "namespace", "dr-drill")["metadata"]["labels"]["purpose"] == "drill"
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "dr-drill"},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "busybox:1.36", "command": ["sh", "-c", "echo ready to accept connections; exec sleep 3600"]}]},
            },
        },
    }
    subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps(sts), text=True, env=env, check=True, capture_output=True)
    k.scale("sts/db", 1, namespace="dr-drill", wait=True, timeout=60)
    before = kubectl_json(env, "-n", "dr-drill", "get", "pod", "db-0")["metadata"]["uid"]
    replaced = k.pod_delete("db-0", namespace="dr-drill", timeout=60)
    assert replaced["replacement"] == "db-0"
    assert kubectl_json(env, "-n", "dr-drill", "get", "pod", "db-0")["metadata"]["uid"] != before
    assert k.logs("db-0", namespace="dr-drill", tail=5)["containers"]["db"] == ["ready to accept connections"]
    k.scale("deployment/api", 2, wait=True, timeout=60)
    assert k.wait_available(timeout=60) == ["api"]
    gone = k.namespace_delete("dr-drill", timeout=60)
    assert gone["changed"]
    out = subprocess.run(["kubectl", "get", "namespace", "dr-drill"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "NotFound" in out.stderr


def test_apply_manifests_from_files_from_python(cluster, tmp_path):
    kubeconfig, env = cluster
    k = drkit.Kubernetes(kubeconfig=kubeconfig, context="dr")
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "app.yaml").write_text(MANIFEST.replace("replicas: 2", "replicas: 3").replace("db-primary", "db-dr"))
    dry = k.apply(files=[folder], dry_run=True)
    assert dry["snapshot"] is None
    changes = {o["kind"]: o["diff"] for o in dry["objects"]}
    assert changes == {"ConfigMap": ["data.DB_HOST: \"db-primary.internal\" -> \"db-dr.internal\""], "Deployment": ["spec.replicas: 2 -> 3"]}
    done = k.apply(files=[folder], kinds=["configmaps"])
    assert [o["kind"] for o in done["objects"]] == ["ConfigMap"]
    assert kubectl_json(env, "get", "configmap", "app-config")["data"] == {"DB_HOST": "db-dr.internal"}
    assert kubectl_json(env, "get", "deployment", "api")["spec"]["replicas"] == 2, "only what was picked"
    with pytest.raises(drkit.InvalidInputError, match="kinds secrets match no object"):
        k.apply(files=[folder], kinds=["secrets"])


def test_several_namespaces_with_what_they_need_of_the_cluster(cluster, tmp_path):
    kubeconfig, env = cluster
    k = drkit.Kubernetes(kubeconfig=kubeconfig, context="dr")
    k.namespace_create("billing", labels={"team": "billing"})
    repo = drkit.Repository.init(f"file://{tmp_path}/repo", password="pw")
    out = k.export(repo, namespaces=["default", "billing"], cluster=True)
    assert out["namespaces"] == ["default", "billing"]
    namespaces = [o["name"] for o in out["objects"] if o["kind"] == "Namespace"]
    assert namespaces == ["default", "billing"]
    assert {o.get("namespace") for o in out["objects"] if o["kind"] == "Deployment"} == {"default"}
    with pytest.raises(drkit.InvalidInputError, match="nor a custom resource"):
        k.export(repo, namespaces=["default"], cluster=True, kinds=["widgets"])
