#!/usr/bin/env bash
# Warden vs direct PostgreSQL vs pgbouncer, measured in one run.
#
# Starts a throwaway PostgreSQL 15 (scram-sha-256, fsync=off), a pgbouncer in
# session mode and a Warden (policy and recording on) in front of it, all on
# random loopback ports in one temp dir, then runs interleaved
# `pgbench -n -S` rounds through every path plus a "big result" query, and
# prints TPS, latency and ratios. Everything is stopped and removed on exit.
#
# Environment:
#   BENCH_SECONDS=8            pgbench -T per run
#   BENCH_ROUNDS=2             interleaved rounds (TPS is averaged over them)
#   BENCH_CLIENTS="1 8"        client counts
#   BENCH_MODES="simple prepared"  pgbench -M modes
#   BENCH_SCALE=4              pgbench -i -s
#   BENCH_COMPARE_RECORDING=1  also run a second Warden with recording off
#   WARDEN_BASELINE_BIN=path   also run this (older) warden binary as path
#                              `warden-base`, interleaved with the others, and
#                              print warden/pgbouncer beside warden-base/pgbouncer
#   BENCH_WARDEN_LOG_LEVEL=info  --log-level for warden serve
#   WARDEN_BIN=path            the warden binary (default: release build in
#                              $CARGO_TARGET_DIR or target/, built if missing)
#   PG_BINDIR=dir              PostgreSQL server binaries (default: newest
#                              /usr/lib/postgresql/*/bin)
#   BENCH_KEEP_TMP=1           keep the temp dir (logs) instead of removing it
set -euo pipefail

SECONDS_PER_RUN=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-2}
CLIENTS=${BENCH_CLIENTS:-"1 8"}
MODES=${BENCH_MODES:-"simple prepared"}
SCALE=${BENCH_SCALE:-4}
COMPARE_RECORDING=${BENCH_COMPARE_RECORDING:-0}
THREADS=2

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools --------------------------------------------------------------------

find_pg_tools
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
[[ -x $PGBOUNCER ]] || die "pgbouncer not found (apt-get install pgbouncer)"
command -v jq >/dev/null || die "jq not found (apt-get install jq)"

find_warden_bin

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench.XXXXXX")
chmod 755 "$TMP"

# --- PostgreSQL ---------------------------------------------------------------

BENCH_USER=bench
BENCH_DB=bench
start_postgres "$BENCH_USER" "$BENCH_DB"
BENCH_PASSWORD=$PG_PASSWORD
log "pgbench -i -s $SCALE"
PGPASSWORD=$BENCH_PASSWORD "$PGBENCH" -i -s "$SCALE" -q -h 127.0.0.1 -p "$PG_PORT" -U "$BENCH_USER" "$BENCH_DB" \
	>"$PG_DIR/pgbench-init.log" 2>&1 || die "pgbench -i failed: $(cat "$PG_DIR/pgbench-init.log")"

# --- pgbouncer ----------------------------------------------------------------

PGB_DIR=$TMP/pgbouncer
PGB_PORT=$(free_port)
mkdir -p "$PGB_DIR"
# A plain password in the userlist lets pgbouncer answer SCRAM from the client
# and do SCRAM itself towards PostgreSQL.
printf '"%s" "%s"\n' "$BENCH_USER" "$BENCH_PASSWORD" >"$PGB_DIR/userlist.txt"
cat >"$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
$BENCH_DB = host=127.0.0.1 port=$PG_PORT dbname=$BENCH_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir = $PGB_DIR
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 40
ignore_startup_parameters = extra_float_digits
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
chmod 600 "$PGB_DIR/userlist.txt"
[[ $IS_ROOT == 1 ]] && chown -R postgres:postgres "$PGB_DIR"
as_postgres "$PGBOUNCER" "$PGB_DIR/pgbouncer.ini" >"$PGB_DIR/stdout.log" 2>&1 &
PIDS+=($!)
PIDFILES+=("$PGB_DIR/pgbouncer.pid")
wait_port "$PGB_PORT" "$!" pgbouncer ||
	die "pgbouncer did not start: $(cat "$PGB_DIR/stdout.log" "$PGB_DIR/pgbouncer.log" 2>/dev/null)"
