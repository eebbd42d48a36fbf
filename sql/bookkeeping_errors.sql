-- perfopt's bookkeeping (statistics, slow-query capture, the index
-- advisor's capture) never turns a user's statement into an error: a step
-- that fails is skipped, counted in perfopt.stats_info.bookkeeping_skipped
-- and logged once per session to the server log only.
-- perfopt.debug_fail_bookkeeping makes one step fail on purpose.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
-- nested statements (functions, CREATE TABLE AS) are recorded too
SET perfopt.track = 'all';
SET perfopt.slow_query_threshold = 0;

CREATE FUNCTION bke_skipped() RETURNS bigint LANGUAGE sql
    AS $$ SELECT bookkeeping_skipped FROM perfopt.stats_info $$;
CREATE TABLE bke (id int PRIMARY KEY, v text);
CREATE FUNCTION bke_count(lo int) RETURNS bigint LANGUAGE plpgsql
    AS $$ BEGIN RETURN (SELECT count(*) FROM bke WHERE id >= lo); END $$;
SELECT perfopt.reset_slow_queries();

-- Statistics: a statement's row cannot be made (its text normalized, its
-- row created); the statements answer, and are not in query_stats.
SELECT bke_skipped() AS before \gset
SET perfopt.debug_fail_bookkeeping = stats;
INSERT INTO bke SELECT g, 'v' || g FROM generate_series(1, 100) g;
SELECT v FROM bke WHERE id = 7;
UPDATE bke SET v = 'seven' WHERE id = 7 RETURNING v;
DELETE FROM bke WHERE id = 100 RETURNING id;
SELECT bke_count(95);
EXPLAIN (COSTS OFF) SELECT v FROM bke WHERE id = 8;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT v FROM bke WHERE id = 9;
PREPARE bke_p(int) AS SELECT v FROM bke WHERE id = $1;
EXECUTE bke_p(10);
CREATE TABLE bke_copy AS SELECT * FROM bke WHERE id < 5;
SELECT count(*) FROM bke_copy;
DROP TABLE bke_copy;
RESET perfopt.debug_fail_bookkeeping;
SELECT bke_skipped() > :before AS stats_skips_counted;
SELECT count(*) AS stats_rows FROM perfopt.query_stats
 WHERE query LIKE '%bke WHERE id %' OR query LIKE '%INTO bke %';

-- without the fault the same statements are recorded and nothing is skipped
SELECT bke_skipped() AS before \gset
SELECT v FROM bke WHERE id = 7;
UPDATE bke SET v = 'seven' WHERE id = 7 RETURNING v;
SELECT bke_count(95);
EXECUTE bke_p(10);
SELECT bke_skipped() - :before AS skipped_without_fault;
SELECT query, calls FROM perfopt.query_stats
 WHERE query LIKE '%bke WHERE id %' ORDER BY query;

-- Slow-query capture (threshold 0: every execution is slow): its EXPLAIN
-- fails; the statements answer and are not in slow_queries.
SELECT perfopt.reset_slow_queries();
SELECT bke_skipped() AS before \gset
SET perfopt.debug_fail_bookkeeping = slowlog;
SELECT v FROM bke WHERE id = 11;
UPDATE bke SET v = 'twelve' WHERE id = 12 RETURNING v;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT v FROM bke WHERE id = 13;
SELECT bke_count(98);
EXECUTE bke_p(14);
-- a cursor left open ends its execution inside COMMIT
BEGIN;
DECLARE bke_c CURSOR FOR SELECT id FROM bke ORDER BY id;
FETCH 2 FROM bke_c;
COMMIT;
-- and inside a transaction block, which goes on normally
BEGIN;
SELECT v FROM bke WHERE id = 15;
SAVEPOINT s1;
SELECT v FROM bke WHERE id = 16;
ROLLBACK TO s1;
SELECT v FROM bke WHERE id = 17;
COMMIT;
RESET perfopt.debug_fail_bookkeeping;
SELECT bke_skipped() > :before AS slowlog_skips_counted;
SELECT count(*) AS slow_rows FROM perfopt.slow_queries WHERE query ~ '\mbke\M';

-- without the fault they are captured
SELECT bke_skipped() AS before \gset
SELECT v FROM bke WHERE id = 11;
EXECUTE bke_p(14);
SELECT bke_skipped() - :before AS skipped_without_fault;
SELECT query, params, plan LIKE '%Index Scan using bke_pkey%' AS has_plan
  FROM perfopt.slow_queries
 WHERE query LIKE '%FROM bke WHERE id%' AND query NOT LIKE '%slow_queries%'
 ORDER BY query;
SET perfopt.slow_query_threshold = -1;

-- The advisor's capture: reading a new statement's plan fails; the
-- statement answers, and the advisor keeps its example text without the
-- plan's predicates, never trying that plan again.
SELECT bke_skipped() AS before \gset
SET perfopt.debug_fail_bookkeeping = advisor;
SELECT id FROM bke WHERE v = 'v21';
SELECT count(*) FROM bke WHERE id BETWEEN 30 AND 39;
RESET perfopt.debug_fail_bookkeeping;
SELECT bke_skipped() > :before AS advisor_skips_counted;
SELECT bke_skipped() AS before \gset
SELECT id FROM bke WHERE v = 'v22';
SELECT bke_skipped() - :before AS skipped_without_fault;
SELECT example, predicates FROM perfopt.advisor_workload
 WHERE example LIKE '%FROM bke WHERE v =%' ORDER BY example;
-- a statement first seen without the fault keeps its predicates
SELECT count(*) FROM bke WHERE v > 'v9';
SELECT example, predicates FROM perfopt.advisor_workload
 WHERE example LIKE '%FROM bke WHERE v >%';

-- A real case: a multi-statement string that turns
-- standard_conforming_strings off before its last statement, whose text is
-- read again under the new setting.  Read from where it starts, 'SELECT 3'
-- scans the same; 'b\' now swallows its closing quote and the text no
-- longer scans: the statement answers, its row keeps the text as written.
SELECT 'a\' AS s \; SET standard_conforming_strings = off \; SELECT 3 AS three;
RESET standard_conforming_strings;
SELECT bke_skipped() AS before \gset
SELECT 'a\' AS s \; SET standard_conforming_strings = off \; SELECT 'b\' AS t, 4 AS four;
RESET standard_conforming_strings;
SELECT bke_skipped() - :before AS normalizations_skipped;
SELECT query, calls FROM perfopt.query_stats
 WHERE query LIKE '%AS three%' OR query LIKE '%AS four%' ORDER BY query;

DROP FUNCTION bke_count(int);
DROP FUNCTION bke_skipped();
DROP TABLE bke;
