"""tests/pooler/test_replicas.py: several hosts per database (pooler/replica/):
a primary and two streaming standbys that tests/pooler/run starts on loopback
(REPL_* in the environment; without them every check here is a skip).

Proven by content: the role each host has in SHOW DATABASES / SHOW SERVERS
and the metrics; each transaction says where it ran (pg_is_in_recovery(),
inet_server_port()), so read-only routing is checked transaction by
transaction (both standbys served some, the primary served no read-only
one, every write ran on the primary); a write inside BEGIN READ ONLY gets
25006 from a standby; a standby stopped (reads go on on the other one, with
no error for anyone outside the transaction that was on it) and started
again (used again); the primary stopped and a standby promoted: a
read-write database reaches the new primary without a pooler restart.
Waits end when their condition shows, with generous limits; no verdict
depends on how fast anything was."""
import os
import subprocess
import threading
import time

import psycopg2

from harness import PG_BINDIR, BIN, TMP, Pooler, console, edit_ini, metrics, ok, skip, wait_for
from wire import free_port, read_msg, session, simple_query, sqlstate_of

LOOP = "127.0.0.1"
PORTS = {k: os.environ.get("REPL_%s_PORT" % k) for k in ("P", "S1", "S2")}
DATA = {k: os.environ.get("REPL_%s_DATA" % k) for k in ("P", "S1", "S2")}
HOSTS = "host=%s,%s,%s port=%s,%s,%s dbname=postgres" % (LOOP, LOOP, LOOP, PORTS["P"], PORTS["S1"], PORTS["S2"])


def available(what):
    if all(PORTS.values()) and all(DATA.values()):
        return True
    skip(what, "no primary with two standbys (tests/pooler/run starts them for replica_* tests)")
    return False


def pg_ctl(node, *args):
    cmd = [os.path.join(PG_BINDIR, "pg_ctl"), "-D", DATA[node]] + list(args)
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def start(node):
    return pg_ctl(node, "-w", "-t", "60", "-l", os.path.join(os.path.dirname(DATA[node]), "server.log"), "start")


def direct_to(node):
    c = psycopg2.connect(host=LOOP, port=int(PORTS[node]), user="postgres", dbname="postgres", connect_timeout=10)
    c.autocommit = True
    return c


def via(p, db, **kw):
    c = psycopg2.connect(host=LOOP, port=p.port, user="postgres", dbname=db, connect_timeout=10, **kw)
    c.autocommit = True
    return c


def run(c, *sqls):
    """The statements in order; the last one's first row."""
    with c.cursor() as cur:
        for s in sqls:
            cur.execute(s)
        return cur.fetchone() if cur.description else None


WHERE = "SELECT pg_is_in_recovery(), inet_server_port()"


def where(c, begin=None):
    """(in recovery, server port) of one transaction: `begin` opens it, else autocommit."""
    if begin is None:
        return run(c, WHERE)
    r = run(c, begin, WHERE)
    run(c, "COMMIT")
    return r


def replayed_everywhere():
    """Both standbys have replayed what the primary has written so far."""
    d = direct_to("P")
    target = run(d, "SELECT pg_current_wal_lsn()::text")[0]
    d.close()

    def caught_up(node):
        try:
            s = direct_to(node)
            try:
                return run(s, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % target)[0]
            finally:
                s.close()
        except psycopg2.Error:
            return False
    return wait_for(lambda: caught_up("S1") and caught_up("S2"), timeout=60)


def prepare():
    """The table the tests write, on the primary and replayed on both standbys."""
    d = direct_to("P")
    run(d, "CREATE TABLE IF NOT EXISTS rt(id int, note text)")
    d.close()
    return replayed_everywhere()


def hosts(p, db):
    """SHOW DATABASES of db: {port: (role, health)}."""
    return {r["port"]: (r["role"], r["health"]) for r in console(p, "SHOW DATABASES") if r["name"] == db}


