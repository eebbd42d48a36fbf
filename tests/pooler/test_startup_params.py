"""tests/pooler/test_startup_params.py: settings a client asks for at login
(pooler/txn/startup_settings.c).  The options parameter's -c name=value and
--name=value switches (as libpq sends PGOPTIONS, spaces escaped with a
backslash) and any settable startup parameter (statement_timeout,
search_path, jit, a custom one) are accepted in both modes and follow the
client onto whichever server connection it gets: with more clients than
server connections, client A with search_path=s1 and client B with s2
alternate on one server connection and each always sees its own, a table
resolved through it included; a server whose settings already match gets
no SET at all.  What the pooler cannot honour (replication, an unknown
switch, a value the server refuses) gets an error that names it, and the
refused client's statement never runs.  Real clients: raw protocol,
psycopg2 and psycopg 3 options, psql with PGOPTIONS, asyncpg
server_settings, node-postgres statement_timeout and options."""
import asyncio
import json
import os
import socket
import struct
import subprocess

import psycopg

from harness import DRIVERS_DIR, Pooler, ServerProxy, direct, node_env, ok, q1, skip
from wire import query, read_msg, sqlstate_of

DEFAULT_PATH = '"$user", public'


def schemas():
    """s1.t holds 'one', s2.t 'two', public.marker records statements that ran."""
    d = direct("appdb")
    cur = d.cursor()
    for s, v in (("s1", "one"), ("s2", "two")):
        cur.execute("drop schema if exists %s cascade; create schema %s authorization app;"
                    "create table %s.t (v text); insert into %s.t values ('%s');"
                    "grant all on all tables in schema %s to app" % (s, s, s, s, v, s))
    cur.execute("drop table if exists public.marker; create table public.marker (v text);"
                "alter table public.marker owner to app")
    d.close()


def marker_rows():
    d = direct("appdb")
    n = q1(d, "select count(*) from public.marker")
    d.close()
    return n


# ---- the raw protocol, startup parameters of our own choosing ----

def login(port, params, user="app", db="appdb"):
    """Log in with extra startup parameters: (socket, first error's (sqlstate, message) or None)."""
    body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0"
    for k, v in params:
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(10)
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    while True:
        t, b = read_msg(s)
        if t is None:
            return s, ("closed", "")
        if t == b"E":
            return s, (sqlstate_of(b), message_of(b))
        if t == b"Z":
            return s, None


def message_of(body):
    for f in body.split(b"\0"):
        if f[:1] == b"M":
            return f[1:].decode()
    return ""


def ask(s, sql):
    """One simple query: (first column of each row, (sqlstate, message) or None)."""
    s.sendall(query(sql))
    vals, err = [], None
    while True:
        t, b = read_msg(s)
        if t is None:
            return vals, err or ("closed", "")
        if t == b"D":
            n = struct.unpack("!i", b[2:6])[0]
            vals.append(None if n < 0 else b[6:6 + n].decode())
        if t == b"E" and not err:
            err = (sqlstate_of(b), message_of(b))
        if t == b"Z":
            return vals, err


def one(s, sql):
    vals, err = ask(s, sql)
    return err if err else vals[0]


class SetCounter(ServerProxy):
    """Counts the set_config() calls the pooler sends to PostgreSQL."""

    def __init__(self):
        self.seen = b""
        super().__init__()

    def passes(self, data):
        self.seen += data
        return True

    def sets(self):
        return self.seen.count(b"set_config(")


def proxied_pooler(name, proxy, **kw):
    return Pooler(name, dbs={"appdb": "host=127.0.0.1 port=%d dbname=appdb" % proxy.port}, **kw)


# ---- the tests ----

def test_options_forms():
    schemas()
    p = Pooler("startopts", pool_size=1, max_overflow=0)
    s, err = login(p.port, [("options", r"-c statement_timeout=1234 --search-path=s1,\ public -cjit=off "
                             r"-c myapp.tenant=a\ b")])
    ok(err is None, "options with -c, --name and -cname switches: login accepted", err)
    if err is None:
        ok(one(s, "show statement_timeout") == "1234ms", "-c statement_timeout=1234 applied",
           one(s, "show statement_timeout"))
        ok(one(s, "show search_path") == "s1, public", "--search-path=s1,\\ public applied (escaped space, dash)",
           one(s, "show search_path"))
        ok(one(s, "show jit") == "off", "-cjit=off applied")
        ok(one(s, "select current_setting('myapp.tenant')") == "a b", "a custom setting with an escaped space")
        ok(one(s, "select v from t") == "one", "a table resolved through the client's search_path")
    s.close()
    s, err = login(p.port, [("statement_timeout", "2500"), ("search_path", "s2"), ("jit", "off"),
                            ("options", "-c statement_timeout=1")])
    ok(err is None, "statement_timeout, search_path and jit as startup parameters: login accepted", err)
    if err is None:
        ok(one(s, "show statement_timeout") == "2500ms", "an explicit parameter wins over options, as in PostgreSQL",
           one(s, "show statement_timeout"))
        ok(one(s, "select v from t") == "two" and one(s, "show jit") == "off", "search_path and jit applied")
    s.close()
    s, err = login(p.port, [])
    ok(err is None and one(s, "show statement_timeout") == "0" and one(s, "show search_path") == DEFAULT_PATH,
       "a client without settings gets the server's defaults on the same connection",
       (err, one(s, "show statement_timeout"), one(s, "show search_path")))
    s.close()
    p.stop()


