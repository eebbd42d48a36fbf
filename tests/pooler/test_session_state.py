"""tests/pooler/test_session_state.py: session state in transaction mode.  A
client's session advisory lock, LISTEN, temp table, SQL PREPARE and WITH
HOLD cursor live on its server connection: with
transaction_mode_session_state = pin the client keeps that connection (its
notifications reach it between transactions, nobody else sees its state,
SHOW CLIENTS and the metrics show it pinned), and the connection is reset
when it leaves; with error, the statements are refused with 0A000.  Both
without perfopt's extension (the pooler recognises the statements) and with
it (the server reports the state, so the pin ends as soon as it is gone,
and state made where the pooler cannot see it is caught too)."""
import os
import socket

import psycopg2

from harness import (Pooler, admin, direct, err_code, metrics, ok, pool_metric, q1, show,
                     skip, wait_for)
from wire import SYNC, bind, execute, free_port, parse, read_until, sqlstate_of, startup_packet

EXT_HOST = os.environ.get("PGEXT_HOST", "")
EXT_PORT = int(os.environ.get("PGEXT_PORT", "0"))


def pinned(p, app):
    """The SHOW CLIENTS pinned column of the client with this application_name."""
    a = admin(p)
    try:
        rows = [r for r in show(a, "CLIENTS") if r["application_name"] == app]
        return rows[0]["pinned"] if rows else None
    finally:
        a.close()


def notified(conn, channel):
    """Payloads of the notifications conn has received on channel (reads what arrived)."""
    conn.poll()
    return [n.payload for n in conn.notifies if n.channel == channel]


def check_pinned_kinds(p, connect, notify, tag):
    """The five kinds on a pooler of pool_size 2: client a makes the state,
    client b (taking the other server connection) must not see it."""
    a = connect(application_name="holder")
    b = connect(application_name="other")
    q1(a, "select pg_advisory_lock(7)")
    ok(q1(b, "select pg_try_advisory_lock(7)") is False,
       "%s: another client cannot take a session advisory lock the first holds" % tag)
    ok("advisory" in (pinned(p, "holder") or ""), "%s: SHOW CLIENTS shows the holder pinned (advisory)" % tag,
       pinned(p, "holder"))
    q1(a, "listen chan_pin; select 1")
    notify("notify chan_pin, 'hello'")
    ok(wait_for(lambda: notified(a, "chan_pin") == ["hello"], 30),
       "%s: LISTEN receives its notification between transactions" % tag, a.notifies)
    q1(a, "create temp table pin_tmp (x int); insert into pin_tmp values (1), (2); select 1")
    code, msg = err_code(lambda: q1(b, "create temp table pin_tmp (x int); select 1"))
    ok(code == "none", "%s: another client's temp table of the same name does not collide" % tag, msg)
    ok(q1(a, "select count(*) from pin_tmp") == 2, "%s: the temp table stays with its client" % tag)
    run(a, "prepare pin_st as select 'mine'::text")
    code, msg = err_code(lambda: q1(b, "prepare pin_st as select 'theirs'::text; select 1"))
    ok(code == "none", "%s: another client's PREPARE of the same name does not collide" % tag, msg)
    ok(q1(a, "execute pin_st") == "mine", "%s: SQL PREPARE stays with its client" % tag)
    run(a, "declare pin_cur cursor with hold for select generate_series(1, 3)")
    code, msg = err_code(lambda: q1(b, "declare pin_cur cursor with hold for select 1; select 1"))
    ok(code == "none", "%s: another client's WITH HOLD cursor of the same name does not collide" % tag, msg)
    with a.cursor() as cur:
        cur.execute("fetch all from pin_cur")
        rows = [r[0] for r in cur.fetchall()]
    ok(rows == [1, 2, 3], "%s: the WITH HOLD cursor stays with its client" % tag, rows)
    return a, b


def run(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)


def released_clean(p, connect, tag):
    """The pinned clients left: each server connection was reset before
    reuse (no advisory lock, temp table, statement, cursor or channel left)."""
    ok(wait_for(lambda: pinned(p, "holder") is None and pinned(p, "other") is None, 30),
       "%s: the pinned clients are gone" % tag)
    seen, held = [], []
    for i in range(2):
        c = connect(application_name="after%d" % i)
        c.autocommit = False    # in a transaction: the next one gets the other connection
        held.append(c)
        seen.append((q1(c, "select count(*) = 0 from pg_locks where locktype = 'advisory' "
                           "and pid = pg_backend_pid()"),
                     q1(c, "select to_regclass('pg_temp.pin_tmp') is null"),
                     q1(c, "select count(*) from pg_prepared_statements where name = 'pin_st'"),
                     q1(c, "select count(*) from pg_cursors where name = 'pin_cur'"),
                     q1(c, "select count(*) from pg_listening_channels()")))
    for c in held:
        c.rollback()
        c.close()
    ok(seen == [(True, True, 0, 0, 0)] * 2,
       "%s: the server connections the pinned clients left were reset before reuse" % tag, seen)