def seen(p, db, want):
    """Wait until SHOW DATABASES says what want ({node: (role, health)}) says."""
    exp = {int(PORTS[n]): v for n, v in want.items()}
    return wait_for(lambda: all(hosts(p, db).get(k) == v for k, v in exp.items()), timeout=60)


ALL_UP = {"P": ("primary", "up"), "S1": ("standby", "up"), "S2": ("standby", "up")}


def pooler(name, **settings):
    return Pooler(name, dbs={
        "rw": HOSTS + " user=postgres target_session_attrs=read-write",
        "app": HOSTS + " read_only_routing=on load_balance_hosts=random",
        "ro": HOSTS + " user=postgres target_session_attrs=standby load_balance_hosts=random",
        "lag": HOSTS + " user=postgres read_only_routing=on load_balance_hosts=random max_replica_lag=64kB",
        "causal": HOSTS + " user=postgres read_only_routing=on load_balance_hosts=random causal_reads=session",
        "causal_user": HOSTS + " user=postgres read_only_routing=on load_balance_hosts=random causal_reads=user",
        "nocausal": HOSTS + " user=postgres read_only_routing=on load_balance_hosts=random",
    }, admin_users="postgres", **settings)


def test_roles():
    if not available("host roles"):
        return
    ok(prepare(), "both standbys replay the primary")
    mport = free_port()
    p = pooler("replica_roles", metrics_port=mport)
    ok(seen(p, "rw", ALL_UP), "SHOW DATABASES: one row per host, roles primary/standby/standby, all up",
       hosts(p, "rw"))
    rows = [r for r in console(p, "SHOW DATABASES") if r["name"] == "rw"]
    ok(all(r["target_session_attrs"] == "read-write" and r["load_balance_hosts"] == "disable" for r in rows)
       and all(r["replay_lag_bytes"] is not None and int(r["replay_lag_bytes"]) >= 0 for r in rows),
       "SHOW DATABASES: target_session_attrs, load_balance_hosts and a replay lag for every host", rows)
    c = via(p, "rw")
    ok(where(c) == (False, int(PORTS["P"])), "read-write database: served by the primary")
    c2 = via(p, "ro")
    r = where(c2)
    ok(r[0] is True and r[1] in (int(PORTS["S1"]), int(PORTS["S2"])),
       "target_session_attrs = standby: served by a standby", r)
    c.close()
    c2.close()
    srv = {(r["database"], r["port"]): r["role"] for r in console(p, "SHOW SERVERS")}
    ok(srv.get(("rw", int(PORTS["P"]))) == "primary" and
       any(role == "standby" for (db, _), role in srv.items() if db == "ro"),
       "SHOW SERVERS: each server connection with its host's role", srv)
    m = metrics(mport)
    key = 'perfopt_pooler_%s{database="rw",host="127.0.0.1:%s"}'
    ok(m.get(key % ("host_up", PORTS["P"])) == 1 and m.get(key % ("host_standby", PORTS["P"])) == 0 and
       m.get(key % ("host_standby", PORTS["S1"])) == 1 and m.get(key % ("host_standby", PORTS["S2"])) == 1 and
       m.get(key % ("host_replay_lag_bytes", PORTS["S1"])) is not None,
       "metrics: host_up, host_standby and host_replay_lag_bytes per host",
       {k: v for k, v in m.items() if "host_" in k})


