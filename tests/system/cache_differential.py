#!/usr/bin/python3
"""Randomized differential test of the result cache.

Writers change two tables a and b and, in the same transaction, bump the
table's version (row k = 0) and append the table's full contents at that
version to hist_a / hist_b; some writers roll back, some only update a
column w that no statement reads (a's statements are cached by query
rules, so its trigger watches only k and v; b is cached by a table rule), and a
table c whose rows are in groups, each group with its own version, read by
a statement restricted to one group (keyed: a write invalidates only the
groups its rows were in, before and after).
Readers run cached statements that return the versions they saw next to
their answer.  Each answer is then checked two ways:

  consistency: the answer equals the statement computed (with the cache off)
               from the recorded contents at the versions it reports, i.e.
               exactly what the statement returns in that snapshot;
  freshness:   those versions lie between the versions committed just
               before the statement was sent and just after it returned,
               i.e. it is what running the statement at that moment returns.

Usage: cache_differential.py DSN READS  -> prints "reads=... hits=... mismatches=..."
"""
import random
import sys
import threading
import time

import psycopg2

DSN = sys.argv[1]
READS = int(sys.argv[2])
READERS = 4
WRITERS = 2
ROWS = 30
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 12345

# name -> (sql with %(m)s placeholders, evaluator over {'a': [(k,v)], 'b': [...]})
QUERIES = {
    "sum_a": ("SELECT max(v) FILTER (WHERE k = 0) AS va, NULL::bigint AS vb, "
              "sum(v) FILTER (WHERE k > 0) AS r FROM a",
              lambda st, m: sum(v for k, v in st["a"])),
    "mod_a": ("SELECT max(v) FILTER (WHERE k = 0) AS va, NULL::bigint AS vb, "
              "sum(v) FILTER (WHERE k > 0 AND k %% %(m)s = 0) AS r FROM a",
              lambda st, m: sum(v for k, v in st["a"] if k % m == 0) if any(k % m == 0 for k, v in st["a"]) else None),
    "cnt_b": ("SELECT NULL::bigint AS va, max(v) FILTER (WHERE k = 0) AS vb, "
              "count(*) FILTER (WHERE k > 0 AND v > %(m)s) AS r FROM b",
              lambda st, m: sum(1 for k, v in st["b"] if v > m)),
    "join": ("SELECT (SELECT v FROM a WHERE k = 0) AS va, (SELECT v FROM b WHERE k = 0) AS vb, "
             "(SELECT count(*) FROM a JOIN b USING (k) WHERE a.k > 0 AND a.v >= b.v - %(m)s) AS r",
             lambda st, m: sum(1 for k, v in st["a"] if k in dict(st["b"]) and v >= dict(st["b"])[k] - m)),
    # restricted to one key value of c (grp), so cached per group: a write
    # invalidates only the groups its rows were in; vb is the group's version
    "grp_c": ("SELECT NULL::bigint AS va, max(v) FILTER (WHERE k < 0) AS vb, "
              "sum(v) FILTER (WHERE k > 0) AS r FROM c WHERE grp = %(m)s",
              None),
}
GROUPS = 3
# the prepared (generic plan) variant of mod_a, run with EXECUTE
PREPARED = ("PREPARE pmod(int) AS SELECT max(v) FILTER (WHERE k = 0) AS va, NULL::bigint AS vb, "
            "sum(v) FILTER (WHERE k > 0 AND k % $1 = 0) AS r FROM a")

stop = threading.Event()
errors = []
results = []          # (name, m, va, vb, r, before, after, outcome)
lock = threading.Lock()


def connect(cache_on=True):
    c = psycopg2.connect(DSN)
    c.autocommit = True
    cur = c.cursor()
    cur.execute("SET plan_cache_mode = force_generic_plan")
    if not cache_on:
        cur.execute("SET perfopt.cache_mode = off")
    return c


def versions(cur):
    cur.execute("SELECT (SELECT v FROM a WHERE k = 0), (SELECT v FROM b WHERE k = 0), "
                "(SELECT array_agg(v ORDER BY k DESC) FROM c WHERE k < 0)")
    return cur.fetchone()


