"""tests/pooler/test_live.py: live operations.  RELOAD and SIGHUP change
limits and databases under connected clients (none is dropped, a
transaction in progress finishes on its server, PostgreSQL's connection
count follows the new pool_size), a broken file keeps the running
configuration, auth_file changes apply to new logins; PAUSE waits for an
open transaction and holds new queries until RESUME; SIGINT lets running
transactions finish (up to shutdown_timeout), SIGTERM and SHUTDOWN stop at
once; log lines carry their level and client / server identifiers."""
import os
import re
import shutil
import signal
import threading
import time

from harness import (PG_HOST, PG_PORT, Pooler, TMP, USERLIST, admin, appdb_line, cmd, direct, edit_ini, err_code, ok,
                     peak_monitor, pool_row, psql, q1, refuses_connections, run_parallel, servers, show, wait_for)
from wire import raw_connect, raw_login, raw_query, read_msg, sqlstate_of


def others(user, db):
    """Backends of user@db other than the one asking."""
    c = direct()
    n = q1(c, "select count(*) from pg_stat_activity where usename = %s and datname = %s "
              "and backend_type = 'client backend' and pid <> pg_backend_pid()", (user, db))
    c.close()
    return n


def peak_during(fn, user="app", db="appdb"):
    peaks, stop = [], threading.Event()
    mon = threading.Thread(target=peak_monitor, args=(stop, peaks, user, db))
    mon.start()
    try:
        fn()
    finally:
        stop.set()
        mon.join()
    return max(peaks) if peaks else 0


def test_reload_limits():
    p = Pooler("live_limits", admin_users="postgres", pool_size=4, max_overflow=0, pool_timeout=20)
    a = admin(p)
    held = [p.connect(autocommit=False) for _ in range(4)]
    pids = [q1(c, "select pg_backend_pid()") for c in held]
    ok(servers() == 4, "pool_size 4: four clients in transactions hold four servers", servers())
    edit_ini(p, pool_size=2)
    ok(cmd(a, "RELOAD") == "RELOAD", "RELOAD answers RELOAD")
    ok({r["key"]: r["value"] for r in show(a, "CONFIG")}["pool_size"] == "2"
       and [r for r in show(a, "DATABASES") if r["name"] == "appdb"][0]["pool_size"] == 2,
       "SHOW CONFIG / SHOW DATABASES: pool_size 2 after RELOAD")
    ok(servers() == 4, "busy servers are not closed by the RELOAD", servers())
    same = [q1(c, "select pg_backend_pid()") for c in held]
    ok(same == pids, "every transaction in progress goes on, on its own server", (pids, same))
    for c in held:
        c.commit()
        c.autocommit = True
    ok(wait_for(lambda: servers() == 2), "as transactions end, servers over the new pool_size close: 2 left",
       servers())
    errs = []
    for c in held:
        code, msg = err_code(lambda: q1(c, "select 1"))
        if code != "none":
            errs.append(msg)
    ok(not errs, "no client was dropped by the RELOAD", errs)
    def burst(i):
        c = p.connect()
        q1(c, "select pg_sleep(0.2)::text")
        c.close()
    peak = peak_during(lambda: run_parallel(8, burst))
    ok(peak == 2, "the new pool_size is enforced: 8 concurrent clients, PostgreSQL sees at most 2", peak)

    # raised while clients wait: the waiter gets a new server without anyone releasing one
    held[0].autocommit = held[1].autocommit = False
    q1(held[0], "select 1")
    q1(held[1], "select 1")
    res = {}

    def waiter():
        c = p.connect()
        t0 = time.time()
        res["v"] = q1(c, "select 9")
        c.close()
    th = threading.Thread(target=waiter)
    th.start()
    ok(wait_for(lambda: pool_row(a)["cl_waiting"] == 1), "pool full: a third client waits")
    edit_ini(p, pool_size=3)
    os.kill(p.proc.pid, signal.SIGHUP)
    th.join(60)
    # nobody releases a server before this check: only the new pool_size can have served it
    ok(res.get("v") == 9, "SIGHUP raising pool_size to 3: the waiting client is served without a release", res)
    ok(servers() == 3, "PostgreSQL sees the third server", servers())
    for c in held:
        c.rollback()
        c.close()
    edit_ini(p, pool_size=1, max_overflow=0)
    cmd(a, "RELOAD")
    ok(wait_for(lambda: servers() == 1), "pool_size lowered to 1 with idle servers: the extras close at once",
       servers())
    a.close()
    p.stop()


