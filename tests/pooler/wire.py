"""tests/pooler/wire.py: PostgreSQL's protocol 3 spoken by hand, for tests
that must see the exact messages a client gets (psycopg hides them) and send
what no driver would (pipelines without Sync, cancels aimed at a moment,
malformed input).  Message builders, a reader, logins (trust, md5, SCRAM) and
CancelRequest.  Knows nothing of poolers or test counting (that is
harness.py), so the pooler's benchmark imports it too (free_port, rss_kb,
startup_packet)."""
import base64
import hashlib
import hmac
import os
import socket
import struct

READY_IDLE = b"Z\0\0\0\5I"
BACKEND_KEY = b"K\0\0\0\x0c"
CANCEL_CODE = 80877102


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- frontend messages ----

def startup_packet(user="postgres", db="postgres"):
    body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0" + db.encode() + b"\0\0"
    return struct.pack("!I", len(body) + 4) + body


def msg(t, body=b""):
    return t + struct.pack("!I", len(body) + 4) + body


def z(s):
    return s.encode() + b"\0"


def query(sql):
    return msg(b"Q", z(sql))


def parse(name, sql, types=()):
    return msg(b"P", z(name) + z(sql) + struct.pack("!H", len(types)) +
               b"".join(struct.pack("!I", t) for t in types))


def bind(name, params=(), portal=""):
    body = z(portal) + z(name) + struct.pack("!HH", 0, len(params))
    for p in params:
        v = str(p).encode()
        body += struct.pack("!I", len(v)) + v
    return msg(b"B", body + struct.pack("!H", 0))


def execute(portal=""):
    return msg(b"E", z(portal) + struct.pack("!I", 0))


def describe(name, kind=b"S"):
    return msg(b"D", kind + z(name))


def close(name, kind=b"S"):
    return msg(b"C", kind + z(name))


def extended(sql):
    """Parse/Bind/Execute of an unnamed statement, no Sync."""
    return parse("", sql) + bind("") + execute()


SYNC = msg(b"S")
FLUSH = msg(b"H")


# ---- backend messages ----

def read_msg(s):
    """One backend message (type, body), or (None, None) at EOF."""
    hdr = b""
    while len(hdr) < 5:
        chunk = s.recv(5 - len(hdr))
        if not chunk:
            return None, None
        hdr += chunk
    n = struct.unpack("!I", hdr[1:5])[0] - 4
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None, None
        body += chunk
    return hdr[:1], body


def sqlstate_of(body):
    for f in body.split(b"\0"):
        if f[:1] == b"C":
            return f[1:].decode()
    return "?"


def until_ready(s):
    """Replies up to and including ReadyForQuery: [(type, body)]; ("closed", b"") ends it at EOF."""
    out = []
    while True:
        t, body = read_msg(s)
        if t is None:
            out.append(("closed", b""))
            return out
        out.append((t.decode(), body))
        if t == b"Z":
            return out


def read_until(s, stop, timeout=5):
    """Messages up to and including the first of type `stop`: [(type, body)], or
    what came before a timeout / EOF (then the last entry is ('timeout'|'eof', b''))."""
    s.settimeout(timeout)
    out = []
    while True:
        try:
            t, body = read_msg(s)
        except socket.timeout:
            out.append(("timeout", b""))
            return out
        if t is None:
            out.append(("eof", b""))
            return out
        out.append((t.decode(), body))
        if t.decode() == stop:
            return out