log "pgbouncer $("$PGBOUNCER" --version | head -n1 | awk '{print $2}') on 127.0.0.1:$PGB_PORT"

# --- Warden -------------------------------------------------------------------

# bench_warden LABEL RECORDING(true|false): Warden with target $BENCH_DB
# (static credentials) and a policy letting group `agents` do everything.
bench_warden() {
	start_warden "$1" postgres BENCH_PG_PASSWORD="$BENCH_PASSWORD" <<EOF
[recording]
enabled = $2

[[target]]
name = "$BENCH_DB"
protocol = "postgres"
address = "127.0.0.1:$PG_PORT"
credentials = { mode = "static", user = "$BENCH_USER", password = "env:BENCH_PG_PASSWORD" }

[[policy]]
name = "bench agents"
subjects = ["group:agents"]
targets = ["$BENCH_DB"]
allow = ["read", "write", "ddl", "admin"]
EOF
}

PATHS=(direct pgbouncer warden)
bench_warden warden true
if [[ $COMPARE_RECORDING == 1 ]]; then
	bench_warden warden-norec false
	PATHS+=(warden-norec)
fi
if [[ -n ${WARDEN_BASELINE_BIN:-} ]]; then
	[[ -x $WARDEN_BASELINE_BIN ]] || die "WARDEN_BASELINE_BIN is not an executable: $WARDEN_BASELINE_BIN"
	CURRENT_BIN=$WARDEN_BIN
	WARDEN_BIN=$WARDEN_BASELINE_BIN
	bench_warden warden-base true
	WARDEN_BIN=$CURRENT_BIN
	PATHS+=(warden-base)
fi

# path_port and path_password are lib.sh's; path_log PATH.
path_log() {
	case $1 in
	direct) echo "$PG_DIR/server.log" ;;
	pgbouncer) echo "$PGB_DIR/pgbouncer.log" ;;
	*) echo "$TMP/$1/warden.log" ;;
	esac
}

# Every path must answer the same query before anything is measured.
EXPECTED_ROWS=$((SCALE * 100000))
for p in "${PATHS[@]}"; do
	if ! rows=$(PGPASSWORD=$(path_password "$p") "$PSQL" -X -At -h 127.0.0.1 -p "$(path_port "$p")" \
		-U "$BENCH_USER" -d "$BENCH_DB" -c 'select count(*) from pgbench_accounts' 2>&1); then
		log "$p: sanity query failed: $rows"
		tail -n 30 "$(path_log "$p")" >&2 || true
		die "path $p does not work"
	fi
	[[ $rows == "$EXPECTED_ROWS" ]] || die "$p: expected $EXPECTED_ROWS rows, got '$rows'"
done

# --- measurements -------------------------------------------------------------

declare -A BIG
RUN_LOG=$TMP/runs.log
: >"$RUN_LOG"

# big_result PATH: wall-clock seconds of a full-table `select *` through psql.
big_result() {
	local p=$1 start end
	start=$(date +%s.%N)
	PGPASSWORD=$(path_password "$p") "$PSQL" -X -At -h 127.0.0.1 -p "$(path_port "$p")" \
		-U "$BENCH_USER" -d "$BENCH_DB" -c 'select * from pgbench_accounts' >/dev/null 2>"$TMP/big.err" ||
		{
			log "$p: big result failed: $(cat "$TMP/big.err")"
			echo fail
			return
		}
	end=$(date +%s.%N)
	awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}

