-- Result cache: an UPDATE invalidates only the statements that read a column
-- it sets.  A query rule's trigger is AFTER INSERT OR UPDATE OF <the columns
-- its statements read> OR DELETE OR TRUNCATE, where that is exact.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

CREATE TABLE cc_users (id int PRIMARY KEY, name text NOT NULL, country text NOT NULL,
                       last_seen int NOT NULL DEFAULT 0,
                       score2 int GENERATED ALWAYS AS (last_seen * 2) STORED);
CREATE TABLE cc_scores (user_id int NOT NULL, game int NOT NULL, points int NOT NULL);
INSERT INTO cc_users (id, name, country) SELECT g, 'p' || g, CASE WHEN g % 2 = 0 THEN 'FR' ELSE 'DE' END
  FROM generate_series(1, 6) g;
INSERT INTO cc_scores SELECT 1 + g % 6, g % 3, g * 10 FROM generate_series(1, 30) g;

-- the leaderboard reads users' id and name, and scores' user_id, game, points
\set board 'SELECT u.name, max(s.points) AS best FROM cc_scores s JOIN cc_users u ON u.id = s.user_id WHERE s.game = 1 GROUP BY u.name ORDER BY best DESC, u.name LIMIT 3'
SELECT perfopt.cache_query(:'board') <> 0 AS ok;
SELECT c.relname, t.tgattr,
       (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr)) AS watched
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE t.tgname = 'perfopt_cache_invalidate' AND c.relname LIKE 'cc_%' ORDER BY 1;
SELECT columns IS NOT NULL AS has_columns FROM perfopt.cache_rule_defs WHERE query = :'board';
:board;
:board;
SELECT perfopt.cache_last_outcome();

-- "touching" a player (a column the board does not read) keeps the entry
UPDATE cc_users SET last_seen = last_seen + 1 WHERE id = 2;
:board;
SELECT perfopt.cache_last_outcome();
-- renaming one (a column it reads) does not
UPDATE cc_users SET name = 'renamed' WHERE id = 2;
:board;
SELECT perfopt.cache_last_outcome();
:board;
SELECT perfopt.cache_last_outcome();
-- inserts and deletes invalidate whatever columns they carry
INSERT INTO cc_users (id, name, country) VALUES (7, 'p7', 'FR');
:board;
SELECT perfopt.cache_last_outcome();
DELETE FROM cc_users WHERE id = 7;
:board;
SELECT perfopt.cache_last_outcome();
-- the same UPDATE inside a transaction that also sets a read column
BEGIN;
UPDATE cc_users SET last_seen = 5 WHERE id = 3;
UPDATE cc_users SET name = 'p3x' WHERE id = 3;
COMMIT;
:board;
SELECT perfopt.cache_last_outcome();

-- A second rule reading last_seen (through a generated column) widens the
-- list: the generated column counts as set whenever its base column is.
\set seen 'SELECT id, score2 FROM cc_users WHERE country = ''FR'' ORDER BY id'
SELECT perfopt.cache_query(:'seen') <> 0 AS ok;
SELECT (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr)) AS watched
  FROM pg_trigger t WHERE t.tgrelid = 'cc_users'::regclass AND t.tgname = 'perfopt_cache_invalidate';
:seen;
:seen;
SELECT perfopt.cache_last_outcome();
UPDATE cc_users SET last_seen = 40 WHERE id = 4;
:seen;
SELECT perfopt.cache_last_outcome();
:board;
:board;
SELECT perfopt.cache_last_outcome();
-- dropping that rule narrows the list again
SELECT perfopt.uncache_query(:'seen');
SELECT (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr)) AS watched
  FROM pg_trigger t WHERE t.tgrelid = 'cc_users'::regclass AND t.tgname = 'perfopt_cache_invalidate';

-- Statements of cache_mode = all are stored only when the trigger watches
-- every column they read.
SET perfopt.cache_mode = 'all';
SELECT count(*) FROM cc_users WHERE last_seen > 0;
SELECT perfopt.cache_last_outcome();
SELECT name FROM cc_users WHERE id = 1;
SELECT name FROM cc_users WHERE id = 1;
SELECT perfopt.cache_last_outcome();
RESET perfopt.cache_mode;

-- A BEFORE UPDATE row trigger may set columns the UPDATE did not name, so
-- creating one widens perfopt's trigger to every column (the event trigger).
CREATE FUNCTION cc_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.name := NEW.name || '!'; RETURN NEW; END $$;
CREATE TRIGGER cc_stamp BEFORE UPDATE ON cc_users FOR EACH ROW
    WHEN (NEW.last_seen = 99) EXECUTE FUNCTION cc_stamp();
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_users'::regclass AND tgname = 'perfopt_cache_invalidate';
:board;
:board;
SELECT perfopt.cache_last_outcome();
UPDATE cc_users SET last_seen = 99 WHERE id = 5;
:board;
SELECT perfopt.cache_last_outcome();
DROP TRIGGER cc_stamp ON cc_users;