def test_reload_databases():
    p = Pooler("live_dbs", admin_users="postgres", pool_size=2, verbose=1)
    a = admin(p)
    ok(raw_connect(p.port, "postgres", "appdb2") == "3D000", "before: appdb2 unknown (3D000)")
    edit_ini(p, dbs={"appdb2": appdb_line("pool_size=1")})
    cmd(a, "RELOAD")
    c2 = p.connect(db="appdb2")
    ok(q1(c2, "select current_database()") == "appdb", "database added by RELOAD: clients log in and run queries")
    ok(pool_row(a, "appdb2") is not None, "SHOW POOLS has its pool")
    edit_ini(p, dbs={"appdb3": appdb_line()})
    os.kill(p.proc.pid, signal.SIGHUP)
    ok(wait_for(lambda: raw_connect(p.port, "postgres", "appdb3") != "3D000"), "database added by SIGHUP")
    c3 = p.connect(db="appdb3")
    ok(q1(c3, "select 3") == 3, "SIGHUP-added database serves queries")
    c3.close()

    # removed: the connected client keeps working, new logins get 3D000
    c2.autocommit = False
    pid = q1(c2, "select pg_backend_pid()")
    edit_ini(p, drop_dbs=("appdb2",))
    cmd(a, "RELOAD")
    ok(q1(c2, "select pg_backend_pid()") == pid, "removed database: the transaction in progress goes on")
    c2.commit()
    code, msg = err_code(lambda: q1(c2, "select 22"))
    ok(code == "none", "removed database: its connected client keeps working", (code, msg))
    code = raw_connect(p.port, "postgres", "appdb2")
    ok(code == "3D000", "removed database: new logins get 3D000", code)
    ok(not [r for r in show(a, "DATABASES") if r["name"] == "appdb2"], "SHOW DATABASES no longer lists it")
    c2.close()
    ok(wait_for(lambda: pool_row(a, "appdb2") is None), "once its last client left, its pool is freed")
    ok(not [r for r in show(a, "SERVERS") if r["database"] == "appdb2"], "and its server connection closed")
    log = open(p.log).read()
    ok('database "appdb2" removed' in log and "WARNING" in log, "the removal is logged as a warning")

    # changed server: transaction finishes where it is, the next one goes to the new place
    c = p.connect(autocommit=False)
    ok(q1(c, "select current_database()") == "appdb", "appdb points at database appdb")
    edit_ini(p, dbs={"appdb": "host=%s port=%d dbname=postgres" % (PG_HOST, PG_PORT)})
    cmd(a, "RELOAD")
    ok(q1(c, "select current_database()") == "appdb", "dbname changed by RELOAD: the open transaction stays put")
    c.commit()
    ok(q1(c, "select current_database()") == "postgres",
       "the server was closed at release: the next transaction runs on the new dbname")
    c.rollback()
    c.close()
    a.close()
    p.stop()


