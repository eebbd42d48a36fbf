#!/usr/bin/python3
"""perfopt-pooler benchmark, driven by tests/bench/pooler/run.

For each workload (pgbench -S and TPC-B), protocol (-M simple, -M extended)
and client count (10, 50, 200, 1000), one round runs direct, PgBouncer and
perfopt-pooler back to back, the order rotating every round (A B C, B C A,
C A B ...), each for BENCH_DURATION seconds, after a CHECKPOINT (what
earlier TPC-B runs dirtied is not written during the next target's run) and,
before the first round, 3 s of -S and TPC-B straight to PostgreSQL (the first
measured run does not read the tables in).  tps comes from pgbench; mean
and p99 latency from its per-transaction log (-l).  The verdict uses the
median over rounds of the per-round ratio perfopt / PgBouncer, which
cancels most of the drift of a shared 2-core machine.

Each round also runs pgbench directly with as many clients as the pools
have server connections (20), once per workload and protocol: what a
pooler limited to 20 connections could at best deliver if it cost nothing
(no hop, no CPU taken from PostgreSQL).  Its ratio to PgBouncer's tps is
the ceiling of "perfopt / PgBouncer" for that cell: where it is under 1.1,
the tps target cannot be met by any pooler with these limits.

Then each pooler is started fresh and made to hold BENCH_IDLE (10,000) idle
logged-in client connections; its RSS growth divided by the number of
clients is the memory per idle client.

Then -M prepared (named prepared statements) for BENCH_PREPARED_CLIENTS
(10 and 50) with one pgbench thread per client, in the same rotation:
direct, PgBouncer (1.18 has no prepared statements in transaction mode: the
table shows the failed transactions, aborted clients and the error pgbench
reports) and perfopt-pooler (target: no failed transaction).

With BENCH_COMPARE_BIN set to another perfopt-pooler binary (an older
build), it joins the rotation as "compare", started with the same settings,
and an A/B table follows: tps, pooler CPU and the whole machine's CPU per
transaction (busy time of every core from /proc/stat, over the run's
transactions) and the CPU of everything the transaction runs through
(pgbench, the pooler, PostgreSQL's postmaster and backends; unlike the
machine's, not inflated by other jobs), perfopt over compare, median of
per-round ratios.

Targets: tps >= 1.1x PgBouncer at 50 and 200 clients, p99 no
higher, memory per idle client no higher.  Exit 0 when all hold, 3 when one
is missed."""

import atexit
import glob
import os
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pooler"))
from wire import free_port, rss_kb, startup_packet  # noqa: E402

B_HOST = os.environ["B_HOST"]
B_PORT = int(os.environ["B_PORT"])
BIN = os.environ["POOLER_BIN"]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
CLIENTS = [int(x) for x in os.environ.get("BENCH_CLIENTS", "10 50 200 1000").split()]
WORKLOADS = os.environ.get("BENCH_WORKLOADS", "select tpcb").split()
MODES = os.environ.get("BENCH_MODES", "simple extended").split()
IDLE = int(os.environ.get("BENCH_IDLE", "10000"))
PREPARED_CLIENTS = [int(x) for x in os.environ.get("BENCH_PREPARED_CLIENTS", "10 50").split()]
COMPARE_BIN = os.environ.get("BENCH_COMPARE_BIN")
POOL = 20
WORK = tempfile.mkdtemp(prefix="perfopt-poolbench.")
os.chmod(WORK, 0o777)
atexit.register(shutil.rmtree, WORK, True)


def log(msg):
    print("pooler bench: " + msg, file=sys.stderr, flush=True)


def wait_port(port, proc):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("pooler exited")
            time.sleep(0.05)
    raise RuntimeError("pooler did not listen")


class Target:
    def __init__(self, name):
        self.name = name
        self.proc = None
        self.port = B_PORT
        self.host = B_HOST

    def start(self):
        pass

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pid(self):
        return self.proc.pid


