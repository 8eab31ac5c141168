#!/usr/bin/env bash
# Files and folders: drkit backup-files / restore-files against `tar | zstd -T2` and
# restic (installed from the distribution when missing), measured in the same run on
# the same trees:
#
# - 100,000 small files (512 B to 8 KiB of text-like data) in 1,000 folders;
# - one 2 GiB file (half random, half repetitive);
# - a second backup of the small tree after 1 % of its files were rewritten (scattered)
#   and after 1 % new files were added in one new folder: the bytes each tool adds.
#
#   benches/files.sh
#
# Prints wall time, CPU, peak RSS and bytes stored, and the ratios the targets are
# stated in. It measures; it does not fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
WORK="${BENCH_DIR:-/var/tmp/drkit-bench-files}"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
command -v zstd >/dev/null || apt-get install -y -qq zstd >/dev/null
command -v restic >/dev/null || apt-get install -y -qq restic >/dev/null || true
cargo build --release --locked -q -p dr-cli
DRKIT="$CARGO_TARGET_DIR/release/drkit"
rm -rf "$WORK"; mkdir -p "$WORK"
RESULTS="$WORK/results.tsv"; : > "$RESULTS"
export DRKIT_PASSWORD="benchmark passphrase" RESTIC_PASSWORD="benchmark passphrase"

