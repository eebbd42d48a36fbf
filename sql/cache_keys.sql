-- Result cache: results restricted to one key value.  A query rule whose
-- statement reads only the rows of a table with one value of an integer
-- column (WHERE s.game = 1, or = $1) gets a key trigger on that table, and
-- a write invalidates only the results of the keys its rows had.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

-- game is bigint: the constant 1 (an int4) compares across integer types
CREATE TABLE ck_scores (id int PRIMARY KEY, game bigint NOT NULL, player text NOT NULL,
                        points int NOT NULL);
INSERT INTO ck_scores SELECT g, 1 + g % 3, 'p' || (g % 5), g FROM generate_series(1, 30) g;

\set b1 'SELECT player, max(points) AS best FROM ck_scores WHERE game = 1 GROUP BY player ORDER BY best DESC, player LIMIT 3'
\set b2 'SELECT player, max(points) AS best FROM ck_scores WHERE game = 2 GROUP BY player ORDER BY best DESC, player LIMIT 3'
SELECT perfopt.cache_query(:'b1') <> 0 AS ok;
SELECT j.k::oid::regclass AS tbl, j.v AS key_columns
  FROM perfopt.cache_rule_defs, jsonb_each(keys) AS j(k, v) WHERE query = :'b1';
SELECT tgname, tgtype, tgenabled, encode(tgargs, 'escape') AS args
  FROM pg_trigger WHERE tgrelid = 'ck_scores'::regclass ORDER BY tgname;
:b1;
:b2;
:b1;
SELECT perfopt.cache_last_outcome();
:b2;
SELECT perfopt.cache_last_outcome();

-- a score of game 2 leaves game 1's board in the cache
INSERT INTO ck_scores VALUES (100, 2, 'p9', 1000);
:b1;
SELECT perfopt.cache_last_outcome();
:b2;
SELECT perfopt.cache_last_outcome();
-- UPDATE and DELETE of game 1's rows
UPDATE ck_scores SET points = 2000 WHERE id = 3;
:b1;
SELECT perfopt.cache_last_outcome();
:b2;
SELECT perfopt.cache_last_outcome();
DELETE FROM ck_scores WHERE id = 100;
:b1;
SELECT perfopt.cache_last_outcome();
:b2;
SELECT perfopt.cache_last_outcome();
-- a row moving from game 1 to game 2 changes both
UPDATE ck_scores SET game = 2 WHERE id = 3;
:b1;
SELECT perfopt.cache_last_outcome();
:b2;
SELECT perfopt.cache_last_outcome();
-- COPY and INSERT ... ON CONFLICT (its UPDATE moves a row to game 1)
COPY ck_scores FROM STDIN;
200	3	p1	5000
\.
:b1;
SELECT perfopt.cache_last_outcome();
INSERT INTO ck_scores VALUES (200, 1, 'p1', 5000)
    ON CONFLICT (id) DO UPDATE SET game = excluded.game;
:b1;
SELECT perfopt.cache_last_outcome();
:b2;
SELECT perfopt.cache_last_outcome();
-- a write to a key no board reads, rolled back or not, changes no board
BEGIN;
UPDATE ck_scores SET points = 0 WHERE game = 1;
ROLLBACK;
UPDATE ck_scores SET points = points + 1 WHERE game = 3;
:b1;
SELECT perfopt.cache_last_outcome();
:b2;
SELECT perfopt.cache_last_outcome();
-- TRUNCATE fires no row trigger: every board goes
BEGIN;
TRUNCATE ck_scores;
INSERT INTO ck_scores SELECT g, 1 + g % 3, 'q' || (g % 5), g FROM generate_series(1, 30) g;
COMMIT;
:b1;
SELECT perfopt.cache_last_outcome();
:b2;
SELECT perfopt.cache_last_outcome();

