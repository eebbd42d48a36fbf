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
import subprocess
import threading
import time

import psycopg
import psycopg2

from harness import (LockGate, PG_HOST, PG_PORT, Pooler, admin, cmd, console, edit_ini, err_code, exercised,
                     in_pg_sleep, linked_servers, metrics, ok, pgbench_init, pool_metric, pool_row, q1,
                     refuses_connections, run_parallel, servers, show, wait_for, waiting_on_lock)
from wire import (SYNC, bind, cancel, close, errors, execute, free_port, keyed_session, parse, read_msg, rows, rss_kb,
                  send, sqlstate_of, types, until_ready)


# ---- helpers ----

def pg3_as(p, user="postgres", db="postgres", **kw):
    return psycopg.connect(host="127.0.0.1", port=p.port, user=user, dbname=db, autocommit=True,
                           prepare_threshold=0, connect_timeout=10, **kw)


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


# ---- tests ----

def test_reload_pool_mode():
    """RELOAD switching a database between transaction and session mode under
    clients that hold named prepared statements: every client keeps the mode it
    logged in with and keeps working.  One server connection, so the session
    client's server is the one the transaction-mode client prepared on."""
    p = Pooler("integ_mode", admin_users="postgres", pool_size=1, max_overflow=0, pool_timeout=10)
    a = pg3_as(p)
    ok(a.execute("select %s::int + 1", (1,)).fetchone()[0] == 2, "transaction mode: psycopg 3 prepared query")
    edit_ini(p, pool_mode="session")
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD to pool_mode = session")
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
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD back to pool_mode = transaction")
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


def test_cancel_prepared():
    """A cancel forwarded while a rewritten pipeline runs, with the pooler's own
    Parse in front of the client's Bind: the reply FIFO and the S_CANCELING
    hold (the pooler's ';' absorb query) stay in step."""
    p = Pooler("integ_cancel", pool_size=2, max_overflow=0, pool_timeout=10)
    s, pid, key = keyed_session(p.port)
    r = send(s, parse("slp", "select pg_sleep($1::float8)::text || 'slept'"), bind("slp", ["0"]), execute(), SYNC)
    ok(types(r) == "12DCZ" and rows(r) == ["slept"], "named statement prepared on the first server", types(r))
    first_pid = None
    holder = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    first_pid = q1(holder, "select pg_backend_pid()")   # pins one server: s goes to the other
    s.sendall(bind("slp", ["60"]) + execute() + bind("slp", ["0"]) + execute() + SYNC)
    wait_for(lambda: in_pg_sleep("postgres", "postgres") == 1)
    t0 = time.time()
    cancel(p.port, pid, key)
    r = until_ready(s)
    el = time.time() - t0
    ok(types(r) == "2EZ" and errors(r)[0][0] == "57014",
       "canceled mid-pipeline on a server that lacked the statement: BindComplete, 57014, ReadyForQuery "
       "(the pooler's Parse answer swallowed)", (types(r), errors(r)))
    ok(el < 50, "the cancel cut the 60 s statement short", round(el, 2))
    # the server is held until the cancel is spent, then serves again: same pipeline, no error
    r = send(s, bind("slp", ["0"]), execute(), bind("slp", ["0"]), execute(), SYNC)
    ok(types(r) == "2DC2DCZ" and rows(r) == ["slept", "slept"],
       "after the cancel: the statement still runs (prepared set kept in step)", (types(r), errors(r)))
    r = send(s, parse("two", "select $1::int * 2"), bind("two", [21]), execute(), close("slp"), SYNC)
    ok(types(r) == "12DC3Z" and rows(r) == ["42"], "new Parse, Bind, Close after the cancel", (types(r), errors(r)))
    r = send(s, bind("slp", ["0"]), execute(), SYNC)
    ok(types(r) == "EZ" and errors(r)[0][0] == "26000", "the closed name is gone (26000)", errors(r))
    holder.rollback()
    # many cancels racing the end of short prepared statements: never a mismatch
    problems = []
    for i in range(60):
        s.sendall(bind("two", [i]) + execute() + parse("", "select pg_sleep(0.004)") + bind("") + execute() + SYNC)
        time.sleep(0.001 + (i % 6) * 0.001)
        cancel(p.port, pid, key)
        r = until_ready(s)
        if r[-1][0] != "Z" or any(e[0] not in ("57014",) for e in errors(r)) or \
                (not errors(r) and rows(r)[:1] != [str(i * 2)]):
            problems.append((i, types(r), errors(r)))
    ok(not problems, "60 cancels racing prepared pipelines: every reply sequence well-formed", problems[:3])
    r = send(s, bind("two", [50]), execute(), SYNC)
    ok(types(r) == "2DCZ" and rows(r) == ["100"], "the session is intact after the races", (types(r), errors(r)))
    s.close()
    holder.close()
    ok(p.alive() and "does not match" not in open(p.log).read(),
       "pooler alive, no reply/FIFO mismatch logged")
    p.stop()


