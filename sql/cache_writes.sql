-- Result cache: every kind of write invalidates what it changes, at commit.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

CREATE TABLE cw_acct (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL);
INSERT INTO cw_acct SELECT g, 'u' || (g % 3), 100 FROM generate_series(1, 9) g;
SELECT perfopt.cache_table('cw_acct');

-- q: the cached statement; each write is followed by q twice: the first
-- must see the write (a miss), the second is a hit with the same rows.
\set q 'SELECT owner, sum(balance) AS total, count(*) AS n FROM cw_acct GROUP BY owner ORDER BY owner'
:q;
:q;
SELECT perfopt.cache_last_outcome();

-- INSERT
INSERT INTO cw_acct VALUES (10, 'u9', 5);
:q;
SELECT perfopt.cache_last_outcome();
:q;
SELECT perfopt.cache_last_outcome();
-- UPDATE
UPDATE cw_acct SET balance = balance + 1 WHERE owner = 'u1';
:q;
SELECT perfopt.cache_last_outcome();
-- DELETE
DELETE FROM cw_acct WHERE id = 10;
:q;
SELECT perfopt.cache_last_outcome();
-- COPY
COPY cw_acct FROM STDIN;
11	u9	7
\.
:q;
SELECT perfopt.cache_last_outcome();
-- INSERT ... ON CONFLICT
INSERT INTO cw_acct VALUES (11, 'u9', 8) ON CONFLICT (id) DO UPDATE SET balance = excluded.balance;
:q;
SELECT perfopt.cache_last_outcome();
-- MERGE
MERGE INTO cw_acct t USING (VALUES (11, 'u9', 9)) AS s(id, owner, balance) ON t.id = s.id
 WHEN MATCHED THEN UPDATE SET balance = s.balance
 WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.owner, s.balance);
:q;
SELECT perfopt.cache_last_outcome();
-- a write that changes no row still counts (the trigger fires)
UPDATE cw_acct SET balance = 0 WHERE false;
:q;
SELECT perfopt.cache_last_outcome();
:q;
SELECT perfopt.cache_last_outcome();

-- A rolled-back write invalidates nothing.
BEGIN;
UPDATE cw_acct SET balance = 1000;
ROLLBACK;
:q;
SELECT perfopt.cache_last_outcome();
-- (a write rolled back to a savepoint of a committed transaction is
-- counted: conservative, never stale)
BEGIN;
SAVEPOINT s;
DELETE FROM cw_acct;
ROLLBACK TO s;
COMMIT;
:q;
SELECT perfopt.cache_last_outcome();

-- Inside a transaction that wrote the table: bypass, nothing stored; and
-- its own changes are visible.
BEGIN;
UPDATE cw_acct SET balance = balance - 50 WHERE id = 1;
:q;
SELECT perfopt.cache_last_outcome();
:q;
SELECT perfopt.cache_last_outcome();
COMMIT;
:q;
SELECT perfopt.cache_last_outcome();
:q;
SELECT perfopt.cache_last_outcome();

-- REPEATABLE READ and SERIALIZABLE bypass.
BEGIN ISOLATION LEVEL REPEATABLE READ;
:q;
SELECT perfopt.cache_last_outcome();
COMMIT;

-- Writes by a trigger and by a function.
CREATE TABLE cw_log (id serial PRIMARY KEY, acct int, delta int);
CREATE FUNCTION cw_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cw_acct SET balance = balance + NEW.delta WHERE id = NEW.acct;
    RETURN NEW;
END $$;
CREATE TRIGGER cw_log_apply AFTER INSERT ON cw_log FOR EACH ROW EXECUTE FUNCTION cw_apply();
:q;
INSERT INTO cw_log (acct, delta) VALUES (2, 33);
:q;
SELECT perfopt.cache_last_outcome();
CREATE FUNCTION cw_bonus(amount int) RETURNS void LANGUAGE sql AS
    'UPDATE cw_acct SET balance = balance + amount WHERE owner = ''u0''';
:q;
SELECT cw_bonus(1000);
:q;
SELECT perfopt.cache_last_outcome();
DO $$ BEGIN DELETE FROM cw_acct WHERE id = 11; END $$;
:q;
SELECT perfopt.cache_last_outcome();

-- Writes through a view and through a rule on a view.
CREATE VIEW cw_rich AS SELECT * FROM cw_acct WHERE balance > 500;
:q;
UPDATE cw_rich SET balance = 500 WHERE owner = 'u0';
:q;
SELECT perfopt.cache_last_outcome();
-- reading through the view is cached too, and invalidated by base writes
SELECT perfopt.cache_query('SELECT count(*) FROM cw_rich') <> 0 AS ok;
SELECT count(*) FROM cw_rich;
SELECT count(*) FROM cw_rich;
SELECT perfopt.cache_last_outcome();
UPDATE cw_acct SET balance = 900 WHERE id = 4;
SELECT count(*) FROM cw_rich;
SELECT perfopt.cache_last_outcome();

