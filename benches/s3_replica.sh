#!/usr/bin/env bash
# s3.verify_replica on 100,000 objects: a source prefix and its replica in garage (a real
# S3 server on loopback), the replica with 100 objects missing and 100 changed. drkit
# against the script a team would write (boto3: list both, compare in a dict), same run.
#
#   benches/s3_replica.sh                 # 100,000 objects
#   OBJECTS=400000 benches/s3_replica.sh  # memory must stay flat
#
# Prints wall time, list requests and peak RSS, and the ratios. It measures; it does not
# fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."
OBJECTS="${OBJECTS:-100000}"
WORK="${BENCH_DIR:-/var/tmp/drkit-s3-replica-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
VENV="${DRKIT_VENV:-/var/tmp/drkit-venv}"
scripts/setup --services
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
cargo build --release --locked -q -p dr-cli
DRKIT="$CARGO_TARGET_DIR/release/drkit"
# shellcheck source=benches/garage.sh
. "$(dirname "$0")/garage.sh"
rm -rf "$WORK"; mkdir -p "$WORK"
start_garage "$WORK/garage"
trap 'stop_garage; rm -rf "$WORK"' EXIT

echo "writing $OBJECTS objects twice…" >&2
"$VENV/bin/python" - "$ENDPOINT" "$OBJECTS" <<'PY'
import sys, boto3, concurrent.futures as cf
from botocore.config import Config
ep, n = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=ep, config=Config(s3={"addressing_style": "path"}, max_pool_connections=64))
for _ in range(100):
    try:
        s3.head_bucket(Bucket="bench"); break
    except Exception:
        import time; time.sleep(0.2)
def put(i):
    key = f"{i % 1000:03d}/object-{i:07d}"
    body = f"object {i}".encode()
    s3.put_object(Bucket="bench", Key="src/" + key, Body=body)
    if i % 1000 != 7:                       # 100 missing from the replica
        s3.put_object(Bucket="bench", Key="dst/" + key, Body=body + (b"!" if i % 1000 == 9 else b""))  # 100 changed
with cf.ThreadPoolExecutor(64) as ex:
    list(ex.map(put, range(n)))
PY

SRC="s3://bench/src?endpoint=$ENDPOINT&region=us-east-1"
DST="s3://bench/dst?endpoint=$ENDPOINT&region=us-east-1"
/usr/bin/time -f "%e %M" -o "$WORK/drkit.time" "$DRKIT" --json s3 verify-replica "$SRC" "$DST" > "$WORK/drkit.json" || true
cat > "$WORK/baseline.py" <<'PY'
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], config=Config(s3={"addressing_style": "path"}))
pages = 0
def listing(prefix):
    global pages
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=prefix):
        pages += 1
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix):]] = (o["Size"], o["ETag"])
    return out
a, b = listing("src/"), listing("dst/")
missing = [k for k in a if k not in b]
differing = [k for k in a if k in b and a[k] != b[k]]
print(len(missing), len(differing), pages)
PY
/usr/bin/time -f "%e %M" -o "$WORK/boto3.time" "$VENV/bin/python" "$WORK/baseline.py" "$ENDPOINT" > "$WORK/boto3.out"

python3 - "$WORK" "$OBJECTS" <<'PY'
import json, sys
w, n = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"{w}/drkit.json"))
# GNU time puts "Command exited with non-zero status 3" first: the figures are the last line.
dk = open(f"{w}/drkit.time").read().splitlines()[-1].split(); bt = open(f"{w}/boto3.time").read().splitlines()[-1].split()
miss, diff, pages = open(f"{w}/boto3.out").read().split()
print(f"\n{n:,} objects and their replica (100 missing, 100 changed)\n")
print(f"{'':28} {'wall s':>8} {'peak RSS MiB':>13} {'list requests':>14} {'missing':>8} {'differing':>10}")
print(f"{'drkit s3 verify-replica':28} {float(dk[0]):8.2f} {int(dk[1])//1024:13d} {r['requests']:14d} {r['missing']['count']:8d} {r['differing']['count']:10d}")
print(f"{'boto3 list both + dict':28} {float(bt[0]):8.2f} {int(bt[1])//1024:13d} {int(pages):14d} {int(miss):8d} {int(diff):10d}")
print(f"\nratios (same run): wall {float(dk[0])/float(bt[0]):.2f}x, peak RSS {int(dk[1])/int(bt[1]):.2f}x")
PY