class Perfopt(Target):
    def __init__(self, name, binary=BIN):
        super().__init__(name)
        self.binary = binary

    def start(self):
        self.port = free_port()
        self.host = "127.0.0.1"
        d = os.path.join(WORK, self.name)
        os.makedirs(d, exist_ok=True)
        ini = os.path.join(d, "pooler.ini")
        with open(ini, "w") as f:
            f.write("[databases]\nbench = host=%s port=%d\n[pooler]\nlisten_addr = 127.0.0.1\n"
                    "listen_port = %d\nunix_socket_dir =\npool_mode = transaction\npool_size = %d\n"
                    "max_overflow = 0\npool_timeout = 120\n"
                    "; PgBouncer checks a server idle longer than server_check_delay (30 s)\n"
                    "pool_pre_ping = on\npre_ping_interval = 30\nmax_client_conn = 20000\n"
                    "startup_timeout = 60\nverbose = -1\n" % (B_HOST, B_PORT, self.port, POOL))
        self.proc = subprocess.Popen([self.binary, "-c", ini], stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "a"))
        wait_port(self.port, self.proc)


class PgBouncer(Target):
    def start(self):
        self.port = free_port()
        self.host = "127.0.0.1"
        d = os.path.join(WORK, "pgbouncer")
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, "postgres")
        with open(os.path.join(d, "userlist.txt"), "w") as f:
            f.write('"postgres" ""\n')
        ini = os.path.join(d, "pgbouncer.ini")
        with open(ini, "w") as f:
            f.write("[databases]\nbench = host=%s port=%d\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
                    "listen_port = %d\nunix_socket_dir =\npool_mode = transaction\ndefault_pool_size = %d\n"
                    "reserve_pool_size = 0\nmin_pool_size = 0\nmax_client_conn = 20000\nmax_db_connections = 0\n"
                    "auth_type = trust\nauth_file = %s/userlist.txt\nquery_wait_timeout = 120\n"
                    "ignore_startup_parameters = extra_float_digits\nlogfile = %s/pgbouncer.log\n"
                    "log_connections = 0\nlog_disconnections = 0\nlog_pooler_errors = 1\n"
                    "pidfile = %s/pgbouncer.pid\n" % (B_HOST, B_PORT, self.port, POOL, d, d, d))
        for fn in os.listdir(d):
            shutil.chown(os.path.join(d, fn), "postgres")
        self.proc = subprocess.Popen(["runuser", "-u", "postgres", "--", "bash", "-c",
                                      "ulimit -n %d; exec pgbouncer %s" % (resource.getrlimit(resource.RLIMIT_NOFILE)[1], ini)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def pid(self):
        return read_pidfile(os.path.join(WORK, "pgbouncer", "pgbouncer.pid"))


def read_pidfile(path):
    """PgBouncer may listen before its pid file is written: wait for it."""
    for _ in range(200):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("no pid in " + path)


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_cpu():
    """CPU seconds of the bench's PostgreSQL: the postmaster, its backends
    that have exited (its cutime/cstime) and those still running."""
    with open(os.path.join(os.environ["B_DATA"], "postmaster.pid")) as f:
        pm = int(f.readline())
    total = 0
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.split("/")[2])
        if pid == pm:
            total += sum(int(x) for x in fields[11:15])
        elif int(fields[1]) == pm:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def machine_busy():
    """Seconds every core spent busy (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def settle():
    """Every run starts alike: what earlier TPC-B runs left dirty is written
    out now, not during whichever target's run comes next."""
    subprocess.run(["psql", "-X", "-q", "-h", B_HOST, "-p", str(B_PORT), "-U", "postgres", "-d", "bench",
                    "-c", "CHECKPOINT"], capture_output=True, timeout=120)


def warm_up():
    """The first measured run must not be the one that reads the tables in."""
    for script in (["-S"], []):
        subprocess.run(["pgbench", "-n", "-h", B_HOST, "-p", str(B_PORT), "-U", "postgres", "-c", str(POOL),
                        "-j", "2", "-T", "3"] + script + ["bench"], capture_output=True, timeout=120)


def pgbench(t, workload, mode, clients):
    settle()
    cpu0 = proc_cpu(t.pid()) if t.proc else None
    busy0 = machine_busy()
    sut0 = cluster_cpu() + children_cpu() + (cpu0 or 0)
    d = tempfile.mkdtemp(dir=WORK)
    os.chmod(d, 0o777)
    # pgbench's -T includes connecting; 1000 backends take seconds to fork
    duration = DURATION if clients < 500 else DURATION * 2 + 2
    args = ["pgbench", "-n", "-h", t.host, "-p", str(t.port), "-U", "postgres", "-M", mode,
            "-c", str(clients), "-j", "2", "-T", str(duration), "-l", "--log-prefix", os.path.join(d, "tx")]
    if workload == "select":
        args.append("-S")
    args.append("bench")
    r = subprocess.run(args, capture_output=True, text=True, timeout=DURATION * 6 + 120)
    busy = machine_busy() - busy0
    sut = cluster_cpu() + children_cpu() + (proc_cpu(t.pid()) if t.proc else 0) - sut0
    tps = None
    for line in r.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
    lat = []
    for fn in glob.glob(os.path.join(d, "tx*")):
        with open(fn) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
    shutil.rmtree(d, ignore_errors=True)
    failed = "number of failed transactions: 0 " not in r.stdout
    if tps is None or not lat or r.returncode != 0:
        log("%s %s %s c=%d failed: %s" % (t.name, workload, mode, clients, (r.stdout + r.stderr)[-300:]))
        return None
    lat.sort()
    cpu = (proc_cpu(t.pid()) - cpu0) * 1e6 / len(lat) if t.proc else None
    return {"tps": tps, "mean": statistics.fmean(lat) / 1000.0, "p99": lat[int(len(lat) * 0.99) - 1] / 1000.0,
            "failed": failed, "cpu": cpu, "machine": busy * 1e6 / len(lat),
            "sut": sut * 1e6 / len(lat)}


def pgbench_prepared(t, workload, clients):
    """One -M prepared run, whatever its outcome: PgBouncer 1.18 cannot run it
    in transaction mode, and what pgbench reports is the point.  One thread
    per client: pgbench 15 prepares each command with a blocking PQprepare
    at its first use, mid-transaction for TPC-B, and a thread blocked on a
    client waiting for a server would stall the clients holding servers."""
    settle()
    args = ["pgbench", "-n", "-h", t.host, "-p", str(t.port), "-U", "postgres", "-M", "prepared",
            "-c", str(clients), "-j", str(clients), "-T", str(DURATION)]
    if workload == "select":
        args.append("-S")
    args.append("bench")
    r = subprocess.run(args, capture_output=True, text=True, timeout=DURATION * 6 + 120)
    res = {"rc": r.returncode, "tps": None, "processed": 0, "failed": None, "aborted": 0, "errors": 0, "error": ""}
    for line in r.stdout.splitlines():
        if line.startswith("tps = "):
            res["tps"] = float(line.split()[2])
        elif line.startswith("number of transactions actually processed:"):
            res["processed"] = int(line.split(":")[1].split("/")[0])
        elif line.startswith("number of failed transactions:"):
            res["failed"] = int(line.split(":")[1].split()[0])
    # an error aborts a client, except a failed PQprepare, which pgbench logs and ignores
    for line in r.stderr.splitlines():
        if " aborted in command " in line:
            res["aborted"] += 1
        if "ERROR:" in line:
            res["errors"] += 1
            if not res["error"] or " aborted in command " in line:
                res["error"] = line.split("ERROR:", 1)[1].strip()
    if not res["error"] and r.returncode != 0:
        res["error"] = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1][:80]
    return res