def test_reload_errors():
    p = Pooler("live_errors", admin_users="postgres", pool_size=3, verbose=0)
    a = admin(p)
    c = p.connect()
    q1(c, "select 1")
    good = open(p.ini).read()
    edit_ini(p, pool_size=5, max_overflow="lots")
    lineno = [i + 1 for i, l in enumerate(open(p.ini).read().splitlines()) if l.startswith("max_overflow")][0]
    code, msg = err_code(lambda: cmd(a, "RELOAD"))
    ok(code == "F0000" and ("%s:%d:" % (p.ini, lineno)) in msg and "max_overflow" in msg and "lots" in msg,
       "broken file: RELOAD fails with F0000 naming file:line:key", (code, msg))
    conf = {r["key"]: r["value"] for r in show(a, "CONFIG")}
    ok(conf["pool_size"] == "3" and conf["max_overflow"] == "10", "the running configuration is kept", conf)
    ok(q1(c, "select 2") == 2, "clients unaffected")
    log = open(p.log).read()
    ok(re.search(r" ERROR .*:%d: key \"max_overflow\"" % lineno, log) and "configuration is kept" in log,
       "the error and the decision are in the log", log[-600:])
    os.kill(p.proc.pid, signal.SIGHUP)
    ok(wait_for(lambda: open(p.log).read().count('key "max_overflow"') == 2) and p.alive(),
       "SIGHUP with the broken file: logged, pooler alive")
    ok({r["key"]: r["value"] for r in show(a, "CONFIG")}["pool_size"] == "3", "still the old configuration")
    edit_ini(p, raw=good.replace("[databases]\n", "[databases]\nappdb = host=/x port=notaport\n", 1))
    code, msg = err_code(lambda: cmd(a, "RELOAD"))
    ok(code == "F0000" and "port" in msg, "a bad [databases] line: RELOAD fails too", msg)
    ok(raw_connect(p.port, "postgres", "postgres") == "ok", "logins still served by the old databases")

    bad_users = os.path.join(p.dir, "broken-userlist.txt")
    with open(bad_users, "w") as f:
        f.write('"app" "app-secret"\n"broken\n')
    edit_ini(p, raw=good + "auth_file = %s\n" % bad_users)
    code, msg = err_code(lambda: cmd(a, "RELOAD"))
    ok(code == "F0000" and "broken-userlist.txt:2" in msg, "broken auth_file: RELOAD fails, line named", msg)
    ok({r["key"]: r["value"] for r in show(a, "CONFIG")}["auth_file"] == USERLIST, "old auth_file kept")

    edit_ini(p, raw=good.replace("listen_port = %d" % p.port, "listen_port = %d" % (p.port + 1)) + "pool_size = 4\n")
    ok(cmd(a, "RELOAD") == "RELOAD", "a changed listen_port does not fail the RELOAD")
    conf = {r["key"]: r["value"] for r in show(a, "CONFIG")}
    ok(conf["listen_port"] == str(p.port) and conf["pool_size"] == "4",
       "listen_port keeps its running value (needs a restart); pool_size applied", conf)
    ok("listen_port changed to" in open(p.log).read() and "WARNING" in open(p.log).read(),
       "the listen_port change is logged as a warning")
    ok(q1(c, "select 3") == 3 and raw_connect(p.port, "postgres", "postgres") == "ok",
       "still listening where it was")
    c.close()
    a.close()
    p.stop()


def test_reload_auth_file():
    users = os.path.join(TMP, "live_userlist.txt")
    shutil.copy(USERLIST, users)
    p = Pooler("live_auth", auth="md5", auth_file=users, admin_users="app newbie", pool_size=2)
    a = admin(p, "app", "app-secret")
    md5 = p.connect(user="md5user", password="md5-secret")
    ok(q1(md5, "select current_user") == "md5user", "md5user logged in")
    text = open(users).read()
    with open(users, "w") as f:
        f.write(text.replace('"md5user"', '"md5user-gone"') + '"newbie" "newbie-secret"\n')
    cmd(a, "RELOAD")
    ok(raw_connect(p.port, "newbie", "perfopt", "newbie-secret") == "ok"
       and raw_connect(p.port, "newbie", "perfopt", "wrong") == "28P01",
       "user added to auth_file: authenticates after RELOAD (admin console login)")
    ok(raw_connect(p.port, "md5user", "appdb", "md5-secret") == "28P01", "user removed: new logins get 28P01")
    d = direct()
    # with a timeout, pg_terminate_backend returns once the backend has exited
    q1(d, "select count(pg_terminate_backend(pid, 60000)) from pg_stat_activity where usename = 'md5user'")
    d.close()
    code, msg = err_code(lambda: q1(md5, "select 5"))
    ok(code == "none", "the removed user's connected client keeps working, even on a new server connection "
       "(its pool keeps the credentials)", (code, msg))
    with open(users, "w") as f:
        f.write(text.replace('"app-secret"', '"app-new-secret"'))
    cmd(a, "RELOAD")
    ok(raw_connect(p.port, "app", "perfopt", "app-new-secret") == "ok"
       and raw_connect(p.port, "app", "perfopt", "app-secret") == "28P01",
       "changed password: the new one logs in, the old one gets 28P01")
    ok(raw_connect(p.port, "md5user", "appdb", "md5-secret") == "ok", "a user added back logs in again")
    ok(q1(md5, "select 6") == 6 and show(a, "VERSION"), "connected clients untouched throughout")
    md5.close()
    a.close()
    p.stop()


