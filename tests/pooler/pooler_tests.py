#!/usr/bin/python3
"""perfopt-pooler tests: real PostgreSQL (started by tests/pooler/run), real
clients (psycopg2, psql, pgbench, raw sockets for malformed input).  Every
pool parameter is proven by what the server sees: pg_stat_activity counts,
backend pids, backend_start ages, pg_stat_database counters.  Prints one
"ok - ..." / "not ok - ..." line per assertion and ends with
"N passed, N failed"."""

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from io import StringIO

import psycopg2
import psycopg2.extensions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wire import free_port, rss_kb, startup_packet  # noqa: E402

PG_HOST = os.environ["PG_HOST"]
PG_PORT = int(os.environ["PG_PORT"])
PG_DATA = os.environ["PG_DATA"]
PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
BIN = os.environ["POOLER_BIN"]
TMP = tempfile.mkdtemp(prefix="perfopt-pooler-tests.")
os.chmod(TMP, 0o755)

PASSED = 0
FAILED = 0
POOLERS = []


def ok(cond, desc, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok - " + desc, flush=True)
    else:
        FAILED += 1
        print("not ok - %s%s" % (desc, (": " + str(detail)) if detail != "" else ""), flush=True)


def direct(db="postgres"):
    c = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=db)
    c.autocommit = True
    return c


def q1(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def servers(user="app", db="appdb", state=None):
    """Backends the pooler holds, as the server sees them."""
    c = direct()
    try:
        sql = ("select count(*) from pg_stat_activity where usename = %s and datname = %s "
               "and backend_type = 'client backend'")
        args = [user, db]
        if state:
            sql += " and state = %s"
            args.append(state)
        return q1(c, sql, args)
    finally:
        c.close()


USERLIST = os.path.join(TMP, "userlist.txt")


def write_userlist():
    c = direct()
    scram = q1(c, "select rolpassword from pg_authid where rolname = 'scramonly'")
    c.close()
    with open(USERLIST, "w") as f:
        f.write('; test users\n')
        f.write('"app" "app-secret"\n')
        f.write('"md5user" "md5%s"\n' % __import__("hashlib").md5(b"md5-secretmd5user").hexdigest())
        f.write('"scramonly" "%s"\n' % scram)
        f.write('"postgres" ""\n')


class Pooler:
    def __init__(self, name, auth="trust", dbs=None, preexec=None, **settings):
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(TMP, name)
        os.makedirs(self.dir, exist_ok=True)
        self.ini = os.path.join(self.dir, "pooler.ini")
        self.log = os.path.join(self.dir, "pooler.log")
        lines = ["[databases]"]
        if dbs is None:
            dbs = {"appdb": "host=%s port=%d dbname=appdb" % (PG_HOST, PG_PORT),
                   "postgres": "host=%s port=%d" % (PG_HOST, PG_PORT)}
        for k, v in dbs.items():
            lines.append("%s = %s" % (k, v))
        lines += ["[pooler]", "listen_addr = 127.0.0.1", "listen_port = %d" % self.port,
                  "unix_socket_dir = %s" % self.dir, "auth_type = %s" % auth]
        lines.append("auth_file = %s" % USERLIST)   # also the server passwords
        for k, v in settings.items():
            lines.append("%s = %s" % (k, v))
        with open(self.ini, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([BIN, "-c", self.ini], stdout=open(self.log, "a"),
                                     stderr=subprocess.STDOUT, preexec_fn=preexec)
        POOLERS.append(self)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError("pooler %s did not start: %s" % (name, open(self.log).read()))

    def connect(self, user="app", password="app-secret", db="appdb", autocommit=True, **kw):
        c = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                             dbname=db, connect_timeout=10, **kw)
        c.autocommit = autocommit
        return c

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in POOLERS:
            POOLERS.remove(self)


def read_msg(s):
    hdr = b""
    while len(hdr) < 5:
        chunk = s.recv(5 - len(hdr))
        if not chunk:
            return None, None
        hdr += chunk
    n = struct.unpack("!I", hdr[1:5])[0] - 4
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None, None
        body += chunk
    return hdr[:1], body


def sqlstate_of(body):
    for f in body.split(b"\0"):
        if f[:1] == b"C":
            return f[1:].decode()
    return "?"


def raw_connect(port, user, db, password=None):
    """Log in speaking the protocol ourselves (md5 and SCRAM included), so the
    SQLSTATE of a login failure is visible.  Returns 'ok' or the SQLSTATE."""
    import base64
    import hashlib
    import hmac
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(10)
    s.sendall(startup_packet(user, db))
    cnonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=,r=" + cnonce
    try:
        while True:
            t, body = read_msg(s)
            if t is None:
                return "closed"
            if t == b"E":
                return sqlstate_of(body)
            if t == b"Z":
                return "ok"
            if t != b"R":
                continue
            code = struct.unpack("!I", body[:4])[0]
            if code == 5:
                inner = hashlib.md5((password + user).encode()).hexdigest()
                resp = "md5" + hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                pw = resp.encode() + b"\0"
                s.sendall(b"p" + struct.pack("!I", len(pw) + 4) + pw)
            elif code == 10:
                msg = ("n,," + first_bare).encode()
                pl = b"SCRAM-SHA-256\0" + struct.pack("!I", len(msg)) + msg
                s.sendall(b"p" + struct.pack("!I", len(pl) + 4) + pl)
            elif code == 11:
                server_first = body[4:].decode()
                attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                             int(attrs["i"]))
                ck = hmac.new(salted, b"Client Key", "sha256").digest()
                sk = hashlib.sha256(ck).digest()
                without = "c=biws,r=" + attrs["r"]
                auth = ",".join([first_bare, server_first, without]).encode()
                sig = hmac.new(sk, auth, "sha256").digest()
                proof = base64.b64encode(bytes(a ^ b for a, b in zip(ck, sig))).decode()
                msg = (without + ",p=" + proof).encode()
                s.sendall(b"p" + struct.pack("!I", len(msg) + 4) + msg)
    finally:
        s.close()


