"""tests/pooler/drivers/workload.py: the real-driver workload for the Python
drivers (asyncpg with a connection per client or with its own Pool,
psycopg2, psycopg 3, SQLAlchemy over psycopg2 with its QueuePool), run by
tests/pooler/test_drivers.py as
    workload.py DRIVER
with the connection in PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and the
shape in WL_CLIENTS, WL_ROUNDS, WL_ACCOUNTS, WL_TOTAL, WL_BIG, WL_BULK.  The
workload is the one workload.js, workload.rb and Workload.java run
(test_drivers.py describes it): bank transfers whose total must hold, tokens
each client writes and reads back, an error inside a transaction (in a
statement or in the middle of a bulk load) then ROLLBACK, an error inside a
savepoint then ROLLBACK TO it, a large result, a bulk load (psycopg2 and
psycopg 3: COPY; SQLAlchemy and asyncpg: executemany).
Every answer is compared; each mismatch prints a "FAIL ..." line, and the
last line is "SUMMARY key=value ...".

The client logic is written once, as coroutines over a small adapter: asyncpg
runs every client on one event loop; a blocking driver's adapter runs each
client on a thread of its own (its coroutines never suspend)."""
import asyncio
import io
import os
import re
import secrets
import sys
import threading

N = int(os.environ.get("WL_CLIENTS", "8"))
R = int(os.environ.get("WL_ROUNDS", "12"))
ACCOUNTS = int(os.environ.get("WL_ACCOUNTS", "10"))
TOTAL = int(os.environ.get("WL_TOTAL", "10000"))
BIG = int(os.environ.get("WL_BIG", "10000"))
BULK = int(os.environ.get("WL_BULK", "200"))
CONN = dict(host=os.environ["PGHOST"], port=int(os.environ["PGPORT"]), user=os.environ["PGUSER"],
            password=os.environ["PGPASSWORD"], dbname=os.environ["PGDATABASE"])

# The statements, in PostgreSQL's own placeholder form; adapters translate.
SQL = {
    "prev_token": "SELECT token FROM drv_tokens WHERE client = $1 AND round = $2",
    "add_token": "INSERT INTO drv_tokens (client, round, token) VALUES ($1, $2, $3)",
    "move": "UPDATE drv_accounts SET balance = balance + $1 WHERE id = $2 RETURNING balance",
    "balances": "SELECT id, balance FROM drv_accounts WHERE id IN ($1, $2) ORDER BY id",
    "total": "SELECT sum(balance)::int, pg_backend_pid() FROM drv_accounts",
    "boom": "SELECT 10 / (id - $1) FROM generate_series(1, 3) AS id",
    "big": "SELECT id, repeat('x', id % 97) FROM generate_series(1, $1) AS id ORDER BY id",
    "bulk_insert": "INSERT INTO drv_bulk (client, k, v) VALUES ($1, $2, $3)",
    "bulk_check": "SELECT count(*)::int, string_agg(v, ',' ORDER BY k) FROM drv_bulk WHERE client = $1",
    "final": "SELECT (SELECT sum(balance)::int FROM drv_accounts), (SELECT count(*)::int FROM drv_tokens)",
}


class Tally:
    """Counts of answers checked, and the mismatches (shared by all clients)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.n = dict(txns=0, ryw_txn=0, ryw_stmt=0, sums=0, rollbacks=0, large=0, bulk=0, savepoints=0, moved=0,
                      prepared=0)
        self.failures = []

    def add(self, key, k=1):
        with self.lock:
            self.n[key] += k

    def check(self, key, cond, what, expected, got):
        if cond:
            self.add(key)
        else:
            with self.lock:
                self.failures.append("%s: expected %r, got %r" % (what, expected, got))
        return cond


T = Tally()


def plan(i, r):
    """The transfer of client i in round r: (debited id, credited id, amount)."""
    a = (i * 7 + r * 3) % ACCOUNTS
    b = (a + 1 + (i + r) % (ACCOUNTS - 1)) % ACCOUNTS
    return a, b, 1 + (i * 13 + r * 5) % 50


async def transfer_round(db, i, r, tokens, pids):
    """One committed transaction: the previous round's token read back, this
    round's written and read back, a transfer whose balances and total are
    checked inside the transaction."""
    tag = "client %d round %d" % (i, r)
    await db.begin()
    if r > 0:
        got = await db.q("prev_token", i, r - 1)
        T.check("ryw_txn", got == [(tokens[r - 1],)], tag + ": previous transaction's token", tokens[r - 1], got)
    tokens.append("%s:%d:%d:%s" % (db.name, i, r, secrets.token_hex(8)))
    await db.q("add_token", i, r, tokens[r])
    got = await db.q("prev_token", i, r)
    T.check("ryw_stmt", got == [(tokens[r],)], tag + ": token written by this transaction", tokens[r], got)
    if r % 4 == 1:
        await failed_savepoint(db, i, r, tokens[r])
    a, b, amt = plan(i, r)
    after = {}
    for acct, delta in sorted([(a, -amt), (b, amt)]):   # lock order: no deadlock
        rows = await db.q("move", delta, acct)
        after[acct] = rows[0][0] if len(rows) == 1 else rows
    got = await db.q("balances", a, b)
    want = sorted(after.items())
    T.check("ryw_stmt", got == want, tag + ": balances after the updates", want, got)
    got = await db.q("total")
    T.check("sums", len(got) == 1 and got[0][0] == TOTAL, tag + ": total inside the transaction", TOTAL, got)
    if got:
        pids.add(got[0][1])
    await db.commit()
    T.add("txns")


async def fails(db, aw):
    """The SQLSTATE the awaitable fails with, "none" when it succeeds; an
    error that is not the server's goes on."""
    try:
        await aw
        return "none"
    except Exception as e:
        code = db.sqlstate(e)
        if code is None:
            raise
        return code


