#!/usr/bin/env bash
# Warden vs direct MariaDB, measured in one run.
#
# Starts a throwaway MariaDB and a Warden (MySQL listener, policy and
# recording on) in front of it, on random loopback ports in one temp dir,
# then runs interleaved `sysbench oltp_read_only` rounds through both paths,
# streams a ~200 MB result set through Warden while sampling its RSS, and
# prints TPS/QPS, ratios and memory. Everything is stopped and removed on exit.
#
# Environment:
#   BENCH_SECONDS=8            sysbench --time per run
#   BENCH_ROUNDS=2             interleaved rounds (TPS/QPS are averaged over them)
#   BENCH_THREADS="1 8"        sysbench --threads values
#   BENCH_TABLES=4             sysbench --tables
#   BENCH_TABLE_SIZE=10000     sysbench --table-size
#   BENCH_BIG_ROWS=200000      rows of ~1 KB in the big-result table (best of two reads)
#   BENCH_WARDEN_LOG_LEVEL=info  --log-level for warden serve
#   WARDEN_BIN=path            the warden binary (default: release build in
#                              $CARGO_TARGET_DIR or target/, built if missing)
#   BENCH_KEEP_TMP=1           keep the temp dir (logs) instead of removing it
set -euo pipefail

SECONDS_PER_RUN=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-2}
THREAD_COUNTS=${BENCH_THREADS:-"1 8"}
TABLES=${BENCH_TABLES:-4}
TABLE_SIZE=${BENCH_TABLE_SIZE:-10000}
BIG_ROWS=${BENCH_BIG_ROWS:-200000}

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools --------------------------------------------------------------------

for tool in mariadb-install-db mariadbd mariadb mariadb-admin sysbench jq ss; do
	command -v "$tool" >/dev/null || die "$tool not found (Debian: mariadb-server mariadb-client sysbench jq iproute2)"
done

find_warden_bin

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-sysbench.XXXXXX")
chmod 755 "$TMP"
unset MYSQL_PWD MYSQL_HOST MYSQL_TCP_PORT

# --- MariaDB ------------------------------------------------------------------

DB_DIR=$TMP/mariadb
DB_DATA=$DB_DIR/data
DB_SOCKET=$DB_DIR/sock
ROOT_PASSWORD="root-$RANDOM$RANDOM$RANDOM"
BENCH_USER=sbtest
BENCH_DB=sbtest
BENCH_PASSWORD="sb-$RANDOM$RANDOM$RANDOM"
mkdir -p "$DB_DIR"
[[ $IS_ROOT == 1 ]] && chown -R mysql:mysql "$DB_DIR"

log "mariadb-install-db"
mariadb-install-db --no-defaults --datadir="$DB_DATA" --user=mysql \
	--auth-root-authentication-method=normal --skip-test-db >"$DB_DIR/install.log" 2>&1 ||
	die "mariadb-install-db failed: $(tail -n 20 "$DB_DIR/install.log")"

DB_PORT=$(free_port)
mariadbd --no-defaults --user=mysql --datadir="$DB_DATA" --port="$DB_PORT" \
	--bind-address=127.0.0.1 --socket="$DB_SOCKET" --pid-file="$DB_DIR/pid" \
	--skip-log-bin --skip-name-resolve --innodb-buffer-pool-size=256M \
	--innodb-log-file-size=64M --innodb-flush-log-at-trx-commit=0 --max-connections=200 \
	>/dev/null 2>"$DB_DIR/server.log" &
PIDS+=($!)
DB_PID=$!
wait_port "$DB_PORT" "$DB_PID" mariadbd || die "mariadbd did not start: $(tail -n 20 "$DB_DIR/server.log")"
for _ in $(seq 100); do
	mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root --connect-timeout=2 ping >/dev/null 2>&1 && break
	sleep 0.1
done

mariadb --no-defaults --socket="$DB_SOCKET" -u root -e "
	ALTER USER 'root'@'localhost' IDENTIFIED BY '$ROOT_PASSWORD';
	CREATE DATABASE $BENCH_DB;
	CREATE USER '$BENCH_USER'@'%' IDENTIFIED BY '$BENCH_PASSWORD';
	GRANT ALL PRIVILEGES ON $BENCH_DB.* TO '$BENCH_USER'@'%';
	FLUSH PRIVILEGES;" || die "cannot create the bench user"

# client PORT USER PASSWORD ARGS...: the mariadb CLI over TCP to $BENCH_DB.
client() {
	local port=$1 user=$2 password=$3
	shift 3
	MYSQL_PWD=$password mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$port" \
		-u "$user" -D "$BENCH_DB" --skip-ssl --connect-timeout=10 "$@"
}

