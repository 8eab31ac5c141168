#!/usr/bin/env bash
# Drills and reports, on throwaway PostgreSQL servers made here (initdb, pg_basebackup -R):
#
# - the failover drill of examples/runbooks/drill.yaml end to end, three times: its RTO
#   and RPO, and the recovery's own duration;
# - the canary's cost: the same drill without a canary (the recovery's duration, the
#   ratio of the two), and the writes per second one canary sustains at `interval: 1ms`;
# - report generation for a 1,000-step run in every format, against reading the same
#   journal with `drkit runs show` in the same run.
#
#   benches/drill.sh
#
# Targets: a report of 1,000 steps in <= 1 s in every format; the canary costs the
# recovery <= 10 %. It measures; it does not fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
WORK="${BENCH_DIR:-/var/tmp/drkit-bench-drill}"
cargo build --release --locked -q -p dr-cli
DRKIT="$CARGO_TARGET_DIR/release/drkit"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
rm -rf "$WORK"; mkdir -p "$WORK"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK"
export DRKIT_PASSWORD=bench DRKIT_REPO="file://$WORK/repo"
"$DRKIT" --quiet repo init >/dev/null
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A primary with 100,000 orders in `shop`, and its streaming replica: $P and $R are
# their URLs.
sandbox() {
  local n=$1 pp rp
  pp=$(free_port); rp=$(free_port)
  as_pg "$PGBIN/initdb" -D "$WORK/p$n" -U postgres --auth=trust >/dev/null 2>&1
  printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nwal_level = replica\nsynchronous_commit = off\n" \
    "$pp" | as_pg tee -a "$WORK/p$n/postgresql.conf" >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$WORK/p$n" -l "$WORK/p$n.log" -w start >/dev/null
  as_pg "$PGBIN/psql" -q -h 127.0.0.1 -p "$pp" -U postgres -c "CREATE DATABASE shop" >/dev/null
  as_pg "$PGBIN/psql" -q -h 127.0.0.1 -p "$pp" -U postgres -d shop -c \
    "CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric(12,2) NOT NULL, placed_at timestamptz NOT NULL DEFAULT clock_timestamp(), note text);
     INSERT INTO orders (amount) SELECT g / 100.0 FROM generate_series(1, 100000) g" >/dev/null
  as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$pp" -U postgres -D "$WORK/r$n" -R -c fast
  printf "port = %s\n" "$rp" | as_pg tee -a "$WORK/r$n/postgresql.conf" >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$WORK/r$n" -l "$WORK/r$n.log" -w start >/dev/null
  P="postgres://postgres@127.0.0.1:$pp/shop"; R="postgres://postgres@127.0.0.1:$rp/shop"
}
teardown() {
  local n=$1
  for d in "$WORK/p$n" "$WORK/r$n"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$d"
  done
}
trap 'for n in 1 2 3 4 5 6 7; do teardown $n; done' EXIT

cat > "$WORK/figures.py" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); d = r["drill"]; c = d.get("canary") or {}
fmt = lambda v: "-" if v is None else f"{v:.3f}s"
rto, rpo = r["rto"], r["rpo"]
print(f"{r['outcome']}: RTO {fmt(rto['achieved_seconds'])} ({rto['verdict']}), RPO {fmt(rpo['achieved_seconds'])} ({rpo['verdict']}), "
      f"recovery {fmt(d['recovery_seconds'])}; canary {c.get('acknowledged', '-')} acknowledged, {c.get('lost', '-')} lost")
print(d["recovery_seconds"], file=open(sys.argv[2], "a"))
PY
figures() { python3 "$WORK/figures.py" "$1" "$2"; }

echo "failover drill (examples/runbooks/drill.yaml, canary every 100ms, 2s of writes):"
for n in 1 2 3; do
  sandbox $n
  "$DRKIT" --quiet --json drill examples/runbooks/drill.yaml --var primary="$P" --var replica="$R" > "$WORK/drill$n.json" || true
  printf "  run %s: " $n; figures "$WORK/drill$n.json" "$WORK/with-canary"
  teardown $n
done

sed '/^  canary:/d' examples/runbooks/drill.yaml > "$WORK/no-canary.yaml"
echo "the same drill without a canary:"
for n in 4 5 6; do
  sandbox $n
  "$DRKIT" --quiet --json drill "$WORK/no-canary.yaml" --var primary="$P" --var replica="$R" > "$WORK/drill$n.json" || true
  printf "  run %s: " $n; figures "$WORK/drill$n.json" "$WORK/without-canary"
  teardown $n
done
python3 - "$WORK/with-canary" "$WORK/without-canary" <<'PY'
import statistics, sys
w = [float(x) for x in open(sys.argv[1])]; wo = [float(x) for x in open(sys.argv[2])]
a, b = statistics.median(w), statistics.median(wo)
print(f"canary's cost on the recovery: median {a:.3f}s with, {b:.3f}s without: ratio {a / b:.2f}")
PY

# One canary as fast as it goes: interval 1ms for 5 s.
sandbox 7
sed -e 's/interval: 100ms/interval: 1ms/' examples/runbooks/drill.yaml > "$WORK/fast.yaml"
"$DRKIT" --quiet --json drill "$WORK/fast.yaml" --var primary="$P" --var replica="$R" --var write_for=5s > "$WORK/fast.json" || true
python3 - "$WORK/fast.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); c = r["drill"]["canary"]
print(f"one canary at interval 1ms for 5 s: {c['acknowledged']} writes acknowledged = {c['acknowledged'] / 5:.0f} writes/s sustained (each a committed transaction, answered before the next)")
PY
teardown 7

# Reports of a 1,000-step run.
{ echo "version: 1"; echo "name: bench-report"; echo "objectives: { rto: 1h }"; echo "steps:"
  for i in $(seq 1 1000); do
    echo "  - id: s$i"; echo "    action: wait"; [ "$i" -gt 1 ] && echo "    needs: [s$((i-1))]"; echo "    with: { for: 0s }"
  done; } > "$WORK/r1000.yaml"
run=$("$DRKIT" --quiet --json run "$WORK/r1000.yaml" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
t0=$(now); "$DRKIT" --quiet --json runs show "$run" >/dev/null; t1=$(now)
base=$(echo "$t1 - $t0" | bc)
echo "report of a 1000-step run (reading its journal with runs show: ${base}s):"
for f in json md html junit postmortem; do
  t0=$(now); "$DRKIT" --quiet report "$run" --format $f -o "$WORK/report.$f" 2>/dev/null; t1=$(now)
  s=$(echo "$t1 - $t0" | bc)
  echo "  $f: ${s}s ($(stat -c %s "$WORK/report.$f") bytes), $(echo "scale=2; $s / $base" | bc)x runs show"
done
"$DRKIT" evidence keygen --out "$WORK/key" >/dev/null
t0=$(now); "$DRKIT" --quiet report "$run" --format json -o /dev/null --evidence "$WORK/evidence.json" --sign-key "$WORK/key" 2>/dev/null; t1=$(now)
t2=$(now); "$DRKIT" --quiet evidence verify "$WORK/evidence.json" --key "$WORK/key.pub" >/dev/null; t3=$(now)
echo "  evidence: signed in $(echo "$t1 - $t0" | bc)s, verified in $(echo "$t3 - $t2" | bc)s"
