"""tests/pooler/test_defer_begin.py: transaction mode's deferred BEGIN
(pooler/txn/deferred_begin.c, setting defer_begin).  A plain BEGIN is answered
by the pooler; the server sees the transaction start with the client's first
statement, and an empty transaction never reaches it.  Proven by what the
server sees (pg_stat_activity: backends, their state, state_change and last
query), by the exact replies a raw protocol client gets, and by the data."""
import socket
import struct
import threading
import time

import psycopg
import psycopg2

from harness import (Pooler, console, direct, err_code, ok, pgbench, pgbench_init, q1, queued, refused_setting,
                     tpcb_sums, wait_for)
from wire import (SYNC, bind, describe, errors_in, execute, msg, parse, rows, session, simple_query, status, tag,
                  types, until_ready, z)


def xq(s, sql, args=()):
    """sql through the extended protocol, as libpq's PQexecParams sends it."""
    s.sendall(parse("", sql) + bind("", args) + describe("", b"P") + execute() + SYNC)
    return until_ready(s)


def activity(user="app", db="appdb"):
    """(pid, state, state_change, query) of every backend the pooler holds."""
    c = direct()
    try:
        with c.cursor() as cur:
            cur.execute("select pid, state, state_change, query from pg_stat_activity "
                        "where usename = %s and datname = %s and backend_type = 'client backend' "
                        "and pid <> pg_backend_pid() order by pid", (user, db))
            return cur.fetchall()
    finally:
        c.close()


def in_xact():
    return sum(1 for a in activity() if a[1] == "idle in transaction")


def table(name):
    d = direct("appdb")
    with d.cursor() as cur:
        cur.execute("drop table if exists %s; create table %s (v int)" % (name, name))
        cur.execute("grant all on %s to app" % name)
    d.close()


def count(name):
    d = direct("appdb")
    n = q1(d, "select count(*) from %s" % name)
    d.close()
    return n


def test_begin_local():
    """BEGIN answered here: no server held, nothing run on the server."""
    table("dfb_t")
    p = Pooler("defer_local", pool_size=2, max_overflow=0)
    s = session(p.port, "app", "appdb")
    simple_query(s, "select 1")                       # the pool's one server exists now
    wait_for(lambda: len(activity()) == 1 and activity()[0][1] == "idle")
    before = activity()
    r = simple_query(s, "BEGIN")
    ok(types(r) == "CZ" and tag(r) == ["BEGIN"] and status(r) == "T",
          "plain BEGIN answered: CommandComplete BEGIN, ReadyForQuery T", r)
    time.sleep(0.3)
    after = activity()
    ok(after == before, "after BEGIN the server saw nothing: same backend, state, state_change, query",
          (before, after))
    ok(in_xact() == 0, "no server 'idle in transaction' while the client sits after BEGIN")
    r = simple_query(s, "insert into dfb_t values (1)")
    ok(tag(r) == ["INSERT 0 1"] and status(r) == "T", "first statement runs inside the transaction", r)
    ok(in_xact() == 1, "now the server is 'idle in transaction' for this client", activity())
    ok(count("dfb_t") == 0, "not visible to others before COMMIT")
    r = simple_query(s, "insert into dfb_t values (2)")
    r = simple_query(s, "COMMIT")
    ok(tag(r) == ["COMMIT"] and status(r) == "I", "COMMIT ends it: ReadyForQuery I", r)
    ok(count("dfb_t") == 2, "BEGIN; 2 statements; COMMIT: both rows committed", count("dfb_t"))
    ok(wait_for(lambda: in_xact() == 0), "server released after COMMIT")
    # now() is the transaction's start: the first statement's, and the same for the next one
    simple_query(s, "begin")
    time.sleep(0.3)
    r = simple_query(s, "select (now() > statement_timestamp() - interval '0.2 s')::text")
    r2 = simple_query(s, "select (now() < statement_timestamp())::text")
    simple_query(s, "commit")
    ok(rows(r) == ["true"] and rows(r2) == ["true"],
          "now() is when the first statement reached the server, constant after", (rows(r), rows(r2)))
    s.close()
    p.stop()


