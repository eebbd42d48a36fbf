"""tests/pooler/test_overflow.py: what becomes of a released overflow
connection (beyond pool_size).  It goes to the next waiting client like any
other; with nobody waiting it stays idle until overflow_idle_timeout, so a
load above pool_size is served by at most pool_size + max_overflow server
logins for as long as it lasts; with overflow_idle_timeout = 0 it closes as
soon as it is released to nobody.

Server logins are counted three ways: the pooler's SHOW STATS servers_opened,
the backend pids every transaction reports, and the closing reasons in the
pooler's log (verbose = 1).  Waiting is forced with advisory locks (LockGate)
and proven by SHOW POOLS cl_waiting, never assumed from a delay."""
import threading

from harness import LockGate, Pooler, backends, console, ok, q1, queued, run_parallel, skip, wait_for, waiting_on_lock

CLIENTS = 6          # more than pool_size + max_overflow = 4
ROUNDS = 5
QUICK = 40           # free-running transactions per client per round


def logins(p):
    rows = [r for r in console(p, "SHOW STATS") if r["database"] == "appdb"]
    return rows[0]["servers_opened"] if rows else 0


def idle_timeout_closes(p):
    return p.log_text().count("closing: overflow_idle_timeout")


def gated_round(p, conns, key, pids):
    """Every client runs one transaction held at a lock (4 on servers, 2
    queued: proven before the lock opens), then QUICK more as fast as it can."""
    gate = LockGate(key)
    lock = threading.Lock()

    def work(i):
        c = conns[i]
        seen = [q1(c, "select pg_backend_pid() from (select %s) g" % gate.sql)]
        for n in range(QUICK):
            seen.append(q1(c, "select pg_backend_pid() from (select %s::int) q" % n))
        with lock:
            pids.extend(seen)
    errs = []
    th = threading.Thread(target=lambda: errs.extend(run_parallel(CLIENTS, work)))
    th.start()
    held = wait_for(lambda: waiting_on_lock() == 4 and queued(p) == CLIENTS - 4, timeout=60)
    gate.open()
    th.join()
    return held, errs


def test_overflow_kept_under_load():
    """pool_size 2 + max_overflow 2, 6 clients, rounds of many transactions:
    each round needs all 4 connections at once, and between rounds nobody
    waits.  The overflow connections idle between rounds are used again, so
    the server sees 4 logins in all, not 2 more per round."""
    p = Pooler("ovf_load", pool_size=2, max_overflow=2, pool_timeout=60, admin_users="postgres", verbose=1)
    conns = [p.connect() for _ in range(CLIENTS)]
    pids, held_all, errs = [], True, []
    for r in range(ROUNDS):
        held, e = gated_round(p, conns, 4400 + r, pids)
        held_all = held_all and held
        errs += e
    n_logins = logins(p)
    for c in conns:
        c.close()
    ok(not errs, "%d clients x %d rounds served by pool_size 2 + max_overflow 2" % (CLIENTS, ROUNDS), errs[:2])
    ok(held_all, "every round had 4 transactions on servers and 2 clients queued at once")
    ok(len(pids) == CLIENTS * ROUNDS * (QUICK + 1), "every transaction answered", len(pids))
    if idle_timeout_closes(p):
        skip("overflow connections reused across rounds",
             "a pause between two rounds outlasted overflow_idle_timeout: the pooler closed one")
    else:
        ok(n_logins == 4, "server logins over the whole run: pool_size + max_overflow = 4 (SHOW STATS)", n_logins)
        ok(len(set(pids)) == 4, "transactions ran on 4 backend pids in all", sorted(set(pids)))
        ok("overflow connection released" not in p.log_text(),
           "no overflow connection closed at release while the default timeout runs")
    p.stop()


def test_overflow_handed_to_waiter():
    """overflow_idle_timeout = 0: a released overflow connection still goes to
    a queued client rather than closing (no login for that client); only once
    nobody waits does it close, right at its release."""
    p = Pooler("ovf_handoff", pool_size=1, max_overflow=1, overflow_idle_timeout=0, pool_timeout=60,
               admin_users="postgres", verbose=1)
    gate = LockGate(4410)
    pids = []
    th = threading.Thread(target=lambda: run_parallel(3, lambda i: pids.append(
        q1(p.connect(), "select pg_backend_pid() from (select %s) g" % gate.sql))))
    th.start()
    held = wait_for(lambda: waiting_on_lock() == 2 and queued(p) == 1, timeout=60)
    gate.open()
    th.join()
    ok(held, "two transactions on the two servers, a third client queued")
    ok(len(pids) == 3 and len(set(pids)) == 2, "3 transactions ran on the 2 backends", pids)
    ok(logins(p) == 2, "the queued client got a released connection: 2 server logins", logins(p))
    ok(wait_for(lambda: len(backends()) == 1), "with nobody waiting the overflow connection closed", backends())
    ok("closing: overflow connection released" in p.log_text(), "closed at release (overflow_idle_timeout = 0)")
    p.stop()