def test_pause():
    p = Pooler("live_pause", admin_users="postgres", pool_size=2, max_overflow=0, pool_timeout=1)
    a = admin(p)
    other = p.connect(user="postgres", password=None, db="postgres")
    q1(other, "select 1")
    t = p.connect(autocommit=False)
    q1(t, "select 1")
    res = {}

    def pause():
        b = admin(p)
        t0 = time.time()
        res["pause"] = cmd(b, "PAUSE appdb")
        res["pause_t"] = time.time() - t0
        res["admin"] = b
    th = threading.Thread(target=pause)
    th.start()
    ok(wait_for(lambda: pool_row(a)["paused"] == 1), "SHOW POOLS: paused 1")
    ok("pause" not in res, "PAUSE appdb waits while a transaction is open")

    def newq():
        c = p.connect()
        t0 = time.time()
        res["q"] = err_code(lambda: q1(c, "select 11"))
        res["q_t"] = time.time() - t0
        c.close()
    tq = threading.Thread(target=newq)
    tq.start()
    ok(wait_for(lambda: pool_row(a)["cl_waiting"] == 1), "a new query during the PAUSE is held (cl_waiting 1)")
    ok(q1(t, "select 2") == 2, "the open transaction goes on during the PAUSE")
    ok(q1(other, "select 3") == 3, "another database is not paused")
    t.commit()
    th.join(60)
    ok(res.get("pause") == "PAUSE", "PAUSE completes once the transaction ended", res)
    ok(wait_for(lambda: servers() == 0), "paused: its server connections are closed (PgBouncer's PAUSE)",
       servers())
    time.sleep(1.5)
    ok("q" not in res and pool_row(a)["cl_waiting"] == 1,
       "the held query waits past pool_timeout (1 s): no pool_timeout while paused")
    ok(cmd(a, "RESUME appdb") == "RESUME", "RESUME appdb")
    tq.join(60)
    ok(res.get("q") == ("none", "") and res["q_t"] > 1.5, "after RESUME the held query runs, without error",
       res.get("q"))
    ok(pool_row(a)["paused"] == 0 and servers() >= 1, "resumed: servers open again")
    code, msg = err_code(lambda: cmd(a, "PAUSE nosuchdb"))
    ok(code == "3D000" and "nosuchdb" in msg, "PAUSE of an unknown database: 3D000", (code, msg))
    code, msg = err_code(lambda: cmd(a, "RESUME"))
    ok(code == "55000", "RESUME when nothing is paused: error 55000", (code, msg))
    ok(cmd(a, "PAUSE") == "PAUSE", "PAUSE (everything) with no transaction open completes at once")
    code, msg = err_code(lambda: cmd(a, "PAUSE"))
    ok(code == "55000" and "already" in msg, "PAUSE twice: already paused", (code, msg))
    ok(all(r["paused"] == 1 for r in show(a, "DATABASES")), "SHOW DATABASES: every database paused")
    ok(all(r["current_connections"] == 0 for r in show(a, "DATABASES")) and not show(a, "SERVERS"),
       "PAUSE complete: the pooler holds no server connection at all", show(a, "SERVERS"))
    ok(wait_for(lambda: servers() == 0 and others("postgres", "postgres") == 0),
       "PostgreSQL sees none either", (servers(), others("postgres", "postgres")))
    cmd(a, "RESUME")
    ok(q1(other, "select 4") == 4, "RESUME: clients served again")
    t = p.connect(autocommit=False)
    q1(t, "select 1")
    th = threading.Thread(target=lambda: res.update(cancelled=err_code(lambda: cmd(admin(p), "PAUSE"))))
    th.start()
    ok(wait_for(lambda: pool_row(a)["paused"] == 1), "a second PAUSE waits for a transaction")
    cmd(a, "RESUME")
    th.join(60)
    ok(res.get("cancelled", ("",))[0] == "57014", "RESUME ends the waiting PAUSE with 57014", res.get("cancelled"))
    ok(q1(t, "select 5") == 5 and pool_row(a)["paused"] == 0, "the transaction never noticed")
    t.rollback()
    t.close()
    other.close()
    res["admin"].close()
    a.close()
    p.stop()


