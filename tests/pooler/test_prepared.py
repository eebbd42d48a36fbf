"""tests/pooler/test_prepared.py: named prepared statements in transaction
mode (pooler/prepared*.c).  Real clients (pgbench
-M prepared, psycopg 3 with prepare_threshold=0) whose transactions land on
different server connections, and a raw protocol client that checks the
exact sequence of replies to pipelines, errors, Close and re-Parse.  What
each server connection holds is read from pg_prepared_statements on that
very connection (a transaction through the pooler pins it)."""
import os
import struct
import subprocess

import psycopg
import psycopg2

from harness import (BIN, KillProxy, Pooler, TMP, direct, failed_count, ok, pgbench, pgbench_init, q1, run_parallel,
                     transactions_done)
from wire import (FLUSH, SYNC, bind, close, describe, errors, execute, msg, parse, read_msg, recv_all, rows, send,
                  session, sqlstate_of, types, z)


# ---- raw protocol client ----


# ---- helpers ----

def pg3(p, **kw):
    return psycopg.connect(host="127.0.0.1", port=p.port, user="app", password="app-secret",
                           dbname="appdb", autocommit=True, prepare_threshold=0, connect_timeout=10, **kw)


def held_statements(p, n, user="app", db="appdb", password="app-secret"):
    """Pin n server connections with open transactions; for each, its pid and
    its (name, statement) prepared statements."""
    conns, out = [], []
    try:
        for _ in range(n):
            c = psycopg2.connect(host="127.0.0.1", port=p.port, user=user, password=password, dbname=db,
                                 connect_timeout=10)
            c.autocommit = False
            conns.append(c)
            with c.cursor() as cur:
                cur.execute("select pg_backend_pid()")
                pid = cur.fetchone()[0]
                cur.execute("select name, statement from pg_prepared_statements order by name")
                out.append((pid, cur.fetchall()))
    finally:
        for c in conns:
            c.rollback()
            c.close()
    return out


# ---- tests ----

def test_pgbench_prepared():
    pgbench_init()
    p = Pooler("prep_pgbench", pool_size=2, max_overflow=0, pool_timeout=30)
    # pgbench 15 prepares each command with a blocking PQprepare at its first
    # use, mid-transaction for TPC-B: a thread blocked on a client waiting for
    # a server would stall the clients that hold the servers, so one thread each
    for label, extra in (("-S", ["-S"]), ("TPC-B", [])):
        r = pgbench(p.port, "-c", "8", "-j", "8", "-t", "40", "-M", "prepared", *extra)
        out = r.stdout + r.stderr
        ok(r.returncode == 0 and failed_count(r.stdout) == 0 and "tps = " in r.stdout,
              "pgbench -M prepared %s, 8 clients on 2 server connections: 0 failed transactions" % label,
              out[-500:])
        xacts = transactions_done(r.stdout)
        ok(xacts == 320, "pgbench -M prepared %s ran all its transactions (8 clients x 40)" % label, xacts)
        ok("does not exist" not in out and "already exists" not in out,
              "pgbench -M prepared %s: no prepared statement errors" % label, out[-300:])
    held = held_statements(p, 2)
    pids = [pid for pid, _ in held]
    ok(len(set(pids)) == 2, "both server connections inspected", pids)
    for pid, stmts in held:
        names = [n for n, _ in stmts]
        texts = [t for _, t in stmts]
        ok(all(n.startswith("PERFOPT_") for n in names),
              "backend %d holds only pooler-named statements (no client names)" % pid, names)
        ok(len(texts) == len(set(texts)), "backend %d: no statement prepared twice" % pid, texts)
        # pgbench -S has 1 statement, TPC-B 7 (BEGIN, 3 UPDATE, SELECT, INSERT, END)
        ok(len(stmts) <= 8 and any("pgbench_accounts" in t for t in texts),
              "backend %d holds at most the 8 distinct pgbench statements" % pid, len(stmts))
    d = direct("appdb")
    bal = q1(d, "select (select sum(abalance) from pgbench_accounts) = (select sum(bbalance) from pgbench_branches)"
                   " and (select sum(bbalance) from pgbench_branches) = (select sum(tbalance) from pgbench_tellers)")
    d.close()
    ok(bal, "TPC-B balances consistent after -M prepared through the pooler")
    p.stop()