SB_COMMON=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-db="$BENCH_DB" --mysql-ssl=off
	--tables="$TABLES" --table-size="$TABLE_SIZE")
log "mariadb on 127.0.0.1:$DB_PORT; sysbench oltp_read_only prepare (--tables=$TABLES --table-size=$TABLE_SIZE)"
sysbench oltp_read_only "${SB_COMMON[@]}" --mysql-port="$DB_PORT" --mysql-user="$BENCH_USER" \
	--mysql-password="$BENCH_PASSWORD" prepare >"$DB_DIR/prepare.log" 2>&1 ||
	die "sysbench prepare failed: $(tail -n 20 "$DB_DIR/prepare.log")"

log "creating table big ($BIG_ROWS rows x ~1 KB)"
client "$DB_PORT" "$BENCH_USER" "$BENCH_PASSWORD" -e "
	CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(1024) NOT NULL) ENGINE=InnoDB;
	INSERT INTO big SELECT seq, REPEAT(CHAR(97 + seq % 26), 1000) FROM seq_1_to_$BIG_ROWS;" ||
	die "cannot create table big"

# --- Warden -------------------------------------------------------------------

start_warden warden mysql BENCH_DB_PASSWORD="$BENCH_PASSWORD" <<EOF
[recording]
enabled = true

[[target]]
name = "$BENCH_DB"
protocol = "mysql"
address = "127.0.0.1:$DB_PORT"
credentials = { mode = "static", user = "$BENCH_USER", password = "env:BENCH_DB_PASSWORD" }

[[policy]]
name = "bench agents"
subjects = ["group:agents"]
targets = ["$BENCH_DB"]
allow = ["read", "write", "ddl", "admin"]
EOF
WARDEN_DIR=$TMP/warden
# shellcheck disable=SC2154 # set by start_warden
{
	WARDEN_PORT=$WARDEN_PORT_warden
	WARDEN_PID=$WARDEN_PID_warden
	KEY=$KEY_warden
}
# mysql_native_password: the user is the key id (wdn_<16 hex>), the password the whole key.
KEY_ID=${KEY:0:20}

path_port() { case $1 in direct) echo "$DB_PORT" ;; warden) echo "$WARDEN_PORT" ;; esac }
path_user() { case $1 in direct) echo "$BENCH_USER" ;; warden) echo "$KEY_ID" ;; esac }
path_password() { case $1 in direct) echo "$BENCH_PASSWORD" ;; warden) echo "$KEY" ;; esac }

# Both paths must answer the same query before anything is measured.
PATHS=(direct warden)
EXPECTED_ROWS=$TABLE_SIZE
for p in "${PATHS[@]}"; do
	if ! rows=$(client "$(path_port "$p")" "$(path_user "$p")" "$(path_password "$p")" \
		--batch --skip-column-names -e 'select count(*) from sbtest1' 2>&1); then
		log "$p: sanity query failed: $rows"
		[[ $p == warden ]] && tail -n 30 "$WARDEN_DIR/warden.log" >&2
		die "path $p does not work"
	fi
	[[ $rows == "$EXPECTED_ROWS" ]] || die "$p: expected $EXPECTED_ROWS rows, got '$rows'"
done

# --- measurements -------------------------------------------------------------

declare -A TPS_SUM QPS_SUM LAT_SUM RUNS FAILS
RUN_LOG=$TMP/runs.log
: >"$RUN_LOG"

