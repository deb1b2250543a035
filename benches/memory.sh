#!/usr/bin/env bash
# Warden's memory per open session, with recording on and off (issue 6:
# recording memory per session is bounded; measured with 500 sessions).
#
# Starts a throwaway PostgreSQL (max_connections above the session count)
# with a small `items` table and Wardens on it that differ only in
# `[recording]`: `rec-local` (local sink), `rec-s3` (S3 sink on an `s3s-fs`
# server, when s3s-fs is installed) and `rec-off` (`enabled = false`). For one
# Warden at a time, benches/memory_sessions.py (psycopg 3) opens
# BENCH_SESSIONS connections with an access key, runs BENCH_STATEMENTS
# statements on each right after it connects, holds them all open and reads
# Warden's VmRSS: idle, with every session open, peak, and after they close.
# Prints the totals, (RSS open − idle) / sessions, and that figure minus
# rec-off's: the recording's share per session. Checks afterwards that every
# session was recorded (one manifest.json each). Everything runs on random
# loopback ports in one temp dir and is removed on exit.
#
# Environment:
#   BENCH_SESSIONS=500         sessions held open at once
#   BENCH_STATEMENTS=50        statements per session (back-to-back after connect)
#   BENCH_SETTLE=3             seconds waited before each RSS reading
#   BENCH_S3=auto              1: also measure rec-s3 (needs s3s-fs), 0: skip, auto: if s3s-fs exists
#   S3S_FS=path                the s3s-fs binary (default: on PATH or ~/.cargo/bin)
#   BENCH_WARDEN_LOG_LEVEL=info  --log-level for warden serve
#   WARDEN_BIN=path            the warden binary (default: release build in
#                              $CARGO_TARGET_DIR or target/, built if missing)
#   PG_BINDIR=dir              PostgreSQL server binaries
#   BENCH_KEEP_TMP=1           keep the temp dir (logs, recordings) instead of removing it
set -euo pipefail

SESSIONS=${BENCH_SESSIONS:-500}
STATEMENTS=${BENCH_STATEMENTS:-50}
SETTLE=${BENCH_SETTLE:-3}
WITH_S3=${BENCH_S3:-auto}
ITEMS=1000
BUCKET=warden-recordings
SQL='select id, name from items where id between %s and %s + 9'

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools --------------------------------------------------------------------

find_pg_tools
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
python3 -c 'import psycopg' >/dev/null 2>&1 || die "psycopg 3 not found (pip install 'psycopg[binary]')"
if [[ -z ${S3S_FS:-} ]]; then
	S3S_FS=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
fi
if [[ $WITH_S3 == auto ]]; then
	WITH_S3=0
	[[ -x $S3S_FS ]] && WITH_S3=1
fi
[[ $WITH_S3 == 0 || -x $S3S_FS ]] || die "s3s-fs not found (set S3S_FS, or BENCH_S3=0)"
find_warden_bin
(($(ulimit -n) > 2 * SESSIONS + 100)) || ulimit -n $((2 * SESSIONS + 200)) ||
	die "open-file limit $(ulimit -n) too low for $SESSIONS sessions"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-memory.XXXXXX")
chmod 755 "$TMP"

# --- PostgreSQL ---------------------------------------------------------------

BENCH_USER=bench
BENCH_DB=bench
start_postgres "$BENCH_USER" "$BENCH_DB" max_connections=$((SESSIONS + 60))
BENCH_PASSWORD=$PG_PASSWORD
pg_client "$PG_PORT" "$BENCH_USER" "$BENCH_PASSWORD" "$BENCH_DB" -q <<SQL || die "cannot create items"
create table items (id int primary key, name text not null);
insert into items select i, 'item number ' || i from generate_series(1, $ITEMS) as i;
analyze items;
SQL

# --- S3 -----------------------------------------------------------------------

S3_ACCESS_KEY="bench-ak-$RANDOM$RANDOM"
S3_SECRET_KEY="bench-sk-$RANDOM$RANDOM$RANDOM"
if [[ $WITH_S3 == 1 ]]; then
	S3_DIR=$TMP/s3
	S3_PORT=$(free_port)
	mkdir -p "$S3_DIR/$BUCKET" # s3s-fs: every directory under its root is a bucket
	"$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
		"$S3_DIR" >"$TMP/s3s-fs.log" 2>&1 &
	PIDS+=("$!")
	wait_port "$S3_PORT" "$!" s3s-fs || die "s3s-fs did not start: $(cat "$TMP/s3s-fs.log")"
	log "s3s-fs on 127.0.0.1:$S3_PORT, bucket $BUCKET in $S3_DIR"
fi

# --- Wardens ------------------------------------------------------------------

