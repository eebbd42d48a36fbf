"""tests/pooler/test_write_batch.py: the end-of-batch writes (pooler/net/write_batch.c,
setting io_uring).  With io_uring on (the default) every write of a batch,
to clients and to servers, goes out in one submission; the kernel refusing
part of a write (a client that does not read) must leave the rest for the
socket's write event, every other client served meanwhile.  With io_uring
off, or refused by the kernel (a seccomp filter here), each connection
writes with its own send().  Proven by the ring the process holds (/proc),
by exact answers and by the data TPC-B leaves."""
import ctypes
import errno
import os
import struct
import time

from harness import Pooler, console, ok, pgbench, pgbench_init, refused_setting, tpcb_sums
from wire import msg, read_msg, session, simple_query, status, tag, until_ready, z


def rings(p):
    """io_uring instances the pooler process holds open."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % p.proc.pid):
        try:
            if "io_uring" in os.readlink("/proc/%d/fd/%s" % (p.proc.pid, fd)):
                n += 1
        except OSError:
            pass
    return n


def kernel_has_io_uring():
    """Whether this process may set up a ring (io_uring_setup, x86-64 and
    arm64 number 425): a kernel before 5.1, kernel.io_uring_disabled or a
    seccomp profile says no."""
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 1, params)
    if fd < 0:
        return False
    os.close(fd)
    return True


def deny_io_uring():
    """preexec_fn: a seccomp filter that fails io_uring_setup (425) with
    ENOSYS, as a container runtime's default profile does."""
    libc = ctypes.CDLL(None, use_errno=True)

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    insns = (Filter * 4)(Filter(0x20, 0, 0, 0),            # load the syscall number
                         Filter(0x15, 0, 1, 425),          # io_uring_setup?
                         Filter(0x06, 0, 0, 0x00050000 | 38),  # fail it with ENOSYS
                         Filter(0x06, 0, 0, 0x7fff0000))   # allow the rest
    prog = Prog(4, insns)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp")


def test_ring_and_setting():
    p = Pooler("wb_on", pool_size=2, max_overflow=0, admin_users="postgres")
    s = session(p.port, "app", "appdb")
    r = simple_query(s, "select 40 + 2")
    ok(status(r) == "I" and [b for t, b in r if t == "D"] == [b"\0\1\0\0\0\x0242"],
          "io_uring on: a query's answer comes back whole", r)
    log = open(p.log).read()
    if kernel_has_io_uring():
        ok(rings(p) == 1 and "io_uring unavailable" not in log,
              "io_uring on (default): the pooler holds one ring", (rings(p), log[-300:]))
    else:
        ok(rings(p) == 0 and "io_uring unavailable" in log,
              "io_uring refused by this kernel: warning logged, writes with send()", (rings(p), log[-300:]))
    conf = {row["key"]: row for row in console(p, "SHOW CONFIG")}
    row = conf.get("io_uring", {})
    ok(row.get("value") == "on" and row.get("default") == "on" and row.get("changeable") == "no",
          "SHOW CONFIG: io_uring on, default on, needs a restart", row)
    s.close()
    p.stop()
    p = Pooler("wb_denied", pool_size=2, max_overflow=0, preexec=deny_io_uring)
    s = session(p.port, "app", "appdb")
    r = simple_query(s, "select 40 + 2")
    log = open(p.log).read()
    ok(status(r) == "I" and rings(p) == 0 and "io_uring unavailable (%s)" % os.strerror(errno.ENOSYS) in log,
          "io_uring refused by a seccomp filter: warning logged, answers through send()", (r, rings(p), log[-300:]))
    s.close()
    p.stop()
    p = Pooler("wb_off", pool_size=2, max_overflow=0, io_uring="off")
    s = session(p.port, "app", "appdb")
    r = simple_query(s, "select 40 + 2")
    ok(status(r) == "I" and rings(p) == 0, "io_uring = off: answers without a ring", (r, rings(p)))
    s.close()
    p.stop()


def test_bad_value():
    refused_setting("wb_bad", ["listen_port = 6500"], "io_uring", "sometimes")


