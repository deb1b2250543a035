#!/usr/bin/env bash
# What masking costs: the same 100-row select through Warden with masking off
# and on, measured in one run (issue 5: TPS cost ≤ 10 %).
#
# Starts a throwaway PostgreSQL with a `customers` table (realistic names and
# e-mail addresses) and three Wardens in front of it that differ only in their
# policy's masking rules: `no-mask` (none), `mask-detector` (`mask =
# ["email"]`, the content detector) and `mask-column` (`mask_columns =
# ["customers.email"]`, a column rule). Checks that the masked paths really
# mask (simple and extended protocol) and the unmasked one does not, then runs
# interleaved pgbench rounds of a custom script selecting 100 rows through
# every path and directly, and prints TPS and the masked/unmasked ratios.
# Everything runs on random loopback ports in one temp dir and is removed on exit.
#
# Environment:
#   BENCH_SECONDS=8            pgbench -T per run
#   BENCH_ROUNDS=2             interleaved rounds (TPS is averaged over them)
#   BENCH_CLIENTS="1 8"        client counts
#   BENCH_MODES="simple prepared"  pgbench -M modes
#   BENCH_ROWS=5000            rows in customers
#   BENCH_RECORDING=true       [recording] enabled in every Warden
#   BENCH_WARDEN_LOG_LEVEL=info  --log-level for warden serve
#   WARDEN_BIN=path            the warden binary (default: release build in
#                              $CARGO_TARGET_DIR or target/, built if missing)
#   PG_BINDIR=dir              PostgreSQL server binaries
#   BENCH_KEEP_TMP=1           keep the temp dir (logs) instead of removing it
set -euo pipefail

SECONDS_PER_RUN=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-2}
CLIENTS=${BENCH_CLIENTS:-"1 8"}
MODES=${BENCH_MODES:-"simple prepared"}
ROWS=${BENCH_ROWS:-5000}
RECORDING=${BENCH_RECORDING:-true}
THREADS=2
TARGET_RATIO=0.90 # masked TPS / unmasked TPS the issue asks for

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

((ROWS >= 200)) || die "BENCH_ROWS must be at least 200"

# --- tools --------------------------------------------------------------------

find_pg_tools
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
find_warden_bin
HAVE_PSYCOPG=0
# scripts/setup.sh puts psycopg in .tools/venv (Debian's python3 has no pip).
PYTHON=python3
[ -x "$(dirname "$0")/../.tools/venv/bin/python3" ] && PYTHON="$(dirname "$0")/../.tools/venv/bin/python3"
"$PYTHON" -c 'import psycopg' >/dev/null 2>&1 && HAVE_PSYCOPG=1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-masking.XXXXXX")
chmod 755 "$TMP"

# --- PostgreSQL ---------------------------------------------------------------

BENCH_USER=bench
BENCH_DB=bench
start_postgres "$BENCH_USER" "$BENCH_DB"
BENCH_PASSWORD=$PG_PASSWORD

log "creating customers ($ROWS rows)"
# Names from small lists, addresses first.last<id>@domain, notes without
# e-mail addresses (the bench query does not select them anyway).
pg_client "$PG_PORT" "$BENCH_USER" "$BENCH_PASSWORD" "$BENCH_DB" -q <<SQL || die "cannot create customers"
create table customers (id int primary key, name text not null, email text not null, note text);
insert into customers
select i, first || ' ' || last,
       lower(first) || '.' || lower(last) || i || '@' ||
         (array['example.com', 'mail.example.org', 'corp.example.net', 'shop.example.co.uk'])[1 + i % 4],
       (array['prefers phone calls', 'VIP since 2019', 'asked about invoice 4411', 'moved to Lyon',
              'newsletter: weekly', null, 'pays by bank transfer'])[1 + i % 7]