# mem_warden LABEL RECORDING_LINES: a Warden on $BENCH_DB (static credentials,
# policy: group `agents` may read) with the given [recording] lines.
mem_warden() {
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

WARDENS=(rec-off rec-local)
mem_warden rec-off "enabled = false"
mem_warden rec-local "enabled = true"
if [[ $WITH_S3 == 1 ]]; then
	mem_warden rec-s3 "enabled = true
sink = \"s3\"
bucket = \"$BUCKET\"
endpoint = \"http://127.0.0.1:$S3_PORT\"
region = \"us-east-1\""
	WARDENS+=(rec-s3)
fi

# manifests LABEL: sealed recordings of that Warden in its sink.
manifests() {
	local dir=$TMP/$1/data/recordings
	[[ $1 == rec-s3 ]] && dir=$S3_DIR/$BUCKET
	find "$dir" -type f -name manifest.json 2>/dev/null | wc -l
}

# --- measurements -------------------------------------------------------------

LOAD_BEFORE=$(load_avg)
status=0
declare -A RESULT RECORDED
for w in "${WARDENS[@]}"; do
	pid_var="WARDEN_PID_${w//-/_}" port_var="WARDEN_PORT_${w//-/_}" key_var="KEY_${w//-/_}"
	log "$w: $SESSIONS sessions x $STATEMENTS statements, held open"
	spec=$(jq -n --argjson pid "${!pid_var}" --argjson port "${!port_var}" --arg key "${!key_var}" \
		--arg db "$BENCH_DB" --arg sql "$SQL" --argjson n "$SESSIONS" --argjson s "$STATEMENTS" \
		--argjson settle "$SETTLE" '{pid: $pid, host: "127.0.0.1", port: $port, user: "bench-agent",
		password: $key, dbname: $db, sessions: $n, statements: $s, sql: $sql, settle: $settle}')
	if out=$(python3 "$(dirname "${BASH_SOURCE[0]}")/memory_sessions.py" <<<"$spec" 2>"$TMP/$w/python.err"); then
		RESULT[$w]=$out
		log "$w: $(jq -c '{idle: .idle.rss_kib, open: .open.rss_kib, peak: .peak_rss_kib, closed: .closed.rss_kib}' <<<"$out") KiB"
	else
		log "$w: FAILED: $(tail -n 5 "$TMP/$w/python.err")"
		tail -n 20 "$TMP/$w/warden.log" >&2
		status=1
	fi
done
# Every recorded session (the warm-up one too) is sealed after it ends.
for w in "${WARDENS[@]}"; do
	[[ $w == rec-off ]] && continue
	n=0
	for _ in $(seq 300); do
		n=$(manifests "$w")
		((n >= SESSIONS + 1)) && break
		sleep 0.1
	done
	RECORDED[$w]=$n
done
LOAD_AFTER=$(load_avg)

# --- report -------------------------------------------------------------------

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
per_session() { awk -v a="$1" -v b="$2" -v n="$SESSIONS" 'BEGIN { printf "%.1f", (a - b) / n }'; }

echo
echo "Memory benchmark: PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}'); $SESSIONS sessions held open" \
	"at once, each ran $STATEMENTS statements ($SQL, psycopg $(python3 -c 'import psycopg; print(psycopg.__version__)'))" \
	"right after connecting; RSS = VmRSS of the Warden process; $(nproc) CPUs"
echo "load average before: $LOAD_BEFORE, after: $LOAD_AFTER"
echo "warden: $WARDEN_BIN; rec-off: [recording] enabled = false; rec-local: local sink;" \
	"rec-s3: sink = \"s3\" (s3s-fs on loopback); all: capture_results = false (default)"
echo
printf '%-10s %9s %9s %9s %9s %12s %10s %8s %8s\n' warden "idle MiB" "open MiB" "peak MiB" "closed MiB" \
	"KiB/session" "rec share" "fds open" threads
printf '%-10s %9s %9s %9s %9s %12s %10s %8s %8s\n' ---------- --------- --------- --------- --------- \
	------------ ---------- -------- --------
off_per=""
if [[ -n ${RESULT[rec-off]:-} ]]; then
	off_per=$(per_session "$(jq .open.rss_kib <<<"${RESULT[rec-off]}")" "$(jq .idle.rss_kib <<<"${RESULT[rec-off]}")")
fi
for w in "${WARDENS[@]}"; do
	r=${RESULT[$w]:-}
	if [[ -z $r ]]; then
		printf '%-10s %9s\n' "$w" FAILED
		continue
	fi
	idle=$(jq .idle.rss_kib <<<"$r") open=$(jq .open.rss_kib <<<"$r")
	per=$(per_session "$open" "$idle")
	share="-"
	[[ $w != rec-off && -n $off_per ]] && share=$(awk -v a="$per" -v b="$off_per" 'BEGIN { printf "%.1f", a - b }')
	printf '%-10s %9s %9s %9s %9s %12s %10s %8s %8s\n' "$w" "$(mib "$idle")" "$(mib "$open")" \
		"$(mib "$(jq .peak_rss_kib <<<"$r")")" "$(mib "$(jq .closed.rss_kib <<<"$r")")" "$per" "$share" \
		"$(jq .open.fds <<<"$r")" "$(jq .open.threads <<<"$r")"
done
echo "(KiB/session = (RSS open − RSS idle) / $SESSIONS; rec share = KiB/session − rec-off's KiB/session;" \
	"idle is measured after one warm-up session)"
echo
for w in "${WARDENS[@]}"; do
	[[ $w == rec-off ]] && continue
	echo "$w: ${RECORDED[$w]} sealed recordings (manifest.json) for $((SESSIONS + 1)) sessions"
	n=${RECORDED[$w]}
	if ((n < SESSIONS + 1)); then
		echo "ERROR: $w did not seal every session within 30 s"
		status=1
	fi
done
print_warden_problems "${WARDENS[@]}"
exit "$status"
