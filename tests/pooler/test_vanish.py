"""tests/pooler/test_vanish.py: a client that vanishes in the middle of a
statement.  Its server connection's statement is canceled (closing alone
leaves it running, with its locks, until it ends), so another client
waiting for its row lock gets it; the backend goes, nothing is reused
dirty.  Simple protocol, and the extended protocol before its Sync."""
import socket
import threading

import psycopg2

from harness import PG_HOST, PG_PORT, Pooler, backends, direct, exited, in_pg_sleep, ok, q1, wait_for
from wire import FLUSH, bind, execute, parse, query, read_until, startup_packet


def login(p):
    """A raw client of app@appdb through the pooler (auth trust): the test can kill its socket."""
    s = socket.create_connection(("127.0.0.1", p.port), 10)
    s.sendall(startup_packet("app", "appdb"))
    got = read_until(s, "Z", 10)
    assert got[-1][0] == "Z", got
    return s


def waiter_gets_row(start_statement, tag):
    """Client A locks row 1 and starts a long statement, B waits for the
    row, A's socket is killed: B must get the row (60 s is a limit for a
    lock that never comes, not a measure)."""
    d = direct("appdb")
    q1(d, "drop table if exists vanish; create table vanish (id int primary key, v int); "
          "insert into vanish values (1, 0); grant all on vanish to app; select 1")
    p = Pooler("vanish_" + tag, pool_size=2, max_overflow=0, pool_timeout=20)
    before = backends()
    a = login(p)
    a.sendall(query("begin; select v from vanish where id = 1 for update"))
    ok(read_until(a, "Z", 10)[-1] == ("Z", b"T"), "%s: A holds the row lock in its transaction" % tag)
    start_statement(a)
    ok(wait_for(lambda: in_pg_sleep() == 1, 30), "%s: A's statement runs" % tag)
    a_pids = backends() - before
    got = {}

    def b_takes_row():
        b = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="appdb",
                             options="-c statement_timeout=120s")
        try:
            with b.cursor() as cur:
                cur.execute("select v from vanish where id = 1 for update")
                got["row"] = cur.fetchone()[0]
            b.commit()
        except psycopg2.Error as e:
            got["error"] = str(e)
        b.close()
    t = threading.Thread(target=b_takes_row, daemon=True)
    t.start()
    ok(wait_for(lambda: q1(d, "select count(*) from pg_stat_activity where datname = 'appdb' "
                              "and usename = 'postgres' and wait_event_type = 'Lock'") == 1, 30),
       "%s: B waits for A's row lock" % tag)
    a.close()
    t.join(60)
    ok(got.get("row") == 0, "%s: A vanished mid-statement, B gets the row lock" % tag, got)
    ok(wait_for(lambda: exited(a_pids), 30), "%s: A's backend is gone" % tag, a_pids)
    c = p.connect()
    ok(q1(c, "select count(*) from pg_stat_activity where state = 'idle in transaction'") == 0,
       "%s: the pooler serves again, no transaction left open" % tag)
    c.close()
    # the old behaviour leaves the sleeper running: end it for the next tests
    q1(d, "select count(pg_cancel_backend(pid)) from pg_stat_activity where wait_event = 'PgSleep'")
    d.close()
    p.stop()


def test_vanish_simple():
    waiter_gets_row(lambda a: a.sendall(query("select pg_sleep(600)")), "simple")


def test_vanish_extended():
    """Parse/Bind/Execute and a Flush, no Sync yet: the request is half sent."""
    waiter_gets_row(lambda a: a.sendall(parse("", "select pg_sleep(600)") + bind("") + execute() + FLUSH),
                    "extended")


TESTS = [("vanish_simple", test_vanish_simple), ("vanish_extended", test_vanish_extended)]
