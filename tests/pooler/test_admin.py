"""tests/pooler/test_admin.py: the admin console (virtual database "perfopt").
Who may log in (admin_users, stats_users, 42501 for anyone else, auth_file
passwords as for any client), the protocol (simple queries only, errors that
keep the session), and every SHOW checked against what really happens: pool
gauges against pg_stat_activity and clients held in transactions or left
waiting, server rows against backend pids, counters against known traffic,
pool_recycle, a pre-ping that finds a dead connection, pool_timeout."""
import os
import re
import socket
import subprocess
import threading
import time

import psycopg2

from harness import (BIN, KillProxy, PG_HOST, PG_PORT, Pooler, TMP, admin, direct, err_code, ok, pool_row, psql, q1,
                     servers, show, stats_row, wait_for)
from wire import msg, raw_connect, raw_login, raw_query, read_msg, sqlstate_of, startup_packet, until_ready


def backend_pids(user="app", db="appdb"):
    c = direct()
    cur = c.cursor()
    cur.execute("select pid from pg_stat_activity where usename = %s and datname = %s "
                "and backend_type = 'client backend'", (user, db))
    pids = {r[0] for r in cur.fetchall()}
    c.close()
    return pids


def test_admin_access():
    p = Pooler("admin_access", auth="md5", admin_users="app", stats_users="md5user", pool_size=2)
    ok(raw_connect(p.port, "app", "perfopt", "app-secret") == "ok",
       "admin_users user logs in to the admin console with its auth_file password (md5)")
    code = raw_connect(p.port, "app", "perfopt", "wrong")
    ok(code == "28P01", "admin console, wrong password: 28P01 like any login", code)
    code = raw_connect(p.port, "scramonly", "perfopt", "scram-secret")
    ok(code == "42501", "authenticated user in neither admin_users nor stats_users: 42501", code)
    r = psql(p, "scramonly", "perfopt", "SHOW POOLS", password="scram-secret")
    ok(r.returncode != 0 and "permission denied" in r.stderr and "admin_users" in r.stderr,
       "psql shows why (permission denied, admin_users) and is disconnected", r.stderr)
    r = psql(p, "app", "perfopt", "SHOW POOLS", "show version", password="app-secret")
    ok(r.returncode == 0 and "cl_active" in r.stdout and "sv_idle" in r.stdout and "maxwait_us" in r.stdout
       and "perfopt-pooler" in r.stdout, "psql as admin client: SHOW POOLS with PgBouncer's columns, SHOW VERSION",
       r.stdout + r.stderr)
    s = admin(p, "md5user", "md5-secret")
    ok(len(show(s, "STATS")) >= 0 and show(s, "VERSION")[0]["version"].startswith("perfopt-pooler"),
       "stats_users user may SHOW")
    code, m = err_code(lambda: s.cursor().execute("RELOAD"))
    ok(code == "42501" and "admin_users" in m, "stats_users user: RELOAD refused with 42501", (code, m))
    code, _ = err_code(lambda: s.cursor().execute("PAUSE"))
    ok(code == "42501", "stats_users user: PAUSE refused with 42501", code)
    ok(show(s, "VERSION")[0]["version"].startswith("perfopt-pooler"), "session kept after the refusal")
    s.close()
    a = admin(p, "app", "app-secret")
    rows = show(a, "POOLS")
    ok(all(r["database"] != "perfopt" for r in rows), "the admin database never gets a pool", rows)
    ok(show(a, "SERVERS") == [], "admin logins opened no server connection", show(a, "SERVERS"))
    tot = {r["name"]: r["value"] for r in show(a, "TOTALS")}
    ok(tot["servers_opened"] == 0, "SHOW TOTALS: servers_opened 0 after admin logins only", tot)
    cl = [r for r in show(a, "CLIENTS") if r["database"] == "perfopt"]
    ok(len(cl) == 1 and cl[0]["user"] == "app", "SHOW CLIENTS lists the admin connection itself", cl)
    a.close()
    p.stop()
    bad = os.path.join(TMP, "admin_reserved.ini")
    with open(bad, "w") as f:
        f.write("[databases]\nappdb = host=/tmp\nperfopt = host=/tmp\n")
    r = subprocess.run([BIN, "-c", bad], capture_output=True, text=True)
    ok(r.returncode != 0 and ":3:" in r.stderr and "reserved" in r.stderr,
       "a [databases] entry named perfopt is refused (line 3, reserved)", r.stderr)


