"""tests/pooler/test_migration.py: a migration run directly on the database
(ALTER TABLE ... ADD COLUMN) while clients hold named prepared statements of
SELECT * through transaction mode (pooler/txn/prepared*.c).  PostgreSQL
answers 0A000 "cached plan must not change result type" to a statement
prepared before the change; the pooler re-prepares it and retries, so right
after the DDL the same clients, new clients and every server connection get
the new columns and no error.  Clients: psycopg 3 (prepare_threshold=0),
pgJDBC (prepareThreshold=1) and node-postgres named statements, each with
more clients than server connections, the statement prepared on every
server connection before the DDL."""
import json
import os
import struct
import subprocess

import psycopg

from harness import DRIVERS_DIR, JDBC_JAR, TMP, Pooler, direct, have_jdbc, node_env, ok, q1, skip
from wire import SYNC, bind, describe, execute, msg, parse, send, session, types, z



def make_table(name):
    d = direct("appdb")
    d.cursor().execute("drop table if exists %s; create table %s (id int primary key, v text);"
                       "insert into %s values (1, 'a'), (2, 'b'); alter table %s owner to app" % (name, name, name, name))
    d.close()


def migrate(name):
    d = direct("appdb")
    d.cursor().execute("alter table %s add column extra int default 7" % name)
    d.close()


def pg3(p):
    return psycopg.connect(host="127.0.0.1", port=p.port, user="app", password="app-secret", dbname="appdb",
                           autocommit=True, prepare_threshold=0, connect_timeout=10)


def run_pg3(c, sql):
    """(pid, column count, rows as lists) or ('error', sqlstate, message)."""
    try:
        cur = c.execute(sql, prepare=True)
        rows = cur.fetchall()
        return (rows[0][0], len(cur.description), [list(r[1:]) for r in rows])
    except psycopg.Error as e:
        return ("error", e.sqlstate, str(e).strip())


def on_both_servers(p, clients, sql):
    """Every client runs sql once on each of the two server connections: a
    holder's open transaction keeps one server busy while they run on the
    other; a second holder takes that other one before the first lets go."""
    out = []
    h1 = p.connect(autocommit=False)
    q1(h1, "select 1")
    for c in clients:
        out.append(run_pg3(c, sql))
    h2 = p.connect(autocommit=False)
    q1(h2, "select 1")
    h1.rollback()
    for c in clients:
        out.append(run_pg3(c, sql))
    h2.rollback()
    h1.close()
    h2.close()
    return out


def statements_held(p, table):
    """How many prepared statements of table's SELECT each of the two server
    connections holds, read on each (an open transaction pins it)."""
    sql = "select count(*) from pg_prepared_statements where statement like '%% from " + table + " order by id'"
    h1 = p.connect(autocommit=False)
    h2 = p.connect(autocommit=False)
    counts = [q1(h1, sql), q1(h2, sql)]
    h1.rollback()
    h2.rollback()
    h1.close()
    h2.close()
    return counts


def test_psycopg3():
    make_table("mig3")
    sql = "select pg_backend_pid() as pid, * from mig3 order by id"
    p = Pooler("migpg3", pool_size=2, max_overflow=0, pool_timeout=60)
    clients = [pg3(p) for _ in range(4)]
    before = on_both_servers(p, clients, sql)
    ok(all(r[1] == 3 for r in before) and len(set(r[0] for r in before)) == 2,
       "psycopg 3: before the DDL, 4 clients ran the prepared SELECT * on both server connections",
       set(r[0] for r in before))
    migrate("mig3")
    after = on_both_servers(p, clients, sql)
    bad = [r for r in after if r[0] == "error" or r[1] != 4 or r[2] != [[1, "a", 7], [2, "b", 7]]]
    ok(not bad, "psycopg 3: right after ADD COLUMN every execution by the same clients sees the new column, "
                "no 0A000", bad[:3])
    ok(len(set(r[0] for r in after if r[0] != "error")) == 2, "psycopg 3: on every server connection",
       set(r[0] for r in after))
    ok("batch retried" in p.log_text(), "psycopg 3: the stale execution was re-prepared and retried by the pooler")
    held = statements_held(p, "mig3")
    ok(held == [1, 1], "psycopg 3: each server connection holds the fresh statement only (the stale one closed)",
       held)
    new = pg3(p)
    r = run_pg3(new, sql)
    ok(r[0] != "error" and r[1] == 4, "psycopg 3: a new client's prepared SELECT * works too", r)
    re = clients[0].execute("select 1 as one", prepare=True).fetchone()[0]
    ok(re == 1, "psycopg 3: other prepared statements are unaffected")
    for c in clients + [new]:
        c.close()
    p.stop()