def test_psycopg3():
    p = Pooler("prep_psycopg3", pool_size=2, max_overflow=0, pool_timeout=30)
    a = pg3(p)
    holder = p.connect(autocommit=False)
    pids, good = set(), True
    for i in range(20):
        if i % 2:
            q1(holder, "select 1")      # pins the server a just used (idle list is LIFO)
        row = a.execute("select %s::int * 2, pg_backend_pid()", (i,)).fetchone()
        row2 = a.execute("select %s::text || 'x', pg_backend_pid()", (str(i),)).fetchone()
        good = good and row[0] == i * 2 and row2[0] == "%dx" % i
        pids.add(row[1])
        if i % 2:
            holder.rollback()
    ok(good, "psycopg 3 prepare_threshold=0: 40 prepared executions, every result right")
    ok(len(pids) == 2, "psycopg 3: its transactions landed on both server connections", pids)
    held = held_statements(p, 2)
    for pid, stmts in held:
        ok(not any(n.startswith("_pg3") for n, _ in stmts) and len(stmts) == 2,
              "backend %d holds the 2 statements under pooler names" % pid, stmts)
    with a.pipeline():
        curs = [a.execute("select %s::int + 10", (i,)) for i in range(6)]
        curs += [a.execute("select %s::int * 2, pg_backend_pid()", (i,)) for i in range(6)]
    got = [c.fetchone()[0] for c in curs]
    ok(got == [i + 10 for i in range(6)] + [i * 2 for i in range(6)],
          "psycopg 3 pipeline mode: 12 prepared executions before one Sync, results in order", got)
    holder.close()
    a.close()

    # many clients, several statements, concurrently on 2 server connections
    errs = []

    def worker(k):
        try:
            c = pg3(p)
            for i in range(30):
                q = ["select %s::int + 1", "select %s::int * 3", "select length(%s::text)",
                     "select %s::int - 7", "select -%s::int"][i % 5]
                want = [k + i + 1, (k + i) * 3, len(str(k + i)), k + i - 7, -(k + i)][i % 5]
                got = c.execute(q, (k + i if i % 5 != 2 else str(k + i),)).fetchone()[0]
                if got != want:
                    errs.append((k, i, got, want))
            c.close()
        except Exception as e:
            errs.append(repr(e))
    run_parallel(6, worker)
    ok(not errs, "psycopg 3: 6 clients x 30 prepared queries (5 statements) on 2 servers, all right", errs[:3])
    held = held_statements(p, 2)
    for pid, stmts in held:
        texts = [t for _, t in stmts]
        ok(len(texts) == len(set(texts)) and len(texts) <= 8,
              "backend %d: each statement once, shared by all clients" % pid, texts)
    p.stop()


def test_parse_error():
    p = Pooler("prep_parse_error", pool_size=1, max_overflow=0)
    s = session(p.port)
    r = send(s, parse("bad", "selec 1"), bind("bad"), execute(), SYNC)
    ok(types(r) == "EZ" and errors(r)[0][0] == "42601", "Parse with a syntax error: ErrorResponse, ReadyForQuery",
          (types(r), errors(r)))
    r = send(s, parse("bad", "select 41 + 1"), bind("bad"), execute(), SYNC)
    ok(types(r) == "12DCZ" and rows(r) == ["42"],
          "the failed name does not exist: re-Parse under it works", (types(r), rows(r)))
    r = send(s, parse("late", "select 1"), parse("worse", "select * from no_such_table"),
             bind("late"), execute(), SYNC)
    ok(types(r) == "1EZ" and errors(r)[0][0] == "42P01",
          "pipeline: first Parse ok, second fails, rest skipped until Sync", types(r))
    r = send(s, parse("worse", "select 7"), bind("late"), execute(), bind("worse"), execute(), SYNC)
    ok(types(r) == "12DC2DCZ" and rows(r) == ["1", "7"],
          "the statement parsed before the error stays; the failed one can be parsed again", (types(r), rows(r)))
    s.close()
    c = pg3(p)
    try:
        c.execute("selec %s", (1,))
        ok(False, "psycopg 3: bad SQL raises")
    except psycopg.errors.SyntaxError:
        ok(True, "psycopg 3: bad SQL prepared raises SyntaxError")
    ok(c.execute("select %s::int", (5,)).fetchone()[0] == 5, "psycopg 3: next prepared query fine")
    c.close()
    held = held_statements(p, 1, user="postgres", db="postgres", password=None)
    texts = [t for _, t in held[0][1]]
    ok("selec 1" not in texts and all(n.startswith("PERFOPT_") for n, _ in held[0][1]),
          "failed statements are not counted as prepared", held[0][1])
    p.stop()


