"""tests/bench/replicas/bench.py: the measurements behind tests/bench/replicas/run.

Targets, each a configuration of where read-only transactions go:
  primary    pgbench straight to the primary (what an application without
             a replica-aware pool does)
  standby    pgbench straight to standby 1 (what a read costs on a standby)
  pooler+0   perfopt-pooler with the primary alone (read_only_routing on,
             nothing to route to: the pooler's own cost)
  pooler+1   the primary and standby 1
  pooler+2   the primary and both standbys
Rounds alternate the targets (A B C D, then again); each figure is the
median over rounds.  Every host's share comes from its own count of the
lookup (perfopt.query_stats), read before and after each run.  CPU per
transaction is the user + system time of each PostgreSQL cluster's
processes and of the pooler, over the transactions pgbench reported.

Read-your-writes: one client, BENCH_RYW_ROUNDS times: UPDATE a row through
the pooler (autocommit, on the primary), then read it back in
BEGIN READ ONLY (routed to a standby).  With causal_reads = session the
pooler holds the read until a standby has replayed the write's commit (or
uses the primary after causal_read_timeout); with off it does not wait.
Printed: median and p99 of the read's latency, and stale reads (the value
read is not the one just written).

The standby cache: the lookups of the routing runs touch a hot set of
accounts (BENCH_HOT rows) through a cache rule on pgbench_accounts, so
standbys serve repeats from their own result cache; its hits and misses per
host are printed.

Finally a model of N standby machines from the measured CPU per read (see
model()).
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg

sys.dont_write_bytecode = True  # importing the pooler tests' helpers leaves nothing in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "pooler"))
from wire import free_port  # noqa: E402

P = (os.environ["P_HOST"], int(os.environ["P_PORT"]))
S1 = (os.environ["S1_HOST"], int(os.environ["S1_PORT"]))
S2 = (os.environ["S2_HOST"], int(os.environ["S2_PORT"]))
BIN = os.environ["POOLER_BIN"]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "20"))
SCALE = int(os.environ.get("BENCH_SCALE", "10"))
RYW_ROUNDS = int(os.environ.get("BENCH_RYW_ROUNDS", "1000"))
HOT = int(os.environ.get("BENCH_HOT", "10000"))
WORK = tempfile.mkdtemp(prefix="perfopt-replbench.")
os.chmod(WORK, 0o777)
HOSTS = {"primary": P, "standby1": S1, "standby2": S2}


def log(msg):
    print("replicas bench: " + msg, file=sys.stderr, flush=True)


def connect(host, port, dbname="bench", **kw):
    return psycopg.connect(host=host, port=port, dbname=dbname, user="postgres", autocommit=True, **kw)


def q1(host, port, sql):
    with connect(host, port) as c:
        return c.execute(sql).fetchone()[0]


def postmaster_pid(host):
    with open(os.path.join(host, "data", "postmaster.pid")) as f:
        return int(f.readline())


def cpu_of(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                parts = f.read().rsplit(")", 1)[1].split()
            total += (int(parts[11]) + int(parts[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def reaped_cpu(pid):
    """CPU of the children pid has waited for (a backend that exited)."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/%d/stat" % pid) as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[13]) + int(parts[14])) / tick
    except (OSError, IndexError):
        return 0.0


def cluster_cpu(host):
    """The cluster's processes, live ones and the backends that exited."""
    pm = postmaster_pid(host)
    pids = [pm]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pm:
                        pids.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return cpu_of(pids) + reaped_cpu(pm)


