-- Result cache: rules, their triggers, eligibility and errors for bad arguments.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

CREATE TABLE cr_items (id int PRIMARY KEY, grp int NOT NULL, price numeric NOT NULL);
INSERT INTO cr_items SELECT g, g % 5, g * 1.5 FROM generate_series(1, 100) g;
CREATE TABLE cr_other (id int PRIMARY KEY, note text);
INSERT INTO cr_other VALUES (1, 'one'), (2, 'two');

-- Nothing is cached without a rule.
SELECT grp, count(*) FROM cr_items WHERE price > 0 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();

-- A query rule: returns the statement's queryid, installs one trigger.
SELECT perfopt.cache_query('SELECT grp, count(*) FROM cr_items WHERE price > 0 GROUP BY grp ORDER BY grp') <> 0 AS has_queryid;
SELECT kind, query, tbl, ttl, triggered_tables FROM perfopt.cache_rules;
SELECT tgname, tgenabled, tgtype, tgattr FROM pg_trigger WHERE tgrelid = 'cr_items'::regclass;

-- First run stores, second is a hit with the same rows, other constants
-- are the same shape: each its own entry.
SELECT grp, count(*) FROM cr_items WHERE price > 0 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();
SELECT grp, count(*) FROM cr_items WHERE price > 0 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();
SELECT grp, count(*) FROM cr_items WHERE price > 100 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();

-- cache_mode = off bypasses the cache entirely.
SET perfopt.cache_mode = off;
SELECT grp, count(*) FROM cr_items WHERE price > 0 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();
RESET perfopt.cache_mode;

-- Parameters: the $1 form is its own shape; each value its own entry.
SELECT perfopt.cache_query('SELECT note FROM cr_other WHERE id = $1', interval '1 hour') <> 0 AS ok;
PREPARE get_note(int) AS SELECT note FROM cr_other WHERE id = $1;
SET plan_cache_mode = force_generic_plan;
EXECUTE get_note(1);
SELECT perfopt.cache_last_outcome();
EXECUTE get_note(1);
SELECT perfopt.cache_last_outcome();
EXECUTE get_note(2);
SELECT perfopt.cache_last_outcome();
EXECUTE get_note(2);
SELECT perfopt.cache_last_outcome();
UPDATE cr_other SET note = 'uno' WHERE id = 1;
EXECUTE get_note(1);
SELECT perfopt.cache_last_outcome();
RESET plan_cache_mode;
DEALLOCATE get_note;

-- A table rule caches eligible statements reading only cached tables.
SELECT perfopt.cache_table('cr_other');
SELECT note FROM cr_other ORDER BY id;
SELECT note FROM cr_other ORDER BY id;
SELECT perfopt.cache_last_outcome();
-- cr_items is covered by a query rule only, not a table rule
SELECT o.note, i.price FROM cr_other o JOIN cr_items i USING (id) ORDER BY id;
SELECT perfopt.cache_last_outcome();
-- cache_mode = all caches statements without a rule when every table they
-- read carries a trigger that watches the UPDATEs of every column they read.
-- cr_items's trigger watches only what its query rule reads (grp, price), so
-- this join on id is never stored: an UPDATE of id would not fire it ...
SET perfopt.cache_mode = 'all';
SELECT o.note, i.price FROM cr_other o JOIN cr_items i USING (id) ORDER BY id;
SELECT o.note, i.price FROM cr_other o JOIN cr_items i USING (id) ORDER BY id;
SELECT perfopt.cache_last_outcome();
-- ... while one that reads only grp and price of cr_items is
SELECT o.note, sum(i.price) FROM cr_other o JOIN cr_items i ON i.grp = o.id GROUP BY o.note ORDER BY 1;
SELECT o.note, sum(i.price) FROM cr_other o JOIN cr_items i ON i.grp = o.id GROUP BY o.note ORDER BY 1;
SELECT perfopt.cache_last_outcome();
RESET perfopt.cache_mode;

-- SQL cursors (run by FETCH, a utility statement) never use the cache;
-- fetches return what a real run returns, backwards too.
BEGIN;
DECLARE c1 SCROLL CURSOR FOR SELECT note FROM cr_other ORDER BY id;
FETCH ALL c1;
SELECT perfopt.cache_last_outcome();
FETCH BACKWARD 1 c1;
DECLARE c2 CURSOR FOR SELECT note FROM cr_other ORDER BY id;
FETCH 1 c2;
SELECT perfopt.cache_last_outcome();
FETCH ALL c2;
SELECT perfopt.cache_last_outcome();
COMMIT;

-- Redefining a rule replaces it (one row per statement or table).
SELECT perfopt.cache_table('cr_other', interval '5 minutes');
SELECT kind, tbl, ttl FROM perfopt.cache_rules WHERE kind = 'table';

