# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run): logging, clean-up of every
# process and temp dir on exit, loopback ports, the warden binary, a throwaway
# PostgreSQL, Wardens with a given config, and pgbench runs with averaged TPS.
# A script may define `cleanup_extra` to stop daemons it started another way.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
	printf '[bench] error: %s\n' "$*" >&2
	exit 1
}

TMP=""
PIDS=() # processes started directly by the script

cleanup() {
	local status=$?
	trap - EXIT INT TERM
	set +e
	if declare -F cleanup_extra >/dev/null; then
		cleanup_extra
	fi
	cleanup_daemons
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	if [[ -n $TMP && -d $TMP ]]; then
		if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
			log "kept $TMP"
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

IS_ROOT=0
[[ $(id -u) == 0 ]] && IS_ROOT=1

USED_PORTS=" "
# Ports are picked below the kernel's ephemeral range when it leaves room
# (20000..32767 by default), so an outgoing connection cannot take the port
# between the check and the bind.
PORT_LOW=20000
PORT_SPAN=40000
if read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && ((eph_low > PORT_LOW + 1000)); then
	PORT_SPAN=$((eph_low - PORT_LOW))
fi
# A random loopback port no TCP socket uses, in any state (a port held by a
# connection in TIME_WAIT, e.g. left by a previous run's many connects,
# cannot be bound either), and that this script has not handed out.
free_port() {
	local port in_use
	in_use=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u | tr '\n' ' ')
	for _ in $(seq 200); do
		port=$((PORT_LOW + RANDOM % PORT_SPAN))
		if [[ " $in_use " != *" $port "* && $USED_PORTS != *" $port "* ]]; then
			USED_PORTS+="$port "
			echo "$port"
			return
		fi
	done
	die "no free port found"
}

