"""tests/pooler/test_metrics.py: the Prometheus endpoint (metrics_port).
Every check is a real HTTP scrape (urllib / http.client) parsed by
prometheus_client's text parser plus the stricter rules the parser does not
enforce (HELP and TYPE for every family, counters ending in _total,
cumulative histogram buckets), with values compared against activity the
test itself caused through real psycopg2 clients."""

import http.client
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import psycopg2
from prometheus_client.parser import text_string_to_metric_families

from harness import BIN, KillProxy, PG_HOST, PG_PORT, Pooler, TMP, direct, err_code, ok, q1, servers, skip, wait_for
from wire import free_port, raw_connect, raw_query


POOL = {"database": "appdb", "user": "app"}


class Scrape:
    """One parsed /metrics answer: samples by (name, labels) and the raw text."""

    def __init__(self, port):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            self.status = r.status
            self.content_type = r.headers.get("Content-Type")
            self.text = r.read().decode()
        self.families = list(text_string_to_metric_families(self.text))
        self.samples = {}
        for fam in self.families:
            for s in fam.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def get(self, name, default=None, **labels):
        return self.samples.get(("perfopt_pooler_" + name, tuple(sorted(labels.items()))), default)

    def pool(self, name, labels=POOL):
        return self.get(name, **labels)

    def buckets(self, labels=POOL):
        """[(le, cumulative count)] of the wait histogram, in printed order."""
        out = []
        for fam in self.families:
            for s in fam.samples:
                if s.name == "perfopt_pooler_wait_seconds_bucket" and all(
                        s.labels.get(k) == v for k, v in labels.items()):
                    out.append((float(s.labels["le"]), s.value))
        return out


def format_problems(text):
    """What prometheus_client's parser tolerates but the format forbids."""
    problems = []
    helped, typed = set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            typed[line.split()[2]] = line.split()[3]
        elif line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            fam = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and name[:-len(suffix)] in typed:
                    fam = name[:-len(suffix)]
            if not name.startswith("perfopt_pooler_"):
                problems.append("unprefixed " + name)
            if fam not in typed or fam not in helped:
                problems.append("no HELP/TYPE before " + name)
            elif typed[fam] == "counter" and not name.endswith("_total"):
                problems.append("counter without _total: " + name)
            elif typed[fam] != "counter" and name.endswith("_total"):
                problems.append("_total on a " + typed[fam] + ": " + name)
    return problems