def test_overflow_idle_timeout():
    """A client keeps the pooled connection in a transaction; another's
    statement gets an overflow connection, released to nobody: it closes by
    overflow_idle_timeout (seen in the log and by the server), the busy one
    stays, and the next statement logs in again."""
    p = Pooler("ovf_idle_close", pool_size=1, max_overflow=1, overflow_idle_timeout=1, pool_timeout=60,
               admin_users="postgres", verbose=1)
    a = p.connect(autocommit=False)
    pid_a = q1(a, "select pg_backend_pid()")
    b = p.connect()
    pid_b = q1(b, "select pg_backend_pid()")
    ok(pid_a != pid_b, "the second client ran on an overflow connection", (pid_a, pid_b))
    ok(wait_for(lambda: pid_b not in backends(), timeout=60), "idle overflow connection closed", backends())
    ok(idle_timeout_closes(p) == 1, "closed by overflow_idle_timeout", p.log_text()[-400:])
    ok(pid_a in backends() and q1(a, "select pg_backend_pid()") == pid_a,
       "the pooled connection, busy in a transaction, kept")
    pid_b2 = q1(b, "select pg_backend_pid()")
    ok(pid_b2 not in (pid_a, pid_b) and logins(p) == 3, "the next statement logged in again", (pid_b2, logins(p)))
    a.rollback()
    a.close()
    b.close()
    p.stop()


def test_overflow_wait():
    """overflow_wait: a connection beyond pool_size opens only for a client
    that has waited that long for a pooled one.  With 600 s (beyond any
    stall of a loaded machine), a client queued behind the busy pool_size
    connection gets no overflow connection at once
    (checked while it is proven queued); with 0.2 s it gets one after its
    wait, while the pooled connection is still held (nothing but the wait
    lets it through, so no timing is assumed)."""
    p = Pooler("ovf_wait_long", pool_size=1, max_overflow=1, overflow_wait=600, pool_timeout=600,
               admin_users="postgres")
    gate = LockGate(4420)
    pids = []
    th = threading.Thread(target=lambda: run_parallel(2, lambda i: pids.append(
        q1(p.connect(), "select pg_backend_pid() from (select %s) g" % gate.sql))))
    th.start()
    held = wait_for(lambda: waiting_on_lock() == 1 and queued(p) == 1, timeout=60)
    opened = logins(p)
    gate.open()
    th.join()
    ok(held, "one transaction on the pooled connection, the second client queued")
    ok(opened == 1, "overflow_wait 600 s: no overflow connection for a client queued a moment", opened)
    ok(len(pids) == 2 and len(set(pids)) == 1, "both ran, one after the other, on the pooled backend", pids)
    p.stop()

    p = Pooler("ovf_wait_short", pool_size=1, max_overflow=1, overflow_wait=0.2, pool_timeout=60,
               admin_users="postgres")
    gate = LockGate(4421)
    a = p.connect()
    th = threading.Thread(target=lambda: q1(a, "select pg_backend_pid() from (select %s) g" % gate.sql))
    th.start()
    busy = wait_for(lambda: waiting_on_lock() == 1, timeout=60)
    b = p.connect()
    pid_b = q1(b, "select pg_backend_pid()")     # served only by an overflow connection
    still_held = waiting_on_lock() == 1
    gate.open()
    th.join()
    ok(busy and still_held, "the pooled connection stayed held while the second client was served")
    ok(pid_b is not None and logins(p) == 2, "overflow_wait 0.2 s: after waiting, an overflow connection",
       (pid_b, logins(p)))
    a.close()
    b.close()
    p.stop()


def test_overflow_config():
    p = Pooler("ovf_config", admin_users="postgres")
    conf = {r["key"]: r for r in console(p, "SHOW CONFIG")}
    row = conf.get("overflow_idle_timeout")
    ok(row and row["value"] == "10" and row["default"] == "10" and row["changeable"] == "yes",
       "SHOW CONFIG: overflow_idle_timeout 10 by default, changeable by RELOAD", row)
    row = conf.get("overflow_wait")
    ok(row and row["value"] == "1" and row["default"] == "1" and row["changeable"] == "yes",
       "SHOW CONFIG: overflow_wait 1 by default, changeable by RELOAD", row)
    row = conf.get("pre_ping_interval")
    ok(row and row["value"] == "1" and row["default"] == "1",
       "SHOW CONFIG: pre_ping_interval 1 by default (a connection used a moment ago is not pinged)", row)
    p.stop()


TESTS = [("overflow_kept_under_load", test_overflow_kept_under_load),
         ("overflow_handed_to_waiter", test_overflow_handed_to_waiter),
         ("overflow_wait", test_overflow_wait),
         ("overflow_idle_timeout", test_overflow_idle_timeout),
         ("overflow_config", test_overflow_config)]
