-- Writes through a partitioned or inheritance parent fire only the
-- parent's statement trigger; cached reads of a partition or child read
-- directly must still see them, at commit and inside the writing
-- transaction.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

CREATE TABLE ch_part (k int, v int) PARTITION BY RANGE (k);
CREATE TABLE ch_part_lo PARTITION OF ch_part FOR VALUES FROM (0) TO (100);
CREATE TABLE ch_part_hi PARTITION OF ch_part FOR VALUES FROM (100) TO (200);
INSERT INTO ch_part SELECT g, 1 FROM generate_series(0, 199) g;
SELECT perfopt.cache_table('ch_part') IS NOT NULL AS ruled;

-- stored, then a hit
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT perfopt.cache_last_outcome();
SELECT sum(v), count(*) FROM ch_part_hi;
SELECT sum(v), count(*) FROM ch_part_hi;
SELECT perfopt.cache_last_outcome();

-- UPDATE through the parent
UPDATE ch_part SET v = 2 WHERE k = 5;
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT perfopt.cache_last_outcome();
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT perfopt.cache_last_outcome();

-- a row moved between partitions through the parent
UPDATE ch_part SET k = 150 WHERE k = 6;
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT sum(v), count(*) FROM ch_part_hi;
SELECT sum(v), count(*) FROM ch_part_hi;
SELECT perfopt.cache_last_outcome();

-- INSERT, COPY and DELETE through the parent
INSERT INTO ch_part VALUES (7, 10);
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT sum(v), count(*) FROM ch_part_lo;
COPY ch_part FROM STDIN;
8	100
108	100
\.
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT sum(v), count(*) FROM ch_part_hi;
SELECT sum(v), count(*) FROM ch_part_hi;
DELETE FROM ch_part WHERE k IN (8, 108);
SELECT sum(v), count(*) FROM ch_part_hi;

-- the writer sees its own write through the parent
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT perfopt.cache_last_outcome();
BEGIN;
UPDATE ch_part SET v = v + 1000 WHERE k = 0;
SELECT sum(v), count(*) FROM ch_part_lo;
SELECT perfopt.cache_last_outcome();
ROLLBACK;
SELECT sum(v), count(*) FROM ch_part_lo;

-- inheritance: UPDATE and DELETE of the parent reach its child's rows
CREATE TABLE ch_inh (k int, v int);
CREATE TABLE ch_inh_child () INHERITS (ch_inh);
INSERT INTO ch_inh VALUES (1, 1);
INSERT INTO ch_inh_child VALUES (2, 1), (3, 1);
SELECT perfopt.cache_table('ch_inh') IS NOT NULL AS ruled;
SELECT sum(v), count(*) FROM ch_inh_child;
SELECT sum(v), count(*) FROM ch_inh_child;
SELECT perfopt.cache_last_outcome();
UPDATE ch_inh SET v = 5;
SELECT sum(v), count(*) FROM ch_inh_child;
SELECT perfopt.cache_last_outcome();
SELECT sum(v), count(*) FROM ch_inh_child;
DELETE FROM ch_inh WHERE k = 3;
SELECT sum(v), count(*) FROM ch_inh_child;
BEGIN;
DELETE FROM ch_inh;
SELECT sum(v), count(*) FROM ch_inh_child;
ROLLBACK;
SELECT sum(v), count(*) FROM ch_inh_child;

SELECT perfopt.uncache_table('ch_part');
SELECT perfopt.uncache_table('ch_inh');
DROP TABLE ch_part, ch_inh CASCADE;
