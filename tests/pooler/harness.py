"""tests/pooler/harness.py: everything the pooler's test modules share that is
not the wire protocol (wire.py): the PostgreSQL started by tests/pooler/run,
poolers started from the tree's binary, connections (clients, admin console,
PostgreSQL directly), waiting for what the server or the pooler shows, and
the verdict counting.  main() runs every TESTS list of tests/pooler/test_*.py.

A verdict is one "ok - ..." or "not ok - ..." line.  A check whose condition
(a race, a kernel feature) the run could not bring about is not a verdict:
skip() prints "skip - ..." and the count goes on the line before the closing
"N passed, N failed".  Waits here end when their condition shows; their
timeouts are generous limits for a condition that never comes, never a
measure of how fast it came."""
import glob
import hashlib
import importlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.request

import psycopg2

from wire import free_port, raw_connect

PG_HOST = os.environ.get("PG_HOST", "")
PG_PORT = int(os.environ.get("PG_PORT", "0"))
PG_DATA = os.environ.get("PG_DATA", "")
PG_BINDIR = os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin")
BIN = os.environ.get("POOLER_BIN", "")
TMP = tempfile.mkdtemp(prefix="perfopt-pooler-tests.")

# Real drivers outside Python: pgJDBC from Debian, node-postgres from npm
# into tests/pooler/drivers/node_modules (make deps installs both).
DRIVERS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drivers")
JDBC_JAR = "/usr/share/java/postgresql.jar"


def have_jdbc():
    return bool(shutil.which("java") and shutil.which("javac") and os.path.exists(JDBC_JAR))


def node_env():
    """An environment in which `node` finds npm's pg, or None."""
    if not shutil.which("node"):
        return None
    paths = [x for x in (os.environ.get("NODE_PATH", ""), os.path.join(DRIVERS_DIR, "node_modules"),
                         "/usr/share/nodejs", "/usr/lib/nodejs") if x]
    env = dict(os.environ, NODE_PATH=":".join(paths))
    r = subprocess.run(["node", "-e", "require('pg')"], capture_output=True, env=env)
    return env if r.returncode == 0 else None
os.chmod(TMP, 0o755)
USERLIST = os.path.join(TMP, "userlist.txt")

PASSED = 0
FAILED = 0
SKIPPED = 0
POOLERS = []


# ---- verdicts ----

def ok(cond, desc, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok - " + desc, flush=True)
    else:
        FAILED += 1
        print("not ok - %s%s" % (desc, (": " + str(detail)) if detail != "" else ""), flush=True)


def skip(desc, why):
    """A check this run could not exercise: counted apart, never a failure."""
    global SKIPPED
    SKIPPED += 1
    print("skip - %s: not exercised (%s)" % (desc, why), flush=True)


def exercised(count, desc, unit):
    """A condition the run had to bring about by chance: passed when it came
    about `count` times, a skip (never a failure) when it did not."""
    if count:
        ok(True, "%s (%d %s)" % (desc, count, unit))
    else:
        skip(desc, "0 %s" % unit)


def err_code(fn):
    """Run fn; return (pgcode or 'none', message)."""
    try:
        fn()
        return ("none", "")
    except psycopg2.Error as e:
        return (e.pgcode or "nocode", str(e).strip())


def wait_for(cond, timeout=30.0, step=0.05):
    """True as soon as cond() holds; False only if it still does not after timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ---- PostgreSQL, directly ----

def direct(db="postgres"):
    c = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname=db)
    c.autocommit = True
    return c


def q1(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def q1_direct(sql, args=None, db="postgres"):
    c = direct(db)
    try:
        return q1(c, sql, args)
    finally:
        c.close()


def servers(user="app", db="appdb", state=None):
    """Backends the pooler holds, as the server sees them."""
    sql = ("select count(*) from pg_stat_activity where usename = %s and datname = %s "
           "and backend_type = 'client backend'")
    args = [user, db]
    if state:
        sql += " and state = %s"
        args.append(state)
    return q1_direct(sql, args)


def waiting_on_lock(user="app", db="appdb"):
    """Backends of user@db blocked on a heavyweight lock (a row or advisory lock a test holds)."""
    return q1_direct("select count(*) from pg_stat_activity where usename = %s and datname = %s "
                     "and wait_event_type = 'Lock'", (user, db))


def backends(user="app", db="appdb"):
    """Pids of user@db's client backends."""
    c = direct()
    try:
        with c.cursor() as cur:
            cur.execute("select pid from pg_stat_activity where usename = %s and datname = %s "
                        "and backend_type = 'client backend'", (user, db))
            return {r[0] for r in cur.fetchall()}
    finally:
        c.close()


def exited(pids):
    """Whether every one of these backend processes is gone (a backend leaves
    pg_stat_activity before it writes its statistics; its process ends after)."""
    return not any(os.path.exists("/proc/%d" % pid) for pid in pids)


class LockGate:
    """An advisory lock the test holds on appdb: statements running
    gate.sql wait on it (visibly, in pg_stat_activity) until open()."""

    def __init__(self, key, db="appdb"):
        self.key = key
        self.sql = "pg_advisory_xact_lock_shared(%d)" % key
        self.conn = direct(db)
        q1(self.conn, "select pg_advisory_lock(%s)", (key,))

    def open(self):
        if self.conn:
            q1(self.conn, "select pg_advisory_unlock(%s)", (self.key,))
            self.conn.close()
            self.conn = None


def in_background(fn, *args):
    """fn(*args) on a thread of its own, started: join it to wait."""
    t = threading.Thread(target=fn, args=args)
    t.start()
    return t


def run_gated(n, work, gate, held):
    """n clients run work(i) at once, their statements waiting at gate until
    held() shows the state the test needs (however the scheduler started
    them); then they go on.  Returns their errors."""
    errs = []
    th = in_background(lambda: errs.extend(run_parallel(n, work)))
    wait_for(held)
    gate.open()
    th.join()
    return errs


def in_pg_sleep(user="app", db="appdb"):
    """Backends of user@db inside pg_sleep()."""
    return q1_direct("select count(*) from pg_stat_activity where usename = %s and datname = %s "
                     "and wait_event = 'PgSleep'", (user, db))


def peak_monitor(stop, out, user="app", db="appdb"):
    c = direct()
    while not stop.is_set():
        out.append(q1(c, "select count(*) from pg_stat_activity where usename = %s and datname = %s "
                         "and backend_type = 'client backend'", (user, db)))
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


def write_userlist():
    scram = q1_direct("select rolpassword from pg_authid where rolname = 'scramonly'")
    with open(USERLIST, "w") as f:
        f.write('; test users\n')
        f.write('"app" "app-secret"\n')
        f.write('"md5user" "md5%s"\n' % hashlib.md5(b"md5-secretmd5user").hexdigest())
        f.write('"scramonly" "%s"\n' % scram)
        f.write('"postgres" ""\n')


def pgbench_init():
    env = dict(os.environ, PGPASSWORD="app-secret")
    r = subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", PG_HOST, "-p", str(PG_PORT), "-U", "app",
                        "appdb"], capture_output=True, text=True, env=env)
    ok(r.returncode == 0, "pgbench -i", r.stderr[-300:])