# Waits up to 60 s until 127.0.0.1:$1 accepts TCP connections; $2 = pid that must stay alive.
wait_port() {
	local port=$1 pid=${2:-} what=$3
	for _ in $(seq 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			return 1
		fi
		sleep 0.1
	done
	log "$what did not listen on $port within 60s"
	return 1
}

# Sets WARDEN_BIN: $WARDEN_BIN, or the release build (built when missing).
find_warden_bin() {
	if [[ -z ${WARDEN_BIN:-} ]]; then
		WARDEN_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/warden
		if [[ ! -x $WARDEN_BIN ]]; then
			log "building $WARDEN_BIN (cargo build --release -p warden)"
			(cd "$ROOT" && cargo build --release -p warden) || die "cargo build failed"
		fi
	fi
	[[ -x $WARDEN_BIN ]] || die "warden binary not found: $WARDEN_BIN"
}

# --- results ------------------------------------------------------------------

# ratio A B: A / B with two decimals, or "-" when either is missing.
ratio() {
	[[ -n ${1:-} && -n ${2:-} && $1 != fail && $2 != fail ]] || {
		echo "-"
		return
	}
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?"; }

# --- PostgreSQL ---------------------------------------------------------------

PG_DATA=""
PIDFILES=() # pid files of daemons started through runuser

# PostgreSQL and pgbouncer refuse to run as root.
as_postgres() {
	if [[ $IS_ROOT == 1 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Stops the daemons started through runuser (called by cleanup).
cleanup_daemons() {
	if [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]]; then
		as_postgres "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >/dev/null 2>&1
	fi
	for file in "${PIDFILES[@]}"; do
		if [[ -s $file ]]; then
			kill "$(head -n1 "$file")" 2>/dev/null
		fi
	done
}

# Sets PG_BINDIR (newest /usr/lib/postgresql/*/bin unless given), PSQL and PGBENCH.
find_pg_tools() {
	if [[ -z ${PG_BINDIR:-} ]]; then
		PG_BINDIR=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
	fi
	[[ -x ${PG_BINDIR:-}/initdb ]] || die "PostgreSQL server binaries not found (set PG_BINDIR)"
	PGBENCH=$PG_BINDIR/pgbench
	[[ -x $PGBENCH ]] || PGBENCH=$(command -v pgbench) || die "pgbench not found"
	PSQL=$PG_BINDIR/psql
	[[ -x $PSQL ]] || PSQL=$(command -v psql) || die "psql not found"
	export PGSSLMODE=disable PGCONNECT_TIMEOUT=10
	unset PGSERVICE PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD
}

# start_postgres USER DATABASE [SETTING=VALUE ...]: a throwaway PostgreSQL in
# $TMP/pg on a random loopback port (scram-sha-256 everywhere, fsync off,
# extra settings passed as `-c`), with login role USER owning DATABASE.
# Sets PG_DIR, PG_DATA, PG_PORT, PG_SUPER_PASSWORD and PG_PASSWORD (USER's).
start_postgres() {
	local user=$1 db=$2 pid setting
	shift 2
	local settings=(-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off
		-c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB)
	for setting in "$@"; do settings+=(-c "$setting"); done
	PG_DIR=$TMP/pg
	PG_DATA=$PG_DIR/data
	PG_SUPER_PASSWORD="pg-$RANDOM$RANDOM$RANDOM"
	PG_PASSWORD="$user-$RANDOM$RANDOM$RANDOM"
	mkdir -p "$PG_DIR"
	printf '%s' "$PG_SUPER_PASSWORD" >"$PG_DIR/pwfile"
	[[ $IS_ROOT == 1 ]] && chown -R postgres:postgres "$PG_DIR"

	log "initdb ($PG_BINDIR)"
	as_postgres env LC_ALL=C.UTF-8 "$PG_BINDIR/initdb" -D "$PG_DATA" -U postgres \
		--auth=scram-sha-256 --no-sync --pwfile="$PG_DIR/pwfile" >"$PG_DIR/initdb.log" 2>&1 ||
		die "initdb failed: $(cat "$PG_DIR/initdb.log")"
	cat >"$PG_DATA/pg_hba.conf" <<HBA
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
HBA
	[[ $IS_ROOT == 1 ]] && chown -R postgres:postgres "$PG_DIR"

	PG_PORT=$(free_port)
	as_postgres "$PG_BINDIR/postgres" -D "$PG_DATA" -p "$PG_PORT" -k "$PG_DIR" "${settings[@]}" \
		>/dev/null 2>"$PG_DIR/server.log" &
	pid=$!
	PIDS+=("$pid")
	wait_port "$PG_PORT" "$pid" postgres || die "postgres did not start: $(cat "$PG_DIR/server.log")"
	for _ in $(seq 100); do
		pg_super -d postgres -c 'select 1' >/dev/null 2>&1 && break
		sleep 0.1
	done
	pg_super -d postgres -q -c "set password_encryption = 'scram-sha-256'" \
		-c "create role $user login password '$PG_PASSWORD'" \
		-c "create database $db owner $user" >/dev/null
	log "postgres $("$PG_BINDIR/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (log $PG_DIR/server.log)"
}

# pg_super ARGS...: psql as the superuser `postgres` (give -d).
pg_super() {
	PGPASSWORD=$PG_SUPER_PASSWORD "$PSQL" -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

# pg_client PORT USER PASSWORD DATABASE ARGS...: psql -At over TCP (direct or through Warden).
pg_client() {
	local port=$1 user=$2 password=$3 db=$4
	shift 4
	PGPASSWORD=$password "$PSQL" -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$user" -d "$db" "$@"
}

# --- Warden -------------------------------------------------------------------

# start_warden LABEL PROTOCOL [NAME=VALUE ...] <<<BODY
# Starts `warden serve` in $TMP/LABEL with one PROTOCOL (postgres|mysql)
# listener on a random loopback port. The config is [server] + [[listener]]
# followed by BODY read from stdin ([[target]]s, [[policy]]s, [recording],
# [masking] …). NAME=VALUE pairs go into Warden's environment, for `env:`
# secret references. Creates an access key for group `agents`.
# Sets, with LABEL's `-` turned into `_`: WARDEN_PORT_<LABEL>,
# WARDEN_PID_<LABEL>, KEY_<LABEL>; the log is $TMP/LABEL/warden.log.
start_warden() {
	local label=$1 protocol=$2
	shift 2
	local dir=$TMP/$label port admin pid key var=${label//-/_}
	mkdir -p "$dir"
	port=$(free_port)
	admin=$(free_port)
	{
		cat <<TOML
[server]
data_dir = "$dir/data"
admin_listen = "127.0.0.1:$admin"
shutdown_grace = "2s"

[[listener]]
protocol = "$protocol"
listen = "127.0.0.1:$port"

TOML
		cat
	} >"$dir/warden.toml"
	# RUST_LOG would override --log-level (even when set to an empty string).
	env -u RUST_LOG "$@" "$WARDEN_BIN" serve --config "$dir/warden.toml" \
		--log-level "${BENCH_WARDEN_LOG_LEVEL:-info}" </dev/null >"$dir/warden.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	if ! wait_port "$admin" "$pid" "warden admin" || ! wait_port "$port" "$pid" warden; then
		tail -n 50 "$dir/warden.log" >&2
		die "warden ($label) did not start"
	fi
	key=$("$WARDEN_BIN" keys create --config "$dir/warden.toml" --name bench --groups agents --json \
		2>"$dir/keys.err" | jq -r .key) || true
	[[ -n $key && $key != null ]] || die "warden keys create failed ($label): $(cat "$dir/keys.err")"
	printf -v "WARDEN_PORT_$var" '%s' "$port"
	printf -v "WARDEN_PID_$var" '%s' "$pid"
	printf -v "KEY_$var" '%s' "$key"
	log "warden ($label) on 127.0.0.1:$port (pid $pid), log $dir/warden.log"
}

# warden_problems LABEL: the first 20 WARN/ERROR lines of that Warden's log
# (the log has ANSI colours even in a file; they are stripped before matching).
warden_problems() {
	sed 's/\x1b\[[0-9;]*m//g' "$TMP/$1/warden.log" 2>/dev/null |
		grep -E ' (WARN|ERROR) |"level":"(WARN|ERROR)"' | head -n 20 || true
}

# print_warden_problems LABEL...: prints each Warden's warnings/errors, if any.
print_warden_problems() {
	local label problems
	for label in "$@"; do
		problems=$(warden_problems "$label")
		if [[ -n $problems ]]; then
			echo
			echo "$label warden.log warnings/errors (first 20):"
			echo "$problems"
		fi
	done
}

# --- pgbench runs -------------------------------------------------------------

declare -A TPS_SUM LAT_SUM RUNS FAILS
RUN_LOG="" # every pgbench output is appended here (set by the script)

# run_pgbench KEY PORT PASSWORD C MODE PGBENCH_ARGS...: one `pgbench -n -c C
# -j BENCH_THREADS -T SECONDS_PER_RUN -M MODE` as $BENCH_USER on $BENCH_DB;
# adds its TPS and average latency to the sums under KEY (or counts a failure).
run_pgbench() {
	local key=$1 port=$2 password=$3 c=$4 mode=$5 out tps="" lat=""
	shift 5
	if out=$(PGPASSWORD=$password "$PGBENCH" -n -c "$c" -j "${THREADS:-2}" -T "$SECONDS_PER_RUN" \
		-M "$mode" "$@" -h 127.0.0.1 -p "$port" -U "$BENCH_USER" "$BENCH_DB" 2>&1); then
		tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n1)
		lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out" | head -n1)
	fi
	[[ -n $RUN_LOG ]] && printf '=== %s\n%s\n' "$key" "$out" >>"$RUN_LOG"
	if [[ -z $tps || -z $lat ]]; then
		FAILS[$key]=$((${FAILS[$key]:-0} + 1))
		log "$key FAILED:"
		tail -n 5 <<<"$out" | sed 's/^/    /' >&2
		return
	fi
	TPS_SUM[$key]=$(awk -v a="${TPS_SUM[$key]:-0}" -v b="$tps" 'BEGIN { printf "%.3f", a + b }')
	LAT_SUM[$key]=$(awk -v a="${LAT_SUM[$key]:-0}" -v b="$lat" 'BEGIN { printf "%.4f", a + b }')
	RUNS[$key]=$((${RUNS[$key]:-0} + 1))
	log "$(printf '%-22s %10.0f tps %7.3f ms' "$key" "$tps" "$lat")"
}

# avg_tps KEY / avg_lat KEY: averages over the successful runs ("" if none).
avg_tps() {
	[[ -n ${RUNS[$1]:-} ]] || return 0
	awk -v s="${TPS_SUM[$1]}" -v n="${RUNS[$1]}" 'BEGIN { printf "%.1f", s / n }'
}
avg_lat() {
	[[ -n ${RUNS[$1]:-} ]] || return 0
	awk -v s="${LAT_SUM[$1]}" -v n="${RUNS[$1]}" 'BEGIN { printf "%.3f", s / n }'
}

# print_tps_table WIDTH BASELINE: one row per path, client count and mode
# (CLIENTS, MODES, PATHS) with TPS, latency, ×direct and ×BASELINE.
print_tps_table() {
	local width=$1 base=$2 c mode direct basetps p key tps note
	local head="%-${width}s %3s  %-9s %10s %11s %8s %11s\n"
	local row="%-${width}s %3s  %-9s %10.0f %11s %8s %11s%s\n"
	# shellcheck disable=SC2059 # the formats are built above for the path column's width
	{
		printf "$head" path c mode TPS "latency ms" "×direct" "×$base"
		printf "$head" "$(printf '%*s' "$width" '' | tr ' ' -)" --- --------- ---------- ----------- -------- -----------
		for c in $CLIENTS; do
			for mode in $MODES; do
				direct=$(avg_tps "direct|$c|$mode")
				basetps=$(avg_tps "$base|$c|$mode")
				for p in "${PATHS[@]}"; do
					key="$p|$c|$mode"
					tps=$(avg_tps "$key")
					if [[ -z $tps ]]; then
						printf "$head" "$p" "$c" "$mode" FAILED - - -
						continue
					fi
					note=""
					[[ -n ${FAILS[$key]:-} ]] && note="  (${FAILS[$key]} failed run(s))"
					printf "$row" "$p" "$c" "$mode" "$tps" "$(avg_lat "$key")" \
						"$(ratio "$tps" "$direct")" "$(ratio "$tps" "$basetps")" "$note"
				done
			done
		done
	}
}

# failed_runs: total number of failed pgbench runs.
failed_runs() {
	local key total=0
	for key in "${!FAILS[@]}"; do total=$((total + FAILS[$key])); done
	echo "$total"
}

# path_port PATH / path_password PATH. "direct" is PostgreSQL itself
# ($PG_PORT, $BENCH_PASSWORD) and "pgbouncer" is $PGB_PORT; any other path is
# a Warden the script started, with its port in WARDEN_PORT_<path> and its
# access key in KEY_<path> (dashes as underscores).
path_port() {
	case $1 in
	direct) echo "$PG_PORT" ;;
	pgbouncer) echo "$PGB_PORT" ;;
	*)
		local var="WARDEN_PORT_${1//-/_}"
		echo "${!var}"
		;;
	esac
}
path_password() {
	case $1 in
	direct | pgbouncer) echo "$BENCH_PASSWORD" ;;
	*)
		local var="KEY_${1//-/_}"
		echo "${!var}"
		;;
	esac
}