def test_rollback_and_forms():
    table("dfb_r")
    p = Pooler("defer_forms", pool_size=2, max_overflow=0)
    s = session(p.port, "app", "appdb")
    simple_query(s, "begin")
    simple_query(s, "insert into dfb_r values (1)")
    r = simple_query(s, "rollback")
    ok(tag(r) == ["ROLLBACK"] and status(r) == "I" and count("dfb_r") == 0,
          "BEGIN; INSERT; ROLLBACK discards the row", (r, count("dfb_r")))
    plain = ["begin work", "  START   TRANSACTION ; ", "Begin Transaction;", "BEGIN\n"]
    for sql in plain:
        r = simple_query(s, sql)
        held = in_xact()
        e = simple_query(s, "end")
        ok(status(r) == "T" and held == 0 and tag(e) == ["COMMIT"] and status(e) == "I",
              "%r deferred, END answered COMMIT" % sql, (r, held, e))
    for sql, want in [("abort", "ROLLBACK"), ("COMMIT WORK", "COMMIT"), ("rollback transaction;", "ROLLBACK")]:
        simple_query(s, "begin")
        r = simple_query(s, sql)
        ok(tag(r) == [want] and status(r) == "I", "%r after a deferred BEGIN: %s" % (sql, want), r)
    # a BEGIN arriving in pieces is awaited, then answered here
    m = msg(b"Q", z("  begin"))
    s.sendall(m[:8])
    time.sleep(0.2)
    s.sendall(m[8:])
    r = until_ready(s)
    held = in_xact()
    simple_query(s, "commit")
    ok(tag(r) == ["BEGIN"] and status(r) == "T" and held == 0, "a BEGIN sent in two pieces: deferred", r)
    passed = ["BEGIN; SELECT 1", "/* c */ BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ", "begin;;"]
    for sql in passed:
        r = simple_query(s, sql)
        held = wait_for(lambda: in_xact() == 1)
        simple_query(s, "rollback")
        ok(status(r) == "T" and held, "%r goes to the server as before (idle in transaction)" % sql, r)
    ok(wait_for(lambda: in_xact() == 0), "nothing left in a transaction")
    s.close()
    p.stop()


def test_empty_transaction():
    """BEGIN; COMMIT never reaches a server, simple or extended."""
    p = Pooler("defer_empty", pool_size=1, max_overflow=0, admin_users="postgres")
    s = session(p.port, "app", "appdb")
    simple_query(s, "select 1")
    wait_for(lambda: activity() and activity()[0][1] == "idle")
    before = activity()
    for i in range(20):
        a, b = simple_query(s, "BEGIN"), simple_query(s, "COMMIT")
        c, d = xq(s, "BEGIN"), xq(s, "END")
        if i == 0:
            ok(types(c) == "12nCZ" and tag(c) == ["BEGIN"] and status(c) == "T",
                  "extended BEGIN answered: ParseComplete BindComplete NoData CommandComplete Z(T)", c)
            ok(types(d) == "12nCZ" and tag(d) == ["COMMIT"] and status(d) == "I",
                  "extended END answered: ... CommandComplete COMMIT Z(I)", d)
            ok(tag(a) == ["BEGIN"] and tag(b) == ["COMMIT"] and status(b) == "I", "simple BEGIN; COMMIT", (a, b))
    time.sleep(0.3)
    ok(activity() == before, "40 empty transactions: the server's backend never ran anything",
          (before, activity()))
    stats = [r for r in console(p, "SHOW STATS") if r["database"] == "appdb"]
    ok(stats and stats[0]["total_xact_count"] >= 40 and stats[0]["total_query_count"] >= 81,
          "local BEGIN/COMMIT still count as transactions and queries in SHOW STATS", stats)
    simple_query(s, "BEGIN")
    states = [r["state"] for r in console(p, "SHOW CLIENTS") if r["database"] == "appdb"]
    simple_query(s, "ROLLBACK")
    ok(states == ["idle in transaction"], "SHOW CLIENTS: a client after a deferred BEGIN is idle in transaction",
          states)
    s.close()
    p.stop()