def raw_admin(port):
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.settimeout(10)
    s.sendall(startup_packet("postgres", "perfopt"))
    params = {}
    while True:
        t, body = read_msg(s)
        if t == b"S":
            k, v = body.split(b"\0")[:2]
            params[k.decode()] = v.decode()
        if t in (None, b"Z", b"E"):
            return s, t, params


def test_admin_protocol():
    p = Pooler("admin_proto", admin_users="postgres", pool_size=2)
    a = admin(p)
    for bad, code in (("show nonsense", "42601"), ("select 1", "42601"), ("SHOW POOLS; SHOW STATS", "42601"),
                      ("PAUSE a b c", "42601"), ("shutdown later", "42601")):
        got, m = err_code(lambda: a.cursor().execute(bad))
        ok(got == code, "%r: ErrorResponse %s" % (bad, code), (got, m))
    ok(show(a, "version")[0]["version"].startswith("perfopt-pooler"), "session kept after the errors")
    cur = a.cursor()
    cur.execute("  sHoW   pOoLs ;; ")
    ok([d.name for d in cur.description][:4] == ["database", "user", "cl_active", "cl_waiting"],
       "commands are case-insensitive, with whitespace and a trailing semicolon")
    cur.execute("show databases")
    ok(cur.statusmessage == "SHOW", "CommandComplete tag SHOW", cur.statusmessage)
    a.close()
    tx = psycopg2.connect(host="127.0.0.1", port=p.port, user="postgres", dbname="perfopt")
    code, m = err_code(lambda: tx.cursor().execute("SHOW POOLS"))
    ok(code == "42601" and "BEGIN" in m, "psycopg2 without autocommit sends BEGIN: refused, 42601", (code, m))
    tx.close()

    s, t, params = raw_admin(p.port)
    ok(t == b"Z" and params.get("client_encoding") == "UTF8" and "perfopt-pooler" in params.get("server_version", ""),
       "raw login: ParameterStatus (server_version, client_encoding) then ReadyForQuery", params)
    s.sendall(msg(b"P", b"\0SHOW POOLS\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0") + msg(b"E", b"\0\0\0\0\0")
              + msg(b"S"))
    got = until_ready(s)
    types = [g[0] for g in got]
    ok(types == ["E", "Z"] and sqlstate_of(got[0][1]) == "0A000",
       "extended protocol (Parse/Bind/Execute/Sync): one 0A000, then ReadyForQuery", types)
    s.sendall(msg(b"Q", b"SHOW VERSION\0"))
    got = until_ready(s)
    ok([g[0] for g in got] == ["T", "D", "C", "Z"] and b"perfopt-pooler" in got[1][1],
       "same session: simple query answered with RowDescription, DataRow, CommandComplete, ReadyForQuery",
       [g[0] for g in got])
    s.sendall(msg(b"Q", b"\0"))
    got = until_ready(s)
    ok([g[0] for g in got] == ["I", "Z"], "empty query: EmptyQueryResponse", [g[0] for g in got])
    s.sendall(msg(b"Q", b"RELOAD\0"))
    got = until_ready(s)
    ok([g[0] for g in got] == ["C", "Z"] and got[0][1] == b"RELOAD\0", "RELOAD: CommandComplete RELOAD", got)
    s.sendall(msg(b"X"))
    s.close()
    r = psql(p, "postgres", "perfopt", "show config")
    ok(r.returncode == 0 and "changeable" in r.stdout, "psql SHOW CONFIG", r.stderr)
    ok(p.alive(), "pooler alive")
    p.stop()