def test_reported_setting():
    p = Pooler("startreport", pool_size=1, max_overflow=0)
    body = struct.pack("!I", 196608) + b"user\0app\0database\0appdb\0options\0-c default_transaction_read_only=on\0\0"
    s = socket.create_connection(("127.0.0.1", p.port), 10)
    s.settimeout(10)
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    reported = None
    while True:
        t, b = read_msg(s)
        if t in (None, b"Z", b"E"):
            break
        if t == b"S" and b.split(b"\0")[0] == b"default_transaction_read_only":
            reported = b.split(b"\0")[1].decode()
    ok(reported == "on", "a reported parameter set at login: the client's ParameterStatus says its value", reported)
    ok(one(s, "show default_transaction_read_only") == "on", "and the server has it")
    s.close()
    p.stop()


def alternate(p, mode):
    a, err_a = login(p.port, [("options", "-c search_path=s1")])
    b, err_b = login(p.port, [("search_path", "s2")])
    c, err_c = login(p.port, [])
    ok(err_a is None and err_b is None and err_c is None, "%s: three logins accepted" % mode, (err_a, err_b, err_c))
    seen = []
    for _ in range(3):
        for name, s in (("a", a), ("b", b), ("c", c)):
            seen.append((name, one(s, "show search_path"), one(s, "select v from t"), one(s, "select pg_backend_pid()")))
    pids = set(x[3] for x in seen)
    ok(len(pids) == 1, "%s: the clients alternate on one server connection" % mode, pids)
    ok(all(x[1] == "s1" and x[2] == "one" for x in seen if x[0] == "a"),
       "%s: client a always sees search_path s1 and s1.t" % mode, [x for x in seen if x[0] == "a"])
    ok(all(x[1] == "s2" and x[2] == "two" for x in seen if x[0] == "b"),
       "%s: client b always sees search_path s2 and s2.t" % mode, [x for x in seen if x[0] == "b"])
    ok(all(x[1] == DEFAULT_PATH and x[2][0] == "42P01" for x in seen if x[0] == "c"),
       "%s: client c, without settings, sees the server's default (no t found)" % mode,
       [x for x in seen if x[0] == "c"])
    for s in (a, b, c):
        s.close()


def test_follow_client():
    schemas()
    proxy = SetCounter()
    p = proxied_pooler("startfollow", proxy, pool_size=1, max_overflow=0)
    alternate(p, "transaction mode")
    a, _ = login(p.port, [("options", "-c search_path=s1")])
    a2, _ = login(p.port, [("options", "-c search_path=s1")])
    one(a, "select 1")
    before = proxy.sets()
    answers = [one(a, "select v from t"), one(a2, "select v from t"), one(a, "select v from t")]
    ok(answers == ["one"] * 3 and proxy.sets() == before,
       "a server that already has the client's settings gets no SET (same settings, other client too)",
       (answers, before, proxy.sets()))
    a.close()
    a2.close()
    p.stop()
    proxy.close()


def test_session_mode():
    schemas()
    p = Pooler("startsession", pool_mode="session", pool_size=1, max_overflow=0, pool_timeout=60)
    seen = []
    for params in ([("options", "-c search_path=s1 -c statement_timeout=1234")], [("search_path", "s2")], []):
        s, err = login(p.port, params)
        seen.append((err, one(s, "show search_path"), one(s, "show statement_timeout"), one(s, "select v from t"),
                     one(s, "select pg_backend_pid()")))
        s.close()
    ok(seen[0][:4] == (None, "s1", "1234ms", "one"), "session mode: options applied to the session", seen[0])
    ok(seen[1][:4] == (None, "s2", "0", "two"), "session mode: the next session on that server has its own, "
                                                "not the previous one's", seen[1])
    ok(seen[2][1:3] == (DEFAULT_PATH, "0") and seen[2][3][0] == "42P01",
       "session mode: a session without settings gets the server's defaults", seen[2])
    ok(len(set(x[4] for x in seen)) == 1, "session mode: all three used the same server connection",
       [x[4] for x in seen])
    p.stop()