-- Foreign-key cascades.
CREATE TABLE cw_owner (name text PRIMARY KEY);
INSERT INTO cw_owner VALUES ('a'), ('b');
CREATE TABLE cw_pet (id int PRIMARY KEY, owner text REFERENCES cw_owner ON DELETE CASCADE);
INSERT INTO cw_pet VALUES (1, 'a'), (2, 'a'), (3, 'b');
SELECT perfopt.cache_query('SELECT owner, count(*) FROM cw_pet GROUP BY owner ORDER BY owner') <> 0 AS ok;
SELECT owner, count(*) FROM cw_pet GROUP BY owner ORDER BY owner;
DELETE FROM cw_owner WHERE name = 'a';
SELECT owner, count(*) FROM cw_pet GROUP BY owner ORDER BY owner;
SELECT perfopt.cache_last_outcome();

-- Partitions: triggers on the parent and every partition; writes through
-- the parent or straight into a partition invalidate.
CREATE TABLE cw_ev (day int NOT NULL, n int NOT NULL) PARTITION BY RANGE (day);
CREATE TABLE cw_ev_1 PARTITION OF cw_ev FOR VALUES FROM (1) TO (10);
CREATE TABLE cw_ev_2 PARTITION OF cw_ev FOR VALUES FROM (10) TO (20);
INSERT INTO cw_ev VALUES (1, 1), (15, 2);
SELECT perfopt.cache_query('SELECT sum(n) FROM cw_ev') <> 0 AS ok;
SELECT tgrelid::regclass FROM pg_trigger WHERE tgname = 'perfopt_cache_invalidate' AND tgrelid::regclass::text LIKE 'cw_ev%' ORDER BY 1;
SELECT sum(n) FROM cw_ev;
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();
INSERT INTO cw_ev_2 VALUES (16, 10);
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();
UPDATE cw_ev SET n = n + 100 WHERE day = 1;
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();
TRUNCATE cw_ev_1;
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();
-- a partition created later joins the rule with its trigger (the event
-- trigger of cache_partitions.sql), so the result is stored at once
CREATE TABLE cw_ev_3 PARTITION OF cw_ev FOR VALUES FROM (20) TO (30);
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();
-- creating the rule again changes no trigger: the entry stays
SELECT perfopt.cache_query('SELECT sum(n) FROM cw_ev') <> 0 AS ok;
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();
INSERT INTO cw_ev_3 VALUES (25, 1000);
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();

-- Inheritance children.
CREATE TABLE cw_base (v int);
CREATE TABLE cw_child () INHERITS (cw_base);
INSERT INTO cw_base VALUES (1);
INSERT INTO cw_child VALUES (2);
SELECT perfopt.cache_query('SELECT sum(v) FROM cw_base') <> 0 AS ok;
SELECT sum(v) FROM cw_base;
INSERT INTO cw_child VALUES (40);
SELECT sum(v) FROM cw_base;
SELECT perfopt.cache_last_outcome();

-- TRUNCATE
:q;
TRUNCATE cw_acct CASCADE;
:q;
SELECT perfopt.cache_last_outcome();
INSERT INTO cw_acct VALUES (1, 'u1', 1), (2, 'u2', 2);

-- DDL invalidates: a new column changes SELECT *.
SELECT perfopt.cache_query('SELECT * FROM cw_acct ORDER BY id') <> 0 AS ok;
SELECT * FROM cw_acct ORDER BY id;
SELECT * FROM cw_acct ORDER BY id;
SELECT perfopt.cache_last_outcome();
ALTER TABLE cw_acct ADD COLUMN note text DEFAULT 'new';
SELECT * FROM cw_acct ORDER BY id;
SELECT perfopt.cache_last_outcome();
-- disabling perfopt's trigger stops caching (writes would go unseen)
ALTER TABLE cw_acct DISABLE TRIGGER perfopt_cache_invalidate;
SELECT * FROM cw_acct ORDER BY id;
SELECT perfopt.cache_last_outcome();
ALTER TABLE cw_acct ENABLE ALWAYS TRIGGER perfopt_cache_invalidate;
SELECT * FROM cw_acct ORDER BY id;
SELECT perfopt.cache_last_outcome();
-- session_replication_role = replica still fires ENABLE ALWAYS triggers
SET session_replication_role = replica;
UPDATE cw_acct SET note = 'replica' WHERE id = 1;
RESET session_replication_role;
SELECT * FROM cw_acct ORDER BY id;
SELECT perfopt.cache_last_outcome();

-- Privileges are checked on every hit.
CREATE ROLE cw_reader;
GRANT USAGE ON SCHEMA perfopt TO cw_reader;
GRANT SELECT ON cw_acct TO cw_reader;
SET ROLE cw_reader;
SELECT * FROM cw_acct ORDER BY id;
SELECT * FROM cw_acct ORDER BY id;
SELECT perfopt.cache_last_outcome();
RESET ROLE;
REVOKE SELECT ON cw_acct FROM cw_reader;
SET ROLE cw_reader;
SELECT * FROM cw_acct ORDER BY id;
RESET ROLE;
-- column privileges: the statement, not the cache, decides
GRANT SELECT (id, owner) ON cw_acct TO cw_reader;
SET ROLE cw_reader;
SELECT * FROM cw_acct ORDER BY id;
RESET ROLE;