class Pooler:
    """perfopt-pooler in front of the primary and the first n standbys."""

    def __init__(self, name, standbys, settings=()):
        self.name = name
        self.hosts = [P] + [S1, S2][:standbys]
        self.settings = list(settings)
        self.proc = None

    def start(self):
        self.port = free_port()
        d = os.path.join(WORK, self.name)
        os.makedirs(d, exist_ok=True)
        hosts = ",".join("127.0.0.1" for _ in self.hosts)
        ports = ",".join(str(p) for _, p in self.hosts)
        # load_balance_hosts = random spreads the reads over the standbys
        # (disable, the default, sends them all to the first that fits)
        common = "host=%s port=%s dbname=bench load_balance_hosts=random" % (hosts, ports)
        lines = ["[databases]",
                 "bench = %s read_only_routing=on causal_reads=off" % common,
                 "bench_causal = %s read_only_routing=on causal_reads=session" % common,
                 "[pooler]", "listen_addr = 127.0.0.1", "listen_port = %d" % self.port,
                 "unix_socket_dir =", "pool_size = %d" % CLIENTS, "max_overflow = 0"]
        lines += ["%s = %s" % kv for kv in self.settings]
        with open(os.path.join(d, "pooler.ini"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([BIN, "-c", os.path.join(d, "pooler.ini")],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "a"))
        deadline = time.time() + 30
        while True:
            try:
                connect("127.0.0.1", self.port).close()
                break
            except psycopg.Error:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise SystemExit("replicas bench: %s did not start (see %s/log)" % (self.name, d))
                time.sleep(0.1)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def endpoint(self):
        return ("127.0.0.1", self.port)


class Direct:
    """pgbench straight to one server, no pooler."""

    def __init__(self, name, server):
        self.name = name
        self.server = server

    def start(self):
        pass

    def stop(self):
        pass

    def endpoint(self):
        return ("127.0.0.1", self.server[1])


SCRIPT = os.path.join(WORK, "ro.sql")
with open(SCRIPT, "w") as f:
    f.write("\\set aid random(1, %d)\nBEGIN READ ONLY;\n"
            "SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\nEND;\n" % HOT)
os.chmod(SCRIPT, 0o644)


def commits():
    """Lookups each host ran so far: perfopt's own statistics, kept in shared
    memory at once (pg_stat_database may lag up to 10 s behind an idle
    backend)."""
    return {h: q1(hp[0], hp[1], "SELECT coalesce(sum(calls), 0)::float8 FROM perfopt.query_stats "
                                "WHERE query LIKE 'SELECT abalance FROM pgbench_accounts%'")
            for h, hp in HOSTS.items()}


def run_reads(t):
    host, port = t.endpoint()
    c0 = commits()
    cpu0 = {h: cluster_cpu(hp[0]) for h, hp in HOSTS.items()}
    pcpu0 = cpu_of([t.proc.pid]) if getattr(t, "proc", None) else 0.0
    r = subprocess.run(["runuser", "-u", "postgres", "--", "pgbench", "-n", "-h", host, "-p", str(port),
                        "-U", "postgres", "-c", str(CLIENTS), "-j", "2", "-T", str(DURATION),
                        "-f", SCRIPT, "bench"], capture_output=True, text=True, timeout=DURATION * 6 + 120)
    pcpu = (cpu_of([t.proc.pid]) if getattr(t, "proc", None) else 0.0) - pcpu0
    cpu = {h: cluster_cpu(hp[0]) - cpu0[h] for h, hp in HOSTS.items()}
    c1 = commits()
    tps = txns = None
    for line in r.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        if line.startswith("number of transactions actually processed:"):
            txns = int(line.split(":")[1].split()[0].split("/")[0])
    if r.returncode != 0 or tps is None or not txns:
        err = [x for x in r.stderr.splitlines() if "rror" in x] or [r.stderr[-200:]]
        return {"tps": None, "error": err[0][-160:]}
    served = {h: max(c1[h] - c0[h], 0) for h in HOSTS}
    total = sum(served.values()) or 1
    return {"tps": tps, "share": {h: served[h] / total for h in HOSTS},
            "cpu_host": {h: cpu[h] * 1e6 / txns for h in HOSTS}, "cpu_pooler": pcpu * 1e6 / txns,
            "error": ""}


def ryw(pooler, dbname):
    """Write then read back, RYW_ROUNDS times: read latencies (ms), stale reads."""
    host, port = pooler.endpoint()
    lat, stale = [], 0
    with connect(host, port, dbname) as c:
        for i in range(RYW_ROUNDS):
            aid = HOT + 1 + (i % 1000)
            v = c.execute("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = %s "
                          "RETURNING abalance", (aid,)).fetchone()[0]
            t0 = time.perf_counter()
            c.execute("BEGIN READ ONLY")
            got = c.execute("SELECT abalance FROM pgbench_accounts WHERE aid = %s", (aid,)).fetchone()[0]
            c.execute("COMMIT")
            lat.append((time.perf_counter() - t0) * 1000)
            stale += got != v
    lat.sort()
    return {"median": statistics.median(lat), "p99": lat[max(int(len(lat) * 0.99) - 1, 0)], "stale": stale}


def cache_counts():
    out = {}
    for h, hp in HOSTS.items():
        try:
            out[h] = tuple(q1(hp[0], hp[1], "SELECT coalesce(sum(%s), 0)::int8 FROM perfopt.cache_stats" % k)
                           for k in ("hits", "misses"))
        except psycopg.Error as e:
            out[h] = (None, str(e).splitlines()[0][:60])
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def model(res):
    """Reads a second with N standby machines of this one's size.

    Each read costs the standby that runs it c_host of CPU and the pooler
    c_pool, measured with one standby taking every read (pooler+1: on this
    machine more standbys only add processes competing for the same two
    cores).  With N standby machines of `cores` cores each taking reads (the
    primary keeps its cores for writes), the standbys can run
    N * cores / c_host reads a second and one pooler process (one core)
    1 / c_pool; the lesser bounds the reads.  Only the per-read costs carry
    over from this shared machine; the network's round trips add latency,
    not CPU.
    """
    one = res.get("pooler+1")
    if not one:
        return []
    share = one["share"]["standby1"]
    c_host_read = one["cpu_host"]["standby1"] / max(share, 1e-9)
    c_pool = one["cpu_pooler"]
    lines = ["model: a read costs a standby %.0f us of CPU and the pooler %.0f us (measured, pooler+1)"
             % (c_host_read, c_pool)]
    cores = 2
    for n in (1, 2, 4, 8, 16):
        hosts = n * cores * 1e6 / c_host_read if c_host_read else float("inf")
        pool = 1e6 / c_pool if c_pool else float("inf")
        lines.append("model: %2d standby machines of %d cores: standbys %8.0f reads/s, one pooler core "
                     "%8.0f reads/s -> %8.0f reads/s" % (n, cores, hosts, pool, min(hosts, pool)))
    return lines


def main():
    # the standbys' cache: a rule on the hot table, replicated as the row it is
    with connect(*P) as c:
        c.execute("SELECT perfopt.cache_table('pgbench_accounts')")
    targets = [Direct("primary", P), Direct("standby", S1), Pooler("pooler+0", 0), Pooler("pooler+1", 1),
               Pooler("pooler+2", 2)]
    for t in targets:
        t.start()
    runs = {t.name: [] for t in targets}
    try:
        for rnd in range(ROUNDS):
            order = targets if rnd % 2 == 0 else list(reversed(targets))
            for t in order:
                r = run_reads(t)
                runs[t.name].append(r)
                if r["tps"] is None:
                    log("round %d %-9s FAILED %s" % (rnd + 1, t.name, r["error"]))
                else:
                    log("round %d %-9s %7.0f tps, shares %s" % (rnd + 1, t.name, r["tps"], " ".join(
                        "%s %.0f%%" % (h, 100 * s) for h, s in r["share"].items())))
        two = targets[-1]
        ryw_res = {}
        for db in ("bench_causal", "bench"):
            ryw_res[db] = ryw(two, db)
            log("read-your-writes %s: %s" % (db, ryw_res[db]))
        cache = cache_counts()
    finally:
        for t in targets:
            t.stop()
        shutil.rmtree(WORK, ignore_errors=True)

    print("date: %s; machine: %d cores; %d clients, %d s runs, %d rounds, read-only transactions of one "
          "primary-key lookup over %d hot rows" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                   os.cpu_count(), CLIENTS, DURATION, ROUNDS, HOT))
    print()
    print("%-10s %9s %8s %9s %9s %9s %10s %10s" % ("target", "tps", "vs prim", "primary", "standby1",
                                                   "standby2", "host us/tx", "pooler us"))
    base = [r["tps"] for r in runs["primary"]]
    res = {}
    for t in targets:
        rs = [r for r in runs[t.name] if r["tps"] is not None]
        if not rs:
            print("%-10s FAILED: %s" % (t.name, runs[t.name][0]["error"]))
            continue
        ratios = [a["tps"] / b for a, b in zip(runs[t.name], base) if a["tps"] and b]
        share = {h: med([r["share"][h] for r in rs]) for h in HOSTS}
        host_cpu = med([sum(r["cpu_host"].values()) for r in rs])
        res[t.name] = {"share": share, "cpu_host": {h: med([r["cpu_host"][h] for r in rs]) for h in HOSTS},
                       "cpu_pooler": med([r["cpu_pooler"] for r in rs])}
        print("%-10s %9.0f %7.2fx %8.0f%% %8.0f%% %8.0f%% %10.1f %10.1f" % (
            t.name, med([r["tps"] for r in rs]), med(ratios) or 0, 100 * share["primary"],
            100 * share["standby1"], 100 * share["standby2"], host_cpu, res[t.name]["cpu_pooler"]))
    print()
    c, o = ryw_res["bench_causal"], ryw_res["bench"]
    print("read-your-writes (%d write-then-read rounds, pooler+2):" % RYW_ROUNDS)
    print("  causal_reads = session: read median %.2f ms, p99 %.2f ms, stale reads %d" % (
        c["median"], c["p99"], c["stale"]))
    print("  causal_reads = off:     read median %.2f ms, p99 %.2f ms, stale reads %d" % (
        o["median"], o["p99"], o["stale"]))
    print("  added latency of the wait: median %+.2f ms" % (c["median"] - o["median"]))
    print()
    print("result cache per host (hits / misses since start):")
    for h, (hits, misses) in cache.items():
        if hits is None:
            print("  %-9s not read: %s" % (h, misses))
        else:
            ratio = hits / (hits + misses) if hits + misses else 0
            print("  %-9s %9d / %9d  hit ratio %.2f" % (h, hits, misses, ratio))
    print()
    for line in model(res):
        print(line)
    ok = c["stale"] == 0 and all(res.get(n) for n in ("pooler+1", "pooler+2"))
    print()
    print("checks: %s (0 stale reads with causal_reads = session; every target ran)" % ("met" if ok else "MISSED"))
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
