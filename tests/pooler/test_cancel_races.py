"""tests/pooler/test_cancel_races.py: CancelRequests that arrive at awkward
moments.  A client still queued for a server connection gets its request
canceled by the pooler itself (57014, then ReadyForQuery at its sync point,
the statement never reaches PostgreSQL); a cancel forwarded for a client
whose statement is just ending must never hit the next client's statement on
the same server connection.  The moments are forced, not hoped for: a
statement waits on an advisory lock the test holds, a client is seen queued
in the pooler's metrics or SHOW POOLS, and a proxy holds a CancelRequest back
until the statement it was sent for has ended.  Raw protocol sockets give the
exact replies; psycopg2's conn.cancel() checks what a real driver sees."""

import struct
import threading
import time

from harness import (Pooler, ServerProxy, console, direct, err_code, exercised, metrics, ok, pool_metric, q1,
                     q1_direct, queued, skip, wait_for, waiting_on_lock)
from wire import (CANCEL_CODE, cancel, errors_in, extended, free_port, keyed_session, msg, query, read_until, rows,
                  session)


def waiting_clients(mport):
    return pool_metric(metrics(mport), "clients_waiting")


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
        result["code"], result["msg"] = err_code(lambda: q1(w, "insert into cancel_wait_t values (1) returning a"))
        result["at"] = time.time()
    t = threading.Thread(target=run)
    t.start()
    ok(wait_for(lambda: waiting_clients(mport) == 1), "the second client is queued for the busy server")
    t0 = time.time()
    w.cancel()
    t.join(60)
    el = result.get("at", 99) - t0
    ok(result.get("code") == "57014" and "canceling statement due to user request" in result.get("msg", ""),
          "psycopg2 conn.cancel() of a queued client: QueryCanceled 57014 'canceling statement due to user request'",
          result)
    # the only server stays held until after this check: an answer now needed no server
    ok("at" in result, "the queued client's cancel is answered while the only server is still busy",
       "after %.3f s" % el)
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
    first = read_until(s, "E", timeout=60)
    ok(errors_in(first) == ["57014"], "queued Parse/Bind/Execute canceled: ErrorResponse 57014 at once", first)
    quiet = read_until(s, "Z", timeout=0.3)
    ok(quiet == [("timeout", b"")], "no ReadyForQuery before the client's Sync", quiet)
    s.sendall(extended("select 2") + msg(b"S"))
    after = read_until(s, "Z", timeout=60)
    ok([t for t, _ in after] == ["Z"] and after[-1][1] == b"I",
          "messages up to Sync dropped; Sync answered with ReadyForQuery idle", after)
    # a simple query cut in the middle of its message: dropped as its bytes arrive
    q = query("select 'never run'")
    s.sendall(q[:9])
    wait_for(lambda: waiting_clients(mport) == 1)
    cancel(p.port, pid, key)
    err = read_until(s, "E", timeout=60)
    s.sendall(q[9:])
    rfq = read_until(s, "Z", timeout=60)
    ok(errors_in(err) == ["57014"] and [t for t, _ in rfq] == ["Z"],
          "a half-sent Query canceled: 57014, its tail dropped, then ReadyForQuery", (err, rfq))
    # two pipelined queries: the cancel takes the first only, as PostgreSQL's would
    s.sendall(query("select 'first'") + query("select 'second'"))
    wait_for(lambda: waiting_clients(mport) == 1)
    cancel(p.port, pid, key)
    first = read_until(s, "Z", timeout=60)
    ok(errors_in(first) == ["57014"], "pipelined: the first query canceled", first)
    holder.commit()
    second = read_until(s, "Z", timeout=60)
    ok(rows(second) == ["second"] and errors_in(second) == [], "pipelined: the second query still runs", second)
    s.sendall(query("select 'after'"))
    after = read_until(s, "Z", timeout=60)
    ok(rows(after) == ["after"], "the session goes on", after)
    s.sendall(msg(b"X"))
    s.close()
    holder.close()
    ok(p.alive(), "pooler alive")
    p.stop()


class CancelGate(ServerProxy):
    """Passes server connections through and, while closed, holds every
    CancelRequest until release(): a cancel forwarded in time but delivered
    late, at a moment the test chooses."""

    def __init__(self):
        self.closed = False
        self.held = []
        self.lock = threading.Lock()
        super().__init__()

    def serve(self, a):
        head = b""
        while len(head) < 8:
            chunk = a.recv(8 - len(head))
            if not chunk:
                a.close()
                return
            head += chunk
        length, code = struct.unpack("!II", head)
        if code == CANCEL_CODE:
            while len(head) < length:
                head += a.recv(length - len(head))
            with self.lock:
                if self.closed:
                    self.held.append((a, head))
                    return
            self.deliver(a, head)
            return
        b = self.postgres()
        b.sendall(head)
        self.splice(a, b)

    def deliver(self, a, packet):
        """Hand the CancelRequest to PostgreSQL; close the pooler's side once PostgreSQL has closed ours."""
        b = self.postgres()
        b.sendall(packet)
        while b.recv(100):
            pass
        b.close()
        a.close()

    def waiting(self):
        with self.lock:
            return len(self.held)

    def release(self):
        with self.lock:
            self.closed, held, self.held = False, self.held, []
        for a, packet in held:
            self.deliver(a, packet)


def server_states(p):
    return [r["state"] for r in console(p, "SHOW SERVERS") if r["database"] == "postgres"]


def running(sql_part):
    """Whether a statement containing sql_part is running on one of the pool's backends."""
    return q1_direct("select count(*) from pg_stat_activity where usename = 'postgres' and datname = 'postgres' "
                     "and state = 'active' and query like %s and pid <> pg_backend_pid()",
                     ("%" + sql_part + "%",)) > 0


