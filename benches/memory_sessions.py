#!/usr/bin/env python3
"""Warden's memory with many sessions open, for benches/memory.sh.

Reads a JSON spec on stdin: {pid, host, port, user, password, dbname,
sessions, statements, sql, settle}. Measures the Warden process `pid`
(VmRSS from /proc/PID/status):

1. idle: after one untimed warm-up session (so lazily built state such as
   the policy and catalog caches is not counted as per-session memory);
2. open: `sessions` connections opened one after the other, each running
   `statements` statements back-to-back right after it connects (a burst, so
   the recording's per-session line buffer fills as much as 50 statements
   can fill it), then all held open; RSS after `settle` seconds, and the
   peak seen while opening (sampled every 50 ms);
3. closed: after every connection is closed and `settle` seconds more.

Prints one JSON object: the RSS figures in KiB, Warden's open file
descriptors and threads at each point, and how many statements ran.
"""

import json
import os
import sys
import threading
import time

import psycopg


def status(pid):
    """VmRSS and VmHWM in KiB, and the thread count, from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
            elif key == "Threads":
                out[key] = int(value)
    return out


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def snapshot(pid):
    s = status(pid)
    return {"rss_kib": s["VmRSS"], "hwm_kib": s["VmHWM"], "threads": s["Threads"], "fds": fds(pid)}


def run_session(conn, sql, statements, seed):
    rows, placeholders = 0, sql.count("%s")
    with conn.cursor() as cur:
        for i in range(statements):
            cur.execute(sql, ((seed * 7 + i * 13) % 990 + 1,) * placeholders)
            rows += len(cur.fetchall())
    return rows


def main():
    spec = json.load(sys.stdin)
    pid = spec["pid"]
    conninfo = {
        "host": spec["host"],
        "port": spec["port"],
        "user": spec["user"],
        "password": spec["password"],
        "dbname": spec["dbname"],
        "sslmode": "disable",
        "autocommit": True,
        "connect_timeout": 30,
    }
    n, statements, sql, settle = spec["sessions"], spec["statements"], spec["sql"], spec["settle"]

    with psycopg.connect(**conninfo) as warm:
        run_session(warm, sql, statements, 0)
    time.sleep(settle)
    idle = snapshot(pid)

    peak = {"rss_kib": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak["rss_kib"] = max(peak["rss_kib"], status(pid)["VmRSS"])
            except OSError:
                return
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    conns, rows, started = [], 0, time.perf_counter()
    try:
        for i in range(n):
            conn = psycopg.connect(**conninfo)
            conns.append(conn)
            rows += run_session(conn, sql, statements, i + 1)
        opened_s = time.perf_counter() - started
        time.sleep(settle)
        held = snapshot(pid)
        # Every session must still be alive (nothing was closed under us).
        for conn in conns:
            conn.execute("select 1").fetchall()
    finally:
        for conn in conns:
            conn.close()
    time.sleep(settle)
    stop.set()
    sampler.join()
    closed = snapshot(pid)

    json.dump(
        {
            "sessions": n,
            "statements_per_session": statements,
            "statements": n * statements,
            "rows": rows,
            "open_seconds": round(opened_s, 2),
            "idle": idle,
            "open": held,
            "peak_rss_kib": max(peak["rss_kib"], held["rss_kib"]),
            "closed": closed,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