def prepared_section(targets, order):
    """-M prepared for each workload and client count, the order rotating
    per round like the main table."""
    results = {}
    cells = [(w, c) for w in WORKLOADS for c in PREPARED_CLIENTS]
    for r in range(ROUNDS):
        for w, c in cells:
            for name in order[r % 3:] + order[:r % 3]:
                res = pgbench_prepared(targets[name], w, c)
                results.setdefault((w, c, name), []).append(res)
                log("prepared round %d %-6s c=%-4d %-9s %s" % (
                    r + 1, w, c, name, "%s tps, %s failed, %d clients aborted, %d errors %s" % (
                        "%.0f" % res["tps"] if res["tps"] is not None else "no", res["failed"], res["aborted"],
                        res["errors"], res["error"])))
    return cells, results


def print_prepared(cells, results):
    print("-M prepared (named prepared statements), pgbench -j = clients, %d s runs, %d rounds, medians:" % (
        DURATION, ROUNDS))
    hdr = "%-6s %5s | %8s | %8s %7s %7s %7s | %8s %7s %7s | %8s" % (
        "script", "cli", "direct", "pgb tps", "failed", "aborted", "errors", "pfo tps", "failed", "errors", "pfo/dir")
    print(hdr)
    print("-" * len(hdr))
    verdicts = []
    errors = {}
    for w, c in cells:
        def col(name, key):
            return med([x[key] for x in results[(w, c, name)]])
        pg = results[(w, c, "pgbouncer")]
        pf = results[(w, c, "perfopt")]
        ratios = [a["tps"] / b["tps"] for a, b in zip(pf, results[(w, c, "direct")]) if a["tps"] and b["tps"]]
        print("%-6s %5d | %8.0f | %8s %7s %4d/%-3d %7d | %8.0f %7s %7d | %8.2f" % (
            w, c, col("direct", "tps"),
            "%.0f" % col("pgbouncer", "tps") if any(x["tps"] for x in pg) else "-",
            "%.0f" % col("pgbouncer", "failed") if any(x["failed"] is not None for x in pg) else "-",
            max(x["aborted"] for x in pg), c, max(x["errors"] for x in pg),
            col("perfopt", "tps"), "%.0f" % col("perfopt", "failed"), max(x["errors"] for x in pf), med(ratios)))
        for x in pg:
            if x["error"]:
                errors.setdefault(x["error"], 0)
                errors[x["error"]] += 1
        good = all(x["rc"] == 0 and x["failed"] == 0 and x["aborted"] == 0 and x["errors"] == 0 for x in pf)
        verdicts.append(("-M prepared %s c=%d: perfopt 0 failed" % (w, c), good, col("perfopt", "failed")))
    print("(failed: pgbench's failed transactions; aborted: clients pgbench aborted on an error / clients;")
    print(" errors: ERROR lines pgbench logged, failed PQprepare calls included; pfo/dir: perfopt tps over direct)")
    print("PgBouncer %s in transaction mode, as pgbench reports it (first error of each run):" % pgbouncer_version())
    for e, n in sorted(errors.items(), key=lambda kv: -kv[1]):
        print("  %d run(s): %s" % (n, e))
    if not errors:
        print("  no error reported")
    return verdicts