echo "making the trees…" >&2
python3 - "$WORK" <<'PY'
import os, random, sys
work = sys.argv[1]
rnd = random.Random(42)
words = [("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(3, 9)))) for _ in range(5000)]
small = os.path.join(work, "small")
for d in range(1000):
    folder = os.path.join(small, f"d{d:04d}")
    os.makedirs(folder)
    for f in range(100):
        size = rnd.randint(512, 8192)
        text = " ".join(rnd.choice(words) for _ in range(size // 6)).encode()[:size]
        with open(os.path.join(folder, f"f{f:03d}.txt"), "wb") as fh:
            fh.write(text)
big = os.path.join(work, "big")
os.makedirs(big)
block = (" ".join(words[:400]) + "\n").encode()
block = (block * (1 << 20 // len(block) + 1))[: 1 << 20]
with open(os.path.join(big, "disk.img"), "wb") as fh:
    for i in range(2048):
        fh.write(os.urandom(1 << 20) if i % 2 == 0 else block)
PY

# measure NAME REPO_OR_FILE_OR_- COMMAND...: wall, cpu and peak RSS via GNU time, and the
# bytes the output holds.
measure() {
  local name=$1 out=$2; shift 2
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$@" >/dev/null
  read -r wall user sys rss < "$WORK/time.txt"
  local bytes=0
  [ "$out" != - ] && bytes=$(du -sb "$out" | cut -f1)
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$(awk "BEGIN{print $user + $sys}")" "$((rss / 1024))" "$bytes" >> "$RESULTS"
  echo "  $name: ${wall}s" >&2
}

for tree in small big; do
  echo "$tree tree…" >&2
  src="$WORK/$tree"
  measure "tar | zstd -T2 ($tree)" "$WORK/$tree.tar.zst" bash -c "tar -C '$src' -cf - . | zstd -T2 -3 -q -o '$WORK/$tree.tar.zst'"
  mkdir -p "$WORK/out-tar-$tree"
  measure "zstd -d | tar -x ($tree)" - bash -c "zstd -dc '$WORK/$tree.tar.zst' | tar -C '$WORK/out-tar-$tree' -xf -"
  "$DRKIT" --quiet --repo "file://$WORK/drkit-$tree" repo init >/dev/null
  measure "drkit backup-files ($tree)" "$WORK/drkit-$tree" "$DRKIT" --quiet --repo "file://$WORK/drkit-$tree" backup-files "$src"
  measure "drkit restore-files ($tree)" - "$DRKIT" --quiet --repo "file://$WORK/drkit-$tree" restore-files latest --to "$WORK/out-drkit-$tree"
  diff -r --no-dereference "$src" "$WORK/out-drkit-$tree" >/dev/null || { echo "drkit restore of $tree differs from the original" >&2; exit 1; }
  if command -v restic >/dev/null; then
    restic -q -r "$WORK/restic-$tree" init >/dev/null
    measure "restic backup ($tree)" "$WORK/restic-$tree" restic -q -r "$WORK/restic-$tree" backup "$src"
    measure "restic restore ($tree)" - restic -q -r "$WORK/restic-$tree" restore latest --target "$WORK/out-restic-$tree"
  fi
  rm -rf "$WORK/out-tar-$tree" "$WORK/out-drkit-$tree" "$WORK/out-restic-$tree"
done

# 1 % changed: every 100th file rewritten in place (scattered), then 1 % added in a new
# folder; the bytes each repository grows by.
echo "second backups…" >&2
python3 - "$WORK/small" <<'PY'
import os, random, sys
src = sys.argv[1]; rnd = random.Random(7)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs)
for path in files[::100]:
    size = os.path.getsize(path)
    with open(path, "wb") as fh:
        fh.write(bytes(rnd.randrange(97, 123) for _ in range(size)))
PY
grow() { # NAME DIR COMMAND...
  local name=$1 dir=$2; shift 2
  local before after
  before=$(du -sb "$dir" | cut -f1); "$@" >/dev/null; after=$(du -sb "$dir" | cut -f1)
  printf '%s\t%s\n' "$name" "$((after - before))" >> "$WORK/growth.tsv"
}
: > "$WORK/growth.tsv"
grow "drkit, 1 % of files rewritten" "$WORK/drkit-small" "$DRKIT" --quiet --repo "file://$WORK/drkit-small" backup-files "$WORK/small"
command -v restic >/dev/null && grow "restic, 1 % of files rewritten" "$WORK/restic-small" restic -q -r "$WORK/restic-small" backup "$WORK/small"
mkdir "$WORK/small/new"
for i in $(seq 1 1000); do head -c 4096 /dev/urandom | base64 > "$WORK/small/new/n$i.txt"; done
grow "drkit, 1 % of files added" "$WORK/drkit-small" "$DRKIT" --quiet --repo "file://$WORK/drkit-small" backup-files "$WORK/small"
command -v restic >/dev/null && grow "restic, 1 % of files added" "$WORK/restic-small" restic -q -r "$WORK/restic-small" backup "$WORK/small"

python3 - "$RESULTS" "$WORK/growth.tsv" "$(du -sb "$WORK/small" | cut -f1)" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, wall, cpu, rss, size = line.rstrip("\n").split("\t")
    rows[name] = dict(wall=float(wall), cpu=float(cpu), rss=int(rss), size=int(size))
print(f"\n{'command':34} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13} {'bytes stored':>14}")
for n, r in rows.items():
    print(f"{n:34} {r['wall']:8.2f} {r['cpu']:8.2f} {r['rss']:13d} {r['size']:14,d}")
print("\nratios (same run):")
for tree in ("small", "big"):
    t, u = rows[f"tar | zstd -T2 ({tree})"], rows[f"zstd -d | tar -x ({tree})"]
    b, r = rows[f"drkit backup-files ({tree})"], rows[f"drkit restore-files ({tree})"]
    print(f"  {tree}: drkit backup / tar|zstd wall {b['wall']/t['wall']:.2f}x, stored {b['size']/t['size']:.2f}x; "
          f"restore / zstd|tar wall {r['wall']/u['wall']:.2f}x; peak RSS backup {b['rss']} MiB, restore {r['rss']} MiB")
    if f"restic backup ({tree})" in rows:
        rb, rr = rows[f"restic backup ({tree})"], rows[f"restic restore ({tree})"]
        print(f"  {tree}: drkit backup / restic wall {b['wall']/rb['wall']:.2f}x, stored {b['size']/rb['size']:.2f}x; "
              f"restore / restic wall {r['wall']/rr['wall']:.2f}x; restic peak RSS {rb['rss']} / {rr['rss']} MiB")
tree = int(sys.argv[3])
print(f"\nsecond backups of the small tree ({tree:,} bytes): bytes the repository grew by")
for line in open(sys.argv[2]):
    name, grew = line.rstrip("\n").split("\t")
    print(f"  {name:34} {int(grew):>12,d}  ({int(grew)/tree*100:.1f} % of the tree)")
PY
