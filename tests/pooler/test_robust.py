"""tests/pooler/test_robust.py: the pooler under abuse.  Malformed and
oversized messages, silent and half-finished startups, running out of file
descriptors, clients killed mid-transaction or mid-message, and the server
restarted or stopped under load: every case ends with the pooler alive and
the next client served on a clean connection."""
import os
import signal
import socket
import struct
import subprocess
import time

import psycopg2

from harness import (PG_BINDIR, PG_DATA, Pooler, console, direct, err_code, exited, linked_servers, ok, pgbench_init,
                     q1, servers, serves, wait_for)
from wire import raw_login, raw_query, recv_all, startup_packet


VANISH = r"""
import psycopg2, sys, time
c = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), user="app", password="app-secret", dbname="appdb")
cur = c.cursor()
cur.execute(sys.argv[2])
print("ready", flush=True)
time.sleep(60)
"""


def vanish(port, sql):
    pr = subprocess.Popen(["/usr/bin/python3", "-c", VANISH, str(port), sql], stdout=subprocess.PIPE, text=True)
    line = pr.stdout.readline()
    pr.send_signal(signal.SIGKILL)
    pr.wait()
    return line.strip() == "ready"


def test_bad_input():
    p = Pooler("badinput", pool_size=2, max_packet_size=4096, startup_timeout=1)
    keeper = p.connect(user="postgres", password=None, db="postgres")
    ok(q1(keeper, "select 1") == 1, "a well-behaved client is connected")
    s, hello = raw_login(p.port)
    ok(hello.endswith(b"Z\0\0\0\5I") and b"K\0\0\0\x0c" in hello, "raw login: BackendKeyData and ReadyForQuery")
    s.sendall(b"Q" + struct.pack("!I", 2))
    data, closed = recv_all(s)
    ok(b"C08P01" in data and closed, "lying length (2) answered with 08P01 and closed", data[:80])
    s.close()
    s, _ = raw_login(p.port)
    q = b"select '" + b"x" * 6000 + b"'\0"
    s.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
    data, closed = recv_all(s)
    ok(b"C08P01" in data and b"max_packet_size" in data and closed, "oversized message: 08P01 and closed", data[:120])
    s.close()
    s, _ = raw_login(p.port)
    s.sendall(b"\x01" + struct.pack("!I", 4))
    data, closed = recv_all(s)
    ok(b"C08P01" in data and closed, "unknown message type: 08P01 and closed", data[:80])
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data, closed = recv_all(s)
    ok(b"C08P01" in data and closed, "garbage startup packet: 08P01 and closed", data[:80])
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(struct.pack("!II", 8, 80877103))
    ans = s.recv(1)
    ok(ans == b"N", "SSLRequest answered N", ans)
    s.sendall(struct.pack("!II", 8, 80877104))
    ans = s.recv(1)
    ok(ans == b"N", "GSSENCRequest answered N", ans)
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port))
    t0 = time.time()
    data, closed = recv_all(s, 60)
    el = time.time() - t0
    ok(closed and b"startup_timeout" in data and el >= 0.9, "silent client closed by startup_timeout=1, not before",
       (round(el, 2), data[:80]))
    s.close()
    s = socket.create_connection(("127.0.0.1", p.port))
    s.sendall(startup_packet()[:10])
    data, closed = recv_all(s, 60)
    ok(closed, "half a startup packet: closed after startup_timeout")
    s.close()
    ok(q1(keeper, "select 2") == 2, "the well-behaved client was served throughout")
    ok(p.alive(), "pooler survived all malformed input")
    keeper.close()
    p.stop()


def test_fd_exhaustion():
    import resource
    p = Pooler("fds", pool_size=2, preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (30, 30)))
    socks = []
    for i in range(40):
        try:
            socks.append(socket.create_connection(("127.0.0.1", p.port), 1))
        except OSError:
            pass
    wait_for(lambda: "accept failed" in p.log_text())
    # a spinning pooler would burn this second; a busy machine can only make it burn less
    cpu = sum(int(x) for x in open("/proc/%d/stat" % p.proc.pid).read().rsplit(")", 1)[1].split()[11:13])
    time.sleep(1)
    cpu2 = sum(int(x) for x in open("/proc/%d/stat" % p.proc.pid).read().rsplit(")", 1)[1].split()[11:13])
    ok(cpu2 - cpu < 30, "out of file descriptors: the pooler pauses accepting instead of spinning",
       (cpu, cpu2))
    for x in socks:
        x.close()
    wait_for(lambda: serves(p))
    c = p.connect(user="postgres", password=None, db="postgres")
    ok(q1(c, "select 7") == 7, "descriptors free again: new clients served")
    c.close()
    ok("accept failed" in open(p.log).read(), "the pause is logged")
    p.stop()


