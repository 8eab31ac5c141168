#!/usr/bin/env bash
# Runbook engine overhead, on a local-folder repository (and on garage when it is
# installed, under a Kubernetes Lease lock from the test API): a 1,000-step runbook of no-op steps (every journal event durable before the
# next step starts), `drkit plan` of a 200-step runbook, and resuming the 1,000-step run
# killed at step 500 (time until step 501 starts, and to the end).
#
#   benches/runbook.sh
#
# Targets: <= 5 ms engine overhead per step; plan of 200 steps <= 1 s; resume reaches
# step 501 in <= 2 s. It measures; it does not fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
WORK="${BENCH_DIR:-/var/tmp/drkit-bench-runbook}"
cargo build --release --locked -q -p dr-cli
DRKIT="$CARGO_TARGET_DIR/release/drkit"
rm -rf "$WORK"; mkdir -p "$WORK"
export DRKIT_PASSWORD=bench DRKIT_REPO="file://$WORK/repo"
"$DRKIT" --quiet repo init >/dev/null

steps() { # N steps of `wait 0s` in a chain; step N+1 waits ${vars.pause}
  local n=$1 file=$2
  { echo "version: 1"; echo "name: bench-$n"; echo "vars:"; echo "  pause: { default: 0s }"; echo "steps:"
    for i in $(seq 1 "$n"); do
      echo "  - id: s$i"; echo "    action: wait"
      [ "$i" -gt 1 ] && echo "    needs: [s$((i-1))]"
      if [ "$i" -eq $((n/2+1)) ]; then echo '    with: { for: "${vars.pause}" }'; else echo "    with: { for: 0s }"; fi
    done; } > "$file"
}
now() { date +%s.%N; }

steps 1000 "$WORK/r1000.yaml"
steps 200 "$WORK/r200.yaml"
steps 1 "$WORK/r1.yaml"

t0=$(now); "$DRKIT" --quiet plan "$WORK/r200.yaml" >/dev/null; t1=$(now)
echo "plan of 200 steps: $(echo "$t1 - $t0" | bc) s"

t0=$(now); "$DRKIT" --quiet --json run "$WORK/r1000.yaml" > "$WORK/run.json"; t1=$(now)
total=$(echo "$t1 - $t0" | bc)
echo "run of 1000 no-op steps: $total s = $(echo "scale=2; $total * 1000 / 1000" | bc) ms per step (process start included)"

# The same run on a tmpfs repository, where an fsync costs next to nothing: what the
# engine itself costs per step, apart from the disk.
if [ -d /dev/shm ]; then
  SHM=$(mktemp -d /dev/shm/drkit-bench-XXXXXX)
  DRKIT_REPO="file://$SHM/repo" "$DRKIT" --quiet repo init >/dev/null
  t0=$(now); DRKIT_REPO="file://$SHM/repo" "$DRKIT" --quiet --json run "$WORK/r1.yaml" >/dev/null; t1=$(now)
  one=$(echo "$t1 - $t0" | bc)
  t0=$(now); DRKIT_REPO="file://$SHM/repo" "$DRKIT" --quiet --json run "$WORK/r1000.yaml" >/dev/null; t1=$(now)
  mem=$(echo "$t1 - $t0" | bc)
  echo "run of 1000 no-op steps on tmpfs: $mem s; a 1-step run (process start, lock, journal header): $one s; engine cost $(echo "scale=2; ($mem - $one) * 1000 / 999" | bc) ms per step; the rest of the disk run's figure is fsync"
  rm -rf "$SHM"
fi

# Killed at step 500: step 501 waits an hour, the process is killed once it started.
"$DRKIT" --quiet run "$WORK/r1000.yaml" --var pause=1h --lock-ttl 1h & pid=$!
while :; do
  id=$("$DRKIT" --json runs | python3 -c "import json,sys; r=[x for x in json.load(sys.stdin) if x['outcome']=='running']; print(r[-1]['id'] if r else '')")
  if [ -n "$id" ] && "$DRKIT" --json runs show "$id" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if any(s['id']=='s501' and s['state']=='running' for s in d['steps']) else 1)"; then break; fi
  sleep 0.2
done
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
t0=$(now)
"$DRKIT" --quiet --json run --resume "$id" --var pause=0s > "$WORK/resumed.json"
t1=$(now)
python3 - "$WORK/resumed.json" "$t0" <<'PY'
import json, sys
from datetime import datetime
d = json.load(open(sys.argv[1])); t0 = float(sys.argv[2])
def ts(s):
    s = s.rstrip("Z"); head, _, frac = s.partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))
s501 = next(s for s in d["steps"] if s["id"] == "s501")
ends = [ts(s["ended"]) for s in d["steps"] if s["ended"]]
# The second start of s501 is the resumed one: its end minus ~0 s of waiting.
print(f"resume: outcome {d['outcome']}, step 501 done {ts(s501['ended']) - t0:.2f} s after the resume started, all 1000 steps {max(ends) - t0:.2f} s")
PY

# On garage (a real S3 server that ignores create-only writes), under a Kubernetes Lease
# lock served by the test API: every journal event is a PUT.
GARAGE_BIN=$(command -v garage || echo "$HOME/.cargo/bin/garage")
if [ -x "$GARAGE_BIN" ]; then
  # shellcheck source=benches/garage.sh
  . "$(dirname "$0")/garage.sh"
  cargo build --release --locked -q -p dr-testkit --bin k8s-test-api
  start_garage "$WORK/garage"
  "$CARGO_TARGET_DIR/release/k8s-test-api" --kubeconfig "$WORK/kubeconfig" --context bench > "$WORK/k8s.log" 2>&1 & K8S_PID=$!
  trap 'stop_garage; kill $K8S_PID 2>/dev/null || true' EXIT
  for _ in $(seq 50); do [ -s "$WORK/kubeconfig" ] && break; sleep 0.1; done
  export KUBECONFIG="$WORK/kubeconfig"
  S3_REPO="s3://bench/runbook?endpoint=$ENDPOINT"
  DRKIT_REPO="$S3_REPO" "$DRKIT" --quiet repo init >/dev/null
  t0=$(now); DRKIT_REPO="$S3_REPO" "$DRKIT" --quiet --json run "$WORK/r1.yaml" --lock k8s:bench/default/bench >/dev/null; t1=$(now)
  one=$(echo "$t1 - $t0" | bc)
  t0=$(now); DRKIT_REPO="$S3_REPO" "$DRKIT" --quiet --json run "$WORK/r1000.yaml" --lock k8s:bench/default/bench >/dev/null; t1=$(now)
  g=$(echo "$t1 - $t0" | bc)
  echo "run of 1000 no-op steps on garage with a Lease lock: $g s = $(echo "scale=2; ($g - $one) * 1000 / 999" | bc) ms per step (a 1-step run: $one s)"
fi
