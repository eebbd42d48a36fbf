-- The index advisor on a captured workload: perfopt.index_recommendations,
-- perfopt.recommend_indexes, perfopt.findings, perfopt.unused_indexes,
-- perfopt.duplicate_indexes.  Small tables analyzed in full give exact
-- statistics, so the planner's costs, and the advice, are deterministic.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
CREATE SCHEMA advisor_rec;
SET search_path = advisor_rec, public;
SET perfopt.advisor_max_candidates = 1000;

CREATE TABLE orders (id int PRIMARY KEY, customer int, status text, amount int,
                     created timestamptz) WITH (autovacuum_enabled = off);
INSERT INTO orders
SELECT i, i % 200, CASE WHEN i % 100 = 0 THEN 'open' ELSE 'done' END, i % 1000,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 20000) i;
CREATE TABLE customers (id int PRIMARY KEY, region int, email text)
    WITH (autovacuum_enabled = off);
INSERT INTO customers SELECT i, i % 10, 'User' || i || '@Example.com'
  FROM generate_series(1, 20000) i;
CREATE TABLE items (id int PRIMARY KEY, sku int, flag bool)
    WITH (autovacuum_enabled = off);
INSERT INTO items SELECT i, i % 5000, i % 2 = 0 FROM generate_series(1, 20000) i;
CREATE INDEX items_sku_idx ON items (sku);
-- identical to orders in shape, but written to all the time
CREATE TABLE events (id int PRIMARY KEY, kind int, payload int)
    WITH (autovacuum_enabled = off);
INSERT INTO events SELECT i, i % 2000, 0 FROM generate_series(1, 20000) i;
-- updated all the time, with room on its pages: its updates are heap-only
-- (HOT) as long as no index holds the column they set
CREATE TABLE hot_t (id int PRIMARY KEY, k int, status int, note text)
    WITH (autovacuum_enabled = off, fillfactor = 50);
INSERT INTO hot_t SELECT i, i % 1000, i % 500, 'n' FROM generate_series(1, 5000) i;
ANALYZE orders, customers, items, events, hot_t;

-- the loads above are not the workload: the advisor counts a table's
-- writes from when it first captures a statement that scans it, with no
-- reset of the statistics (flushed here so that the loads are counted
-- before that, as a load done earlier would be)
SELECT pg_stat_force_next_flush();
SELECT perfopt.advisor_reset();

-- the workload, each statement with varying constants (its rows unshown)
\o /dev/null
SELECT format('SELECT * FROM orders WHERE customer = %s AND created > %L', i,
              timestamptz '2024-01-13 00:00:00+00' + i * interval '1 hour')
  FROM generate_series(1, 5) i \gexec
SELECT format('SELECT id, created FROM orders WHERE status = %L ORDER BY created DESC LIMIT %s',
              'open', i) FROM generate_series(5, 9) i \gexec
SELECT format('SELECT id FROM customers WHERE lower(email) = %L', 'user' || i || '@example.com')
  FROM generate_series(1, 3) i \gexec
SELECT format('SELECT count(*) FROM orders WHERE amount > %s', i) FROM generate_series(1, 3) i \gexec
SELECT format('SELECT * FROM items WHERE sku = %s', i) FROM generate_series(1, 3) i \gexec
SELECT format('SELECT * FROM events WHERE kind = %s', i) FROM generate_series(1, 3) i \gexec
UPDATE events SET payload = payload + 1;
UPDATE events SET payload = payload + 1;
UPDATE events SET payload = payload + 1;
UPDATE events SET payload = payload + 1;
UPDATE events SET payload = payload + 1;
SELECT format('SELECT * FROM hot_t WHERE k = %s', i) FROM generate_series(1, 5) i \gexec
SELECT format('SELECT * FROM hot_t WHERE status = %s', i) FROM generate_series(1, 5) i \gexec
SELECT format('UPDATE hot_t SET status = status + 1 WHERE id BETWEEN %s AND %s', i * 200 + 1, i * 200 + 200)
  FROM generate_series(0, 4) i \gexec
