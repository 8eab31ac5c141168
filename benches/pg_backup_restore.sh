#!/usr/bin/env bash
# End-to-end benchmark: drkit backup/restore against the shell pipelines it replaces,
# measured in the same run on the same database.
#
#   benches/pg_backup_restore.sh                   # ~800 MB mixed + a ~1.1 GB table + 2,000 small tables
#   SCALE=4 WIDE_MB=0 REPEAT=1 benches/pg_backup_restore.sh   # ~3.2 GB: memory must stay flat
#
# Prints wall time, CPU (user+sys, children included), the server's CPU, peak RSS,
# output bytes and the ratios the targets are stated in (medians of REPEAT runs, three
# by default). It measures; it does not fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE="${SCALE:-1}"
WORK="${BENCH_DIR:-/var/tmp/drkit-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PORT="${BENCH_PORT:-$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")}"
DB=bench

scripts/setup
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
cargo build --release --locked -q -p dr-cli
DRKIT="$CARGO_TARGET_DIR/release/drkit"

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() { as_pg "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; }
trap cleanup EXIT

rm -rf "$WORK"; mkdir -p "$WORK"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK"
as_pg "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
cat >> "$WORK/data/postgresql.auto.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_buffers = '512MB'
maintenance_work_mem = '256MB'
max_wal_size = '4GB'
fsync = off
synchronous_commit = off
autovacuum = off
CONF
as_pg "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
PSQL=("$BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1)
CONN=(-h 127.0.0.1 -p "$PORT" -U postgres)
URL="postgres://postgres@127.0.0.1:$PORT/$DB"

echo "building a mixed database (SCALE=$SCALE)…" >&2
"${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"
N=$((SCALE * 1000000))
"${PSQL[@]}" -d "$DB" <<SQL
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name text NOT NULL, country char(2),
  address text, profile jsonb, created_at timestamptz NOT NULL);
INSERT INTO customers
SELECT g, 'user' || g || '@' || (ARRAY['example.com','mail.test','corp.invalid'])[1 + g % 3],
       initcap(substr(md5(g::text), 1, 6)) || ' ' || initcap(substr(md5((g * 7)::text), 1, 9)),
       (ARRAY['PT','JP','NG','PE','DE','US','BR','IN'])[1 + g % 8],
       (g % 9999) || ' ' || (ARRAY['Main St','Rua Augusta','Sakura-dori','Broad St'])[1 + g % 4] || ', apt ' || (g % 97),
       jsonb_build_object('tier', g % 4, 'newsletter', g % 3 = 0, 'score', (g * 7919) % 1000, 'tags', jsonb_build_array(substr(md5(g::text), 1, 4), g % 17)),
       '2020-01-01'::timestamptz + (g % 1500000) * interval '97 seconds'
FROM generate_series(1::bigint, $N / 2) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, amount numeric(12,2) NOT NULL,
  currency char(3) NOT NULL, status text NOT NULL, placed_at timestamptz NOT NULL, shipped_at timestamptz, note text);
INSERT INTO orders
SELECT g, 1 + (g * 7919) % ($N / 2), ((g * 31337) % 100000) / 100.0, (ARRAY['EUR','USD','JPY'])[1 + g % 3],
       (ARRAY['new','paid','shipped','returned','cancelled'])[1 + g % 5],
       '2023-01-01'::timestamptz + g * interval '13 seconds',
       CASE WHEN g % 5 IN (2, 3) THEN '2023-01-02'::timestamptz + g * interval '13 seconds' END,
       CASE WHEN g % 7 = 0 THEN 'please ' || (ARRAY['gift wrap','leave at door','call first'])[1 + g % 3] || ' #' || substr(md5(g::text), 1, 10) END
FROM generate_series(1::bigint, $N * 2) g;
CREATE INDEX ON orders (customer_id);
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind text NOT NULL, session uuid,
  ip inet, payload jsonb);