def test_close_reparse():
    p = Pooler("prep_close", pool_size=1, max_overflow=0)
    s = session(p.port)
    r = send(s, parse("s1", "select 'first'"), bind("s1"), execute(), SYNC)
    ok(types(r) == "12DCZ" and rows(r) == ["first"], "Parse s1, Bind, Execute", (types(r), rows(r)))
    r = send(s, close("s1"), SYNC)
    ok(types(r) == "3Z", "Close s1 answered with CloseComplete", types(r))
    r = send(s, bind("s1"), execute(), SYNC)
    ok(types(r) == "EZ" and errors(r)[0] == ("26000", 'prepared statement "s1" does not exist'),
          "Bind of the closed s1: 26000 prepared statement \"s1\" does not exist", errors(r))
    r = send(s, parse("s1", "select 'second'"), bind("s1"), execute(), SYNC)
    ok(types(r) == "12DCZ" and rows(r) == ["second"], "re-Parse s1 with another query: new result",
          (types(r), rows(r)))
    r = send(s, close("never_prepared"), close("x", b"P"), SYNC)
    ok(types(r) == "33Z", "Close of an unknown statement and of a portal: CloseComplete each", types(r))
    r = send(s, parse("s1", "select 'third'"), bind("s1"), execute(), SYNC)
    ok(types(r) == "EZ" and errors(r)[0] == ("42P05", 'prepared statement "s1" already exists'),
          "Parse of an existing name: 42P05, rest skipped until Sync", (types(r), errors(r)))
    r = send(s, bind("s1"), execute(), SYNC)
    ok(types(r) == "2DCZ" and rows(r) == ["second"], "s1 still the second query", rows(r))
    r = send(s, describe("s1"), SYNC)
    ok(types(r) == "tTZ", "Describe s1: ParameterDescription, RowDescription", types(r))
    r = send(s, parse("d1", "select 'd1'"), parse("d2", "select 'd2'"), SYNC)
    r = send(s, msg(b"Q", z("deallocate d1")))
    ok(types(r) == "CZ" and r[0][1] == b"DEALLOCATE\0", "SQL DEALLOCATE of a client statement: DEALLOCATE, ReadyForQuery",
          r)
    r = send(s, msg(b"Q", z('DEALLOCATE PREPARE "d2";')))
    ok(types(r) == "CZ" and r[0][1] == b"DEALLOCATE\0", "DEALLOCATE PREPARE \"d2\"; likewise", r)
    r = send(s, bind("d1"), SYNC)
    ok(types(r) == "EZ" and errors(r)[0][0] == "26000", "the deallocated name is gone", errors(r))
    r = send(s, msg(b"Q", z("DEALLOCATE d1")))
    ok(types(r) == "EZ" and errors(r)[0] == ("26000", 'prepared statement "d1" does not exist'),
          "DEALLOCATE of an unknown name: the server's 26000", errors(r))
    r = send(s, parse("d3", "select 'd3'"), SYNC)
    r = send(s, msg(b"Q", z("BEGIN; SELECT 1/0")))
    r = send(s, msg(b"Q", z("DEALLOCATE d3")))
    ok(types(r) == "EZ" and errors(r)[0][0] == "25P02" and r[-1][1] == b"E",
          "DEALLOCATE in an aborted transaction fails as in PostgreSQL", (types(r), errors(r)))
    r = send(s, msg(b"Q", z("ROLLBACK")))
    r = send(s, bind("d3"), execute(), SYNC)
    ok(rows(r) == ["d3"], "... and the statement stays", rows(r))
    s.sendall(parse("bad", "selec") + FLUSH)
    t, body = read_msg(s)
    r = send(s, msg(b"Q", z("DEALLOCATE d3")), SYNC)
    ok(t == b"E" and sqlstate_of(body) == "42601" and types(r) == "Z",
          "DEALLOCATE sent after a Parse failed, before Sync: skipped as PostgreSQL skips it", (t, types(r)))
    r = send(s, bind("d3"), execute(), SYNC)
    ok(rows(r) == ["d3"], "... so the statement stays", rows(r))
    other = session(p.port)
    r = send(other, msg(b"Q", z("select 'free'")))
    ok(rows(r) == ["free"], "and the only server connection was released to another client", rows(r))
    other.close()
    r = send(s, msg(b"Q", z("DEALLOCATE ALL")))
    ok(types(r) == "CZ", "DEALLOCATE ALL from the client", types(r))
    r = send(s, parse("s1", "select 'fourth'"), bind("s1"), execute(), SYNC)
    ok(types(r) == "12DCZ" and rows(r) == ["fourth"], "after DEALLOCATE ALL the name is free again",
          (types(r), rows(r)))
    s.close()
    p.stop()