def test_read_routing():
    if not available("read-only routing"):
        return
    prepare()
    p = pooler("replica_routing")
    c = via(p, "app")			# no user= on the line: the first login is the health check's
    ok(seen(p, "app", ALL_UP), "all three hosts up")
    forms = ["BEGIN READ ONLY", "START TRANSACTION READ ONLY", "begin transaction isolation level repeatable read, read only",
             "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY NOT DEFERRABLE;"]
    ro = [where(c, forms[i % len(forms)]) for i in range(80)]
    ports = {r[1] for r in ro}
    ok(all(r[0] is True for r in ro), "every read-only transaction (4 spellings) ran on a standby", ro[:8])
    ok(ports == {int(PORTS["S1"]), int(PORTS["S2"])}, "load_balance_hosts = random: both standbys served some",
       sorted(ports))
    writes = []
    for i in range(5):
        writes.append(run(c, "BEGIN", "INSERT INTO rt VALUES (%d, 'w') RETURNING inet_server_port()" % i))
        run(c, "COMMIT")
    ok(all(w == (int(PORTS["P"]),) for w in writes), "a plain BEGIN's transaction ran on the primary", writes)
    ok(where(c) == (False, int(PORTS["P"])), "an autocommit statement goes to the primary")
    ok(where(c, "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY") == (False, int(PORTS["P"])),
       "SERIALIZABLE READ ONLY goes to the primary (a hot standby refuses serializable)")
    run(c, "SET default_transaction_read_only = on")
    r = [where(c) for _ in range(4)] + [where(c, "BEGIN")]
    ok(all(x[0] is True for x in r), "after SET default_transaction_read_only = on: autocommit and BEGIN on a standby", r)
    ok(where(c, "BEGIN READ WRITE") == (False, int(PORTS["P"])), "but BEGIN READ WRITE on the primary")
    run(c, "RESET default_transaction_read_only")
    ok(where(c) == (False, int(PORTS["P"])), "after RESET: the primary again")
    c.close()
    c = via(p, "app", options="-c default_transaction_read_only=on")
    r = [where(c) for _ in range(4)]
    ok(all(x[0] is True for x in r), "default_transaction_read_only=on from the startup options: a standby", r)
    c.close()


def test_prepared_begin():
    """Drivers that prepare what they run often (psycopg 3 after 5 runs,
    pgJDBC, node-postgres named statements) send BEGIN READ ONLY as a
    named statement: its Parse once, then only Bind/Execute.  Routing
    reads the statement's text either way."""
    if not available("a BEGIN READ ONLY prepared as a named statement"):
        return
    import psycopg
    prepare()
    p = pooler("replica_prepared_begin")
    c = psycopg.connect(host=LOOP, port=p.port, user="postgres", dbname="app", autocommit=True)
    ok(seen(p, "app", ALL_UP), "all three hosts up")
    ro = []
    for i in range(12):
        c.execute("BEGIN READ ONLY", prepare=i > 0)
        ro.append(c.execute(WHERE).fetchone())
        c.execute("COMMIT")
    ok(all(r[0] is True for r in ro), "BEGIN READ ONLY as a named prepared statement (12 times): a standby every time",
       ro)
    rw = []
    for i in range(8):
        c.execute("BEGIN", prepare=True)
        rw.append(c.execute(WHERE).fetchone())
        c.execute("COMMIT")
    ok(all(r == (False, int(PORTS["P"])) for r in rw), "a prepared plain BEGIN: the primary every time", rw)
    auto = []
    for i in range(10):
        c.execute("BEGIN READ ONLY")
        auto.append(c.execute(WHERE).fetchone()[0])
        c.execute("COMMIT")
    ok(all(auto), "psycopg 3's own preparing after 5 runs changes nothing: a standby 10 times of 10", auto)
    c.close()