def test_psycopg3_failed_transaction():
    """Inside an explicit transaction the failed execution cannot be retried
    (the transaction is aborted): the error comes once, the next works."""
    make_table("mig3t")
    sql = "select pg_backend_pid() as pid, * from mig3t order by id"
    p = Pooler("migpg3t", pool_size=1, max_overflow=0, pool_timeout=60)
    c = pg3(p)
    run_pg3(c, sql)
    migrate("mig3t")
    c.autocommit = False
    first = run_pg3(c, sql)
    c.rollback()
    second = run_pg3(c, sql)
    c.rollback()
    c.autocommit = True
    third = run_pg3(c, sql)
    ok(first[0] == "error" and first[1] == "0A000", "in a transaction: the stale plan's 0A000 is forwarded once",
       first)
    ok(second[0] != "error" and second[1] == 4 and third[0] != "error" and third[1] == 4,
       "the next executions (in a transaction and not) see the new column", (second, third))
    c.close()
    p.stop()



def test_pgjdbc():
    if not have_jdbc():
        skip("pgJDBC prepareThreshold=1 across a migration", "java, javac or libpostgresql-jdbc-java missing")
        return
    out_dir = os.path.join(TMP, "jdbc")
    os.makedirs(out_dir, exist_ok=True)
    r = subprocess.run(["javac", "-cp", JDBC_JAR, "-d", out_dir, os.path.join(DRIVERS_DIR, "Migration.java")],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        ok(False, "Migration.java compiles", r.stderr[-500:])
        return
    migrate_with_script(["java", "-cp", "%s:%s" % (out_dir, JDBC_JAR), "Migration"], "migj", "pgJDBC", None)



def test_node_postgres():
    env = node_env()
    if not env:
        skip("node-postgres named statements across a migration", "node or npm's pg is not installed")
        return
    migrate_with_script(["node", os.path.join(DRIVERS_DIR, "migration.js")], "mign", "node-postgres", env)


def migrate_with_script(argv, table, label, env):
    """The script (port and table as arguments) runs its prepared SELECT * on
    both server connections, prints "ready", waits for a line on stdin (the
    DDL is run then), does it again and prints one JSON list of results per
    phase: [pid, column count] or ["error", sqlstate, message]."""
    make_table(table)
    p = Pooler("mig" + table, pool_size=2, max_overflow=0, pool_timeout=60)
    proc = subprocess.Popen(argv + [str(p.port), table], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = proc.stdout.readline().strip()
        before = json.loads(proc.stdout.readline() or "null") if ready == "ready" else None
        if before is not None:
            migrate(table)
        out, err = proc.communicate("go\n", timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        before = None
    after = json.loads(out.strip().splitlines()[-1]) if out.strip() else None
    ok(before and all(x[0] != "error" and x[1] == 3 for x in before) and len(set(x[0] for x in before)) == 2,
       "%s: before the DDL, the prepared SELECT * ran on both server connections" % label, (before, err[-300:]))
    ok(after and all(x[0] != "error" and x[1] == 4 for x in after),
       "%s: right after ADD COLUMN every execution (same clients, a new one) sees the new column, no 0A000" % label,
       (after, err[-300:]))
    ok(after and len(set(x[0] for x in after if x[0] != "error")) == 2, "%s: on every server connection" % label,
       after)
    if label == "node-postgres":
        ok("batch retried" in p.log_text(), "node-postgres: the stale execution was re-prepared and retried by the pooler")
    p.stop()


# ---- the protocol itself: which executions run again, which get the error ----

def bind_formats(name, nformats):
    """A Bind with one text result format per column: a client that counted
    the statement's columns (pgJDBC does) and sends no Describe."""
    return msg(b"B", z("") + z(name) + struct.pack("!HH", 0, 0) + struct.pack("!H", nformats) +
               struct.pack("!H", 0) * nformats)


def routine_of(replies):
    for t, b in replies:
        if t == "E":
            return [f[1:].decode() for f in b.split(b"\0") if f[:1] == b"R"]
    return []


def columns(replies):
    """Column count of the RowDescription, or None."""
    for t, b in replies:
        if t == "T":
            return struct.unpack("!H", b[:2])[0]
    return None


def test_wire():
    make_table("migw")
    sql = "select * from migw order by id"
    p = Pooler("migwire", pool_size=1, max_overflow=0, pool_timeout=60)
    x = session(p.port, "app", "appdb")
    y = session(p.port, "app", "appdb")
    run = describe("", b"P") + execute()
    first = send(x, parse("q1", sql), bind("q1"), run, SYNC)
    send(y, parse("y1", sql), bind("y1"), run, SYNC)
    ok(columns(first) == 2 and "E" not in types(first), "wire: q1 and y1 prepared (one statement on the server)", first)
    migrate("migw")
    counted = send(y, bind_formats("y1", 2), execute(), SYNC)
    ok(types(counted) == "EZ" and routine_of(counted) == ["RevalidateCachedQuery"],
       "a Bind with per-column formats and no Describe gets PostgreSQL's 0A000 (routine included), not rows "
       "of another shape", counted)
    moved = send(x, bind("q1"), run, SYNC)
    ok(types(moved) == "2TDDCZ" and columns(moved) == 3, "a Bind followed by a Describe of its portal moves to "
                                                        "the fresh statement: the new column, no error", moved)
    again = send(y, bind_formats("y1", 2), execute(), SYNC)
    ok(types(again) == "EZ" and routine_of(again) == ["RevalidateCachedQuery"],
       "the counted Bind gets 0A000 again (as from PostgreSQL) though the stale copy is gone from the server",
       again)
    fresh = send(y, msg(b"C", b"S" + z("y1")), parse("y2", sql), bind("y2"), run, SYNC)
    ok(types(fresh) == "312TDDCZ" and columns(fresh) == 3,
       "the driver's own re-prepare is parsed by the server, not answered from the stale statement", fresh)
    d = direct("appdb")
    held = q1(d, "select count(*) from pg_stat_activity where usename = 'app' and datname = 'appdb'")
    d.close()
    ok(held == 1, "one server connection all along", held)
    x.close()
    y.close()
    p.stop()


def test_wire_retry():
    make_table("migr")
    sql = "select * from migr order by id"
    p = Pooler("migretry", pool_size=1, max_overflow=0, pool_timeout=60)
    x = session(p.port, "app", "appdb")
    run = describe("", b"P") + execute()
    send(x, parse("q", sql), bind("q"), run, SYNC)
    migrate("migr")
    again = send(x, bind("q"), run, SYNC)
    ok(types(again) == "2TDDCZ" and columns(again) == 3 and "batch retried" in p.log_text(),
       "the stale plan's error is not seen: the batch ran again on a fresh statement", again)
    held = send(x, msg(b"Q", z("select count(*) from pg_prepared_statements")))
    ok([v for t, v in held if t == "D"] and held[1][1][6:] == b"1",
       "the server holds the fresh statement only (the stale one closed)", held)
    x.close()
    p.stop()


TESTS = [
    ("migration_wire", test_wire),
    ("migration_wire_retry", test_wire_retry),
    ("migration_psycopg3", test_psycopg3),
    ("migration_in_transaction", test_psycopg3_failed_transaction),
    ("migration_pgjdbc", test_pgjdbc),
    ("migration_node_postgres", test_node_postgres),
]
