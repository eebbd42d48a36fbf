-- Result cache: rows kept with the text a client received.  Output
-- settings (extra_float_digits, bytea_output, DateStyle, IntervalStyle,
-- TimeZone, client encoding) are in the key like every setting not at its
-- default, since a statement may also apply them inside the query (x::text):
-- under other values the statement is computed and stored again.  Columns
-- whose text may change without a write (an enum's labels) go through the
-- output functions again.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
SET perfopt.cache_mode = rules;

CREATE TYPE ct_mood AS ENUM ('sad', 'happy');
CREATE TABLE ct_vals (id int PRIMARY KEY, f float8, b bytea, d date, i interval,
                      ts timestamptz, n numeric, t text, m ct_mood);
INSERT INTO ct_vals VALUES
  (1, 0.1::float8 + 0.2::float8, '\x00ff41', '2026-11-25', '1 day 02:03:04',
   '2026-11-25 10:00:00+00', 12.50, 'naïve', 'happy'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
SELECT perfopt.cache_table('ct_vals');

\set q 'SELECT id, f, b, d, i, ts, n, t FROM ct_vals ORDER BY id'
SET TimeZone = 'UTC';
:q;
:q;
SELECT perfopt.cache_last_outcome();

-- each setting changes the text: an entry of its own
SET extra_float_digits = 0;
:q;
SELECT perfopt.cache_last_outcome();
RESET extra_float_digits;
SET bytea_output = 'escape';
:q;
SELECT perfopt.cache_last_outcome();
RESET bytea_output;
SET DateStyle = 'SQL, DMY';
:q;
SELECT perfopt.cache_last_outcome();
RESET DateStyle;
SET IntervalStyle = 'iso_8601';
:q;
SELECT perfopt.cache_last_outcome();
RESET IntervalStyle;
-- and back: the text the entry keeps
:q;
SELECT perfopt.cache_last_outcome();

-- an enum's label can change without any write to the table: a stored
-- label would then be stale, so its column is printed from the row
\set e 'SELECT id, m FROM ct_vals WHERE id = 1'
:e;
:e;
SELECT perfopt.cache_last_outcome();
ALTER TYPE ct_mood RENAME VALUE 'happy' TO 'glad';
:e;
SELECT perfopt.cache_last_outcome();

-- a binary cursor over the statement gets the binary form, not the text
-- (8 bytes of 'A' read as int8 are 4702111234474983745)
CREATE TABLE ct_big (id int PRIMARY KEY, v int8);
INSERT INTO ct_big VALUES (1, 4702111234474983745);
SELECT perfopt.cache_table('ct_big');
SELECT v FROM ct_big WHERE id = 1;
SELECT v FROM ct_big WHERE id = 1;
SELECT perfopt.cache_last_outcome();
BEGIN;
DECLARE c BINARY CURSOR FOR SELECT v FROM ct_big WHERE id = 1;
FETCH ALL FROM c;
SELECT perfopt.cache_last_outcome();
COMMIT;

SELECT perfopt.uncache_table('ct_vals');
SELECT perfopt.uncache_table('ct_big');
DROP TABLE ct_vals, ct_big;
DROP TYPE ct_mood;