def test_pgbench_reads():
    if not available("pgbench -S through read_only_routing"):
        return
    r = subprocess.run(["pgbench", "-i", "-q", "-s", "1", "-h", LOOP, "-p", PORTS["P"], "-U", "postgres", "postgres"],
                       capture_output=True, text=True)
    ok(r.returncode == 0 and replayed_everywhere(), "pgbench -i on the primary, replayed", r.stderr[-300:])
    mport = free_port()
    p = pooler("replica_pgbench", metrics_port=mport)
    via(p, "app").close()
    ok(seen(p, "app", ALL_UP), "all three hosts up")
    env = dict(os.environ, PGOPTIONS="-c default_transaction_read_only=on")
    r = subprocess.run(["pgbench", "-S", "-n", "-c", "4", "-t", "200", "-h", LOOP, "-p", str(p.port), "-U", "postgres",
                        "app"], capture_output=True, text=True, env=env, timeout=120)
    ok(r.returncode == 0 and "number of failed transactions: 0" in r.stdout,
       "pgbench -S, 4 clients x 200, default_transaction_read_only=on: no failure", (r.stdout[-400:], r.stderr[-400:]))
    m = metrics(mport)
    served = {n: m.get('perfopt_pooler_transactions_total{database="app",user="postgres",host="127.0.0.1:%s"}'
                       % PORTS[n], 0) for n in ("P", "S1", "S2")}
    ok(served["P"] == 0 and served["S1"] > 0 and served["S2"] > 0 and served["S1"] + served["S2"] >= 800,
       "the pooler's per-host transactions: the primary served none, both standbys some (%d / %d)"
       % (served["S1"], served["S2"]), served)


def test_write_in_read_only():
    if not available("a write inside BEGIN READ ONLY"):
        return
    prepare()
    p = pooler("replica_ro_write")
    c = via(p, "app")
    ok(seen(p, "app", ALL_UP), "all three hosts up")
    code, on_standby = None, None
    try:
        with c.cursor() as cur:
            cur.execute("BEGIN READ ONLY")
            cur.execute("SELECT pg_is_in_recovery()")
            on_standby = cur.fetchone()[0]
            cur.execute("INSERT INTO rt VALUES (0, 'no')")
    except psycopg2.Error as e:
        code = e.pgcode
    ok(on_standby is True and code == "25006", "INSERT inside BEGIN READ ONLY: on a standby, 25006",
       (on_standby, code))
    run(c, "ROLLBACK")
    ok(where(c) == (False, int(PORTS["P"])), "the session goes on, on the primary")
    c.close()


def lag_of(p, db, node):
    r = [r for r in console(p, "SHOW DATABASES") if r["name"] == db and r["port"] == int(PORTS[node])]
    return r[0]["replay_lag_bytes"] if r else None


def test_max_replica_lag():
    if not available("max_replica_lag"):
        return
    prepare()
    p = pooler("replica_lag")
    c = via(p, "lag")
    ok(seen(p, "lag", ALL_UP), "all three hosts up")
    s2 = direct_to("S2")
    run(s2, "SELECT pg_wal_replay_pause()")
    d = direct_to("P")
    run(d, "INSERT INTO rt SELECT 1000 + g, repeat('x', 1000) FROM generate_series(1, 1000) g")
    ok(wait_for(lambda: (lag_of(p, "lag", "S2") or 0) > 65536 and lag_of(p, "lag", "S1") is not None and
                lag_of(p, "lag", "S1") <= 65536, timeout=60),
       "SHOW DATABASES: standby 2 (replay paused) lags beyond 64kB, standby 1 does not",
       (lag_of(p, "lag", "S1"), lag_of(p, "lag", "S2")))
    r = [where(c, "BEGIN READ ONLY") for _ in range(40)]
    ok(all(x == (True, int(PORTS["S1"])) for x in r), "max_replica_lag = 64kB: 40 reads all on standby 1", r[:5])
    run(s2, "SELECT pg_wal_replay_resume()")
    ok(wait_for(lambda: (lag_of(p, "lag", "S2") or 0) <= 65536 and lag_of(p, "lag", "S2") is not None, timeout=60),
       "standby 2 caught up (within 64kB)", lag_of(p, "lag", "S2"))
    ok(wait_for(lambda: where(c, "BEGIN READ ONLY")[1] == int(PORTS["S2"]), timeout=60, step=0.01),
       "reads reach standby 2 again")
    run(d, "DELETE FROM rt WHERE id > 1000")
    for x in (c, s2, d):
        x.close()


def commit_lsn_reported():
    """Does the primary's perfopt report each commit's WAL end (perfopt.commit_lsn)?"""
    d = direct_to("P")
    try:
        return run(d, "SELECT current_setting('perfopt.commit_lsn', true) IS NOT NULL")[0]
    finally:
        d.close()