def test_show_pools():
    p = Pooler("admin_pools", admin_users="postgres", pool_size=1, max_overflow=1, pool_timeout=20,
               overflow_idle_timeout=0)
    a = admin(p)
    ca = p.connect(autocommit=False, application_name="alpha")
    cb = p.connect(autocommit=False, application_name="beta")
    pa = q1(ca, "select pg_backend_pid()")
    pb = q1(cb, "select pg_backend_pid()")
    row = pool_row(a)
    seen = servers()
    ok(row["sv_active"] == 2 and row["sv_idle"] == 0 and row["cl_active"] == 2 and row["cl_waiting"] == 0,
       "two clients in transactions: sv_active 2, cl_active 2", row)
    ok(row["sv_active"] + row["sv_idle"] == seen == 2, "SHOW POOLS server count = pg_stat_activity", (row, seen))
    ok(row["sv_overflow"] == 1, "pool_size 1 + max_overflow 1 both busy: sv_overflow (overflow in use) 1", row)
    srv = show(a, "SERVERS")
    ok({r["remote_pid"] for r in srv} == backend_pids() == {pa, pb},
       "SHOW SERVERS remote_pid = the backend pids PostgreSQL shows", (srv, backend_pids()))
    cli = {r["application_name"]: r for r in show(a, "CLIENTS") if r["database"] == "appdb"}
    by_ptr = {r["ptr"]: r for r in srv}
    ok(set(cli) == {"alpha", "beta"} and all(r["state"] == "active" for r in cli.values()),
       "SHOW CLIENTS: one row per client, state active, application_name", list(cli.values()))
    ok(by_ptr[cli["alpha"]["link"]]["remote_pid"] == pa and by_ptr[cli["beta"]["link"]]["remote_pid"] == pb
       and by_ptr[cli["alpha"]["link"]]["link"] == cli["alpha"]["ptr"],
       "client link -> server ptr whose remote_pid is that client's backend (and back)", (cli, srv))

    res = {}
    waits0 = pool_row(a)["waits"]
    wt0 = stats_row(a)["total_wait_time"]

    def waiter():
        c = p.connect()
        t0 = time.time()
        res["v"] = q1(c, "select 7")
        res["t"] = time.time() - t0
        c.close()
    th = threading.Thread(target=waiter)
    th.start()
    ok(wait_for(lambda: pool_row(a)["cl_waiting"] == 1), "third client waits: cl_waiting 1", pool_row(a))
    time.sleep(0.6)             # from here on the wait is at least 0.6 s long, however busy the machine
    row = pool_row(a)
    ok(row["maxwait"] * 1000000 + row["maxwait_us"] >= 500000, "maxwait/maxwait_us: the oldest wait (>= 0.5 s)",
       row)
    w = [r for r in show(a, "CLIENTS") if r["state"] == "waiting"]
    ok(len(w) == 1 and w[0]["link"] is None and w[0]["wait"] * 1000000 + w[0]["wait_us"] >= 500000,
       "SHOW CLIENTS: the waiting client, no link, wait >= 0.5 s", w)
    ok(servers() == 2, "PostgreSQL still sees 2 connections: the cap holds", servers())
    ca.commit()
    th.join(60)
    row = pool_row(a)
    ok(res.get("v") == 7 and row["waits"] == waits0 + 1, "after the release the waiter ran: waits + 1",
       (waits0, res, row))
    st = stats_row(a)
    # the pooler's wait lies inside the client's query, and lasted at least the 0.6 s slept above
    grown = st["total_wait_time"] - wt0
    ok(0.6e6 <= grown <= res["t"] * 1e6 + 1000,
       "SHOW STATS total_wait_time grew by the induced wait (%.2f s)" % (grown / 1e6), (wt0, st, res["t"]))
    ok(0.6e6 <= row["wait_p95_us"] <= st["max_wait_us"] and st["wait_p95_us"] == row["wait_p95_us"],
       "wait_p95_us covers the induced wait (of %d waits, p95 is the longest) and is at most max_wait_us"
       % row["waits"], (res["t"], row, st))
    cb.commit()
    ok(wait_for(lambda: pool_row(a)["sv_overflow"] == 0 and servers() == 1),
       "overflow connection closed at release: sv_overflow 0, PostgreSQL sees 1", (pool_row(a), servers()))
    row = pool_row(a)
    ok(row["sv_idle"] == 1 and row["sv_active"] == 0 and row["cl_active"] == 2,
       "idle clients count in cl_active (PgBouncer's meaning), the kept server is idle", row)

    s, hello = raw_login(p.port)
    port = s.getsockname()[1]
    mine = [r for r in show(a, "CLIENTS") if r["port"] == port]
    ok(len(mine) == 1 and mine[0]["addr"] == "127.0.0.1" and mine[0]["user"] == "postgres"
       and mine[0]["database"] == "postgres" and mine[0]["state"] == "idle" and mine[0]["local_port"] == p.port,
       "SHOW CLIENTS row of a raw client: its address and port, user, database, idle", mine)
    s.close()
    ok(wait_for(lambda: not [r for r in show(a, "CLIENTS") if r["port"] == port]),
       "its row goes when it disconnects")
    ca.close()
    cb.close()
    a.close()
    p.stop()


