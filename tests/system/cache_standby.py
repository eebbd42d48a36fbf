#!/usr/bin/python3
"""The result cache on hot standbys, checked against the same statement
without the cache (tests/system/cache_standby.sh drives it).

Modes (PRIMARY and STANDBY are libpq connection strings):

  setup PRIMARY
      tables of every kind the standby serves (plain, range partitioned,
      a table whose rule restricts it to key values) and their rules.
  rounds PRIMARY STANDBY [--rounds N] [--seed S]
      N rounds: random writes on the primary (committed, and some rolled
      back), then wait until the standby has replayed them all, then every
      cached statement on the standby: twice with the cache, then once with
      perfopt.cache_mode = off.  The three reads are bracketed by
      pg_current_snapshot(), before the first and after the last: equal
      brackets mean they all saw the same committed rows (a replayed commit
      changes the standby's snapshot), and then the answers must be equal.
      With PRIMARY = STANDBY it checks a primary (after a promotion).
  concurrent PRIMARY STANDBY [--writes N] [--reads N]
      the same comparisons while a writer commits on the primary: pairs
      whose brackets differ raced a replayed commit and are not compared;
      then, after replay, a full checked pass finds any stale entry the
      race may have left.
  ddl PRIMARY STANDBY [--fault | --restart CMD]
      a DDL in flight on the standby: a trigger disabled by a prepared
      transaction, whose record the standby replays while the transaction
      is still running there, then its commit.  A statement reading the
      table in between must not keep what it read of the triggers; with
      --fault (perfopt.cache_standby_fault = settle in the session) it does,
      and a later write that no trigger reports is served stale.  With
      --restart, the standby is restarted after a checkpoint that follows
      the DDL's record, so that it never replays that record again; a
      write to another cached table then gives it a record to replay, as
      a restarted standby bypasses its cache until it knows that the
      primary logs.

Prints "reads=.. checked=.. raced=.. hits=.. mismatches=.. errors=.." and,
for ddl, "ok - ..." / "not ok - ..." lines.
"""
import argparse
import random
import subprocess
import sys
import threading
import time

import psycopg

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["setup", "rounds", "concurrent", "ddl"])
ap.add_argument("primary")
ap.add_argument("standby", nargs="?")
ap.add_argument("--rounds", type=int, default=20)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--writes", type=int, default=300)
ap.add_argument("--reads", type=int, default=300)
ap.add_argument("--fault", action="store_true")
ap.add_argument("--restart", help="ddl: the command that restarts the standby, run while the DDL is in flight")
ap.add_argument("--show", type=int, default=3)
args = ap.parse_args()
rnd = random.Random(args.seed)

GRPS = 6         # sb_plain.grp and sb_part.grp lie in [0, GRPS)
GAMES = 8        # sb_keyed.game lies in [0, GAMES)
IDS = 120        # ids of sb_plain and sb_part

KEYED = "SELECT player, points FROM sb_keyed WHERE game = $1 ORDER BY points DESC, player LIMIT 5"

# (name, text, parameters or None): literals go by the simple protocol,
# parameters by the extended one
STATEMENTS = [
    ("plain_all", "SELECT id, grp, v FROM sb_plain ORDER BY id", None),
    ("plain_grp_lit", "SELECT count(*), sum(v), max(v) FROM sb_plain WHERE grp = 2", None),
    ("plain_grp_param", "SELECT count(*), sum(v), max(v) FROM sb_plain WHERE grp = %s", "grp"),
    ("part_groups", "SELECT grp, count(*), sum(v) FROM sb_part GROUP BY grp ORDER BY grp", None),
    ("part_range", "SELECT sum(v), count(*) FROM sb_part WHERE id BETWEEN 30 AND 90", None),
    ("part_leaf", "SELECT id, v FROM sb_part_lo ORDER BY id", None),
    ("keyed", KEYED.replace("$1", "%s"), "game"),
    ("keyed_lit", "SELECT player, points FROM sb_keyed WHERE game = 3 ORDER BY points DESC, player LIMIT 5",
     None),
    ("join", ("SELECT k.game, count(*), sum(p.v) FROM sb_keyed k JOIN sb_plain p ON p.id = k.player "
              "GROUP BY k.game ORDER BY k.game"), None),
]


