"""tests/pooler/test_pool.py: every pool parameter proven by what the server
sees (pg_stat_activity counts, backend pids, backend_start ages,
pg_stat_database counters): pool_size, max_overflow and its idle timeout,
pool_timeout, pool_recycle, pool_pre_ping and pre_ping_interval,
min_pool_size, connect_timeout."""
import socket
import subprocess
import threading
import time

from harness import (KillProxy, LockGate, Pooler, backends, direct, err_code, exited, in_background, ok, peak_monitor,
                     q1, run_gated, run_parallel, servers, skip, wait_for, waiting_on_lock)
from wire import raw_query


def xact_commits():
    c = direct()
    n = q1(c, "select xact_commit from pg_stat_database where datname = 'appdb'")
    c.close()
    return n


def pings_seen(**settings):
    """Transactions the server ran for 40 client statements (stats flush at backend exit)."""
    before = xact_commits()
    p = Pooler("ping", pool_size=1, max_overflow=0, **settings)
    c = p.connect()
    for i in range(40):
        q1(c, "select %s", (i,))
    c.close()
    pids = backends()
    p.stop()
    wait_for(lambda: exited(pids))
    return xact_commits() - before


def test_pool_size():
    p = Pooler("poolsize", pool_size=3, max_overflow=0, pool_timeout=20)
    peaks, stop = [], threading.Event()
    mon = threading.Thread(target=peak_monitor, args=(stop, peaks))
    mon.start()
    pids, gate = set(), LockGate(4301)

    def work(i):
        c = p.connect()
        pids.add(q1(c, "select pg_backend_pid() from (select %s) s" % gate.sql))
        c.close()
    # every server connection busy at once, whatever the scheduler did with the 12 threads
    errs = run_gated(12, work, gate, lambda: waiting_on_lock() == 3 and 3 in peaks)
    stop.set()
    mon.join()
    ok(not errs, "12 clients served by pool_size 3", errs[:2])
    ok(max(peaks) == 3, "pool_size=3: server never sees more than 3 connections", max(peaks))
    ok(len(pids) == 3, "pool_size=3: 12 clients ran on exactly 3 backend pids", sorted(pids))
    ok(servers() == 3, "pool_size connections kept open after clients left", servers())
    p.stop()
    ok(wait_for(lambda: servers() == 0), "stopping the pooler closes its server connections")


def test_overflow():
    p = Pooler("overflow", pool_size=2, max_overflow=2, pool_timeout=20, overflow_idle_timeout=0)
    peaks, stop = [], threading.Event()
    mon = threading.Thread(target=peak_monitor, args=(stop, peaks))
    mon.start()
    gate = LockGate(4302)
    errs = run_gated(8, lambda i: (lambda c: (q1(c, "select %s::text" % gate.sql), c.close()))(p.connect()),
                     gate, lambda: waiting_on_lock() == 4 and 4 in peaks)
    stop.set()
    mon.join()
    ok(not errs, "8 clients served by pool_size 2 + max_overflow 2", errs[:2])
    ok(max(peaks) == 4, "max_overflow=2: peak is pool_size + max_overflow = 4", max(peaks))
    ok(wait_for(lambda: servers() == 2), "overflow connections closed when released: back to 2", servers())
    p.stop()
    p = Pooler("overflow_idle", pool_size=1, max_overflow=1, overflow_idle_timeout=3, pool_timeout=20)
    gate = LockGate(4303)
    th = in_background(run_parallel, 2, lambda i: (lambda c: (q1(c, "select %s::text" % gate.sql), c.close()))(
        p.connect()))
    wait_for(lambda: waiting_on_lock() == 2)
    opened = time.time()
    gate.open()
    th.join()
    n = servers()
    # the overflow connection went idle after `opened`: seen within 3 s of it, it cannot have timed out yet
    if time.time() - opened < 3:
        ok(n == 2, "overflow_idle_timeout: overflow connection kept idle at first", n)
    else:
        skip("overflow_idle_timeout: overflow connection kept idle at first",
             "the check came %.1f s after the release, past the 3 s timeout" % (time.time() - opened))
    ok(wait_for(lambda: servers() == 1), "overflow_idle_timeout: closed after 3 s idle", servers())
    p.stop()


def test_pool_timeout():
    p = Pooler("timeout", pool_size=1, max_overflow=0, pool_timeout=1)
    a = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    q1(a, "select 1")             # holds the only server: transaction open
    t0 = time.time()
    code, msg = raw_query(p.port, "select 2", timeout=60)
    el = time.time() - t0
    ok(code == "53300", "pool_timeout: waiting client gets SQLSTATE 53300", (code, msg))
    ok("pool_timeout" in msg, "pool_timeout: message names the setting", msg)
    # a busy machine only lengthens the wait: the bound above is a limit, not a measure
    ok(0.9 <= el < 30, "pool_timeout=1: the error comes after the 1 s wait, not before", round(el, 2))
    r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", "postgres", "-d", "postgres",
                        "-c", "select 2"], capture_output=True, text=True)
    ok("FATAL:  pool_timeout" in r.stderr, "psql shows the pool_timeout error", r.stderr)
    ok(q1(a, "select 3") == 3, "the client holding the connection goes on")
    a.commit()
    c = p.connect(user="postgres", password=None, db="postgres")
    ok(q1(c, "select 4") == 4, "next client served once the connection is free")
    a.close()
    c.close()
    p.stop()