def write_c(cur, rnd):
    """One write to c; bumps the version of every group its rows were in."""
    k = rnd.randint(1, ROWS)
    g = rnd.randint(1, GROUPS)
    cur.execute("SELECT grp FROM c WHERE k = %s FOR UPDATE", (k,))
    row = cur.fetchone()
    touched = {g} | ({row[0]} if row else set())
    kind = rnd.random()
    if kind < 0.1:
        cur.execute("UPDATE c SET w = w + 1 WHERE k = %s", (k,))   # no answer changes
        return
    if kind < 0.5:
        cur.execute("UPDATE c SET v = v + %s WHERE k = %s", (rnd.randint(-5, 5), k))
        touched = {row[0]} if row else set()
    elif kind < 0.7:
        cur.execute("UPDATE c SET grp = %s WHERE k = %s", (g, k))       # a row moving
    elif kind < 0.85:
        cur.execute("DELETE FROM c WHERE k = %s", (k,))
    else:
        cur.execute("INSERT INTO c VALUES (%s, %s, %s) ON CONFLICT (k) DO UPDATE "
                    "SET grp = excluded.grp, v = excluded.v", (k, g, rnd.randint(0, 20)))
    for grp in sorted(touched):
        cur.execute("UPDATE c SET v = v + 1 WHERE k = %s RETURNING v", (-grp,))
        ver = cur.fetchone()[0]
        cur.execute("INSERT INTO hist_c SELECT %s, %s, array_agg(k ORDER BY k), array_agg(v ORDER BY k) "
                    "FROM c WHERE grp = %s AND k > 0", (grp, ver, grp))