def pgbench(port, *args, user="app", timeout=60):
    env = dict(os.environ, PGPASSWORD="app-secret")
    return subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", user] + list(args) + ["appdb"],
                          capture_output=True, text=True, env=env, timeout=timeout)


def failed_count(out):
    for line in out.splitlines():
        if line.startswith("number of failed transactions:"):
            return int(line.split(":")[1].split()[0])
    return None


def transactions_done(out):
    """pgbench's count of processed transactions ("N" after -T, "N/M" after -t), or None."""
    for line in out.splitlines():
        if line.startswith("number of transactions actually processed:"):
            return int(line.split(":")[1].split("/")[0])
    return None


def tpcb_sums():
    """Sums of accounts, branches, tellers and history deltas, and the history's row count."""
    d = direct("appdb")
    with d.cursor() as cur:
        cur.execute("select (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches),"
                    " (select sum(tbalance) from pgbench_tellers), (select sum(delta) from pgbench_history),"
                    " (select count(*) from pgbench_history)")
        r = cur.fetchone()
    d.close()
    return r


# ---- poolers ----

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
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError("pooler %s did not start: %s" % (name, self.log_text()))

    def connect(self, user="app", password="app-secret", db="appdb", autocommit=True, **kw):
        c = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                             dbname=db, connect_timeout=10, **kw)
        c.autocommit = autocommit
        return c

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in POOLERS:
            POOLERS.remove(self)


def edit_ini(p, dbs=None, drop_dbs=(), raw=None, **settings):
    """Rewrite the pooler's file: [databases] entries added/replaced/dropped,
    [pooler] keys set; raw replaces the whole text."""
    if raw is not None:
        text = raw
    else:
        section, dbl, pl = None, [], []
        for line in open(p.ini).read().splitlines():
            if line.startswith("["):
                section = line
                continue
            k = line.split("=", 1)[0].strip()
            if section == "[databases]":
                if k not in (dbs or {}) and k not in drop_dbs:
                    dbl.append(line)
            elif k not in settings:
                pl.append(line)
        dbl += ["%s = %s" % kv for kv in (dbs or {}).items()]
        pl += ["%s = %s" % kv for kv in settings.items()]
        text = "\n".join(["[databases]"] + dbl + ["[pooler]"] + pl) + "\n"
    with open(p.ini + ".new", "w") as f:
        f.write(text)
    os.replace(p.ini + ".new", p.ini)