def test_extended():
    table("dfb_x")
    p = Pooler("defer_ext", pool_size=2, max_overflow=0)
    s = session(p.port, "app", "appdb")
    r = xq(s, "BEGIN")
    held = in_xact()
    r1 = xq(s, "insert into dfb_x values ($1)", (7,))
    r2 = xq(s, "select count(*) from dfb_x")
    ok(status(r) == "T" and held == 0 and types(r1) == "12nCZ" and status(r1) == "T" and rows(r2) == ["1"],
          "extended BEGIN, then extended statements inside the transaction", (r, held, r1, r2))
    ok(count("dfb_x") == 0, "not committed yet")
    r = xq(s, "COMMIT")
    ok(status(r) == "I" and count("dfb_x") == 1, "extended COMMIT commits", r)
    # simple BEGIN, extended statements; extended BEGIN, simple statements
    simple_query(s, "BEGIN")
    r1 = xq(s, "insert into dfb_x values ($1)", (8,))
    r2 = simple_query(s, "rollback")
    xq(s, "BEGIN")
    r3 = simple_query(s, "insert into dfb_x values (9)")
    r4 = xq(s, "COMMIT")
    ok(status(r1) == "T" and tag(r2) == ["ROLLBACK"] and status(r3) == "T" and status(r4) == "I",
          "mixed simple and extended around a deferred BEGIN", (r1, r2, r3, r4))
    ok(count("dfb_x") == 2, "rolled back row absent, committed ones present", count("dfb_x"))
    # a pipeline of two batches behind the BEGIN, one write
    xq(s, "BEGIN")
    s.sendall(parse("", "select 1") + bind("") + execute() + SYNC + parse("", "select 2") + bind("") + execute() +
              SYNC)
    a, b = until_ready(s), until_ready(s)
    simple_query(s, "commit")
    ok(rows(a) == ["1"] and rows(b) == ["2"] and status(a) == "T" and status(b) == "T",
          "pipelined batches after a deferred BEGIN", (a, b))
    # psycopg 3 with server-side prepared statements, in transactions
    c = psycopg.connect(host="127.0.0.1", port=p.port, user="app", password="app-secret", dbname="appdb",
                        prepare_threshold=0, connect_timeout=10)
    for i in range(5):
        c.execute("insert into dfb_x values (%s)", (100 + i,))
        c.commit()
    got = c.execute("select count(*) from dfb_x where v >= 100").fetchone()[0]
    c.rollback()
    c.close()
    ok(got == 5 and count("dfb_x") == 7, "psycopg 3 (named prepared statements) transactions commit", got)
    s.close()
    p.stop()