-- Without the event trigger (disabled here), a column list that is no
-- longer exact is not trusted: nothing reading the table is stored.
SELECT perfopt.uncache_query(:'board');
SELECT perfopt.cache_query(:'board') <> 0 AS ok;
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_users'::regclass AND tgname = 'perfopt_cache_invalidate';
ALTER EVENT TRIGGER perfopt_cache_adopt_children DISABLE;
CREATE TRIGGER cc_stamp BEFORE UPDATE ON cc_users FOR EACH ROW
    WHEN (NEW.last_seen = 99) EXECUTE FUNCTION cc_stamp();
:board;
SELECT perfopt.cache_last_outcome();
:board;
SELECT perfopt.cache_last_outcome();
DROP TRIGGER cc_stamp ON cc_users;
ALTER EVENT TRIGGER perfopt_cache_adopt_children ENABLE ALWAYS;

-- Whole rows, system columns, table rules and counts watch every column.
CREATE TABLE cc_misc (id int PRIMARY KEY, a int, b int);
INSERT INTO cc_misc VALUES (1, 1, 1);
SELECT perfopt.cache_query('SELECT m FROM cc_misc m WHERE id = 1') <> 0 AS ok;
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_misc'::regclass AND tgname = 'perfopt_cache_invalidate';
SELECT perfopt.uncache_query('SELECT m FROM cc_misc m WHERE id = 1');
SELECT perfopt.cache_query('SELECT xmin, a FROM cc_misc WHERE id = 1') <> 0 AS ok;
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_misc'::regclass AND tgname = 'perfopt_cache_invalidate';
SELECT perfopt.uncache_query('SELECT xmin, a FROM cc_misc WHERE id = 1');
SELECT perfopt.cache_query('SELECT count(*) FROM cc_misc') <> 0 AS ok;
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_misc'::regclass AND tgname = 'perfopt_cache_invalidate';
SELECT perfopt.cache_query('SELECT a FROM cc_misc WHERE id = 1') <> 0 AS ok;
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_misc'::regclass AND tgname = 'perfopt_cache_invalidate';
SELECT perfopt.cache_table('cc_misc');
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_misc'::regclass AND tgname = 'perfopt_cache_invalidate';
SELECT perfopt.uncache_table('cc_misc');
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_misc'::regclass AND tgname = 'perfopt_cache_invalidate';

-- Through a view: the view's own definition counts as read.
CREATE VIEW cc_fr AS SELECT id, name FROM cc_users WHERE country = 'FR';
SELECT perfopt.cache_query('SELECT name FROM cc_fr ORDER BY id') <> 0 AS ok;
SELECT (SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr)) AS watched
  FROM pg_trigger t WHERE t.tgrelid = 'cc_users'::regclass AND t.tgname = 'perfopt_cache_invalidate';
SELECT name FROM cc_fr ORDER BY id;
UPDATE cc_users SET country = 'DE' WHERE id = 2;
SELECT name FROM cc_fr ORDER BY id;
SELECT perfopt.cache_last_outcome();

-- A table that becomes an inheritance child gets a trigger without a list
-- (an UPDATE of the parent fires only the parent's statement trigger).
CREATE TABLE cc_parent (id int, a int, b int);
ALTER TABLE cc_misc INHERIT cc_parent;
SELECT tgattr FROM pg_trigger WHERE tgrelid = 'cc_misc'::regclass AND tgname = 'perfopt_cache_invalidate';

-- The trigger's columns are its dependencies: dropping a watched column
-- needs CASCADE, like any column a trigger names.
ALTER TABLE cc_scores DROP COLUMN points;

SELECT perfopt.uncache_query('SELECT name FROM cc_fr ORDER BY id');
SELECT perfopt.uncache_query(:'board');
SELECT perfopt.uncache_query('SELECT count(*) FROM cc_misc');
SELECT perfopt.uncache_query('SELECT a FROM cc_misc WHERE id = 1');
SELECT count(*) AS triggers_left FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE t.tgname = 'perfopt_cache_invalidate' AND c.relname LIKE 'cc_%';
DROP VIEW cc_fr;
DROP TABLE cc_users, cc_scores, cc_misc, cc_parent;
DROP FUNCTION cc_stamp();