def err_code(fn):
    """Run fn; return (pgcode or 'none', message)."""
    try:
        fn()
        return ("none", "")
    except psycopg2.Error as e:
        return (e.pgcode or "nocode", str(e).strip())


def peak_monitor(stop, out, user="app", db="appdb"):
    c = direct()
    while not stop.is_set():
        n = q1(c, "select count(*) from pg_stat_activity where usename = %s and datname = %s "
                  "and backend_type = 'client backend'", (user, db))
        out.append(n)
        time.sleep(0.03)
    c.close()


def run_parallel(n, fn):
    errors = []

    def wrap(i):
        try:
            fn(i)
        except Exception as e:
            errors.append(repr(e))
    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def refused_setting(name, pooler_lines, key, value):
    """A [pooler] file whose last line sets key = value must be refused by
    --check, naming the line, the key and the value."""
    path = os.path.join(TMP, name + ".ini")
    lines = ["[databases]", "appdb = host=127.0.0.1", "[pooler]"] + pooler_lines + ["%s = %s" % (key, value)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run([BIN, "-c", path, "--check"], capture_output=True, text=True)
    ok(r.returncode != 0 and key in r.stderr and value in r.stderr and ":%d:" % len(lines) in r.stderr,
       "%s = %s: refused with file, line and key" % (key, value), r.stderr)


def wait_for(cond, timeout=5.0, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ---------------------------------------------------------------- tests

def test_cli():
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True)
    ok(r.returncode == 0 and "Usage: perfopt-pooler" in r.stdout and "--config" in r.stdout,
       "--help prints usage and exits 0", r.stdout[:200])
    r = subprocess.run([BIN, "--version"], capture_output=True, text=True)
    ok(r.returncode == 0 and r.stdout.startswith("perfopt-pooler "), "--version", r.stdout)
    bad = os.path.join(TMP, "bad.ini")
    with open(bad, "w") as f:
        f.write("[databases]\nappdb = host=/tmp\n\n[pooler]\npool_size = 20\nmax_overflow = lots\n")
    r = subprocess.run([BIN, "-c", bad], capture_output=True, text=True)
    ok(r.returncode != 0 and "%s:6:" % bad in r.stderr and '"max_overflow"' in r.stderr,
       "bad value: non-zero exit, error names file, line 6 and key", r.stderr)
    with open(bad, "w") as f:
        f.write("[databases]\nappdb = host=/tmp pool_sise=3\n")
    r = subprocess.run([BIN, "-c", bad], capture_output=True, text=True)
    ok(r.returncode != 0 and "%s:2:" % bad in r.stderr and "pool_sise" in r.stderr,
       "unknown per-database option names file, line and key", r.stderr)
    with open(bad, "w") as f:
        f.write("[databases]\nappdb = host=/tmp\n[pooler]\nno_such_setting = 1\n")
    r = subprocess.run([BIN, "-c", bad], capture_output=True, text=True)
    ok(r.returncode != 0 and ":4:" in r.stderr and "no_such_setting" in r.stderr,
       "unknown setting rejected with line and key", r.stderr)
    r = subprocess.run([BIN, "-c", os.path.join(TMP, "missing.ini")], capture_output=True, text=True)
    ok(r.returncode != 0 and "missing.ini" in r.stderr, "missing config file: clear error", r.stderr)
    sample = os.path.join(os.environ["PERFOPT_ROOT"], "pooler", "perfopt-pooler.ini")
    r = subprocess.run([BIN, "-c", sample, "--check"], capture_output=True, text=True)
    ok(r.returncode == 0, "sample perfopt-pooler.ini is valid", r.stderr)


def test_basic(p):
    c = p.connect()
    d = direct("appdb")
    ok(q1(c, "select 40 + 2") == 42, "query through the pooler over TCP")
    ok(c.get_parameter_status("server_version") == d.get_parameter_status("server_version")
       and c.get_parameter_status("server_encoding") == d.get_parameter_status("server_encoding"),
       "client sees the real server's startup parameters",
       (c.get_parameter_status("server_version"), d.get_parameter_status("server_version")))
    c.close()
    d.close()
    u = psycopg2.connect(host=p.dir, port=p.port, user="app", password="app-secret", dbname="appdb")
    ok(q1(u, "select current_user") == "app", "query through the pooler's Unix socket")
    u.close()
    r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app",
                        "-d", "appdb", "-c", "select 'via psql'", "-c", "select 1/0"],
                       capture_output=True, text=True, env=dict(os.environ, PGPASSWORD="app-secret"))
    ok("via psql" in r.stdout and "division by zero" in r.stderr, "psql: result and ErrorResponse pass through",
       r.stdout + r.stderr)
    code = raw_connect(p.port, "postgres", "nosuchdb")
    ok(code == "3D000", "unknown database: 3D000", code)
    c = p.connect()
    cur = c.cursor()
    cur.execute("select x, repeat('y', 100000) from generate_series(1, 50) x")
    rows = cur.fetchall()
    ok(len(rows) == 50 and len(rows[49][1]) == 100000, "large result (5 MB) streams through intact")
    cur.execute("select %s::text", ("z" * 300000,))
    ok(cur.fetchone()[0] == "z" * 300000, "large query parameter (300 kB) forwarded intact")
    notices = []
    cur.execute("do $$ begin raise notice 'hello notice'; end $$")
    notices = c.notices
    ok(any("hello notice" in n for n in notices), "NoticeResponse passed through", notices)
    c.close()


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


