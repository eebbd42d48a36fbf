#!/usr/bin/python3
"""perfopt-pooler in the configurations applications run, against the
current PgBouncer; driven by tests/bench/pooler/run after bench.py.

Targets, each a pooler in transaction mode reaching PostgreSQL over its Unix
socket, pgbench reaching it over TCP loopback (-j 2):
  pgb-1.24  PgBouncer 1.24 built from Debian's source package
            (pgbouncer_build.sh), its default configuration with the same
            limits: default_pool_size 20, reserve_pool_size 10,
            max_prepared_statements 200 (and pool_mode transaction, and
            max_client_conn room for the clients: its default, session
            mode, would never let a pgbench client go); PgBouncer opens its
            reserve only for a client waiting reserve_pool_timeout (5 s)
  pgb-1.18  Debian 12's PgBouncer, the same (it has no
            max_prepared_statements: -M prepared fails through it)
  pfo       perfopt-pooler with its defaults: pool_size 20, max_overflow
            10, pool_recycle 3600, pool_pre_ping on (so the applications'
            pool_size 20 + max_overflow 10 setting is this one, not run twice)
  pfo-o30, pfo-o40  pool_size 20 with max_overflow 30 / 40, pool_recycle
            3600, pool_pre_ping on
(BENCH_OVERFLOWS: the max_overflow values besides the default's, "30 40";
BENCH_PFO_EXTRA="name:key=value,key=value ..." adds pfo-name targets, perfopt's
defaults with those settings; BENCH_DEF_TARGETS="pgb-1.24 pfo ..." runs only
those targets, pgb-1.24 always among them.)

Cells (BENCH_DEF_CELLS, BENCH_DEF_CLIENTS): pgbench -S with -M simple,
extended and prepared, and TPC-B with -M simple, at 50 and 200 clients.
Every target is started once and kept.  A round runs every target once
per cell, each run after a CHECKPOINT and
BENCH_PRERUN (1) s of the same load, unmeasured: while the other targets
ran, a pool closed what it keeps idle only for a while (perfopt's overflow
after overflow_idle_timeout), and what is measured is a pool under
sustained load; the logins of that refill are shown apart.
Per cell and target: tps (median over rounds), and ratio = median over
rounds of the per-round tps ratio to pgb-1.24, which cancels most of the
drift of a shared machine; p99 latency from pgbench's per-transaction log
(-l), its ratio alike; server logins per second: the "connection
authorized" lines PostgreSQL logged (log_connections) during the run, over
its length; CPU per transaction of the pooler and of PostgreSQL, which
other load on the machine moves much less than tps (what a loaded machine
can still tell).

Order within a round (round_order): pgb-1.24 and pfo, whose ratios are the
verdict, run first and next to each other, which leads alternating by round;
the other targets follow, rotated.  BENCH_ROUNDS (5) rounds of
BENCH_DURATION (10) s; BENCH_QUICK=1: 1 round of
3 s (a sanity run, no verdict worth reading).  Targets, for perfopt's
defaults against pgb-1.24: tps >= 1.1x on every -S cell, >= 1.0x on TPC-B,
p99 no higher.  Exit 0 when all hold, 3 when one is missed."""

import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # importing bench.py leaves nothing in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (its settings, targets and helpers; main() does not run)
from bench import B_HOST, B_PORT, Target, free_port, log, settle, wait_port  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1" if QUICK else "5"))
DURATION = int(os.environ.get("BENCH_DURATION", "3" if QUICK else "10"))
CLIENTS = [int(x) for x in os.environ.get("BENCH_DEF_CLIENTS", "50 200").split()]
CELLS = [tuple(x.split(":")) for x in os.environ.get(
    "BENCH_DEF_CELLS", "select:simple select:extended select:prepared tpcb:simple").split()]
