"""tests/pooler/test_tls.py: perfopt-pooler's TLS, both sides, against real
clients and the suite's real PostgreSQL.  The test makes its own CAs and
certificates with the openssl CLI; for the server side it turns ssl on in the
test PostgreSQL (ALTER SYSTEM + pg_reload_conf) and turns it off again at the
end, so the other tests see the server as they expect.

Client side: psql sslmode=require / verify-full, psycopg2 ssl_in_use, the
three client_tls_mode values, a wrong CA, the pipelined-bytes injection,
large transfers through TLS.  Server side: pg_stat_ssl for the pooler's own
backends under prefer / require / verify-ca / verify-full, a wrong CA and a
wrong host name, prefer and require against ssl = off.  Then pgbench -S with
TLS on both sides.  Config errors name the file, the line and the key."""
import os
import signal
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import psycopg
import psycopg2

from harness import (BIN, PG_HOST, PG_PORT, Pooler, TMP, direct, err_code, failed_count, in_background, in_pg_sleep,
                     ok, pgbench_init, q1, show, transactions_done, wait_for)
from wire import raw_connect, read_msg, sqlstate_of, startup_packet


SSL_REQUEST = struct.pack("!II", 8, 80877103)
CERTS = os.path.join(TMP, "tls")


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, cwd=CERTS)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))