def test_pool_size():
    p = Pooler("poolsize", pool_size=3, max_overflow=0, pool_timeout=20)
    peaks, stop = [], threading.Event()
    mon = threading.Thread(target=peak_monitor, args=(stop, peaks))
    mon.start()
    pids = set()

    def work(i):
        c = p.connect()
        pids.add(q1(c, "select pg_backend_pid() from (select pg_sleep(0.3)) s"))
        c.close()
    errs = run_parallel(12, work)
    stop.set()
    mon.join()
    ok(not errs, "12 clients served by pool_size 3", errs[:2])
    ok(max(peaks) == 3, "pool_size=3: server never sees more than 3 connections", max(peaks))
    ok(len(pids) == 3, "pool_size=3: 12 clients ran on exactly 3 backend pids", sorted(pids))
    ok(servers() == 3, "pool_size connections kept open after clients left", servers())
    p.stop()
    ok(wait_for(lambda: servers() == 0), "stopping the pooler closes its server connections")


def test_overflow():
    p = Pooler("overflow", pool_size=2, max_overflow=2, pool_timeout=20)
    peaks, stop = [], threading.Event()
    mon = threading.Thread(target=peak_monitor, args=(stop, peaks))
    mon.start()
    errs = run_parallel(8, lambda i: (lambda c: (q1(c, "select pg_sleep(0.4)::text"), c.close()))(p.connect()))
    stop.set()
    mon.join()
    ok(not errs, "8 clients served by pool_size 2 + max_overflow 2", errs[:2])
    ok(max(peaks) == 4, "max_overflow=2: peak is pool_size + max_overflow = 4", max(peaks))
    ok(wait_for(lambda: servers() == 2, 2), "overflow connections closed when released: back to 2", servers())
    p.stop()
    p = Pooler("overflow_idle", pool_size=1, max_overflow=1, overflow_idle_timeout=1.5, pool_timeout=20)
    run_parallel(2, lambda i: (lambda c: (q1(c, "select pg_sleep(0.3)::text"), c.close()))(p.connect()))
    ok(servers() == 2, "overflow_idle_timeout: overflow connection kept idle at first", servers())
    ok(wait_for(lambda: servers() == 1, 4), "overflow_idle_timeout: closed after 1.5 s idle", servers())
    p.stop()


