-- With perfopt loaded, PostgreSQL answers as it would without it: no error
-- from perfopt's bookkeeping, EXPLAIN unchanged where no rule applies, no
-- predicate lock from perfopt's own reads, restricted functions behind
-- restricted views, only perfopt's exact trigger trusted.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

-- The advisor's capture meets an index-only scan whose filter uses an
-- indexed column inside an expression (the filter refers to the index's
-- columns, not the table's): the statement answers.
CREATE TABLE dnh_ios (x int, t text);
INSERT INTO dnh_ios SELECT g, g::text FROM generate_series(1, 1000) g;
CREATE INDEX dnh_ios_x_t ON dnh_ios (x, t);
VACUUM ANALYZE dnh_ios;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM dnh_ios WHERE x > 0 AND t::numeric = 5;
SELECT * FROM dnh_ios WHERE x > 0 AND t::numeric = 5;
RESET enable_seqscan;
RESET enable_bitmapscan;

-- No rule in this database: EXPLAIN ANALYZE is PostgreSQL's own.
SELECT count(*) AS rules FROM perfopt.cache_rule_defs;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM dnh_ios;
-- and DDL reads the rules table neither in its event trigger nor in any
-- backend afterwards (counted by the table's scans, flushed at each idle)
SET stats_fetch_consistency = none;
CREATE FUNCTION dnh_rule_reads() RETURNS bigint LANGUAGE sql AS $$
    SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables
     WHERE relid = 'perfopt.cache_rule_defs'::regclass $$;
SELECT pg_stat_force_next_flush();
SELECT dnh_rule_reads() AS reads_before \gset
ALTER TABLE dnh_ios ADD COLUMN z int;
SELECT 1 AS statement_after_ddl;
SELECT pg_stat_force_next_flush();
SELECT dnh_rule_reads() - :reads_before AS rule_reads;
ALTER TABLE dnh_ios DROP COLUMN z;
DROP FUNCTION dnh_rule_reads();
RESET stats_fetch_consistency;

-- A rule on another table does not select this statement: no line either;
-- a statement the rule selects gets it.
CREATE TABLE dnh_cached (id int PRIMARY KEY, v int);
INSERT INTO dnh_cached SELECT g, g FROM generate_series(1, 10) g;
SELECT perfopt.cache_table('dnh_cached') IS NOT NULL AS ruled;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM dnh_ios;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(v) FROM dnh_cached;

-- SERIALIZABLE: the rules are reloaded after a change, inside the user's
-- transaction, and that read takes no predicate lock.
SELECT perfopt.cache_table('dnh_ios') IS NOT NULL AS ruled;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT sum(v) FROM dnh_cached;
SELECT relation::regclass AS locked FROM pg_locks
 WHERE mode = 'SIReadLock' AND pid = pg_backend_pid() ORDER BY 1;
COMMIT;

-- An invalidation trigger changed by the table's owner is not trusted:
-- with a WHEN condition it could skip writes, so nothing is stored.
SELECT sum(v) FROM dnh_cached;
SELECT sum(v) FROM dnh_cached;
SELECT perfopt.cache_last_outcome();
DROP TRIGGER perfopt_cache_invalidate ON dnh_cached;
CREATE TRIGGER perfopt_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dnh_cached
    FOR EACH STATEMENT WHEN (current_setting('dnh.skip', true) IS NULL)
    EXECUTE FUNCTION perfopt._cache_invalidate();
ALTER TABLE dnh_cached ENABLE ALWAYS TRIGGER perfopt_cache_invalidate;
SELECT sum(v) FROM dnh_cached;
SELECT perfopt.cache_last_outcome();
SELECT sum(v) FROM dnh_cached;
SELECT perfopt.cache_last_outcome();
-- the same with an argument
DROP TRIGGER perfopt_cache_invalidate ON dnh_cached;
CREATE TRIGGER perfopt_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dnh_cached
    FOR EACH STATEMENT EXECUTE FUNCTION perfopt._cache_invalidate('x');
ALTER TABLE dnh_cached ENABLE ALWAYS TRIGGER perfopt_cache_invalidate;
SELECT sum(v) FROM dnh_cached;
SELECT sum(v) FROM dnh_cached;
SELECT perfopt.cache_last_outcome();

-- Privileges: what the views restrict, their functions restrict too; rule
-- texts are for those who manage rules.
CREATE ROLE dnh_user;
SET ROLE dnh_user;
SELECT * FROM perfopt._cache_stats();
SELECT * FROM perfopt.cache_totals();
SELECT * FROM perfopt.cache_totals;
SELECT * FROM perfopt.cache_rule_defs;
SELECT * FROM perfopt.cache_rules;
RESET ROLE;
SELECT has_function_privilege('dnh_user', 'perfopt._cache_stats()', 'EXECUTE') AS stats_fn,
       has_function_privilege('dnh_user', 'perfopt.cache_totals()', 'EXECUTE') AS totals_fn,
       has_table_privilege('dnh_user', 'perfopt.cache_rule_defs', 'SELECT') AS rule_defs,
       has_table_privilege('dnh_user', 'perfopt.cache_rules', 'SELECT') AS rules_view;

-- ALTER TABLE by a table owner who may not read the rules still works (the
-- event trigger reads them as the extension's owner).
GRANT CREATE ON SCHEMA public TO dnh_user;
SET ROLE dnh_user;
CREATE TABLE dnh_own (a int);
ALTER TABLE dnh_own ADD COLUMN b int;
RESET ROLE;

SELECT perfopt.uncache_table('dnh_cached');
SELECT perfopt.uncache_table('dnh_ios');
DROP TABLE dnh_own;
REVOKE CREATE ON SCHEMA public FROM dnh_user;
DROP ROLE dnh_user;
DROP TABLE dnh_ios, dnh_cached;
