"""tests/pooler/test_integration.py: where the pooler's features meet.
Named prepared statements in transaction mode (prepared*.c) against RELOAD,
PAUSE/RESUME, cancels (forwarded and local), pre-ping, pool_recycle, SIGINT
shutdown and TLS; the admin console and the metrics endpoint while those run;
memory after many clients prepared many statements.  Real PostgreSQL, real
clients (psycopg 3 with prepare_threshold=0, psycopg2, pgbench -M prepared)
and raw protocol sockets where the exact reply sequence matters."""
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import psycopg
import psycopg2

import pooler_tests as pt
from wire import free_port, rss_kb
from test_admin import admin, show, pool_row
from test_live import edit_ini, cmd, appdb_line
from test_prepared import (parse, bind, execute, close, describe, SYNC, until_ready, types, rows, errors,
                           send, pg3)
from test_cancel_races import login, cancel, read_until, errors_in

ok = pt.ok


# ---- helpers ----

def pg3_as(p, user="postgres", db="postgres", **kw):
    return psycopg.connect(host="127.0.0.1", port=p.port, user=user, dbname=db, autocommit=True,
                           prepare_threshold=0, connect_timeout=10, **kw)


def statements_on(pid):
    """What backend pid holds (pg_prepared_statements is per backend: asked
    through the pooler on a pinned connection only, so here by elimination:
    the names the pooler would use show in pg_stat_activity's last query)."""
    return None


def backend_prepared(p, user="postgres", db="postgres"):
    """Pin one server connection in a transaction and list its prepared statement names."""
    c = psycopg2.connect(host="127.0.0.1", port=p.port, user=user, dbname=db, connect_timeout=10)
    try:
        cur = c.cursor()
        cur.execute("select pg_backend_pid()")
        pid = cur.fetchone()[0]
        cur.execute("select name from pg_prepared_statements order by name")
        return pid, [r[0] for r in cur.fetchall()]
    finally:
        c.rollback()
        c.close()


def admin_cmd(p, sql):
    a = admin(p)
    try:
        return cmd(a, sql)
    finally:
        a.close()


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def pool_metric(m, name, db="postgres", user="postgres"):
    return m.get('perfopt_pooler_%s{database="%s",user="%s"}' % (name, db, user))


# ---- tests ----

def test_reload_pool_mode():
    """RELOAD switching a database between transaction and session mode under
    clients that hold named prepared statements: every client keeps the mode it
    logged in with and keeps working.  One server connection, so the session
    client's server is the one the transaction-mode client prepared on."""
    p = pt.Pooler("integ_mode", admin_users="postgres", pool_size=1, max_overflow=0, pool_timeout=10)
    a = pg3_as(p)
    ok(a.execute("select %s::int + 1", (1,)).fetchone()[0] == 2, "transaction mode: psycopg 3 prepared query")
    edit_ini(p, pool_mode="session")
    ok(admin_cmd(p, "RELOAD") == "RELOAD", "RELOAD to pool_mode = session")
    code = "none"
    try:
        got = [a.execute("select %s::int + 1", (i,)).fetchone()[0] for i in range(5)]
    except psycopg.Error as e:
        got, code = None, "%s %s" % (e.sqlstate, e)
    ok(got == [1, 2, 3, 4, 5], "the client prepared before the switch runs its statement again after it "
                               "(it was 26000: its Bind went out unrewritten)", code)
    b = pg3_as(p)
    got = [b.execute("select %s::int * 3", (i,)).fetchone()[0] for i in range(3)]
    ok(got == [0, 3, 6], "a client logged in after the switch prepares and runs")
    pid_b = b.execute("select pg_backend_pid()").fetchone()[0]
    names = [r[0] for r in b.execute("select name from pg_prepared_statements").fetchall()]
    ok(any(n.startswith("_pg3_") for n in names),
       "the session-mode client's statements are on its server under its own names", names)
    edit_ini(p, pool_mode="transaction")
    ok(admin_cmd(p, "RELOAD") == "RELOAD", "RELOAD back to pool_mode = transaction")
    code = "none"
    try:
        got = [b.execute("select %s::int * 3", (i,)).fetchone()[0] for i in range(3)]
        got += [b.execute("select %s::int - 1", (i,)).fetchone()[0] for i in range(2)]
        same = b.execute("select pg_backend_pid()").fetchone()[0] == pid_b
    except psycopg.Error as e:
        got, same, code = None, False, "%s %s" % (e.sqlstate, e)
    ok(got == [0, 3, 6, -1, 0], "the client logged in under session mode keeps its statements after the switch back",
       code)
    ok(same, "and keeps its server connection (session mode for its whole life)")
    b.close()
    code = "none"
    try:
        got = [a.execute("select %s::int + 1", (i,)).fetchone()[0] for i in range(3)]
    except psycopg.Error as e:
        got, code = None, "%s %s" % (e.sqlstate, e)
    ok(got == [1, 2, 3], "the first client runs its statement on the server the session client's DISCARD ALL "
                         "reset (the pooler's set of that server was stale)", code)
    pid, names = backend_prepared(p)
    ok(pid == pid_b and names and all(n.startswith("PERFOPT_") for n in names),
       "that server now holds only pooler-named statements", (pid, pid_b, names))
    a.close()
    c = pg3_as(p)
    got = [c.execute("select %s::int + 100", (i,)).fetchone()[0] for i in range(3)]
    ok(got == [100, 101, 102], "a new transaction-mode client after both switches")
    c.close()
    ok(p.alive(), "pooler alive")
    p.stop()


TESTS = [("integ_reload_mode", test_reload_pool_mode)]