# run_sysbench PATH THREADS: adds TPS/QPS/latency of one run to the sums.
run_sysbench() {
	local p=$1 t=$2 out tps qps lat key="$1|$2"
	if out=$(sysbench oltp_read_only "${SB_COMMON[@]}" --mysql-port="$(path_port "$p")" \
		--mysql-user="$(path_user "$p")" --mysql-password="$(path_password "$p")" \
		--threads="$t" --time="$SECONDS_PER_RUN" --report-interval=0 run 2>&1); then
		tps=$(sed -n 's/^ *transactions: .*(\([0-9.]*\) per sec.)/\1/p' <<<"$out" | head -n1)
		qps=$(sed -n 's/^ *queries: .*(\([0-9.]*\) per sec.)/\1/p' <<<"$out" | head -n1)
		lat=$(sed -n 's/^ *avg: *\([0-9.]*\)$/\1/p' <<<"$out" | head -n1)
	fi
	printf '=== %s threads=%s\n%s\n' "$p" "$t" "$out" >>"$RUN_LOG"
	if [[ -z ${tps:-} || -z ${qps:-} || -z ${lat:-} ]] || grep -q 'FATAL' <<<"$out"; then
		FAILS[$key]=$((${FAILS[$key]:-0} + 1))
		log "$p threads=$t FAILED:"
		tail -n 8 <<<"$out" | sed 's/^/    /' >&2
		return
	fi
	TPS_SUM[$key]=$(awk -v a="${TPS_SUM[$key]:-0}" -v b="$tps" 'BEGIN { printf "%.3f", a + b }')
	QPS_SUM[$key]=$(awk -v a="${QPS_SUM[$key]:-0}" -v b="$qps" 'BEGIN { printf "%.3f", a + b }')
	LAT_SUM[$key]=$(awk -v a="${LAT_SUM[$key]:-0}" -v b="$lat" 'BEGIN { printf "%.4f", a + b }')
	RUNS[$key]=$((${RUNS[$key]:-0} + 1))
	log "$(printf '%-7s threads=%-2s %9.0f tps %10.0f qps %8.3f ms' "$p" "$t" "$tps" "$qps" "$lat")"
}

