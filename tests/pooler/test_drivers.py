"""tests/pooler/test_drivers.py: real drivers through perfopt-pooler.  asyncpg
(a connection per client, and asyncpg.Pool with its reset query), psycopg2,
psycopg 3, SQLAlchemy (QueuePool over psycopg2), node-postgres, ruby-pg and
pgJDBC each run the same workload (tests/pooler/drivers/) in
transaction mode with more clients than server connections (8 clients,
pool_size 2), then briefly in session mode, and every answer is checked.

The workload: WL_ACCOUNTS accounts holding WL_TOTAL between them; each client,
for WL_ROUNDS rounds, runs a transaction that reads back the token it wrote in
its previous transaction (likely committed on another server connection),
writes this round's token and reads it back, moves an amount between two
accounts (updates in id order: no deadlock) and reads the new balances and
the total, which must still be WL_TOTAL.  Before it, every fourth round, a
transaction writes, fails (22012 after a first row, or 23505 in the middle of
a bulk load), is rolled back, and its writes must be gone; in every fourth
round from the second, a savepoint inside the transaction fails likewise, is
rolled back to, and the transaction goes on.  Once per client a WL_BIG-row
result is checked row by row, and WL_BULK rows go in through the driver's
bulk path (COPY, executemany, a JDBC batch, a many-statement query) and are
read back in the same transaction.  Each driver uses named prepared
statements where it has them (asyncpg always; psycopg 3 prepare=True;
node-postgres {name, text, values}; ruby-pg exec_prepared; pgJDBC
prepareThreshold=1); the test then finds them on the server connections
under the pooler's names.

A driver program prints "FAIL ..." per wrong answer and ends with "SUMMARY
key=value ...".  A driver this machine lacks prints "skip - DRIVER: not
installed" and is counted as a skip, never as a pass."""
import os
import shutil
import subprocess

import psycopg2

import harness
from harness import JDBC_JAR, PG_HOST, PG_PORT, Pooler, TMP, direct, have_jdbc, ok

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drivers")
PYTHON = "/usr/bin/python3"
ACCOUNTS, TOTAL, BIG, BULK = 10, 10000, 10000, 200
SHAPES = {"transaction": dict(clients=8, rounds=10, pool_size=2),
          "session": dict(clients=3, rounds=4, pool_size=3)}


# ---- the drivers: whether installed, and how to run the workload ----

def runs(argv, cwd=HERE):
    try:
        return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def python_module(mod):
    return lambda: runs([PYTHON, "-c", "import " + mod])


def node_pg():
    return shutil.which("node") and runs(["node", "-e", "require('pg')"])


def ruby_pg():
    return shutil.which("ruby") and runs(["ruby", "-e", "require 'pg'"])