def test_max_prepared():
    p = Pooler("prep_max", pool_size=1, max_overflow=0, max_prepared_statements=2)
    c = pg3(p)
    qs = ["select %s::int + 100", "select %s::int + 200", "select %s::int + 300", "select %s::int + 400",
          "select %s::int + 500"]
    good = True
    for i in range(40):
        got = c.execute(qs[i % 5], (i,)).fetchone()[0]
        good = good and got == i + 100 * (i % 5 + 1)
    ok(good, "max_prepared_statements=2: 5 statements rotating, 40 results right")
    held = held_statements(p, 1)
    ok(len(held[0][1]) <= 2, "the server holds at most 2 statements", held[0][1])
    # psycopg 3 evicting from its own cache (prepared_max) deallocates with SQL
    e = pg3(p)
    e.prepared_max = 3
    good, err = True, None
    try:
        for i in range(36):
            got = e.execute(qs[i % 5].replace("+", "-"), (i,)).fetchone()[0]
            good = good and got == i - 100 * (i % 5 + 1)
    except Exception as x:
        good, err = False, repr(x)
    ok(good, "psycopg 3 with prepared_max=3 over 5 statements: its SQL DEALLOCATEs work, results right", err)
    e.close()
    s = session(p.port)
    r = send(s, parse("a", "select 'A'"), parse("b", "select 'B'"), parse("c", "select 'C'"),
             bind("a"), execute(), bind("b"), execute(), bind("c"), execute(), bind("a"), execute(), SYNC)
    ok(types(r) == "1112DC2DC2DC2DCZ" and rows(r) == ["A", "B", "C", "A"],
          "3 statements through a 2-statement cache in one pipeline", (types(r), rows(r)))
    s.close()
    c.close()
    p.stop()