NPATHS=${#PATHS[@]}
# Other work on the machine skews absolute numbers; say so in the report.
LOAD_BEFORE=$(load_avg)
log "measuring: paths=${PATHS[*]} clients=($CLIENTS) modes=($MODES) ${SECONDS_PER_RUN}s x $ROUNDS rounds"
for ((round = 0; round < ROUNDS; round++)); do
	log "round $((round + 1))/$ROUNDS"
	for c in $CLIENTS; do
		for mode in $MODES; do
			for ((i = 0; i < NPATHS; i++)); do
				p=${PATHS[$(((i + round) % NPATHS))]}
				run_pgbench "$p|$c|$mode" "$(path_port "$p")" "$(path_password "$p")" "$c" "$mode" -S
			done
		done
	done
done

log "big result (select * from pgbench_accounts, $EXPECTED_ROWS rows), best of two"
for attempt in 1 2; do
	for ((i = 0; i < NPATHS; i++)); do
		p=${PATHS[$(((i + attempt) % NPATHS))]}
		t=$(big_result "$p")
		log "$(printf '%-13s %s s' "$p" "$t")"
		if [[ $t != fail ]]; then
			if [[ -z ${BIG[$p]:-} ]] || awk -v a="$t" -v b="${BIG[$p]}" 'BEGIN { exit !(a < b) }'; then
				BIG[$p]=$t
			fi
		fi
	done
done

# --- report -------------------------------------------------------------------

echo
echo "Warden benchmark: PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}'), pgbench -i -s $SCALE;" \
	"pgbench -n -S -j $THREADS -T $SECONDS_PER_RUN, $ROUNDS interleaved rounds (TPS averaged); $(nproc) CPUs"
echo "load average before: $LOAD_BEFORE, after: $(load_avg)" \
	"(c=8 runs raise it by themselves; a high value before means other work was running and skews absolute numbers: compare ratios)"
echo "warden: $WARDEN_BIN (policy on, recording on$([[ $COMPARE_RECORDING == 1 ]] && echo "; warden-norec: recording off"))"
[[ -n ${WARDEN_BASELINE_BIN:-} ]] && echo "warden-base: $WARDEN_BASELINE_BIN (same config)"
echo
print_tps_table 13 pgbouncer
echo
printf '%-13s %12s %8s %11s\n' path "big result s" "×direct" "×pgbouncer"
printf '%-13s %12s %8s %11s\n' ------------- ------------ -------- -----------
for p in "${PATHS[@]}"; do
	t=${BIG[$p]:-}
	# For time, ×direct > 1 means slower.
	printf '%-13s %12s %8s %11s\n' "$p" "${t:-FAILED}" "$(ratio "$t" "${BIG[direct]:-}")" "$(ratio "$t" "${BIG[pgbouncer]:-}")"
done
echo

summary="summary (simple):"
for c in $CLIENTS; do
	w=$(avg_tps "warden|$c|simple")
	summary+=" c=$c warden/direct=$(ratio "$w" "$(avg_tps "direct|$c|simple")")"
	summary+=" warden/pgbouncer=$(ratio "$w" "$(avg_tps "pgbouncer|$c|simple")");"
done
summary+=" big result warden/direct=$(ratio "${BIG[warden]:-}" "${BIG[direct]:-}")"
echo "$summary"
if [[ $COMPARE_RECORDING == 1 ]]; then
	rec="recording cost (simple):"
	for c in $CLIENTS; do
		rec+=" c=$c warden(rec on)/warden(rec off)=$(ratio "$(avg_tps "warden|$c|simple")" "$(avg_tps "warden-norec|$c|simple")");"
	done
	echo "${rec%;}"
fi

if [[ -n ${WARDEN_BASELINE_BIN:-} ]]; then
	base="before/after (simple):"
	for c in $CLIENTS; do
		w=$(avg_tps "warden|$c|simple")
		b=$(avg_tps "warden-base|$c|simple")
		pgb=$(avg_tps "pgbouncer|$c|simple")
		base+=" c=$c warden/pgbouncer=$(ratio "$w" "$pgb") warden-base/pgbouncer=$(ratio "$b" "$pgb") warden/warden-base=$(ratio "$w" "$b");"
	done
	echo "${base%;}"
fi

# Anything Warden logged at warn/error level during the run is part of the result.
labels=()
for p in "${PATHS[@]}"; do
	case $p in warden*) labels+=("$p") ;; esac
done
print_warden_problems "${labels[@]}"
failed=$(failed_runs)
if ((failed > 0)); then
	echo
	echo "$failed pgbench run(s) failed; last lines of each failing run:"
	grep -B1 -A8 -E '^(pgbench: error|.*FATAL|.*ERROR)' "$RUN_LOG" | head -n 60 || true
	exit 1
fi