INSERT INTO events
SELECT g, '2024-01-01'::timestamptz + g * interval '2 seconds', (ARRAY['view','click','search','purchase','login'])[1 + g % 5],
       md5(g::text)::uuid, ('10.' || g % 256 || '.' || (g / 256) % 256 || '.' || (g / 65536) % 256)::inet,
       jsonb_build_object('path', '/p/' || (g % 5000), 'ref', (ARRAY['ads','mail','direct','social'])[1 + g % 4],
                          'ms', (g * 17) % 3000, 'q', CASE WHEN g % 5 = 2 THEN substr(md5((g * 3)::text), 1, 12) END)
FROM generate_series(1::bigint, $N * 2) g;
CREATE TABLE documents (id bigint PRIMARY KEY, title text, body text, blob bytea);
INSERT INTO documents
SELECT g, 'Document ' || g, repeat((ARRAY['lorem ipsum dolor sit amet ','consectetur adipiscing elit ','sed do eiusmod tempor '])[1 + g % 3], (5 + g % 20)::int)
       || md5(g::text), decode(md5(g::text) || md5((g + 1)::text), 'hex')
FROM generate_series(1::bigint, $N / 5) g;
SQL
WIDE_MB="${WIDE_MB:-1100}"
if [ "$WIDE_MB" -gt 0 ]; then
  echo "building one ${WIDE_MB} MB table of mixed types…" >&2
  "${PSQL[@]}" -d "$DB" <<SQL
CREATE TABLE wide (id bigint PRIMARY KEY, account int NOT NULL, amount numeric(14,4), ratio float8, at timestamptz,
  day date, ok bool, ref uuid, code char(8), label text, attrs jsonb, tags text[]);
INSERT INTO wide
SELECT g, g % 100000, (g * 7919 % 1000000) / 100.0, g / 7.0, '2022-01-01'::timestamptz + g * interval '3 seconds',
       '2022-01-01'::date + (g % 1500)::int, g % 3 = 0, md5(g::text)::uuid, substr(md5((g * 3)::text), 1, 8),
       'item ' || g || ' ' || repeat(substr(md5((g % 977)::text), 1, 16), (1 + g % 4)::int),
       jsonb_build_object('k', g % 13, 'v', substr(md5(g::text), 1, 6)), ARRAY['t' || g % 7, 't' || g % 11]
FROM generate_series(1::bigint, $WIDE_MB::bigint * 4200) g;
SQL
fi
"${PSQL[@]}" -d "$DB" -c "CREATE SCHEMA many" >/dev/null
for first in $(seq 1 200 2000); do
  "${PSQL[@]}" -d "$DB" -c "DO \$\$ BEGIN FOR i IN $first..$((first + 199)) LOOP
    EXECUTE format('CREATE TABLE many.t%s (id int PRIMARY KEY, label text, at timestamptz)', i);
    EXECUTE format('INSERT INTO many.t%s SELECT g, ''row '' || g, now() FROM generate_series(1, %s) g', i, i % 50);
  END LOOP; END \$\$" >/dev/null
done
"${PSQL[@]}" -d "$DB" -c "VACUUM ANALYZE" >/dev/null
DBSIZE=$("${PSQL[@]}" -At -d "$DB" -c "SELECT pg_database_size('$DB')")
echo "database size: $((DBSIZE / 1048576)) MiB" >&2

export DRKIT_PASSWORD="benchmark passphrase"
REPO="file://$WORK/repo"