def write_then_read(writer, reader, rounds, base):
    """rounds of: writer commits row base+i, then reader's read-only transaction looks for it.
    (stale reads, reads a standby served)"""
    stale = on_standby = 0
    t0 = time.time()
    for i in range(rounds):
        run(writer, "INSERT INTO rt VALUES (%d, 'c')" % (base + i))
        n, standby = run(reader, "BEGIN READ ONLY",
                         "SELECT count(*), pg_is_in_recovery() FROM rt WHERE id = %d" % (base + i))
        run(reader, "COMMIT")
        stale += n == 0
        on_standby += standby
    print("# %d write-then-read rounds: %.2f ms each (a figure, not a verdict)" %
          (rounds, (time.time() - t0) * 1000 / rounds), flush=True)
    return stale, on_standby


def test_causal_reads():
    if not available("causal_reads"):
        return
    prepare()
    p = pooler("replica_causal")
    c = via(p, "causal")
    ok(seen(p, "causal", ALL_UP), "all three hosts up")
    ok({r["causal_reads"] for r in console(p, "SHOW DATABASES") if r["name"] == "causal"} == {"session"},
       "SHOW DATABASES: causal_reads session")
    if not commit_lsn_reported():
        r = [where(c, "BEGIN READ ONLY") for _ in range(10)]
        ok(all(x == (False, int(PORTS["P"])) for x in r),
           "causal_reads without perfopt.commit_lsn on the primary: read-only transactions stay on the primary", r)
        ok(wait_for(lambda: "reports no commit positions" in p.log_text()), "and the log says why, once",
           p.log_text()[-500:])
        skip("read-your-writes on standbys over 2000 rounds", "the primary's perfopt reports no perfopt.commit_lsn")
        return
    w = via(p, "causal")
    stale, standby = write_then_read(w, w, 2000, 100000)
    ok(stale == 0, "causal_reads = session: 2000 write-then-read rounds, 0 stale reads", stale)
    if standby:
        ok(True, "%d of those reads served by a standby" % standby)
    else:
        skip("causal reads served by a standby", "every read went to the primary after causal_read_timeout")
    u1, u2 = via(p, "causal_user"), via(p, "causal_user")
    stale, standby = write_then_read(u1, u2, 300, 200000)
    ok(stale == 0, "causal_reads = user: another client of the user reads what the first committed, 0 stale", stale)
    n1, n2 = via(p, "nocausal"), via(p, "nocausal")
    stale, standby = write_then_read(n1, n2, 300, 300000)
    if stale:
        ok(True, "mutation: with causal_reads off, %d of 300 reads were stale" % stale)
    else:
        skip("stale reads without causal_reads", "replay was never behind a read in 300 rounds")
    run(w, "DELETE FROM rt WHERE id >= 100000")
    for x in (c, w, u1, u2, n1, n2):
        x.close()


def open_on(p, db, node, begin, tries=200):
    """A raw protocol session with a transaction open on node (random balancing: again until it is)."""
    s = session(p.port, "postgres", db)
    for _ in range(tries):
        simple_query(s, begin)
        r = simple_query(s, "SELECT inet_server_port()")
        if [b for t, b in r if t == "D"] and [b for t, b in r if t == "D"][0].endswith(PORTS[node].encode()):
            return s
        simple_query(s, "COMMIT")
    return None


def error_codes_until_close(s):
    """The SQLSTATEs of the ErrorResponses the pooler sends before it closes s (nothing sent to it)."""
    codes = []
    s.settimeout(30)
    while True:
        t, body = read_msg(s)
        if t is None:
            return codes
        if t == b"E":
            codes.append(sqlstate_of(body))