def big_answer(s):
    """Read one query's answer from a raw socket; (rows, bytes of data, status)."""
    s.settimeout(30)
    rows = total = 0
    while True:
        t, body = read_msg(s)
        if t is None:
            return rows, total, None
        if t == b"D":
            rows += 1
            total += struct.unpack_from("!I", body, 2)[0]
        if t == b"Z":
            return rows, total, body


def test_reader_stalls():
    """A client that stops reading: the kernel takes part of its answer, the
    rest waits for its socket's write event, and another client of the same
    pool is answered meanwhile."""
    for setting in ("on", "off"):
        p = Pooler("wb_stall_" + setting, pool_size=2, max_overflow=0, io_uring=setting)
        slow = session(p.port, "app", "appdb")
        # 2,000 rows of 50,000 bytes: 100 MB, far more than the sockets hold
        slow.sendall(msg(b"Q", z("select repeat('x', 50000) from generate_series(1, 2000)")))
        time.sleep(1.0)
        other = session(p.port, "app", "appdb")
        t0 = time.time()
        r = simple_query(other, "select 7")
        quick = time.time() - t0
        # a pooler stuck on the stalled writes would leave this unanswered (the session's 10 s timeout)
        ok(status(r) == "I" and [b for t, b in r if t == "D"] == [b"\0\1\0\0\0\x017"],
              "io_uring %s: another client is answered while one does not read" % setting, (r, quick))
        rows, total, st = big_answer(slow)
        ok(rows == 2000 and total == 100000000 and st == b"I",
              "io_uring %s: the stalled client then reads its 100 MB answer whole" % setting, (rows, total, st))
        r = simple_query(slow, "select 1")
        ok(status(r) == "I", "io_uring %s: and its connection goes on" % setting, r)
        slow.close()
        other.close()
        p.stop()


def test_many_clients():
    """More connections with a write in one batch than the ring has entries
    (256): 400 clients send at once; each gets its own answer."""
    p = Pooler("wb_many", pool_size=4, max_overflow=0, max_client_conn=1000)
    socks = [session(p.port, "app", "appdb") for _ in range(400)]
    for i, s in enumerate(socks):
        s.sendall(msg(b"Q", z("begin")) + msg(b"Q", z("select %d" % i)) + msg(b"Q", z("commit")))
    wrong = []
    for i, s in enumerate(socks):
        got = until_ready(s) + until_ready(s) + until_ready(s)
        data = [b for t, b in got if t == "D"]
        want = str(i).encode()
        if tag(got) != ["BEGIN", "SELECT 1", "COMMIT"] or data != [b"\0\1" + struct.pack("!I", len(want)) + want]:
            wrong.append((i, got))
    ok(not wrong, "400 clients at once: each gets its own three answers", wrong[:2])
    ok(p.alive(), "pooler alive after 400 simultaneous clients")
    for s in socks:
        s.close()
    p.stop()


def test_pgbench():
    """TPC-B through each write path: no failure, the balances agree."""
    pgbench_init()
    for setting in ("on", "off"):
        p = Pooler("wb_bench_" + setting, pool_size=4, max_overflow=0, io_uring=setting, max_client_conn=1000)
        for mode in ("simple", "extended"):
            r = pgbench(p.port, "-n", "-c", "32", "-j", "2", "-t", "10", "-M", mode)
            good = r.returncode == 0 and "number of failed transactions: 0" in r.stdout and "tps = " in r.stdout
            ok(good, "io_uring %s: pgbench TPC-B -M %s, no failures" % (setting, mode), (r.stdout + r.stderr)[-400:])
        p.stop()
    a, b, t, h, n = tpcb_sums()
    ok(a == b == t == h and n == 4 * 32 * 10, "TPC-B sums consistent after both write paths", (a, b, t, h, n))


TESTS = [("wb_ring", test_ring_and_setting), ("wb_bad_value", test_bad_value),
         ("wb_reader_stalls", test_reader_stalls), ("wb_many", test_many_clients),
         ("wb_pgbench", test_pgbench)]