def test_vanish():
    d = direct("appdb")
    q1(d, "drop table if exists vanish; create table vanish (a int); alter table vanish owner to app; select 1")
    p = Pooler("vanish", pool_size=1, max_overflow=0, pool_timeout=30)
    ok(vanish(p.port, "insert into vanish values (1)"), "client killed mid-transaction (after an INSERT)")
    ok(wait_for(lambda: servers(state="idle in transaction") == 0),
       "no server connection left idle in transaction")
    c = p.connect()
    ok(q1(c, "select count(*) from vanish") == 0, "the vanished client's INSERT was rolled back")
    ok(q1(c, "select pg_current_xact_id_if_assigned() is null"), "next client gets a clean connection")
    c.close()
    ok(vanish(p.port, "select 1"), "second client killed with a transaction open (autocommit off)")
    c = p.connect()
    code, _ = err_code(lambda: q1(c, "select 1"))
    ok(code == "none", "pool serves the next client (the vanished client's server is free, no pool_timeout)", code)
    c.close()
    ok(wait_for(lambda: servers() <= 1), "no server connection leaked (count <= pool_size)", servers())
    ok(q1(d, "select count(*) from vanish") == 0, "table still empty")
    d.close()
    p.stop()
    p = Pooler("vanish_raw", pool_size=1, max_overflow=0, pool_timeout=30, admin_users="postgres")
    c = p.connect(user="postgres", password=None, db="postgres")
    pid1 = q1(c, "select pg_backend_pid()")
    s, _ = raw_login(p.port)
    parse = b"\0select 1\0\0\0"
    bind = b"\0\0\0\0\0\0\0\0"
    s.sendall(b"P" + struct.pack("!I", len(parse) + 4) + parse + b"B" + struct.pack("!I", len(bind) + 4) + bind)
    wait_for(lambda: linked_servers(p))          # the raw client holds the server
    s.close()
    wait_for(lambda: exited({pid1}))              # and the pooler closed it
    ok(q1(c, "select 42") == 42, "client vanished after Parse/Bind without Sync: next query answered correctly")
    pid2 = q1(c, "select pg_backend_pid()")
    ok(pid2 != pid1, "that server connection was closed, not reused", (pid1, pid2))
    s, _ = raw_login(p.port)
    s.sendall(b"Q" + struct.pack("!I", 1000) + b"select 1")
    wait_for(lambda: linked_servers(p))
    s.close()
    wait_for(lambda: exited({pid2}))
    ok(q1(c, "select 43") == 43, "client vanished in the middle of a message: next query answered correctly")
    ok(q1(c, "select pg_backend_pid()") != pid2, "half-written server connection closed, not reused")
    c.close()
    p.stop()


def recovery_time(p, since):
    """Seconds from since until a client is served again, or None within 60 s."""
    while time.time() - since < 60:
        try:
            c = p.connect()
            q1(c, "select 1")
            c.close()
            return time.time() - since
        except psycopg2.Error:
            time.sleep(0.05)
    return None


def test_restart():
    pgbench_init()
    p = Pooler("restart", pool_size=5, max_overflow=0, pool_timeout=30, admin_users="postgres")
    idle = p.connect()
    q1(idle, "select 1")
    env = dict(os.environ, PGPASSWORD="app-secret")
    bench = subprocess.Popen(["pgbench", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-c", "8", "-j", "2",
                              "-T", "10", "-S", "appdb"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env)
    # pgbench's 8 clients are in (and running) when the restart begins
    wait_for(lambda: len([r for r in console(p, "SHOW CLIENTS") if r["database"] == "appdb"]) >= 9)
    r = subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(PG_BINDIR, "pg_ctl"), "-D", PG_DATA,
                        "-w", "-t", "60", "-m", "fast", "restart", "-l", os.path.join(os.path.dirname(PG_DATA),
                                                                                        "server.log")],
                       capture_output=True, text=True)
    t_up = time.time()
    ok(r.returncode == 0, "server restarted under load", r.stderr)
    recovered = recovery_time(p, t_up)
    out = bench.communicate(timeout=60)[0]
    ok(recovered is not None, "pool recovered once the server was back", recovered)
    ok(bench.returncode != 0 or "aborted" in out or "error" in out.lower(),
       "clients in flight during the restart got errors", out[-300:])
    code, msg = err_code(lambda: q1(idle, "select 1"))
    ok(code == "none", "idle client: no error after the restart once the server is back", (code, msg))
    ok(p.alive(), "pooler survived the restart")
    pg_ctl = ["runuser", "-u", "postgres", "--", os.path.join(PG_BINDIR, "pg_ctl"), "-D", PG_DATA, "-w", "-t", "60"]
    r = subprocess.run(pg_ctl + ["-m", "fast", "stop"], capture_output=True, text=True)
    ok(r.returncode == 0, "server stopped", r.stderr)
    t0 = time.time()
    code, msg = err_code(lambda: q1(idle, "select 1"))
    el = time.time() - t0
    ok(code != "none", "server down: the client's query fails", code)
    ok(el < 20, "server down: error at once, not after pool_timeout (30 s)", round(el, 2))
    r = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(p.port), "-U", "app", "-d", "appdb",
                        "-c", "select 1"], capture_output=True, text=True, env=dict(os.environ, PGPASSWORD="app-secret"))
    ok("no server connection" in r.stderr, "server down: clear error message", r.stderr)
    code, msg = raw_query(p.port, "select 1")
    ok(code == "08006", "server down: SQLSTATE 08006", (code, msg))
    time.sleep(1)
    ok(p.alive(), "pooler keeps running while the server is down (backoff)")
    r = subprocess.run(pg_ctl + ["-l", os.path.join(os.path.dirname(PG_DATA), "server.log"), "start"],
                       capture_output=True, text=True)
    recovered = recovery_time(p, time.time())
    ok(recovered is not None, "after a stop/start: pool back once the server is", recovered)
    idle.close()
    ok(wait_for(lambda: servers() <= 5), "no leaked server connections after the restart", servers())
    p.stop()


TESTS = [("bad_input", test_bad_input), ("fd_exhaustion", test_fd_exhaustion), ("vanish", test_vanish),
         ("restart", test_restart)]
