"""tests/pooler/test_session.py: session state and transaction mode.  A
client's TimeZone, DateStyle, client_encoding and application_name follow it
onto whichever server connection it gets and never leak to another; a
setting the server refuses; session mode keeping one server per client and
resetting it (DISCARD ALL) for the next."""
import socket
import struct
import threading
import time

from harness import Pooler, direct, err_code, ok, q1, queued, wait_for
from wire import read_msg, sqlstate_of


def test_transaction_state():
    p = Pooler("txstate", pool_size=1, max_overflow=0, pool_timeout=10)
    d = direct("appdb")
    default_tz = q1(d, "show timezone")
    d.close()
    a = p.connect(application_name="alpha")
    b = p.connect(application_name="beta")
    pa = q1(a, "select pg_backend_pid()")
    pb = q1(b, "select pg_backend_pid()")
    ok(pa == pb, "both clients share the single server connection", (pa, pb))
    q1(a, "set timezone = 'Asia/Tokyo'; select 1")
    q1(a, "set datestyle = 'SQL, DMY'; select 1")
    q1(a, "set standard_conforming_strings = off; select 1")
    q1(a, "set intervalstyle = 'iso_8601'; select 1")
    a.set_client_encoding("LATIN1")
    ok(q1(b, "show timezone") == default_tz, "TimeZone set by one client does not leak to another",
       q1(b, "show timezone"))
    ok(q1(b, "select '2020-01-02'::date::text") == "2020-01-02", "DateStyle does not leak")
    ok(q1(b, "show standard_conforming_strings") == "on", "standard_conforming_strings does not leak")
    ok(q1(b, "select interval '1 day'::text") == "1 day", "IntervalStyle does not leak")
    ok(q1(b, "show client_encoding") == "UTF8", "client_encoding does not leak")
    ok(q1(b, "show application_name") == "beta", "application_name follows client b")
    ok(q1(a, "show timezone") == "Asia/Tokyo", "TimeZone carried onto the connection client a gets")
    ok(q1(a, "select '2020-01-02'::date::text") == "02/01/2020", "DateStyle carried for client a")
    ok(q1(a, "show client_encoding") == "LATIN1", "client_encoding carried for client a")
    ok(q1(a, "show application_name") == "alpha", "application_name follows client a")
    b.autocommit = False
    q1(b, "select 1")
    d = direct()
    seen = q1(d, "select application_name from pg_stat_activity where usename = 'app' and datname = 'appdb'")
    d.close()
    b.commit()
    ok(seen == "beta", "server's pg_stat_activity shows the client's application_name", seen)
    code, _ = err_code(lambda: q1(a, "begin; set local timezone = 'UTC'; commit; select 1"))
    ok(code == "none" and q1(a, "show timezone") == "Asia/Tokyo", "SET LOCAL stays inside its transaction")
    a.close()
    b.close()
    p.stop()


def test_bad_setting():
    p = Pooler("badsetting", pool_size=1, max_overflow=0)
    s = socket.create_connection(("127.0.0.1", p.port), 10)
    s.settimeout(10)
    body = (struct.pack("!I", 196608) + b"user\0postgres\0database\0postgres\0TimeZone\0No/Such_Zone\0\0")
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    answers = []
    while True:
        t, b = read_msg(s)
        if t in (None, b"Z"):
            break
    for i in range(2):
        q = b"show timezone\0"
        s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
        row, err = None, None
        while True:
            t, b = read_msg(s)
            if t is None or t == b"Z":
                break
            if t == b"D":
                row = b[6:].decode()
            if t == b"E":
                err = sqlstate_of(b)
        answers.append((row, err))
    s.close()
    d = direct()
    default_tz = q1(d, "show timezone")
    d.close()
    ok(answers == [(default_tz, None), (default_tz, None)],
       "a TimeZone the server refuses: client served with the server's setting, no error", answers)
    ok(open(p.log).read().count("failed") == 1, "the refused SET is tried once, not every transaction")
    p.stop()


def test_session_mode():
    p = Pooler("session", pool_mode="session", pool_size=1, max_overflow=0, pool_timeout=120, admin_users="postgres")
    a = p.connect()
    pa = q1(a, "select pg_backend_pid()")
    q1(a, "set work_mem = '7MB'; prepare s1 as select 1; select 1")
    held = []

    def b_work(i):
        b = p.connect()
        held.append((q1(b, "show work_mem"), q1(b, "select pg_backend_pid()"), time.time()))
        held.append(err_code(lambda: q1(b, "execute s1")))
        b.close()
    t = threading.Thread(target=b_work, args=(0,))
    t.start()
    was_queued = wait_for(lambda: queued(p) == 1)
    ok(q1(a, "show work_mem") == "7MB", "session mode: the session keeps its own server")
    closed_at = time.time()
    a.close()
    t.join()
    wm, pb, answered_at = held[0]
    ok(was_queued and answered_at >= closed_at, "session mode: second client waited (queued) for the session to end",
       (was_queued, answered_at - closed_at))
    ok(pb == pa, "session mode: same server connection reused after the first client left", (pa, pb))
    ok(wm == "4MB", "server_reset_query (DISCARD ALL) reset session state", wm)
    ok(held[1][0] == "26000", "prepared statement of the previous session is gone", held[1])
    a = p.connect()
    q1(a, "listen perfopt_ch; select 1")
    d = direct("appdb")
    q1(d, "notify perfopt_ch, 'hello'; select 1")
    d.close()
    import select
    select.select([a], [], [], 60)
    a.poll()
    got = [(n.channel, n.payload) for n in a.notifies]
    ok(got == [("perfopt_ch", "hello")], "NotificationResponse (LISTEN/NOTIFY) passed through in session mode", got)
    a.close()
    p.stop()


TESTS = [("transaction_state", test_transaction_state), ("bad_setting", test_bad_setting),
         ("session_mode", test_session_mode)]
