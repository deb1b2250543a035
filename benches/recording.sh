#!/usr/bin/env bash
# What recording to S3 costs: `pgbench -S` through a Warden recording every
# session to an S3-compatible bucket against the same Warden with recording
# off, measured in one run (issue 6: TPS cost ≤ 5 %).
#
# Starts a throwaway PostgreSQL (`pgbench -i`), an S3-compatible server
# (`s3s-fs`, a directory per bucket) and two Wardens on the same database that
# differ only in `[recording]`: `rec-s3` (`sink = "s3"`, `capture_results =
# false`) and `rec-off` (`enabled = false`). Runs interleaved pgbench rounds
# through both (and directly), prints TPS and the on/off ratio, then checks
# that the bucket holds the sealed recordings (`manifest.json` per session).
# Everything runs on random loopback ports in one temp dir and is removed on exit.
#
# Environment:
#   BENCH_SECONDS=8            pgbench -T per run
#   BENCH_ROUNDS=2             interleaved rounds, order reversed every other round (TPS averaged)
#   BENCH_CLIENTS="1 8"        client counts
#   BENCH_MODES="simple"       pgbench -M modes
#   BENCH_SCALE=4              pgbench -i -s
#   BENCH_DIRECT=1             0: skip the direct path
#   S3S_FS=path                the s3s-fs binary (default: on PATH or ~/.cargo/bin)
#   BENCH_WARDEN_LOG_LEVEL=info  --log-level for warden serve
#   WARDEN_BIN=path            the warden binary (default: release build in
#                              $CARGO_TARGET_DIR or target/, built if missing)
#   PG_BINDIR=dir              PostgreSQL server binaries
#   BENCH_KEEP_TMP=1           keep the temp dir (logs, bucket) instead of removing it
set -euo pipefail

SECONDS_PER_RUN=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-2}
CLIENTS=${BENCH_CLIENTS:-"1 8"}
MODES=${BENCH_MODES:-"simple"}
SCALE=${BENCH_SCALE:-4}
WITH_DIRECT=${BENCH_DIRECT:-1}
THREADS=2
TARGET_RATIO=0.95 # recording-on TPS / recording-off TPS the issue asks for
BUCKET=warden-recordings

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools --------------------------------------------------------------------

find_pg_tools
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
if [[ -z ${S3S_FS:-} ]]; then
	S3S_FS=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
fi
[[ -x $S3S_FS ]] || die "s3s-fs not found (cargo install s3s-fs --features binary; or set S3S_FS)"
find_warden_bin

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-recording.XXXXXX")
chmod 755 "$TMP"

# --- PostgreSQL ---------------------------------------------------------------

BENCH_USER=bench
BENCH_DB=bench
start_postgres "$BENCH_USER" "$BENCH_DB"
BENCH_PASSWORD=$PG_PASSWORD
log "pgbench -i -s $SCALE"
PGPASSWORD=$BENCH_PASSWORD "$PGBENCH" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" "$BENCH_DB" \
	>"$PG_DIR/pgbench-init.log" 2>&1 || die "pgbench -i failed: $(cat "$PG_DIR/pgbench-init.log")"

# --- S3 (s3s-fs: every directory under its root is a bucket) --------------------

S3_DIR=$TMP/s3
S3_PORT=$(free_port)
S3_ACCESS_KEY="bench-ak-$RANDOM$RANDOM"
S3_SECRET_KEY="bench-sk-$RANDOM$RANDOM$RANDOM"
mkdir -p "$S3_DIR/$BUCKET"
"$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
	"$S3_DIR" >"$TMP/s3s-fs.log" 2>&1 &
PIDS+=("$!")
wait_port "$S3_PORT" "$!" s3s-fs || die "s3s-fs did not start: $(cat "$TMP/s3s-fs.log")"
log "s3s-fs on 127.0.0.1:$S3_PORT, bucket $BUCKET in $S3_DIR"

# --- Wardens ------------------------------------------------------------------

# rec_warden LABEL RECORDING_LINES: a Warden on $BENCH_DB (static credentials,
# policy: group `agents` may read) with the given [recording] lines.
rec_warden() {
	start_warden "$1" postgres BENCH_PG_PASSWORD="$BENCH_PASSWORD" \
		AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" <<EOF
[recording]
$2

[[target]]
name = "$BENCH_DB"
protocol = "postgres"
address = "127.0.0.1:$PG_PORT"
credentials = { mode = "static", user = "$BENCH_USER", password = "env:BENCH_PG_PASSWORD" }

[[policy]]
name = "bench agents"
subjects = ["group:agents"]
targets = ["$BENCH_DB"]
allow = ["read"]
EOF
}

rec_warden rec-s3 "enabled = true
sink = \"s3\"
bucket = \"$BUCKET\"
endpoint = \"http://127.0.0.1:$S3_PORT\"
region = \"us-east-1\"
path_style = true
capture_results = false"
rec_warden rec-off "enabled = false"
WARDENS=(rec-s3 rec-off)
PATHS=("${WARDENS[@]}")
[[ $WITH_DIRECT == 1 ]] && PATHS=(direct "${PATHS[@]}")

# --- sanity -------------------------------------------------------------------