-- Statements that are never cached, with the reason.
SELECT perfopt.cache_query('SELECT random() FROM cr_items');
SELECT perfopt.cache_query('SELECT * FROM cr_items WHERE id = 1 FOR UPDATE');
SELECT perfopt.cache_query('SELECT now(), count(*) FROM cr_items');
SELECT perfopt.cache_query('SELECT count(*) FROM pg_class');
CREATE TEMP TABLE cr_temp (x int);
SELECT perfopt.cache_query('SELECT x FROM cr_temp');
CREATE MATERIALIZED VIEW cr_mv AS SELECT grp, sum(price) FROM cr_items GROUP BY grp;
SELECT perfopt.cache_query('SELECT * FROM cr_mv');
CREATE FUNCTION cr_double(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
SELECT perfopt.cache_query('SELECT cr_double(id) FROM cr_items');
SELECT perfopt.cache_query('SELECT * FROM cr_items TABLESAMPLE SYSTEM (50) REPEATABLE (1)');
SELECT perfopt.cache_query('WITH d AS (DELETE FROM cr_items WHERE id = 0 RETURNING id) SELECT * FROM d');
-- a stable function is accepted with an explicit ttl, which bounds its age
SELECT perfopt.cache_query('SELECT now() - interval ''1 day'' < now() AS sane, count(*) FROM cr_items', interval '1 second') <> 0 AS ok;
-- volatile functions at run time, under cache_mode = all, are bypassed too
SET perfopt.cache_mode = 'all';
SELECT count(*) > 0 FROM cr_items WHERE random() >= 0;
SELECT perfopt.cache_last_outcome();
SELECT * FROM cr_items WHERE id = 1 FOR SHARE;
SELECT perfopt.cache_last_outcome();
-- a statement's shape is remembered, but a built-in function made volatile
-- afterwards makes its next execution bypass the cache
SELECT count(*) FROM cr_items WHERE int4larger(grp, 2) = 2;
SELECT count(*) FROM cr_items WHERE int4larger(grp, 2) = 2;
SELECT perfopt.cache_last_outcome();
ALTER FUNCTION int4larger(int, int) VOLATILE;
SELECT count(*) FROM cr_items WHERE int4larger(grp, 2) = 2;
SELECT perfopt.cache_last_outcome();
ALTER FUNCTION int4larger(int, int) IMMUTABLE;
SELECT count(*) FROM cr_items WHERE int4larger(grp, 2) = 2;
SELECT perfopt.cache_last_outcome();
RESET perfopt.cache_mode;

-- Errors for bad arguments: SQLSTATE, message and hint.
CREATE FUNCTION cr_try(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    st text; msg text; hint text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(' | HINT: ' || nullif(hint, ''), '');
END $f$;
SELECT cr_try($q$SELECT perfopt.cache_query('SELEC 1')$q$);
SELECT cr_try($q$SELECT perfopt.cache_query('SELECT 1; SELECT 2')$q$);
SELECT cr_try($q$SELECT perfopt.cache_query('DELETE FROM cr_items')$q$);
SELECT cr_try($q$SELECT perfopt.cache_query(NULL)$q$);
SELECT cr_try($q$SELECT perfopt.cache_query('SELECT 1 FROM cr_items', interval '-1 second')$q$);
SELECT cr_try($q$SELECT perfopt.cache_query('SELECT 1 FROM cr_items', interval '0')$q$);
SELECT cr_try($q$SELECT perfopt.cache_table('no_such_table')$q$);
SELECT cr_try($q$SELECT perfopt.cache_table('cr_temp')$q$);
SELECT cr_try($q$SELECT perfopt.cache_table('cr_mv')$q$);
SELECT cr_try($q$SELECT perfopt.cache_table('pg_class')$q$);
SELECT cr_try($q$SELECT perfopt.uncache_query('SELECT 42 FROM cr_items')$q$);
SELECT cr_try($q$SELECT perfopt.uncache_table('cr_items')$q$);
SELECT cr_try($q$SELECT perfopt.cache_warm('DELETE FROM cr_items')$q$);

-- Removing rules removes triggers no other rule needs.
SELECT perfopt.uncache_table('cr_other');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cr_other'::regclass AND tgname = 'perfopt_cache_invalidate';
SELECT perfopt.uncache_query('SELECT note FROM cr_other WHERE id = $1');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cr_other'::regclass AND tgname = 'perfopt_cache_invalidate';
-- the shape is what counts, not the constants
SELECT perfopt.uncache_query('SELECT grp, count(*) FROM cr_items WHERE id > 7 GROUP BY grp ORDER BY grp');
SELECT perfopt.uncache_query('SELECT grp, count(*) FROM cr_items WHERE price > 7 GROUP BY grp ORDER BY grp');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cr_items'::regclass AND tgname = 'perfopt_cache_invalidate';
SELECT perfopt.uncache_query('SELECT now() - interval ''1 day'' < now() AS sane, count(*) FROM cr_items');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'cr_items'::regclass AND tgname = 'perfopt_cache_invalidate';
SELECT count(*) FROM perfopt.cache_rules;

DROP MATERIALIZED VIEW cr_mv;
DROP TABLE cr_items, cr_other, cr_temp;
DROP FUNCTION cr_double(int);
DROP FUNCTION cr_try(text);
-- leave the database as the next file expects it: no extension, no statistics
SELECT perfopt.reset_stats();
SELECT perfopt.cache_clear() >= 0 AS cleared;
DROP EXTENSION perfopt;