def test_show_counters():
    p = Pooler("admin_counters", admin_users="postgres", pool_size=1, max_overflow=0, pool_recycle=1,
               pool_timeout=1)
    a = admin(p)
    c = p.connect()
    q1(c, "select 1")
    before = stats_row(a)
    for i in range(10):
        q1(c, "select 1")
    after = stats_row(a)
    ok(after["total_query_count"] - before["total_query_count"] == 10
       and after["total_xact_count"] - before["total_xact_count"] == 10,
       "SHOW STATS: 10 autocommit queries = +10 queries, +10 transactions", (before, after))
    ok(after["total_received"] - before["total_received"] == 10 * len(b"Q\0\0\0\0select 1\0"),
       "total_received grew by exactly the 10 Query messages (140 bytes)",
       after["total_received"] - before["total_received"])
    ok(after["total_sent"] > before["total_sent"], "total_sent grew")
    c.autocommit = False
    q1(c, "select 1")
    q1(c, "select 2")
    c.commit()
    again = stats_row(a)
    ok(again["total_xact_count"] - after["total_xact_count"] == 1
       and again["total_query_count"] - after["total_query_count"] == 4,
       "one transaction (BEGIN, 2 selects, COMMIT): +1 transaction, +4 queries", (after, again))
    c.autocommit = True
    rec0 = pool_row(a)["recycled"]
    pid1 = q1(c, "select pg_backend_pid()")
    time.sleep(1.3)
    q1(c, "select 1")           # released (or found by the janitor) past pool_recycle
    pid2 = q1(c, "select pg_backend_pid()")
    ok(pid2 != pid1 and pool_row(a)["recycled"] == rec0 + 1 and stats_row(a)["recycled"] == rec0 + 1,
       "pool_recycle=1: connection replaced, SHOW POOLS/STATS recycled + 1", (pid1, pid2, rec0, pool_row(a)))
    holder = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    q1(holder, "select 1")
    code, m = raw_query(p.port, "select 2")
    ok(code == "53300" and stats_row(a, "postgres")["pool_timeouts"] == 1
       and pool_row(a, "postgres", "postgres")["cl_waiting"] == 0,
       "pool_timeout error (53300) counted: pool_timeouts 1", (code, m, stats_row(a, "postgres")))
    holder.close()
    c.close()
    tot = {r["name"]: r["value"] for r in show(a, "TOTALS")}
    ok(tot["total_query_count"] == stats_row(a)["total_query_count"] + stats_row(a, "postgres")["total_query_count"]
       and tot["servers_opened"] >= 3,
       "SHOW TOTALS adds the databases up", tot)
    a.close()
    p.stop()

    proxy = KillProxy()
    dbs = {"appdb": "host=127.0.0.1 port=%d dbname=appdb" % proxy.port}
    p = Pooler("admin_ping", dbs=dbs, admin_users="postgres", pool_size=2, max_overflow=0,
               pre_ping_interval=0)
    a = admin(p)
    c = p.connect()
    q1(c, "select 1")
    ok(pool_row(a)["pre_ping_failures"] == 0, "pre_ping_failures 0 at first")
    proxy.armed = True
    code, _ = err_code(lambda: q1(c, "select 2"))
    row = pool_row(a)
    ok(code == "none" and proxy.killed == 1 and row["pre_ping_failures"] == 1
       and stats_row(a)["pre_ping_failures"] == 1,
       "server connection dead at hand-out, found by the pre-ping: pre_ping_failures 1", (code, row))
    ok(re.search(r" LOG C-\d+ app@appdb 127\.0\.0\.1:\d+: pre-ping found S-\d+ app@appdb pid \d+ dead",
                 open(p.log).read()), "the log names the client and the dead server connection")
    c.close()
    a.close()
    p.stop()
    proxy.close()