def writer(wid):
    rnd = random.Random(SEED * 100 + wid)
    c = connect(cache_on=False)
    c.autocommit = False
    cur = c.cursor()
    while not stop.is_set():
        t = rnd.choice(["a", "b", "ab", "c"])
        try:
            if t == "c":
                write_c(cur, rnd)
            for tbl in t.replace("c", ""):
                kind = rnd.random()
                k = rnd.randint(1, ROWS)
                if kind < 0.15:
                    # a column no statement reads (a's trigger does not watch
                    # it): no answer changes, so no new version either
                    cur.execute(f"UPDATE {tbl} SET w = w + 1 WHERE k = %s", (k,))
                    continue
                if kind < 0.6:
                    cur.execute(f"UPDATE {tbl} SET v = v + %s WHERE k = %s", (rnd.randint(-5, 5), k))
                elif kind < 0.8:
                    cur.execute(f"DELETE FROM {tbl} WHERE k = %s", (k,))
                else:
                    cur.execute(f"INSERT INTO {tbl} VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                                (k, rnd.randint(0, 20)))
                cur.execute(f"UPDATE {tbl} SET v = v + 1 WHERE k = 0 RETURNING v")
                ver = cur.fetchone()[0]
                cur.execute(f"INSERT INTO hist_{tbl} SELECT %s, array_agg(k ORDER BY k), array_agg(v ORDER BY k) "
                            f"FROM {tbl} WHERE k > 0", (ver,))
            if rnd.random() < 0.15:
                c.rollback()
            else:
                c.commit()
        except psycopg2.errors.DeadlockDetected:
            c.rollback()
        except Exception as e:  # noqa: BLE001
            errors.append(f"writer: {e!r}")
            c.rollback()
        time.sleep(rnd.random() * 0.004)
    c.close()


def reader(rid, n):
    rnd = random.Random(SEED * 1000 + rid)
    c = connect()
    check = connect(cache_on=False)
    cur, ccur = c.cursor(), check.cursor()
    cur.execute(PREPARED)
    try:
        for _ in range(n):
            name = rnd.choice(list(QUERIES) + ["prepared"])
            m = rnd.randint(1, 3)
            before = versions(ccur)
            if name == "prepared":
                cur.execute("EXECUTE pmod(%s)", (m,))
            else:
                cur.execute(QUERIES[name][0], {"m": m})
            va, vb, r = cur.fetchone()
            cur.execute("SELECT perfopt.cache_last_outcome()")
            outcome = cur.fetchone()[0]
            after = versions(ccur)
            with lock:
                results.append(("mod_a" if name == "prepared" else name, m, va, vb, r, before, after, outcome, name))
    except Exception as e:  # noqa: BLE001
        errors.append(f"reader: {e!r}")
    c.close()
    check.close()


def main():
    setup = connect(cache_on=False)
    cur = setup.cursor()
    rnd = random.Random(SEED)
    for t in "ab":
        cur.execute(f"DROP TABLE IF EXISTS {t}, hist_{t}")
        cur.execute(f"CREATE TABLE {t} (k int PRIMARY KEY, v bigint NOT NULL, w int NOT NULL DEFAULT 0)")
        cur.execute(f"INSERT INTO {t} VALUES (0, 1)")
        cur.execute(f"INSERT INTO {t} SELECT g, %s FROM generate_series(1, {ROWS}) g", (rnd.randint(0, 20),))
        cur.execute(f"CREATE TABLE hist_{t} (ver bigint PRIMARY KEY, ks int[], vs bigint[])")
        cur.execute(f"INSERT INTO hist_{t} SELECT 1, array_agg(k ORDER BY k), array_agg(v ORDER BY k) FROM {t} WHERE k > 0")
    cur.execute("DROP TABLE IF EXISTS c, hist_c")
    cur.execute("CREATE TABLE c (k int PRIMARY KEY, grp int NOT NULL, v bigint NOT NULL, w int NOT NULL DEFAULT 0)")
    cur.execute(f"INSERT INTO c SELECT -g, g, 1 FROM generate_series(1, {GROUPS}) g")
    cur.execute(f"INSERT INTO c SELECT g, 1 + g %% {GROUPS}, %s FROM generate_series(1, {ROWS}) g", (rnd.randint(0, 20),))
    cur.execute("CREATE TABLE hist_c (grp int, ver bigint, ks int[], vs bigint[], PRIMARY KEY (grp, ver))")
    cur.execute("INSERT INTO hist_c SELECT grp, 1, array_agg(k ORDER BY k), array_agg(v ORDER BY k) "
                "FROM c WHERE k > 0 GROUP BY grp")
    cur.execute("SELECT perfopt.cache_query(%s)", (QUERIES["grp_c"][0] % {"m": 1},))
    cur.execute("SELECT encode(tgargs, 'escape') FROM pg_trigger WHERE tgrelid = 'c'::regclass "
                "AND tgname = 'perfopt_cache_keys'")
    if cur.fetchone() != ("2\\000",):
        errors.append("setup: c has no key trigger on grp")
    # b by a table rule (its trigger watches every column); a by query rules
    # for each statement shape, so its trigger watches only k and v
    cur.execute("SELECT perfopt.cache_table('b')")
    for name in ("sum_a", "mod_a", "join"):
        cur.execute("SELECT perfopt.cache_query(%s)", (QUERIES[name][0] % {"m": 1},))
    cur.execute("SELECT perfopt.cache_query(%s)", (PREPARED.split(" AS ", 1)[1],))
    cur.execute("SELECT ARRAY(SELECT attname FROM pg_attribute a JOIN pg_trigger t ON a.attrelid = t.tgrelid "
                "AND a.attnum = ANY (t.tgattr) WHERE t.tgrelid = 'a'::regclass "
                "AND t.tgname = 'perfopt_cache_invalidate' ORDER BY attnum)")
    watched = cur.fetchone()[0]
    if watched != ["k", "v"]:
        errors.append(f"setup: a's trigger watches {watched}, expected [k, v]")

    writers = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    readers = [threading.Thread(target=reader, args=(i, READS // READERS)) for i in range(READERS)]
    for t in writers + readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    for t in writers:
        t.join()

    hist = {}
    for t in "ab":
        cur.execute(f"SELECT ver, ks, vs FROM hist_{t}")
        hist[t] = {ver: list(zip(ks or [], vs or [])) for ver, ks, vs in cur.fetchall()}

    cur.execute("SELECT grp, ver, ks, vs FROM hist_c")
    hist_c = {(grp, ver): list(zip(ks or [], vs or [])) for grp, ver, ks, vs in cur.fetchall()}

    mismatches = 0
    hits = 0
    for name, m, va, vb, r, before, after, outcome, how in results:
        if outcome == "hit":
            hits += 1
        bad = None
        state = {}
        if name == "grp_c":
            lo, hi = before[2][m - 1], after[2][m - 1]
            rows = hist_c.get((m, vb))
            if not (lo <= vb <= hi):
                bad = f"stale group {m} of c: version {vb} not in [{lo}, {hi}]"
            elif rows is None:
                bad = f"version {vb} of group {m} of c was never committed"
            elif r != (sum(v for k, v in rows) if rows else None):
                bad = f"answer {r} != {sum(v for k, v in rows) if rows else None} at group {m} version {vb}"
            va = vb = None
        if va is not None:
            if not (before[0] <= va <= after[0]):
                bad = f"stale a: version {va} not in [{before[0]}, {after[0]}]"
            state["a"] = hist["a"].get(va)
            if state["a"] is None:
                bad = bad or f"version {va} of a was never committed"
        if vb is not None:
            if not (before[1] <= vb <= after[1]):
                bad = bad or f"stale b: version {vb} not in [{before[1]}, {after[1]}]"
            state["b"] = hist["b"].get(vb)
            if state["b"] is None:
                bad = bad or f"version {vb} of b was never committed"
        if bad is None and name != "grp_c":
            want = QUERIES[name][1](state, m)
            if want != r:
                bad = f"answer {r} != {want} at a={va} b={vb}"
        if bad:
            mismatches += 1
            if mismatches <= 10:
                print(f"MISMATCH {how} m={m} ({outcome}): {bad}")
    for e in errors[:10]:
        print("ERROR", e)
    print(f"reads={len(results)} hits={hits} mismatches={mismatches} errors={len(errors)} "
          f"versions_a={len(hist['a'])} versions_b={len(hist['b'])} versions_c={len(hist_c)}")


main()
