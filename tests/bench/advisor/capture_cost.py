#!/usr/bin/env python3
"""The capture's cost per statement, as CPU time of the backend that runs
it (robust to other load on a shared machine, unlike tps): N primary-key
lookups with different constants, perfopt.advisor_capture on and off,
alternated; the median of the per-round differences."""
import argparse
import os
import statistics

import psycopg2


def backend_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(conn, mode, n, table, rows):
    cur = conn.cursor()
    cur.execute("SET perfopt.advisor_capture = %s" % mode)
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    start = backend_cpu(pid)
    for i in range(n):
        cur.execute("SELECT abalance FROM %s WHERE aid = %d" % (table, (i * 7919) % rows + 1))
        cur.fetchall()
    return backend_cpu(pid) - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host")
    ap.add_argument("--port")
    ap.add_argument("--dbname")
    ap.add_argument("--statements", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    conn = psycopg2.connect(host=a.host, port=a.port, dbname=a.dbname, user="postgres")
    conn.autocommit = True
    cur = conn.cursor()
    try:
        cur.execute("SET pg_qualstats.enabled = off")  # measure perfopt alone
    except psycopg2.Error:
        pass
    cur.execute("SELECT count(*) FROM pgbench_accounts")
    rows = cur.fetchone()[0]
    run(conn, "on", 2000, "pgbench_accounts", rows)      # warm up
    diffs = []
    print("capture cost: backend CPU for %d primary-key lookups, capture on / off" % a.statements)
    for r in range(a.rounds):
        on = run(conn, "on", a.statements, "pgbench_accounts", rows)
        off = run(conn, "off", a.statements, "pgbench_accounts", rows)
        diffs.append((on - off) / a.statements * 1e6)
        print("  round %d: on %.2f s  off %.2f s  difference %+.2f us per statement (%+.1f%%)"
              % (r + 1, on, off, diffs[-1], 100.0 * (on - off) / off))
    off_us = off / a.statements * 1e6
    print("  median difference: %+.2f us per statement (a lookup costs about %.1f us of backend CPU)"
          % (statistics.median(diffs), off_us))


if __name__ == "__main__":
    main()