def test_cancel_queued_prepared():
    """A client canceled while queued (C_DISCARDING) had sent Parse/Bind or
    Close: nothing reached a server, so its statement names are as before."""
    mport = free_port()
    p = Pooler("integ_cancel_queued", pool_size=1, max_overflow=0, pool_timeout=10, metrics_port=mport)
    s, pid, key = keyed_session(p.port)
    r = send(s, parse("kept", "select $1::int + 1"), bind("kept", [1]), execute(), SYNC)
    ok(types(r) == "12DCZ" and rows(r) == ["2"], "statement 'kept' prepared", types(r))
    holder = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    q1(holder, "select 1")
    s.sendall(parse("new", "select $1::int * 10") + bind("new", [4]) + execute() + close("kept") + SYNC)
    ok(wait_for(lambda: pool_metric(metrics(mport), "clients_waiting") == 1), "the client is queued")
    cancel(p.port, pid, key)
    r = until_ready(s)
    ok(types(r) == "EZ" and errors(r)[0][0] == "57014", "canceled while queued: 57014, ReadyForQuery", types(r))
    # half a pipeline queued, canceled, the rest (to Sync) arriving later
    s.sendall(parse("later", "select 7"))
    ok(wait_for(lambda: pool_metric(metrics(mport), "clients_waiting") == 1), "queued again")
    cancel(p.port, pid, key)
    t, body = read_msg(s)
    ok(t == b"E" and sqlstate_of(body) == "57014", "57014 at once", t)
    s.sendall(bind("later") + execute() + SYNC)
    r = until_ready(s)
    ok(types(r) == "Z", "the rest dropped up to Sync", types(r))
    holder.commit()
    r = send(s, bind("kept", [5]), execute(), SYNC)
    ok(types(r) == "2DCZ" and rows(r) == ["6"], "the canceled Close did not close 'kept'", (types(r), errors(r)))
    r = send(s, bind("new", [4]), execute(), SYNC)
    ok(types(r) == "EZ" and errors(r)[0][0] == "26000", "the canceled Parse did not create 'new'", errors(r))
    r = send(s, parse("new", "select $1::int * 10"), parse("later", "select 7"), bind("new", [4]), execute(),
             bind("later"), execute(), SYNC)
    ok(types(r) == "112DC2DCZ" and rows(r) == ["40", "7"], "both names can be prepared now (no 42P05)",
       (types(r), errors(r)))
    s.close()
    holder.close()
    p.stop()


def test_pause_prepared():
    """PAUSE closes the servers that hold a client's statements; after RESUME
    the client's next Bind is re-prepared on a new server without its knowing."""
    p = Pooler("integ_pause", admin_users="postgres", pool_size=2, max_overflow=0, pool_timeout=2)
    a = pg3_as(p)
    got = [a.execute("select %s::int + 1", (i,)).fetchone()[0] for i in range(3)]
    got += [a.execute("select %s::text || 'x'", (str(i),)).fetchone()[0] for i in range(2)]
    pid1 = a.execute("select pg_backend_pid()").fetchone()[0]
    ok(got == [1, 2, 3, "0x", "1x"], "prepared before the PAUSE")
    adm = admin(p)
    ok(cmd(adm, "PAUSE postgres") == "PAUSE", "PAUSE postgres completes")
    ok(pool_row(adm, "postgres", "postgres")["sv_idle"] == 0 and
       not [r for r in show(adm, "SERVERS") if r["database"] == "postgres"], "no server left")
    res = {}

    def run():
        try:
            res["got"] = [a.execute("select %s::int + 1", (i,)).fetchone()[0] for i in range(3)]
            res["pid"] = a.execute("select pg_backend_pid()").fetchone()[0]
        except psycopg.Error as e:
            res["err"] = "%s %s" % (e.sqlstate, e)
    th = threading.Thread(target=run)
    th.start()
    time.sleep(2.5)
    ok("got" not in res and "err" not in res, "the client's query is held while paused (past pool_timeout)")
    ok(cmd(adm, "RESUME postgres") == "RESUME", "RESUME")
    th.join(60)
    ok(res.get("got") == [1, 2, 3], "after RESUME the statement runs on a new server, re-prepared by the pooler",
       res)
    ok(res.get("pid") and res["pid"] != pid1, "it is a new backend", (pid1, res.get("pid")))
    code = "none"
    try:
        x = a.execute("select %s::text || 'x'", ("9",)).fetchone()[0]
    except psycopg.Error as e:
        x, code = None, "%s %s" % (e.sqlstate, e)
    ok(x == "9x", "its other statement too", code)
    pid, names = backend_prepared(p)
    ok(names and all(n.startswith("PERFOPT_") for n in names) and len(names) <= 3,
       "the new server holds pooler-named statements only", names)
    a.close()
    adm.close()
    p.stop()


