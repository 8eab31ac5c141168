#!/usr/bin/env bash
# Kubernetes adapter benchmark against the test API (tests/testkit, run as its binary):
#   1. a runbook scales 50 Deployments of one namespace down to 0 and back up, waiting
#      each time: wall time and the requests drkit sent (it must not poll faster than
#      once per second per object: its waits watch instead);
#   2. export and apply of a namespace with 500 objects: wall time and peak RSS of each.
#
#   benches/k8s.sh
#
# Targets: export and apply ≤ 5 s each, peak RSS ≤ 100 MiB. It measures; it does not
# fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
WORK="${BENCH_DIR:-/var/tmp/drkit-bench-k8s}"
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
cargo build --release --locked -q -p dr-cli -p dr-testkit --bin drkit --bin k8s-test-api
DRKIT="$CARGO_TARGET_DIR/release/drkit"
rm -rf "$WORK"; mkdir -p "$WORK"
"$CARGO_TARGET_DIR/release/k8s-test-api" --kubeconfig "$WORK/kubeconfig" --context bench > "$WORK/api.log" & API_PID=$!
trap 'kill $API_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$WORK/kubeconfig" ] && break; sleep 0.1; done
export KUBECONFIG="$WORK/kubeconfig" HOME="$WORK"
SERVER=$(sed -n 's/.*server: //p' "$KUBECONFIG" | head -1)
requests() { python3 -c "import json,urllib.request; print(json.load(urllib.request.urlopen('$SERVER/_test/requests'))['count'])"; }
now() { date +%s.%N; }

manifests() { # NAMESPACE COUNT KIND…: COUNT Deployments (and ConfigMaps/Services/Secrets)
  local ns=$1 n=$2
  echo "apiVersion: v1"; echo "kind: Namespace"; echo "metadata: {name: $ns}"
  for i in $(seq 1 "$n"); do
    cat <<YAML
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app-$i, namespace: $ns, labels: {app: app-$i}}
spec:
  replicas: 2
  selector: {matchLabels: {app: app-$i}}
  template:
    metadata: {labels: {app: app-$i}}
    spec: {containers: [{name: app, image: "shop/app:$i", env: [{name: DB_HOST, value: db.internal}]}]}
YAML
  done
}

# 1. Scale 50 Deployments down and up through a runbook.
manifests scale 50 | kubectl apply -f - >/dev/null
export DRKIT_PASSWORD=bench DRKIT_REPO="file://$WORK/repo"
"$DRKIT" --quiet repo init >/dev/null
{ echo "version: 1"; echo "name: scale-50"; echo "targets:"; echo "  k: { kind: kubernetes, context: bench, namespace: scale }"; echo "steps:"
  for i in $(seq 1 50); do
    echo "  - { id: down-$i, action: k8s.scale, with: { target: k, workload: deployment/app-$i, replicas: 0, wait: true, timeout: 5m } }"
  done
  for i in $(seq 1 50); do
    echo "  - { id: up-$i, action: k8s.scale, needs: [down-$i], with: { target: k, workload: deployment/app-$i, replicas: \"\${steps.down-$i.outputs.previous}\", wait: true, timeout: 5m } }"
  done; } > "$WORK/scale.yaml"
r0=$(requests); t0=$(now)
"$DRKIT" --quiet --json run "$WORK/scale.yaml" > "$WORK/scale.json"
t1=$(now); r1=$(requests)
python3 - "$WORK/scale.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["outcome"] == "succeeded", d["outcome"]
PY
echo "runbook scaling 50 Deployments to 0 and back (each waited): $(echo "$t1 - $t0" | bc) s, $((r1 - r0)) requests ($(echo "scale=1; ($r1 - $r0) / 50" | bc) per Deployment)"

# 2. Export and apply a namespace of 500 objects (250 Deployments, 250 ConfigMaps).
{ manifests big 250
  for i in $(seq 1 250); do printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf-%s, namespace: big}\ndata: {DB_HOST: db-%s.internal, POOL: "10"}\n' "$i" "$i"; done; } | kubectl apply -f - >/dev/null
measure() { # NAME COMMAND…: wall seconds and peak RSS (MiB)
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > "$WORK/$name.json"
  read -r wall rss < "$WORK/time.txt"
  echo "$name of 500 objects: ${wall} s, peak RSS $((rss / 1024)) MiB"
}
measure export "$DRKIT" --quiet --json k8s -n big export
measure apply "$DRKIT" --quiet --json k8s apply --namespace-map big=big-restored

# The same apply against a test API whose controllers are paused: what drkit itself
# costs, without the test API ticking over 500 Deployments and their Pods meanwhile.
"$CARGO_TARGET_DIR/release/k8s-test-api" --kubeconfig "$WORK/kubeconfig-idle" --context idle --tick-ms 0 > "$WORK/idle.log" & IDLE_PID=$!
trap 'kill $API_PID $IDLE_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$WORK/kubeconfig-idle" ] && break; sleep 0.1; done
KUBECONFIG="$WORK/kubeconfig-idle" measure apply-paused-controllers "$DRKIT" --quiet --json k8s apply --namespace-map big=big-restored
python3 - "$WORK/export.json" "$WORK/apply.json" "$WORK/apply-paused-controllers.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
assert len(e["objects"]) == 500, len(e["objects"])
for f in sys.argv[2:]:
    a = json.load(open(f))
    assert sum(o["action"] == "created" for o in a["objects"]) == 500, f
PY