NPATHS=${#PATHS[@]}
# Other work on the machine skews absolute numbers; say so in the report.
LOAD_BEFORE=$(load_avg)
log "measuring: threads=($THREAD_COUNTS) ${SECONDS_PER_RUN}s x $ROUNDS rounds"
for ((round = 0; round < ROUNDS; round++)); do
	log "round $((round + 1))/$ROUNDS"
	for t in $THREAD_COUNTS; do
		for ((i = 0; i < NPATHS; i++)); do
			run_sysbench "${PATHS[$(((i + round) % NPATHS))]}" "$t"
		done
	done
done

# --- big result with Warden's RSS -----------------------------------------------

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# big_result PATH: wall-clock seconds and bytes of `select * from big` through the CLI.
BIG_OUT=$TMP/big.out
big_result() {
	local p=$1 start end bytes
	start=$(date +%s.%N)
	if ! client "$(path_port "$p")" "$(path_user "$p")" "$(path_password "$p")" --batch --quick \
		-e 'select * from big' 2>"$TMP/big.err" | wc -c >"$BIG_OUT"; then
		log "$p: big result failed: $(cat "$TMP/big.err")"
		echo "fail 0"
		return
	fi
	end=$(date +%s.%N)
	bytes=$(cat "$BIG_OUT")
	[[ -s $TMP/big.err ]] && {
		log "$p: big result failed: $(cat "$TMP/big.err")"
		echo "fail 0"
		return
	}
	awk -v a="$start" -v b="$end" -v n="$bytes" 'BEGIN { printf "%.3f %d\n", b - a, n }'
}

log "big result (select * from big, $BIG_ROWS rows), best of two per path, sampling warden's RSS"
RSS_BEFORE=$(rss_kb "$WARDEN_PID")
RSS_FILE=$TMP/rss.samples
: >"$RSS_FILE"
(
	while kill -0 "$WARDEN_PID" 2>/dev/null; do
		rss_kb "$WARDEN_PID" >>"$RSS_FILE"
		sleep 0.1
	done
) &
SAMPLER=$!
PIDS+=("$SAMPLER")
declare -A BIG BIG_BYTES
for _ in 1 2; do
	for p in direct warden; do
		read -r t bytes < <(big_result "$p")
		log "$(printf '%-7s %s s, %s bytes' "$p" "$t" "$bytes")"
		if [[ $t == fail ]]; then
			BIG[$p]=fail
		elif [[ ${BIG[$p]:-} != fail ]]; then
			if [[ -z ${BIG[$p]:-} ]] || awk -v a="$t" -v b="${BIG[$p]}" 'BEGIN { exit !(a < b) }'; then
				BIG[$p]=$t
			fi
			# A path that answers with a different byte count in any attempt fails below.
			if [[ -n ${BIG_BYTES[$p]:-} && ${BIG_BYTES[$p]} != "$bytes" ]]; then
				BIG[$p]=fail
			fi
			BIG_BYTES[$p]=$bytes
		fi
	done
done
sleep 0.3
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
RSS_PEAK=$(sort -n "$RSS_FILE" | tail -n1)
RSS_SAMPLES=$(wc -l <"$RSS_FILE")
RSS_AFTER=$(rss_kb "$WARDEN_PID")
BIG_DIRECT=${BIG[direct]:-fail}
BIG_WARDEN=${BIG[warden]:-fail}
BIG_DIRECT_BYTES=${BIG_BYTES[direct]:-0}
BIG_WARDEN_BYTES=${BIG_BYTES[warden]:-0}

# --- report -------------------------------------------------------------------

avg() {
	local -n sums=$1
	local key=$2 digits=${3:-1}
	[[ -n ${RUNS[$key]:-} ]] || return 0
	awk -v s="${sums[$key]}" -v n="${RUNS[$key]}" -v d="$digits" 'BEGIN { printf "%.*f", d, s / n }'
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

echo
echo "Warden benchmark: MariaDB $(mariadbd --version | awk '{print $3}'), sysbench $(sysbench --version | awk '{print $2}')" \
	"oltp_read_only --tables=$TABLES --table-size=$TABLE_SIZE --time=$SECONDS_PER_RUN, $ROUNDS interleaved rounds (averaged); $(nproc) CPUs"
echo "load average before: $LOAD_BEFORE, after: $(load_avg)" \
	"(a high value before means other work was running and skews absolute numbers: compare ratios)"
echo "warden: $WARDEN_BIN (policy on, recording on; user = access key id, mysql_native_password)"
echo
printf '%-7s %7s %10s %11s %11s %11s %11s\n' path threads TPS QPS "latency ms" "TPS×direct" "QPS×direct"
printf '%-7s %7s %10s %11s %11s %11s %11s\n' ------- ------- ---------- ----------- ----------- ----------- -----------
for t in $THREAD_COUNTS; do
	direct_tps=$(avg TPS_SUM "direct|$t")
	direct_qps=$(avg QPS_SUM "direct|$t")
	for p in "${PATHS[@]}"; do
		key="$p|$t"
		tps=$(avg TPS_SUM "$key")
		if [[ -z $tps ]]; then
			printf '%-7s %7s %10s %11s %11s %11s %11s\n' "$p" "$t" FAILED - - - -
			continue
		fi
		qps=$(avg QPS_SUM "$key")
		note=""
		[[ -n ${FAILS[$key]:-} ]] && note="  (${FAILS[$key]} failed run(s))"
		printf '%-7s %7s %10.0f %11.0f %11s %11s %11s%s\n' "$p" "$t" "$tps" "$qps" "$(avg LAT_SUM "$key" 3)" \
			"$(ratio "$tps" "$direct_tps")" "$(ratio "$qps" "$direct_qps")" "$note"
	done
done
echo
echo "big result: select * from big ($BIG_ROWS rows x ~1 KB) with mariadb --batch --quick | wc -c, best of two"
printf '%-7s %10s %12s %8s\n' path seconds "bytes out" ×direct
printf '%-7s %10s %12s %8s\n' ------- ---------- ------------ --------
printf '%-7s %10s %12s %8s\n' direct "${BIG_DIRECT}" "$BIG_DIRECT_BYTES" 1.00
printf '%-7s %10s %12s %8s\n' warden "${BIG_WARDEN}" "$BIG_WARDEN_BYTES" "$(ratio "$BIG_WARDEN" "$BIG_DIRECT")"
echo "warden RSS: before $(mb "$RSS_BEFORE"), peak $(mb "${RSS_PEAK:-0}"), growth $(mb $((${RSS_PEAK:-0} - RSS_BEFORE)))," \
	"after $(mb "$RSS_AFTER") ($RSS_SAMPLES samples every 100 ms)"
echo

summary="summary:"
for t in $THREAD_COUNTS; do
	summary+=" threads=$t warden/direct TPS=$(ratio "$(avg TPS_SUM "warden|$t")" "$(avg TPS_SUM "direct|$t")");"
done
summary+=" big result warden/direct time=$(ratio "$BIG_WARDEN" "$BIG_DIRECT"), RSS growth $(mb $((${RSS_PEAK:-0} - RSS_BEFORE)))"
echo "$summary"

# Anything Warden logged at warn/error level during the run is part of the result.
print_warden_problems warden
failed=$(failed_runs)
if [[ $BIG_DIRECT_BYTES != "$BIG_WARDEN_BYTES" || $BIG_WARDEN == fail || $BIG_DIRECT == fail ]]; then
	echo
	echo "big result through warden differs from direct ($BIG_WARDEN_BYTES vs $BIG_DIRECT_BYTES bytes)"
	failed=$((failed + 1))
fi
if ((failed > 0)); then
	echo
	echo "$failed run(s) failed; last lines of each failing sysbench run:"
	grep -B2 -A8 -E 'FATAL|error' "$RUN_LOG" | head -n 60 || true
	exit 1
fi