-- Prepared statements, generic plans: the key is the bind parameter.
SELECT perfopt.cache_query('SELECT count(*), sum(points) FROM ck_scores WHERE game = $1') <> 0 AS ok;
SET plan_cache_mode = force_generic_plan;
PREPARE cnt(bigint) AS SELECT count(*), sum(points) FROM ck_scores WHERE game = $1;
EXECUTE cnt(1);
EXECUTE cnt(2);
EXECUTE cnt(1);
SELECT perfopt.cache_last_outcome();
INSERT INTO ck_scores VALUES (300, 2, 'p1', 1);
EXECUTE cnt(1);
SELECT perfopt.cache_last_outcome();
EXECUTE cnt(2);
SELECT perfopt.cache_last_outcome();
RESET plan_cache_mode;

-- A statement reading the table twice is not restricted to one key: any
-- write invalidates it.
\set twice 'SELECT count(*) FROM ck_scores WHERE game = 1 AND points > (SELECT avg(points) FROM ck_scores)'
SELECT perfopt.cache_query(:'twice') <> 0 AS ok;
:twice;
:twice;
SELECT perfopt.cache_last_outcome();
INSERT INTO ck_scores VALUES (301, 3, 'p1', 1);
:twice;
SELECT perfopt.cache_last_outcome();
:b1;
SELECT perfopt.cache_last_outcome();
SELECT perfopt.uncache_query(:'twice');

-- perfopt.cache_clear(tbl) drops keyed entries too
SELECT perfopt.cache_clear('ck_scores') > 0 AS cleared;
:b1;
SELECT perfopt.cache_last_outcome();

-- With the key trigger disabled, writes invalidate every board.
ALTER TABLE ck_scores DISABLE TRIGGER perfopt_cache_keys;
:b1;
:b2;
INSERT INTO ck_scores VALUES (302, 2, 'p1', 1);
:b1;
SELECT perfopt.cache_last_outcome();
ALTER TABLE ck_scores ENABLE ALWAYS TRIGGER perfopt_cache_keys;

-- Another BEFORE row trigger could change a key after perfopt's saw it:
-- creating one removes the key trigger, and writes invalidate every board.
CREATE FUNCTION ck_shift() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.game := NEW.game; RETURN NEW; END $$;
CREATE TRIGGER ck_shift BEFORE INSERT ON ck_scores FOR EACH ROW EXECUTE FUNCTION ck_shift();
SELECT count(*) AS key_triggers FROM pg_trigger
 WHERE tgrelid = 'ck_scores'::regclass AND tgname = 'perfopt_cache_keys';
:b1;
:b1;
SELECT perfopt.cache_last_outcome();
INSERT INTO ck_scores VALUES (303, 2, 'p1', 1);
:b1;
SELECT perfopt.cache_last_outcome();
-- ... and dropping it brings the key trigger back with the next rule change
DROP TRIGGER ck_shift ON ck_scores;
SELECT perfopt.cache_query(:'b1') <> 0 AS ok;
SELECT count(*) AS key_triggers FROM pg_trigger
 WHERE tgrelid = 'ck_scores'::regclass AND tgname = 'perfopt_cache_keys';

-- Text keys and generated columns are not keys.
CREATE TABLE ck_text (k text PRIMARY KEY, g int GENERATED ALWAYS AS (length(k)) STORED, v int);
SELECT perfopt.cache_query('SELECT v FROM ck_text WHERE k = ''a''') <> 0 AS ok;
SELECT perfopt.cache_query('SELECT v FROM ck_text WHERE g = 1') <> 0 AS ok;
SELECT count(*) AS key_triggers FROM pg_trigger
 WHERE tgrelid = 'ck_text'::regclass AND tgname = 'perfopt_cache_keys';

SELECT perfopt.uncache_query('SELECT v FROM ck_text WHERE k = ''a''');
SELECT perfopt.uncache_query('SELECT v FROM ck_text WHERE g = 1');
SELECT perfopt.uncache_query(:'b1');
SELECT perfopt.uncache_query('SELECT count(*), sum(points) FROM ck_scores WHERE game = $1');
SELECT count(*) AS perfopt_triggers_left FROM pg_trigger
 WHERE tgrelid IN ('ck_scores'::regclass, 'ck_text'::regclass) AND tgname LIKE 'perfopt%';
DROP TABLE ck_scores, ck_text;
DROP FUNCTION ck_shift();
