"""The result cache under a protocol-level row limit, driven by asyncpg:
fetchrow and fetchval send Execute with max_rows = 1, a cursor sends one
Execute per fetch(n) on a portal it keeps.  A miss stores its answer only
when it is whole (the plan ended, or cannot return more than the rows
sent); a portal suspended before the end still returns the rest; a hit is
replayed in pieces.

Usage: cache_row_limit.py HOST PORT.  Prints "ok - ..." / "not ok - ..."
lines and a closing "N passed, N failed"."""
import asyncio
import sys

import asyncpg

HOST, PORT = sys.argv[1], int(sys.argv[2])
passed = failed = 0


def check(cond, desc, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - " + desc)
    else:
        failed += 1
        print("not ok - %s %s" % (desc, detail))


async def outcome(conn):
    return await conn.fetchval("SELECT perfopt.cache_last_outcome()")


async def stores(conn):
    return await conn.fetchval("SELECT stores FROM perfopt.cache_totals")


async def setup(conn):
    await conn.execute("""
        DROP TABLE IF EXISTS rl_items;
        CREATE TABLE rl_items (id int PRIMARY KEY, grp int NOT NULL, v text NOT NULL);
        INSERT INTO rl_items SELECT g, g % 5, 'v' || g FROM generate_series(1, 50) g;
        ALTER TABLE rl_items ADD COLUMN code int, ADD COLUMN tag text;
        UPDATE rl_items SET code = id, tag = 't' || id;
        ALTER TABLE rl_items ADD UNIQUE (code) DEFERRABLE;
        CREATE UNIQUE INDEX rl_items_tag ON rl_items (tag) WHERE grp = 0;
        ANALYZE rl_items;
        SELECT perfopt.cache_table('rl_items');""")


async def one_row(conn):
    """fetchrow of a primary-key lookup: the first stores, the second hits."""
    q = "SELECT id, grp, v FROM rl_items WHERE id = $1"
    r1 = await conn.fetchrow(q, 7)
    o1 = await outcome(conn)
    r2 = await conn.fetchrow(q, 7)
    o2 = await outcome(conn)
    check(tuple(r1) == (7, 2, "v7"), "fetchrow by key returns the row", str(r1))
    check(o1 == "miss, stored", "fetchrow of a one-row answer stores it", repr(o1))
    check(o2 == "hit" and tuple(r2) == (7, 2, "v7"),
          "the second fetchrow is a hit with the same row", "%r %r" % (o2, r2))
    # a write invalidates it: the new value, then a hit again
    await conn.execute("UPDATE rl_items SET v = 'seven' WHERE id = 7")
    r3 = await conn.fetchrow(q, 7)
    o3 = await outcome(conn)
    r4 = await conn.fetchrow(q, 7)
    o4 = await outcome(conn)
    check(r3["v"] == "seven" and o3 == "miss, stored", "after a write: the new row, stored",
          "%r %r" % (r3, o3))
    check(r4["v"] == "seven" and o4 == "hit", "and a hit again", "%r %r" % (r4, o4))
    # no row at all: the plan ended under the limit
    r5 = await conn.fetchrow(q, 500)
    o5 = await outcome(conn)
    r6 = await conn.fetchrow(q, 500)
    o6 = await outcome(conn)
    check(r5 is None and r6 is None and o5 == "miss, stored" and o6 == "hit",
          "fetchrow of an empty answer stores it, then hits", "%r %r" % (o5, o6))


async def scans(conn):
    """One row pinned by the primary key, whatever the scan that finds it."""
    await conn.execute("VACUUM rl_items")
    # planner settings are not in the key: each scan gets a key of its own
    for key, label, settings, q in (
            (9, "Seq Scan", "enable_indexscan = off, enable_bitmapscan = off, enable_indexonlyscan = off",
             "SELECT id, v FROM rl_items WHERE id = $1"),
            (11, "Bitmap Heap Scan", "enable_indexscan = off, enable_seqscan = off, enable_indexonlyscan = off",
             "SELECT id, v FROM rl_items WHERE id = $1"),
            (13, "Index Only Scan", "enable_seqscan = off, enable_bitmapscan = off",
             "SELECT id FROM rl_items WHERE id = $1")):
        for s in settings.split(", "):
            await conn.execute("SET " + s)
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN (COSTS OFF) " + q, key))
        r1 = await conn.fetchrow(q, key)
        o1 = await outcome(conn)
        r2 = await conn.fetchrow(q, key)
        o2 = await outcome(conn)
        await conn.execute("RESET ALL")
        check(label in plan, "the plan is a " + label, plan)
        check(r1 == r2 and r1[0] == key and o1 == "miss, stored" and o2 == "hit",
              "fetchrow by key through a %s stores, then hits" % label, "%r %r %r" % (r1, o1, o2))


async def not_pinned(conn):
    """Unique only when deferred constraints are checked, or on a part of the
    table: one row is not proved, nothing stored under the limit."""
    for q, arg in (("SELECT id FROM rl_items WHERE code = $1", 21),
                   ("SELECT id FROM rl_items WHERE tag = $1", "t25")):
        r1 = await conn.fetchrow(q, arg)
        o1 = await outcome(conn)
        check(r1 is not None and o1 not in ("hit", "miss, stored"),
              "fetchrow is not stored: " + q, repr(o1))


async def one_value(conn):
    """fetchval of an aggregate and of a LIMIT 1: stored, then hits."""
    for q, arg, want in (("SELECT count(*) FROM rl_items WHERE grp = $1", 3, 10),
                         ("SELECT v FROM rl_items WHERE grp = $1 ORDER BY id LIMIT 1", 4, "v4")):
        v1 = await conn.fetchval(q, arg)
        o1 = await outcome(conn)
        v2 = await conn.fetchval(q, arg)
        o2 = await outcome(conn)
        check(v1 == want and o1 == "miss, stored", "fetchval stores: " + q, "%r %r" % (v1, o1))
        check(v2 == want and o2 == "hit", "fetchval hits: " + q, "%r %r" % (v2, o2))


async def many_rows(conn):
    """fetchrow of a many-row answer: the first row, never a stored part."""
    q = "SELECT id FROM rl_items WHERE grp = $1 ORDER BY id"
    want = [i for i in range(1, 51) if i % 5 == 1]
    before = await stores(conn)
    r1 = await conn.fetchrow(q, 1)
    o1 = await outcome(conn)
    r2 = await conn.fetchrow(q, 1)
    o2 = await outcome(conn)
    check(r1["id"] == 1 and r2["id"] == 1, "fetchrow of many rows returns the first")
    check(o1 not in ("hit", "miss, stored") and o2 not in ("hit", "miss, stored"),
          "fetchrow of many rows neither stores nor hits", "%r %r" % (o1, o2))
    check(await stores(conn) == before, "no store counted for the part")
    rows = await conn.fetch(q, 1)
    o3 = await outcome(conn)
    check([r["id"] for r in rows] == want and o3 == "miss, stored",
          "fetch() after it gets every row and stores", "%r %r" % ([r["id"] for r in rows], o3))
    r4 = await conn.fetchrow(q, 1)
    o4 = await outcome(conn)
    rows = await conn.fetch(q, 1)
    o5 = await outcome(conn)
    check(r4["id"] == 1 and o4 == "hit", "then fetchrow is a hit with the first row", repr(o4))
    check([r["id"] for r in rows] == want and o5 == "hit", "and fetch() a hit with all", repr(o5))


async def cursors(conn):
    """A portal fetched in pieces returns every row, cached or not."""
    q = "SELECT id, v FROM rl_items WHERE grp = $1 ORDER BY id"
    want = [i for i in range(1, 51) if i % 5 == 2]
    for grp_want, label in ((want, "miss"), (want, "again")):
        async with conn.transaction():
            cur = await conn.cursor(q, 2)
            got = [r["id"] for r in await cur.fetch(3)]
            o1 = await outcome(conn)
            got += [r["id"] for r in await cur.fetch(4)]
            got += [r["id"] for r in await cur.fetch(100)]
            got += [r["id"] for r in await cur.fetch(100)]
        check(got == grp_want, "cursor in pieces returns every row (%s)" % label,
              "%r (first piece: %r)" % (got, o1))
    # exactly as many rows as asked, then the rest (none): not a whole answer
    before = await stores(conn)
    async with conn.transaction():
        cur = await conn.cursor(q, 3)
        got = [r["id"] for r in await cur.fetch(10)]
        o1 = await outcome(conn)
        rest = await cur.fetch(10)
    check(len(got) == 10 and rest == [] and o1 not in ("hit", "miss, stored"),
          "a piece that ends exactly at the last row is not stored", "%r %r" % (got, o1))
    check(await stores(conn) == before, "no store counted for it")
    # a first piece larger than the answer: whole, stored; the next is empty
    async with conn.transaction():
        cur = await conn.cursor(q, 3)
        got = [r["id"] for r in await cur.fetch(11)]
        o1 = await outcome(conn)
        rest = await cur.fetch(10)
    check(len(got) == 10 and rest == [] and o1 == "miss, stored",
          "a first piece past the end stores the answer", "%r %r" % (got, o1))
    async with conn.transaction():
        cur = await conn.cursor(q, 3)
        got = [r["id"] for r in await cur.fetch(4)]
        o1 = await outcome(conn)
        got += [r["id"] for r in await cur.fetch(100)]
    check(o1 == "hit" and got == [i for i in range(1, 51) if i % 5 == 3],
          "then the cursor is a hit, in pieces", "%r %r" % (got, o1))


async def two_captures(conn):
    """A portal suspended mid-answer keeps the rows it captured so far; a
    statement run meanwhile captures and stores its own answer apart, and
    both return every row."""
    qc = "SELECT id, v FROM rl_items WHERE grp = $1 ORDER BY id"
    q = "SELECT id, grp, v FROM rl_items WHERE id = $1"
    async with conn.transaction():
        cur = await conn.cursor(qc, 4)
        got = [r["id"] for r in await cur.fetch(2)]
        r1 = await conn.fetchrow(q, 33)
        o1 = await outcome(conn)
        got += [r["id"] for r in await cur.fetch(100)]
    r2 = await conn.fetchrow(q, 33)
    o2 = await outcome(conn)
    check(got == [i for i in range(1, 51) if i % 5 == 4],
          "a cursor with a statement run between its pieces returns every row", repr(got))
    check(tuple(r1) == (33, 3, "v33") and o1 == "miss, stored",
          "the statement run meanwhile stores its answer", "%r %r" % (r1, o1))
    check(tuple(r2) == (33, 3, "v33") and o2 == "hit",
          "and hits with it afterwards", "%r %r" % (r2, o2))


async def main():
    conn = await asyncpg.connect(host=HOST, port=PORT, user="postgres", database="postgres")
    try:
        await setup(conn)
        await one_row(conn)
        await scans(conn)
        await not_pinned(conn)
        await one_value(conn)
        await many_rows(conn)
        await cursors(conn)
        await two_captures(conn)
    finally:
        await conn.close()


asyncio.run(main())
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