SELECT pg_stat_force_next_flush();
\o

-- what the advisor captured from the executed plans
SELECT predicates, full_scans FROM perfopt.advisor_workload
 WHERE example LIKE 'SELECT * FROM orders WHERE customer = %';

-- the recommendations: the equality column before the range column; the
-- ORDER BY ... LIMIT served by a small partial index; the expression; no
-- index for the low-selectivity filter on amount, none for items.sku (one
-- exists), none for events (its writes cost more than the reads gain)
SELECT table_name, columns, index_definition, queries,
       improvement_pct > 50 AS big_gain, estimated_size_bytes > 0 AS sized,
       cost_after < cost_before AS cheaper, write_overhead
  FROM perfopt.index_recommendations
 WHERE table_name LIKE 'advisor_rec.%'
 ORDER BY index_definition;

-- each statement it helps is one of the workload's
SELECT r.columns, q.calls
  FROM perfopt.index_recommendations r, unnest(r.queryids) id
  JOIN perfopt.query_stats q ON q.queryid = id
 WHERE r.table_name LIKE 'advisor_rec.%'
 ORDER BY r.index_definition;

-- the partial index is much smaller than a full one on the same key
SELECT estimated_size_bytes < 100000 AS small
  FROM perfopt.index_recommendations WHERE index_definition LIKE '%WHERE%';

-- events alone, without the weight of its writes, would get its index
SELECT index_definition FROM perfopt.recommend_indexes('SELECT * FROM events WHERE kind = 5');
SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'events'::regclass;

-- heap-only updates: 1000 updates set status and stayed HOT.  An index on k
-- keeps them HOT (no entry written: overhead 0); one on status ends that,
-- and each of them then writes an entry in every index of the table, which
-- costs more than the five reads on status gain
SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'hot_t'::regclass;
SELECT columns, write_overhead > 0 AS costs_writes
  FROM perfopt.index_recommendations
 WHERE table_name = 'advisor_rec.hot_t'
 ORDER BY index_definition;
-- (status's index is left out for that alone: by itself the statement on
-- status gains from it)
SELECT index_definition FROM perfopt.recommend_indexes('SELECT * FROM hot_t WHERE status = 5');

-- a reset of the statistics changes no advice: the writes the advisor
-- counted so far stay counted (events still gets no index)
SELECT pg_stat_reset();
SELECT pg_stat_get_tuples_updated('events'::regclass) AS events_updates_after_reset;
SELECT table_name, columns, write_overhead
  FROM perfopt.index_recommendations
 WHERE table_name LIKE 'advisor_rec.%'
 ORDER BY index_definition;

-- one statement at a time
SELECT index_definition FROM perfopt.recommend_indexes('SELECT * FROM items WHERE sku = 5');
-- ORDER BY ... LIMIT under an equality filter: the index leads with the
-- filtered column, never the sort column alone
SELECT index_definition
  FROM perfopt.recommend_indexes('SELECT id FROM orders WHERE customer = 7 ORDER BY created DESC LIMIT 5');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT count(*) FROM orders WHERE amount > 1');
SELECT index_definition, columns
  FROM perfopt.recommend_indexes('SELECT * FROM orders o JOIN customers c ON c.id = o.customer WHERE o.status = ''open'' AND o.amount = 7');