def test_reload_address_prepared():
    """RELOAD moves the database (Unix socket -> TCP): servers are replaced at
    release, a transaction in progress finishes first, statements follow."""
    sock = "host=%s port=%d" % (PG_HOST, PG_PORT)
    tcp = "host=127.0.0.1 port=%d" % PG_PORT
    p = Pooler("integ_move", admin_users="postgres", dbs={"postgres": sock}, pool_size=2, max_overflow=0,
                  pool_timeout=10)
    a = pg3_as(p)
    ok(a.execute("select %s::int * 2", (4,)).fetchone()[0] == 8, "prepared over the Unix socket")
    b = pg3_as(p)
    b.execute("begin")
    ok(b.execute("select %s::int * 2", (5,)).fetchone()[0] == 10, "b: statement in an open transaction")
    addr_b = b.execute("select coalesce(host(inet_client_addr()), 'local')").fetchone()[0]
    edit_ini(p, dbs={"postgres": tcp})
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD: new address")
    ok(b.execute("select %s::int * 2", (6,)).fetchone()[0] == 12 and
       b.execute("select coalesce(host(inet_client_addr()), 'local')").fetchone()[0] == addr_b == "local",
       "b's transaction goes on on its old server")
    b.execute("commit")
    got = [a.execute("select %s::int * 2", (i,)).fetchone()[0] for i in range(3)]
    where = a.execute("select host(inet_client_addr())").fetchone()[0]
    ok(got == [0, 2, 4] and where == "127.0.0.1", "a's statement runs on a TCP server now", (got, where))
    got = [b.execute("select %s::int * 2", (i,)).fetchone()[0] for i in range(3)]
    ok(got == [0, 2, 4], "b's too")
    a.close()
    b.close()
    p.stop()


def test_cancel_after_move():
    """A RELOAD moves the database while a statement runs on a server opened at
    the old address: the client's cancel must go to that server, not to the new
    address (where nothing listens here)."""
    sock = "host=%s port=%d" % (PG_HOST, PG_PORT)
    p = Pooler("integ_cancel_move", admin_users="postgres", dbs={"postgres": sock}, pool_size=1,
                  max_overflow=0, pool_timeout=10)
    s, pid, key = keyed_session(p.port)
    r = send(s, parse("nap", "select pg_sleep($1::float8)::text"), bind("nap", ["0"]), execute(), SYNC)
    ok(types(r) == "12DCZ", "statement prepared")
    s.sendall(bind("nap", ["60"]) + execute() + SYNC)
    wait_for(lambda: in_pg_sleep("postgres", "postgres") == 1)
    edit_ini(p, dbs={"postgres": "host=127.0.0.1 port=%d" % free_port()})
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD: the database moves to a port nobody listens on")
    t0 = time.time()
    cancel(p.port, pid, key)
    r = until_ready(s)
    el = time.time() - t0
    ok(types(r) == "2EZ" and errors(r)[0][0] == "57014" and el < 50,
       "the cancel reached the old server: 57014, not the 60 s statement's end (it went to the new address)",
       (types(r), errors(r)))
    edit_ini(p, dbs={"postgres": sock})
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD back")
    r = send(s, bind("nap", ["0"]), execute(), SYNC)
    ok(types(r) == "2DCZ", "the statement runs on a new server", (types(r), errors(r)))
    s.close()
    p.stop()


def test_reload_rescues_login():
    """The database's address is wrong (a server that accepts and never
    answers): clients wait for the pool's first server.  A RELOAD with the
    right address must serve them at once, not leave the hanging login to
    fail them all at connect_timeout."""
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)
    hole = "host=127.0.0.1 port=%d" % black_hole.getsockname()[1]
    try:
        p = Pooler("integ_rescue", admin_users="postgres", dbs={"postgres": hole}, pool_size=2,
                      max_overflow=0, pool_timeout=120, connect_timeout=60)
        res = {}

        def login():
            t0 = time.time()
            try:
                c = psycopg2.connect(host="127.0.0.1", port=p.port, user="postgres", dbname="postgres",
                                        connect_timeout=120)
                c.autocommit = True
                res["v"] = q1(c, "select 41 + 1")
                c.close()
            except psycopg2.Error as e:
                res["err"] = str(e).strip()
            res["t"] = time.time() - t0
        th = threading.Thread(target=login)
        th.start()
        wait_for(lambda: [r for r in console(p, "SHOW CLIENTS") if r["database"] == "postgres"])
        ok("t" not in res, "the client waits for the pool's first server (its login hangs)")
        edit_ini(p, dbs={"postgres": "host=%s port=%d" % (PG_HOST, PG_PORT)})
        ok(console(p, "RELOAD") == "RELOAD", "RELOAD with the right address")
        th.join(150)
        # the hanging login would hold it until connect_timeout, 60 s
        ok(res.get("v") == 42 and res.get("t", 99) < 40,
           "the waiting client is served at once from the new address (it got an error at connect_timeout)", res)
        p.stop()
    finally:
        black_hole.close()


