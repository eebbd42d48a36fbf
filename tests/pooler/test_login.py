"""tests/pooler/test_login.py: who gets in.  SCRAM, md5 and trust between
client and pooler and between pooler and server (auth_file holding plain,
md5 or SCRAM secrets), the SQLSTATE of every refusal, max_client_conn, and
logins that never finish leaving nothing behind."""
import os
import socket
import time

from harness import Pooler, err_code, ok, q1, wait_for
from wire import raw_connect, rss_kb, startup_packet


def test_auth():
    p = Pooler("auth_scram", auth="scram-sha-256", pool_size=2)
    c = p.connect()
    ok(q1(c, "select current_user") == "app", "scram-sha-256 client login (plain secret), scram to server")
    c.close()
    ok(raw_connect(p.port, "app", "appdb", "app-secret") == "ok", "our own SCRAM client logs in")
    code = raw_connect(p.port, "app", "appdb", "wrong")
    ok(code == "28P01", "scram-sha-256 wrong password: 28P01", code)
    code = raw_connect(p.port, "nobody", "appdb", "x")
    ok(code == "28P01", "unknown user: 28P01", code)
    c = p.connect(user="scramonly", password="scram-secret")
    ok(q1(c, "select current_user") == "scramonly",
       "SCRAM secret in auth_file: client scram, server scram with the learned key")
    c.close()
    code = raw_connect(p.port, "scramonly", "appdb", "nope")
    ok(code == "28P01", "SCRAM secret, wrong password: 28P01", code)
    p.stop()
    p = Pooler("auth_md5", auth="md5", pool_size=2)
    c = p.connect()
    ok(q1(c, "select current_user") == "app", "md5 client login (plain secret)")
    c.close()
    c = p.connect()
    code, msg = err_code(lambda: q1(c, "select 2"))
    ok(code == "none", "second md5 login into the same pool, then a query (the password message was "
                       "taken for the first query when the pool already had its parameters)", (code, msg))
    c.close()
    code = raw_connect(p.port, "app", "appdb", "wrong")
    ok(code == "28P01", "md5 wrong password: 28P01", code)
    c = p.connect(user="md5user", password="md5-secret")
    ok(q1(c, "select current_user") == "md5user", "md5 secret in auth_file: client md5, server md5 login")
    c.close()
    ok(raw_connect(p.port, "md5user", "appdb", "md5-secret") == "ok", "our own md5 client logs in")
    code = raw_connect(p.port, "md5user", "appdb", "bad")
    ok(code == "28P01", "md5 secret, wrong password: 28P01", code)
    log = open(p.log).read()
    ok("md5-secret" not in log and "app-secret" not in log, "passwords never logged")
    p.stop()
    p = Pooler("auth_trust", auth="trust", pool_size=2)
    c = p.connect(user="postgres", password=None, db="postgres")
    ok(q1(c, "select current_user") == "postgres", "trust client login, trust server login")
    c.close()
    p.stop()


def test_unauthenticated():
    """Clients that never authenticate create nothing that outlives them,
    whatever user names they send (a pool is joined only after login)."""
    # AddressSanitizer's quarantine holds freed memory back: without it, a
    # sanitized pooler's RSS measures what is kept, as a plain one's does.
    saved = os.environ.get("ASAN_OPTIONS")
    if saved is not None:
        os.environ["ASAN_OPTIONS"] = saved + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    try:
        p = Pooler("unauth", auth="md5", pool_size=2)
    finally:
        if saved is not None:
            os.environ["ASAN_OPTIONS"] = saved

    def abandon(i):
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(startup_packet(user="nobody%05d" % i, db="appdb"))
        s.settimeout(5)
        data = s.recv(64)
        s.close()
        return data[:1] == b"R"

    for i in range(200):
        abandon(i)
    before = rss_kb(p.proc.pid)
    asked = sum(1 for i in range(200, 5200) if abandon(i))
    time.sleep(0.5)
    grown = rss_kb(p.proc.pid) - before
    ok(asked == 5000, "5,000 logins with distinct unknown users were asked for a password", asked)
    ok(grown < 1024, "they left no pools behind: RSS grew %d kB (5,000 leftover pools took about 4 MB before this was fixed)" % grown)
    c = p.connect()
    ok(q1(c, "select 1") == 1 and p.alive(), "the pooler still serves real clients")
    c.close()


def test_max_client_conn():
    p = Pooler("maxconn", pool_size=2, max_client_conn=3)
    conns = [p.connect() for _ in range(3)]
    code = raw_connect(p.port, "postgres", "postgres")
    ok(code == "53300", "max_client_conn=3: fourth client gets 53300", code)
    code, msg = err_code(lambda: p.connect())
    ok("max_client_conn" in msg, "error names max_client_conn", msg)
    conns[0].close()
    # the pooler frees the slot when it sees the close, which takes as long as it takes
    wait_for(lambda: raw_connect(p.port, "app", "appdb", "app-secret") == "ok")
    c = p.connect()
    ok(q1(c, "select 1") == 1, "a slot frees up when a client leaves")
    c.close()
    for x in conns[1:]:
        x.close()
    p.stop()


TESTS = [("auth", test_auth), ("unauthenticated", test_unauthenticated), ("max_client_conn", test_max_client_conn)]