def test_pipeline():
    p = Pooler("prep_pipeline", pool_size=2, max_overflow=0)
    s = session(p.port)
    r = send(s, parse("a", "select $1::int + 1", (23,)), parse("b", "select 'b' || $1", (25,)),
             bind("a", [1]), execute(), describe("b"), bind("b", ["x"]), execute(), bind("", [], ""), SYNC)
    ok(types(r) == "112DCtT2DCEZ" and rows(r) == ["2", "bx"],
          "pipeline Parse a, Parse b, Bind/Execute a, Describe/Bind/Execute b, bad Bind, Sync: exact replies",
          (types(r), rows(r)))
    # a second client prepares the same query: the server has it, ParseComplete comes from the pooler
    s2 = session(p.port)
    r = send(s2, bind("a"), execute(), parse("a2", "select 1"), SYNC)
    ok(types(r) == "EZ" and errors(r)[0] == ("26000", 'prepared statement "a" does not exist'),
          "another client's name is not visible: 26000, rest skipped until Sync", (types(r), errors(r)))
    s2.sendall(parse("a2", "select $1::int + 1", (23,)) + bind("a2", [9]) + execute() +
               parse("c", "select 'c'") + FLUSH)
    r = [read_msg(s2) for _ in range(5)]
    r = [(t.decode(), b) for t, b in r if t]
    ok(types(r) == "12DC1" and rows(r) == ["10"],
          "shared statement: pooler's ParseComplete first, then the server's replies, after Flush", (types(r), rows(r)))
    r = send(s2, bind("c"), execute(), SYNC)
    ok(types(r) == "2DCZ" and rows(r) == ["c"], "the pipeline completes with Sync", (types(r), rows(r)))
    # client 1's next transaction lands on the other server: our Parse goes first, swallowed
    hold = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    hp = q1(hold, "select pg_backend_pid()")
    r = send(s, bind("a", [41]), execute(), bind("b", ["y"]), execute(), msg(b"Q", z("select pg_backend_pid()")))
    ok(types(r) == "2DC2DCTDCZ" and rows(r)[:2] == ["42", "by"],
          "statements re-prepared on another server: replies exactly the client's", (types(r), rows(r)))
    ok(rows(r)[2] != str(hp), "that transaction ran on the other server", (rows(r), hp))
    hold.rollback()
    hold.close()
    # a Parse the server already has, then an error, in one pipeline: the synthesized reply stays in order
    r = send(s, parse("a3", "select $1::int + 1", (23,)), bind("a3", [1]), execute(),
             bind("nope"), execute(), parse("z", "select 1"), SYNC)
    ok(types(r) == "12DCEZ" and errors(r)[0][0] == "26000",
          "synthesized ParseComplete, then 26000, rest skipped until Sync", types(r))
    r = send(s, bind("z"), SYNC)
    ok(types(r) == "EZ", "a Parse skipped after an error does not exist", types(r))
    s.close()
    s2.close()
    p.stop()


def test_isolation():
    p = Pooler("prep_isolation", pool_size=1, max_overflow=0)
    a, b = session(p.port), session(p.port)
    r = send(a, parse("mine", "select 'A'"), SYNC)
    ok(types(r) == "1Z", "client A prepares 'mine'", types(r))
    r = send(b, bind("mine"), execute(), SYNC)
    ok(errors(r) and errors(r)[0] == ("26000", 'prepared statement "mine" does not exist'),
          "client B cannot Bind A's statement on the same server", errors(r))
    r = send(b, describe("mine"), SYNC)
    ok(types(r) == "EZ" and errors(r)[0][0] == "26000", "client B cannot Describe it either", errors(r))
    r = send(b, parse("mine", "select 'B'"), bind("mine"), execute(), SYNC)
    ok(rows(r) == ["B"], "client B's own 'mine' is its own query", rows(r))
    r = send(a, bind("mine"), execute(), SYNC)
    ok(rows(r) == ["A"], "client A's 'mine' unchanged", rows(r))
    r = send(b, msg(b"Q", z("select count(*) from pg_prepared_statements where name = 'mine'")))
    ok(rows(r) == ["0"], "client names never reach the server", rows(r))
    a.close()
    b.close()
    p.stop()