def test_recycle_prepared():
    p = Pooler("integ_recycle", pool_size=1, max_overflow=0, pool_recycle=0.5)
    a = pg3_as(p)
    pids, got = set(), []
    for i in range(4):
        got.append(a.execute("select %s::int + 3", (i,)).fetchone()[0])
        pids.add(a.execute("select pg_backend_pid()").fetchone()[0])
        time.sleep(0.6)
    ok(got == [3, 4, 5, 6], "prepared statement right across pool_recycle replacements", got)
    ok(len(pids) >= 3, "the server connection was recycled under it", pids)
    a.close()
    p.stop()


def test_sigint_prepared():
    """SIGINT while a prepared transaction and an unsynced pipeline run: both
    finish, the pooler exits 0 (its metrics listener does not keep it up)."""
    mport = free_port()
    p = Pooler("integ_sigint", pool_size=2, shutdown_timeout=60, metrics_port=mport)
    a = pg3_as(p)
    a.execute("begin")
    ok(a.execute("select %s::int + 1", (1,)).fetchone()[0] == 2, "a: prepared statement in a transaction")
    s, pid, key = keyed_session(p.port)
    r = send(s, parse("w", "select $1::int * 3"), bind("w", [1]), execute(), SYNC)
    ok(rows(r) == ["3"], "raw client: statement prepared")
    s.sendall(bind("w", [2]) + execute())      # in a pipeline, no Sync yet
    wait_for(lambda: pool_metric(metrics(mport), "clients_active") == 2)   # the pooler has it
    t0 = time.time()
    p.proc.send_signal(signal.SIGINT)
    wait_for(lambda: refuses_connections(p.port))     # the SIGINT has been taken
    ok(p.alive(), "SIGINT: the pooler waits for both")
    m = metrics(mport)
    ok(m.get("perfopt_pooler_clients") == 2 and pool_metric(m, "clients_active") == 2,
       "metrics still answer during the shutdown: 2 clients, both active", m.get("perfopt_pooler_clients"))
    s.sendall(bind("w", [3]) + execute() + SYNC)
    r = until_ready(s)
    ok(types(r) == "2DC2DCZ" and rows(r) == ["6", "9"], "the pipeline finishes after SIGINT", (types(r), rows(r)))
    ok(a.execute("select %s::int + 1", (2,)).fetchone()[0] == 3, "the transaction goes on with its statement")
    a.execute("commit")
    rc = p.proc.wait(60)
    # not at shutdown_timeout, 60 s
    ok(rc == 0 and time.time() - t0 < 40, "exits 0 once both finished", rc)
    refused = False
    try:
        socket.create_connection(("127.0.0.1", mport), 1).close()
    except OSError:
        refused = True
    ok(refused, "the metrics endpoint is gone with it")
    s.close()
    a.close()


def test_admin_prepared():
    """The admin console while prepared pipelines run, and clients that speak
    the extended protocol to it: a clear error, never the prepared machinery."""
    p = Pooler("integ_admin", admin_users="postgres", pool_size=2, max_overflow=0, pool_timeout=10)
    s, pid, key = keyed_session(p.port)
    gate = LockGate(4401, db="postgres")
    s.sendall(parse("slow", "select %s::text" % gate.sql) + bind("slow") + execute() + SYNC)
    adm = admin(p)
    wait_for(lambda: waiting_on_lock("postgres", "postgres") == 1)
    srv = [r for r in show(adm, "SERVERS") if r["database"] == "postgres"]
    pool = pool_row(adm, "postgres", "postgres")
    gate.open()
    ok(len(srv) == 1 and srv[0]["state"] == "active" and pool["sv_active"] == 1 and pool["cl_active"] >= 1,
       "SHOW SERVERS/POOLS during a prepared pipeline: one active server", (srv, pool))
    r = until_ready(s)
    ok(types(r) == "12DCZ", "the pipeline's replies are untouched by the admin traffic", types(r))
    ok(wait_for(lambda: pool_row(adm, "postgres", "postgres")["sv_idle"] == 1), "released: sv_idle 1")
    c3 = psycopg.connect(host="127.0.0.1", port=p.port, user="postgres", dbname="perfopt", autocommit=True,
                         prepare_threshold=0, connect_timeout=10)
    try:
        c3.execute("SHOW POOLS")
        code = "none"
    except psycopg.Error as e:
        code = e.sqlstate
    ok(code == "0A000", "psycopg 3 (extended protocol) on the admin console: 0A000", code)
    res = c3.pgconn.exec_(b"SHOW POOLS")      # PQexec: the simple query protocol
    ok(res.status == 2 and res.ntuples >= 1, "the same admin session answers a simple query afterwards",
       (res.status, res.error_message))
    c3.close()
    ok(p.alive() and "PERFOPT" not in open(p.log).read(), "no prepared-statement traffic from admin clients")
    s.close()
    adm.close()
    p.stop()