def test_session_alternate():
    """Session mode with transaction-length sessions: the same alternation holds."""
    schemas()
    p = Pooler("startsessalt", pool_mode="session", pool_size=1, max_overflow=0, pool_timeout=60)
    for name, params, want in (("a", [("options", "-c search_path=s1")], ("s1", "one")),
                               ("b", [("search_path", "s2")], ("s2", "two")),
                               ("a", [("options", "-c search_path=s1")], ("s1", "one"))):
        s, err = login(p.port, params)
        got = (one(s, "show search_path"), one(s, "select v from t"))
        s.sendall(b"X\0\0\0\4")
        s.close()
        ok(err is None and got == want, "session mode: client %s sees its own search_path and table" % name, got)
    p.stop()


def test_refused():
    schemas()
    p = Pooler("startrefused", pool_size=1, max_overflow=0)
    good, _ = login(p.port, [])
    pid = one(good, "select pg_backend_pid()")
    s, err = login(p.port, [("statement_timeout", "abc")])
    answer = ask(s, "insert into public.marker values ('ran')") if err is None else ([], err)
    ok(answer[1] and answer[1][0] == "22023" and "statement_timeout" in answer[1][1],
       "a value the server refuses: 22023 naming the parameter", answer)
    ok(marker_rows() == 0, "the refused client's statement never ran without its setting", marker_rows())
    s.close()
    s, err = login(p.port, [("options", "-c no_such_setting=1")])
    answer = ask(s, "select 1") if err is None else ([], err)
    ok(answer[1] and answer[1][0] == "42704" and "no_such_setting" in answer[1][1],
       "an unknown parameter: 42704 naming it", answer)
    s.close()
    ok(one(good, "select pg_backend_pid()") == pid and one(good, "show statement_timeout") == "0",
       "the other client goes on, on the same server connection, with the server's defaults")
    s, err = login(p.port, [("replication", "database")])
    ok(err and err[0] == "0A000" and "replication" in err[1], "replication: 0A000 naming it at login", err)
    s.close()
    s, err = login(p.port, [("options", "-B 100")])
    ok(err and err[0] == "0A000" and "-B" in err[1], "a switch other than -c/--: 0A000 naming it at login", err)
    s.close()
    s, err = login(p.port, [("options", "-c statement_timeout")])
    ok(err and err[0] == "42601" and "statement_timeout" in err[1], "-c without a value: 42601 naming it", err)
    s.close()
    ok(one(good, "select 1") == "1" and p.alive(), "the pooler serves everyone else")
    good.close()
    p.stop()


# ---- real clients, more clients than server connections ----

def check_clients(mode, label, conns, run):
    """conns: [(expected statement_timeout, connection)]; run(conn, sql) -> first value.
    Rounds over every client; each must always see its own."""
    seen = []
    for _ in range(3):
        for want, c in conns:
            seen.append((want, run(c, "show statement_timeout"), run(c, "select v from t")))
    ok(all(x[1] == x[0] and x[2] == "one" for x in seen),
       "%s, %s: %d clients each always see their own statement_timeout and search_path" % (mode, label, len(conns)),
       [x for x in seen if x[1] != x[0] or x[2] != "one"][:5])


def pg3_run(c, sql):
    return str(c.execute(sql).fetchone()[0])


def test_psycopg(mode="transaction"):
    schemas()
    p = Pooler("startpg3" + mode, pool_mode=mode, pool_size=2, max_overflow=0, pool_timeout=60)
    if mode == "transaction":
        conns = []
        for i in range(6):
            conns.append(("%dms" % (1101 + i), psycopg.connect(
                host="127.0.0.1", port=p.port, user="app", password="app-secret", dbname="appdb", autocommit=True,
                options="-c statement_timeout=%d -c search_path=s1" % (1101 + i), connect_timeout=10)))
        check_clients(mode, "psycopg 3 options=", conns, pg3_run)
        for _, c in conns:
            c.close()
        conns = [("%dms" % (2101 + i), p.connect(options="-c statement_timeout=%d -c search_path=s1" % (2101 + i)))
                 for i in range(6)]
        check_clients(mode, "psycopg2 options=", conns, q1)
        for _, c in conns:
            c.close()
    else:
        seen = []
        for i in range(4):
            c = psycopg.connect(host="127.0.0.1", port=p.port, user="app", password="app-secret", dbname="appdb",
                                autocommit=True, options="-c statement_timeout=%d -c search_path=s1" % (1234 + i),
                                connect_timeout=10)
            seen.append(("%dms" % (1234 + i), pg3_run(c, "show statement_timeout"), pg3_run(c, "select v from t")))
            c.close()
        ok(all(x[0] == x[1] and x[2] == "one" for x in seen),
           "session mode, psycopg 3 options=: sessions one after another each see their own", seen)
    p.stop()