def hist_problems(sc, labels=POOL):
    b = sc.buckets(labels)
    problems = []
    if not b or b[-1][0] != float("inf"):
        problems.append("no +Inf bucket")
    if any(b[i][0] >= b[i + 1][0] or b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
        problems.append("bounds not increasing or counts not cumulative")
    if b and b[-1][1] != sc.pool("wait_seconds_count", labels):
        problems.append("+Inf bucket != _count")
    if sc.pool("wait_seconds_count", labels) != sc.pool("waits_total", labels):
        problems.append("_count != waits_total")
    return problems


def bucket_at(sc, le):
    return dict(sc.buckets()).get(le)


def hold(p, n, **login):
    """n clients each holding a server connection inside an open transaction."""
    held = []
    for _ in range(n):
        c = p.connect(autocommit=False, **login)
        q1(c, "select 1")
        held.append(c)
    return held


def test_metrics_scrape():
    mport = free_port()
    p = Pooler("metrics_scrape", pool_size=2, max_overflow=1, metrics_port=mport,
                  dbs={"appdb": "host=%s port=%d dbname=appdb" % (PG_HOST, PG_PORT),
                       "*": "host=%s port=%d" % (PG_HOST, PG_PORT)})
    c = p.connect()
    q1(c, "select 1")
    s0 = Scrape(mport)
    ok(s0.status == 200 and s0.content_type == "text/plain; version=0.0.4; charset=utf-8",
          "GET /metrics: 200 with the Prometheus text content type", (s0.status, s0.content_type))
    ok(format_problems(s0.text) == [], "every sample is prefixed and has HELP and TYPE; counters end in _total",
          format_problems(s0.text)[:5])
    n = 25
    for i in range(n):
        q1(c, "select 1")
    s1 = Scrape(mport)
    dq = s1.pool("queries_total") - s0.pool("queries_total")
    dx = s1.pool("transactions_total") - s0.pool("transactions_total")
    ok(dq == n and dx == n, "%d autocommit queries: queries_total and transactions_total grow by %d" % (n, n),
          (dq, dx))
    # Q "select 1\0" is 14 bytes; T(34) + D(12) + C "SELECT 1"(14) + Z(6) come back
    din = s1.pool("received_bytes_total") - s0.pool("received_bytes_total")
    dout = s1.pool("sent_bytes_total") - s0.pool("sent_bytes_total")
    ok(din == n * 14 and dout == n * 66, "bytes counters: exactly %d in and %d out" % (n * 14, n * 66),
          (din, dout))
    ok(s1.get("clients") == 1 and s1.get("max_client_conn") == 1000 and s1.get("pools") == 1,
          "process gauges: 1 client, max_client_conn 1000, 1 pool",
          (s1.get("clients"), s1.get("max_client_conn"), s1.get("pools")))
    ok(s1.get("info", version="1.0.0") == 1, "perfopt_pooler_info carries the version")
    time.sleep(0.3)
    s2 = Scrape(mport)
    ok(0 < s1.get("uptime_seconds") < s2.get("uptime_seconds"), "uptime_seconds grows",
          (s1.get("uptime_seconds"), s2.get("uptime_seconds")))
    ok(s2.pool("server_connections_idle") == 1 and s2.pool("server_connections_active") == 0 and
          s2.pool("server_connections") == 1 and s2.pool("clients_active") == 0,
          "idle client: its server connection counts as idle, none active",
          [s2.pool(k) for k in ("server_connections", "server_connections_idle", "server_connections_active")])
    ok(s2.pool("pool_size") == 2 and s2.pool("pool_max_overflow") == 1, "pool settings exported per pool")
    ok(s2.pool("server_logins_total") == 1 and s2.pool("server_connect_failures_total") == 0,
          "one server login, no failures")
    # a database name with a quote, a backslash and a newline: the label must come back intact
    odd = 'we"ird\\db\nx'
    code = raw_connect(p.port, "app", odd, "app-secret")
    s3 = Scrape(mport)
    odd_pool = {"database": odd, "user": "app"}
    ok(code == "3D000" and s3.pool("server_connect_failures_total", odd_pool) == 1,
          "server refuses an unknown database: connect failure counted under the escaped label",
          (code, s3.pool("server_connect_failures_total", odd_pool)))
    ok('database="we\\"ird\\\\db\\nx"' in s3.text, "label value escaped (\\\" \\\\ \\n) in the text")
    ok(s3.pool("server_connect_failures_total") == 0 and s3.get("pools") == 2,
          "the other pool's counters are untouched")
    c.close()
    p.stop()


def test_metrics_http():
    mport = free_port()
    p = Pooler("metrics_http", metrics_port=mport)
    for path in ("/", "/metricsx", "/metrics/x"):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d%s" % (mport, path), timeout=5)
            code = 200
        except urllib.error.HTTPError as e:
            code = e.code
        ok(code == 404, "GET %s: 404" % path, code)
    h = http.client.HTTPConnection("127.0.0.1", mport, timeout=5)
    h.request("POST", "/metrics", body=b"")
    r = h.getresponse()
    r.read()
    ok(r.status == 405 and r.getheader("Allow") == "GET, HEAD", "POST /metrics: 405 with Allow: GET, HEAD",
          (r.status, r.getheader("Allow")))
    h.close()
    h = http.client.HTTPConnection("127.0.0.1", mport, timeout=5)
    h.request("HEAD", "/metrics")
    r = h.getresponse()
    body = r.read()
    ok(r.status == 200 and body == b"" and int(r.getheader("Content-Length") or 0) > 100,
          "HEAD /metrics: 200, headers only, with the length a GET would have",
          (r.status, len(body), r.getheader("Content-Length")))
    h.close()
    sc = Scrape(mport)
    ok(sc.get("pools") == 0 and sc.get("clients") == 0, "with no client yet: 0 pools, 0 clients")
    # a client that stops mid-request is dropped without disturbing the pooler
    s = socket.create_connection(("127.0.0.1", mport), 5)
    s.sendall(b"GET /metr")
    s.close()
    c = p.connect()
    ok(q1(c, "select 7") == 7 and Scrape(mport).get("clients") == 1 and p.alive(),
          "half a request then a hang-up: pooler and endpoint both still serve")
    c.close()
    p.stop()


def test_metrics_saturated():
    mport = free_port()
    p = Pooler("metrics_sat", pool_size=2, max_overflow=1, pool_timeout=30, metrics_port=mport)
    held = hold(p, 3)           # 2 pooled + the 1 overflow connection
    s0 = Scrape(mport)
    errors = []

    def waiter(i):
        try:
            c = p.connect()
            q1(c, "select 1")
            c.close()
        except psycopg2.Error as e:
            errors.append(str(e))
    ts = [threading.Thread(target=waiter, args=(i,)) for i in range(2)]
    started = time.time()
    for t in ts:
        t.start()
    wait_for(lambda: Scrape(mport).pool("clients_waiting") == 2)
    time.sleep(0.5)             # the waiters have now waited at least 0.5 s
    s1 = Scrape(mport)
    ok(s1.pool("clients_waiting") == 2, "saturated pool: 2 clients waiting", s1.pool("clients_waiting"))
    ok(s1.pool("server_connections_active") == 3 and s1.pool("clients_active") == 3,
          "saturated pool: 3 server connections active (pool_size 2 + overflow 1), 3 clients active",
          (s1.pool("server_connections_active"), s1.pool("clients_active")))
    ok(s1.pool("server_connections_overflow") == 1 and s1.pool("server_connections_idle") == 0,
          "overflow in use: 1, idle: 0", (s1.pool("server_connections_overflow"), s1.pool("server_connections_idle")))
    ok(servers() == 3, "PostgreSQL sees the same 3 backends", servers())
    for c in held:
        c.commit()
    longest = time.time() - started         # no wait can have lasted longer
    for t in ts:
        t.join(60)
    s2 = Scrape(mport)
    dw = s2.pool("waits_total") - s0.pool("waits_total")
    ok(errors == [] and dw == 2, "both waiters served: waits_total grew by 2", (errors, dw))
    ok(hist_problems(s2) == [], "histogram: cumulative, +Inf == _count == waits_total", hist_problems(s2))
    dsum = s2.pool("wait_seconds_sum") - s0.pool("wait_seconds_sum")
    ok(1.0 <= dsum <= 2 * longest, "wait_seconds_sum grew by the two waits (each >= 0.5 s)", (round(dsum, 3), longest))
    short = bucket_at(s2, 0.262144) - bucket_at(s0, 0.262144)
    long_ = bucket_at(s2, 4.194304) - bucket_at(s0, 4.194304)
    if longest < 4.194304:
        ok(short == 0 and long_ == 2, "the two waits land between le=0.262144 and le=4.194304", (short, long_))
    else:
        skip("the two waits land between le=0.262144 and le=4.194304",
             "the machine kept them waiting %.1f s, past the upper bucket" % longest)
    ok(s2.pool("clients_waiting") == 0 and s2.pool("server_connections_active") == 0,
          "after release: nobody waiting, nothing active")
    for c in held:
        c.close()
    p.stop()


def test_metrics_timeout():
    mport = free_port()
    p = Pooler("metrics_timeout", pool_size=1, max_overflow=0, pool_timeout=0.5, metrics_port=mport)
    pg = {"database": "postgres", "user": "postgres"}     # raw_query's login
    held = hold(p, 1, user="postgres", password=None, db="postgres")
    before = Scrape(mport)
    code, _ = raw_query(p.port, "select 2")
    after = Scrape(mport)
    ok(code == "53300" and before.pool("wait_timeouts_total", pg) == 0 and
          after.pool("wait_timeouts_total", pg) == 1,
          "a pool_timeout (53300) increments wait_timeouts_total by 1",
          (code, before.pool("wait_timeouts_total", pg), after.pool("wait_timeouts_total", pg)))
    ok(after.pool("waits_total", pg) == before.pool("waits_total", pg),
          "a client that timed out got no server: waits_total unchanged")
    held[0].close()
    p.stop()


def test_metrics_pre_ping():
    # a backend terminated while idle is dropped by the idle watcher, before any pre-ping
    mport = free_port()
    p = Pooler("metrics_term", pool_size=1, max_overflow=0, metrics_port=mport)
    c = p.connect()
    pid = q1(c, "select pg_backend_pid()")
    d = direct()
    q1(d, "select pg_terminate_backend(%s)", (pid,))
    d.close()
    wait_for(lambda: Scrape(mport).pool("server_connections") == 0)
    code, _ = err_code(lambda: q1(c, "select 1"))
    sc = Scrape(mport)
    ok(code == "none" and sc.pool("pre_ping_failures_total") == 0 and sc.pool("server_logins_total") == 2,
          "pg_terminate_backend of an idle server: dropped at once, replaced by a new login, no pre-ping failure",
          (code, sc.pool("pre_ping_failures_total"), sc.pool("server_logins_total")))
    c.close()
    p.stop()
    # a connection dead without the pooler knowing: found by the pre-ping
    proxy = KillProxy()
    mport = free_port()
    p = Pooler("metrics_ping", dbs={"appdb": "host=127.0.0.1 port=%d dbname=appdb" % proxy.port},
                  pool_size=1, max_overflow=0, metrics_port=mport, pre_ping_interval=0)
    c = p.connect()
    q1(c, "select 1")
    proxy.armed = True
    code, _ = err_code(lambda: q1(c, "select 1"))
    sc = Scrape(mport)
    ok(proxy.killed == 1 and code == "none" and sc.pool("pre_ping_failures_total") == 1,
          "a server connection dead at hand-out: pre_ping_failures_total 1, client unaffected",
          (proxy.killed, code, sc.pool("pre_ping_failures_total")))
    c.close()
    p.stop()
    proxy.close()


def tcp_listeners(pid):
    """Local ports the process listens on over TCP, from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    ports.add(int(cols[1].split(":")[1], 16))
    return ports


def test_metrics_off():
    for name, settings in (("unset", {}), ("zero", {"metrics_port": 0})):
        p = Pooler("metrics_off_" + name, **settings)
        ports = tcp_listeners(p.proc.pid)
        ok(ports == {p.port}, "metrics_port %s: the pooler listens on its own port only" % name,
              (ports, p.port))
        p.stop()
    mport = free_port()
    p = Pooler("metrics_on", metrics_port=mport)
    ports = tcp_listeners(p.proc.pid)
    ok(ports == {p.port, mport}, "metrics_port set: it listens there as well", (ports, p.port, mport))
    p.stop()


def run_config(name, lines):
    ini = os.path.join(TMP, name + ".ini")
    with open(ini, "w") as f:
        f.write("\n".join(["[databases]", "appdb = host=127.0.0.1 port=%d" % PG_PORT, "[pooler]",
                           "listen_port = %d" % free_port(), "unix_socket_dir ="] + lines) + "\n")
    try:
        r = subprocess.run([BIN, "-c", ini], capture_output=True, text=True, timeout=10)
        return ini, r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        return ini, "still running", e.stderr


def test_metrics_bad_config():
    for bad in ("abc", "70000", "-1", "9100x"):
        ini, rc, err = run_config("metrics_bad", ["metrics_port = %s" % bad])
        want = '%s:6: key "metrics_port" in [pooler]: must be a port number' % ini
        ok(rc == 1 and want in err and bad in err, "metrics_port = %s refused at start, naming file, line and key"
              % bad, (rc, err.strip()))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    ini, rc, err = run_config("metrics_busy", ["metrics_port = %d" % taken])
    ok(rc == 1 and "metrics: cannot listen on 127.0.0.1 port %d" % taken in err,
          "metrics_port already in use: the pooler exits 1 saying so", (rc, err.strip()))
    busy.close()
    ini, rc, err = run_config("metrics_badaddr", ["metrics_port = %d" % free_port(), "metrics_addr = 192.0.2.1"])
    ok(rc == 1 and "metrics: cannot listen on 192.0.2.1" in err,
          "metrics_addr not local: the pooler exits 1 saying so", (rc, err.strip()))


TESTS = [("metrics_scrape", test_metrics_scrape), ("metrics_http", test_metrics_http),
         ("metrics_saturated", test_metrics_saturated), ("metrics_timeout", test_metrics_timeout),
         ("metrics_pre_ping", test_metrics_pre_ping), ("metrics_off", test_metrics_off),
         ("metrics_bad_config", test_metrics_bad_config)]
