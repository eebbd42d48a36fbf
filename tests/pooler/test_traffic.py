"""tests/pooler/test_traffic.py: what passes through a pooled connection
unchanged: results and errors over TCP and the Unix socket, startup
parameters, large rows and parameters, notices, COPY both ways, a forwarded
CancelRequest, and pgbench's TPC-B with the server never seeing more
connections than the pool allows."""
import os
import subprocess
import threading
import time
from io import StringIO

import psycopg2

from harness import (Pooler, direct, err_code, in_background, in_pg_sleep, ok, peak_monitor, pgbench, pgbench_init,
                     q1, servers, wait_for)
from wire import raw_connect


def test_basic():
    p = Pooler("basic", pool_size=3)
    c = p.connect()
    d = direct("appdb")
    ok(q1(c, "select 40 + 2") == 42, "query through the pooler over TCP")
    ok(c.get_parameter_status("server_version") == d.get_parameter_status("server_version")
       and c.get_parameter_status("server_encoding") == d.get_parameter_status("server_encoding"),
       "client sees the real server's startup parameters",
       (c.get_parameter_status("server_version"), d.get_parameter_status("server_version")))
    c.close()
    d.close()
    u = psycopg2.connect(host=p.dir, port=p.port, user="app", password="app-secret", dbname="appdb")
    ok(q1(u, "select current_user") == "app", "query through the pooler's Unix socket")
    u.close()
    r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app",
                        "-d", "appdb", "-c", "select 'via psql'", "-c", "select 1/0"],
                       capture_output=True, text=True, env=dict(os.environ, PGPASSWORD="app-secret"))
    ok("via psql" in r.stdout and "division by zero" in r.stderr, "psql: result and ErrorResponse pass through",
       r.stdout + r.stderr)
    code = raw_connect(p.port, "postgres", "nosuchdb")
    ok(code == "3D000", "unknown database: 3D000", code)
    c = p.connect()
    cur = c.cursor()
    cur.execute("select x, repeat('y', 100000) from generate_series(1, 50) x")
    rows = cur.fetchall()
    ok(len(rows) == 50 and len(rows[49][1]) == 100000, "large result (5 MB) streams through intact")
    cur.execute("select %s::text", ("z" * 300000,))
    ok(cur.fetchone()[0] == "z" * 300000, "large query parameter (300 kB) forwarded intact")
    notices = []
    cur.execute("do $$ begin raise notice 'hello notice'; end $$")
    notices = c.notices
    ok(any("hello notice" in n for n in notices), "NoticeResponse passed through", notices)
    c.close()
    p.stop()


def test_pgbench():
    pgbench_init()
    p = Pooler("bench_tx", pool_size=4, max_overflow=2, pool_timeout=20)
    for mode in ("simple", "extended"):
        peaks, stop = [], threading.Event()
        mon = threading.Thread(target=peak_monitor, args=(stop, peaks))
        mon.start()
        r = pgbench(p.port, "-c", "20", "-j", "2", "-T", "3", "-M", mode)
        stop.set()
        mon.join()
        good = r.returncode == 0 and "number of failed transactions: 0" in r.stdout and "tps = " in r.stdout
        ok(good, "pgbench TPC-B -M %s, 20 clients, transaction mode: no failures" % mode,
           (r.stdout + r.stderr)[-400:])
        ok(max(peaks) <= 6, "pgbench -M %s: server saw at most pool_size + max_overflow = 6" % mode, max(peaks))
    d = direct("appdb")
    bal = q1(d, "select sum(abalance) = sum(bbalance) and sum(bbalance) = sum(tbalance) from "
                "(select (select sum(abalance) from pgbench_accounts) abalance, "
                "(select sum(bbalance) from pgbench_branches) bbalance, "
                "(select sum(tbalance) from pgbench_tellers) tbalance) s")
    d.close()
    ok(bal, "TPC-B balances consistent after pooled runs")
    ok(wait_for(lambda: servers(state="idle in transaction") == 0), "no server left idle in transaction")
    p.stop()
    p = Pooler("bench_session", pool_mode="session", pool_size=4, max_overflow=0, pool_timeout=20)
    r = pgbench(p.port, "-c", "4", "-j", "2", "-T", "2", "-M", "prepared", "-S")
    ok(r.returncode == 0 and "number of failed transactions: 0" in r.stdout,
       "pgbench -M prepared -S through session mode", (r.stdout + r.stderr)[-400:])
    p.stop()


def test_cancel():
    p = Pooler("cancel", pool_size=2)
    c = p.connect()
    # canceled once PostgreSQL shows it sleeping: a cancel sent earlier could find nothing to cancel
    th = in_background(lambda: wait_for(lambda: in_pg_sleep() == 1) and c.cancel())
    t0 = time.time()
    code, _ = err_code(lambda: q1(c, "select pg_sleep(60)"))
    el = time.time() - t0
    th.join()
    ok(code == "57014", "CancelRequest forwarded: query canceled (57014)", code)
    ok(el < 50, "the cancel cut the 60 s statement short", round(el, 2))
    ok(q1(c, "select 5") == 5, "connection usable after cancel")
    c.close()
    p.stop()


def test_copy():
    p = Pooler("copy", pool_size=2)
    c = p.connect()
    cur = c.cursor()
    cur.execute("drop table if exists copy_t; create table copy_t (a int, b text)")
    data = "".join("%d\trow %d\n" % (i, i) for i in range(5000))
    cur.copy_expert("copy copy_t from stdin", StringIO(data))
    out = StringIO()
    cur.copy_expert("copy copy_t to stdout", out)
    ok(out.getvalue() == data, "COPY FROM STDIN then COPY TO STDOUT round-trips 5000 rows")
    d = direct("appdb")
    ok(q1(d, "select count(*) from copy_t") == 5000, "server holds the 5000 copied rows")
    d.close()
    code, _ = err_code(lambda: cur.copy_expert("copy copy_t from stdin", StringIO("x\ty\n")))
    ok(code == "22P02", "COPY error comes back with its SQLSTATE", code)
    ok(q1(c, "select count(*) from copy_t") == 5000, "connection fine after a failed COPY")
    r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-d", "appdb",
                        "-c", "\\copy (select a from copy_t where a < 3 order by a) to stdout"],
                       capture_output=True, text=True, env=dict(os.environ, PGPASSWORD="app-secret"))
    ok(r.stdout.split() == ["0", "1", "2"], "psql \\copy out through the pooler", r.stdout + r.stderr)
    c.close()
    p.stop()


TESTS = [("basic", test_basic), ("pgbench", test_pgbench), ("cancel", test_cancel), ("copy", test_copy)]