def doomed_rows(i, r):
    """A bulk load that fails on its second row (a duplicate key), for a client id no one reads."""
    return [(100 + i, r, "first"), (100 + i, r, "duplicate"), (100 + i, r + 1, "never")]


async def failed_round(db, i, r):
    """A transaction that writes, fails, is rolled back; its writes must be
    gone.  Most rounds fail with a division by zero after a first row; round
    6 in the middle of a bulk load (a duplicate key)."""
    tag = "client %d round %d" % (i, r)
    await db.begin()
    await db.q("add_token", i, 1000 + r, "doomed")
    if r % 8 == 6:
        want, code = "23505", await fails(db, db.bulk(doomed_rows(i, r)))
    else:
        want, code = "22012", await fails(db, db.q("boom", 2))
    await db.rollback()
    got = await db.q("prev_token", i, 1000 + r) + await db.q("bulk_check", 100 + i)
    T.check("rollbacks", code == want and got == [(0, None)],
            tag + ": error %s, then ROLLBACK undid the writes" % want, (want, [(0, None)]), (code, got))


async def failed_savepoint(db, i, r, token):
    """Inside a transaction: a savepoint (the driver's own API where it has
    one) whose write fails and is rolled back to; the transaction's earlier
    write stays, the savepoint's is gone, and the transaction goes on."""
    async def body():
        await db.q("add_token", i, 2000 + r, "doomed")
        await db.q("boom", 2)

    code = await fails(db, db.nested(body))
    got = await db.q("prev_token", i, r) + await db.q("prev_token", i, 2000 + r)
    T.check("savepoints", code == "22012" and got == [(token,)],
            "client %d round %d: error 22012 in a savepoint, rolled back to it" % (i, r), ("22012", [(token,)]),
            (code, got))


async def big_result(db, i):
    await db.begin()
    rows = await db.big(BIG)
    await db.commit()
    bad = [row for k, row in enumerate(rows) if row != (k + 1, "x" * ((k + 1) % 97))]
    T.check("large", len(rows) == BIG and not bad, "client %d: %d-row result" % (i, BIG),
            BIG, (len(rows), bad[:2]))


def bulk_rows(i):
    return [(i, k, "b%d-%d" % (i, k)) for k in range(BULK)]


async def bulk_load(db, i):
    """BULK rows through the driver's bulk path (COPY, executemany), read
    back in the same transaction."""
    await db.begin()
    await db.bulk(bulk_rows(i))
    got = await db.q("bulk_check", i)
    await db.commit()
    want = [(BULK, ",".join(v for _, _, v in bulk_rows(i)))]
    T.check("bulk", got == want, "client %d: %d rows loaded in bulk" % (i, BULK), want[0][0],
            got[0][0] if len(got) == 1 else got)


async def client(db, i):
    tokens, pids = [], set()
    try:
        for r in range(R):
            if r % 4 == 2:
                await failed_round(db, i, r)
            await transfer_round(db, i, r, tokens, pids)
            if r == 1:
                await big_result(db, i)
            if r == 3:
                await bulk_load(db, i)
        if len(pids) > 1:
            T.add("moved")
    except Exception as e:
        with T.lock:
            T.failures.append("client %d stopped: %s: %s" % (i, type(e).__name__, str(e).strip()))


# ---- adapters: begin/commit/rollback, q(name, *args) -> [tuple], big(n) -> [tuple], bulk(rows),
#      nested(body): body() in a savepoint, rolled back to (and the error raised again) when body fails,
#      sqlstate(exception) -> the server's SQLSTATE, or None for an error of another kind ----

def pyformat(sql):
    return re.sub(r"\$\d+", "%s", sql.replace("%", "%%"))


