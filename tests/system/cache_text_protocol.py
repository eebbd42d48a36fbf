"""The result cache's stored text (extension/cache/cache_wire.c) seen by real
clients: a hit is sent as the text a client received before only to a
client reading text in the same encoding; a client asking the extended
protocol for binary columns gets the binary form, whatever is stored.

Usage: cache_text_protocol.py HOST PORT.  Prints "ok - ..." / "not ok - ..."
lines and a closing "N passed, N failed"."""
import os
import socket
import struct
import sys

import psycopg2

HOST, PORT = sys.argv[1], int(sys.argv[2])
DSN = "host=%s port=%d user=postgres dbname=postgres" % (HOST, PORT)
STMT = "SELECT v, t FROM tp WHERE id = 1"
BIG = 4702111234474983745          # eight bytes of 'A' as an int8
passed = failed = 0


def check(cond, desc, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - " + desc)
    else:
        failed += 1
        print("not ok - %s %s" % (desc, detail))


def outcome(cur):
    cur.execute("SELECT perfopt.cache_last_outcome()")
    return cur.fetchone()[0]


def msg(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


def read_msg(s):
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise EOFError("server closed the connection")
            data += chunk
        return data
    hdr = exactly(5)
    return hdr[:1], exactly(struct.unpack("!I", hdr[1:])[0] - 4)


def raw_session():
    if HOST.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(HOST, ".s.PGSQL.%d" % PORT))
    else:
        s = socket.create_connection((HOST, PORT))
    s.settimeout(20)
    params = b"user\0postgres\0database\0postgres\0\0"
    s.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
    while read_msg(s)[0] != b"Z":
        pass
    return s


def columns(datarow):
    n, pos, cols = struct.unpack("!H", datarow[:2])[0], 2, []
    for _ in range(n):
        ln = struct.unpack("!i", datarow[pos:pos + 4])[0]
        pos += 4
        cols.append(None if ln < 0 else datarow[pos:pos + ln])
        pos += max(ln, 0)
    return cols


def until_ready(s):
    """Messages up to ReadyForQuery: the DataRows' columns and any error."""
    rows, error = [], None
    while True:
        kind, body = read_msg(s)
        if kind == b"D":
            rows.append(columns(body))
        elif kind == b"E":
            error = body
        elif kind == b"Z":
            return rows, error


def extended(s, sql, formats):
    """Parse, Bind with these result formats, Execute, Sync."""
    bind = b"\0\0" + struct.pack("!HH", 0, 0) + struct.pack("!H", len(formats))
    bind += b"".join(struct.pack("!H", f) for f in formats)
    s.sendall(msg(b"P", b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0)) +
              msg(b"B", bind) + msg(b"E", b"\0" + struct.pack("!I", 0)) + msg(b"S", b""))
    return until_ready(s)


def execute_limited(s, sql, max_rows):
    """Parse, Bind (text), then Execute max_rows at a time until the portal
    is done; returns the rows of each Execute."""
    s.sendall(msg(b"P", b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0)) +
              msg(b"B", b"\0\0" + struct.pack("!HHH", 0, 0, 0)))
    batches = []
    while True:
        s.sendall(msg(b"E", b"\0" + struct.pack("!I", max_rows)) + msg(b"H", b""))
        rows, done = [], False
        while True:
            kind, body = read_msg(s)
            if kind == b"D":
                rows.append(columns(body))
            elif kind in (b"s", b"C", b"E"):
                done = kind != b"s"
                break
        batches.append(rows)
        if done:
            break
    s.sendall(msg(b"S", b""))
    until_ready(s)
    return batches


def simple(s, sql):
    s.sendall(msg(b"Q", sql.encode() + b"\0"))
    return until_ready(s)


def row_description(s, sql):
    """The RowDescription a simple Query gets: each column's name, table
    OID, attribute number, type OID, type size, typmod and format."""
    s.sendall(msg(b"Q", sql.encode() + b"\0"))
    fields = None
    while True:
        kind, body = read_msg(s)
        if kind == b"T":
            n, pos, fields = struct.unpack("!H", body[:2])[0], 2, []
            for _ in range(n):
                end = body.index(b"\0", pos)
                fields.append((body[pos:end],) + struct.unpack("!IhIhih", body[end + 1:end + 19]))
                pos = end + 19
        elif kind == b"Z":
            return fields


