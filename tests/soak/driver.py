#!/usr/bin/python3
"""tests/soak/driver.py: the soak's client load for perfopt-pooler.

CLIENTS concurrent clients (asyncio, raw protocol 3, trust login) each
loop for DURATION seconds: connect, run 1-8 statements, leave (Terminate,
or vanish without one, sometimes mid-transaction), pause, come back.
Statements: `select N` (the answer must be N: a mixed-up server connection
would show), short transactions with an insert, pg_sleep, and 3 s sleeps
that the client cancels with CancelRequest through the pooler after 0.2 s
(57014 expected, also when the query still waits for a server: the pooler
cancels it there; a statement that ends without 57014 counts as cancel_missed).
A 57014 on any other statement is counted as stray_cancels.  Errors are expected while the server restarts (the soak restarts
it); they are counted by SQLSTATE.  Prints one JSON line of figures.

usage: driver.py HOST PORT USER DB CLIENTS DURATION
"""
import asyncio
import json
import random
import struct
import sys
import time
from collections import Counter

HOST, PORT, USER, DB = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
CLIENTS, DURATION = int(sys.argv[5]), float(sys.argv[6])
# pauses scale with the crowd: about 500 statements a second in all, what
# two cores running PostgreSQL, the pooler and this driver sustain
THINK = max(0.5, CLIENTS / 250.0)
stats = Counter()
errors = Counter()
latencies = []


class ProtoError(Exception):
    pass


class ServerError(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def startup():
    body = struct.pack("!I", 196608)
    for k, v in (("user", USER), ("database", DB), ("application_name", "soak")):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


async def read_msg(r):
    hdr = await r.readexactly(5)
    n = struct.unpack("!I", hdr[1:5])[0]
    if n < 4 or n > 1 << 20:
        raise ProtoError("bad length %d for %r" % (n, hdr[:1]))
    return hdr[:1], await r.readexactly(n - 4)


def fields(body):
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode(errors="replace")
    return out


async def until_rfq(r):
    """Messages up to ReadyForQuery: (rows, error, status)."""
    rows, err = [], None
    while True:
        t, body = await read_msg(r)
        if t == b"D":
            ncol = struct.unpack("!H", body[:2])[0]
            off, row = 2, []
            for _ in range(ncol):
                ln = struct.unpack("!i", body[off:off + 4])[0]
                off += 4
                row.append(None if ln < 0 else body[off:off + ln].decode())
                off += max(ln, 0)
            rows.append(row)
        elif t == b"E":
            f = fields(body)
            err = ServerError(f.get("C", "?????"), f.get("M", ""))
        elif t == b"Z":
            return rows, err, body[:1]


async def login():
    r, w = await asyncio.wait_for(asyncio.open_connection(HOST, PORT), 10)
    w.write(startup())
    key = None
    while True:
        t, body = await asyncio.wait_for(read_msg(r), 30)
        if t == b"E":
            w.close()
            f = fields(body)
            raise ServerError(f.get("C", "?????"), f.get("M", ""))
        if t == b"K":
            key = struct.unpack("!II", body)
        if t == b"Z":
            return r, w, key


async def query(r, w, sql):
    t0 = time.monotonic()
    w.write(msg(b"Q", sql.encode() + b"\0"))
    rows, err, status = await asyncio.wait_for(until_rfq(r), 60)
    latencies.append(time.monotonic() - t0)
    if err:
        if err.code == "57014" and "pg_sleep(3)" not in sql:
            stats["stray_cancels"] += 1
            print("STRAY CANCEL: %r got %s" % (sql, err), file=sys.stderr)
        raise err
    return rows, status


async def cancel(key, delay):
    await asyncio.sleep(delay)
    try:
        r, w = await asyncio.open_connection(HOST, PORT)
        w.write(struct.pack("!IIII", 16, 80877102, key[0], key[1]))
        await w.drain()
        await r.read()          # the pooler closes it
        w.close()
        stats["cancel_requests"] += 1
    except OSError:
        stats["cancel_request_failed"] += 1


async def session(rng):
    r, w, key = await login()
    stats["logins"] += 1
    in_txn = False
    try:
        for _ in range(rng.randint(1, 8)):
            kind = rng.random()
            if kind < 0.70:
                n = rng.randint(1, 1 << 30)
                rows, _ = await query(r, w, "select %d" % n)
                if rows != [[str(n)]]:
                    stats["wrong_answers"] += 1
                    print("WRONG ANSWER: select %d gave %r" % (n, rows), file=sys.stderr)
                stats["queries_ok"] += 1
            elif kind < 0.85:
                n = rng.randint(1, 1 << 30)
                await query(r, w, "begin")
                in_txn = True
                await query(r, w, "insert into soak(v) values (%d)" % n)
                if rng.random() < 0.05:
                    stats["vanished_in_txn"] += 1
                    w.transport.abort()      # gone mid-transaction
                    return
                rows, _ = await query(r, w, "select count(*) from soak where v = %d" % n)
                await query(r, w, "commit")
                in_txn = False
                stats["transactions_ok"] += 1
            elif kind < 0.95:
                await query(r, w, "select pg_sleep(%f)" % (rng.random() * 0.05))
                stats["queries_ok"] += 1
            else:
                task = asyncio.ensure_future(cancel(key, 0.2))
                try:
                    await query(r, w, "select pg_sleep(3)")
                    stats["cancel_missed"] += 1
                except ServerError as e:
                    if e.code == "57014":
                        stats["cancelled_ok"] += 1
                    else:
                        raise
                finally:
                    await task
            await asyncio.sleep(rng.random() * THINK)
        if rng.random() < 0.1:
            stats["vanished"] += 1
            w.transport.abort()
        else:
            w.write(msg(b"X"))
            await w.drain()
            w.close()
            stats["clean_exits"] += 1
    except BaseException:
        w.transport.abort()
        raise


async def client(i, deadline):
    rng = random.Random(i)
    await asyncio.sleep(rng.random() * min(10, DURATION / 4))     # ramp up
    while time.monotonic() < deadline:
        try:
            await session(rng)
        except ServerError as e:
            errors[e.code] += 1
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            errors["connection_lost"] += 1
        except asyncio.TimeoutError:
            errors["timeout"] += 1
        except ProtoError as e:
            errors["protocol_error"] += 1
            print("PROTOCOL ERROR: %s" % e, file=sys.stderr)
        await asyncio.sleep(rng.random() * THINK)


async def main():
    deadline = time.monotonic() + DURATION
    await asyncio.gather(*(client(i, deadline) for i in range(CLIENTS)))


t0 = time.monotonic()
asyncio.run(main())
latencies.sort()
out = dict(stats)
out["errors"] = dict(errors)
out["seconds"] = round(time.monotonic() - t0, 1)
out["statements"] = len(latencies)
out["p50_ms"] = round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None
out["p99_ms"] = round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None
print(json.dumps(out, sort_keys=True))