class Psycopg2:
    name = "psycopg2"

    def __init__(self):
        import psycopg2
        self.mod = psycopg2
        self.conn = psycopg2.connect(connect_timeout=60, **CONN)

    async def begin(self):
        pass                        # psycopg2 opens the transaction at the first statement

    async def commit(self):
        self.conn.commit()

    async def rollback(self):
        self.conn.rollback()

    async def nested(self, body):
        with self.conn.cursor() as cur:
            cur.execute("SAVEPOINT drv_sp")
            try:
                await body()
            except Exception:
                cur.execute("ROLLBACK TO SAVEPOINT drv_sp")
                raise
            cur.execute("RELEASE SAVEPOINT drv_sp")

    def run(self, cur, name, args):
        cur.execute(pyformat(SQL[name]), args)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    async def q(self, name, *args):
        with self.conn.cursor() as cur:
            return self.run(cur, name, args)

    def sqlstate(self, e):
        return e.pgcode if isinstance(e, self.mod.Error) else None

    async def big(self, n):
        with self.conn.cursor(name="drv_big") as cur:     # a server-side cursor, fetched 2000 rows at a time
            cur.itersize = 2000
            cur.execute(pyformat(SQL["big"]), (n,))
            return [tuple(r) for r in cur]

    async def bulk(self, rows):
        data = "".join("%d\t%d\t%s\n" % r for r in rows)
        with self.conn.cursor() as cur:
            cur.copy_expert("COPY drv_bulk (client, k, v) FROM STDIN", io.StringIO(data))

    def close(self):
        self.conn.close()


class Psycopg3(Psycopg2):
    """psycopg 3, every statement prepared on the server (prepare=True)."""
    name = "psycopg"

    def __init__(self):
        import psycopg
        self.mod = psycopg
        self.conn = psycopg.connect(connect_timeout=60, **CONN)

    def run(self, cur, name, args):
        cur.execute(pyformat(SQL[name]), args, prepare=True)
        T.add("prepared")
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def sqlstate(self, e):
        return e.sqlstate if isinstance(e, self.mod.Error) else None

    async def big(self, n):
        with self.conn.cursor(name="drv_big") as cur:
            cur.itersize = 2000
            cur.execute(pyformat(SQL["big"]), (n,))
            return [tuple(r) for r in cur]

    async def bulk(self, rows):
        with self.conn.cursor() as cur:
            with cur.copy("COPY drv_bulk (client, k, v) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)


    async def nested(self, body):
        with self.conn.transaction():       # inside a transaction: a savepoint
            await body()


class SQLAlchemy:
    """SQLAlchemy Core over psycopg2: each transaction checks a connection out
    of the engine's QueuePool (pre-ping on) and returns it at the end."""
    name = "sqlalchemy"
    engine = None
    engine_lock = threading.Lock()

    def __init__(self):
        import sqlalchemy
        self.sa = sqlalchemy
        with SQLAlchemy.engine_lock:
            if SQLAlchemy.engine is None:
                url = sqlalchemy.engine.URL.create("postgresql+psycopg2", username=CONN["user"],
                                                   password=CONN["password"], host=CONN["host"],
                                                   port=CONN["port"], database=CONN["dbname"])
                SQLAlchemy.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.QueuePool,
                                                             pool_size=N, max_overflow=0, pool_pre_ping=True,
                                                             future=True)
        self.conn = self.tx = None

    async def begin(self):
        self.conn = SQLAlchemy.engine.connect()
        self.tx = self.conn.begin()

    async def commit(self):
        self.tx.commit()
        self.conn.close()

    async def rollback(self):
        self.tx.rollback()
        self.conn.close()

    async def nested(self, body):
        sp = self.conn.begin_nested()
        try:
            await body()
        except Exception:
            sp.rollback()
            raise
        sp.commit()

    @staticmethod
    def text(name, args):
        return re.sub(r"\$(\d+)", r":p\1", SQL[name]), {"p%d" % (k + 1): v for k, v in enumerate(args)}

    async def q(self, name, *args):
        if self.conn is None or self.conn.closed:          # outside a transaction: autocommit, as a checkout
            with SQLAlchemy.engine.connect() as c:
                sql, params = self.text(name, args)
                res = c.execute(self.sa.text(sql), params)
                rows = [tuple(r) for r in res] if res.returns_rows else []
                c.commit()
                return rows
        sql, params = self.text(name, args)
        res = self.conn.execute(self.sa.text(sql), params)
        return [tuple(r) for r in res] if res.returns_rows else []

    def sqlstate(self, e):
        return getattr(e.orig, "pgcode", "nocode") if isinstance(e, self.sa.exc.DBAPIError) else None

    async def big(self, n):
        sql, params = self.text("big", (n,))
        res = self.conn.execution_options(stream_results=True, yield_per=2000).execute(self.sa.text(sql), params)
        return [tuple(r) for r in res]

    async def bulk(self, rows):
        sql, _ = self.text("bulk_insert", (0, 0, 0))
        self.conn.execute(self.sa.text(sql), [dict(p1=c, p2=k, p3=v) for c, k, v in rows])    # executemany

    def close(self):
        pass