want=$((SCALE * 100000))
SESSIONS_S3=0 # sessions through rec-s3, each should leave one manifest in the bucket
for p in "${PATHS[@]}"; do
	got=$(pg_client "$(path_port "$p")" "$BENCH_USER" "$(path_password "$p")" "$BENCH_DB" \
		-c 'select count(*) from pgbench_accounts' 2>&1) || {
		[[ $p != direct ]] && tail -n 20 "$TMP/$p/warden.log" >&2
		die "path $p does not work: $got"
	}
	[[ $got == "$want" ]] || die "path $p: expected $want rows, got '$got'"
	[[ $p == rec-s3 ]] && SESSIONS_S3=$((SESSIONS_S3 + 1))
done
log "every path answers select count(*) from pgbench_accounts = $want"

# --- measurements -------------------------------------------------------------

manifests() { find "$S3_DIR/$BUCKET" -type f -name manifest.json 2>/dev/null | wc -l; }
# wait_uploads SECONDS: until every session through rec-s3 has its manifest
# in the bucket; sets n_manifests.
n_manifests=0
wait_uploads() {
	local _
	for _ in $(seq $(($1 * 10))); do
		n_manifests=$(manifests)
		((n_manifests >= SESSIONS_S3)) && return 0
		sleep 0.1
	done
	return 1
}

RUN_LOG=$TMP/runs.log
: >"$RUN_LOG"
NPATHS=${#PATHS[@]}
LOAD_BEFORE=$(load_avg)
log "measuring: paths=${PATHS[*]} clients=($CLIENTS) modes=($MODES) ${SECONDS_PER_RUN}s x $ROUNDS rounds"
for ((round = 0; round < ROUNDS; round++)); do
	log "round $((round + 1))/$ROUNDS"
	for c in $CLIENTS; do
		for mode in $MODES; do
			for ((i = 0; i < NPATHS; i++)); do
				# Even rounds run the paths in order, odd rounds reversed, so
				# rec-s3 and rec-off each run first and second.
				p=${PATHS[$((round % 2 == 0 ? i : NPATHS - 1 - i))]}
				run_pgbench "$p|$c|$mode" "$(path_port "$p")" "$(path_password "$p")" "$c" "$mode" -S
				if [[ $p == rec-s3 ]]; then
					# pgbench opens one extra session first (it reads the scale).
					SESSIONS_S3=$((SESSIONS_S3 + c + 1))
					# Sealing and uploading what the sessions left must not
					# run during the next path's measurement.
					wait_uploads 30 || log "rec-s3: uploads not finished after 30 s"
				fi
			done
		done
	done
done
LOAD_AFTER=$(load_avg)

# --- the bucket holds the recordings ------------------------------------------

# Sessions are sealed when they end and uploaded in the background: wait up
# to 60 s for one manifest per session.
wait_uploads 60 || true
n_objects=$(find "$S3_DIR/$BUCKET" -type f | wc -l)
bucket_bytes=$(du -sb "$S3_DIR/$BUCKET" | cut -f1)
spool_left=$(find "$TMP/rec-s3/data/spool" -type f 2>/dev/null | wc -l)

# --- report -------------------------------------------------------------------

echo
echo "Recording benchmark: PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}'), pgbench -i -s $SCALE;" \
	"pgbench -n -S -j $THREADS -T $SECONDS_PER_RUN, $ROUNDS interleaved rounds (TPS averaged); $(nproc) CPUs"
echo "load average before: $LOAD_BEFORE, after: $LOAD_AFTER" \
	"(a high value before means other work was running and skews absolute numbers: compare ratios)"
echo "warden: $WARDEN_BIN; rec-s3: [recording] sink = \"s3\" (s3s-fs $("$S3S_FS" --version | awk '{print $2}')" \
	"on loopback), capture_results = false; rec-off: [recording] enabled = false"
echo
print_tps_table 8 rec-off
echo
echo "recording cost: TPS rec-s3 / TPS rec-off (target ≥ $TARGET_RATIO, i.e. cost ≤ 5 %)"
for c in $CLIENTS; do
	for mode in $MODES; do
		r=$(ratio "$(avg_tps "rec-s3|$c|$mode")" "$(avg_tps "rec-off|$c|$mode")")
		verdict=MISS
		[[ $r != - ]] && awk -v r="$r" -v t="$TARGET_RATIO" 'BEGIN { exit !(r >= t) }' && verdict=ok
		[[ $r == - ]] && verdict=""
		printf '  c=%-3s %-9s %s %s\n' "$c" "$mode" "$r" "$verdict"
	done
done
echo
echo "bucket $BUCKET: $n_manifests manifest.json for $SESSIONS_S3 sessions through rec-s3," \
	"$n_objects objects, $bucket_bytes bytes; files left in rec-s3's spool: $spool_left"

print_warden_problems "${WARDENS[@]}"
status=0
failed=$(failed_runs)
if ((failed > 0)); then
	echo
	echo "$failed pgbench run(s) failed; last lines of each failing run:"
	grep -B1 -A8 -E '^(pgbench: error|.*FATAL|.*ERROR)' "$RUN_LOG" | head -n 60 || true
	status=1
fi
if ((n_manifests == 0)); then
	echo
	echo "ERROR: the bucket holds no recording (no manifest.json under $S3_DIR/$BUCKET) after $SESSIONS_S3 sessions"
	echo "--- rec-s3 warden.log (last 30 lines)"
	tail -n 30 "$TMP/rec-s3/warden.log"
	echo "--- s3s-fs.log (last 10 lines)"
	tail -n 10 "$TMP/s3s-fs.log"
	status=1
elif ((n_manifests < SESSIONS_S3)); then
	echo
	echo "ERROR: only $n_manifests of $SESSIONS_S3 sessions reached the bucket within 60 s"
	status=1
fi
exit "$status"
