#!/usr/bin/env bash
# PITR benchmark, all in one run on one cluster (pgbench scale 50, ~770 MB):
#  1. wal-push of 200 x 16 MiB real WAL segments, one process per segment as PostgreSQL
#     runs archive_command, vs `cp` + sync: segments/s and peak RSS per push
#     (target >= 10 segments/s, <= 64 MiB).
#  2. 60 s of pgbench with drkit as archive_command: pg_stat_archiver backlog sampled
#     every 5 s (target: no growth).
#  3. drkit basebackup vs pg_basebackup -c fast -Ft -X stream: time and bytes stored
#     (target <= 1.5x the time, <= 0.55x the bytes).
#  4. Replay of the archived WAL: drkit wal-fetch with prefetch vs cp as restore_command.
# It measures; it does not fail on a missed target.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE="${SCALE:-50}"
LOAD_SECS="${LOAD_SECS:-60}"
WORK="${BENCH_DIR:-/var/tmp/drkit-pitr-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/drkit-target}"
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

scripts/setup
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
cargo build --release --locked -q -p dr-cli

AS_PG=()
[ "$(id -u)" -eq 0 ] && AS_PG=(runuser -u postgres --)
as_pg() { "${AS_PG[@]}" "$@"; }
free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
stop_all() {
  for d in "$WORK/data" "$WORK/r-cp" "$WORK/r-drkit"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
}
trap stop_all EXIT

stop_all; rm -rf "$WORK"; mkdir -p "$WORK"
# The server runs drkit as archive_command: give it a copy it can reach.
cp "$CARGO_TARGET_DIR/release/drkit" "$WORK/drkit"
DRKIT="$WORK/drkit"
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$WORK"
REPO="file://$WORK/repo"
export DRKIT_KEY_FILE="$WORK/key"
as_pg env DRKIT_KEY_FILE="$DRKIT_KEY_FILE" "$DRKIT" --quiet --repo "$REPO" repo init --generate-key-file "$WORK/key" >/dev/null
PORT=$(free_port)
as_pg "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust --no-sync >/dev/null
cat >> "$WORK/data/postgresql.auto.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_buffers = '256MB'
max_wal_size = '2GB'
wal_level = replica
archive_mode = on
archive_command = 'DRKIT_KEY_FILE=$WORK/key $DRKIT --quiet --repo $REPO wal-push %p'
CONF
as_pg "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
CONN=(-h 127.0.0.1 -p "$PORT" -U postgres)
PSQL=("$BIN/psql" -X -q -At "${CONN[@]}" -d postgres)
URL="postgres://postgres@127.0.0.1:$PORT/postgres"
RESULTS="$WORK/results.txt"; : > "$RESULTS"
say() { echo "$*" | tee -a "$RESULTS" >&2; }

