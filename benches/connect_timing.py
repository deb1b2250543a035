#!/usr/bin/env python3
"""Connect-time loop for benches/connect.sh (psycopg 3).

Reads a JSON spec on stdin:
  {"count": 200, "warmup": 5, "rounds": 1,
   "paths": [{"name": "direct", "host": "127.0.0.1", "port": 5432, "user": "bench",
              "password": "...", "dbname": "bench", "expect_user": "bench"}, ...],
   "check_sql": "select count(*) from items", "check_value": 1000}
`expect_user` is the exact `current_user`, or a prefix when it ends in `*`.

For every path: one sanity connection (current_user and check_sql), `warmup`
untimed connects, then `count` sequential connects per round, each timed with
time.perf_counter: connect (until psycopg.connect returns) and the whole cycle
(connect + `select 1` + close). Paths take turns per round (the order rotates).
Prints percentiles and ratios against the first path and against `static`.
Exits 1 if a sanity check or any connect fails.
"""

import json
import statistics
import sys
import time

import psycopg


def connect(path):
    return psycopg.connect(
        host=path["host"],
        port=path["port"],
        user=path["user"],
        password=path["password"],
        dbname=path["dbname"],
        sslmode="disable",
        autocommit=True,  # no BEGIN before `select 1`
        connect_timeout=10,
    )


def sanity(path, check_sql, check_value):
    """current_user and check_sql through one session; returns the user seen."""
    with connect(path) as conn:
        user = conn.execute("select current_user").fetchone()[0]
        value = conn.execute(check_sql).fetchone()[0] if check_sql else None
    want = path.get("expect_user")
    if want:
        ok = user.startswith(want[:-1]) if want.endswith("*") else user == want
        if not ok:
            raise SystemExit(f"{path['name']}: current_user is {user!r}, expected {want!r}")
    if check_sql and value != check_value:
        raise SystemExit(f"{path['name']}: {check_sql!r} gave {value!r}, expected {check_value!r}")
    return user


def one_cycle(path):
    start = time.perf_counter()
    conn = connect(path)
    connected = time.perf_counter()
    try:
        if conn.execute("select 1").fetchone()[0] != 1:
            raise RuntimeError("select 1 did not return 1")
    finally:
        conn.close()
    done = time.perf_counter()
    return (connected - start) * 1000.0, (done - start) * 1000.0


def pct(values):
    """p50, p90, p99 (inclusive quantiles, interpolated)."""
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v, v
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49], q[89], q[98]


def ratio(a, b):
    return f"{a / b:.2f}" if b and b > 0 else "-"


def main():
    spec = json.load(sys.stdin)
    paths = spec["paths"]
    count, warmup, rounds = spec["count"], spec.get("warmup", 5), spec.get("rounds", 1)
    check_sql, check_value = spec.get("check_sql"), spec.get("check_value")

    print("sanity (current_user; " + (check_sql or "-") + "):", file=sys.stderr)
    for path in paths:
        users = {sanity(path, check_sql, check_value) for _ in range(2)}
        note = "a fresh role per session" if len(users) == 2 else "the same role each session"
        print(f"  {path['name']:<8} {', '.join(sorted(users))} ({note})", file=sys.stderr)

    connect_ms = {p["name"]: [] for p in paths}
    cycle_ms = {p["name"]: [] for p in paths}
    for rnd in range(rounds):
        for i in range(len(paths)):
            path = paths[(i + rnd) % len(paths)]
            if rnd == 0:
                for _ in range(warmup):
                    one_cycle(path)
            started = time.perf_counter()
            for _ in range(count):
                c, t = one_cycle(path)
                connect_ms[path["name"]].append(c)
                cycle_ms[path["name"]].append(t)
            took = time.perf_counter() - started
            p50 = statistics.median(connect_ms[path["name"]][-count:])
            print(
                f"  round {rnd + 1}/{rounds} {path['name']:<8} {count} connects in {took:.2f}s, "
                f"connect p50 {p50:.2f} ms",
                file=sys.stderr,
            )

    first = paths[0]["name"]
    static = "static" if "static" in connect_ms else None
    p50s = {name: pct(v)[0] for name, v in connect_ms.items()}
    header = (
        f"{'path':<8} {'n':>5} {'connect p50':>12} {'p90':>8} {'p99':>8} {'mean':>8} "
        f"{'cycle p50':>10} {'p50×' + first:>11}"
    )
    if static:
        header += f" {'p50×static':>11}"
    print(header)
    print("-" * len(header))
    for path in paths:
        name = path["name"]
        values = connect_ms[name]
        p50, p90, p99 = pct(values)
        line = (
            f"{name:<8} {len(values):>5} {p50:>12.2f} {p90:>8.2f} {p99:>8.2f} "
            f"{statistics.fmean(values):>8.2f} {pct(cycle_ms[name])[0]:>10.2f} {ratio(p50, p50s[first]):>11}"
        )
        if static:
            line += f" {ratio(p50, p50s[static]):>11}"
        print(line)
    print("(milliseconds; connect = until psycopg.connect returns, cycle = connect + select 1 + close)")
    print()
    if static and "jit" in p50s:
        r = p50s["jit"] / p50s[static]
        verdict = "ok" if r <= 2.0 else "MISS"
        print(f"jit/static connect p50 = {r:.2f} (target ≤ 2.00: {verdict})")
    if static and first != static:
        print(f"static/{first} connect p50 = {p50s[static] / p50s[first]:.2f}")


if __name__ == "__main__":
    try:
        main()
    except psycopg.Error as err:
        sys.exit(f"connect failed: {err}")