OVERFLOWS = [int(x) for x in os.environ.get("BENCH_OVERFLOWS", "30 40").split()]
EXTRA = [x.split(":", 1) for x in os.environ.get("BENCH_PFO_EXTRA", "").split()]
ONLY = os.environ.get("BENCH_DEF_TARGETS", "").split()
PRERUN = int(os.environ.get("BENCH_PRERUN", "1"))
PGB_NEW = os.environ.get("PGBOUNCER_NEW", "")
PGB_OLD = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
SERVER_LOG = os.path.join(os.environ["B_DIR"], "server.log")
BASE = "pgb-1.24"


def version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return out.split("\n")[0].split()[-1]


class PgBouncer(Target):
    """PgBouncer in its default configuration but for the limits all targets share."""

    def __init__(self, name, binary, prepared):
        super().__init__(name)
        self.binary = binary
        self.prepared = prepared

    def start(self):
        self.port = free_port()
        self.host = "127.0.0.1"
        self.dir = os.path.join(bench.WORK, self.name)
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write('"postgres" ""\n')
        lines = ["[databases]", "bench = host=%s port=%d" % (B_HOST, B_PORT), "[pgbouncer]",
                 "listen_addr = 127.0.0.1", "listen_port = %d" % self.port, "unix_socket_dir =",
                 "pool_mode = transaction", "default_pool_size = 20", "reserve_pool_size = 10",
                 "max_client_conn = 20000", "auth_type = trust", "auth_file = %s/userlist.txt" % self.dir,
                 "ignore_startup_parameters = extra_float_digits",
                 "logfile = %s/pgbouncer.log" % self.dir, "pidfile = %s/pgbouncer.pid" % self.dir]
        if self.prepared:
            lines.append("max_prepared_statements = 200")
        ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(ini, "w") as f:
            f.write("\n".join(lines) + "\n")
        for fn in [self.dir] + [os.path.join(self.dir, x) for x in os.listdir(self.dir)]:
            shutil.chown(fn, "postgres")
        # PgBouncer refuses to run as root
        self.proc = subprocess.Popen(["runuser", "-u", "postgres", "--", "bash", "-c",
                                      "ulimit -n $(ulimit -Hn); exec %s %s" % (self.binary, ini)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def pid(self):
        return bench.read_pidfile(os.path.join(self.dir, "pgbouncer.pid"))


class Perfopt(Target):
    def __init__(self, name, settings):
        super().__init__(name)
        self.settings = settings

    def start(self):
        self.port = free_port()
        self.host = "127.0.0.1"
        d = os.path.join(bench.WORK, self.name)
        os.makedirs(d, exist_ok=True)
        ini = os.path.join(d, "pooler.ini")
        lines = ["[databases]", "bench = host=%s port=%d" % (B_HOST, B_PORT), "[pooler]",
                 "listen_addr = 127.0.0.1", "listen_port = %d" % self.port, "unix_socket_dir ="]
        lines += ["%s = %s" % kv for kv in self.settings]
        with open(ini, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([bench.BIN, "-c", ini], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(d, "log"), "a"))
        wait_port(self.port, self.proc)


def server_log_size():
    return os.path.getsize(SERVER_LOG)


def logins_since(offset):
    """PostgreSQL's logins into the bench database since the log had `offset` bytes."""
    with open(SERVER_LOG, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    return sum(1 for line in text.splitlines() if "connection authorized:" in line and "database=bench" in line)


def run(t, workload, mode, clients, duration=None, measure=True):
    duration = duration or DURATION
    refill = 0
    if measure:
        settle()
        if PRERUN:
            refill = run(t, workload, mode, clients, duration=PRERUN, measure=False)["logins"] * PRERUN
    d = tempfile.mkdtemp(dir=bench.WORK)
    os.chmod(d, 0o777)
    args = ["pgbench", "-n", "-h", t.host, "-p", str(t.port), "-U", "postgres", "-M", mode, "-c", str(clients),
            "-j", "2", "-T", str(duration), "-l", "--log-prefix", os.path.join(d, "tx")]
    if workload == "select":
        args.append("-S")
    args.append("bench")
    off = server_log_size()
    cpu0, pg0 = bench.proc_cpu(t.pid()), bench.cluster_cpu()
    r = subprocess.run(args, capture_output=True, text=True, timeout=duration * 6 + 120)
    cpu, pg = bench.proc_cpu(t.pid()) - cpu0, bench.cluster_cpu() - pg0
    logins = logins_since(off)
    lat = []
    for fn in glob.glob(os.path.join(d, "tx*")):
        with open(fn) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
    shutil.rmtree(d, ignore_errors=True)
    tps = None
    for line in r.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
    failed = "number of failed transactions: 0 " not in r.stdout
    if tps is None or not lat or r.returncode != 0 or failed:
        err = [x for x in r.stderr.splitlines() if "ERROR" in x or "error" in x] or r.stderr.splitlines() or [""]
        return {"tps": None, "p99": None, "logins": logins / duration, "refill": refill, "error": err[0][-120:],
                "cpu": None, "pg": None}
    lat.sort()
    return {"tps": tps, "p99": lat[max(int(len(lat) * 0.99) - 1, 0)] / 1000.0, "logins": logins / duration,
            "refill": refill, "error": "", "cpu": cpu * 1e6 / len(lat), "pg": pg * 1e6 / len(lat)}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(results, key, cell, name):
    return med([a[key] / b[key] if a[key] and b[key] else None
                for a, b in zip(results[cell + (name,)], results[cell + (BASE,)])])


def fmt(v, spec):
    return spec % v if v is not None else "-"


def print_table(title, key, spec, cells, names, results, with_ratio):
    print(title)
    hdr = "%-22s" % "cell" + "".join("%18s" % n for n in names)
    print(hdr)
    print("-" * len(hdr))
    for cell in cells:
        row = "%-22s" % ("%s %s c=%d" % cell)
        for n in names:
            v = med([x[key] for x in results[cell + (n,)]])
            if with_ratio and n != BASE:
                row += "%18s" % ("%s %sx" % (fmt(v, spec), fmt(ratio(results, key, cell, n), "%.2f")))
            else:
                row += "%18s" % fmt(v, spec)
        print(row)
    print()


def targets():
    ts = {}
    if PGB_NEW:
        ts[BASE] = PgBouncer(BASE, PGB_NEW, True)
    ts["pgb-1.18"] = PgBouncer("pgb-1.18", PGB_OLD, False)
    ts["pfo"] = Perfopt("pfo", [])
    for o in OVERFLOWS:
        ts["pfo-o%d" % o] = Perfopt("pfo-o%d" % o, [("pool_size", 20), ("max_overflow", o),
                                                      ("pool_recycle", 3600), ("pool_pre_ping", "on")])
    for name, kvs in EXTRA:
        ts["pfo-" + name] = Perfopt("pfo-" + name, [tuple(kv.split("=", 1)) for kv in kvs.split(",")])
    if ONLY:
        ts = {n: t for n, t in ts.items() if n in ONLY or n == BASE}
    return ts


def round_order(names, r):
    """Round r's order: the verdict's pair (pgb-1.24 and pfo) first and next
    to each other, which of them leads alternating by round; the other
    targets after them, rotated.  The per-round ratio of the pair compares
    two runs seconds apart, so a shared machine's drift over the minute the
    other targets take does not enter the verdict."""
    pair = [n for n in (BASE, "pfo") if n in names]
    if r % 2:
        pair.reverse()
    rest = [n for n in names if n not in pair]
    k = r % len(rest) if rest else 0
    return pair + rest[k:] + rest[:k]


def main():
    if not PGB_NEW:
        print("PgBouncer 1.24 could not be built from Debian's source package: this section did not run")
        sys.exit(3)
    ts = targets()
    names = list(ts)
    cells = [(w, m, c) for w, m in CELLS for c in CLIENTS]
    results = {}
    total, k = len(cells) * ROUNDS * len(names), 0
    log("real configurations: %d cells x %d targets x %d rounds of %d s" % (len(cells), len(names), ROUNDS, DURATION))
    try:
        for t in ts.values():
            t.start()
        bench.warm_up()
        for t in ts.values():
            run(t, "select", "simple", 50, duration=2, measure=False)
        for r in range(ROUNDS):
            for cell in cells:
                for n in round_order(names, r):
                    k += 1
                    res = run(ts[n], *cell)
                    results.setdefault(cell + (n,), []).append(res)
                    log("%d/%d round %d %-6s %-8s c=%-4d %-9s %s, %.1f logins/s" % (
                        k, total, r + 1, cell[0], cell[1], cell[2], n,
                        "%.0f tps p99 %.2f ms" % (res["tps"], res["p99"]) if res["tps"] else "FAILED " + res["error"],
                        res["logins"]))
    finally:
        for t in ts.values():
            t.stop()

    print()
    print("perfopt-pooler in real configurations vs PgBouncer %s (built from Debian's source package) and %s"
          % (version(PGB_NEW), version(PGB_OLD)))
    print("(transaction mode, Unix socket to PostgreSQL, pgbench over TCP loopback, -j 2, %d s runs, %d rounds;"
          " %s and pfo next to each other, which leads alternating)" % (DURATION, ROUNDS, BASE))
    print("pgb-*: default_pool_size 20, reserve_pool_size 10 (1.24: max_prepared_statements 200); pfo: perfopt's"
          " defaults")
    print("(pool_size 20, max_overflow 10, pool_recycle 3600, pool_pre_ping on); pfo-oN: the same with max_overflow N")
    print()
    print_table("tps, median over rounds; x: median of per-round ratios to %s" % BASE, "tps", "%.0f",
                cells, names, results, True)
    print_table("p99 latency (ms), median over rounds; x: median of per-round ratios to %s" % BASE, "p99", "%.2f",
                cells, names, results, True)
    print_table("server logins per second (PostgreSQL's log_connections), median over rounds", "logins", "%.1f",
                cells, names, results, False)
    print_table("pooler CPU per transaction (us, user + system of its process), median; x: ratio to %s" % BASE,
                "cpu", "%.1f", cells, names, results, True)
    print_table("PostgreSQL CPU per transaction (us, postmaster and backends), median; x: ratio to %s" % BASE,
                "pg", "%.1f", cells, names, results, True)
    if PRERUN:
        print_table("logins in the %d s before each run, refilling what the pool closed while the others ran"
                    " (median)" % PRERUN, "refill", "%.0f", cells, names, results, False)
    errors = sorted({"%s %s %s c=%d: %s" % ((n,) + cell + (x["error"],))
                     for cell in cells for n in names for x in results[cell + (n,)] if x["error"]})
    if errors:
        print("Failed runs (first error pgbench reported):")
        for e in errors[:20]:
            print("  " + e)
        print()
    verdicts = []
    for cell in cells if "pfo" in names else []:
        want = 1.1 if cell[0] == "select" else 1.0
        tr, pr = ratio(results, "tps", cell, "pfo"), ratio(results, "p99", cell, "pfo")
        verdicts.append(("tps %s %s c=%d >= %.1fx" % (cell + (want,)), tr is not None and tr >= want, tr))
        verdicts.append(("p99 %s %s c=%d <= 1.0x" % cell, pr is not None and pr <= 1.0, pr))
    print("Targets (perfopt's defaults against %s):" % BASE)
    for desc, good, val in verdicts:
        print("  %-36s %s (%s)" % (desc, "met" if good else "MISSED", fmt(val, "%.2f")))
    if QUICK:
        print("(BENCH_QUICK: one short round, a sanity run; the verdicts need a full run on a quiet machine)")
    sys.exit(0 if all(v[1] for v in verdicts) else 3)


if __name__ == "__main__":
    main()
