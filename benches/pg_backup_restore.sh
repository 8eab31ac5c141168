#!/usr/bin/env bash
# End-to-end benchmark: drkit backup/restore against the shell pipelines it replaces,
# measured in the same run on the same database.
#
#   benches/pg_backup_restore.sh            # ~800 MB database
#   SCALE=4 benches/pg_backup_restore.sh    # 4x larger, to check that memory stays flat
#
# Prints wall time, CPU (user+sys, children included), peak RSS, output bytes and the
# ratios the targets are stated in. It measures; it does not fail on a missed target.
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
VACUUM ANALYZE;
SQL
DBSIZE=$("${PSQL[@]}" -At -d "$DB" -c "SELECT pg_database_size('$DB')")
echo "database size: $((DBSIZE / 1048576)) MiB" >&2

export DRKIT_PASSWORD="benchmark passphrase"
REPO="file://$WORK/repo"

RESULTS="$WORK/results.tsv"; : > "$RESULTS"
REPEAT="${REPEAT:-3}"
settle() { "${PSQL[@]}" -d postgres -c CHECKPOINT; sync; }
# measure NAME OUTPUT_FILE_OR_- COMMAND...: wall, cpu (children included) and peak RSS
# via GNU time; one line per run, the report takes medians.
measure() {
  local name=$1 out=$2; shift 2
  settle
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.txt" "$@" >/dev/null
  read -r wall user sys rss < "$WORK/time.txt"
  local bytes=0
  if [ "$out" != "-" ]; then bytes=$(du -sb "$out" | cut -f1); fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$(awk "BEGIN{print $user + $sys}")" "$((rss / 1024))" "$bytes" >> "$RESULTS"
  printf '  %-28s %7.2fs wall\n' "$name" "$wall" >&2
}
fresh_db() { "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"; }

# Warm the cache once so the first measured command is not penalised.
"$BIN/pg_dump" "${CONN[@]}" -Fc -Z0 -d "$DB" > /dev/null
for _ in $(seq "$REPEAT"); do
  measure "pg_dump -Fc -Z0 >/dev/null" - sh -c "'$BIN/pg_dump' ${CONN[*]} -Fc -Z0 -d $DB > /dev/null"
  measure "pg_dump | gzip" "$WORK/dump.gz" sh -c "'$BIN/pg_dump' ${CONN[*]} -Fc -Z0 -d $DB | gzip > '$WORK/dump.gz'"
  measure "pg_dump | zstd -T2 -3" "$WORK/dump.zst" sh -c "'$BIN/pg_dump' ${CONN[*]} -Fc -Z0 -d $DB | zstd -q -T2 -3 > '$WORK/dump.zst'"
  rm -rf "$WORK/repo"; "$DRKIT" --repo "$REPO" --quiet repo init >/dev/null
  measure "drkit backup" "$WORK/repo" "$DRKIT" --repo "$REPO" --quiet backup "$URL"
done
"$BIN/pg_dump" "${CONN[@]}" -Fc -Z0 -d "$DB" > "$WORK/plain.dump"
FIRST_REPO=$(du -sb "$WORK/repo" | cut -f1)
"${PSQL[@]}" -d "$DB" -c "INSERT INTO orders SELECT id + $N * 2, customer_id, amount, currency, 'new', now(), NULL, note FROM orders WHERE id <= $N * 2 / 100"
measure "drkit backup (+1 % rows)" "$WORK/repo" "$DRKIT" --repo "$REPO" --quiet backup "$URL"
SECOND_REPO=$(du -sb "$WORK/repo" | cut -f1)
echo "$((SECOND_REPO - FIRST_REPO))" > "$WORK/incremental.txt"

for _ in $(seq "$REPEAT"); do
  fresh_db r_base
  measure "pg_restore -j2 (local file)" - "$BIN/pg_restore" "${CONN[@]}" -j2 -d r_base "$WORK/plain.dump"
  fresh_db r_drkit
  measure "drkit restore -j2" - "$DRKIT" --repo "$REPO" --quiet restore latest --jobs 2 --to "postgres://postgres@127.0.0.1:$PORT/r_drkit"
done

python3 - "$RESULTS" "$WORK/incremental.txt" "$DBSIZE" "$REPEAT" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, wall, cpu, rss, size = line.rstrip("\n").split("\t")
    runs.setdefault(name, []).append((float(wall), float(cpu), int(rss), int(size)))
med = lambda xs: statistics.median(xs)
rows = {n: dict(wall=med([r[0] for r in rs]), cpu=med([r[1] for r in rs]), rss=max(r[2] for r in rs), size=int(med([r[3] for r in rs])), n=len(rs)) for n, rs in runs.items()}
inc = int(open(sys.argv[2]).read())
db = int(sys.argv[3])
print(f"\ndatabase {db/2**20:.0f} MiB; medians of {sys.argv[4]} runs (peak RSS: the maximum)\n")
print(f"{'command':30} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13} {'bytes out':>14}")
for n, r in rows.items():
    print(f"{n:30} {r['wall']:8.2f} {r['cpu']:8.2f} {r['rss']:13d} {r['size']:14,d}")
raw = rows["pg_dump -Fc -Z0 >/dev/null"]; zst = rows["pg_dump | zstd -T2 -3"]
dk = rows["drkit backup"]; rb = rows["pg_restore -j2 (local file)"]; rd = rows["drkit restore -j2"]
def line(what, value, target, ok):
    print(f"  {what:55} {value:>10}   target {target:<10} {'met' if ok else 'MISSED'}")
print("\nratios (same run):")
line("drkit backup wall / raw pg_dump wall", f"{dk['wall']/raw['wall']:.2f}x", "<= 1.5x", dk['wall'] <= 1.5 * raw['wall'])
line("drkit backup wall / pg_dump|zstd wall", f"{dk['wall']/zst['wall']:.2f}x", "<= 1.0x", dk['wall'] <= zst['wall'])
line("drkit stored bytes / zstd bytes", f"{dk['size']/zst['size']:.3f}", "<= 1.0", dk['size'] <= zst['size'])
line("incremental new bytes / first backup bytes", f"{inc/dk['size']*100:.2f} %", "<= 5 %", inc <= 0.05 * dk['size'])
line("drkit restore wall / pg_restore -j2 wall", f"{rd['wall']/rb['wall']:.2f}x", "<= 1.1x", rd['wall'] <= 1.1 * rb['wall'])
line("drkit backup peak RSS", f"{dk['rss']} MiB", "<= 200 MiB", dk['rss'] <= 200)
line("drkit restore peak RSS", f"{rd['rss']} MiB", "<= 200 MiB", rd['rss'] <= 200)
PY