def test_sigint():
    d = direct("appdb")
    q1(d, "drop table if exists live_t; create table live_t (a int); alter table live_t owner to app; select 1")
    p = Pooler("live_sigint", pool_size=2, shutdown_timeout=10)
    t = p.connect(autocommit=False)
    q1(t, "insert into live_t values (1) returning a")
    idle, _ = raw_login(p.port)
    t0 = time.time()
    p.proc.send_signal(signal.SIGINT)
    ok(wait_for(lambda: refuses_connections(p.port)), "SIGINT: no new connections accepted")
    ok(p.alive(), "SIGINT with a transaction open: the pooler waits")
    idle.sendall(b"Q\0\0\0\x0dselect 1\0")
    t_, body = read_msg(idle)
    ok(t_ == b"E" and sqlstate_of(body) == "57P01" and b"shutting down" in body,
       "an idle client starting a new transaction gets 57P01", body)
    ok(q1(t, "insert into live_t values (2) returning a") == 2, "the running transaction goes on")
    time.sleep(0.5)
    ok(p.alive(), "still waiting for it")
    t.commit()
    rc = p.proc.wait(60)
    el = time.time() - t0
    ok(rc == 0, "exits 0 once the transaction committed", rc)
    ok(q1(d, "select count(*) from live_t") == 2, "the transaction's rows are committed")
    ok("graceful shutdown" in open(p.log).read(), "logged")
    t.close()
    idle.close()
    ok(wait_for(lambda: servers() == 0), "no server connection left behind", servers())

    p = Pooler("live_sigint_timeout", pool_size=2, shutdown_timeout=1)
    t = p.connect(autocommit=False)
    q1(t, "insert into live_t values (3) returning a")
    t0 = time.time()
    p.proc.send_signal(signal.SIGINT)
    rc = p.proc.wait(60)
    el = time.time() - t0
    ok(rc == 0 and el >= 0.9, "shutdown_timeout=1: exits 0 after the 1 s anyway", (rc, round(el, 2)))
    ok("shutdown_timeout" in open(p.log).read(), "the timeout is logged")
    ok(wait_for(lambda: q1(d, "select count(*) from live_t") == 2),
       "the unfinished transaction was rolled back")
    t.close()
    d.close()