RESULTS="$WORK/results.tsv"; : > "$RESULTS"
REPEAT="${REPEAT:-3}"
JOBS_LIST="${JOBS_LIST:-1 2 4}"
PM_PID=$(head -1 "$WORK/data/postmaster.pid")
# The server's CPU seconds so far: the postmaster and every backend it has reaped.
server_cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15 + $16 + $17) / t}' "/proc/$PM_PID/stat"; }
settle() { "${PSQL[@]}" -d postgres -c CHECKPOINT >/dev/null; sync; }
# measure NAME OUTPUT_FILE_OR_- COMMAND...: wall, cpu (children included), the server's
# cpu and peak RSS via GNU time; one line per run, the report takes medians.
measure() {
  local name=$1 out=$2; shift 2
  settle
  local before; before=$(server_cpu)
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$@" >/dev/null
  # A backend's CPU reaches the postmaster's figures when it has exited and been reaped.
  until [ "$("${PSQL[@]}" -At -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ]; do sleep 0.1; done
  sleep 0.3
  local after; after=$(server_cpu)
  read -r wall user sys rss < "$WORK/time.txt"
  local bytes=0
  if [ "$out" != "-" ]; then bytes=$(du -sb "$out" | cut -f1); fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$(awk "BEGIN{print $user + $sys}")" "$((rss / 1024))" "$bytes" \
    "$(awk "BEGIN{print $after - $before}")" >> "$RESULTS"
  printf '  %-34s %7.2fs wall\n' "$name" "$wall" >&2
}
fresh_db() { "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null; }
fresh_repo() { rm -rf "$WORK/repo"; "$DRKIT" --repo "$REPO" --quiet repo init >/dev/null; }

# Warm the cache once so the first measured command is not penalised.
"$BIN/pg_dump" "${CONN[@]}" -Fc -Z0 -d "$DB" > /dev/null
for _ in $(seq "$REPEAT"); do
  measure "pg_dump -Fc -Z0 >/dev/null" - sh -c "'$BIN/pg_dump' ${CONN[*]} -Fc -Z0 -d $DB > /dev/null"
  measure "pg_dump | zstd -T2 -3" "$WORK/dump.zst" sh -c "'$BIN/pg_dump' ${CONN[*]} -Fc -Z0 -d $DB | zstd -q -T2 -3 > '$WORK/dump.zst'"
  for j in $JOBS_LIST; do
    fresh_repo
    measure "drkit backup -j$j" "$WORK/repo" "$DRKIT" --repo "$REPO" --quiet backup --jobs "$j" "$URL"
  done
  fresh_repo
  measure "drkit backup --format pg-dump" "$WORK/repo" "$DRKIT" --repo "$REPO" --quiet backup --format pg-dump "$URL"
  # P2: a full backup, 1 % more rows in the two largest tables, another backup.
  fresh_repo
  measure "drkit backup (full)" "$WORK/repo" "$DRKIT" --repo "$REPO" --quiet backup "$URL"
  full=$(du -sb "$WORK/repo" | cut -f1)
  "${PSQL[@]}" -d "$DB" -c "INSERT INTO orders SELECT id + (SELECT max(id) FROM orders), customer_id, amount, currency, 'new', now(), NULL, note FROM orders ORDER BY id LIMIT (SELECT count(*) / 100 FROM orders)" >/dev/null
  if [ "$WIDE_MB" -gt 0 ]; then
    "${PSQL[@]}" -d "$DB" -c "INSERT INTO wide SELECT id + (SELECT max(id) FROM wide), account, amount, ratio, now(), day, ok, ref, code, label, attrs, tags FROM wide ORDER BY id LIMIT (SELECT count(*) / 100 FROM wide)" >/dev/null
  fi
  measure "drkit backup (+1 % rows)" "$WORK/repo" "$DRKIT" --repo "$REPO" --quiet backup "$URL"
  echo "$(( $(du -sb "$WORK/repo" | cut -f1) - full )) $full" >> "$WORK/incremental.txt"
done

"$BIN/pg_dump" "${CONN[@]}" -Fc -Z0 -d "$DB" > "$WORK/plain.dump"
fresh_repo
"$DRKIT" --repo "$REPO" --quiet backup "$URL" >/dev/null
if [ -z "${NO_GARAGE:-}" ]; then
  # shellcheck source=benches/garage.sh
  source benches/garage.sh
  start_garage "$WORK/garage"
  trap 'stop_garage; cleanup' EXIT
  S3REPO="s3://bench/drkit?endpoint=$ENDPOINT"
  "$DRKIT" --repo "$S3REPO" --quiet repo init >/dev/null
  "$DRKIT" --repo "$S3REPO" --quiet backup "$URL" >/dev/null
fi
for _ in $(seq "$REPEAT"); do
  fresh_db r_base
  measure "pg_restore -j2 (local file)" - "$BIN/pg_restore" "${CONN[@]}" -j2 -d r_base "$WORK/plain.dump"
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS r_drkit" >/dev/null
  measure "drkit restore -j2 (folder)" - "$DRKIT" --repo "$REPO" --quiet restore latest --source "$DB" --jobs 2 --to "postgres://postgres@127.0.0.1:$PORT/r_drkit"
  if [ -n "${S3REPO:-}" ]; then
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS r_drkit" >/dev/null
    measure "drkit restore -j2 (garage)" - "$DRKIT" --repo "$S3REPO" --quiet restore latest --source "$DB" --jobs 2 --to "postgres://postgres@127.0.0.1:$PORT/r_drkit"
  fi
done

python3 - "$RESULTS" "$WORK/incremental.txt" "$DBSIZE" "$REPEAT" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, wall, cpu, rss, size, server = line.rstrip("\n").split("\t")
    runs.setdefault(name, []).append((float(wall), float(cpu), int(rss), int(size), float(server)))
med = statistics.median
rows = {n: dict(wall=med([r[0] for r in rs]), cpu=med([r[1] for r in rs]), rss=max(r[2] for r in rs),
                size=int(med([r[3] for r in rs])), server=med([r[4] for r in rs]), n=len(rs)) for n, rs in runs.items()}
incs = [tuple(map(int, l.split())) for l in open(sys.argv[2])]
db = int(sys.argv[3])
print(f"\ndatabase {db/2**20:.0f} MiB; medians of {sys.argv[4]} runs (peak RSS: the maximum)\n")
print(f"{'command':34} {'wall s':>8} {'cpu s':>8} {'server cpu s':>13} {'peak RSS MiB':>13} {'bytes out':>15}")
for n, r in rows.items():
    print(f"{n:34} {r['wall']:8.2f} {r['cpu']:8.2f} {r['server']:13.2f} {r['rss']:13d} {r['size']:15,d}")
raw = rows["pg_dump -Fc -Z0 >/dev/null"]; zst = rows["pg_dump | zstd -T2 -3"]
dk = rows.get("drkit backup -j2") or rows["drkit backup (full)"]
full = rows["drkit backup (full)"]; inc = rows["drkit backup (+1 % rows)"]
rb = rows["pg_restore -j2 (local file)"]; rd = rows["drkit restore -j2 (folder)"]; rs3 = rows.get("drkit restore -j2 (garage)")
def line(what, value, target, ok):
    print(f"  {what:58} {value:>10}   target {target:<9} {'met' if ok else 'MISSED'}")
print("\nratios (same run):")
line("P1 drkit backup -j2 wall / raw pg_dump -Fc -Z0 wall", f"{dk['wall']/raw['wall']:.2f}x", "<= 1.0x", dk['wall'] <= raw['wall'])
line("P1 drkit backup -j2 wall / pg_dump|zstd -T2 -3 wall", f"{dk['wall']/zst['wall']:.2f}x", "<= 0.8x", dk['wall'] <= 0.8 * zst['wall'])
line("P1 drkit stored bytes / zstd bytes", f"{dk['size']/zst['size']:.3f}", "<= 1.0", dk['size'] <= zst['size'])
inc_share = med([a / b for a, b in incs])
line("P2 +1 % backup: new bytes / full backup bytes", f"{inc_share*100:.2f} %", "<= 5 %", inc_share <= 0.05)
line("P2 +1 % backup wall / full backup wall", f"{inc['wall']/full['wall']:.2f}x", "<= 0.5x", inc['wall'] <= 0.5 * full['wall'])
line("P3 drkit restore (folder) wall / pg_restore -j2 wall", f"{rd['wall']/rb['wall']:.2f}x", "<= 0.9x", rd['wall'] <= 0.9 * rb['wall'])
if rs3:
    line("P3 drkit restore (garage) wall / pg_restore -j2 wall", f"{rs3['wall']/rb['wall']:.2f}x", "<= 1.0x", rs3['wall'] <= rb['wall'])
peak = max(r['rss'] for n, r in rows.items() if n.startswith("drkit"))
line("peak RSS of any drkit command", f"{peak} MiB", "<= 200 MiB", peak <= 200)
print("\nscaling with --jobs (wall, drkit cpu, server cpu):")
for n, r in rows.items():
    if n.startswith("drkit backup -j"):
        print(f"  {n:22} {r['wall']:7.2f}s wall  {r['cpu']:7.2f}s drkit cpu  {r['server']:7.2f}s server cpu")
PY