def test_prepared_memory():
    """psycopg 3 clients prepare thousands of distinct statements (2 kB of
    text each) through transaction mode, then leave; then many clients share
    the same few.  The pooler's RSS must come back: a statement nobody names
    any more, on no server, is freed."""
    # without AddressSanitizer's quarantine a sanitized pooler's RSS measures what is kept
    saved = os.environ.get("ASAN_OPTIONS")
    if saved is not None:
        os.environ["ASAN_OPTIONS"] = saved + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    try:
        p = Pooler("integ_memory", pool_size=2, max_overflow=0, pool_timeout=20, max_prepared_statements=50)
    finally:
        if saved is not None:
            os.environ["ASAN_OPTIONS"] = saved
    pad = "x" * 2000

    def distinct_round(base):
        c = pg3_as(p)
        c.prepared_max = 5000       # no DEALLOCATE from psycopg: the names live until the client leaves
        good = True
        for k in range(1500):
            q = "select %%s::int + %d /* %s */" % (base + k, pad)
            good = good and c.execute(q, (1,)).fetchone()[0] == base + k + 1
        c.close()
        return good

    def shared_round():
        errs = []

        def worker(i):
            c = pg3_as(p)
            for k in range(40):
                q = "select %%s::int * %d /* %s */" % (k % 5, pad)
                if c.execute(q, (i,)).fetchone()[0] != i * (k % 5):
                    errs.append((i, k))
            c.close()
        errs += run_parallel(20, worker)
        return not errs

    ok(distinct_round(0) and shared_round(), "round 1: 1,500 distinct statements, then 20 clients x 5 shared ones")
    time.sleep(0.3)
    rss1 = rss_kb(p.proc.pid)
    good = True
    for r in range(3):
        good = good and distinct_round((r + 1) * 10000) and shared_round()
    time.sleep(0.3)
    rss2 = rss_kb(p.proc.pid)
    ok(good, "3 more rounds: every result right")
    ok(rss2 - rss1 < 2048, "RSS after 3 more rounds (4,500 more distinct 2 kB statements, 60 more clients) grew "
                           "%d kB: statements are freed when their last client and server forget them"
       % (rss2 - rss1), (rss1, rss2))
    pid, names = backend_prepared(p)
    ok(len(names) <= 50 and all(n.startswith("PERFOPT_") for n in names),
       "a server holds at most max_prepared_statements (50)", len(names))
    p.stop()


def test_reload_restart_only():
    """max_prepared_statements needs a restart: a RELOAD that changes it (even to
    0, which would turn the rewriting off under clients that rely on it) keeps
    the running value, in SHOW CONFIG and in behaviour."""
    p = Pooler("integ_restart_only", admin_users="postgres", pool_size=1, max_overflow=0,
                  max_prepared_statements=3)
    a = pg3_as(p)
    ok(a.execute("select %s::int + 1", (1,)).fetchone()[0] == 2, "prepared with max_prepared_statements = 3")
    edit_ini(p, max_prepared_statements=0)
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD with max_prepared_statements = 0")
    adm = admin(p)
    row = [r for r in show(adm, "CONFIG") if r["key"] == "max_prepared_statements"]
    ok(row and row[0]["value"] == "3" and row[0]["changeable"] in ("no", False, "f", 0),
       "SHOW CONFIG: the running value 3, not changeable", row)
    code = "none"
    try:
        got = [a.execute("select %s::int + 1", (i,)).fetchone()[0] for i in range(3)]
        got += [a.execute("select %%s::int + %d" % k, (0,)).fetchone()[0] for k in range(6)]
    except psycopg.Error as e:
        got, code = None, "%s %s" % (e.sqlstate, e)
    ok(got == [1, 2, 3] + list(range(6)), "the client's statements still work after the RELOAD", code)
    pid, names = backend_prepared(p)
    ok(len(names) <= 3 and all(n.startswith("PERFOPT_") for n in names),
       "the server holds at most 3 pooler-named statements: the limit in force is the running one", names)
    ok("max_prepared_statements" in open(p.log).read(), "the ignored change is logged")
    adm.close()
    a.close()
    p.stop()