from (
  select i,
         (array['Alice', 'Bruno', 'Chiara', 'Dmitri', 'Elena', 'Farid', 'Grace', 'Hiroshi', 'Ines', 'Jonas',
                'Kemal', 'Lena', 'Mateo', 'Nadia', 'Oskar', 'Priya', 'Quentin', 'Rosa', 'Sven', 'Tariq'])[1 + i % 20] as first,
         (array['Smith', 'Garcia', 'Müller', 'Rossi', 'Dubois', 'Kowalski', 'Novak', 'Jensen', 'Silva', 'Tanaka',
                'Okafor', 'Larsen', 'Haddad', 'Ivanova', 'Moreau', 'Fischer', 'Costa', 'Nguyen', 'O''Brien', 'Berg',
                'Yilmaz', 'Sato', 'Kaur', 'Lindqvist', 'Petrov'])[1 + (i / 20) % 25] as last
  from generate_series(1, $ROWS) as i
) as people;
analyze customers;
SQL

# --- Wardens ------------------------------------------------------------------

# mask_warden LABEL POLICY_MASK_LINES: a Warden on $BENCH_DB (static
# credentials, policy: group `agents` may read) with the given masking lines
# in its policy; everything else is the same for every label.
mask_warden() {
	start_warden "$1" postgres BENCH_PG_PASSWORD="$BENCH_PASSWORD" <<EOF
[recording]
enabled = $RECORDING

[masking]
strategy = "redact"

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
$2
EOF
}

mask_warden no-mask ""
mask_warden mask-detector 'mask = ["email"]'
mask_warden mask-column 'mask_columns = ["customers.email"]'
WARDENS=(no-mask mask-detector mask-column)
PATHS=(direct "${WARDENS[@]}")

# --- sanity: masked paths mask, unmasked paths do not ---------------------------

# One row through the simple protocol (psql), compared with the direct answer.
SAMPLE_ID=$((ROWS / 2))
SAMPLE_SQL="select id, name, email from customers where id = $SAMPLE_ID"
expected=$(pg_client "$PG_PORT" "$BENCH_USER" "$BENCH_PASSWORD" "$BENCH_DB" -c "$SAMPLE_SQL")
IFS='|' read -r sample_id sample_name sample_email <<<"$expected"
[[ $sample_email == *@* ]] || die "direct: expected an e-mail address, got '$expected'"
echo "sanity ($SAMPLE_SQL):" >&2
sanity_failed=0
for p in "${PATHS[@]}"; do
	if ! got=$(pg_client "$(path_port "$p")" "$BENCH_USER" "$(path_password "$p")" "$BENCH_DB" -c "$SAMPLE_SQL" 2>&1); then
		log "$p: query failed: $got"
		[[ $p != direct ]] && tail -n 20 "$TMP/$p/warden.log" >&2
		die "path $p does not work"
	fi
	case $p in
	direct | no-mask) want=$expected ;;
	*) want="$sample_id|$sample_name|[REDACTED]" ;;
	esac
	if [[ $got == "$want" ]]; then
		printf '  %-14s %s  ok\n' "$p" "$got" >&2
	else
		printf '  %-14s %s  WRONG, expected %s\n' "$p" "$got" "$want" >&2
		sanity_failed=1
	fi
done

# 100 rows through the extended protocol (psycopg, server-side prepared, text
# and binary results): every e-mail masked on masked paths, none on the others.
if [[ $HAVE_PSYCOPG == 1 ]]; then
	echo "sanity (extended protocol, prepared, 100 rows, text and binary):" >&2
	for p in "${PATHS[@]}"; do
		case $p in direct | no-mask) masked=0 ;; *) masked=1 ;; esac
		if out=$(PGPASSWORD=$(path_password "$p") python3 - "$(path_port "$p")" "$BENCH_USER" "$BENCH_DB" "$masked" <<'PY' 2>&1
import sys
import psycopg

port, user, db, masked = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
sql = "select id, name, email from customers where id between %s and %s + 99"
with psycopg.connect(host="127.0.0.1", port=port, user=user, dbname=db, sslmode="disable") as conn:
    for binary in (False, True):
        rows = conn.cursor(binary=binary).execute(sql, (101, 101), prepare=True).fetchall()
        if len(rows) != 100:
            sys.exit(f"expected 100 rows, got {len(rows)}")
        bad = [r for r in rows if (r[2] == "[REDACTED]") != masked or ("@" in r[2]) == masked or "@" in r[1]]
        if bad:
            sys.exit(f"binary={binary}: {len(bad)} rows wrong, e.g. {bad[0]!r}")
print("100 rows x 2 formats, " + ("all e-mails [REDACTED]" if masked else "all e-mails in clear"))
PY
		); then
			printf '  %-14s %s  ok\n' "$p" "$out" >&2
		else
			printf '  %-14s WRONG: %s\n' "$p" "$out" >&2
			sanity_failed=1
		fi
	done