def test_errors():
    p = Pooler("defer_err", pool_size=2, max_overflow=0)
    s = session(p.port, "app", "appdb")
    simple_query(s, "begin")
    deferred = in_xact() == 0
    r = simple_query(s, "select 1/0")
    r2 = simple_query(s, "select 1")
    r3 = simple_query(s, "commit")
    ok(deferred and errors_in(r) == ["22012"] and status(r) == "E" and errors_in(r2) == ["25P02"] and
          tag(r3) == ["ROLLBACK"] and status(r3) == "I",
          "error inside a deferred transaction: 22012, then 25P02, COMMIT answers ROLLBACK", (r, r2, r3))
    simple_query(s, "begin")
    r = xq(s, "select 1/0")
    r2 = xq(s, "rollback")
    ok(errors_in(r) == ["22012"] and status(r) == "E" and status(r2) == "I",
          "extended error then ROLLBACK", (r, r2))
    ok(wait_for(lambda: in_xact() == 0), "no server left in a transaction")
    # isolation level given with BEGIN: not deferred
    r = simple_query(s, "BEGIN ISOLATION LEVEL SERIALIZABLE")
    held = wait_for(lambda: in_xact() == 1)
    r2 = simple_query(s, "SHOW transaction_isolation")
    simple_query(s, "commit")
    ok(held and rows(r2) == ["serializable"], "BEGIN ISOLATION LEVEL SERIALIZABLE passed through: serializable",
          (r, held, r2))
    # SET TRANSACTION as the first statement after a deferred BEGIN still works
    simple_query(s, "begin")
    r = simple_query(s, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    r2 = simple_query(s, "SHOW transaction_isolation")
    simple_query(s, "commit")
    ok(errors_in(r) == [] and rows(r2) == ["repeatable read"],
          "SET TRANSACTION right after a deferred BEGIN applies", (r, r2))
    simple_query(s, "begin")
    r2 = simple_query(s, "SHOW transaction_isolation")
    simple_query(s, "commit")
    ok(rows(r2) == ["read committed"], "deferred BEGIN: default isolation", r2)
    # a Parse too short to hold a name, a text and a type count, after a
    # deferred BEGIN (the fuzzer found it read past the message)
    simple_query(s, "begin")
    s.sendall(b"P\0\0\0\x05\0" + SYNC)
    r = until_ready(s)
    r2 = simple_query(s, "rollback")
    ok(errors_in(r) == ["08P01"] and status(r2) == "I" and p.alive(),
          "malformed short Parse after a deferred BEGIN: 08P01 from the server, the session goes on", (r, r2))
    s.close()
    p.stop()


def test_disconnect_and_limits():
    p = Pooler("defer_leave", pool_size=2, max_overflow=0, pool_timeout=1)
    s0 = session(p.port, "app", "appdb")
    simple_query(s0, "select 1")
    wait_for(lambda: len(activity()) == 1)
    pids = [a[0] for a in activity()]
    for i in range(30):
        s = session(p.port, "app", "appdb")
        simple_query(s, "BEGIN")
        s.close()
    # more clients in deferred transactions than pool_size: none waits or holds a server
    held = [session(p.port, "app", "appdb") for _ in range(10)]
    rs = [simple_query(h, "BEGIN") for h in held]
    time.sleep(0.3)
    ok(all(status(r) == "T" for r in rs) and [a[0] for a in activity()] == pids and in_xact() == 0,
          "30 clients gone after BEGIN, 10 sitting after BEGIN (pool_size 2): still one idle server",
          activity())
    for h in held:
        simple_query(h, "rollback")
        h.close()
    # gone after BEGIN and a statement: rolled back, the server reused
    s = session(p.port, "app", "appdb")
    simple_query(s, "begin")
    simple_query(s, "select 1")
    s.close()
    ok(wait_for(lambda: in_xact() == 0 and len(activity()) <= 2),
          "client gone inside a started transaction: server rolled back, none leaked", activity())
    # pool_timeout while the first statement waits: 53300, the transaction is gone
    hold = [session(p.port, "app", "appdb") for _ in range(2)]
    for h in hold:
        simple_query(h, "begin")
        simple_query(h, "select 1")
    s = session(p.port, "app", "appdb")
    r0 = simple_query(s, "begin")
    r = simple_query(s, "select 1")
    ok(status(r0) == "T" and errors_in(r) == ["53300"],
          "pool full: BEGIN answered, the first statement gets 53300 after pool_timeout", r)
    for h in hold:
        simple_query(h, "rollback")
        h.close()
    s0.close()
    ok(p.alive(), "pooler alive")
    p.stop()


def test_cancel_while_queued():
    p = Pooler("defer_cancel", pool_size=1, max_overflow=0, pool_timeout=120, admin_users="postgres")
    hold = p.connect(autocommit=False)
    q1(hold, "select 1")                  # holds the only server
    c = p.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("begin")
    err = []

    def run():
        try:
            cur.execute("select 42")
        except psycopg2.Error as e:
            err.append(e.pgcode)
    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: queued(p) == 1)     # a cancel before the query is queued would find nothing to cancel
    c.cancel()
    t.join(60)
    st = c.get_transaction_status()
    code2, _ = err_code(lambda: cur.execute("select 1"))
    cur.execute("rollback")
    st2 = c.get_transaction_status()
    ok(err == ["57014"] and st == psycopg2.extensions.TRANSACTION_STATUS_INERROR and code2 == "25P02" and
          st2 == psycopg2.extensions.TRANSACTION_STATUS_IDLE,
          "canceled while queued inside a deferred transaction: 57014, failed (25P02) until ROLLBACK",
          (err, st, code2, st2))
    hold.rollback()
    ok(q1(c, "select 7") == 7, "the client works on")
    c.close()
    hold.close()
    p.stop()