def connect(dsn, **kw):
    c = psycopg.connect(dsn, autocommit=True, **kw)
    c.execute("SET jit = off")
    return c


def oracle_conn(dsn):
    """A connection that never uses (nor settles) the cache."""
    return connect(dsn, options="-c perfopt.cache_mode=off")


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def wait_replay(primary, standby):
    """
    Until the standby has replayed all the primary has written so far: up
    to the insert position, as an abort record need not be written out yet.
    """
    if args.primary == args.standby:
        return
    target = scalar(primary, "SELECT pg_current_wal_insert_lsn()")
    for _ in range(3000):
        if scalar(standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)):
            return
        time.sleep(0.02)
    raise SystemExit(f"the standby did not replay up to {target} within 60 s")


# ---------------------------------------------------------------------------
def setup():
    p = connect(args.primary)
    p.execute("CREATE EXTENSION IF NOT EXISTS perfopt")
    p.execute("CREATE TABLE sb_plain (id int PRIMARY KEY, grp int NOT NULL, v int NOT NULL)")
    p.execute("CREATE TABLE sb_part (id int NOT NULL, grp int NOT NULL, v int NOT NULL) PARTITION BY RANGE (id)")
    p.execute("CREATE TABLE sb_part_lo PARTITION OF sb_part FOR VALUES FROM (MINVALUE) TO (60)")
    p.execute("CREATE TABLE sb_part_hi PARTITION OF sb_part FOR VALUES FROM (60) TO (MAXVALUE)")
    p.execute("CREATE TABLE sb_keyed (game int NOT NULL, player int NOT NULL, points int NOT NULL, "
              "PRIMARY KEY (game, player))")
    p.execute(f"INSERT INTO sb_plain SELECT g, g % {GRPS}, g * 7 % 100 FROM generate_series(1, {IDS} / 2) g")
    p.execute(f"INSERT INTO sb_part SELECT g, g % {GRPS}, g * 11 % 100 FROM generate_series(1, {IDS}) g")
    p.execute(f"INSERT INTO sb_keyed SELECT g % {GAMES}, g, g * 13 % 1000 FROM generate_series(1, 200) g")
    p.execute("SELECT perfopt.cache_table('sb_plain')")
    p.execute("SELECT perfopt.cache_table('sb_part')")
    p.execute("SELECT perfopt.cache_query(%s)", (KEYED,))
    p.execute("SELECT perfopt.cache_query(%s)", (KEYED.replace("$1", "3"),))
    p.execute("SELECT perfopt.cache_table('sb_keyed')")
    keys = scalar(p, "SELECT count(*) FROM pg_trigger WHERE tgname = 'perfopt_cache_keys'")
    print(f"setup: key triggers={keys}")


# ---------------------------------------------------------------------------
# writes on the primary