def test_psycopg_session():
    test_psycopg("session")


def test_psql_pgoptions():
    schemas()
    for mode in ("transaction", "session"):
        p = Pooler("startpsql" + mode, pool_mode=mode, pool_size=1, max_overflow=0, pool_timeout=60)
        outs = []
        for tmo, sp, want in ((4321, "s2", "two"), (1234, "s1", "one")):
            env = dict(os.environ, PGPASSWORD="app-secret",
                       PGOPTIONS="-c statement_timeout=%d -c search_path=%s -c perfopt.cache_mode=off" % (tmo, sp))
            r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-d", "appdb",
                                "-c", "show statement_timeout", "-c", "select v from t",
                                "-c", "show perfopt.cache_mode"],
                               capture_output=True, text=True, env=env, timeout=30)
            outs.append((r.stdout.split(), ["%dms" % tmo, want, "off"], r.stderr.strip()))
        ok(all(o[0] == o[1] for o in outs), "%s mode: psql with PGOPTIONS (-c ... -c perfopt.cache_mode=off)" % mode,
           outs)
        p.stop()


def test_asyncpg():
    try:
        import asyncpg
    except ImportError:
        skip("asyncpg server_settings", "asyncpg is not installed")
        return
    schemas()

    async def run(port, mode):
        if mode == "transaction":
            conns = []
            for i in range(5):
                conns.append(("%dms" % (3101 + i), await asyncpg.connect(
                    host="127.0.0.1", port=port, user="app", password="app-secret", database="appdb",
                    statement_cache_size=0,
                    server_settings={"statement_timeout": str(3101 + i), "search_path": "s1"})))
            seen = []
            for _ in range(3):
                for want, c in conns:
                    seen.append((want, await c.fetchval("show statement_timeout"), await c.fetchval("select v from t")))
            for _, c in conns:
                await c.close()
            return seen
        seen = []
        for i in range(3):
            c = await asyncpg.connect(host="127.0.0.1", port=port, user="app", password="app-secret",
                                      database="appdb", statement_cache_size=0,
                                      server_settings={"statement_timeout": str(3100 + i), "search_path": "s1"})
            seen.append(("%dms" % (3100 + i), await c.fetchval("show statement_timeout"),
                         await c.fetchval("select v from t")))
            await c.close()
        return seen
    for mode in ("transaction", "session"):
        p = Pooler("startasyncpg" + mode, pool_mode=mode, pool_size=2, max_overflow=0, pool_timeout=60)
        seen = asyncio.run(run(p.port, mode))
        ok(all(x[0] == x[1] and x[2] == "one" for x in seen),
           "%s mode: asyncpg server_settings follow each client" % mode, [x for x in seen if x[0] != x[1]][:5])
        p.stop()



def test_node_postgres():
    env = node_env()
    if not env:
        skip("node-postgres statement_timeout", "node or npm's pg is not installed")
        return
    schemas()
    for mode in ("transaction", "session"):
        p = Pooler("startnode" + mode, pool_mode=mode, pool_size=2, max_overflow=0, pool_timeout=60)
        r = subprocess.run(["node", os.path.join(DRIVERS_DIR, "startup_params.js"), str(p.port), mode],
                           capture_output=True, text=True, env=env, timeout=120)
        try:
            seen = json.loads(r.stdout)
        except ValueError:
            seen = None
        ok(seen and all(x[0] == x[1] and x[2] == "one" for x in seen),
           "%s mode: node-postgres statement_timeout and options follow each client" % mode,
           seen if seen else (r.stdout[-300:], r.stderr[-500:]))
        p.stop()


TESTS = [
    ("startup_options_forms", test_options_forms),
    ("startup_reported_setting", test_reported_setting),
    ("startup_follow_client", test_follow_client),
    ("startup_session_mode", test_session_mode),
    ("startup_session_alternate", test_session_alternate),
    ("startup_refused", test_refused),
    ("startup_psycopg", test_psycopg),
    ("startup_psycopg_session", test_psycopg_session),
    ("startup_psql_pgoptions", test_psql_pgoptions),
    ("startup_asyncpg", test_asyncpg),
    ("startup_node_postgres", test_node_postgres),
]
