#!/usr/bin/env bash
# Runs the demo: installs what is missing, starts a throwaway PostgreSQL on
# 127.0.0.1:25432, starts Warden on examples/warden.toml (127.0.0.1:15432),
# mints an access key and prints a ready-to-paste psql line.
#   scripts/demo.sh        start (or restart) the demo
#   scripts/demo.sh stop   stop it and delete its data
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/demo
PGPORT=25432

stop() {
  if [ -f "$DEMO/warden.pid" ]; then kill "$(cat "$DEMO/warden.pid")" 2>/dev/null || true; fi
  if [ -d "$DEMO/pg/data" ]; then
    as_postgres "$(pg_bin)/pg_ctl" -D "$DEMO/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  sleep 0.5
  rm -rf "$DEMO"
}
pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ "${1:-}" = "stop" ]; then stop; echo "demo stopped"; exit 0; fi

scripts/setup.sh
echo "demo: building warden"
cargo build --quiet -p warden
WARDEN=$ROOT/target/debug/warden
stop

mkdir -p "$DEMO/pg"
SUPER_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
APP_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$SUPER_PW" > "$DEMO/pg/pwfile"
[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$DEMO/pg"
echo "demo: starting PostgreSQL on 127.0.0.1:$PGPORT"
as_postgres "$(pg_bin)/initdb" -D "$DEMO/pg/data" -U postgres --auth=scram-sha-256 \
  --pwfile="$DEMO/pg/pwfile" --no-sync >/dev/null
as_postgres "$(pg_bin)/pg_ctl" -D "$DEMO/pg/data" -l "$DEMO/pg/server.log" -w \
  -o "-p $PGPORT -k $DEMO/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
PGPASSWORD=$SUPER_PW psql -X -q -h 127.0.0.1 -p $PGPORT -U postgres -d postgres \
  -c "create role orders_app login password '$APP_PW'" -c "create database orders owner orders_app"
PGPASSWORD=$APP_PW psql -X -q -h 127.0.0.1 -p $PGPORT -U orders_app -d orders -c "
  create table customers (id serial primary key, name text, email text);
  insert into customers (name, email) values ('Ada', 'ada@example.com'), ('Lin', 'lin@example.com');"

echo "demo: starting Warden on 127.0.0.1:15432 (log: demo/warden.log)"
ORDERS_PASSWORD=$APP_PW nohup "$WARDEN" serve --config examples/warden.toml > "$DEMO/warden.log" 2>&1 &
echo $! > "$DEMO/warden.pid"
for _ in $(seq 100); do
  curl -fsS http://127.0.0.1:18080/healthz >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS http://127.0.0.1:18080/healthz >/dev/null || { cat "$DEMO/warden.log"; exit 1; }
KEY=$("$WARDEN" keys create --config examples/warden.toml --name demo-agent --groups agents --ttl 8h)
REVIEWER=$("$WARDEN" keys create --config examples/warden.toml --name demo-dba --groups dba --ttl 8h)

cat <<MSG

Warden is running. Connect as an agent (the password is a Warden access key):

  PGPASSWORD=$KEY psql "host=127.0.0.1 port=15432 user=agent dbname=orders sslmode=disable"

Then try:   select current_user;     -- the injected upstream user, orders_app
            select * from customers; -- allowed: read, with each email masked
            update customers set name = 'Ada L.' where id = 1;   -- held: psql waits
            drop table customers;    -- denied by policy: ERROR 42501

While the update waits, a reviewer releases it from another terminal:

  export WARDEN_KEY=$REVIEWER
  $WARDEN reviews list --config examples/warden.toml
  $WARDEN reviews approve <REVIEW-ID> --comment "ok" --config examples/warden.toml

Afterwards: $WARDEN sessions list --config examples/warden.toml
            $WARDEN replay --config examples/warden.toml <SESSION-ID>
Stop it:    scripts/demo.sh stop
MSG