def java_command():
    """Workload.java compiled into the run's temporary directory (the JVMs
    with the quick compiler only: a short program, on a busy machine)."""
    out = os.path.join(TMP, "java")
    if not os.path.exists(os.path.join(out, "Workload.class")):
        os.makedirs(out, exist_ok=True)
        r = subprocess.run(["javac", "-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-d", out, "-cp", JDBC_JAR,
                            os.path.join(HERE, "Workload.java")], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("javac Workload.java: " + r.stderr[-1000:])
    return ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", out + ":" + JDBC_JAR, "Workload"]


# name, installed(), command(), whether it uses named prepared statements
DRIVERS = [
    ("psycopg2", python_module("psycopg2"), lambda: [PYTHON, "workload.py", "psycopg2"], False),
    ("psycopg", python_module("psycopg"), lambda: [PYTHON, "workload.py", "psycopg"], True),
    ("sqlalchemy", python_module("sqlalchemy"), lambda: [PYTHON, "workload.py", "sqlalchemy"], False),
    ("asyncpg", python_module("asyncpg"), lambda: [PYTHON, "workload.py", "asyncpg"], True),
    ("asyncpg-pool", python_module("asyncpg"), lambda: [PYTHON, "workload.py", "asyncpg-pool"], True),
    ("node-postgres", node_pg, lambda: ["node", "workload.js"], True),
    ("ruby-pg", ruby_pg, lambda: ["ruby", "workload.rb"], True),
    ("pgjdbc", have_jdbc, java_command, True),
]


# ---- one run ----

def fresh_tables():
    d = direct("appdb")
    with d.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS drv_accounts, drv_tokens, drv_bulk")
        cur.execute("CREATE TABLE drv_accounts (id int PRIMARY KEY, balance int NOT NULL)")
        cur.execute("INSERT INTO drv_accounts SELECT g, %s FROM generate_series(0, %s) g",
                    (TOTAL // ACCOUNTS, ACCOUNTS - 1))
        cur.execute("CREATE TABLE drv_tokens (client int, round int, token text NOT NULL, "
                    "PRIMARY KEY (client, round))")
        cur.execute("CREATE TABLE drv_bulk (client int, k int, v text NOT NULL, PRIMARY KEY (client, k))")
        cur.execute("GRANT ALL ON drv_accounts, drv_tokens, drv_bulk TO app")
    d.close()


def database_state():
    d = direct("appdb")
    with d.cursor() as cur:
        cur.execute("SELECT (SELECT sum(balance)::int FROM drv_accounts), (SELECT count(*)::int FROM drv_tokens), "
                    "(SELECT count(*)::int FROM drv_tokens WHERE round >= 1000), (SELECT count(*)::int FROM drv_bulk)")
        r = cur.fetchone()
    d.close()
    return r


def expected(clients, rounds):
    failed_rounds = len([r for r in range(rounds) if r % 4 == 2])
    return dict(txns=clients * rounds, ryw_txn=clients * (rounds - 1), ryw_stmt=2 * clients * rounds,
                sums=clients * rounds, rollbacks=clients * failed_rounds, large=clients, bulk=clients,
                savepoints=clients * len([r for r in range(rounds) if r % 4 == 1]),
                final_sum=TOTAL, final_tokens=clients * rounds, failures=0)


def parse(out):
    fails = [line[5:] for line in out.splitlines() if line.startswith("FAIL ")]
    summary = [line for line in out.splitlines() if line.startswith("SUMMARY ")]
    if not summary:
        return None, fails
    fields = dict(kv.split("=", 1) for kv in summary[-1].split()[1:])
    return {k: int(v) if v.lstrip("-").isdigit() else v for k, v in fields.items()}, fails


def held_statements(p, n):
    """The statements the pooler prepared on its n server connections (n
    open transactions pin them all), as (name, text)."""
    conns, out = [], []
    try:
        for _ in range(n):
            c = p.connect(autocommit=False)
            conns.append(c)
            with c.cursor() as cur:
                cur.execute("SELECT name, statement FROM pg_prepared_statements")
                out += cur.fetchall()
    finally:
        for c in conns:
            c.rollback()
            c.close()
    return out


def run_workload(name, argv, mode, shape):
    fresh_tables()
    settings = dict(pool_size=shape["pool_size"], max_overflow=0, pool_timeout=120)
    if mode == "session":
        settings["pool_mode"] = "session"
    p = Pooler("drv_%s_%s" % (name, mode), **settings)
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(p.port), PGUSER="app", PGPASSWORD="app-secret",
               PGDATABASE="appdb", WL_CLIENTS=str(shape["clients"]), WL_ROUNDS=str(shape["rounds"]),
               WL_ACCOUNTS=str(ACCOUNTS), WL_TOTAL=str(TOTAL), WL_BIG=str(BIG), WL_BULK=str(BULK))
    try:
        r = subprocess.run(argv, capture_output=True, text=True, cwd=HERE, env=env, timeout=300)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out, err, rc = (e.stdout or b"").decode(), "timed out after 300 s", -1
    return p, out, err, rc


def check_run(name, argv, mode, prepares):
    shape = SHAPES[mode]
    label = "%s, %s mode, %d clients on %d server connections" % (name, mode, shape["clients"], shape["pool_size"])
    p, out, err, rc = run_workload(name, argv, mode, shape)
    summary, fails = parse(out)
    ok(summary is not None and rc == 0 and not fails, label + ": every answer right",
       " | ".join(fails[:4]) + (" | status %d, stderr: %s" % (rc, err.strip()[-600:]) if rc or not summary else ""))
    want = expected(shape["clients"], shape["rounds"])
    got = {k: (summary or {}).get(k) for k in want}
    ok(got == want, label + ": every check ran (%d transactions, %d rollbacks, %d savepoints, %d x %d rows, "
       "%d x %d bulk)" % (want["txns"], want["rollbacks"], want["savepoints"], want["large"], BIG, want["bulk"], BULK),
       "expected %s, got %s" % (want, got))
    state = database_state()
    ok(state == (TOTAL, want["txns"], 0, want["bulk"] * BULK),
       label + ": the database holds the total, every token and bulk row, no rolled-back write",
       "(sum, tokens, rolled back, bulk rows) = %s" % (state,))
    if mode == "transaction":
        if p.alive():
            stmts = held_statements(p, shape["pool_size"])
            ours = [s for s in stmts if "drv_" in s[1]]
            if prepares:
                ok(ours and all(s[0].startswith("PERFOPT_") for s in ours),
                   label + ": its named statements are on the server connections under the pooler's names",
                   stmts[:6])
            else:
                ok(not ours, label + ": no statement left prepared on the server connections", stmts[:6])
        else:
            ok(False, label + ": the pooler is still running", p.log_text()[-600:])
        harness.exercised(summary.get("moved", 0) if summary else 0,
                          label + ": clients whose transactions ran on more than one server connection", "clients")
    p.stop()


def not_installed(name):
    harness.SKIPPED += 1
    print("skip - %s: not installed" % name, flush=True)


def driver_test(name, installed, command, prepares):
    def test():
        if not installed():
            not_installed(name)
            return
        try:
            argv = command()
        except RuntimeError as e:
            ok(False, "%s: the workload builds" % name, str(e))
            return
        for mode in ("transaction", "session"):
            check_run(name, argv, mode, prepares)
    return test


# one test per driver: POOLER_TESTS=drivers_asyncpg runs one
TESTS = [("drivers_" + d[0].replace("-", "_"), driver_test(*d)) for d in DRIVERS]
