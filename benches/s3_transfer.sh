#!/usr/bin/env bash
# S3 transfer benchmark: the same file up to and down from garage (a real S3 server on
# loopback) with drkit's S3 store and with `aws s3 cp` (awscli's transfer manager), in
# the same run.
#
#   benches/s3_transfer.sh                          # 1 GiB, median of 3
#   SIZE_MIB=4096 ROUNDS=1 benches/s3_transfer.sh   # memory must stay flat
#
# Prints wall time, throughput, peak RSS and the ratios (drkit / awscli throughput;
# target >= 1.0 with peak RSS <= parts in flight x part size + 32 MiB). It measures; it
# does not fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB="${SIZE_MIB:-1024}"
ROUNDS="${ROUNDS:-3}"
PART_MIB="${PART_MIB:-16}"
CONCURRENCY="${CONCURRENCY:-8}"
WORK="${BENCH_DIR:-/var/tmp/drkit-s3-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
VENV="${DRKIT_VENV:-/var/tmp/drkit-venv}"

scripts/setup --services
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
"$VENV/bin/python" -c "import awscli" 2>/dev/null || "$VENV/bin/pip" install -q awscli
cargo build --release --locked -q -p dr-cli
DRKIT="$CARGO_TARGET_DIR/release/drkit"
# shellcheck source=benches/garage.sh
. "$(dirname "$0")/garage.sh"
rm -rf "$WORK"; mkdir -p "$WORK"
start_garage "$WORK/garage"
trap 'stop_garage; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do "$VENV/bin/aws" --endpoint-url "$ENDPOINT" s3 ls s3://bench >/dev/null 2>&1 && break; sleep 0.2; done

echo "writing a ${SIZE_MIB} MiB file of random bytes…" >&2
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$WORK/src.bin"
REPO="s3://bench/drkit?endpoint=$ENDPOINT&part_size=${PART_MIB}MiB&concurrency=$CONCURRENCY"
AWS=("$VENV/bin/aws" --endpoint-url "$ENDPOINT" --only-show-errors s3 cp)
RESULTS="$WORK/results.tsv"; : > "$RESULTS"

# measure NAME COMMAND...: wall seconds and peak RSS (MiB) via GNU time.
measure() {
  local name=$1; shift
  sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true
  /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" >/dev/null
  read -r wall rss < "$WORK/time.txt"
  printf '%s\t%s\t%s\n' "$name" "$wall" "$((rss / 1024))" >> "$RESULTS"
  printf '  %-16s %7.2fs\n' "$name" "$wall" >&2
}

for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  measure "aws upload" "${AWS[@]}" "$WORK/src.bin" s3://bench/aws/obj
  measure "drkit upload" "$DRKIT" --repo "$REPO" --quiet store put obj "$WORK/src.bin"
  measure "aws download" "${AWS[@]}" s3://bench/aws/obj "$WORK/aws.bin"
  measure "drkit download" "$DRKIT" --repo "$REPO" --quiet store get obj "$WORK/drkit.bin"
  cmp -s "$WORK/src.bin" "$WORK/drkit.bin" || { echo "drkit download differs from the source" >&2; exit 1; }
  cmp -s "$WORK/src.bin" "$WORK/aws.bin" || { echo "aws download differs from the source" >&2; exit 1; }
  rm -f "$WORK/aws.bin" "$WORK/drkit.bin"
done

python3 - "$RESULTS" "$SIZE_MIB" "$PART_MIB" "$CONCURRENCY" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    name, wall, rss = line.split("\t")
    rows[name].append((float(wall), int(rss)))
size, part, conc = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mb = size * 2**20 / 1e6
med = {n: statistics.median(w for w, _ in v) for n, v in rows.items()}
peak = {n: max(r for _, r in v) for n, v in rows.items()}
print(f"\n{size} MiB to garage on loopback; medians of {len(rows['aws upload'])} runs; drkit {part} MiB parts x {conc}")
print(f"{'':18}{'wall s':>8}{'MB/s':>8}{'peak RSS MiB':>14}")
for n in ["aws upload", "drkit upload", "aws download", "drkit download"]:
    print(f"{n:18}{med[n]:8.2f}{mb / med[n]:8.1f}{peak[n]:14}")
bound = part * conc + 32
for d in ["upload", "download"]:
    print(f"drkit / aws {d} throughput: {med[f'aws {d}'] / med[f'drkit {d}']:.2f}x (target >= 1.0); "
          f"drkit peak RSS {peak[f'drkit {d}']} MiB vs bound {bound} MiB")
PY