def test_standby_stop():
    if not available("a standby stopped and started"):
        return
    p = pooler("replica_stop")
    idle = via(p, "app")
    ok(seen(p, "app", ALL_UP), "all three hosts up")
    ok(where(idle, "BEGIN READ ONLY")[0] is True, "an idle client did a read before the stop")
    inflight = open_on(p, "app", "S1", "BEGIN READ ONLY")
    ok(inflight is not None, "a read-only transaction open on standby 1")
    r = pg_ctl("S1", "-w", "-t", "60", "-m", "fast", "stop")
    ok(r.returncode == 0, "standby 1 stopped", r.stderr)
    codes = error_codes_until_close(inflight)
    ok(codes and codes[0] == "57P01" and codes[-1] == "08006",
       "the transaction in flight there: PostgreSQL's 57P01, then the pooler's 08006, then closed", codes)
    ok(seen(p, "app", {"S1": ("standby", "down"), "S2": ("standby", "up")}),
       "SHOW DATABASES: standby 1 down", hosts(p, "app"))
    errors, ran = [], []
    for c in (idle, via(p, "app")):
        for i in range(30):
            try:
                ran.append(where(c, "BEGIN READ ONLY" if i % 2 else None) if i % 3 else
                           where(c, "START TRANSACTION READ ONLY"))
            except psycopg2.Error as e:
                errors.append(e.pgcode)
    ok(not errors and len(ran) == 60, "60 reads after the stop, none failed (the idle client's too)", errors)
    ok({x for x in ran if x[0]} and all(x[1] == int(PORTS["S2"]) for x in ran if x[0]),
       "read-only ones all on standby 2", sorted({x[1] for x in ran}))
    r = start("S1")
    ok(r.returncode == 0, "standby 1 started again", r.stderr)
    ok(seen(p, "app", ALL_UP), "SHOW DATABASES: standby 1 up again", hosts(p, "app"))
    ok(wait_for(lambda: where(idle, "BEGIN READ ONLY")[1] == int(PORTS["S1"]), timeout=60, step=0.01),
       "reads reach standby 1 again")
    idle.close()


def test_promotion():
    if not available("promotion"):
        return
    prepare()
    p = pooler("replica_promote", pool_timeout=60)
    ok(seen(p, "rw", ALL_UP), "all three hosts up")
    before = via(p, "rw")
    ok(run(before, "INSERT INTO rt VALUES (101, 'before') RETURNING inet_server_port()") == (int(PORTS["P"]),),
       "a write on the primary")
    inflight = open_on(p, "rw", "P", "BEGIN")
    simple_query(inflight, "INSERT INTO rt VALUES (102, 'in flight')")
    ok(replayed_everywhere(), "standbys caught up")
    r = pg_ctl("P", "-w", "-t", "60", "-m", "fast", "stop")
    ok(r.returncode == 0, "primary stopped", r.stderr)
    codes = error_codes_until_close(inflight)
    ok(codes and codes[0] == "57P01" and codes[-1] == "08006",
       "the transaction in flight on it: PostgreSQL's 57P01, then the pooler's 08006, then closed", codes)
    ok(seen(p, "rw", {"P": ("primary", "down")}), "SHOW DATABASES: the primary down", hosts(p, "rw"))
    result = {}

    def write():
        try:
            result["row"] = run(before, "INSERT INTO rt VALUES (103, 'after') RETURNING inet_server_port()")
        except psycopg2.Error as e:
            result["error"] = (e.pgcode, str(e))
    t = threading.Thread(target=write)
    t.start()
    ok(wait_for(lambda: console(p, "SHOW POOLS") and
                any(r["cl_waiting"] for r in console(p, "SHOW POOLS") if r["database"] == "rw"), timeout=60),
       "a write with no primary waits in the pooler (no error)")
    r = pg_ctl("S1", "-w", "-t", "60", "promote")
    ok(r.returncode == 0, "standby 1 promoted", r.stderr)
    t.join(90)
    ok(result.get("row") == (int(PORTS["S1"]),), "the waiting write reached the new primary, no pooler restart",
       result)
    ok(seen(p, "rw", {"S1": ("primary", "up")}), "SHOW DATABASES: standby 1 is the primary", hosts(p, "rw"))
    fresh = via(p, "rw")
    ok(run(fresh, "INSERT INTO rt VALUES (104, 'new client') RETURNING inet_server_port()") == (int(PORTS["S1"]),),
       "a new client writes there too")
    ids = run(before, "SELECT array_agg(id ORDER BY id) FROM rt WHERE id > 100")
    ok(ids == ([101, 103, 104],), "the writes before and after the promotion are there, the one in flight is not",
       ids)
    ok(p.alive(), "the same pooler process throughout")
    fresh.close()
    before.close()


