"""tests/pooler/test_cancel_races.py: CancelRequests that arrive at awkward
moments.  A client still queued for a server connection gets its request
canceled by the pooler itself (57014, then ReadyForQuery at its sync point,
the statement never reaches PostgreSQL); a cancel forwarded for a client
whose statement is just ending must never hit the next client's statement on
the same server connection.  Raw protocol sockets keep the timing exact;
psycopg2's conn.cancel() checks what a real driver sees."""

import threading
import time
import urllib.request

from harness import Pooler, direct, err_code, ok, q1, wait_for
from wire import cancel, errors_in, extended, free_port, keyed_session, msg, query, read_until


def waiting_clients(mport, db="postgres", user="postgres"):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('perfopt_pooler_clients_waiting{database="%s",user="%s"}' % (db, user)):
                return float(line.split()[-1])
    return None


def hold_server(p):
    """A client holding the pool's only server connection in an open transaction."""
    h = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    q1(h, "select 1")
    return h


def test_cancel_waiting():
    mport = free_port()
    p = Pooler("cancel_wait", pool_size=1, max_overflow=0, pool_timeout=20, metrics_port=mport)
    d = direct()
    q1(d, "drop table if exists cancel_wait_t; create table cancel_wait_t (a int); select 1")
    holder = hold_server(p)
    w = p.connect(user="postgres", password=None, db="postgres")
    result = {}

    def run():
        t0 = time.time()
        result["code"], result["msg"] = err_code(lambda: q1(w, "insert into cancel_wait_t values (1) returning a"))
        result["at"] = time.time()
    t = threading.Thread(target=run)
    t.start()
    ok(wait_for(lambda: waiting_clients(mport) == 1), "the second client is queued for the busy server")
    t0 = time.time()
    w.cancel()
    t.join(5)
    el = result.get("at", 99) - t0
    ok(result.get("code") == "57014" and "canceling statement due to user request" in result.get("msg", ""),
          "psycopg2 conn.cancel() of a queued client: QueryCanceled 57014 'canceling statement due to user request'",
          result)
    ok(el < 1.0, "the queued client's cancel answers within 1 s (no server needed)", round(el, 3))
    ok(waiting_clients(mport) == 0, "it left the wait queue", waiting_clients(mport))
    holder.commit()
    ok(q1(w, "select 43") == 43, "the canceled client's next query runs")
    ok(q1(d, "select count(*) from cancel_wait_t") == 0, "the canceled statement never reached PostgreSQL")
    holder.close()
    w.close()
    d.close()
    p.stop()


def test_cancel_waiting_extended():
    mport = free_port()
    p = Pooler("cancel_wait_ext", pool_size=1, max_overflow=0, pool_timeout=20, metrics_port=mport)
    holder = hold_server(p)
    s, pid, key = keyed_session(p.port)
    # extended protocol, Sync not sent yet: the error comes at once, ReadyForQuery only after Sync
    s.sendall(extended("select 1"))
    wait_for(lambda: waiting_clients(mport) == 1)
    cancel(p.port, pid, key)
    first = read_until(s, "E", timeout=1)
    ok(errors_in(first) == ["57014"], "queued Parse/Bind/Execute canceled: ErrorResponse 57014 at once", first)
    quiet = read_until(s, "Z", timeout=0.3)
    ok(quiet == [("timeout", b"")], "no ReadyForQuery before the client's Sync", quiet)
    s.sendall(extended("select 2") + msg(b"S"))
    after = read_until(s, "Z", timeout=2)
    ok([t for t, _ in after] == ["Z"] and after[-1][1] == b"I",
          "messages up to Sync dropped; Sync answered with ReadyForQuery idle", after)
    # a simple query cut in the middle of its message: dropped as its bytes arrive
    q = query("select 'never run'")
    s.sendall(q[:9])
    wait_for(lambda: waiting_clients(mport) == 1)
    cancel(p.port, pid, key)
    err = read_until(s, "E", timeout=1)
    s.sendall(q[9:])
    rfq = read_until(s, "Z", timeout=2)
    ok(errors_in(err) == ["57014"] and [t for t, _ in rfq] == ["Z"],
          "a half-sent Query canceled: 57014, its tail dropped, then ReadyForQuery", (err, rfq))
    # two pipelined queries: the cancel takes the first only, as PostgreSQL's would
    s.sendall(query("select 'first'") + query("select 'second'"))
    wait_for(lambda: waiting_clients(mport) == 1)
    cancel(p.port, pid, key)
    first = read_until(s, "Z", timeout=2)
    ok(errors_in(first) == ["57014"], "pipelined: the first query canceled", first)
    holder.commit()
    second = read_until(s, "Z", timeout=5)
    rows = [b[6:].decode() for t, b in second if t == "D"]
    ok(rows == ["second"] and errors_in(second) == [], "pipelined: the second query still runs", second)
    s.sendall(query("select 'after'"))
    after = read_until(s, "Z", timeout=5)
    ok([b[6:].decode() for t, b in after if t == "D"] == ["after"], "the session goes on", after)
    s.sendall(msg(b"X"))
    s.close()
    holder.close()
    ok(p.alive(), "pooler alive")
    p.stop()


def test_cancel_stray():
    """A cancels its statement just as it ends while B's statement waits for the same
    (only) server connection: B must never be the one canceled."""
    p = Pooler("cancel_stray", pool_size=1, max_overflow=0, pool_timeout=20)
    a, apid, akey = keyed_session(p.port)
    b, _, _ = keyed_session(p.port)
    rounds, a_canceled, b_canceled, problems = 300, 0, 0, []
    for i in range(rounds):
        a.sendall(query("select pg_sleep(0.004)"))
        time.sleep(0.001)
        b.sendall(query("select pg_sleep(0.015)"))
        # aim the cancel at the end of A's statement, sweeping across it
        time.sleep(0.0015 + (i % 10) * 0.0005)
        cancel(p.port, apid, akey)
        ra = read_until(a, "Z")
        rb = read_until(b, "Z")
        if ra[-1][0] != "Z" or rb[-1][0] != "Z":
            problems.append((i, ra[-1], rb[-1]))
            break
        a_canceled += errors_in(ra) == ["57014"]
        b_canceled += errors_in(rb) == ["57014"]
    ok(problems == [], "%d rounds: every statement answered" % rounds, problems)
    ok(b_canceled == 0, "B's statement was never canceled by A's cancel (A's own statement canceled %d times)"
          % a_canceled, "B canceled %d times" % b_canceled)
    ok(a_canceled > 0, "the cancels did land on A's statements (the race was exercised)", a_canceled)
    a.close()
    b.close()
    ok(p.alive(), "pooler alive")
    p.stop()


TESTS = [("cancel_waiting", test_cancel_waiting), ("cancel_waiting_extended", test_cancel_waiting_extended),
         ("cancel_stray", test_cancel_stray)]