def test_pause_cancel():
    """PAUSE while a forwarded cancel is pending (the server is held in
    S_CANCELING before it can be closed), a queued client canceled during the
    PAUSE, and what the metrics say meanwhile."""
    mport = free_port()
    p = Pooler("integ_pause_cancel", admin_users="postgres", pool_size=1, max_overflow=0, pool_timeout=30,
                  metrics_port=mport)
    s, pid, key = keyed_session(p.port)
    r = send(s, parse("nap", "select pg_sleep($1::float8)::text"), bind("nap", ["0"]), execute(), SYNC)
    ok(types(r) == "12DCZ", "statement prepared")
    s.sendall(bind("nap", ["60"]) + execute() + SYNC)
    wait_for(lambda: in_pg_sleep("postgres", "postgres") == 1)
    res = {}

    def pause():
        b = admin(p)
        t0 = time.time()
        res["pause"] = err_code(lambda: cmd(b, "PAUSE postgres"))
        res["t"] = time.time() - t0
        b.close()
    th = threading.Thread(target=pause)
    th.start()
    wait_for(lambda: [r["paused"] for r in console(p, "SHOW POOLS") if r["database"] == "postgres"] == [1])
    ok("pause" not in res, "PAUSE waits for the running statement")
    w, wpid, wkey = keyed_session(p.port)
    w.sendall(parse("q", "select 1") + bind("q") + execute() + SYNC)
    ok(wait_for(lambda: pool_metric(metrics(mport), "clients_waiting") == 1), "a client queues during the PAUSE")
    m = metrics(mport)
    ok(pool_metric(m, "server_connections") == 1 and pool_metric(m, "server_connections_active") == 1,
       "metrics during PAUSE: 1 server, active", (pool_metric(m, "server_connections"),
                                                   pool_metric(m, "server_connections_active")))
    cancel(p.port, wpid, wkey)
    r = until_ready(w)
    ok(types(r) == "EZ" and errors(r)[0][0] == "57014", "the queued client canceled during the PAUSE: 57014 at once",
       types(r))
    t0 = time.time()
    cancel(p.port, pid, key)
    r = until_ready(s)
    ok(types(r) == "2EZ" and errors(r)[0][0] == "57014", "the running statement canceled", (types(r), errors(r)))
    th.join(60)
    ok(res.get("pause") == ("none", "") and time.time() - t0 < 40,
       "PAUSE completes once the canceled server was held, cleaned and closed", res)
    m = metrics(mport)
    ok(pool_metric(m, "server_connections") == 0 and pool_metric(m, "clients_waiting") == 0,
       "metrics after PAUSE: no server, nobody waiting", m)
    ok(wait_for(lambda: servers("postgres", "postgres") <= 1), "PostgreSQL sees the server gone")
    s.sendall(bind("nap", ["0.5"]) + execute() + SYNC)
    ok(wait_for(lambda: pool_metric(metrics(mport), "clients_waiting") == 1), "a new statement waits for RESUME")
    ok(console(p, "RESUME") == "RESUME", "RESUME")
    r = until_ready(s)
    ok(types(r) == "2DCZ" and rows(r) == [""], "after RESUME: re-prepared on a new server, not hit by the old cancel",
       (types(r), errors(r)))
    r = send(w, parse("q", "select 1"), bind("q"), execute(), SYNC)
    ok(types(r) == "12DCZ", "the client canceled while queued prepares its statement now", (types(r), errors(r)))
    s.close()
    w.close()
    ok(p.alive(), "pooler alive")
    p.stop()


def test_reload_discarding():
    """RELOAD (limits and the database's address) while a client canceled in
    the queue is still dropping its request up to Sync; then the database is
    removed under it: it finishes its request and keeps working."""
    mport = free_port()
    p = Pooler("integ_reload_discard", admin_users="postgres", pool_size=1, max_overflow=0, pool_timeout=30,
                  metrics_port=mport)
    holder = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    q1(holder, "select 1")
    w, wpid, wkey = keyed_session(p.port)
    w.sendall(parse("d1", "select $1::int + 1") + bind("d1", [1]))
    ok(wait_for(lambda: pool_metric(metrics(mport), "clients_waiting") == 1), "queued with Parse/Bind, no Sync")
    cancel(p.port, wpid, wkey)
    t, body = read_msg(w)
    ok(t == b"E" and sqlstate_of(body) == "57014", "57014 at once; it drops up to its Sync")
    adm = admin(p)
    row = pool_row(adm, "postgres", "postgres")
    ok(row["cl_waiting"] == 0 and row["cl_active"] == 2,
       "SHOW POOLS counts the canceled client as active, not waiting (it was counted nowhere)", row)
    adm.close()
    edit_ini(p, dbs={"postgres": "host=127.0.0.1 port=%d" % PG_PORT}, pool_size=2)
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD meanwhile (new address, pool_size 2)")
    w.sendall(execute() + SYNC)
    r = until_ready(w)
    ok(types(r) == "Z", "its Sync: ReadyForQuery, nothing else", types(r))
    r = send(w, parse("d1", "select $1::int + 1"), bind("d1", [1]), execute(), SYNC)
    ok(types(r) == "12DCZ" and rows(r) == ["2"], "it prepares d1 afresh on a server at the new address",
       (types(r), errors(r)))
    holder.commit()
    w.sendall(parse("d2", "select 5") + bind("d2"))
    wait_for(lambda: linked_servers(p))          # mid-pipeline: the pooler gave it a server
    edit_ini(p, drop_dbs=("postgres",))
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD removing the database mid-pipeline")
    w.sendall(execute() + bind("d1", [9]) + execute() + SYNC)
    r = until_ready(w)
    ok(types(r) == "12DC2DCZ" and rows(r) == ["5", "10"],
       "the pipeline finishes: removed database, connected client keeps working", (types(r), errors(r)))
    w.close()
    holder.close()
    ok(p.alive(), "pooler alive")
    p.stop()