def test_cancel_stray():
    """A's cancel and B's statement, queued behind A's on the only server
    connection, in both orders the cancel can reach PostgreSQL: while A's
    statement certainly runs (it waits on an advisory lock the test holds),
    and after A's statement has ended (the cancel held in a proxy until then,
    with B's statement waiting on another lock, so a cancel landing on it
    would certainly cancel it).  B must never be the one canceled."""
    gate = CancelGate()
    p = Pooler("cancel_stray", dbs={"postgres": "host=127.0.0.1 port=%d" % gate.port}, admin_users="postgres",
               pool_size=1, max_overflow=0, pool_timeout=120)
    ctl = direct()
    a, apid, akey = keyed_session(p.port)
    b = session(p.port)

    def queue_b_behind_a(b_sql):
        q1(ctl, "select pg_advisory_lock(4201)")
        a.sendall(query("select pg_advisory_xact_lock_shared(4201)::text || 'a'"))
        running_a = wait_for(lambda: waiting_on_lock("postgres", "postgres") == 1)
        b.sendall(query(b_sql))
        queued_b = wait_for(lambda: queued(p, "postgres", "postgres") == 1)
        return running_a and queued_b

    # 1. the cancel reaches PostgreSQL while A's statement waits on the lock
    ready = queue_b_behind_a("select 'b'")
    ok(ready, "A's statement waits on a lock the test holds, B queued behind it for the only server")
    cancel(p.port, apid, akey)
    ra = read_until(a, "Z", 60)
    q1(ctl, "select pg_advisory_unlock(4201)")
    rb = read_until(b, "Z", 60)
    ok(errors_in(ra) == ["57014"], "a cancel delivered while A's statement runs cancels it", ra[-2:])
    ok(errors_in(rb) == [] and rows(rb) == ["b"], "B's statement, next on that server, runs uncanceled", rb)

    # 2. the cancel is forwarded while A's statement runs, but reaches PostgreSQL only after it ended
    q1(ctl, "select pg_advisory_lock(4202)")
    ready = queue_b_behind_a("select pg_advisory_xact_lock_shared(4202)::text || 'b'")
    gate.closed = True
    cancel(p.port, apid, akey)
    held = wait_for(lambda: gate.waiting() == 1)
    q1(ctl, "select pg_advisory_unlock(4201)")                # A's statement ends on its own
    wait_for(lambda: "canceling" in server_states(p) or running("4202"))
    states, b_early = server_states(p), running("4202")
    gate.release()
    ra = read_until(a, "Z", 60)
    # B's statement, wherever it is now, waits on 4202 until every signal the cancel sent has landed
    wait_for(lambda: waiting_on_lock("postgres", "postgres") == 1 or not running("4202"))
    q1(ctl, "select pg_advisory_unlock(4202)")
    rb = read_until(b, "Z", 60)
    late = "cancel request: no answer" in p.log_text()
    if not (ready and held) or late:
        skip("a cancel that reaches PostgreSQL after the statement it was sent for ended",
             "queued %s, cancel held %s, pooler gave up waiting for it %s" % (ready, held, late))
    else:
        ok(states == ["canceling"] and not b_early,
           "A's statement ended with its cancel in flight: the server is held back from B (SHOW SERVERS: canceling)",
           (states, b_early))
        ok(errors_in(ra) == [] and rows(ra) == ["a"], "A's statement, over before its cancel arrived, completed", ra)
        ok(errors_in(rb) == [] and rows(rb) == ["b"], "the late cancel did not land on B's statement", rb)

    a.close()
    b.close()
    ctl.close()
    ok(p.alive(), "pooler alive")
    p.stop()
    gate.close()


def test_cancel_sweep():
    """Cancels aimed by the clock at the end of A's statement, B's queued
    behind it: where each lands is up to the scheduler, so only what must
    hold whatever happened is a verdict, and a run where none landed on A
    says so as a skip."""
    p = Pooler("cancel_sweep", pool_size=1, max_overflow=0, pool_timeout=120)
    a, apid, akey = keyed_session(p.port)
    b = session(p.port)
    rounds, a_canceled, b_canceled, problems = 100, 0, 0, []
    for i in range(rounds):
        a.sendall(query("select pg_sleep(0.01)"))
        time.sleep(0.001)
        b.sendall(query("select pg_sleep(0.015)"))
        time.sleep(0.002 + (i % 20) * 0.0006)      # from well inside A's statement to past its end
        cancel(p.port, apid, akey)
        ra = read_until(a, "Z", 60)
        rb = read_until(b, "Z", 60)
        if ra[-1][0] != "Z" or rb[-1][0] != "Z":
            problems.append((i, ra[-1], rb[-1]))
            break
        a_canceled += errors_in(ra) == ["57014"]
        b_canceled += errors_in(rb) == ["57014"]
    ok(problems == [], "%d rounds of cancels aimed at the end of A's statement: every statement answered" % rounds,
       problems)
    ok(b_canceled == 0, "B's statement was never canceled by A's cancel (A's own canceled %d times)" % a_canceled,
       "B canceled %d times" % b_canceled)
    exercised(a_canceled, "clock-aimed cancels landed on A's running statement", "of %d rounds" % rounds)
    a.close()
    b.close()
    ok(p.alive(), "pooler alive")
    p.stop()


TESTS = [("cancel_waiting", test_cancel_waiting), ("cancel_waiting_extended", test_cancel_waiting_extended),
         ("cancel_stray", test_cancel_stray), ("cancel_sweep", test_cancel_sweep)]
