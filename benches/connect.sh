#!/usr/bin/env bash
# Connect time through Warden with a static credential and with an ephemeral
# (JIT) role, against direct PostgreSQL (issue 4: JIT connect p50 ≤ 2× static).
#
# Starts a throwaway PostgreSQL and one Warden with two targets on the same
# database: `static` (one fixed upstream user) and `jit` (a fresh role per
# session, created by `warden_admin` with role `bench_read` granted, dropped
# when the session ends). Then benches/connect_timing.py (psycopg 3) makes
# sequential connects (connect + `select 1` + close) on each path, timing each
# with time.perf_counter, and prints p50/p90/p99 and the ratios. Afterwards it
# checks that the session roles were dropped. Everything runs on random
# loopback ports in one temp dir and is removed on exit.
#
# Environment:
#   BENCH_CONNECTS=200         timed connects per path and round
#   BENCH_WARMUP=5             untimed connects per path first
#   BENCH_ROUNDS=1             rounds (the path order rotates each round)
#   BENCH_RECORDING=true       [recording] enabled
#   BENCH_WARDEN_LOG_LEVEL=info  --log-level for warden serve
#   WARDEN_BIN=path            the warden binary (default: release build in
#                              $CARGO_TARGET_DIR or target/, built if missing)
#   PG_BINDIR=dir              PostgreSQL server binaries
#   BENCH_KEEP_TMP=1           keep the temp dir (logs) instead of removing it
set -euo pipefail

CONNECTS=${BENCH_CONNECTS:-200}
WARMUP=${BENCH_WARMUP:-5}
ROUNDS=${BENCH_ROUNDS:-1}
RECORDING=${BENCH_RECORDING:-true}
ITEMS=1000

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- tools --------------------------------------------------------------------

find_pg_tools
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
python3 -c 'import psycopg' >/dev/null 2>&1 || die "psycopg 3 not found (pip install 'psycopg[binary]')"
find_warden_bin

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-connect.XXXXXX")
chmod 755 "$TMP"

# --- PostgreSQL ---------------------------------------------------------------

BENCH_USER=bench
BENCH_DB=bench
start_postgres "$BENCH_USER" "$BENCH_DB"
BENCH_PASSWORD=$PG_PASSWORD
ADMIN_PASSWORD="admin-$RANDOM$RANDOM$RANDOM"

# warden_admin creates and drops the session roles; bench_read is what each
# session's role gets: reading `items`, nothing else.
pg_super -d "$BENCH_DB" -q <<SQL >/dev/null || die "cannot create the roles"
create table items (id int primary key, name text not null);
insert into items select i, 'item ' || i from generate_series(1, $ITEMS) as i;
alter table items owner to $BENCH_USER;
create role warden_admin login createrole password '$ADMIN_PASSWORD';
create role bench_read nologin;
grant connect on database $BENCH_DB to bench_read;
grant usage on schema public to bench_read;
grant select on items to bench_read;
grant bench_read to warden_admin with admin option;
SQL

# --- Warden -------------------------------------------------------------------

start_warden warden postgres BENCH_PG_PASSWORD="$BENCH_PASSWORD" BENCH_ADMIN_PASSWORD="$ADMIN_PASSWORD" <<EOF
[recording]
enabled = $RECORDING

[[target]]
name = "static"
protocol = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "$BENCH_DB"
credentials = { mode = "static", user = "$BENCH_USER", password = "env:BENCH_PG_PASSWORD" }

[[target]]
name = "jit"
protocol = "postgres"
address = "127.0.0.1:$PG_PORT"
database = "$BENCH_DB"
credentials = { mode = "ephemeral", admin_user = "warden_admin", admin_password = "env:BENCH_ADMIN_PASSWORD", grant = ["bench_read"], ttl = "5m" }

[[policy]]
name = "bench agents"
subjects = ["group:agents"]
targets = ["static", "jit"]
allow = ["read"]
EOF
# shellcheck disable=SC2154 # set by start_warden
{
	WARDEN_PORT=$WARDEN_PORT_warden
	KEY=$KEY_warden
}

# --- measurements -------------------------------------------------------------

session_roles() { pg_super -d postgres -c "select count(*) from pg_roles where rolname ~ '^warden_[0-9a-f]+\$'"; }
ROLES_BEFORE=$(session_roles)

# Through Warden the password is the access key and `dbname` names the target;
# the user name is not used for authentication.
SPEC=$TMP/connect.json
jq -n --argjson count "$CONNECTS" --argjson warmup "$WARMUP" --argjson rounds "$ROUNDS" \
	--argjson pg "$PG_PORT" --argjson warden "$WARDEN_PORT" --arg pw "$BENCH_PASSWORD" --arg key "$KEY" \
	--arg user "$BENCH_USER" --arg db "$BENCH_DB" --argjson items "$ITEMS" '{
	count: $count, warmup: $warmup, rounds: $rounds,
	check_sql: "select count(*) from items", check_value: $items,
	paths: [
		{name: "direct", host: "127.0.0.1", port: $pg, user: $user, password: $pw, dbname: $db, expect_user: $user},
		{name: "static", host: "127.0.0.1", port: $warden, user: "bench-agent", password: $key, dbname: "static", expect_user: $user},
		{name: "jit", host: "127.0.0.1", port: $warden, user: "bench-agent", password: $key, dbname: "jit", expect_user: "warden_*"}
	]}' >"$SPEC"

LOAD_BEFORE=$(load_avg)
log "measuring: $CONNECTS sequential connects per path x $ROUNDS round(s) (+$WARMUP warm-up), paths direct static jit"
RESULT=$TMP/result.txt
status=0
python3 "$(dirname "${BASH_SOURCE[0]}")/connect_timing.py" <"$SPEC" >"$RESULT" || status=$?
LOAD_AFTER=$(load_avg)

# Every session's role is dropped in the background after the session ends.
ROLES_RIGHT_AFTER=$(session_roles)
roles_left=$ROLES_RIGHT_AFTER
for _ in $(seq 100); do
	roles_left=$(session_roles)
	((roles_left == 0)) && break
	sleep 0.1
done

# --- report -------------------------------------------------------------------

echo
echo "Connect benchmark: PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}') (scram-sha-256);" \
	"$CONNECTS sequential connects per path x $ROUNDS round(s) after $WARMUP warm-up, psycopg $(python3 -c 'import psycopg; print(psycopg.__version__)'); $(nproc) CPUs"
echo "paths: direct (bench, password) | static: Warden, access key, static upstream credential |" \
	"jit: Warden, access key, ephemeral role per session (grant bench_read, ttl 5m)"
echo "load average before: $LOAD_BEFORE, after: $LOAD_AFTER" \
	"(a high value before means other work was running and skews absolute numbers: compare ratios)"
echo "warden: $WARDEN_BIN (recording=$RECORDING)"
echo
cat "$RESULT"
echo "session roles (warden_<hex>): $ROLES_BEFORE before, $ROLES_RIGHT_AFTER right after the loop, $roles_left after waiting up to 10 s"
print_warden_problems warden
if ((status != 0)); then
	echo
	echo "the connect loop failed (exit $status)"
	tail -n 20 "$TMP/warden/warden.log"
	exit "$status"
fi
if ((roles_left != 0)); then
	echo
	echo "$roles_left session role(s) were not dropped within 10 s after the last session"
	exit 1
fi