def test_modes_per_database():
    """One pooler, one database in session mode and one in transaction mode,
    the same psycopg 3 and pgbench -M prepared clients on both."""
    sess = "host=%s port=%d dbname=appdb pool_mode=session" % (PG_HOST, PG_PORT)
    tx = "host=%s port=%d dbname=appdb pool_mode=transaction" % (PG_HOST, PG_PORT)
    pgbench_init()
    p = Pooler("integ_modes", dbs={"sess": sess, "tx": tx}, pool_size=2, max_overflow=0, pool_timeout=20)
    out = {}
    for db in ("sess", "tx"):
        c = psycopg.connect(host="127.0.0.1", port=p.port, user="app", password="app-secret", dbname=db,
                            autocommit=True, prepare_threshold=0, connect_timeout=10)
        got = [c.execute("select %s::int + 5", (i,)).fetchone()[0] for i in range(3)]
        names = [r[0] for r in c.execute("select name from pg_prepared_statements").fetchall()]
        out[db] = (got, names)
        c.close()
    ok(out["sess"][0] == [5, 6, 7] and out["tx"][0] == [5, 6, 7], "prepared statements right in both modes", out)
    ok(out["sess"][1] and all(n.startswith("_pg3_") for n in out["sess"][1]),
       "session-mode database: the client's own names on the server", out["sess"][1])
    ok(out["tx"][1] and all(n.startswith("PERFOPT_") for n in out["tx"][1]),
       "transaction-mode database: pooler names", out["tx"][1])
    env = dict(os.environ, PGPASSWORD="app-secret")
    for db in ("sess", "tx"):
        r = subprocess.run(["pgbench", "-n", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-M", "prepared",
                            "-S", "-c", "2", "-j", "2", "-T", "2", db], capture_output=True, text=True, env=env,
                           timeout=60)
        ok(r.returncode == 0 and "number of failed transactions: 0" in r.stdout,
           "pgbench -M prepared -S on the %s database" % db, (r.stdout + r.stderr)[-300:])
    ok(p.alive(), "pooler alive")
    p.stop()


def test_metrics_gauges():
    """The server gauges add up while a server is neither active, idle nor
    connecting (a slow reset in session mode), and PAUSE shows."""
    mport = free_port()
    p = Pooler("integ_gauges", admin_users="postgres", pool_size=2, max_overflow=0, pool_mode="session",
                  server_reset_query="select pg_advisory_xact_lock_shared(4402)", metrics_port=mport)
    gate = LockGate(4402, db="postgres")
    c = p.connect(user="postgres", password=None, db="postgres")
    q1(c, "select 1")
    c.close()
    wait_for(lambda: waiting_on_lock("postgres", "postgres") == 1)     # the reset query runs, held
    m = metrics(mport)
    gate.open()
    parts = [pool_metric(m, "server_connections_" + k) for k in ("active", "idle", "connecting", "tested")]
    ok(pool_metric(m, "server_connections") == 1 and parts == [0, 0, 0, 1],
       "during the reset query: server_connections 1 = tested 1 (it was counted in no gauge)", parts)
    ok(wait_for(lambda: pool_metric(metrics(mport), "server_connections_idle") == 1), "then idle")
    ok(pool_metric(metrics(mport), "pool_paused") == 0, "pool_paused 0")
    ok(console(p, "PAUSE") == "PAUSE", "PAUSE")
    m = metrics(mport)
    ok(pool_metric(m, "pool_paused") == 1 and pool_metric(m, "server_connections") == 0,
       "pool_paused 1, no server", m)
    ok(console(p, "RESUME") == "RESUME" and pool_metric(metrics(mport), "pool_paused") == 0, "RESUME: pool_paused 0")
    p.stop()