def make_ca(name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=perfopt test " + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_cert(name, ca, san):
    with open(os.path.join(CERTS, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" % san)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")


def certs():
    """CA 'ca' signs 'good' (localhost, 127.0.0.1) and 'elsewhere' (another
    host only); CA 'otherca' signs nothing we use: the wrong CA."""
    if os.path.exists(os.path.join(CERTS, "good.crt")):
        return
    os.makedirs(CERTS, exist_ok=True)
    os.chmod(CERTS, 0o755)
    make_ca("ca")
    make_ca("otherca")
    make_cert("good", "ca", "DNS:localhost,IP:127.0.0.1")
    make_cert("elsewhere", "ca", "DNS:db.elsewhere.invalid")


def path(name):
    return os.path.join(CERTS, name)


def tls_pooler(name, auth="scram-sha-256", **settings):
    certs()
    base = {"client_tls_mode": "require", "client_tls_cert_file": path("good.crt"),
            "client_tls_key_file": path("good.key")}
    base.update(settings)
    return Pooler(name, auth=auth, **base)


def psql(port, sql, host="127.0.0.1", **conninfo):
    dsn = "host=%s port=%d user=app dbname=appdb" % (host, port)
    dsn += "".join(" %s=%s" % kv for kv in conninfo.items())
    return subprocess.run(["psql", "-X", "-At", "-d", dsn, "-c", sql], capture_output=True, text=True,
                          env=dict(os.environ, PGPASSWORD="app-secret", PGCONNECT_TIMEOUT="10"), timeout=30)


def check_config_errors():
    certs()
    ini = os.path.join(TMP, "tls_bad.ini")
    head = "[databases]\nappdb = host=127.0.0.1\n[pooler]\n"

    def run(body):
        with open(ini, "w") as f:
            f.write(head + body)
        return subprocess.run([BIN, "-c", ini, "--check"], capture_output=True, text=True)

    r = run("client_tls_mode = require\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n"
            % (path("good.crt"), path("good.key")))
    ok(r.returncode == 0 and "is valid" in r.stdout, "TLS config with a real certificate and key passes --check",
          r.stderr)
    r = run("client_tls_mode = require\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n"
            % (path("missing.crt"), path("good.key")))
    ok(r.returncode != 0 and "%s:5: key \"client_tls_cert_file\"" % ini in r.stderr and "missing.crt" in r.stderr,
          "missing certificate file: error names file, line 5 and key", r.stderr)
    r = run("client_tls_mode = allow\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n"
            % (path("good.crt"), path("elsewhere.key")))
    ok(r.returncode != 0 and "%s:6: key \"client_tls_key_file\"" % ini in r.stderr and "mismatch" in r.stderr,
          "key of another certificate: error names file, line 6, key and the mismatch", r.stderr)
    r = run("client_tls_mode = require\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n"
            % (path("good.key"), path("good.key")))
    ok(r.returncode != 0 and "%s:5: key \"client_tls_cert_file\"" % ini in r.stderr,
          "a key given as the certificate: error names file, line 5 and key", r.stderr)
    if not os.path.exists(path("locked.key")):
        openssl("pkey", "-in", "good.key", "-aes256", "-passout", "pass:secret", "-out", "locked.key")
    with open(ini, "w") as f:
        f.write(head + "client_tls_mode = require\nclient_tls_cert_file = %s\nclient_tls_key_file = %s\n"
                % (path("good.crt"), path("locked.key")))
    r = subprocess.run([BIN, "-c", ini, "--check"], capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    ok(r.returncode != 0 and "%s:6: key \"client_tls_key_file\"" % ini in r.stderr and "locked.key" in r.stderr,
          "a key with a passphrase: refused at start without prompting, line 6 and key named", r.stderr)
    r = run("pool_size = 3\nclient_tls_mode = require\n")
    ok(r.returncode != 0 and "%s:5: key \"client_tls_mode\"" % ini in r.stderr and "client_tls_cert_file" in r.stderr,
          "client_tls_mode = require without certificate: error names line 5 and what is missing", r.stderr)
    r = run("server_tls_mode = verify-full\n")
    ok(r.returncode != 0 and "%s:4: key \"server_tls_mode\"" % ini in r.stderr and "server_tls_ca_file" in r.stderr,
          "server_tls_mode = verify-full without CA: error names line 4 and server_tls_ca_file", r.stderr)
    r = run("server_tls_mode = verify-full\nserver_tls_ca_file = %s\n" % path("nothere.crt"))
    ok(r.returncode != 0 and "%s:5: key \"server_tls_ca_file\"" % ini in r.stderr,
          "unreadable CA file: error names line 5 and key", r.stderr)
    r = run("client_tls_mode = sometimes\n")
    ok(r.returncode != 0 and "%s:4: key \"client_tls_mode\"" % ini in r.stderr and "disable, allow or require" in r.stderr,
          "unknown client_tls_mode value: error lists the choices", r.stderr)
    r = run("server_tls_mode = verify\n")
    ok(r.returncode != 0 and "%s:4: key \"server_tls_mode\"" % ini in r.stderr and "verify-full" in r.stderr,
          "unknown server_tls_mode value: error lists the choices", r.stderr)


def test_tls_config():
    check_config_errors()


def check_encrypted_clients(p):
    r = psql(p.port, "\\conninfo", sslmode="require")
    ok(r.returncode == 0 and "SSL connection (protocol: TLSv1.3" in r.stdout,
          "psql sslmode=require through the pooler: \\conninfo reports an SSL connection", r.stdout + r.stderr)
    r = psql(p.port, "select current_user || ' over tls'", sslmode="verify-full", sslrootcert=path("ca.crt"))
    ok(r.returncode == 0 and r.stdout.strip() == "app over tls",
          "psql sslmode=verify-full with the test CA: certificate and 127.0.0.1 verified, query answered",
          r.stdout + r.stderr)
    r = psql(p.port, "\\conninfo", host="localhost", sslmode="verify-full", sslrootcert=path("ca.crt"))
    ok(r.returncode == 0 and "SSL connection" in r.stdout,
          "psql sslmode=verify-full to host name localhost: verified", r.stdout + r.stderr)
    r = psql(p.port, "select 1", sslmode="verify-full", sslrootcert=path("otherca.crt"))
    ok(r.returncode != 0 and "certificate verify failed" in r.stderr,
          "psql sslmode=verify-full with the wrong CA is refused by the client", r.stderr)
    c = p.connect(sslmode="require")
    ok(c.info.ssl_in_use and c.info.ssl_attribute("protocol") == "TLSv1.3",
          "psycopg2 through the pooler: ssl_in_use, TLSv1.3", c.info.ssl_attribute("protocol"))
    cur = c.cursor()
    cur.execute("select x, repeat('y', 100000) from generate_series(1, 50) x")
    rows = cur.fetchall()
    ok(len(rows) == 50 and all(len(r[1]) == 100000 and r[0] == i + 1 for i, r in enumerate(rows)),
          "5 MB result through TLS arrives whole and in order")
    big = os.urandom(600000).hex()
    cur.execute("select md5(%s), length(%s)", (big, big))
    got = cur.fetchone()
    ok(got == (__import__("hashlib").md5(big.encode()).hexdigest(), 1200000),
          "1.2 MB query parameter through TLS reaches the server intact", got[1])
    c.close()


def test_tls_client():
    p = tls_pooler("tls_require")
    check_encrypted_clients(p)
    code = raw_connect(p.port, "app", "appdb", "app-secret")
    ok(code == "28000", "client_tls_mode = require: a plaintext startup gets 28000", code)
    r = psql(p.port, "select 1", sslmode="disable")
    ok(r.returncode != 0 and "SSL required" in r.stderr, "psql sslmode=disable: refused, message says SSL required",
          r.stderr)
    r = psql(p.port, "select 'unix ok'", host=p.dir)
    ok(r.returncode == 0 and r.stdout.strip() == "unix ok",
          "Unix-socket clients need no TLS under client_tls_mode = require", r.stdout + r.stderr)

    s = socket.create_connection(("127.0.0.1", p.port), 10)
    s.settimeout(10)
    s.sendall(SSL_REQUEST + startup_packet("app", "appdb"))
    t, body = read_msg(s)
    body = body or b""
    ok(t == b"E" and sqlstate_of(body) == "08P01" and b"unencrypted data after SSL request" in body,
          "bytes pipelined behind the SSLRequest: 08P01 instead of 'S' (no injection before TLS)", (t, body[:100]))
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port), 10)
    s.settimeout(10)
    s.sendall(SSL_REQUEST)
    ans = s.recv(1)
    s.sendall(b"\x16\x03\x01\x00\x05hello")     # a TLS record header, then garbage
    rest = s.recv(100)
    s.close()
    ok(ans == b"S", "SSLRequest on its own is answered S", ans)
    ok(b"C08P01" not in rest and wait_for(p.alive), "a broken handshake only closes that client", rest[:40])
    r = psql(p.port, "select 'still serving'", sslmode="require")
    ok(r.returncode == 0 and "still serving" in r.stdout, "pooler serves TLS clients after a broken handshake",
          r.stderr)
    p.stop()

    p = tls_pooler("tls_allow", client_tls_mode="allow")
    got = [psql(p.port, "select %d" % i, sslmode=m).stdout.strip() for i, m in enumerate(("require", "disable") * 2)]
    ok(got == ["0", "1", "2", "3"], "four logins in a row, TLS and plaintext, each answered by the pool's server", got)
    r = psql(p.port, "\\conninfo", sslmode="require")
    ok(r.returncode == 0 and "SSL connection" in r.stdout, "client_tls_mode = allow: TLS when asked",
          r.stdout + r.stderr)
    r = psql(p.port, "\\conninfo", sslmode="disable")
    ok(r.returncode == 0 and "SSL" not in r.stdout and "You are connected" in r.stdout,
          "client_tls_mode = allow: plaintext when not asked", r.stdout + r.stderr)
    p.stop()

    p = tls_pooler("tls_disable", client_tls_mode="disable")
    s = socket.create_connection(("127.0.0.1", p.port), 10)
    s.sendall(SSL_REQUEST)
    ans = s.recv(1)
    s.close()
    ok(ans == b"N", "client_tls_mode = disable: SSLRequest answered N", ans)
    r = psql(p.port, "select 1", sslmode="require")
    ok(r.returncode != 0 and "server does not support SSL" in r.stderr,
          "client_tls_mode = disable: psql sslmode=require fails", r.stderr)
    r = psql(p.port, "select 'plain'", sslmode="prefer")
    ok(r.returncode == 0 and r.stdout.strip() == "plain", "client_tls_mode = disable: sslmode=prefer falls back",
          r.stderr)
    p.stop()


# ---------------------------------------------------------------- server side

def pg_ssl(cert):
    """ssl = on in the test PostgreSQL with cert (None: ssl = off); waits until
    new connections see it."""
    d = direct()
    if cert:
        own = os.path.join(TMP, "pgssl")
        os.makedirs(own, exist_ok=True)
        for ext in ("crt", "key"):
            shutil.copy(path(cert + "." + ext), os.path.join(own, "server." + ext))
        subprocess.run(["chown", "-R", "postgres:", own], check=True)
        os.chmod(own, 0o700)
        os.chmod(os.path.join(own, "server.key"), 0o600)
        with d.cursor() as cur:
            cur.execute("alter system set ssl_cert_file = %s", (os.path.join(own, "server.crt"),))
            cur.execute("alter system set ssl_key_file = %s", (os.path.join(own, "server.key"),))
            cur.execute("alter system set ssl = on")
    else:
        with d.cursor() as cur:
            cur.execute("alter system reset ssl")
            cur.execute("alter system reset ssl_cert_file")
            cur.execute("alter system reset ssl_key_file")
    loaded = q1(d, "select pg_reload_conf()")
    d.close()

    def server_cert_seen():
        try:
            c = psycopg2.connect(host="127.0.0.1", port=PG_PORT, user="postgres", dbname="postgres",
                                 sslmode="require" if cert else "disable", connect_timeout=5)
        except psycopg2.Error:
            return False
        try:
            return c.info.ssl_in_use == bool(cert) and q1(c, "show ssl") == ("on" if cert else "off")
        finally:
            c.close()
    return loaded and wait_for(server_cert_seen, step=0.1)


def backend_ssl(conn):
    """pg_stat_ssl.ssl of the backend serving conn (through the pooler)."""
    pid = q1(conn, "select pg_backend_pid()")
    d = direct()
    try:
        return q1(d, "select ssl from pg_stat_ssl where pid = %s", (pid,))
    finally:
        d.close()


def server_pooler(name, mode, host="127.0.0.1", ca="ca", **settings):
    db = "host=%s port=%d dbname=appdb" % (host, PG_PORT)
    kw = {"server_tls_mode": mode}
    if ca:
        kw["server_tls_ca_file"] = path(ca + ".crt")
    kw.update(settings)
    return Pooler(name, auth="scram-sha-256", dbs={"appdb": db}, pool_size=2, **kw)


def login_error(p):
    """SQLSTATE (from a raw login: libpq keeps it from psycopg2 at connect)
    and message a client gets when the pooler cannot log in."""
    code = raw_connect(p.port, "app", "appdb", "app-secret")
    try:
        c = p.connect()
    except psycopg2.Error as e:
        return code, str(e).strip()
    c.close()
    return code, ""


def check_server_modes():
    for mode in ("prefer", "require", "verify-ca", "verify-full"):
        p = server_pooler("srv_" + mode.replace("-", "_"), mode)
        c = p.connect()
        ok(backend_ssl(c) is True and q1(c, "select current_user") == "app",
              "server_tls_mode = %s: pg_stat_ssl shows ssl = true for the pooler's backend" % mode)
        c.close()
        p.stop()
    p = server_pooler("srv_localhost", "verify-full", host="localhost")
    c = p.connect()
    ok(backend_ssl(c) is True, "server_tls_mode = verify-full to host name localhost: verified, ssl = true")
    c.close()
    p.stop()
    p = server_pooler("srv_disable", "disable", ca=None)
    c = p.connect()
    ok(backend_ssl(c) is False, "server_tls_mode = disable: the backend connection is plaintext")
    c.close()
    p.stop()
    p = Pooler("srv_unix", auth="scram-sha-256", dbs={"appdb": "host=%s port=%d" % (PG_HOST, PG_PORT)},
                  server_tls_mode="require")
    c = p.connect()
    ok(backend_ssl(c) is False and q1(c, "select 5") == 5,
          "server_tls_mode = require to a Unix-socket database: no TLS there (PostgreSQL has none), served")
    c.close()
    p.stop()
    p = server_pooler("srv_wrongca", "verify-full", ca="otherca")
    code, msg = login_error(p)
    ok(code == "08006" and "certificate verify failed" in msg and "TLS handshake with server failed" in msg,
          "verify-full with the wrong CA: clients get 08006 naming the failed verification", (code, msg))
    ok("certificate verify failed" in open(p.log).read(), "the failed verification is logged")
    code2, _ = login_error(p)
    ok(code2 == "08006" and p.alive(), "the pool keeps failing cleanly (backoff), pooler alive", code2)
    p.stop()


def check_wrong_host():
    ok(pg_ssl("elsewhere"), "PostgreSQL now presents a certificate for another host name")
    p = server_pooler("srv_wronghost", "verify-full")
    code, msg = login_error(p)
    ok(code == "08006" and "IP address mismatch" in msg,
          "verify-full: 127.0.0.1 is not in the server's certificate: 08006, IP address mismatch", (code, msg))
    p.stop()
    p = server_pooler("srv_wrongname", "verify-full", host="localhost")
    code, msg = login_error(p)
    ok(code == "08006" and "hostname mismatch" in msg,
          "verify-full: localhost is not in the server's certificate: 08006, hostname mismatch", (code, msg))
    p.stop()
    p = server_pooler("srv_verifyca", "verify-ca")
    c = p.connect()
    ok(backend_ssl(c) is True, "verify-ca accepts the same certificate (chain only, no host check)")
    c.close()
    p.stop()


def check_server_without_ssl():
    ok(pg_ssl(None), "PostgreSQL back to ssl = off")
    p = server_pooler("srv_prefer_plain", "prefer")
    c = p.connect()
    ok(backend_ssl(c) is False and q1(c, "select 7") == 7,
          "server_tls_mode = prefer against ssl = off: falls back to plaintext")
    c.close()
    p.stop()
    p = server_pooler("srv_require_plain", "require")
    code, msg = login_error(p)
    ok(code == "08006" and "refused TLS" in msg,
          "server_tls_mode = require against ssl = off: 08006, server refused TLS", (code, msg))
    p.stop()


def fake_server(answer):
    """A listener that answers the pooler's SSLRequest with `answer` (one
    send) and then waits; returns its port and a list of what it received."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    got = []

    def serve():
        srv.settimeout(10)
        try:
            while True:
                c, _ = srv.accept()
                c.settimeout(5)
                got.append(c.recv(8))
                c.sendall(answer)
                try:
                    got.append(c.recv(100))
                except OSError:
                    pass
                c.close()
        except OSError:
            pass
    threading.Thread(target=serve, daemon=True).start()
    return srv, got


def check_fake_servers():
    for answer, expect, desc in (
            (b"Sjunk", "received unencrypted data after the server's SSL response",
             "bytes behind the server's 'S' (injection): login refused"),
            (b"X", "invalid answer to SSLRequest", "an answer that is neither S nor N: login refused")):
        srv, got = fake_server(answer)
        p = Pooler("srv_fake", auth="scram-sha-256", server_tls_mode="require", pool_size=1,
                      dbs={"appdb": "host=127.0.0.1 port=%d" % srv.getsockname()[1]})
        code, msg = login_error(p)
        ok(code == "08006" and expect in msg and got[:1] == [SSL_REQUEST], "fake server: " + desc, (code, msg, got[:1]))
        p.stop()
        srv.close()


def test_tls_server():
    certs()
    try:
        ok(pg_ssl("good"), "PostgreSQL serves TLS with the test certificate (ssl = on, reloaded)")
        check_server_modes()
        check_wrong_host()
        check_server_without_ssl()
        check_fake_servers()
    finally:
        pg_ssl(None)


def test_tls_pgbench():
    certs()
    env = dict(os.environ, PGPASSWORD="app-secret")
    d = direct("appdb")
    have = q1(d, "select count(*) from pg_class where relname = 'pgbench_accounts'")
    d.close()
    if not have:
        r = subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", PG_HOST, "-p", str(PG_PORT),
                            "-U", "app", "appdb"], capture_output=True, text=True, env=env)
        ok(r.returncode == 0, "pgbench -i", r.stderr[-300:])
    try:
        ok(pg_ssl("good"), "PostgreSQL serves TLS")
        p = tls_pooler("tls_bench", server_tls_mode="verify-full", server_tls_ca_file=path("ca.crt"),
                       dbs={"appdb": "host=127.0.0.1 port=%d" % PG_PORT}, pool_size=4, max_overflow=0,
                       pool_timeout=20)
        env.update(PGSSLMODE="verify-full", PGSSLROOTCERT=path("ca.crt"))
        r = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-S", "-c", "8", "-j", "2",
                            "-t", "50", "appdb"], capture_output=True, text=True, env=env, timeout=60)
        out = r.stdout + r.stderr
        done = transactions_done(r.stdout)
        ok(r.returncode == 0 and "number of failed transactions: 0" in r.stdout and done == 400,
              "pgbench -S, 8 clients x 50 transactions, TLS client->pooler->server: all done, none failed", out[-400:])
        tps = [x for x in r.stdout.splitlines() if x.startswith("tps")]
        print("# pgbench -S over TLS on both sides: %s" % (tps[0] if tps else "?"), flush=True)
        d = direct()
        n = q1(d, "select count(*) from pg_stat_ssl s join pg_stat_activity a using (pid) "
                     "where a.usename = 'app' and a.datname = 'appdb' and s.ssl")
        d.close()
        # how many of its 4 connections the pool opened depends on how the
        # clients interleaved: each one it opened is TLS, and it opened at most 4
        ok(1 <= n <= 4, "the pool's backends (1 to 4) are TLS connections after the run", n)
        ok(p.alive(), "pooler alive after the TLS benchmark")
        p.stop()
    finally:
        pg_ssl(None)


def copy_through(port, sql, stdin_cmd=None, reader="cat", sslmode="verify-full"):
    """Run psql -c sql through a shell pipeline; returns (status, stdout, stderr)."""
    dsn = "host=127.0.0.1 port=%d user=app dbname=appdb sslmode=%s sslrootcert=%s" % (port, sslmode, path("ca.crt"))
    cmd = "psql -X -q -d '%s' -c \"%s\" | %s" % (dsn, sql, reader)
    if stdin_cmd:
        cmd = "%s | %s" % (stdin_cmd, cmd)
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PGPASSWORD="app-secret"))
    return r.returncode, r.stdout.strip(), r.stderr


def test_tls_stream():
    """20 MB each way through TLS on both legs, with a reader that stalls:
    the pooler stops reading the server, OpenSSL keeps decrypted bytes, and
    they must come out when the client drains (nothing stalls or is lost)."""
    certs()
    rows = "select repeat('x', 1000) || g from generate_series(1, 20000) g"
    try:
        ok(pg_ssl("good"), "PostgreSQL serves TLS")
        d = direct("appdb")
        want = q1(d, "select md5(string_agg(t || chr(10), '' order by g)) from "
                        "(select repeat('x', 1000) || g t, g from generate_series(1, 20000) g) s")
        want_set = q1(d, "select md5(string_agg(t, ',' order by t)) from (%s) s(t)" % rows)
        with d.cursor() as cur:
            cur.execute("drop table if exists tls_in; create table tls_in (t text); grant all on tls_in to app")
        d.close()
        p = tls_pooler("tls_stream", server_tls_mode="verify-full", server_tls_ca_file=path("ca.crt"),
                       dbs={"appdb": "host=127.0.0.1 port=%d" % PG_PORT}, pool_size=2)
        rc, out, err = copy_through(p.port, "copy (%s) to stdout" % rows, reader="(sleep 2; md5sum)")
        ok(rc == 0 and out.split()[0:1] == [want],
              "20 MB COPY TO STDOUT through TLS to a reader that stalls 2 s: every byte, in order", (rc, out, err[-200:]))
        rc, out, err = copy_through(p.port, "copy tls_in from stdin",
                                    stdin_cmd="psql -X -q -d 'host=%s port=%d user=app dbname=appdb' -c \"copy (%s) to stdout\""
                                    % (PG_HOST, PG_PORT, rows))
        d = direct("appdb")
        got = q1(d, "select md5(string_agg(t, ',' order by t)) from tls_in")
        d.close()
        ok(rc == 0 and got == want_set, "20 MB COPY FROM STDIN through TLS reaches the server whole",
              (rc, err[-300:]))
        c = p.connect(sslmode="verify-full", sslrootcert=path("ca.crt"))
        th = in_background(lambda: wait_for(lambda: in_pg_sleep() == 1) and c.cancel())
        t0 = time.time()
        code, _ = err_code(lambda: q1(c, "select pg_sleep(60)"))
        th.join()
        ok(code == "57014" and time.time() - t0 < 50,
              "cancel of a TLS client's query (cancel request in plaintext, as libpq sends it) reaches the TLS backend",
              (code, round(time.time() - t0, 1)))
        c.close()
        ok(p.alive(), "pooler alive after the streams")
        p.stop()
    finally:
        d = direct("appdb")
        with d.cursor() as cur:
            cur.execute("drop table if exists tls_in")
        d.close()
        pg_ssl(None)


def tls_records_client(port, messages):
    """A TLS client that puts each message in its own TLS record and sends
    its Finished and all the records in ONE write (Python's SSLObject over
    memory BIOs).  Returns the socket, the SSLObject and its BIOs."""
    ctx = ssl.create_default_context(cafile=path("ca.crt"))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(10)
    s.sendall(SSL_REQUEST)
    if s.recv(1) != b"S":
        raise RuntimeError("pooler did not answer S")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if out.pending:
                s.sendall(out.read())
            inc.write(s.recv(65536))
    for m in messages:
        tls.write(m)
    s.sendall(out.read())
    return s, tls, inc


def count_ready(s, tls, inc, want, timeout):
    """ReadyForQuery messages received within timeout (stops at want)."""
    buf, seen = b"", 0
    deadline = time.time() + timeout
    s.settimeout(0.2)
    while seen < want and time.time() < deadline:
        try:
            data = s.recv(65536)
            if not data:
                break
            inc.write(data)
        except socket.timeout:
            pass
        while True:
            try:
                buf += tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
        while len(buf) >= 5 and len(buf) >= 1 + struct.unpack("!I", buf[1:5])[0]:
            n = 1 + struct.unpack("!I", buf[1:5])[0]
            seen += buf[:1] == b"Z"
            buf = buf[n:]
    return seen


def test_tls_pending():
    """Bytes OpenSSL has decrypted (or buffered) wake no epoll.  The startup
    and five queries arrive as six TLS records in one TCP segment; the pooler
    reads four records per callback, then stops reading while its first
    server login runs, leaving two records inside OpenSSL with nothing more
    on the socket.  When reading resumes (conn_read_on) or the next answer
    is written (tls_flush), the pooler must schedule its read callback for
    them: all six ReadyForQuery messages (login + five queries) arrive.
    With both wake-ups removed this test gets 4 and fails."""
    p = tls_pooler("tls_pending", client_tls_mode="require", auth="trust")
    query = b"Q" + struct.pack("!I", 4 + 9) + b"select 1\0"
    s, tls, inc = tls_records_client(p.port, [startup_packet("app", "appdb")] + [query] * 5)
    seen = count_ready(s, tls, inc, 6, 8)
    s.close()
    ok(seen == 6, "startup + 5 queries in 6 TLS records, one segment, first login of the pool: "
                     "all 6 ReadyForQuery arrive (nothing left stuck inside OpenSSL)", seen)
    p.stop()


def test_tls_reload():
    """TLS settings need a restart (the certificates are loaded once): a
    reload that changes them keeps the running ones, says so, and SHOW
    CONFIG tells what is in effect."""
    p = tls_pooler("tls_reload")
    with open(p.ini) as f:
        text = f.read()
    with open(p.ini, "w") as f:
        f.write(text.replace("client_tls_mode = require", "client_tls_mode = disable"))
    os.kill(p.proc.pid, signal.SIGHUP)
    ok(wait_for(lambda: "client_tls_mode changed" in open(p.log).read()),
          "SIGHUP changing client_tls_mode: the log says it needs a restart", open(p.log).read()[-300:])
    r = psql(p.port, "select 1", sslmode="disable")
    ok(r.returncode != 0 and "SSL required" in r.stderr, "after the reload TLS is still required", r.stderr)
    r = psql(p.port, "select 'still tls'", sslmode="require")
    ok(r.returncode == 0 and r.stdout.strip() == "still tls", "and TLS clients still get in", r.stderr)
    p.stop()


def test_tls_prepared():
    """Rewritten messages through SSL_write on both sides: pgbench -M prepared
    and a psycopg 3 pipeline of large prepared executions; the admin console
    over TLS under client_tls_mode = require."""
    certs()
    pgbench_init()
    try:
        ok(pg_ssl("good"), "PostgreSQL serves TLS")
        p = tls_pooler("integ_tls", server_tls_mode="verify-full", server_tls_ca_file=path("ca.crt"),
                          dbs={"appdb": "host=127.0.0.1 port=%d" % PG_PORT}, pool_size=2, max_overflow=0,
                          pool_timeout=20, admin_users="app")
        env = dict(os.environ, PGPASSWORD="app-secret", PGSSLMODE="verify-full", PGSSLROOTCERT=path("ca.crt"))
        r = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-M", "prepared",
                            "-c", "6", "-j", "6", "-t", "20", "appdb"], capture_output=True, text=True, env=env,
                           timeout=60)
        out = r.stdout + r.stderr
        done = transactions_done(r.stdout)
        ok(r.returncode == 0 and failed_count(r.stdout) == 0 and done == 120 and
           "does not exist" not in out and "already exists" not in out,
           "pgbench -M prepared TPC-B, 6 clients on 2 servers, TLS on both sides: no failure", out[-400:])
        d = direct("appdb")
        bal = q1(d, "select (select sum(abalance) from pgbench_accounts) = "
                       "(select sum(tbalance) from pgbench_tellers)")
        n = q1(d, "select count(*) from pg_stat_ssl s join pg_stat_activity a using (pid) "
                     "where a.usename = 'app' and a.datname = 'appdb' and s.ssl")
        d.close()
        ok(bal and 1 <= n <= 2, "balances consistent; the pool's backends (1 or 2) are TLS", (bal, n))
        c = psycopg.connect(host="127.0.0.1", port=p.port, user="app", password="app-secret", dbname="appdb",
                            autocommit=True, prepare_threshold=0, sslmode="verify-full",
                            sslrootcert=path("ca.crt"))
        big = [os.urandom(150000).hex() for _ in range(8)]
        with c.pipeline():
            curs = [c.execute("select md5(%s::text), length(%s::text)", (b, b)) for b in big]
            curs += [c.execute("select %s::int * 7", (i,)) for i in range(20)]
        got = [cu.fetchone() for cu in curs]
        want = [(__import__("hashlib").md5(b.encode()).hexdigest(), len(b)) for b in big]
        ok(got[:8] == want and [g[0] for g in got[8:]] == [i * 7 for i in range(20)],
           "psycopg 3 pipeline through TLS: 8 prepared executions with 300 kB parameters and 20 small ones, "
           "results whole and in order")
        ok(c.info.pgconn.ssl_in_use, "that client used TLS")
        c.close()
        a = psycopg2.connect(host="127.0.0.1", port=p.port, user="app", password="app-secret", dbname="perfopt",
                             sslmode="require", connect_timeout=10)
        a.autocommit = True
        rowsp = [r for r in show(a, "POOLS") if r["database"] == "appdb"]
        ok(a.info.ssl_in_use and rowsp and rowsp[0]["sv_idle"] + rowsp[0]["sv_active"] == 2,
           "admin console over TLS: SHOW POOLS", rowsp)
        a.close()
        code = raw_connect(p.port, "app", "perfopt", "app-secret")
        ok(code == "28000", "client_tls_mode = require holds for the admin console too (plaintext: 28000)", code)
        ok(p.alive(), "pooler alive")
        p.stop()
    finally:
        pg_ssl(None)

TESTS = [("tls_reload", test_tls_reload), ("tls_config", test_tls_config), ("tls_client", test_tls_client), ("tls_server", test_tls_server),
         ("tls_stream", test_tls_stream), ("tls_pending", test_tls_pending), ("tls_pgbench", test_tls_pgbench),
         ("integ_tls", test_tls_prepared)]