def recv_all(s, timeout=30):
    """Everything until the peer closes (data, True) or goes quiet for timeout seconds (data, False)."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def types(replies):
    return "".join(t if t != "closed" else "!" for t, _ in replies)


def rows(replies):
    """Text values of the first column of every DataRow."""
    vals = []
    for t, body in replies:
        if t == "D":
            n = struct.unpack("!I", body[2:6])[0]
            vals.append(body[6:6 + n].decode())
    return vals


def errors(replies):
    """(SQLSTATE, message) of every ErrorResponse."""
    return [(sqlstate_of(b), [f[1:].decode() for f in b.split(b"\0") if f[:1] == b"M"][0])
            for t, b in replies if t == "E"]


def errors_in(replies):
    """SQLSTATE of every ErrorResponse."""
    return [sqlstate_of(b) for t, b in replies if t == "E"]


def status(replies):
    """The transaction status ReadyForQuery ended the replies with, '?' without one."""
    return replies[-1][1].decode() if replies and replies[-1][0] == "Z" else "?"


def tag(replies):
    return [b[:-1].decode() for t, b in replies if t == "C"]


# ---- sessions ----

def send(s, *msgs):
    s.sendall(b"".join(msgs))
    return until_ready(s)


def simple_query(s, sql):
    return send(s, query(sql))


def raw_login(port, user="postgres", db="postgres"):
    """A trusted login: (socket, everything up to the first idle ReadyForQuery or EOF)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(startup_packet(user, db))
    s.settimeout(5)
    data = b""
    while not data.endswith(READY_IDLE):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return s, data


def session(port, user="postgres", db="postgres"):
    """A trusted login that must succeed: the socket, 10 s timeout."""
    s, hello = raw_login(port, user, db)
    if not hello.endswith(READY_IDLE):
        raise RuntimeError("raw login failed: %r" % hello[-80:])
    s.settimeout(10)
    return s


def keyed_session(port):
    """A trusted session as postgres/postgres: (socket, backend pid, key) as the pooler gave them."""
    s, data = raw_login(port)
    i = data.find(BACKEND_KEY)
    pid, key = struct.unpack("!II", data[i + 5:i + 13])
    s.settimeout(10)
    return s, pid, key


def cancel(port, pid, key):
    """A CancelRequest to port; returns once the other side has closed it."""
    c = socket.create_connection(("127.0.0.1", port), 5)
    c.sendall(struct.pack("!IIII", 16, CANCEL_CODE, pid, key))
    c.settimeout(5)
    try:
        while c.recv(100):
            pass
    except OSError:
        pass
    c.close()


def raw_query(port, sql, timeout=10):
    """Log in as postgres (trust) and run one query; returns (sqlstate or 'ok', message)."""
    s, hello = raw_login(port)
    if not hello.endswith(READY_IDLE):
        s.close()
        i = hello.find(b"E")
        return (sqlstate_of(hello[i + 5:]) if i >= 0 else "closed", "login failed")
    s.settimeout(timeout)
    s.sendall(query(sql))
    try:
        while True:
            t, body = read_msg(s)
            if t is None:
                return ("closed", "")
            if t == b"E":
                return errors([("E", body)])[0]
            if t == b"Z":
                return ("ok", "")
    finally:
        s.close()


def _scram_final(password, first_bare, server_first):
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    ck = hmac.new(salted, b"Client Key", "sha256").digest()
    sk = hashlib.sha256(ck).digest()
    without = "c=biws,r=" + attrs["r"]
    auth = ",".join([first_bare, server_first, without]).encode()
    sig = hmac.new(sk, auth, "sha256").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(ck, sig))).decode()
    return (without + ",p=" + proof).encode()


def raw_connect(port, user, db, password=None):
    """Log in speaking the protocol ourselves (md5 and SCRAM included), so the
    SQLSTATE of a login failure is visible.  Returns 'ok' or the SQLSTATE."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(10)
    s.sendall(startup_packet(user, db))
    first_bare = "n=,r=" + base64.b64encode(os.urandom(18)).decode()
    try:
        while True:
            t, body = read_msg(s)
            if t is None:
                return "closed"
            if t == b"E":
                return sqlstate_of(body)
            if t == b"Z":
                return "ok"
            if t != b"R":
                continue
            code = struct.unpack("!I", body[:4])[0]
            if code == 5:
                inner = hashlib.md5((password + user).encode()).hexdigest()
                s.sendall(msg(b"p", z("md5" + hashlib.md5(inner.encode() + body[4:8]).hexdigest())))
            elif code == 10:
                first = ("n,," + first_bare).encode()
                s.sendall(msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
            elif code == 11:
                s.sendall(msg(b"p", _scram_final(password, first_bare, body[4:].decode())))
    finally:
        s.close()
