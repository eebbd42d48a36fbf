-- perfopt.query_stats: normalization, counting, planning time, percentiles
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
SET perfopt.track = 'top';
CREATE TABLE stats_t (id int PRIMARY KEY, name text, score int);
INSERT INTO stats_t SELECT g, 'user' || g, g % 100 FROM generate_series(1, 1000) g;
SELECT perfopt.reset_stats();

-- the same shape with different constants is one row, with $n placeholders
SELECT name FROM stats_t WHERE id = 1;
SELECT name FROM stats_t WHERE id = 2;
SELECT name FROM stats_t WHERE id = 3;
SELECT count(*) FROM stats_t WHERE score > 50 AND name <> 'nobody';
SELECT 'it''s', -5, 1.5e3, E'x\ny' AS quoted;
SELECT query, calls, rows FROM perfopt.query_stats
 WHERE query LIKE '%stats_t%' OR query LIKE '%quoted%' ORDER BY query COLLATE "C";

-- the counters add up and percentiles are ordered
SELECT calls = 3 AS calls_ok,
       min_exec_time <= p50_exec_time AND p50_exec_time <= p95_exec_time
       AND p95_exec_time <= p99_exec_time AND p99_exec_time <= max_exec_time AS percentiles_ordered,
       abs(mean_exec_time * calls - total_exec_time) < 1e-6 AS mean_ok,
       plans = 3 AND total_plan_time > 0 AS planning_tracked,
       shared_blks_hit > 0 AS buffers_counted,
       first_seen <= last_seen AS seen_ordered,
       datname = current_database() AND username = current_user AS who_ok
  FROM perfopt.query_stats WHERE query = 'SELECT name FROM stats_t WHERE id = $1';

-- a prepared statement: its own $1 stays, constants continue at $2
PREPARE by_score(int) AS SELECT count(*) FROM stats_t WHERE score = $1 AND id > 10;
EXECUTE by_score(5);
EXECUTE by_score(6);
SELECT query, calls FROM perfopt.query_stats WHERE query LIKE '%score = $1%';

-- statements inside functions follow perfopt.track
SET perfopt.track = 'all';
CREATE FUNCTION stats_nested() RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN RETURN (SELECT count(*) FROM stats_t WHERE score = 42); END $$;
SELECT stats_nested();
SELECT query, calls FROM perfopt.query_stats WHERE query LIKE '%(SELECT count(*) FROM stats_t WHERE score = $1)%';
SET perfopt.track = 'top';
SELECT stats_nested();
SELECT query, calls FROM perfopt.query_stats WHERE query LIKE '%(SELECT count(*) FROM stats_t WHERE score = $1)%';
SET perfopt.track = 'none';
SELECT name FROM stats_t WHERE id = 4;
SELECT calls FROM perfopt.query_stats WHERE query = 'SELECT name FROM stats_t WHERE id = $1';
RESET perfopt.track;

-- EXPLAIN without ANALYZE plans but does not execute: not counted
SET perfopt.track = 'all';
EXPLAIN (COSTS OFF) SELECT name FROM stats_t WHERE id = 99;
RESET perfopt.track;
SELECT calls FROM perfopt.query_stats WHERE query = 'SELECT name FROM stats_t WHERE id = $1';

-- a statement's text is cut at perfopt.max_query_length, visibly
SET perfopt.max_query_length = 256;
SELECT perfopt.reset_stats();
SELECT 1 AS long_one /* aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa */;
SELECT length(query) <= 256 AS clipped, query LIKE '%...[truncated]' AS marked
  FROM perfopt.query_stats WHERE query LIKE 'SELECT $1 AS long_one%';
RESET perfopt.max_query_length;

-- reset empties the view and is recorded
SELECT perfopt.reset_stats();
SELECT count(*) AS rows_after_reset FROM perfopt.query_stats WHERE query LIKE '%stats_t%';
SELECT evictions, stats_reset > now() - interval '1 minute' AS reset_recently FROM perfopt.stats_info;

-- settings: units, bounds, clear errors
SHOW perfopt.slow_query_threshold;
SHOW perfopt.max_query_length;
SET perfopt.slow_query_threshold = -2;
SET perfopt.track = 'sometimes';
SET perfopt.max_query_length = 10;
SET perfopt.max_statements = 10;
SELECT name, setting, unit, min_val, max_val, context FROM pg_settings
 WHERE name LIKE 'perfopt.%' AND name NOT LIKE 'perfopt.cache%' AND name NOT LIKE 'perfopt.advisor%'
 ORDER BY name;

-- an error in a nested statement, caught, or in a top-level one, leaves no
-- nesting raised: the top-level statements after it are still top level
SET perfopt.track = 'top';
SELECT perfopt.reset_stats();
CREATE FUNCTION stats_div(int) RETURNS int LANGUAGE plpgsql AS
$$ BEGIN RETURN 1 / $1; END $$;
CREATE FUNCTION stats_div_folded(int) RETURNS int IMMUTABLE LANGUAGE sql AS
$$ SELECT 1 / $1 $$;
CREATE FUNCTION stats_catches() RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN
     BEGIN   -- fails while executing
       PERFORM stats_div(0) FROM stats_t WHERE id = 1;
     EXCEPTION WHEN division_by_zero THEN NULL;
     END;
     BEGIN   -- fails while planning (constant folding)
       PERFORM stats_div_folded(0) FROM stats_t WHERE id = 1;
     EXCEPTION WHEN division_by_zero THEN NULL;
     END;
     RETURN (SELECT count(*) FROM stats_t WHERE score = 7);
   END $$;
SELECT stats_catches();
SELECT name FROM stats_t WHERE id = 4;
BEGIN;
SAVEPOINT s;
SELECT stats_div(0);
ROLLBACK TO s;
SELECT name FROM stats_t WHERE id = 5;
COMMIT;
SELECT stats_div(0);
SELECT stats_div_folded(0);
CREATE TABLE stats_trg (id int);
CREATE FUNCTION stats_trg_fails() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'refused'; END $$;
CREATE TRIGGER stats_trg_fails AFTER INSERT ON stats_trg
  FOR EACH ROW EXECUTE FUNCTION stats_trg_fails();
INSERT INTO stats_trg VALUES (1);   -- fails in ExecutorFinish
SELECT name FROM stats_t WHERE id = 6;
SELECT query, calls FROM perfopt.query_stats
 WHERE query LIKE '%stats_t WHERE%' OR query LIKE '%stats_catches%'
 ORDER BY query COLLATE "C";
RESET perfopt.track;
DROP TABLE stats_trg;
DROP FUNCTION stats_trg_fails();
DROP FUNCTION stats_catches();
DROP FUNCTION stats_div_folded(int);
DROP FUNCTION stats_div(int);

DROP FUNCTION stats_nested();
DROP TABLE stats_t;
