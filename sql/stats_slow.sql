-- perfopt.slow_queries: capture with actual constants and plans
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
CREATE TABLE slow_t (id int PRIMARY KEY, grp int, payload text);
INSERT INTO slow_t SELECT g, g % 10, repeat('x', 20) FROM generate_series(1, 5000) g;
ANALYZE slow_t;
SELECT perfopt.reset_slow_queries();
SELECT perfopt.reset_stats();

-- default threshold (500 ms): a 0.6 s statement is captured with a plan,
-- a fast one is not
SHOW perfopt.slow_query_threshold;
SELECT pg_sleep(0.6);
SELECT count(*) FROM slow_t WHERE grp = 3;
SELECT query, duration >= 600 AS at_least_600ms, rows, plan LIKE 'Result%' AS has_plan,
       plan_json -> 'Plan' ->> 'Node Type' AS json_node,
       datname = current_database() AS datname_ok, username = current_user AS username_ok,
       application_name = 'pg_regress/stats_slow' AS appname_ok, params IS NULL AS no_params,
       captured_at > now() - interval '1 minute' AS recent
  FROM perfopt.slow_queries;

-- the query keeps its actual constants; the statistics row is normalized
SET perfopt.slow_query_threshold = 0;
SELECT count(*) FROM slow_t WHERE grp = 7 AND payload <> 'zzz';
RESET perfopt.slow_query_threshold;
SELECT query, rows, plan, shared_blks_hit + shared_blks_read > 0 AS buffers
  FROM perfopt.slow_queries WHERE query LIKE '%grp = 7%';
SELECT query FROM perfopt.query_stats WHERE query LIKE '%FROM slow_t WHERE grp = $1 AND%';

-- with slow_query_analyze, per-node actual rows like EXPLAIN ANALYZE
SET perfopt.slow_query_threshold = 0;
SET perfopt.slow_query_analyze = on;
SELECT count(*) FROM slow_t WHERE grp = 8;
RESET perfopt.slow_query_analyze;
RESET perfopt.slow_query_threshold;
SELECT plan LIKE '%actual time=%' AS has_actual_times, plan LIKE '%rows=500 loops=1%' AS has_actual_rows,
       (plan_json -> 'Plan' ->> 'Actual Rows')::int AS top_actual_rows
  FROM perfopt.slow_queries WHERE query LIKE '%grp = 8%';

-- -1 turns capture off
SET perfopt.slow_query_threshold = -1;
SELECT pg_sleep(0.01);
RESET perfopt.slow_query_threshold;
SELECT count(*) AS captured_when_off FROM perfopt.slow_queries WHERE query LIKE '%0.01%';

-- percentiles of a known latency mix: within 5% of the exact percentiles
-- of the same executions (threshold 0 records every duration exactly)
SELECT perfopt.reset_slow_queries();
SELECT perfopt.reset_stats();
SET perfopt.slow_query_threshold = 0;
SELECT format('SELECT pg_sleep(%s) /* mix */', CASE WHEN g <= 60 THEN 0.002 WHEN g <= 90 THEN 0.01 ELSE 0.03 END)
  FROM generate_series(1, 100) g
\o /dev/null
\gexec
\o
RESET perfopt.slow_query_threshold;
WITH exact AS (
  SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY duration) AS p50,
         percentile_disc(0.95) WITHIN GROUP (ORDER BY duration) AS p95,
         percentile_disc(0.99) WITHIN GROUP (ORDER BY duration) AS p99,
         count(*) AS n
    FROM perfopt.slow_queries WHERE query LIKE 'SELECT pg_sleep(%) /* mix */')
SELECT e.n, s.calls,
       abs(s.p50_exec_time - e.p50) / e.p50 <= 0.05 AS p50_within_5pct,
       abs(s.p95_exec_time - e.p95) / e.p95 <= 0.05 AS p95_within_5pct,
       abs(s.p99_exec_time - e.p99) / e.p99 <= 0.05 AS p99_within_5pct
  FROM exact e, perfopt.query_stats s WHERE s.query = 'SELECT pg_sleep($1) /* mix */';

DROP TABLE slow_t;