setup = psycopg2.connect(DSN)
setup.autocommit = True
cur = setup.cursor()
cur.execute("CREATE TABLE tp (id int PRIMARY KEY, v int8 NOT NULL, t text NOT NULL)")
cur.execute("INSERT INTO tp VALUES (1, %s, 'naïve')", (BIG,))
cur.execute("SELECT perfopt.cache_table('tp')")
cur.execute(STMT)
check(outcome(cur) == "miss, stored", "a client reading UTF8 text stores the result")
cur.execute(STMT)
row = cur.fetchone()
check(row == (BIG, "naïve") and outcome(cur) == "hit", "the next one is a hit", repr(row))

latin = psycopg2.connect(DSN)
latin.autocommit = True
latin.set_client_encoding("LATIN1")
lcur = latin.cursor()
lcur.execute(STMT)
row = lcur.fetchone()
check(row == (BIG, "naïve"), "a LATIN1 client reads its own encoding", repr(row))
check(outcome(lcur) == "hit", "and is answered from the cache")

s = raw_session()
rows, err = extended(s, STMT, [1])
check(err is None and rows == [[b"AAAAAAAA", "naïve".encode()]],
      "extended protocol, binary columns: the binary form", repr((rows, err)))
# planned apart from its analysis (Parse, then Bind), the statement keys the
# constants it read: its own entry, not the simple protocol's
rows, err = simple(s, "SELECT perfopt.cache_last_outcome()")
check(rows == [[b"miss, stored"]], "the extended protocol keys its constants: stored apart", repr(rows))
rows, err = extended(s, STMT, [1])
check(err is None and rows == [[b"AAAAAAAA", "naïve".encode()]],
      "extended protocol, binary columns again: the binary form", repr((rows, err)))
rows, err = simple(s, "SELECT perfopt.cache_last_outcome()")
check(rows == [[b"hit"]], "binary columns were a hit", repr(rows))
rows, err = extended(s, STMT, [0, 1])
check(err is None and rows == [[str(BIG).encode(), "naïve".encode()]],
      "mixed formats: text, then binary", repr((rows, err)))
rows, err = extended(s, STMT, [])
check(err is None and rows == [[str(BIG).encode(), "naïve".encode()]],
      "extended protocol, text columns: the text", repr((rows, err)))
rows, err = simple(s, "SELECT perfopt.cache_last_outcome()")
check(rows == [[b"hit"]], "text columns were a hit", repr(rows))
rows, err = simple(s, STMT)
check(err is None and rows == [[str(BIG).encode(), "naïve".encode()]],
      "simple protocol: the text", repr((rows, err)))
# a hit describes its columns as running the statement does: drivers read
# the table and column each comes from
DESCRIBED = "SELECT t AS label, v, v + 1 AS next FROM tp WHERE id = 1"
computed = row_description(s, DESCRIBED)
rows, err = simple(s, "SELECT perfopt.cache_last_outcome()")
check(rows == [[b"miss, stored"]], "the statement described was computed once", repr(rows))
answered = row_description(s, DESCRIBED)
rows, err = simple(s, "SELECT perfopt.cache_last_outcome()")
check(rows == [[b"hit"]], "then answered from the cache", repr(rows))
check(computed is not None and computed[0][1] != 0 and computed[0][2] == 3,
      "the computed RowDescription names tp.t for label", repr(computed))
check(answered == computed, "a hit's RowDescription is the same", repr((computed, answered)))

# a row limit per Execute (JDBC's fetch size): the stored rows come in
# batches, each row once
cur.execute("CREATE TABLE tp_many (id int PRIMARY KEY, v text NOT NULL)")
cur.execute("INSERT INTO tp_many SELECT g, 'row ' || g FROM generate_series(1, 5) g")
cur.execute("SELECT perfopt.cache_table('tp_many')")
MANY = "SELECT id, v FROM tp_many ORDER BY id"
rows, err = extended(s, MANY, [])
check(len(rows) == 5 and err is None, "five rows stored", repr((rows, err)))
batches = execute_limited(s, MANY, 2)
want = [[str(i).encode(), b"row %d" % i] for i in range(1, 6)]
check(batches == [want[0:2], want[2:4], want[4:5]],
      "Execute with at most 2 rows: 2, 2, then the last, in order", repr(batches))
rows, err = simple(s, "SELECT perfopt.cache_last_outcome()")
check(rows == [[b"hit"]], "the batches came from the cache", repr(rows))
s.sendall(msg(b"X", b""))
s.close()

cur.execute("SELECT hits FROM perfopt.cache_totals")
check(cur.fetchone()[0] >= 7, "every read above after the first was a hit")
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