echo "pgbench -i -s $SCALE…" >&2
"$BIN/pgbench" "${CONN[@]}" -i -s "$SCALE" -q postgres >/dev/null 2>&1
"${PSQL[@]}" -c "CHECKPOINT" >/dev/null
# A base backup waits for its last WAL segment to be archived: let the archiver catch up
# with pgbench -i first, so both tools are timed on a quiet server.
wait_archived() {
  local want; want=$("${PSQL[@]}" -c "SELECT pg_walfile_name(pg_switch_wal())")
  until [ "$("${PSQL[@]}" -c "SELECT coalesce(last_archived_wal, '') >= '$want' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
}
wait_archived
DBSIZE=$("${PSQL[@]}" -c "SELECT pg_database_size('postgres')")

# 3. Base backups, same cluster, same run.
as_pg mkdir -p "$WORK/pgbb"
/usr/bin/time -f "%e" -o "$WORK/t" "${AS_PG[@]}" "$BIN/pg_basebackup" "${CONN[@]}" -c fast -Ft -X stream -D "$WORK/pgbb/1" >/dev/null
PGBB_T=$(cat "$WORK/t"); PGBB_B=$(du -sb "$WORK/pgbb/1" | cut -f1)
wait_archived
/usr/bin/time -f "%e %M" -o "$WORK/t" "${AS_PG[@]}" env DRKIT_KEY_FILE="$DRKIT_KEY_FILE" "$DRKIT" --quiet --json --repo "$REPO" basebackup "$URL" > "$WORK/bb.json"
read -r DK_T DK_RSS < "$WORK/t"
DK_B=$(python3 -c "import json; print(json.load(open('$WORK/bb.json'))['new_bytes'])")
say "base backup of a $((DBSIZE >> 20)) MiB cluster:"
say "  pg_basebackup -c fast -Ft -X stream: ${PGBB_T}s, $((PGBB_B >> 20)) MiB"
say "  drkit basebackup:                    ${DK_T}s, $((DK_B >> 20)) MiB stored, peak RSS $((DK_RSS / 1024)) MiB"
say "  time ratio $(python3 -c "print(f'{$DK_T / $PGBB_T:.2f}')")x (target <= 1.5), bytes ratio $(python3 -c "print(f'{$DK_B / $PGBB_B:.3f}')")x (target <= 0.55)"

# 2. Archiving under load.
echo "pgbench for ${LOAD_SECS}s with drkit as archive_command…" >&2
backlog() {
  "${PSQL[@]}" -c "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 9))::bit(64)::bigint - coalesce(('x' || substr(last_archived_wal, 9))::bit(64)::bigint, 0) - 1 FROM pg_stat_archiver"
}
"$BIN/pgbench" "${CONN[@]}" -c 4 -j 2 -T "$LOAD_SECS" -n postgres > "$WORK/pgbench.txt" 2>&1 &
LOAD=$!
SAMPLES=()
for _ in $(seq $((LOAD_SECS / 5))); do sleep 5; SAMPLES+=("$(backlog)"); done
wait $LOAD
TPS=$(grep -oE 'tps = [0-9.]+' "$WORK/pgbench.txt" | head -1)
FAILED=$("${PSQL[@]}" -c "SELECT failed_count FROM pg_stat_archiver")
say "archiving under pgbench -c 4 for ${LOAD_SECS}s ($TPS): backlog every 5 s = ${SAMPLES[*]} segments; failed_count $FAILED"
"${PSQL[@]}" -c "SELECT pg_switch_wal()" >/dev/null; sleep 3

# 1. wal-push of 200 real segments vs cp.
as_pg mkdir -p "$WORK/segs" "$WORK/cp-archive"
mapfile -t REAL < <(ls "$WORK/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -60)
for i in $(seq 0 199); do
  src="$WORK/data/pg_wal/${REAL[$((i % ${#REAL[@]}))]}"
  cp "$src" "$WORK/segs/$(printf '0000000A%08X%08X' 0 "$i")"
done
[ "$(id -u)" -eq 0 ] && chown -R postgres:postgres "$WORK/segs" "$WORK/cp-archive"
sync
start=$(date +%s.%N)
for f in "$WORK"/segs/*; do cp "$f" "$WORK/cp-archive/" && sync "$WORK/cp-archive/$(basename "$f")"; done
CP_T=$(python3 -c "import time; print(time.time() - $start)")
: > "$WORK/rss"
start=$(date +%s.%N)
for f in "$WORK"/segs/*; do
  /usr/bin/time -f "%M" -a -o "$WORK/rss" "${AS_PG[@]}" env DRKIT_KEY_FILE="$DRKIT_KEY_FILE" "$DRKIT" --quiet --repo "$REPO" wal-push "$f"
done
PUSH_T=$(python3 -c "import time; print(time.time() - $start)")
MAXRSS=$(sort -n "$WORK/rss" | tail -1)
say "wal-push of 200 x 16 MiB segments, one process each:"
say "  cp + sync: $(python3 -c "print(f'{$CP_T:.1f}s = {200 / $CP_T:.1f} segments/s')")"
say "  drkit:     $(python3 -c "print(f'{$PUSH_T:.1f}s = {200 / $PUSH_T:.1f} segments/s')"), peak RSS per push $((MAXRSS / 1024)) MiB (targets >= 10/s, <= 64 MiB)"

# 4. Replay: the same base backup and WAL, cp vs drkit wal-fetch.
as_pg "$BIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null
as_pg mkdir -p "$WORK/plain-wal"
for key in $(cd "$WORK/repo/wal/00000001" && ls | grep -E '^[0-9A-F]{24}$'); do
  as_pg env DRKIT_KEY_FILE="$DRKIT_KEY_FILE" "$DRKIT" --quiet --repo "$REPO" wal-fetch --prefetch 0 "$key" "$WORK/plain-wal/$key"
done
NSEG=$(ls "$WORK/plain-wal" | wc -l)
recover() { # name restore_command -> replay seconds
  local d="$WORK/$1"
  as_pg env DRKIT_KEY_FILE="$DRKIT_KEY_FILE" "$DRKIT" --quiet --json --repo "$REPO" pitr --pgdata "$d" --latest --snapshot "$(python3 -c "import json; print(json.load(open('$WORK/bb.json'))['id'])")" \
    --set "port=$(free_port)" --set "unix_socket_directories=$WORK" > "$WORK/$1.json"
  [ -n "$2" ] && echo "restore_command = '$2'" >> "$d/postgresql.auto.conf"
  local t0; t0=$(date +%s.%N)
  as_pg "$BIN/pg_ctl" -D "$d" -l "$d/replay.log" -W start >/dev/null
  local deadline=$((SECONDS + 900))
  until grep -q "database system is ready to accept connections" "$d/replay.log" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "replay in $d did not finish; see $d/replay.log" >&2; exit 1; }
    sleep 0.05
  done
  python3 -c "import time; print(f'{time.time() - $t0:.2f}')"
  as_pg "$BIN/pg_ctl" -D "$d" -m immediate stop >/dev/null
}
CP_R=$(recover r-cp "cp $WORK/plain-wal/%f %p")
DK_R=$(recover r-drkit "")
say "replay of $NSEG archived segments from the base backup: cp ${CP_R}s, drkit wal-fetch (prefetch 8) ${DK_R}s ($(python3 -c "print(f'{$DK_R / $CP_R:.2f}')")x)"
echo >&2; cat "$RESULTS"
