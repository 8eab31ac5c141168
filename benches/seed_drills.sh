#!/usr/bin/env bash
# The seed plans' runbooks against the local services (PostgreSQL, moto, the Kubernetes
# test API, the test app), as their tests run them, three times each, release build:
#
# - the wall time of seed 001's emergency failover (target <= 10 s);
# - each drill end to end with its RTO and RPO: seed 000's monthly DR test, seed 001's
#   failover simulation and full exercise, seed 002's database failure, region failure
#   and data corruption drills, seed 004's restore drill (and the local failover drill of
#   examples/runbooks/drill.yaml: benches/drill.sh);
# - the time the seed tests add to the suite (each file's wall time).
#
#   benches/seed_drills.sh
#
# It measures; it does not fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
ROUNDS="${ROUNDS:-3}"
OUT="${BENCH_DIR:-/var/tmp/drkit-bench-seeds}"
tests=(seed_000 seed_001 seed_002 seed_003 seed_004)
# FIGURES_ONLY=1 reads the logs of the last run again.
if [ -z "${FIGURES_ONLY:-}" ]; then
rm -rf "$OUT"; mkdir -p "$OUT"
args=(); for t in "${tests[@]}"; do args+=(--test "$t"); done
cargo test --release --locked -q -p dr-cli "${args[@]}" --no-run 2>/dev/null
for round in $(seq 1 "$ROUNDS"); do
  for t in "${tests[@]}"; do
    start=$(date +%s.%N)
    cargo test --release --locked -q -p dr-cli --test "$t" -- --nocapture --test-threads 1 \
      > "$OUT/$t.$round.log" 2>&1 || echo "  $t round $round FAILED (see $OUT/$t.$round.log)"
    end=$(date +%s.%N)
    echo "$t $(echo "$end - $start" | bc)" >> "$OUT/walls"
  done
done
fi
python3 - "$OUT" "$ROUNDS" <<'PY'
import collections, re, statistics, sys, glob
out, rounds = sys.argv[1], int(sys.argv[2])
figures = collections.defaultdict(list)
for log in sorted(glob.glob(f"{out}/*.log")):
    for line in open(log, errors="replace"):
        # (cargo's progress dots may lead the line)
        m = re.search(r"([A-Za-z0-9][^:]*?): RTO ([0-9.]+) s, RPO ([0-9.]+) s", line)
        if m:
            figures[m.group(1)].append((float(m.group(2)), float(m.group(3))))
        m = re.search(r"emergency failover: ([0-9.]+) s", line)
        if m:
            figures["emergency failover (wall, seed 001)"].append((float(m.group(1)), None))
for name, runs in sorted(figures.items()):
    rto = [r for r, _ in runs]
    if runs[0][1] is None:
        print(f"{name}: {', '.join(f'{r:.2f}' for r in rto)} s (median {statistics.median(rto):.2f} s; target <= 10 s)")
    else:
        rpo = [p for _, p in runs]
        print(f"{name}: RTO {', '.join(f'{r:.2f}' for r in rto)} s (median {statistics.median(rto):.2f}); "
              f"RPO {', '.join(f'{p:.2f}' for p in rpo)} s (median {statistics.median(rpo):.2f})")
walls = collections.defaultdict(list)
for line in open(f"{out}/walls"):
    t, s = line.split()
    walls[t].append(float(s))
total = sum(statistics.median(v) for v in walls.values())
print("suite time of the seed tests (median wall per file, tests in one thread): " +
      ", ".join(f"{t} {statistics.median(v):.1f} s" for t, v in sorted(walls.items())) + f"; total {total:.1f} s")
PY