def fake_postgres(seen):
    """A server that logs anyone in, answers Queries, and answers the first
    Parse/Bind/Execute it gets (a deferred BEGIN) with an ErrorResponse."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def reply(c, t, body=b""):
        c.sendall(t + struct.pack("!I", len(body) + 4) + body)

    def serve():
        srv.settimeout(10)
        try:
            c, _ = srv.accept()
            c.settimeout(10)
            buf = b""
            while len(buf) < 4 or len(buf) < struct.unpack("!I", buf[:4])[0]:
                buf += c.recv(4096)
            buf = buf[struct.unpack("!I", buf[:4])[0]:]
            reply(c, b"R", struct.pack("!I", 0))
            reply(c, b"K", struct.pack("!II", 4242, 1))
            reply(c, b"Z", b"I")
            failed = False
            while True:
                while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!I", buf[1:5])[0]:
                    n = 1 + struct.unpack("!I", buf[1:5])[0]
                    t, body, buf = buf[:1], buf[5:n], buf[n:]
                    seen.append((t.decode(), body))
                    if failed:
                        continue        # skipping to a Sync, as PostgreSQL does
                    if t == b"Q":
                        reply(c, b"I" if body == b";\0" else b"C", b"" if body == b";\0" else b"SELECT 0\0")
                        reply(c, b"Z", b"I")
                    elif t == b"E":
                        reply(c, b"1")
                        reply(c, b"2")
                        reply(c, b"E", b"SERROR\0C53200\0Mout of memory for BEGIN\0\0")
                        failed = True
                data = c.recv(65536)
                if not data:
                    seen.append(("closed", b""))
                    return
                buf += data
        except OSError as e:
            seen.append(("error", str(e).encode()))
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t


def test_begin_fails_on_server():
    seen = []
    srv, t = fake_postgres(seen)
    p = Pooler("defer_fail", pool_size=1, max_overflow=0,
                  dbs={"appdb": "host=127.0.0.1 port=%d" % srv.getsockname()[1]})
    s = session(p.port, "app", "appdb")
    r = simple_query(s, "BEGIN")
    s.sendall(msg(b"Q", z("insert into t values (1)")))
    got = until_ready(s)
    t.join(60)
    ok(status(r) == "T" and errors_in(got) == ["53200"] and got[-1][0] == "closed" and
          b"SFATAL" in got[0][1] and b"deferred BEGIN failed" in got[0][1],
          "the server refuses the deferred BEGIN: the client gets FATAL 53200 and is closed, "
          "never a ReadyForQuery saying it is in a transaction", got)
    kinds = "".join(k[0] for k, _ in seen if k != "closed")
    ok(seen and seen[-1][0] == "closed" and "PBEQ" in kinds,
          "the BEGIN went unsynced ahead of the statement, the server connection was closed", seen)
    ok(p.alive(), "pooler alive")
    p.stop()
    srv.close()


def test_off_and_session():
    p = Pooler("defer_off", pool_size=2, max_overflow=0, defer_begin="off")
    s = session(p.port, "app", "appdb")
    r = simple_query(s, "BEGIN")
    held = wait_for(lambda: in_xact() == 1)
    simple_query(s, "commit")
    ok(status(r) == "T" and held, "defer_begin = off: BEGIN holds a server idle in transaction", r)
    s.close()
    p.stop()
    p = Pooler("defer_session", pool_mode="session", pool_size=2, max_overflow=0)
    s = session(p.port, "app", "appdb")
    r = simple_query(s, "BEGIN")
    held = wait_for(lambda: in_xact() == 1)
    simple_query(s, "commit")
    ok(status(r) == "T" and held, "session mode: BEGIN goes to the server (defer_begin ignored)", r)
    s.close()
    p.stop()
    p = Pooler("defer_show", admin_users="postgres", defer_begin="off")
    cfg = {r["key"]: r["value"] for r in console(p, "SHOW CONFIG")}
    ok(cfg.get("defer_begin") == "off", "SHOW CONFIG lists defer_begin", cfg.get("defer_begin"))
    p.stop()


def test_bad_value():
    refused_setting("defer_bad", [], "defer_begin", "maybe")


def test_pgbench():
    pgbench_init()
    p = Pooler("defer_bench", pool_size=4, max_overflow=0, admin_users="postgres")
    for mode in ("simple", "extended"):
        # -n: no vacuum, and pgbench_history is not truncated between the runs
        r = pgbench(p.port, "-n", "-c", "16", "-j", "2", "-t", "40", "-M", mode)
        good = r.returncode == 0 and "number of failed transactions: 0" in r.stdout and "tps = " in r.stdout
        ok(good, "pgbench TPC-B -M %s through deferred BEGIN: no failures" % mode, (r.stdout + r.stderr)[-400:])
    a, b, t, h, n = tpcb_sums()
    ok(a == b == t == h and n == 2 * 16 * 40, "TPC-B sums consistent (accounts = branches = tellers = history)",
          (a, b, t, h, n))
    ok(wait_for(lambda: in_xact() == 0), "no server left idle in transaction")
    p.stop()


TESTS = [("defer_local", test_begin_local), ("defer_forms", test_rollback_and_forms),
         ("defer_empty", test_empty_transaction), ("defer_extended", test_extended),
         ("defer_errors", test_errors), ("defer_disconnect", test_disconnect_and_limits),
         ("defer_cancel", test_cancel_while_queued), ("defer_off", test_off_and_session),
         ("defer_bad_value", test_bad_value), ("defer_server_error", test_begin_fails_on_server),
         ("defer_pgbench", test_pgbench)]