def test_pin_without_extension():
    """The suite's PostgreSQL has no perfopt: the statements are recognised."""
    mport = free_port()
    p = Pooler("sstate_text", pool_size=2, max_overflow=0, pool_timeout=20, admin_users="postgres",
               metrics_port=mport)
    d = direct("appdb")

    def connect(**kw):
        return p.connect(**kw)
    a, b = check_pinned_kinds(p, connect, lambda sql: q1(d, sql + "; select 1"), "no extension")
    m = metrics(mport)
    ok(pool_metric(m, "clients_pinned", db="appdb", user="app") == 2,
       "no extension: the clients_pinned gauge counts the pinned clients",
       {k: v for k, v in m.items() if "pinned" in k})
    # what the pooler recognised stays pinned until DISCARD ALL: it cannot see an unlock
    q1(a, "select pg_advisory_unlock_all()")
    run(a, "unlisten *")
    run(a, "discard all")
    run(a, "set application_name = 'holder'")    # DISCARD ALL reset it
    ok(pinned(p, "holder") == "", "no extension: DISCARD ALL unpins", pinned(p, "holder"))
    run(a, "select pg_advisory_lock(7); listen chan_pin; create temp table pin_tmp (x int); "
           "prepare pin_st as select 1; declare pin_cur cursor with hold for select 1")
    ok(pinned(p, "holder") == "temp,advisory,listen,prepared,cursor",
       "no extension: every kind recognised in one query", pinned(p, "holder"))
    a.close()
    b.close()
    released_clean(p, connect, "no extension")
    d.close()


def test_error_mode():
    p = Pooler("sstate_error", pool_size=1, max_overflow=0, pool_timeout=20,
               transaction_mode_session_state="error")
    a = p.connect()
    for sql in ("select pg_advisory_lock(1)", "listen chan_err", "create temporary table err_tmp (x int)",
                "prepare err_st as select 1", "declare err_cur cursor with hold for select 1",
                "select 1; select pg_try_advisory_lock(2)"):
        code, msg = err_code(lambda: q1(a, sql))
        ok(code == "0A000" and "transaction_mode_session_state" in msg,
           "error mode: %r refused with 0A000 and a hint naming the setting" % sql, (code, msg))
    ok(q1(a, "select count(*) from pg_locks where locktype = 'advisory'") == 0 and
       q1(a, "select count(*) from pg_listening_channels()") == 0,
       "error mode: nothing of the refused statements ran")
    a.autocommit = False
    code, _ = err_code(lambda: q1(a, "listen chan_err2"))
    after, _ = err_code(lambda: q1(a, "select 1"))
    a.rollback()
    ok(code == "0A000" and after == "25P02", "error mode: a refusal fails the transaction it was in",
       (code, after))
    a.autocommit = True
    ok(q1(a, "select 'fine'") == "fine", "error mode: ordinary statements run")
    a.close()
    # the extended protocol: the Parse is replaced, the refusal comes at Execute
    s = socket.create_connection(("127.0.0.1", p.port), 10)
    s.sendall(startup_packet("app", "appdb"))
    read_until(s, "Z", 10)
    s.sendall(parse("", "LISTEN chan_ext") + bind("") + execute() + SYNC)
    got = read_until(s, "Z", 10)
    errs = [sqlstate_of(b) for t, b in got if t == "E"]
    ok(errs == ["0A000"] and b"transaction_mode_session_state" in b"".join(b for _, b in got),
       "error mode: LISTEN by Parse/Bind/Execute refused with 0A000 and the hint", got)
    s.sendall(parse("", "select 1") + bind("") + execute() + SYNC)
    got = read_until(s, "Z", 10)
    ok([t for t, _ in got] == ["1", "2", "D", "C", "Z"], "error mode: the next extended query runs", got)
    s.close()