def pgbouncer_version():
    return subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True).stdout.split("\n")[0].split()[-1]


def hold_idle(t, n):
    """Open n logged-in idle clients; return (rss before, rss after) in kB."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    t.start()
    pid = t.pid()
    # one client first so the pool has its server connection and parameters
    warm = socket.create_connection(("127.0.0.1", t.port))
    warm.sendall(startup_packet(db="bench"))
    buf = b""
    while not buf.endswith(b"Z\0\0\0\5I"):
        buf += warm.recv(65536)
    time.sleep(0.5)
    before = rss_kb(pid)
    socks = []
    pkt = startup_packet(db="bench")
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", t.port))
        s.sendall(pkt)
        socks.append(s)
        if len(socks) % 200 == 0:
            for x in socks[-200:]:
                b = b""
                while not b.endswith(b"Z\0\0\0\5I"):
                    chunk = x.recv(65536)
                    if not chunk:
                        raise RuntimeError("%s closed an idle client at %d" % (t.name, len(socks)))
                    b += chunk
    time.sleep(1)
    after = rss_kb(pid)
    for s in socks:
        s.close()
    warm.close()
    t.stop()
    return before, after


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def print_compare(cells, results):
    """perfopt against the BENCH_COMPARE_BIN build, and both against PgBouncer."""
    def ratio(a_name, b_name, key, w, m, c):
        return med([a[key] / b[key] for a, b in zip(results[(w, m, c, a_name)], results[(w, m, c, b_name)])
                    if a and b and a[key] and b[key]])
    print("A/B against %s (median of per-round ratios; us per transaction: machine = busy time of all"
          " cores, sut = pgbench + pooler + PostgreSQL):" % COMPARE_BIN)
    for w, m, c in cells:
        def us(key):
            return " ".join("%s %.0f" % (n[:3], med([x[key] if x else None for x in results[(w, m, c, n)]]))
                            for n in ("pgbouncer", "perfopt", "compare"))
        print("  %-6s %-8s %5d  tps x pgb: perfopt %.2f compare %.2f | perfopt/compare tps %.2f pooler cpu %.2f"
              " sut %.2f | machine %s | sut %s" % (
                  w, m, c, ratio("perfopt", "pgbouncer", "tps", w, m, c), ratio("compare", "pgbouncer", "tps", w, m, c),
                  ratio("perfopt", "compare", "tps", w, m, c), ratio("perfopt", "compare", "cpu", w, m, c),
                  ratio("perfopt", "compare", "sut", w, m, c), us("machine"), us("sut")))
    print()


def main():
    targets = {"direct": Target("direct"), "pgbouncer": PgBouncer("pgbouncer"), "perfopt": Perfopt("perfopt")}
    order = ["direct", "pgbouncer", "perfopt"]
    if COMPARE_BIN:
        targets["compare"] = Perfopt("compare", COMPARE_BIN)
        order.append("compare")
        targets["compare"].start()
    targets["pgbouncer"].start()
    targets["perfopt"].start()
    results = {}
    ceiling = {}
    cells = [(w, m, c) for w in WORKLOADS for m in MODES for c in CLIENTS]
    total = len(cells) * ROUNDS * len(order)
    k = 0
    warm_up()
    try:
        for r in range(ROUNDS):
            for w, m, c in cells:
                if c == CLIENTS[0]:
                    res = pgbench(targets["direct"], w, m, POOL)
                    ceiling.setdefault((w, m), []).append(res)
                    log("round %d %-6s %-8s direct with %d clients (ceiling) %s" % (
                        r + 1, w, m, POOL, "%.0f tps" % res["tps"] if res else "FAILED"))
                rot = order[r % len(order):] + order[:r % len(order)]
                for name in rot:
                    k += 1
                    res = pgbench(targets[name], w, m, c)
                    results.setdefault((w, m, c, name), []).append(res)
                    log("%d/%d round %d %-6s %-8s c=%-4d %-9s %s" % (
                        k, total, r + 1, w, m, c, name,
                        "%.0f tps p99 %.2f ms" % (res["tps"], res["p99"]) if res else "FAILED"))
        # last: a PgBouncer run aborted mid-transaction may leave its servers
        # holding pgbench's statement names
        prep_cells, prep_results = prepared_section(targets, order)
    finally:
        for name in order[1:]:
            targets[name].stop()

    print()
    print("perfopt-pooler vs PgBouncer %s (transaction mode, pool size %d, Unix socket to PostgreSQL," % (
        pgbouncer_version(), POOL))
    print("pgbench over TCP loopback, -j 2, %d s runs, %d rounds, order rotated; medians; ratio = median of per-round"
          " perfopt/pgbouncer)" % (DURATION, ROUNDS))
    hdr = "%-6s %-8s %5s | %8s | %8s %7s %7s | %8s %7s %7s | %6s %6s %6s" % (
        "script", "mode", "cli", "direct", "pgb tps", "mean", "p99", "pfo tps", "mean", "p99", "tps x", "mean x", "p99 x")
    print(hdr)
    print("-" * len(hdr))
    verdicts = []
    for w, m, c in cells:
        def col(name, key):
            return med([x[key] if x else None for x in results[(w, m, c, name)]])
        ratios = {}
        for key in ("tps", "mean", "p99"):
            rs = []
            for a, b in zip(results[(w, m, c, "perfopt")], results[(w, m, c, "pgbouncer")]):
                if a and b:
                    rs.append(a[key] / b[key])
            ratios[key] = med(rs)
        print("%-6s %-8s %5d | %8.0f | %8.0f %7.2f %7.2f | %8.0f %7.2f %7.2f | %6.2f %6.2f %6.2f" % (
            w, m, c, col("direct", "tps"), col("pgbouncer", "tps"), col("pgbouncer", "mean"), col("pgbouncer", "p99"),
            col("perfopt", "tps"), col("perfopt", "mean"), col("perfopt", "p99"),
            ratios["tps"], ratios["mean"], ratios["p99"]))
        if c in (50, 200):
            verdicts.append(("tps %s %s c=%d >= 1.1x" % (w, m, c), ratios["tps"] >= 1.1, ratios["tps"]))
            verdicts.append(("p99 %s %s c=%d <= 1.0x" % (w, m, c), ratios["p99"] <= 1.0, ratios["p99"]))
    print("(latencies in ms; tps x / mean x / p99 x: perfopt over PgBouncer)")
    print()
    print("Ceiling: pgbench directly with %d clients (the pools' server connections), median tps, and its" % POOL)
    print("ratio to PgBouncer's tps (median of per-round ratios): the most perfopt / PgBouncer can reach")
    for w, m, c in cells:
        ceil = ceiling.get((w, m), [])
        rs = [a["tps"] / b["tps"] for a, b in zip(ceil, results[(w, m, c, "pgbouncer")]) if a and b]
        print("  %-6s %-8s %5d  direct with %d clients %8.0f tps  ceiling %.2f" % (
            w, m, c, POOL, med([x["tps"] if x else None for x in ceil]), med(rs)))
    print()
    if prep_cells:
        verdicts += print_prepared(prep_cells, prep_results)
        print()
    print("Pooler CPU per transaction (us, user+system of the pooler process; lower is better):")
    for w, m, c in cells:
        pg = med([x["cpu"] if x else None for x in results[(w, m, c, "pgbouncer")]])
        pf = med([x["cpu"] if x else None for x in results[(w, m, c, "perfopt")]])
        print("  %-6s %-8s %5d  pgbouncer %6.1f  perfopt %6.1f  ratio %.2f" % (w, m, c, pg, pf, pf / pg if pg else float("nan")))
    print()
    if COMPARE_BIN:
        print_compare(cells, results)
    mem = {}
    if IDLE > 0:
        for name in ("pgbouncer", "perfopt"):
            log("holding %d idle clients on %s" % (IDLE, name))
            try:
                mem[name] = hold_idle(targets[name], IDLE)
            except Exception as e:
                log("%s idle test failed: %s" % (name, e))
                targets[name].stop()
        print("Memory holding %d idle logged-in clients (RSS, kB):" % IDLE)
        per = {}
        for name, (b, a) in mem.items():
            per[name] = (a - b) * 1024.0 / IDLE
            print("  %-10s before %8d  after %8d  per idle client %7.0f bytes" % (name, b, a, per[name]))
        if len(per) == 2:
            ratio = per["perfopt"] / per["pgbouncer"]
            print("  memory per idle client, perfopt / pgbouncer: %.2f" % ratio)
            verdicts.append(("memory per idle client <= 1.0x", ratio <= 1.0, ratio))
        else:
            verdicts.append(("memory per idle client measured", False, None))
    print()
    print("Targets:")
    for desc, good, val in verdicts:
        print("  %-40s %s (%s)" % (desc, "met" if good else "MISSED", "%.2f" % val if val is not None else "n/a"))
    sys.exit(0 if all(v[1] for v in verdicts) else 3)


if __name__ == "__main__":
    main()