def test_sigterm_shutdown():
    p = Pooler("live_sigterm", pool_size=2, shutdown_timeout=30)
    t = p.connect(autocommit=False)
    q1(t, "select 1")
    t0 = time.time()
    p.proc.send_signal(signal.SIGTERM)
    rc = p.proc.wait(60)
    # waiting for the transaction would take shutdown_timeout = 30 s
    ok(rc == 0 and time.time() - t0 < 15, "SIGTERM: immediate exit 0 despite an open transaction",
       (rc, time.time() - t0))
    code, _ = err_code(lambda: q1(t, "select 1"))
    ok(code != "none", "the client's connection is gone")
    ok(wait_for(lambda: servers() == 0), "server connections closed", servers())
    t.close()

    p = Pooler("live_shutdown", admin_users="postgres", pool_size=2)
    c = p.connect()
    q1(c, "select 1")
    r = psql(p, "postgres", "perfopt", "SHUTDOWN")
    ok(r.returncode == 0 and "SHUTDOWN" in r.stdout, "psql SHUTDOWN: answered", r.stdout + r.stderr)
    rc = p.proc.wait(60)
    ok(rc == 0, "SHUTDOWN: the pooler exits 0", rc)
    c.close()

    p = Pooler("live_shutdown_wait", admin_users="postgres", pool_size=2)
    t = p.connect(autocommit=False)
    q1(t, "select 1")
    a = admin(p)
    ok(cmd(a, "SHUTDOWN WAIT_FOR_SERVERS") == "SHUTDOWN", "SHUTDOWN WAIT_FOR_SERVERS answered")
    time.sleep(0.4)
    ok(p.alive(), "it waits for the open transaction")
    ok(q1(t, "select 5") == 5, "which goes on")
    t.commit()
    ok(p.proc.wait(60) == 0, "then exits 0")
    t.close()
    a.close()


LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (ERROR|WARNING|LOG|DEBUG) ")


def test_logs():
    p = Pooler("live_logs", admin_users="postgres", pool_size=1, max_overflow=0, pool_timeout=0.5, verbose=1)
    c = p.connect(application_name="logged")
    pid = q1(c, "select pg_backend_pid()")
    holder = p.connect(user="postgres", password=None, db="postgres", autocommit=False)
    q1(holder, "select 1")
    code, msg = raw_query(p.port, "select 1")
    holder.rollback()
    holder.close()
    c.close()
    a = admin(p)
    a.close()
    wait_for(lambda: re.search(r" LOG C-\d+ app@appdb 127\.0\.0\.1:\d+: disconnected", p.log_text()))
    p.stop()
    lines = open(p.log).read().splitlines()
    bad = [l for l in lines if not LINE.match(l)]
    ok(lines and not bad, "every log line starts with a timestamp and a level", bad[:3])
    ok(any(re.search(r" LOG C-\d+ app@appdb 127\.0\.0\.1:\d+: login$", l) for l in lines),
       "client login: C-<id> user@db addr:port", [l for l in lines if "login" in l][:3])
    ok(any(re.search(r" LOG S-\d+ app@appdb pid %d: server connection ready" % pid, l) for l in lines),
       "server connection: S-<id> user@db and the backend pid PostgreSQL gave", [l for l in lines if "S-" in l][:3])
    ok(any(re.search(r" LOG C-\d+ postgres@postgres 127\.0\.0\.1:\d+: pool_timeout after", l) for l in lines),
       "pool_timeout names the client", [l for l in lines if "pool_timeout" in l])
    ok(any(re.search(r" LOG C-\d+ postgres@perfopt 127\.0\.0\.1:\d+: admin console login", l) for l in lines),
       "admin console login logged with the client's id")
    ok(any(re.search(r" LOG C-\d+ app@appdb 127\.0\.0\.1:\d+: disconnected", l) for l in lines),
       "disconnections logged with the client's address", [l for l in lines if "disconnected" in l][:3])
    ok(any("SIGTERM" in l for l in lines), "the stop signal is logged")


TESTS = [("live_reload_limits", test_reload_limits), ("live_reload_databases", test_reload_databases),
         ("live_reload_errors", test_reload_errors), ("live_reload_auth", test_reload_auth_file),
         ("live_pause", test_pause), ("live_sigint", test_sigint), ("live_sigterm_shutdown", test_sigterm_shutdown),
         ("live_logs", test_logs)]