def test_prepared_off_and_session():
    p = Pooler("prep_off", pool_size=1, max_overflow=0, max_prepared_statements=0)
    s = session(p.port)
    r = send(s, parse("plain", "select 1"), SYNC)
    r2 = send(s, msg(b"Q", z("select name from pg_prepared_statements")))
    ok(types(r) == "1Z" and rows(r2) == ["plain"],
          "max_prepared_statements=0: names pass through unchanged", rows(r2))
    s.close()
    p.stop()
    p = Pooler("prep_session", pool_mode="session", pool_size=1, max_overflow=0)
    c = pg3(p)
    c.execute("select %s::int", (1,))
    names = [x[0] for x in c.execute("select name from pg_prepared_statements").fetchall()]
    ok(names and all(n.startswith("_pg3") for n in names),
          "session mode: the client's own names on its server", names)
    c.close()
    p.stop()
    bad = os.path.join(TMP, "prep_bad.ini")
    with open(bad, "w") as f:
        f.write("[databases]\nappdb = host=127.0.0.1\n[pooler]\nmax_prepared_statements = -1\n")
    r = subprocess.run([BIN, "-c", bad], capture_output=True, text=True, timeout=10)
    ok(r.returncode != 0 and "prep_bad.ini:4" in r.stderr and "max_prepared_statements" in r.stderr,
          "max_prepared_statements = -1 refused with file, line and key", r.stderr.strip())


def test_pre_ping_replay():
    """The pre-ping finds the handed-out connection dead after the client's
    named statements were already rewritten for it: they are sent again on
    another connection as if the first never saw them."""
    proxy = KillProxy()
    p = Pooler("prep_ping", dbs={"postgres": "host=127.0.0.1 port=%d dbname=postgres" % proxy.port},
                  pool_size=2, max_overflow=0, pool_pre_ping="on", pre_ping_interval=0)
    s = session(p.port)
    r = send(s, parse("a", "select 41 + 1"), bind("a"), execute(), SYNC)
    ok(rows(r) == ["42"], "statement a prepared", rows(r))
    proxy.armed = True
    r = send(s, parse("b", "select 'b'"), bind("b"), execute(), bind("a"), execute(), close("a"), SYNC)
    ok(proxy.killed == 1, "the idle connection was dropped at hand-out", proxy.killed)
    ok(types(r) == "12DC2DC3Z" and rows(r) == ["b", "42"],
          "replayed on another connection: Parse b not taken for a duplicate, a re-prepared, Close answered",
          (types(r), rows(r), errors(r)))
    r = send(s, bind("b"), execute(), bind("a"), SYNC)
    ok(types(r) == "2DCEZ" and errors(r)[0][0] == "26000",
          "afterwards b exists and a is closed, exactly once", (types(r), errors(r)))
    s.close()
    p.stop()
    proxy.close()


def test_bad_messages():
    p = Pooler("prep_bad", pool_size=1, max_overflow=0)
    keeper = session(p.port)
    r = send(keeper, parse("k", "select 'kept'"), bind("k"), execute(), SYNC)
    ok(rows(r) == ["kept"], "a well-behaved client prepared a statement", rows(r))
    bad = [("Parse declaring 3 parameter types, carrying none", msg(b"P", z("x") + z("select 1") + struct.pack("!H", 3))),
           ("Parse without a query terminator", msg(b"P", b"x\0select 1")),
           ("Bind whose statement name is not terminated", msg(b"B", b"\0stmt")),
           ("Describe of a statement with trailing bytes", msg(b"D", b"Sx\0junk")),
           ("Close of a statement with no terminator", msg(b"C", b"Sx"))]
    for desc, m in bad:
        s = session(p.port)
        s.sendall(parse("ok", "select 1") + m + SYNC)
        data, closed = recv_all(s)
        ok(b"C08P01" in data and closed, "named %s: 08P01 and closed" % desc, data[-120:])
        s.close()
    r = send(keeper, bind("k"), execute(), SYNC)
    ok(rows(r) == ["kept"], "the well-behaved client's statement still works", rows(r))
    ok(p.alive(), "pooler survived malformed prepared-statement messages")
    keeper.close()
    p.stop()


TESTS = [("prepared_pgbench", test_pgbench_prepared), ("prepared_psycopg3", test_psycopg3),
         ("prepared_parse_error", test_parse_error), ("prepared_close", test_close_reparse),
         ("prepared_max", test_max_prepared), ("prepared_pipeline", test_pipeline),
         ("prepared_isolation", test_isolation), ("prepared_bad", test_bad_messages),
         ("prepared_pre_ping", test_pre_ping_replay),
         ("prepared_off", test_prepared_off_and_session)]