def test_show_config():
    p = Pooler("admin_config", admin_users="postgres, admin", stats_users="app", pool_size=7, shutdown_timeout=12,
               pool_mode="session",
               dbs={"appdb": "host=%s port=%d dbname=appdb pool_size=3 max_overflow=1" % (PG_HOST, PG_PORT),
                    "other": "host=127.0.0.1 port=%d dbname=postgres user=postgres" % PG_PORT})
    a = admin(p)
    conf = {r["key"]: r for r in show(a, "CONFIG")}
    ok(conf["pool_size"]["value"] == "7" and conf["pool_size"]["default"] == "20"
       and conf["pool_size"]["changeable"] == "yes", "SHOW CONFIG: pool_size value, default, changeable",
       conf["pool_size"])
    ok(conf["listen_port"]["value"] == str(p.port) and conf["listen_port"]["changeable"] == "no"
       and conf["unix_socket_dir"]["changeable"] == "no" and conf["listen_addr"]["changeable"] == "no",
       "listen_addr/listen_port/unix_socket_dir: changeable no", conf["listen_port"])
    ok(conf["shutdown_timeout"]["value"] == "12" and conf["shutdown_timeout"]["default"] == "30",
       "shutdown_timeout shown", conf["shutdown_timeout"])
    ok(conf["pool_mode"]["value"] == "session" and conf["admin_users"]["value"] == "postgres, admin"
       and conf["stats_users"]["value"] == "app", "pool_mode, admin_users, stats_users shown", conf["admin_users"])
    ok(all(conf[k]["changeable"] == "no" for k in ("metrics_port", "metrics_addr", "client_tls_mode", "max_prepared_statements",
                                                     "client_tls_cert_file", "server_tls_mode", "server_tls_ca_file"))
       and conf["client_tls_mode"]["value"] == "disable" and conf["server_tls_mode"]["default"] == "disable"
       and conf["metrics_port"]["value"] == "0",
       "metrics and TLS settings shown, restart only", {k: conf.get(k) for k in ("metrics_port", "client_tls_mode")})
    dbs = {r["name"]: r for r in show(a, "DATABASES")}
    ok(dbs["appdb"]["pool_size"] == 3 and dbs["appdb"]["max_overflow"] == 1 and dbs["appdb"]["database"] == "appdb"
       and dbs["other"]["force_user"] == "postgres" and dbs["other"]["pool_size"] == 7
       and dbs["other"]["port"] == PG_PORT and dbs["appdb"]["pool_mode"] == "session",
       "SHOW DATABASES: per-database overrides and inherited values", dbs)
    a.close()
    p.stop()


TESTS = [("admin_access", test_admin_access), ("admin_protocol", test_admin_protocol),
         ("admin_show_pools", test_show_pools), ("admin_show_counters", test_show_counters),
         ("admin_show_config", test_show_config)]