else
	log "psycopg not installed: extended-protocol sanity check skipped (run scripts/setup.sh)"
fi
if ((sanity_failed)); then
	for w in "${WARDENS[@]}"; do
		echo "--- $w warden.log (last 20 lines)" >&2
		tail -n 20 "$TMP/$w/warden.log" >&2
	done
	die "masking sanity check failed: the masked paths must show [REDACTED], the others the e-mail address"
fi

# --- measurements -------------------------------------------------------------

SCRIPT=$TMP/select100.sql
cat >"$SCRIPT" <<EOF
\\set a random(1, $((ROWS - 99)))
select id, name, email from customers where id between :a and :a + 99;
EOF
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
				p=${PATHS[$(((i + round) % NPATHS))]}
				run_pgbench "$p|$c|$mode" "$(path_port "$p")" "$(path_password "$p")" "$c" "$mode" -f "$SCRIPT"
			done
		done
	done
done

# --- report -------------------------------------------------------------------

echo
echo "Masking benchmark: PostgreSQL $("$PG_BINDIR/postgres" --version | awk '{print $3}'), customers: $ROWS rows;" \
	"pgbench -n -f select100.sql -j $THREADS -T $SECONDS_PER_RUN, $ROUNDS interleaved rounds (TPS averaged); $(nproc) CPUs"
echo "query: select id, name, email from customers where id between :a and :a + 99 (100 rows, 1 masked column)"
echo "load average before: $LOAD_BEFORE, after: $(load_avg)" \
	"(a high value before means other work was running and skews absolute numbers: compare ratios)"
echo "warden: $WARDEN_BIN (recording=$RECORDING, [masking] strategy = redact);" \
	"mask-detector: mask = [\"email\"]; mask-column: mask_columns = [\"customers.email\"]"
echo
print_tps_table 14 no-mask
echo
echo "masking cost: TPS masked / TPS no-mask (target ≥ $TARGET_RATIO, i.e. cost ≤ 10 %)"
printf '%3s  %-9s %14s %14s\n' c mode mask-detector mask-column
printf '%3s  %-9s %14s %14s\n' --- --------- -------------- --------------
verdict() {
	local r=$1
	[[ $r == - ]] && {
		echo "-"
		return
	}
	if awk -v r="$r" -v t="$TARGET_RATIO" 'BEGIN { exit !(r >= t) }'; then echo "$r ok"; else echo "$r MISS"; fi
}
for c in $CLIENTS; do
	for mode in $MODES; do
		nomask=$(avg_tps "no-mask|$c|$mode")
		printf '%3s  %-9s %14s %14s\n' "$c" "$mode" \
			"$(verdict "$(ratio "$(avg_tps "mask-detector|$c|$mode")" "$nomask")")" \
			"$(verdict "$(ratio "$(avg_tps "mask-column|$c|$mode")" "$nomask")")"
	done
done

print_warden_problems "${WARDENS[@]}"
failed=$(failed_runs)
if ((failed > 0)); then
	echo
	echo "$failed pgbench run(s) failed; last lines of each failing run:"
	grep -B1 -A8 -E '^(pgbench: error|.*FATAL|.*ERROR)' "$RUN_LOG" | head -n 60 || true
	exit 1
fi