def appdb_line(extra=""):
    return ("host=%s port=%d dbname=appdb " % (PG_HOST, PG_PORT)) + extra


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


def psql(p, user, db, *cmds, password=None):
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    args = ["psql", "-X", "-h", "127.0.0.1", "-p", str(p.port), "-U", user, "-d", db]
    for c in cmds:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=30)


# ---- the admin console and the metrics endpoint ----

def admin(p, user="postgres", password=None):
    c = psycopg2.connect(host="127.0.0.1", port=p.port, user=user, password=password, dbname="perfopt",
                         connect_timeout=10)
    c.autocommit = True
    return c


def show(c, what):
    cur = c.cursor()
    cur.execute("SHOW " + what)
    cols = [d.name for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def cmd(a, sql):
    cur = a.cursor()
    cur.execute(sql)
    return cur.statusmessage


def console(p, command):
    """Rows of an admin console command on a connection of its own (admin_users = postgres)."""
    a = admin(p)
    try:
        return show(a, command[len("SHOW "):]) if command.upper().startswith("SHOW ") else cmd(a, command)
    finally:
        a.close()


def pool_row(a, db="appdb", user="app"):
    rows = [r for r in show(a, "POOLS") if r["database"] == db and r["user"] == user]
    return rows[0] if rows else None


def stats_row(a, db="appdb"):
    rows = [r for r in show(a, "STATS") if r["database"] == db]
    return rows[0] if rows else None


def serves(p):
    """Whether the pooler takes a login now (postgres, trusted)."""
    try:
        return raw_connect(p.port, "postgres", "postgres") == "ok"
    except OSError:
        return False


def linked_servers(p):
    """Server connections the pooler has given to a client (SHOW SERVERS with a link; admin_users = postgres)."""
    return [r for r in console(p, "SHOW SERVERS") if r["link"]]


def refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return False
    except OSError:
        return True


def queued(p, db="appdb", user="app"):
    """Clients of user@db waiting for a server connection (SHOW POOLS cl_waiting; admin_users = postgres)."""
    pools = [r for r in console(p, "SHOW POOLS") if r["database"] == db and r["user"] == user]
    return pools[0]["cl_waiting"] if pools else None


def metrics(port):
    """The metrics endpoint's samples: {'name{labels}': value}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def pool_metric(m, name, db="postgres", user="postgres"):
    return m.get('perfopt_pooler_%s{database="%s",user="%s"}' % (name, db, user))


# ---- PostgreSQL behind a proxy the test steers ----

class ServerProxy:
    """TCP proxy to PostgreSQL's Unix socket, for a pooler's [databases]
    entry: what passes between them is the test's to shape (passes(),
    serve())."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(a,), daemon=True).start()

    @staticmethod
    def postgres():
        b = socket.socket(socket.AF_UNIX)
        b.connect(os.path.join(PG_HOST, ".s.PGSQL.%d" % PG_PORT))
        return b

    def serve(self, a):
        self.splice(a, self.postgres())

    def splice(self, a, b):
        threading.Thread(target=self.pump, args=(b, a, False), daemon=True).start()
        self.pump(a, b, True)

    def passes(self, data):
        """Whether bytes from the pooler go on; False drops the connection."""
        return True

    def pump(self, src, dst, from_pooler):
        try:
            while True:
                data = src.recv(65536)
                if not data or (from_pooler and not self.passes(data)):
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


class KillProxy(ServerProxy):
    """When armed, drops the next connection that sends anything: a server
    connection that died while idle without the pooler seeing it (no FIN ever
    reaches the pooler before it writes)."""

    def __init__(self):
        self.armed = False
        self.killed = 0
        super().__init__()

    def passes(self, data):
        if not self.armed:
            return True
        self.armed = False
        self.killed += 1
        return False


# ---- the runner ----

def all_tests():
    """(name, function) of every test module's TESTS, modules in file name order."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = []
    for path in sorted(glob.glob(os.path.join(here, "test_*.py"))):
        found += importlib.import_module(os.path.basename(path)[:-3]).TESTS
    return found


def run_one(name, fn):
    print("# %s" % name, flush=True)
    t0 = time.time()
    try:
        fn()
    except Exception:
        ok(False, "%s raised" % name, traceback.format_exc().replace("\n", " | "))
    for p in list(POOLERS):
        p.stop()
    print("# %s took %.1f s" % (name, time.time() - t0), flush=True)


def main():
    """Runs the tests POOLER_TESTS names (comma-separated), or all; returns the exit status."""
    only = os.environ.get("POOLER_TESTS")
    try:
        write_userlist()
        for name, fn in all_tests():
            if not only or name in only.split(","):
                run_one(name, fn)
    finally:
        for p in list(POOLERS):
            p.stop()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(TMP, ignore_errors=True)
    if SKIPPED:
        print("%d skipped (not exercised)" % SKIPPED)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0