def test_chaos():
    """Everything at once for a few seconds: psycopg 3 clients running
    prepared statements (some in pipelines), cancels aimed at them, RELOADs
    flipping pool_size and the address, PAUSE/RESUME cycles.  Every answer
    is either right or a 57014 cancel; nothing is mismatched or lost."""
    sock = "host=%s port=%d" % (PG_HOST, PG_PORT)
    tcp = "host=127.0.0.1 port=%d" % PG_PORT
    p = Pooler("integ_chaos", admin_users="postgres", dbs={"postgres": sock}, pool_size=3, max_overflow=0,
                  pool_timeout=30, max_prepared_statements=8)
    stop = time.time() + 6
    wrong, unexpected, counts = [], [], {"ok": 0, "canceled": 0}
    lock = threading.Lock()

    targets = []

    def client(k):
        c = pg3_as(p)
        # every statement prepared before the cancels start: psycopg 3.1 takes
        # a Parse aborted inside a pipeline for prepared (26000 later, against
        # PostgreSQL directly too), and a client canceled while queued has its
        # whole pipeline, Parse included, dropped
        for j in range(12):
            c.execute("select %%s::int + %d, pg_sleep(%%s::float8)" % j, (0, 0))
        with lock:
            targets.append(c)
        i = 0
        while time.time() < stop:
            i += 1
            q = "select %%s::int + %d, pg_sleep(%%s::float8)" % (i % 12)
            try:
                if i % 5 == 0:
                    with c.pipeline():
                        curs = [c.execute(q, (j, 0)) for j in range(4)]
                    got = [cu.fetchone()[0] for cu in curs]
                    want = [j + i % 12 for j in range(4)]
                else:
                    got = c.execute(q, (k, 0.01 if i % 3 else 0)).fetchone()[0]
                    want = k + i % 12
                with lock:
                    if got != want:
                        wrong.append((k, i, got, want))
                    counts["ok"] += 1
            except (psycopg.errors.QueryCanceled, psycopg.errors.PipelineAborted):
                with lock:
                    counts["canceled"] += 1
            except psycopg.Error as e:
                with lock:
                    unexpected.append("%s %s" % (e.sqlstate, str(e).strip()[:120]))
                return
        with lock:
            targets.remove(c)
        c.close()

    def canceler(conns):
        n = 0
        while time.time() < stop:
            n += 1
            with lock:
                some = conns + targets[n % 5:n % 5 + 1]
            for c in some:
                c.cancel()
            time.sleep(0.07)

    def operator():
        a = admin(p)
        n = 0
        while time.time() < stop:
            n += 1
            edit_ini(p, dbs={"postgres": tcp if n % 2 else sock}, pool_size=2 + n % 3)
            cmd(a, "RELOAD")
            time.sleep(0.2)
            if n % 3 == 0:
                cmd(a, "PAUSE postgres")
                time.sleep(0.1)
                cmd(a, "RESUME postgres")
            time.sleep(0.2)
        a.close()

    victims = [pg3_as(p) for _ in range(2)]
    for v in victims:
        v.execute("select %s::int * 2, pg_sleep(0.05)", (0,))
    vthreads = []
    for v in victims:
        def loop(v=v):
            i = 0
            while time.time() < stop:
                i += 1
                try:
                    got = v.execute("select %s::int * 2, pg_sleep(0.05)", (i,)).fetchone()[0]
                    with lock:
                        if got != i * 2:
                            wrong.append(("victim", i, got))
                        counts["ok"] += 1
                except psycopg.errors.QueryCanceled:
                    with lock:
                        counts["canceled"] += 1
                except psycopg.Error as e:
                    with lock:
                        unexpected.append("%s %s" % (e.sqlstate, str(e).strip()[:120]))
                    return
        vthreads.append(threading.Thread(target=loop))
    ths = [threading.Thread(target=client, args=(k,)) for k in range(5)]
    ths += vthreads + [threading.Thread(target=canceler, args=(victims,)), threading.Thread(target=operator)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    ok(not wrong, "chaos: no wrong result (%d right, %d canceled)" % (counts["ok"], counts["canceled"]), wrong[:3])
    ok(not unexpected, "chaos: no error but 57014", unexpected[:3])
    ok(counts["ok"] > 0, "chaos: work done", counts)
    exercised(counts["canceled"], "chaos: cancels landed on running statements", "canceled")
    for v in victims:
        v.close()
    c = pg3_as(p)
    got = [c.execute("select %s::int + 1", (i,)).fetchone()[0] for i in range(3)]
    ok(got == [1, 2, 3] and p.alive(), "the pooler serves prepared statements afterwards")
    log = open(p.log).read()
    ok("does not match" not in log and "where a reply to" not in log, "no reply/FIFO mismatch logged")
    c.close()
    p.stop()


TESTS = [("integ_reload_mode", test_reload_pool_mode), ("integ_cancel_prepared", test_cancel_prepared),
         ("integ_cancel_queued", test_cancel_queued_prepared), ("integ_pause", test_pause_prepared),
         ("integ_reload_address", test_reload_address_prepared),
         ("integ_cancel_move", test_cancel_after_move), ("integ_reload_rescue", test_reload_rescues_login), ("integ_recycle", test_recycle_prepared),
         ("integ_sigint", test_sigint_prepared),
         ("integ_admin", test_admin_prepared), ("integ_memory", test_prepared_memory),
         ("integ_restart_only", test_reload_restart_only), ("integ_pause_cancel", test_pause_cancel),
         ("integ_reload_discarding", test_reload_discarding), ("integ_modes", test_modes_per_database),
         ("integ_metrics_gauges", test_metrics_gauges), ("integ_chaos", test_chaos)]