-- TTL: an entry with a ttl expires.
SELECT perfopt.cache_query('SELECT count(*) FROM cw_pet', interval '2 seconds') <> 0 AS ok;
SELECT count(*) FROM cw_pet;
SELECT count(*) FROM cw_pet;
SELECT perfopt.cache_last_outcome();
SELECT pg_sleep(2.5);
SELECT count(*) FROM cw_pet;
SELECT perfopt.cache_last_outcome();

-- Results larger than perfopt.cache_max_entry_size are simply not cached.
CREATE TABLE cw_big (id int, payload text);
INSERT INTO cw_big SELECT g, repeat('x', 100) FROM generate_series(1, 100) g;
SELECT perfopt.cache_query('SELECT * FROM cw_big') <> 0 AS ok;
SET perfopt.cache_max_entry_size = '4kB';
SELECT count(*) FROM (SELECT * FROM cw_big) s;
SELECT * FROM cw_big \g /dev/null
SELECT perfopt.cache_last_outcome();
RESET perfopt.cache_max_entry_size;
SELECT * FROM cw_big \g /dev/null
SELECT perfopt.cache_last_outcome();
-- values stored out of line (TOAST) are kept detoasted
UPDATE cw_big SET payload = repeat(md5(id::text), 400) WHERE id = 1;
SELECT length(payload), md5(payload) FROM cw_big WHERE id = 1;
SELECT perfopt.cache_query('SELECT payload FROM cw_big WHERE id = 1') <> 0 AS ok;
SELECT md5(payload) FROM (SELECT payload FROM cw_big WHERE id = 1) s;
SELECT payload FROM cw_big WHERE id = 1 \g /dev/null
VACUUM FULL cw_big;
SELECT payload = repeat(md5('1'), 400) AS same FROM cw_big WHERE id = 1;
SELECT payload FROM cw_big WHERE id = 1 \gset
SELECT perfopt.cache_last_outcome();
SELECT md5(:'payload');

-- Observability: statistics, totals, clear, warm, query_stats counts.
SELECT query, hits >= 1 AS hit, misses >= 1 AS missed, entries >= 1 AS has_entries,
       hit_ratio > 0 AS ratio, invalidations >= 1 AS invalidated,
       mean_hit_time >= 0 AS hit_time, mean_miss_time > 0 AS miss_time
  FROM perfopt.cache_stats WHERE query = 'SELECT sum(n) FROM cw_ev';
SELECT entries > 0 AS has_entries, bytes > 0 AS has_bytes, capacity = 64 * 1024 * 1024 AS capacity,
       hits > 0 AS hits, misses > 0 AS misses, stores > 0 AS stores, too_large > 0 AS too_large,
       invalidations > 0 AS invalidations, expirations > 0 AS expirations
  FROM perfopt.cache_totals;
SELECT bool_or(cache_hits > 0) AS hits, bool_or(cache_misses > 0) AS misses FROM perfopt.query_stats
 WHERE query = 'SELECT sum(n) FROM cw_ev' AND datname = current_database();
SELECT perfopt.cache_clear('cw_ev') > 0 AS cleared;
SELECT perfopt.cache_clear('cw_ev');
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();
SELECT perfopt.cache_clear() > 0 AS cleared;
SELECT sum(entries) FROM perfopt.cache_stats;
SELECT perfopt.cache_warm('SELECT sum(n) FROM cw_ev');
SELECT sum(n) FROM cw_ev;
SELECT perfopt.cache_last_outcome();
SELECT perfopt.cache_warm('SELECT sum(n) FROM cw_ev WHERE random() > 2');
-- EXPLAIN ANALYZE says where the answer came from (the statement's own key)
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(n) FROM cw_ev;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT sum(n) FROM cw_ev;

-- clean up: removing the rules removes the triggers
SELECT perfopt.uncache_table('cw_acct');
SELECT count(*) FROM (SELECT perfopt.uncache_query(query) FROM perfopt.cache_rules WHERE kind = 'query') s;
SELECT count(*) FROM pg_trigger WHERE tgname = 'perfopt_cache_invalidate'
   AND tgrelid <> 'perfopt.cache_rule_defs'::regclass;
DROP VIEW cw_rich;
DROP TABLE cw_acct, cw_log, cw_owner, cw_pet, cw_ev, cw_base, cw_child, cw_big;
DROP FUNCTION cw_apply(), cw_bonus(int);
DROP OWNED BY cw_reader;
DROP ROLE cw_reader;
-- leave the database as the next file expects it: no extension, no statistics
SELECT perfopt.reset_stats();
SELECT perfopt.cache_clear() >= 0 AS cleared;
DROP EXTENSION perfopt;