class Asyncpg:
    """asyncpg: every query goes through a named prepared statement (its
    statement cache); the large result through a cursor fetched in pieces."""
    name = "asyncpg"
    pool = None

    def __init__(self, conn):
        self.conn = conn
        self.tr = None

    @classmethod
    async def open(cls):
        import asyncpg
        c = dict(CONN)
        c["database"] = c.pop("dbname")
        return cls(await asyncpg.connect(timeout=60, **c))

    async def begin(self):
        self.tr = self.conn.transaction()
        await self.tr.start()

    async def commit(self):
        await self.tr.commit()

    async def rollback(self):
        await self.tr.rollback()

    async def nested(self, body):
        async with self.conn.transaction():         # inside a transaction: a savepoint
            await body()

    async def q(self, name, *args):
        T.add("prepared")
        return [tuple(r) for r in await self.conn.fetch(SQL[name], *args)]

    def sqlstate(self, e):
        import asyncpg
        return e.sqlstate if isinstance(e, asyncpg.PostgresError) else None

    async def big(self, n):
        T.add("prepared")
        return [tuple(r) async for r in self.conn.cursor(SQL["big"], n, prefetch=2000)]

    async def bulk(self, rows):
        T.add("prepared")
        await self.conn.executemany(SQL["bulk_insert"], rows)      # one prepared statement, pipelined

    def close(self):
        pass


class AsyncpgPool(Asyncpg):
    """asyncpg as applications mostly use it: each transaction acquires a
    connection from an asyncpg.Pool of N and releases it after, which sends
    asyncpg's reset query (advisory unlock all, CLOSE ALL, UNLISTEN *, RESET
    ALL) through the pooler."""
    name = "asyncpg-pool"
    pool = None

    def __init__(self):
        super().__init__(None)

    @classmethod
    async def open(cls):
        import asyncpg
        if cls.pool is None:
            c = dict(CONN)
            c["database"] = c.pop("dbname")
            cls.pool = await asyncpg.create_pool(min_size=N, max_size=N, timeout=60, **c)
        return cls()

    async def begin(self):
        self.conn = await self.pool.acquire()
        await super().begin()

    async def release(self):
        conn, self.conn = self.conn, None
        await self.pool.release(conn)

    async def commit(self):
        await super().commit()
        await self.release()

    async def rollback(self):
        await super().rollback()
        await self.release()

    async def q(self, name, *args):
        if self.conn is not None:
            return await super().q(name, *args)
        T.add("prepared")
        return [tuple(r) for r in await self.pool.fetch(SQL[name], *args)]


# ---- runners ----

async def run_asyncpg(adapter):
    dbs = [await adapter.open() for _ in range(N)]
    await asyncio.gather(*(client(db, i) for i, db in enumerate(dbs)))
    final = await dbs[0].q("final")
    if adapter.pool:
        await adapter.pool.close()
    else:
        for db in dbs:
            await db.conn.close()
    return final


def run_threads(adapter):
    barrier = threading.Barrier(N)
    dbs = [None] * N

    def body(i):
        try:
            dbs[i] = adapter()
        except Exception as e:
            with T.lock:
                T.failures.append("client %d could not connect: %s" % (i, str(e).strip()))
        barrier.wait()
        if dbs[i]:
            asyncio.run(client(dbs[i], i))
            dbs[i].close()          # at once: a client that stopped mid-transaction holds a server

    threads = [threading.Thread(target=body, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db = adapter()
    final = asyncio.run(db.q("final"))
    db.close()
    return final


def main():
    driver = sys.argv[1]
    adapters = {"psycopg2": Psycopg2, "psycopg": Psycopg3, "sqlalchemy": SQLAlchemy, "asyncpg": Asyncpg,
                "asyncpg-pool": AsyncpgPool}
    try:
        if driver.startswith("asyncpg"):
            final = asyncio.run(run_asyncpg(adapters[driver]))
        else:
            final = run_threads(adapters[driver])
    except Exception as e:
        T.failures.append("final check: %s: %s" % (type(e).__name__, str(e).strip()))
        final = [(None, None)]
    for f in T.failures:
        print("FAIL " + f.replace("\n", " | "))
    fields = dict(driver=driver, clients=N, rounds=R, **T.n)
    fields.update(final_sum=final[0][0], final_tokens=final[0][1], failures=len(T.failures))
    print("SUMMARY " + " ".join("%s=%s" % kv for kv in fields.items()), flush=True)


if __name__ == "__main__":
    main()
