-- perfopt's hooks run in parallel workers too: a parallel query must work,
-- be counted once (by its leader) and never be cached, after DDL has moved
-- the cache's epoch (a fresh worker then has everything to load).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
CREATE TABLE par_t (id int, v int);
INSERT INTO par_t SELECT g, g % 7 FROM generate_series(1, 200000) g;
ANALYZE par_t;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
SELECT perfopt.reset_stats();
EXPLAIN (COSTS OFF) SELECT count(*) FROM par_t WHERE v = 3;
SELECT count(*) FROM par_t WHERE v = 3;
SELECT calls, rows FROM perfopt.query_stats WHERE query = 'SELECT count(*) FROM par_t WHERE v = $1';
-- with a cache rule on the table
SELECT perfopt.cache_table('par_t') IS NOT NULL AS rule_made;
SELECT count(*) FROM par_t WHERE v = 4;
SELECT count(*) FROM par_t WHERE v = 4;
SELECT perfopt.uncache_table('par_t');
RESET ALL;
DROP TABLE par_t;
