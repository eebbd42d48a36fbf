-- perfopt's own reads of its rules (perfopt.cache_rule_defs) during the
-- user's DDL take no predicate lock in a SERIALIZABLE transaction, and none
-- happen at all while the database has no rule.  (Two transactions at once:
-- tests/isolation/specs/cache_serializable.spec.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;

-- perfopt's locks and reads of its rules table and indexes in this transaction
CREATE FUNCTION ser_rule_locks() RETURNS TABLE (mode text, locktype text)
LANGUAGE sql AS $$
    SELECT l.mode, l.locktype FROM pg_locks l
     WHERE l.pid = pg_backend_pid()
       AND l.relation IN (SELECT 'perfopt.cache_rule_defs'::regclass
                          UNION ALL
                          SELECT i.indexrelid FROM pg_index i
                           WHERE i.indrelid = 'perfopt.cache_rule_defs'::regclass)
     ORDER BY 1, 2 $$;
-- (a backend's counts not yet reported, which it reports only outside a
-- transaction block: a difference within one counts that block's reads)
CREATE FUNCTION ser_rule_reads() RETURNS bigint
LANGUAGE sql AS $$
    SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables
     WHERE relid = 'perfopt.cache_rule_defs'::regclass $$;

CREATE TABLE ser_plain (id int, v int);
CREATE TABLE ser_parent (id int, v int) PARTITION BY LIST (id);
CREATE TABLE ser_free (id int);

-- No rule: DDL neither reads nor locks the rules table.
SELECT count(*) AS rules FROM perfopt.cache_rule_defs;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT ser_rule_reads() AS reads_before \gset
ALTER TABLE ser_plain ADD COLUMN w int;
CREATE TABLE ser_parent_1 PARTITION OF ser_parent FOR VALUES IN (1);
SELECT * FROM ser_rule_locks();
SELECT ser_rule_reads() - :reads_before AS rule_reads;
COMMIT;

-- Rules: DDL of cached tables in SERIALIZABLE reads them (AccessShareLock,
-- as a SELECT's) and extends them, but takes no SIReadLock on them.
SELECT perfopt.cache_table('ser_plain');
SELECT perfopt.cache_table('ser_parent');
BEGIN ISOLATION LEVEL SERIALIZABLE;
ALTER TABLE ser_plain ADD COLUMN x int;
CREATE TABLE ser_parent_2 PARTITION OF ser_parent FOR VALUES IN (2);
SELECT * FROM ser_rule_locks();
COMMIT;
SELECT tbl, triggered_tables FROM perfopt.cache_rules ORDER BY tbl::text;

-- cache_table() and uncache_table() in SERIALIZABLE: no SIReadLock either.
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT perfopt.cache_table('ser_free');
SELECT perfopt.cache_table('ser_free', interval '1 minute');
SELECT perfopt.uncache_table('ser_plain');
SELECT * FROM ser_rule_locks();
COMMIT;
SELECT tbl, ttl, triggered_tables FROM perfopt.cache_rules ORDER BY tbl::text;
SELECT tgrelid::regclass AS triggered FROM pg_trigger
 WHERE tgname = 'perfopt_cache_invalidate' AND tgrelid::regclass::text LIKE 'ser_%'
 ORDER BY tgrelid::regclass::text;

-- A query rule replaced and removed in SERIALIZABLE.
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT perfopt.cache_query('SELECT v FROM ser_plain WHERE id = $1') <> 0 AS cached;
SELECT perfopt.cache_query('SELECT v FROM ser_plain WHERE id = $1', interval '1 hour') <> 0 AS recached;
SELECT * FROM ser_rule_locks();
SELECT perfopt.uncache_query('SELECT v FROM ser_plain WHERE id = $1');
SELECT * FROM ser_rule_locks();
-- the user's own read of the rules is theirs: it takes its predicate lock
SELECT count(*) AS query_rules FROM perfopt.cache_rule_defs WHERE kind = 'query';
SELECT count(*) > 0 AS user_read_locked FROM ser_rule_locks() WHERE mode = 'SIReadLock';
COMMIT;
SELECT count(*) AS query_rules FROM perfopt.cache_rules WHERE kind = 'query';
SELECT perfopt.uncache_query('SELECT v FROM ser_plain WHERE id = $1');

-- perfopt's reader of the rules is the extension's, like the table.
SELECT has_function_privilege('public', 'perfopt._cache_rule_rows(oid[])', 'EXECUTE') AS public_reads;

SELECT perfopt.uncache_table('ser_parent');
SELECT perfopt.uncache_table('ser_free');
DROP TABLE ser_plain, ser_parent, ser_free;
DROP FUNCTION ser_rule_locks(), ser_rule_reads();