def one_write(cur):
    r = rnd.random()
    i = rnd.randint(1, IDS)
    if r < 0.25:
        cur.execute("UPDATE sb_plain SET v = v + %s WHERE id = %s", (rnd.randint(1, 9), i))
    elif r < 0.35:
        cur.execute("INSERT INTO sb_plain VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET grp = excluded.grp",
                    (i, rnd.randrange(GRPS), rnd.randint(0, 99)))
    elif r < 0.42:
        cur.execute("DELETE FROM sb_plain WHERE id = %s", (i,))
    elif r < 0.55:
        cur.execute("UPDATE sb_part SET v = v + 1 WHERE id = %s", (i,))
    elif r < 0.62:
        # moves the row to the other partition
        cur.execute("UPDATE sb_part SET id = %s WHERE id = %s", (IDS + 1 - i if i != (IDS + 1) // 2 else i, i))
    elif r < 0.82:
        cur.execute("UPDATE sb_keyed SET points = points + %s WHERE game = %s AND player = %s",
                    (rnd.randint(1, 50), rnd.randrange(GAMES), rnd.randint(1, 200)))
    elif r < 0.9:
        cur.execute("INSERT INTO sb_keyed VALUES (%s, %s, %s) ON CONFLICT (game, player) "
                    "DO UPDATE SET points = excluded.points",
                    (rnd.randrange(GAMES), rnd.randint(1, 250), rnd.randint(0, 999)))
    else:
        # a row moving between games
        cur.execute("UPDATE sb_keyed SET game = %s WHERE game = %s AND player = %s",
                    (rnd.randrange(GAMES), rnd.randrange(GAMES), rnd.randint(1, 200)))


def write_round(p):
    for _ in range(rnd.randint(1, 3)):
        rollback = rnd.random() < 0.15
        try:
            with p.transaction(force_rollback=rollback):
                for _ in range(rnd.randint(1, 3)):
                    one_write(p)
        except psycopg.errors.UniqueViolation:
            pass        # a moved row met another: rolled back, as intended


# ---------------------------------------------------------------------------
# reads on the standby

class Tally:
    def __init__(self):
        self.reads = self.checked = self.raced = self.hits = self.mismatches = self.errors = 0
        self.shown = 0
        self.lock = threading.Lock()

    def line(self):
        return (f"reads={self.reads} checked={self.checked} raced={self.raced} hits={self.hits} "
                f"mismatches={self.mismatches} errors={self.errors}")


def params_for(kind):
    if kind == "grp":
        return (rnd.randrange(GRPS),)
    if kind == "game":
        return (rnd.randrange(GAMES),)
    return None


def checked_read(s, stmt, tally, r):
    """Twice with the cache, once without, within one snapshot bracket."""
    name, text, kind = stmt
    params = params_for(kind) if r is None else r
    try:
        before = scalar(s, "SELECT pg_current_snapshot()::text")
        cached = []
        hits = 0
        for _ in range(2):
            cached.append(s.execute(text, params).fetchall())
            if scalar(s, "SELECT perfopt.cache_last_outcome()") == "hit":
                hits += 1
        with s.transaction():
            s.execute("SET LOCAL perfopt.cache_mode = off")
            plain = s.execute(text, params).fetchall()
            after = scalar(s, "SELECT pg_current_snapshot()::text")
    except psycopg.Error as e:
        with tally.lock:
            tally.errors += 1
            print(f"error in {name}: {e}", flush=True)
        return
    with tally.lock:
        tally.reads += 2
        tally.hits += hits
        if before != after:
            tally.raced += 2
            return
        tally.checked += 2
        for got in cached:
            if got != plain:
                tally.mismatches += 1
                if tally.shown < args.show:
                    tally.shown += 1
                    print(f"MISMATCH {name} {params}: cached {got} uncached {plain}", flush=True)


def read_all(s, tally):
    for stmt in STATEMENTS:
        checked_read(s, stmt, tally, None)


def rounds():
    p = connect(args.primary)
    s = connect(args.standby)
    poll = oracle_conn(args.standby)
    tally = Tally()
    wait_replay(p, poll)
    read_all(s, tally)
    for _ in range(args.rounds):
        write_round(p)
        wait_replay(p, poll)
        read_all(s, tally)
    print(tally.line())


def concurrent():
    p = connect(args.primary)
    poll = oracle_conn(args.standby)
    tally = Tally()
    done = threading.Event()

    def writer():
        w = connect(args.primary)
        for _ in range(args.writes):
            write_round(w)
        done.set()

    def reader():
        s = connect(args.standby)
        n = 0
        while n < args.reads or not done.is_set():
            checked_read(s, rnd.choice(STATEMENTS), tally, None)
            n += 1

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    during = tally.line()
    wait_replay(p, poll)
    after = Tally()
    read_all(connect(args.standby), after)
    print(f"during: {during}")
    print(f"after: {after.line()}")
    print(f"reads={tally.reads + after.reads} checked={tally.checked + after.checked} "
          f"raced={tally.raced} hits={tally.hits + after.hits} "
          f"mismatches={tally.mismatches + after.mismatches} errors={tally.errors + after.errors}")


# ---------------------------------------------------------------------------
def ddl():
    q = "SELECT id, grp, v FROM sb_plain WHERE grp = 1 ORDER BY id"
    p = connect(args.primary)
    poll = oracle_conn(args.standby)
    s = connect(args.standby)
    if args.fault:
        s.execute("SET perfopt.cache_standby_fault = settle")
    tag = " (settle fault)" if args.fault else " (standby restarted meanwhile)" if args.restart else ""

    def outcome():
        s.execute(q).fetchall()
        return scalar(s, "SELECT perfopt.cache_last_outcome()")

    def report(ok, what):
        print(f"{'ok' if ok else 'not ok'} - {what}{tag}", flush=True)

    def compare():
        """The statement against the cache off, until one bracket held."""
        tally = Tally()
        for _ in range(5):
            checked_read(s, ("ddl", q, None), tally, None)
            if tally.checked > 0:
                break
        return tally

    wait_replay(p, poll)
    outcome()
    o = outcome()
    report(o == "hit", f"the standby answers the statement from its cache before the DDL (got: {o})")
    p.execute("BEGIN")
    p.execute("ALTER TABLE sb_plain DISABLE TRIGGER perfopt_cache_invalidate")
    p.execute("PREPARE TRANSACTION 'sb_ddl'")
    if args.restart:
        p.execute("CHECKPOINT")
    wait_replay(p, poll)
    if args.restart:
        s.close()
        poll.close()
        subprocess.run(args.restart, shell=True, check=True)
        # a row that exists whatever the concurrent rounds left: no row
        # updated, no xid, no record, and the standby's cache stays shut
        p.execute("UPDATE sb_part SET v = v WHERE id = (SELECT min(id) FROM sb_part)")
        poll = oracle_conn(args.standby)
        s = connect(args.standby)
        wait_replay(p, poll)
    o = outcome()
    report(o == "a writer committed concurrently",
           f"while the DDL's record is replayed and its commit is not, nothing is stored (got: {o})")
    p.execute("COMMIT PREPARED 'sb_ddl'")
    wait_replay(p, poll)
    o = outcome()
    want = "a table it reads has no enabled invalidation trigger"
    if args.fault:
        report(o == "miss, stored",
               f"without the settle, the store trusts what it read before the commit (got: {o})")
    else:
        report(o == want, f"once the commit is replayed, the store sees the trigger disabled (got: {o})")
    p.execute("UPDATE sb_plain SET v = v + 1000 WHERE grp = 1")
    wait_replay(p, poll)
    tally = compare()
    if args.fault:
        report(tally.mismatches > 0 and tally.checked > 0,
               f"a write no trigger reports is then served stale: {tally.line()}")
    else:
        report(tally.mismatches == 0 and tally.checked > 0 and tally.errors == 0,
               f"a write no trigger reports is not served stale: {tally.line()}")
    p.execute("ALTER TABLE sb_plain ENABLE ALWAYS TRIGGER perfopt_cache_invalidate")
    p.execute("UPDATE sb_plain SET v = v - 1000 WHERE grp = 1")
    wait_replay(p, poll)
    o = outcome()
    o = outcome()
    report(o == "hit", f"with the trigger enabled again, the standby caches the statement (got: {o})")
    tally = compare()
    report(tally.mismatches == 0 and tally.checked > 0, f"and answers it exactly: {tally.line()}")


{"setup": setup, "rounds": rounds, "concurrent": concurrent, "ddl": ddl}[args.mode]()
sys.exit(0)