def raw_query(port, sql, timeout=10):
    """Log in as postgres (trust) and run one query; returns (sqlstate or 'ok', message, seconds)."""
    s, hello = raw_login(port)
    if not hello.endswith(b"Z\0\0\0\5I"):
        s.close()
        i = hello.find(b"E")
        return (sqlstate_of(hello[i + 5:]) if i >= 0 else "closed", "login failed", 0)
    s.settimeout(timeout)
    q = sql.encode() + b"\0"
    t0 = time.time()
    s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    try:
        while True:
            t, body = read_msg(s)
            if t is None:
                return ("closed", "", time.time() - t0)
            if t == b"E":
                msg = [f[1:].decode() for f in body.split(b"\0") if f[:1] == b"M"]
                return (sqlstate_of(body), msg[0] if msg else "", time.time() - t0)
            if t == b"Z":
                return ("ok", "", time.time() - t0)
    finally:
        s.close()


def test_pool_timeout():
    p = Pooler("timeout", pool_size=1, max_overflow=0, pool_timeout=1)
    a = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    q1(a, "select 1")             # holds the only server: transaction open
    code, msg, el = raw_query(p.port, "select 2")
    ok(code == "53300", "pool_timeout: waiting client gets SQLSTATE 53300", (code, msg))
    ok("pool_timeout" in msg, "pool_timeout: message names the setting", msg)
    ok(0.8 <= el <= 2.5, "pool_timeout=1: error after about 1 s", round(el, 2))
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
    time.sleep(2)
    pid2 = q1(c, "select pg_backend_pid()")
    c.commit()
    ok(pid1 == pid2, "pool_recycle never interrupts a transaction (same backend across 2 s)", (pid1, pid2))
    pid3 = q1(c, "select pg_backend_pid()")
    age = q1(c, "select extract(epoch from now() - backend_start) from pg_stat_activity "
                "where pid = pg_backend_pid()")
    c.commit()
    ok(pid3 != pid1, "pool_recycle=1.5: old connection replaced after release", (pid1, pid3))
    ok(float(age) < 1.5, "replacement backend is young (backend_start)", age)
    c.close()
    ok(wait_for(lambda: servers() == 0, 4), "janitor closes idle connections older than pool_recycle", servers())
    p.stop()


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
    p.stop()
    wait_for(lambda: servers() == 0)
    time.sleep(0.6)
    return xact_commits() - before


def test_pre_ping():
    on = pings_seen(pool_pre_ping="on")
    off = pings_seen(pool_pre_ping="off")
    spaced = pings_seen(pool_pre_ping="on", pre_ping_interval=60)
    ok(35 <= on - off <= 45, "pool_pre_ping=on: one ping per hand-out (40 more server transactions)",
       (on, off))
    ok(abs(spaced - off) <= 5, "pre_ping_interval=60: no ping for recently used connections", (spaced, off))
    p = Pooler("ping_dead", pool_size=1, max_overflow=0)
    c = p.connect()
    pid1 = q1(c, "select pg_backend_pid()")
    d = direct()
    q1(d, "select pg_terminate_backend(%s)", (pid1,))
    d.close()
    time.sleep(0.2)
    code, _ = err_code(lambda: q1(c, "select 1"))
    ok(code == "none", "dead idle connection replaced before the client gets it: no error", code)
    ok(q1(c, "select pg_backend_pid()") != pid1, "client now runs on a new backend")
    c.close()
    p.stop()