def test_reload():
    if not available("RELOAD of a database's hosts"):
        return
    prepare()
    p = pooler("replica_reload")
    c = via(p, "rw")
    ok(seen(p, "rw", ALL_UP), "all three hosts up")
    edit_ini(p, dbs={"rw": "host=%s,%s port=%s,%s dbname=postgres user=postgres target_session_attrs=read-write"
                     % (LOOP, LOOP, PORTS["S2"], PORTS["P"])})
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD: two hosts now, the primary second")
    ok(seen(p, "rw", {"S2": ("standby", "up"), "P": ("primary", "up")}) and len(hosts(p, "rw")) == 2,
       "SHOW DATABASES: the two hosts, checked again", hosts(p, "rw"))
    ok(where(c) == (False, int(PORTS["P"])), "the connected client's writes still reach the primary")
    edit_ini(p, dbs={"rw": HOSTS + " user=postgres target_session_attrs=standby"})
    ok(console(p, "RELOAD") == "RELOAD", "RELOAD: target_session_attrs = standby")
    ok(seen(p, "rw", ALL_UP) and where(c)[0] is True, "the same client now on a standby", hosts(p, "rw"))
    c.close()


def test_config_errors():
    cases = [
        ("x = host=a,b port=1,2,3", "3 ports for 2 hosts"),
        ("x = host=127.0.0.1 target_session_attrs=writable", "target_session_attrs must be"),
        ("x = host=127.0.0.1 load_balance_hosts=round-robin", "load_balance_hosts must be"),
        ("x = host=127.0.0.1 max_replica_lag=lots", "max_replica_lag must be"),
        ("x = host=127.0.0.1 target_session_attrs=standby read_only_routing=on", "read_only_routing needs"),
        ("x = host=127.0.0.1,,127.0.0.1", "empty host name"),
    ]
    for i, (line, want) in enumerate(cases):
        path = os.path.join(TMP, "replica_bad%d.ini" % i)
        with open(path, "w") as f:
            f.write("[databases]\n%s\n[pooler]\nlisten_port = %d\n" % (line, free_port()))
        r = subprocess.run([BIN, "-c", path, "--check"], capture_output=True, text=True)
        ok(r.returncode != 0 and want in r.stderr, "refused: %s" % line, r.stderr.strip())
    path = os.path.join(TMP, "replica_good.ini")
    with open(path, "w") as f:
        f.write("[databases]\nx = host=127.0.0.1,/tmp port=5432 target_session_attrs=prefer-standby "
                "max_replica_lag=16MB\n[pooler]\nread_only_routing = on\nmax_replica_lag = 1GB\n"
                "health_check_period = 0.5\n")
    r = subprocess.run([BIN, "-c", path, "--check"], capture_output=True, text=True)
    ok(r.returncode == 0, "two hosts, one port for both, prefer-standby, 16MB lag: accepted "
       "(read_only_routing inherited from [pooler] stays off there)", r.stderr)


TESTS = [("replica_config", test_config_errors), ("replica_roles", test_roles),
         ("replica_routing", test_read_routing), ("replica_prepared_begin", test_prepared_begin),
         ("replica_pgbench", test_pgbench_reads), ("replica_ro_write", test_write_in_read_only),
         ("replica_lag", test_max_replica_lag), ("replica_causal", test_causal_reads),
         ("replica_reload", test_reload), ("replica_stop", test_standby_stop), ("replica_promote", test_promotion)]