def test_recycle():
    p = Pooler("recycle", pool_size=1, max_overflow=0, pool_recycle=1.5)
    c = p.connect(autocommit=False)
    pid1 = q1(c, "select pg_backend_pid()")
    start1 = q1(c, "select backend_start from pg_stat_activity where pid = pg_backend_pid()")
    time.sleep(2)               # at least 2 s: past pool_recycle, however busy the machine
    pid2 = q1(c, "select pg_backend_pid()")
    c.commit()
    ok(pid1 == pid2, "pool_recycle never interrupts a transaction (same backend across 2 s)", (pid1, pid2))
    pid3 = q1(c, "select pg_backend_pid()")
    start3 = q1(c, "select backend_start from pg_stat_activity where pid = pg_backend_pid()")
    c.commit()
    ok(pid3 != pid1, "pool_recycle=1.5: old connection replaced after release", (pid1, pid3))
    ok((start3 - start1).total_seconds() >= 2, "replacement backend is young: started after the old one aged",
       (start1, start3))
    c.close()
    ok(wait_for(lambda: servers() == 0), "janitor closes idle connections older than pool_recycle", servers())
    p.stop()


def test_pre_ping():
    on = pings_seen(pool_pre_ping="on", pre_ping_interval=0)
    off = pings_seen(pool_pre_ping="off")
    spaced = pings_seen(pool_pre_ping="on", pre_ping_interval=60)
    ok(35 <= on - off <= 45, "pool_pre_ping=on, pre_ping_interval=0: one ping per hand-out (40 more server transactions)",
       (on, off))
    ok(abs(spaced - off) <= 5, "pre_ping_interval=60: no ping for recently used connections", (spaced, off))
    p = Pooler("ping_dead", pool_size=1, max_overflow=0, pre_ping_interval=0)
    c = p.connect()
    pid1 = q1(c, "select pg_backend_pid()")
    d = direct()
    q1(d, "select pg_terminate_backend(%s, 60000)", (pid1,))    # returns once the backend has exited
    d.close()
    code, _ = err_code(lambda: q1(c, "select 1"))
    ok(code == "none", "dead idle connection replaced before the client gets it: no error", code)
    ok(q1(c, "select pg_backend_pid()") != pid1, "client now runs on a new backend")
    c.close()
    p.stop()


def test_pre_ping_dead():
    proxy = KillProxy()
    dbs = {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % proxy.port}
    for pre_ping in ("on", "off"):
        p = Pooler("ping_kill_" + pre_ping, dbs=dbs, pool_size=2, max_overflow=0, pool_pre_ping=pre_ping,
                   pre_ping_interval=0)
        c = p.connect()
        pid1 = q1(c, "select pg_backend_pid()")
        proxy.armed = True
        code, msg = err_code(lambda: q1(c, "select 41 + 1"))
        if pre_ping == "on":
            ok(proxy.killed == 1 and code == "none",
               "pool_pre_ping=on: connection found dead at hand-out, query retried, client sees no error",
               (proxy.killed, code, msg))
            ok(q1(c, "select pg_backend_pid()") != pid1, "the client now runs on a replacement connection")
        else:
            ok(proxy.killed == 2 and code != "none",
               "pool_pre_ping=off: the same dead connection costs the client an error", (proxy.killed, code))
        c.close()
        p.stop()
    proxy.close()


def test_min_pool():
    p = Pooler("minpool", pool_size=4, min_pool_size=3)
    c = p.connect()
    q1(c, "select 1")
    c.close()
    ok(wait_for(lambda: servers() == 3), "min_pool_size=3: three connections kept with no clients", servers())
    p.stop()


def test_connect_timeout():
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(5)             # accepts at kernel level, never answers
    port = hole.getsockname()[1]
    p = Pooler("conntimeout", dbs={"hole": "host=127.0.0.1 port=%d dbname=x" % port},
               connect_timeout=1)
    t0 = time.time()
    code, msg = err_code(lambda: p.connect(user="postgres", password=None, db="hole"))
    el = time.time() - t0
    ok(code != "none" and "connect_timeout" in msg, "connect_timeout: clear error for the waiting client", msg)
    ok(el >= 0.9, "connect_timeout=1: the error comes after the 1 s, not before", round(el, 2))
    ok(p.alive(), "pooler still running")
    p.stop()
    hole.close()


TESTS = [("pool_size", test_pool_size), ("overflow", test_overflow), ("pool_timeout", test_pool_timeout),
         ("recycle", test_recycle), ("pre_ping", test_pre_ping), ("pre_ping_dead", test_pre_ping_dead),
         ("min_pool", test_min_pool), ("connect_timeout", test_connect_timeout)]
