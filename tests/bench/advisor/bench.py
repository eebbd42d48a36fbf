#!/usr/bin/env python3
"""Quality benchmark of perfopt's index advisor (see ./run).

Every configuration runs the same statements with the same constants.  Cost
is the planner's total cost of each statement kind's first example, weighted
by the kind's frequency (deterministic); time is the measured execution time
of the whole workload from the client (noisy on a shared machine: read it
as a cross-check).
"""
import argparse
import json
import random
import re
import sys
import time

import psycopg2

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, country text NOT NULL,
    status text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE products (id int PRIMARY KEY, category_id int NOT NULL, price numeric NOT NULL,
    name text NOT NULL, active bool NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
    created_at timestamptz NOT NULL, total numeric NOT NULL);
CREATE TABLE order_items (id int PRIMARY KEY, order_id int NOT NULL, product_id int NOT NULL,
    qty int NOT NULL, price numeric NOT NULL);
CREATE TABLE reviews (id int PRIMARY KEY, product_id int NOT NULL, customer_id int NOT NULL,
    rating int NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO customers SELECT i, 'User' || i || '@Mail.example', chr(65 + i % 20) || 'X',
    CASE WHEN i % 10 = 0 THEN 'inactive' ELSE 'active' END,
    timestamptz '2020-01-01 00:00:00+00' + i * interval '5 minutes'
  FROM generate_series(1, 200000) i;
INSERT INTO products SELECT i, i % 200, (i * 37 % 10000) / 100.0, md5(i::text), i % 7 <> 0
  FROM generate_series(1, 20000) i;
INSERT INTO orders SELECT i, (i::bigint * 7919 % 200000) + 1,
    CASE WHEN i % 100 = 0 THEN 'pending' WHEN i % 3 = 0 THEN 'shipped' ELSE 'delivered' END,
    timestamptz '2021-01-01 00:00:00+00' + i * interval '1 minute', (i::bigint * 13 % 100000) / 100.0
  FROM generate_series(1, 1000000) i;
INSERT INTO order_items SELECT i, (i::bigint * 104729 % 1000000) + 1, (i::bigint * 31 % 20000) + 1, 1 + i % 5,
    (i * 7 % 10000) / 100.0
  FROM generate_series(1, 1000000) i;
INSERT INTO reviews SELECT i, (i * 17 % 20000) + 1, (i::bigint * 101 % 200000) + 1, 1 + i % 5,
    timestamptz '2022-01-01 00:00:00+00' + i * interval '2 minutes'
  FROM generate_series(1, 200000) i;
"""

TABLES = ["customers", "products", "orders", "order_items", "reviews"]


def kinds(rng):
    """(name, frequency, make_sql) per statement kind."""
    def ts(base, days):
        return "timestamptz '%s' + interval '%d hours'" % (base, rng.randrange(days * 24))
    return [
        ("customer_by_email", 30, lambda: "SELECT * FROM customers WHERE lower(email) = lower('User%d@Mail.example')" % rng.randrange(1, 200000)),
        ("orders_of_customer", 60, lambda: "SELECT * FROM orders WHERE customer_id = %d ORDER BY created_at DESC LIMIT 10" % rng.randrange(1, 200000)),
        ("items_of_order", 60, lambda: "SELECT * FROM order_items WHERE order_id = %d" % rng.randrange(1, 1000000)),
        ("oldest_pending", 20, lambda: "SELECT id, customer_id FROM orders WHERE status = 'pending' ORDER BY created_at LIMIT %d" % rng.randrange(10, 30)),
        ("category_by_price", 30, lambda: "SELECT id, name, price FROM products WHERE category_id = %d AND price < %d ORDER BY price LIMIT 20" % (rng.randrange(200), rng.randrange(20, 90))),
        ("product_rating", 30, lambda: "SELECT avg(rating) FROM reviews WHERE product_id = %d" % rng.randrange(1, 20000)),
        ("orders_of_a_day", 8, lambda: "SELECT count(*), sum(total) FROM orders WHERE created_at >= %s AND created_at < %s + interval '1 day'" % ((ts('2021-01-01', 600),) * 2)),
        ("active_in_country", 5, lambda: "SELECT count(*) FROM customers WHERE country = '%sX' AND status = 'active'" % chr(65 + rng.randrange(20))),
        ("top_products", 2, lambda: "SELECT product_id, sum(qty) FROM order_items GROUP BY product_id ORDER BY 2 DESC LIMIT 10"),
        ("revenue_by_status", 2, lambda: "SELECT status, sum(total) FROM orders GROUP BY status"),
        ("customer_items", 20, lambda: "SELECT p.name, oi.qty FROM orders o JOIN order_items oi ON oi.order_id = o.id JOIN products p ON p.id = oi.product_id WHERE o.customer_id = %d" % rng.randrange(1, 200000)),
        ("reviews_of_customer", 15, lambda: "SELECT * FROM reviews WHERE customer_id = %d ORDER BY created_at DESC LIMIT 5" % rng.randrange(1, 200000)),
        ("ship_order", 30, lambda: "UPDATE orders SET status = 'shipped' WHERE id = %d" % rng.randrange(1, 1000000)),
        ("new_order", 30, lambda: "INSERT INTO orders VALUES ((SELECT max(id) + 1 FROM orders), %d, 'pending', timestamptz '2023-01-01 00:00:00+00', %d)" % (rng.randrange(1, 200000), rng.randrange(1000))),
        ("product_name_prefix", 8, lambda: "SELECT id FROM products WHERE name LIKE '%s%%'" % ("%02x" % rng.randrange(256))),
        ("big_orders_in_country", 3, lambda: "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.country = '%sX' AND o.total > 900" % chr(65 + rng.randrange(20))),
        ("items_of_product", 15, lambda: "SELECT count(*), sum(qty) FROM order_items WHERE product_id = %d" % rng.randrange(1, 20000)),
        ("new_customers", 8, lambda: "SELECT id, email FROM customers WHERE created_at > %s ORDER BY created_at LIMIT 50" % ts('2020-01-01', 690)),
    ]


def build_workload(scale, seed=42):
    rng = random.Random(seed)
    stmts = []
    examples = {}
    freq = {}
    for name, f, make in kinds(rng):
        n = max(1, int(round(f * scale)))
        freq[name] = n
        for _ in range(n):
            sql = make()
            examples.setdefault(name, sql)
            stmts.append((name, sql))
    rng.shuffle(stmts)
    return stmts, examples, freq


def q(cur, sql, *args):
    cur.execute(sql, args or None)
    return cur.fetchall() if cur.description else None


def plan_cost(cur, sql):
    cur.execute("EXPLAIN (FORMAT JSON) " + sql)
    return cur.fetchone()[0][0]["Plan"]["Total Cost"]


def weighted_cost(cur, examples, freq):
    return sum(freq[k] * plan_cost(cur, sql) for k, sql in examples.items())


def run_workload(conn, stmts):
    cur = conn.cursor()
    start = time.perf_counter()
    for _, sql in stmts:
        cur.execute(sql)
        if cur.description:
            cur.fetchall()
    return time.perf_counter() - start


def flush_stats(conn):
    cur = conn.cursor()
    cur.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.2)


def perfopt_advice(cur):
    start = time.perf_counter()
    rows = q(cur, "SELECT index_definition FROM perfopt.index_recommendations")
    return [r[0] for r in rows], time.perf_counter() - start


def qualstats_advice(cur):
    start = time.perf_counter()
    res = q(cur, "SELECT pg_qualstats_index_advisor()")[0][0]
    if isinstance(res, str):
        res = json.loads(res)
    return list(res.get("indexes") or []), time.perf_counter() - start


def table_columns(cur):
    cols = {}
    for t, c in q(cur, """SELECT table_name, column_name FROM information_schema.columns
                          WHERE table_schema = 'public' AND table_name = ANY(%s)""", TABLES):
        cols.setdefault(t, []).append(c)
    return cols


def hypopg_advice(cur, examples, min_savings=0.5):
    """Dexter's method: per statement, try every column it mentions and every
    ordered pair as a hypothetical index; keep the cheapest plan's index if
    it saves at least half the cost."""
    start = time.perf_counter()
    cols = table_columns(cur)
    chosen = []
    for name, sql in examples.items():
        if not sql.startswith("SELECT"):
            continue
        words = set(re.findall(r"[a-z_]+", sql))
        cands = []
        for t in TABLES:
            if t not in words:
                continue
            used = [c for c in cols[t] if c in words and c != "id"]
            cands += ["CREATE INDEX ON %s (%s)" % (t, c) for c in used]
            cands += ["CREATE INDEX ON %s (%s, %s)" % (t, a, b) for a in used for b in used if a != b]
        q(cur, "SELECT hypopg_reset()")
        base = plan_cost(cur, sql)
        best, best_cost = None, base
        for c in cands:
            q(cur, "SELECT hypopg_reset()")
            q(cur, "SELECT * FROM hypopg_create_index(%s)", c)
            cost = plan_cost(cur, sql)
            if cost < best_cost:
                best, best_cost = c, cost
        q(cur, "SELECT hypopg_reset()")
        if best and best_cost <= base * (1 - min_savings) and best not in chosen:
            chosen.append(best)
    return chosen, time.perf_counter() - start


def apply_indexes(conn, defs):
    cur = conn.cursor()
    before = {r[0] for r in q(cur, "SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")}
    for d in defs:
        cur.execute(d.replace("CONCURRENTLY ", ""))
    cur.execute("ANALYZE")
    after = {r[0] for r in q(cur, "SELECT indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")}
    return sorted(after - before)


def drop_indexes(conn, names):
    cur = conn.cursor()
    for n in names:
        cur.execute("DROP INDEX %s" % n)


def measure(conn, label, stmts, examples, freq, defs):
    cur = conn.cursor()
    created = apply_indexes(conn, defs) if defs else []
    size = q(cur, "SELECT coalesce(sum(pg_relation_size(x::regclass)), 0) FROM unnest(%s::text[]) x", created)[0][0]
    q(cur, "SELECT pg_stat_reset()")
    cost = weighted_cost(cur, examples, freq)
    secs = run_workload(conn, stmts)
    flush_stats(conn)
    used = 0
    unused = []
    for n in created:
        scans = q(cur, "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = %s::regclass", n)[0][0]
        if scans > 0:
            used += 1
        else:
            unused.append(n)
    if created:
        drop_indexes(conn, created)
    return {"label": label, "count": len(created), "size": float(size), "cost": cost,
            "secs": secs, "used": used, "unused": unused}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host")
    ap.add_argument("--port")
    ap.add_argument("--dbname")
    ap.add_argument("--scale", type=float, default=1.0)
    a = ap.parse_args()
    conn = psycopg2.connect(host=a.host, port=a.port, dbname=a.dbname, user="postgres")
    conn.autocommit = True
    cur = conn.cursor()
    log = lambda m: print("advisor bench: " + m, file=sys.stderr, flush=True)

    log("loading (1M orders, 1M order items)")
    cur.execute("CREATE EXTENSION perfopt; CREATE EXTENSION pg_qualstats; CREATE EXTENSION hypopg;")
    cur.execute(SCHEMA)
    cur.execute("VACUUM ANALYZE")
    stmts, examples, freq = build_workload(a.scale)
    log("%d statements of %d kinds" % (len(stmts), len(examples)))

    # the loads are not the workload
    flush_stats(conn)
    q(cur, "SELECT pg_stat_reset(), perfopt.reset_stats(), perfopt.advisor_reset(), pg_qualstats_reset()")
    log("baseline run (primary keys only; captured by perfopt and pg_qualstats)")
    base = measure(conn, "primary keys only", stmts, examples, freq, [])

    advice = {}
    advice["perfopt"] = perfopt_advice(cur)
    for row in q(cur, """SELECT index_definition, cost_before - cost_after, improvement_pct,
                                  cardinality(queryids), write_overhead
                             FROM perfopt.index_recommendations"""):
        log("  perfopt: %s saves %.0f (%.1f%% of %d statements' cost; write overhead %.0f)" % tuple(row))
    advice["pg_qualstats"] = qualstats_advice(cur)
    advice["hypopg (per statement)"] = hypopg_advice(cur, examples)
    results = [base]
    for label, (defs, secs) in advice.items():
        log("%s advises %d indexes in %.1f s; re-running" % (label, len(defs), secs))
        for d in defs:
            log("  " + d)
        r = measure(conn, label, stmts, examples, freq, defs)
        r["advice_secs"] = secs
        results.append(r)

    print()
    print("%-24s %7s %9s %14s %8s %9s %8s %6s %9s" % (
        "configuration", "indexes", "size MB", "weighted cost", "vs base", "time s", "vs base", "used", "advice s"))
    for r in results:
        print("%-24s %7d %9.1f %14.0f %7.1f%% %9.2f %7.1f%% %6s %9s" % (
            r["label"], r["count"], r["size"] / 1048576.0, r["cost"],
            100.0 * (base["cost"] - r["cost"]) / base["cost"], r["secs"],
            100.0 * (base["secs"] - r["secs"]) / base["secs"],
            "%d/%d" % (r["used"], r["count"]),
            "%.2f" % r["advice_secs"] if "advice_secs" in r else "-"))
    print("(cost: planner cost of each kind's example times its frequency; time: the whole "
          "workload, %d statements, from the client)" % len(stmts))

    p = results[1]
    anchors = results[2:]
    best_anchor = min(anchors, key=lambda r: r["cost"])
    checks = [
        ("perfopt's weighted cost below every anchor's", all(p["cost"] < r["cost"] for r in anchors)),
        ("perfopt's time below every anchor's", all(p["secs"] < r["secs"] for r in anchors)),
        ("perfopt recommends no more indexes than the best anchor (%s, %d)" % (best_anchor["label"], best_anchor["count"]),
         p["count"] <= best_anchor["count"]),
        ("every index perfopt recommends is used by the workload", p["used"] == p["count"] and p["count"] > 0),
    ]
    print()
    for desc, ok in checks:
        print("%-4s %s" % ("ok" if ok else "MISS", desc))
    if p["unused"]:
        print("     unused: " + ", ".join(p["unused"]))
    sys.exit(0 if all(ok for _, ok in checks) else 3)


if __name__ == "__main__":
    main()