class KillProxy:
    """TCP proxy to PostgreSQL's Unix socket that, when armed, drops the next
    connection that sends anything: a server connection that died while idle
    without the pooler seeing it (no FIN ever reaches the pooler before it
    writes)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.armed = False
        self.killed = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.socket(socket.AF_UNIX)
            b.connect(os.path.join(PG_HOST, ".s.PGSQL.%d" % PG_PORT))
            threading.Thread(target=self.pump, args=(a, b, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(b, a, False), daemon=True).start()

    def pump(self, src, dst, from_pooler):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_pooler and self.armed:
                    self.armed = False
                    self.killed += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self):
        self.sock.close()


def test_pre_ping_dead():
    proxy = KillProxy()
    dbs = {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % proxy.port}
    for pre_ping in ("on", "off"):
        p = Pooler("ping_kill_" + pre_ping, dbs=dbs, pool_size=2, max_overflow=0, pool_pre_ping=pre_ping)
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
    ok(wait_for(lambda: servers() == 3, 3), "min_pool_size=3: three connections kept with no clients", servers())
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
    ok(0.8 <= el <= 3, "connect_timeout=1: after about 1 s", round(el, 2))
    ok(p.alive(), "pooler still running")
    p.stop()
    hole.close()


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
    p = Pooler("session", pool_mode="session", pool_size=1, max_overflow=0, pool_timeout=10)
    a = p.connect()
    pa = q1(a, "select pg_backend_pid()")
    q1(a, "set work_mem = '7MB'; prepare s1 as select 1; select 1")
    held = []

    def b_work(i):
        b = p.connect()
        t0 = time.time()
        held.append((q1(b, "show work_mem"), q1(b, "select pg_backend_pid()"), time.time() - t0))
        held.append(err_code(lambda: q1(b, "execute s1")))
        b.close()
    t = threading.Thread(target=b_work, args=(0,))
    t.start()
    time.sleep(0.6)
    ok(q1(a, "show work_mem") == "7MB", "session mode: the session keeps its own server")
    a.close()
    t.join()
    wm, pb, waited = held[0]
    ok(waited >= 0.4, "session mode: second client waited for the session to end", round(waited, 2))
    ok(pb == pa, "session mode: same server connection reused after the first client left", (pa, pb))
    ok(wm == "4MB", "server_reset_query (DISCARD ALL) reset session state", wm)
    ok(held[1][0] == "26000", "prepared statement of the previous session is gone", held[1])
    a = p.connect()
    q1(a, "listen perfopt_ch; select 1")
    d = direct("appdb")
    q1(d, "notify perfopt_ch, 'hello'; select 1")
    d.close()
    import select
    select.select([a], [], [], 3)
    a.poll()
    got = [(n.channel, n.payload) for n in a.notifies]
    ok(got == [("perfopt_ch", "hello")], "NotificationResponse (LISTEN/NOTIFY) passed through in session mode", got)
    a.close()
    p.stop()


def pgbench(port, *args, user="app", timeout=60):
    env = dict(os.environ, PGPASSWORD="app-secret")
    return subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", user] + list(args) + ["appdb"],
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_pgbench():
    env = dict(os.environ, PGPASSWORD="app-secret")
    r = subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "app", "appdb"],
                       capture_output=True, text=True, env=env)
    ok(r.returncode == 0, "pgbench -i", r.stderr[-300:])
    p = Pooler("bench_tx", pool_size=4, max_overflow=2, pool_timeout=20)
    for mode in ("simple", "extended"):
        peaks, stop = [], threading.Event()
        mon = threading.Thread(target=peak_monitor, args=(stop, peaks))
        mon.start()
        r = pgbench(p.port, "-c", "20", "-j", "2", "-T", "3", "-M", mode)
        stop.set()
        mon.join()
        good = r.returncode == 0 and "number of failed transactions: 0" in r.stdout and "tps = " in r.stdout
        ok(good, "pgbench TPC-B -M %s, 20 clients, transaction mode: no failures" % mode,
           (r.stdout + r.stderr)[-400:])
        ok(max(peaks) <= 6, "pgbench -M %s: server saw at most pool_size + max_overflow = 6" % mode, max(peaks))
    d = direct("appdb")
    bal = q1(d, "select sum(abalance) = sum(bbalance) and sum(bbalance) = sum(tbalance) from "
                "(select (select sum(abalance) from pgbench_accounts) abalance, "
                "(select sum(bbalance) from pgbench_branches) bbalance, "
                "(select sum(tbalance) from pgbench_tellers) tbalance) s")
    d.close()
    ok(bal, "TPC-B balances consistent after pooled runs")
    ok(wait_for(lambda: servers(state="idle in transaction") == 0, 2), "no server left idle in transaction")
    p.stop()
    p = Pooler("bench_session", pool_mode="session", pool_size=4, max_overflow=0, pool_timeout=20)
    r = pgbench(p.port, "-c", "4", "-j", "2", "-T", "2", "-M", "prepared", "-S")
    ok(r.returncode == 0 and "number of failed transactions: 0" in r.stdout,
       "pgbench -M prepared -S through session mode", (r.stdout + r.stderr)[-400:])
    p.stop()


def test_cancel():
    p = Pooler("cancel", pool_size=2)
    c = p.connect()
    threading.Timer(0.5, c.cancel).start()
    t0 = time.time()
    code, _ = err_code(lambda: q1(c, "select pg_sleep(20)"))
    el = time.time() - t0
    ok(code == "57014", "CancelRequest forwarded: query canceled (57014)", code)
    ok(el < 3, "cancel took effect promptly", round(el, 2))
    ok(q1(c, "select 5") == 5, "connection usable after cancel")
    c.close()
    p.stop()


def test_copy():
    p = Pooler("copy", pool_size=2)
    c = p.connect()
    cur = c.cursor()
    cur.execute("drop table if exists copy_t; create table copy_t (a int, b text)")
    data = "".join("%d\trow %d\n" % (i, i) for i in range(5000))
    cur.copy_expert("copy copy_t from stdin", StringIO(data))
    out = StringIO()
    cur.copy_expert("copy copy_t to stdout", out)
    ok(out.getvalue() == data, "COPY FROM STDIN then COPY TO STDOUT round-trips 5000 rows")
    d = direct("appdb")
    ok(q1(d, "select count(*) from copy_t") == 5000, "server holds the 5000 copied rows")
    d.close()
    code, _ = err_code(lambda: cur.copy_expert("copy copy_t from stdin", StringIO("x\ty\n")))
    ok(code == "22P02", "COPY error comes back with its SQLSTATE", code)
    ok(q1(c, "select count(*) from copy_t") == 5000, "connection fine after a failed COPY")
    r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-d", "appdb",
                        "-c", "\\copy (select a from copy_t where a < 3 order by a) to stdout"],
                       capture_output=True, text=True, env=dict(os.environ, PGPASSWORD="app-secret"))
    ok(r.stdout.split() == ["0", "1", "2"], "psql \\copy out through the pooler", r.stdout + r.stderr)
    c.close()
    p.stop()


# raw protocol helpers for malformed input
def recv_all(s, timeout=5):
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def raw_login(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(startup_packet())
    s.settimeout(5)
    data = b""
    while not data.endswith(b"Z\0\0\0\5I"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return s, data


def test_bad_input():
    p = Pooler("badinput", pool_size=2, max_packet_size=4096, startup_timeout=1)
    keeper = p.connect(user="postgres", password=None, db="postgres")
    ok(q1(keeper, "select 1") == 1, "a well-behaved client is connected")
    s, hello = raw_login(p.port)
    ok(hello.endswith(b"Z\0\0\0\5I") and b"K\0\0\0\x0c" in hello, "raw login: BackendKeyData and ReadyForQuery")
    s.sendall(b"Q" + struct.pack("!I", 2))
    data, closed = recv_all(s)
    ok(b"C08P01" in data and closed, "lying length (2) answered with 08P01 and closed", data[:80])
    s.close()
    s, _ = raw_login(p.port)
    q = b"select '" + b"x" * 6000 + b"'\0"
    s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    data, closed = recv_all(s)
    ok(b"C08P01" in data and b"max_packet_size" in data and closed, "oversized message: 08P01 and closed", data[:120])
    s.close()
    s, _ = raw_login(p.port)
    s.sendall(b"\x01" + struct.pack("!I", 4))
    data, closed = recv_all(s)
    ok(b"C08P01" in data and closed, "unknown message type: 08P01 and closed", data[:80])
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data, closed = recv_all(s)
    ok(b"C08P01" in data and closed, "garbage startup packet: 08P01 and closed", data[:80])
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(struct.pack("!II", 8, 80877103))
    ans = s.recv(1)
    ok(ans == b"N", "SSLRequest answered N", ans)
    s.sendall(struct.pack("!II", 8, 80877104))
    ans = s.recv(1)
    ok(ans == b"N", "GSSENCRequest answered N", ans)
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port))
    t0 = time.time()
    data, closed = recv_all(s, 5)
    el = time.time() - t0
    ok(closed and b"startup_timeout" in data and 0.8 <= el <= 3, "silent client closed by startup_timeout=1",
       (round(el, 2), data[:80]))
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(startup_packet()[:10])
    data, closed = recv_all(s, 5)
    ok(closed, "half a startup packet: closed after startup_timeout")
    s.close()
    ok(q1(keeper, "select 2") == 2, "the well-behaved client was served throughout")
    ok(p.alive(), "pooler survived all malformed input")
    keeper.close()
    p.stop()


def test_fd_exhaustion():
    import resource
    p = Pooler("fds", pool_size=2, preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (30, 30)))
    socks = []
    for i in range(40):
        try:
            socks.append(socket.create_connection(("127.0.0.1", p.port), 1))
        except OSError:
            pass
    time.sleep(0.5)
    cpu = sum(int(x) for x in open("/proc/%d/stat" % p.proc.pid).read().rsplit(")", 1)[1].split()[11:13])
    time.sleep(1)
    cpu2 = sum(int(x) for x in open("/proc/%d/stat" % p.proc.pid).read().rsplit(")", 1)[1].split()[11:13])
    ok(cpu2 - cpu < 30, "out of file descriptors: the pooler pauses accepting instead of spinning",
       (cpu, cpu2))
    for x in socks:
        x.close()
    time.sleep(0.5)
    c = p.connect(user="postgres", password=None, db="postgres")
    ok(q1(c, "select 7") == 7, "descriptors free again: new clients served")
    c.close()
    ok("accept failed" in open(p.log).read(), "the pause is logged")
    p.stop()


def test_max_client_conn():
    p = Pooler("maxconn", pool_size=2, max_client_conn=3)
    conns = [p.connect() for _ in range(3)]
    code = raw_connect(p.port, "postgres", "postgres")
    ok(code == "53300", "max_client_conn=3: fourth client gets 53300", code)
    code, msg = err_code(lambda: p.connect())
    ok("max_client_conn" in msg, "error names max_client_conn", msg)
    conns[0].close()
    time.sleep(0.1)
    c = p.connect()
    ok(q1(c, "select 1") == 1, "a slot frees up when a client leaves")
    c.close()
    for x in conns[1:]:
        x.close()
    p.stop()


VANISH = r"""
import psycopg2, sys, time
c = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), user="app", password="app-secret", dbname="appdb")
cur = c.cursor()
cur.execute(sys.argv[2])
print("ready", flush=True)
time.sleep(60)
"""


def vanish(port, sql):
    pr = subprocess.Popen(["/usr/bin/python3", "-c", VANISH, str(port), sql], stdout=subprocess.PIPE, text=True)
    line = pr.stdout.readline()
    pr.send_signal(signal.SIGKILL)
    pr.wait()
    return line.strip() == "ready"


def test_vanish():
    d = direct("appdb")
    q1(d, "drop table if exists vanish; create table vanish (a int); alter table vanish owner to app; select 1")
    p = Pooler("vanish", pool_size=1, max_overflow=0, pool_timeout=5)
    ok(vanish(p.port, "insert into vanish values (1)"), "client killed mid-transaction (after an INSERT)")
    ok(wait_for(lambda: servers(state="idle in transaction") == 0, 2),
       "no server connection left idle in transaction")
    c = p.connect()
    ok(q1(c, "select count(*) from vanish") == 0, "the vanished client's INSERT was rolled back")
    ok(q1(c, "select pg_current_xact_id_if_assigned() is null"), "next client gets a clean connection")
    c.close()
    ok(vanish(p.port, "select 1"), "second client killed with a transaction open (autocommit off)")
    t0 = time.time()
    c = p.connect()
    code, _ = err_code(lambda: q1(c, "select 1"))
    ok(code == "none" and time.time() - t0 < 2, "pool serves the next client at once", code)
    c.close()
    ok(wait_for(lambda: servers() <= 1, 3), "no server connection leaked (count <= pool_size)", servers())
    ok(q1(d, "select count(*) from vanish") == 0, "table still empty")
    d.close()
    p.stop()
    p = Pooler("vanish_raw", pool_size=1, max_overflow=0, pool_timeout=5)
    c = p.connect(user="postgres", password=None, db="postgres")
    pid1 = q1(c, "select pg_backend_pid()")
    s, _ = raw_login(p.port)
    parse = b"\0select 1\0\0\0"
    bind = b"\0\0\0\0\0\0\0\0"
    s.sendall(b"P" + struct.pack("!I", len(parse) + 4) + parse + b"B" + struct.pack("!I", len(bind) + 4) + bind)
    time.sleep(0.2)
    s.close()
    time.sleep(0.2)
    ok(q1(c, "select 42") == 42, "client vanished after Parse/Bind without Sync: next query answered correctly")
    pid2 = q1(c, "select pg_backend_pid()")
    ok(pid2 != pid1, "that server connection was closed, not reused", (pid1, pid2))
    s, _ = raw_login(p.port)
    s.sendall(b"Q" + struct.pack("!I", 1000) + b"select 1")
    time.sleep(0.2)
    s.close()
    time.sleep(0.2)
    ok(q1(c, "select 43") == 43, "client vanished in the middle of a message: next query answered correctly")
    ok(q1(c, "select pg_backend_pid()") != pid2, "half-written server connection closed, not reused")
    c.close()
    p.stop()


def test_restart():
    p = Pooler("restart", pool_size=5, max_overflow=0, pool_timeout=5)
    idle = p.connect()
    q1(idle, "select 1")
    env = dict(os.environ, PGPASSWORD="app-secret")
    bench = subprocess.Popen(["pgbench", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-c", "8", "-j", "2",
                              "-T", "5", "-S", "appdb"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env)
    time.sleep(1.5)
    r = subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(PG_BINDIR, "pg_ctl"), "-D", PG_DATA,
                        "-w", "-t", "60", "-m", "fast", "restart", "-l", os.path.join(os.path.dirname(PG_DATA),
                                                                                        "server.log")],
                       capture_output=True, text=True)
    t_up = time.time()
    ok(r.returncode == 0, "server restarted under load", r.stderr)
    recovered = None
    while time.time() - t_up < 5:
        try:
            c = p.connect()
            q1(c, "select 1")
            c.close()
            recovered = time.time() - t_up
            break
        except psycopg2.Error:
            time.sleep(0.05)
    out = bench.communicate(timeout=30)[0]
    ok(recovered is not None and recovered < 1.0, "pool recovered within 1 s of the server being back",
       recovered)
    ok(bench.returncode != 0 or "aborted" in out or "error" in out.lower(),
       "clients in flight during the restart got errors", out[-300:])
    code, msg = err_code(lambda: q1(idle, "select 1"))
    ok(code == "none", "idle client: no error after the restart once the server is back", (code, msg))
    ok(p.alive(), "pooler survived the restart")
    pg_ctl = ["runuser", "-u", "postgres", "--", os.path.join(PG_BINDIR, "pg_ctl"), "-D", PG_DATA, "-w", "-t", "60"]
    r = subprocess.run(pg_ctl + ["-m", "fast", "stop"], capture_output=True, text=True)
    ok(r.returncode == 0, "server stopped", r.stderr)
    t0 = time.time()
    code, msg = err_code(lambda: q1(idle, "select 1"))
    el = time.time() - t0
    ok(code != "none", "server down: the client's query fails", code)
    ok(el < 2, "server down: error at once, not after pool_timeout", round(el, 2))
    r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-d", "appdb",
                        "-c", "select 1"], capture_output=True, text=True, env=dict(os.environ, PGPASSWORD="app-secret"))
    ok("no server connection" in r.stderr, "server down: clear error message", r.stderr)
    code, msg, _ = raw_query(p.port, "select 1")
    ok(code == "08006", "server down: SQLSTATE 08006", (code, msg))
    time.sleep(1)
    ok(p.alive(), "pooler keeps running while the server is down (backoff)")
    r = subprocess.run(pg_ctl + ["-l", os.path.join(os.path.dirname(PG_DATA), "server.log"), "start"],
                       capture_output=True, text=True)
    t_up = time.time()
    recovered = None
    while time.time() - t_up < 5:
        try:
            c = p.connect()
            q1(c, "select 1")
            c.close()
            recovered = time.time() - t_up
            break
        except psycopg2.Error:
            time.sleep(0.05)
    ok(recovered is not None and recovered < 1.0, "after a stop/start: pool back within 1 s", recovered)
    idle.close()
    ok(wait_for(lambda: servers() <= 5, 3), "no leaked server connections after the restart", servers())
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


def extra_tests():
    """Suites kept in their own files (tests/pooler/test_*.py), each with a
    TESTS list of (name, function); they reach this module's helpers (ok,
    Pooler, direct, q1, ...) with `import pooler_tests as pt`."""
    import glob
    import importlib
    sys.modules.setdefault("pooler_tests", sys.modules[__name__])
    found = []
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "test_*.py"))):
        found += importlib.import_module(os.path.basename(path)[:-3]).TESTS
    return found


def main():
    write_userlist()
    tests = [("cli", test_cli), ("auth", test_auth), ("pool_size", test_pool_size), ("overflow", test_overflow),
             ("pool_timeout", test_pool_timeout), ("recycle", test_recycle), ("pre_ping", test_pre_ping), ("pre_ping_dead", test_pre_ping_dead),
             ("min_pool", test_min_pool), ("connect_timeout", test_connect_timeout),
             ("transaction_state", test_transaction_state), ("bad_setting", test_bad_setting), ("session_mode", test_session_mode),
             ("pgbench", test_pgbench), ("cancel", test_cancel), ("copy", test_copy),
             ("bad_input", test_bad_input), ("unauthenticated", test_unauthenticated), ("max_client_conn", test_max_client_conn), ("fd_exhaustion", test_fd_exhaustion), ("vanish", test_vanish),
             ("restart", test_restart)]
    tests += extra_tests()
    only = os.environ.get("POOLER_TESTS")
    base = None
    for name, fn in tests:
        if only and name not in only.split(","):
            continue
        print("# %s" % name, flush=True)
        t0 = time.time()
        try:
            if name == "cli":
                fn()
            elif fn is test_basic:
                fn(base)
            else:
                fn()
        except Exception:
            ok(False, "%s raised" % name, traceback.format_exc().replace("\n", " | "))
        for p in list(POOLERS):
            p.stop()
        print("# %s took %.1f s" % (name, time.time() - t0), flush=True)
        if name == "cli" and (not only or "basic" in only.split(",")):
            print("# basic", flush=True)
            try:
                base = Pooler("basic", pool_size=3)
                test_basic(base)
            except Exception:
                ok(False, "basic raised", traceback.format_exc().replace("\n", " | "))
            for p in list(POOLERS):
                p.stop()
    print("%d passed, %d failed" % (PASSED, FAILED))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in list(POOLERS):
            p.stop()
        if not os.environ.get("KEEP_TMP"):
            import shutil
            shutil.rmtree(TMP, ignore_errors=True)