-- prefix searches: under a collation that does not sort bytewise (the
-- database's C.UTF-8) only a pattern operator class serves LIKE 'abc%' and
-- ^@; under "C" the default one does; lower(col) LIKE gets the expression
-- form; a pattern with no fixed prefix, and ILIKE, get nothing
CREATE TABLE people (id int PRIMARY KEY, name text, code text COLLATE "C",
                     tag varchar(20)) WITH (autovacuum_enabled = off);
INSERT INTO people SELECT i, 'Name' || i, 'C' || i, 'Tag' || i
  FROM generate_series(1, 20000) i;
ANALYZE people;
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM people WHERE name LIKE ''Name123%''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM people WHERE name ^@ ''Name123''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM people WHERE code LIKE ''C123%''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM people WHERE tag LIKE ''Tag123%''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM people WHERE lower(name) LIKE ''name123%''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM people WHERE name LIKE ''%123''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM people WHERE name ILIKE ''name123%''');

-- a minimum improvement of 100% accepts nothing; a budget of 8kB nothing
-- but the partial index
SET perfopt.advisor_min_improvement = 100;
SELECT count(*) FROM perfopt.index_recommendations WHERE table_name LIKE 'advisor_rec.%';
RESET perfopt.advisor_min_improvement;
SET perfopt.advisor_max_index_size = '16kB';
SELECT columns FROM perfopt.index_recommendations WHERE table_name LIKE 'advisor_rec.%';
RESET perfopt.advisor_max_index_size;
-- one candidate evaluated: still sound advice, just less of it
SET perfopt.advisor_max_candidates = 1;
SELECT count(*) <= 1 AS bounded FROM perfopt.index_recommendations;
RESET perfopt.advisor_max_candidates;

-- DDL since the capture: a dropped table's statements are skipped
CREATE TABLE doomed (id int, v int) WITH (autovacuum_enabled = off);
INSERT INTO doomed SELECT i, i FROM generate_series(1, 20000) i;
ANALYZE doomed;
SELECT * FROM doomed WHERE v = 5;
SELECT * FROM doomed WHERE v = 6;
SELECT count(*) > 0 AS doomed_advised FROM perfopt.index_recommendations
 WHERE table_name = 'advisor_rec.doomed';
DROP TABLE doomed;
SELECT count(*) AS doomed_advised FROM perfopt.index_recommendations
 WHERE table_name = 'advisor_rec.doomed';

-- findings: full scans of big tables, and an N+1 pattern
SET perfopt.advisor_big_table_rows = 10000;
\o /dev/null
BEGIN;
SELECT format('SELECT email FROM customers WHERE id = %s', i) FROM generate_series(1, 25) i \gexec
COMMIT;
\o
SELECT kind, query, relation, detail FROM perfopt.findings
 WHERE query LIKE '%orders%' OR query LIKE '%customers%'
 ORDER BY kind, query;

-- once the recommended index exists: no finding for that statement, and
-- the index is not recommended again
CREATE TABLE estimate AS
SELECT estimated_size_bytes FROM perfopt.index_recommendations
 WHERE table_name = 'advisor_rec.orders' AND columns = '{customer,created}';
CREATE INDEX orders_customer_created ON orders (customer, created);
-- the size estimated from the statistics is within 25% of the real one
SELECT e.estimated_size_bytes BETWEEN 0.75 * pg_relation_size('orders_customer_created')
                                  AND 1.25 * pg_relation_size('orders_customer_created') AS size_estimate_close
  FROM estimate e;
SELECT count(*) AS full_scans FROM perfopt.findings
 WHERE query LIKE 'SELECT * FROM orders WHERE customer%';
SELECT count(*) AS recommended_again FROM perfopt.index_recommendations
 WHERE table_name = 'advisor_rec.orders' AND 'customer' = ANY (columns);
DROP INDEX orders_customer_created;

-- unused and duplicate indexes
CREATE TABLE dup (a int, b int, c int PRIMARY KEY);
CREATE INDEX dup_a ON dup (a);
CREATE INDEX dup_a2 ON dup (a);
CREATE INDEX dup_ab ON dup (a, b);
CREATE INDEX dup_b_desc ON dup (b DESC);
CREATE INDEX dup_b ON dup (b);
CREATE UNIQUE INDEX dup_uc ON dup (c);
SELECT index_name, covered_by, kind FROM perfopt.duplicate_indexes
 WHERE table_name = 'dup' ORDER BY index_name, covered_by;
SELECT index_name, index_size_bytes FROM perfopt.unused_indexes
 WHERE table_name = 'dup' ORDER BY index_name;

SET client_min_messages = warning;
DROP SCHEMA advisor_rec CASCADE;
-- leave the database as the next file expects it: no extension, no statistics
SELECT perfopt.reset_stats();
SELECT perfopt.advisor_reset();
DROP EXTENSION perfopt;
