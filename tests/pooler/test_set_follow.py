"""tests/pooler/test_set_follow.py: a client's own SETs follow it in
transaction mode (pooler/txn/startup_settings.c, with the extension's
perfopt.report_settings, extension/common/setting_report.c).  On a
PostgreSQL with perfopt preloaded (a cluster of its own, started here):
with one server connection and two clients taking turns on it, client A's
`SET search_path = s1` and client B's `SET search_path = s2` each hold for
their own client only (SHOW and a table resolved through it), as do SET
statement_timeout and RESET; SET LOCAL and a rolled-back SET are not
carried; the extra ParameterStatus messages the pooler asked for never
reach a client.  The extension's report itself is checked on a direct
connection with psycopg's parameter_status().  Without the extension (the
suite's server) the pooler's startup packet is still accepted."""
import os
import socket
import struct
import subprocess

import psycopg

from harness import PG_HOST, PG_PORT, Pooler, ok, skip
from test_startup_params import schemas
from wire import query, read_msg, session, sqlstate_of, startup_packet

ROOT = os.environ.get("PERFOPT_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
DEFAULT_PATH = '"$user", public'
TENANT = "select coalesce(current_setting('myapp.tenant', true), '')"
NATIVE = {"application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
          "in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser", "server_encoding",
          "server_version", "session_authorization", "standard_conforming_strings", "TimeZone"}


def one(s, sql):
    """One simple query: its first value, else its command tag, or the error's SQLSTATE."""
    s.sendall(query(sql))
    val = tag = err = None
    while True:
        t, b = read_msg(s)
        if t is None:
            return "closed"
        if t == b"D" and val is None:
            n = struct.unpack("!i", b[2:6])[0]
            val = None if n < 0 else b[6:6 + n].decode()
        elif t == b"C" and tag is None:
            tag = b.rstrip(b"\0").decode()
        elif t == b"E" and err is None:
            err = sqlstate_of(b)
        elif t == b"Z":
            return err or (val if val is not None else tag)


def start_cluster():
    """A PostgreSQL with perfopt preloaded: (port, dir), or None when it cannot start."""
    r = subprocess.run(["bash", "-c", ". tests/lib/cluster.sh; cluster_start setfollow "
                        "\"shared_preload_libraries = 'perfopt'\" && echo \"$setfollow_PORT $setfollow_DIR\""],
                       cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        return None
    port, d = r.stdout.split()
    return int(port), d


def stop_cluster(d):
    subprocess.run(["bash", "-c", '. tests/lib/cluster.sh; _cluster_stop_dir "$1"', "-", d], cwd=ROOT)


def make_schemas(port):
    c = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True)
    for s, v in (("s1", "one"), ("s2", "two")):
        c.execute("create schema %s; create table %s.t (v text); insert into %s.t values ('%s')" % (s, s, s, v))
    c.close()


def login_params(port):
    """The ParameterStatus names a client gets at login, and its socket."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(10)
    s.sendall(startup_packet("postgres", "postgres"))
    names = set()
    while True:
        t, b = read_msg(s)
        if t is None or t == b"Z":
            return names, s
        if t == b"S":
            names.add(b.split(b"\0")[0].decode())


def check_direct_report(port):
    c = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True,
                        options="-c perfopt.report_settings=on")
    ok(c.info.parameter_status("search_path") == DEFAULT_PATH,
       "direct, report_settings on in the startup packet: search_path reported at login",
       c.info.parameter_status("search_path"))
    c.execute("set search_path = s1, public")
    ok(c.info.parameter_status("search_path") == "s1, public", "direct: SET search_path reported",
       c.info.parameter_status("search_path"))
    c.execute("begin")
    c.execute("set local statement_timeout = 777")
    ok(c.info.parameter_status("statement_timeout") == "777", "direct: SET LOCAL reported (no unit, as PostgreSQL reports)",
       c.info.parameter_status("statement_timeout"))
    c.execute("commit")
    ok(c.info.parameter_status("statement_timeout") == "0", "direct: its revert at commit reported",
       c.info.parameter_status("statement_timeout"))
    c.execute("set perfopt.report_settings = off")
    c.execute("set search_path = s2")
    ok(c.info.parameter_status("search_path") == "s1, public", "direct: turned off, no more reports",
       c.info.parameter_status("search_path"))
    c.close()
    c = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True)
    c.execute("set search_path = s2")
    ok(c.info.parameter_status("search_path") is None, "direct, not asked for: search_path never reported",
       c.info.parameter_status("search_path"))
    c.close()


def check_alternate(p):
    a = session(p.port)
    b = session(p.port)
    r = (one(a, "set search_path = s1"), one(b, "set search_path = s2"))
    ok(r == ("SET", "SET"), "A sets search_path = s1, B s2", r)
    seen = []
    for _ in range(3):
        seen.append((one(a, "show search_path"), one(a, "select v from t"),
                     one(b, "show search_path"), one(b, "select v from t")))
    ok(all(x == ("s1", "one", "s2", "two") for x in seen),
       "A (s1) and B (s2) alternating on one server connection each see their own search_path and table", seen)
    one(a, "set statement_timeout = 1234")
    r = (one(a, "show statement_timeout"), one(b, "show statement_timeout"), one(a, "show statement_timeout"))
    ok(r == ("1234ms", "0", "1234ms"), "SET statement_timeout follows A only", r)
    one(b, "begin")
    one(b, "set local search_path = s1")
    inside = one(b, "select v from t")
    one(b, "commit")
    r = (inside, one(a, "show search_path"), one(b, "show search_path"), one(b, "select v from t"))
    ok(r == ("one", "s1", "s2", "two"), "SET LOCAL holds inside its transaction only, not carried", r)
    one(b, "begin")
    one(b, "set search_path = s1")
    one(b, "rollback")
    r = (one(a, "show search_path"), one(b, "show search_path"))
    ok(r == ("s1", "s2"), "a SET rolled back is not carried", r)
    one(a, "reset search_path")
    r = (one(a, "show search_path"), one(b, "show search_path"), one(a, "show search_path"))
    ok(r == (DEFAULT_PATH, "s2", DEFAULT_PATH), "RESET search_path follows A, B keeps s2", r)
    one(a, "set myapp.tenant = 'acme'")
    r = (one(a, TENANT), one(b, TENANT), one(a, TENANT))
    ok(r[0] == "acme" and r[2] == "acme" and r[1] == "",
       "a custom setting first set after login (never reported) follows A only", r)
    one(a, "reset all")
    r = (one(a, "show statement_timeout"), one(b, "show statement_timeout"), one(a, "show statement_timeout"),
         one(a, TENANT))
    ok(r[:3] == ("0", "0", "0") and r[3] == "", "RESET ALL follows A", r)
    a.close()
    b.close()
    c = session(p.port)
    r = (one(c, "show search_path"), one(c, "show statement_timeout"))
    ok(r == (DEFAULT_PATH, "0"), "a new client gets the server's defaults, not B's search_path", r)
    c.close()


def test_with_extension():
    started = start_cluster()
    if not started:
        skip("SETs follow the client with perfopt.report_settings", "no PostgreSQL with perfopt preloaded")
        return
    port, d = started
    try:
        make_schemas(port)
        check_direct_report(port)
        p = Pooler("setfollow", dbs={"postgres": "host=127.0.0.1 port=%d" % port},
                   pool_mode="transaction", pool_size=1, max_overflow=0)
        names, s = login_params(p.port)
        s.close()
        ok(names and names <= NATIVE, "through the pooler, a client's login reports only what PostgreSQL reports",
           sorted(names - NATIVE))
        check_alternate(p)
        p.stop()
    finally:
        stop_cluster(d)


def test_without_extension():
    """The suite's server has no perfopt: the placeholder is accepted, and the
    simplest SET and RESET statements are recognised by the pooler."""
    schemas()
    p = Pooler("setfollow_plain", dbs={"appdb": "host=%s port=%d dbname=appdb" % (PG_HOST, PG_PORT)},
               pool_mode="transaction", pool_size=1, max_overflow=0)
    a = session(p.port, "postgres", "appdb")
    b = session(p.port, "postgres", "appdb")
    r = one(a, "show perfopt.report_settings")
    ok(r == "on", "without the extension the startup packet's placeholder is accepted", r)
    r = (one(a, "SET search_path = s1"), one(b, "set session search_path to s2;"))
    ok(r == ("SET", "SET"), "without the extension: A sets search_path = s1, B s2", r)
    seen = [(one(a, "show search_path"), one(a, "select v from t"),
             one(b, "show search_path"), one(b, "select v from t")) for _ in range(2)]
    ok(all(x == ("s1", "one", "s2", "two") for x in seen),
       "without the extension: A and B alternating on one connection each keep their own search_path", seen)
    one(a, "set statement_timeout = 1234")
    r = (one(a, "show statement_timeout"), one(b, "show statement_timeout"))
    ok(r == ("1234ms", "0"), "without the extension: SET statement_timeout follows A only", r)
    r = one(b, "set statement_timeout = 'nonsense'")
    r = (r, one(b, "show statement_timeout"), one(a, "show statement_timeout"))
    ok(r == ("22023", "0", "1234ms"), "without the extension: a refused SET is not recorded", r)
    one(b, "begin")
    one(b, "set local search_path = s1")
    one(b, "commit")
    r = (one(b, "show search_path"), one(a, "show search_path"))
    ok(r == ("s2", "s1"), "without the extension: SET LOCAL not carried", r)
    one(a, "reset search_path")
    one(b, "set search_path to default")
    r = (one(a, "show search_path"), one(b, "show search_path"), one(a, "reset all"),
         one(b, "show statement_timeout"), one(a, "show statement_timeout"))
    ok(r == (DEFAULT_PATH, DEFAULT_PATH, "RESET", "0", "0"),
       "without the extension: RESET name, SET TO DEFAULT and RESET ALL follow", r)
    a.close()
    b.close()


TESTS = [
    ("set_follow_extension", test_with_extension),
    ("set_follow_without_extension", test_without_extension),
]
