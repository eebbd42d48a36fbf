#!/usr/bin/python3
"""perfopt.commit_lsn, as a client (a pooler) sees it: reported as a
ParameterStatus after each commit that wrote a commit record, when the
session asked with perfopt.report_commit_lsn = on; then a standby that has
replayed up to it shows the client's own write (tests/system/cache_standby.sh
drives it).

Usage: standby_commit_lsn.py PRIMARY_DSN STANDBY_DSN
Prints "ok - ..." / "not ok - ..." lines.
"""
import sys
import time

import psycopg

PRIMARY, STANDBY = sys.argv[1], sys.argv[2]
GUC = "perfopt.commit_lsn"


def report(ok, what):
    print(f"{'ok' if ok else 'not ok'} - {what}", flush=True)


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def lsn_le(conn, a, b):
    return scalar(conn, "SELECT %s::pg_lsn <= %s::pg_lsn", (a, b))


def replayed_sees(standby, lsn, key):
    """Wait until the standby has replayed lsn; is row key there then?"""
    for _ in range(3000):
        if scalar(standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)):
            return scalar(standby, "SELECT count(*) FROM lsn_t WHERE id = %s", (key,)) == 1
        time.sleep(0.02)
    return False


admin = psycopg.connect(PRIMARY, autocommit=True)
admin.execute("CREATE TABLE IF NOT EXISTS lsn_t (id int PRIMARY KEY)")
standby = psycopg.connect(STANDBY, autocommit=True)

c = psycopg.connect(PRIMARY, autocommit=True, options="-c perfopt.report_commit_lsn=on")
v0 = c.info.parameter_status(GUC)
report(v0 == b"" or v0 == "", f"{GUC} is reported empty at login (got {v0!r})")

c.execute("INSERT INTO lsn_t VALUES (1)")
v1 = c.info.parameter_status(GUC)
v1 = v1.decode() if isinstance(v1, bytes) else v1
cur = scalar(admin, "SELECT pg_current_wal_lsn()::text")
report(bool(v1) and lsn_le(admin, v1, cur),
       f"a committed INSERT reports its commit's end ({v1}), at or before pg_current_wal_lsn() ({cur})")
report(replayed_sees(standby, v1, 1), "a standby that replayed up to it shows the row")

c.execute("SELECT count(*) FROM lsn_t").fetchall()
with c.transaction():
    c.execute("SELECT 1").fetchall()
c.execute("SET application_name = 'x'")
v = c.info.parameter_status(GUC)
v = v.decode() if isinstance(v, bytes) else v
report(v == v1, f"read-only transactions and SET leave it unchanged ({v})")

try:
    with c.transaction(force_rollback=True):
        c.execute("INSERT INTO lsn_t VALUES (2)")
except psycopg.Error:
    pass
v = c.info.parameter_status(GUC)
v = v.decode() if isinstance(v, bytes) else v
report(v == v1, f"a rolled-back write leaves it unchanged ({v})")

with c.transaction():
    c.execute("INSERT INTO lsn_t VALUES (3)")
    c.execute("INSERT INTO lsn_t VALUES (4)")
v2 = c.info.parameter_status(GUC)
v2 = v2.decode() if isinstance(v2, bytes) else v2
report(bool(v2) and lsn_le(admin, v1, v2) and v2 != v1, f"the next committed write advances it ({v1} -> {v2})")
report(replayed_sees(standby, v2, 4), "a standby that replayed up to it shows that transaction's rows")

c.execute("BEGIN")
c.execute("INSERT INTO lsn_t VALUES (5)")
c.execute("PREPARE TRANSACTION 'lsn_2pc'")
v = c.info.parameter_status(GUC)
v = v.decode() if isinstance(v, bytes) else v
report(v == v2, f"PREPARE TRANSACTION commits nothing: unchanged ({v})")
c.execute("COMMIT PREPARED 'lsn_2pc'")
v3 = c.info.parameter_status(GUC)
v3 = v3.decode() if isinstance(v3, bytes) else v3
report(bool(v3) and v3 != v2 and lsn_le(admin, v2, v3), f"COMMIT PREPARED reports its commit ({v2} -> {v3})")
report(replayed_sees(standby, v3, 5), "a standby that replayed up to it shows the prepared transaction's row")

off = psycopg.connect(PRIMARY, autocommit=True)
off.execute("INSERT INTO lsn_t VALUES (6)")
v = off.info.parameter_status(GUC)
report(v in (b"", ""), f"with the report off, nothing is reported ({v!r})")
c.execute("SET perfopt.report_commit_lsn = off")
c.execute("INSERT INTO lsn_t VALUES (7)")
v = c.info.parameter_status(GUC)
v = v.decode() if isinstance(v, bytes) else v
report(v == v3, f"turned off in a session, it stays at its last value ({v})")
try:
    c.execute("SET perfopt.commit_lsn = '0/1'")
    report(False, "a client cannot set perfopt.commit_lsn")
except psycopg.errors.CantChangeRuntimeParam:
    report(True, "a client cannot set perfopt.commit_lsn")
