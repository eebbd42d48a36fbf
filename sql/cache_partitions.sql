-- Partitions and inheritance children created or attached after a cache
-- rule join it: they get the invalidation trigger, and statements reading
-- them are cached and invalidated by writes into them directly.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;
CREATE TABLE part_scores (k int, v int) PARTITION BY RANGE (k);
CREATE TABLE part_scores_a PARTITION OF part_scores FOR VALUES FROM (0) TO (100);
INSERT INTO part_scores SELECT g, 1 FROM generate_series(0, 99) g;
SELECT perfopt.cache_query('SELECT sum(v) FROM part_scores') <> 0 AS rule_made;
CREATE TABLE part_scores_b PARTITION OF part_scores FOR VALUES FROM (100) TO (200);
CREATE TABLE part_scores_c (k int, v int);
ALTER TABLE part_scores ATTACH PARTITION part_scores_c FOR VALUES FROM (200) TO (300);
-- a partitioned partition brings its own partitions
CREATE TABLE part_scores_d (k int, v int) PARTITION BY RANGE (k);
CREATE TABLE part_scores_d1 PARTITION OF part_scores_d FOR VALUES FROM (300) TO (350);
ALTER TABLE part_scores ATTACH PARTITION part_scores_d FOR VALUES FROM (300) TO (400);
-- the partition's creator need not be able to write the rules
CREATE ROLE cache_part_owner;
GRANT CREATE ON SCHEMA public TO cache_part_owner;
ALTER TABLE part_scores OWNER TO cache_part_owner;
SET ROLE cache_part_owner;
CREATE TABLE part_scores_e PARTITION OF part_scores FOR VALUES FROM (400) TO (500);
RESET ROLE;
SELECT tgrelid::regclass AS has_trigger FROM pg_trigger
 WHERE tgname = 'perfopt_cache_invalidate' AND tgrelid::regclass::text LIKE 'part_scores%'
 ORDER BY tgrelid::regclass::text;
SELECT ARRAY(SELECT t::text FROM unnest(triggered_tables) t ORDER BY 1) AS triggered_tables
  FROM perfopt.cache_rules WHERE query LIKE '%part_scores%';

SELECT sum(v) FROM part_scores;
SELECT sum(v) FROM part_scores;
SELECT perfopt.cache_last_outcome();
-- writes straight into each late partition invalidate
INSERT INTO part_scores_b VALUES (150, 1000);
SELECT sum(v) FROM part_scores;
SELECT perfopt.cache_last_outcome();
SELECT sum(v) FROM part_scores;
SELECT perfopt.cache_last_outcome();
UPDATE part_scores_c SET v = v WHERE false;
INSERT INTO part_scores_d1 VALUES (320, 5);
SELECT sum(v) FROM part_scores;
SELECT perfopt.cache_last_outcome();

-- table rules and inheritance children
CREATE TABLE inh_parent (v int);
INSERT INTO inh_parent VALUES (1);
SELECT perfopt.cache_table('inh_parent');
CREATE TABLE inh_child () INHERITS (inh_parent);
SELECT triggered_tables FROM perfopt.cache_rules WHERE tbl = 'inh_parent'::regclass;
SELECT sum(v) FROM inh_parent;
SELECT sum(v) FROM inh_parent;
SELECT perfopt.cache_last_outcome();
INSERT INTO inh_child VALUES (10);
SELECT sum(v) FROM inh_parent;
SELECT perfopt.cache_last_outcome();

-- a temporary child is never adopted: reading it bypasses the cache
CREATE TEMP TABLE inh_temp () INHERITS (inh_parent);
SELECT triggered_tables FROM perfopt.cache_rules WHERE tbl = 'inh_parent'::regclass;
SELECT sum(v) FROM inh_parent;
SELECT perfopt.cache_last_outcome();
DROP TABLE inh_temp;

-- unrelated DDL leaves the rules alone
CREATE TABLE unrelated (v int);
ALTER TABLE unrelated ADD COLUMN w int;
SELECT count(*) AS rules FROM perfopt.cache_rules
 WHERE query LIKE '%part_scores%' OR tbl = 'inh_parent'::regclass;
SELECT count(*) AS unrelated_triggers FROM pg_trigger WHERE tgrelid = 'unrelated'::regclass;

SELECT perfopt.uncache_query('SELECT sum(v) FROM part_scores');
SELECT perfopt.uncache_table('inh_parent');
SELECT count(*) AS triggers_left FROM pg_trigger
 WHERE tgname = 'perfopt_cache_invalidate'
   AND (tgrelid::regclass::text LIKE 'part_scores%' OR tgrelid::regclass::text LIKE 'inh_%');
DROP TABLE part_scores;
DROP TABLE inh_child, inh_parent;
DROP TABLE unrelated;
REVOKE CREATE ON SCHEMA public FROM cache_part_owner;
DROP ROLE cache_part_owner;