def test_error_mode_split():
    """A statement making session state whose message arrives in two reads
    (the second after a pause, so that the pooler most likely holds the
    first part while it waits): the text it reads then spans two pieces of
    its input, and the refusal (which rewrites the message, a named Parse
    keeping its name) is the same as for a message read at once."""
    import time
    p = Pooler("sstate_error_split", pool_size=1, max_overflow=0, pool_timeout=20,
               transaction_mode_session_state="error")
    s = socket.create_connection(("127.0.0.1", p.port), 10)
    s.sendall(startup_packet("app", "appdb"))
    read_until(s, "Z", 10)
    for name, sql in (("split_st", "LISTEN chan_split; SELECT '%s'" % ("x" * 3000)),
                      ("", "SELECT '%s'; SELECT pg_advisory_lock(7)" % ("y" * 3000))):
        data = parse(name, sql) + bind(name) + execute() + SYNC
        s.sendall(data[:200])
        time.sleep(0.3)
        s.sendall(data[200:])
        got = read_until(s, "Z", 10)
        errs = [sqlstate_of(b) for t, b in got if t == "E"]
        ok(errs == ["0A000"] and b"transaction_mode_session_state" in b"".join(b for _, b in got),
           "error mode: %s arriving in two parts refused with 0A000 and the hint" % sql[:18], got)
    s.sendall(parse("", "select pg_listening_channels() is null") + bind("") + execute() + SYNC)
    got = read_until(s, "Z", 10)
    ok([t for t, _ in got] == ["1", "2", "C", "Z"], "error mode: the next query runs, nothing listened", got)
    s.close()


def test_pin_with_extension():
    """perfopt preloaded: the server reports the state, exactly."""
    if not EXT_HOST:
        skip("session state reported by the extension", "no PostgreSQL with perfopt preloaded")
        return
    mport = free_port()
    p = Pooler("sstate_ext", pool_size=2, max_overflow=0, pool_timeout=20, admin_users="postgres",
               metrics_port=mport, dbs={"postgres": "host=%s port=%d" % (EXT_HOST, EXT_PORT)})
    d = psycopg2.connect(host=EXT_HOST, port=EXT_PORT, user="postgres", dbname="postgres")
    d.autocommit = True

    def connect(**kw):
        return p.connect(user="postgres", db="postgres", **kw)
    q1(d, "drop function if exists lock_quietly(); "
          "create function lock_quietly() returns int language plpgsql as "
          "$$begin perform pg_catalog.pg_advisory_lock(8); return 1; end$$; select 1")
    a, b = check_pinned_kinds(p, connect, lambda sql: q1(d, sql + "; select 1"), "extension")
    ok(pinned(p, "holder") == "temp,advisory,listen,prepared,cursor",
       "extension: SHOW CLIENTS lists every kind the server reports", pinned(p, "holder"))
    m = metrics(mport)
    ok(pool_metric(m, "clients_pinned") == 2, "extension: the clients_pinned gauge counts the pinned clients",
       {k: v for k, v in m.items() if "pinned" in k})
    # each kind gone, one at a time: the pin follows exactly
    steps = [("select pg_advisory_unlock(7)", "temp,listen,prepared,cursor"),
             ("unlisten *", "temp,prepared,cursor"),
             ("drop table pin_tmp", "prepared,cursor"),
             ("deallocate pin_st", "cursor"),
             ("close pin_cur", "")]
    for sql, left in steps:
        run(a, sql)
        ok(pinned(p, "holder") == left, "extension: after %r the pin is %r" % (sql, left), pinned(p, "holder"))
    # state the pooler cannot see in the text: a function takes the lock
    ok(q1(a, "select lock_quietly()") == 1 and pinned(p, "holder") == "advisory",
       "extension: a lock taken inside a function pins", pinned(p, "holder"))
    ok(q1(b, "select pg_try_advisory_lock(8)") is False,
       "extension: that lock is not handed to another client")
    a.close()
    b.close()
    released_clean(p, connect, "extension")
    d.close()


def test_reset_keeps_startup_settings():
    """The DISCARD ALL after a pinned client also undoes the startup settings
    applied on that connection: the next client's are applied again."""
    p = Pooler("sstate_settings", pool_size=1, max_overflow=0, pool_timeout=20)
    a = p.connect(options="-c statement_timeout=4321")
    q1(a, "select pg_advisory_lock(11)")
    a.close()
    c = p.connect(options="-c statement_timeout=4321")
    ok(q1(c, "show statement_timeout") == "4321ms" and
       q1(c, "select count(*) from pg_locks where locktype = 'advisory'") == 0,
       "after a pinned client's reset, the next client's startup setting holds, no lock left",
       q1(c, "show statement_timeout"))
    c.close()


TESTS = [("sstate_pin_text", test_pin_without_extension), ("sstate_error", test_error_mode),
         ("sstate_error_split", test_error_mode_split),
         ("sstate_pin_extension", test_pin_with_extension),
         ("sstate_reset_settings", test_reset_keeps_startup_settings)]
