-- Settings read inside a statement (output functions, built-ins, custom
-- settings through current_setting) are in the cache's key, listed or not;
-- answers that belong to one session are never shared, whatever the TTL.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

CREATE TABLE cs_vals (id int PRIMARY KEY, f float8, b bytea, name text, tenant text);
INSERT INTO cs_vals VALUES (1, 0.1::float8 + 0.2::float8, '\x00ff', 'Mixed', 'a'), (2, 1e-7, 'ab', 'plain', 'b');
SELECT perfopt.cache_table('cs_vals') IS NOT NULL AS ruled;

-- each statement: stored, hit, then the setting changes and the answer
-- is computed again under it (a miss with the new text), then back
SELECT f::text FROM cs_vals ORDER BY id;
SELECT f::text FROM cs_vals ORDER BY id;
SELECT perfopt.cache_last_outcome();
SET extra_float_digits = 0;
SELECT f::text FROM cs_vals ORDER BY id;
SELECT perfopt.cache_last_outcome();
RESET extra_float_digits;
SELECT f::text FROM cs_vals ORDER BY id;
SELECT perfopt.cache_last_outcome();

SELECT b::text FROM cs_vals ORDER BY id;
SET bytea_output = 'escape';
SELECT b::text FROM cs_vals ORDER BY id;
SELECT perfopt.cache_last_outcome();
RESET bytea_output;

SELECT quote_ident(name) FROM cs_vals ORDER BY id;
SET quote_all_identifiers = on;
SELECT quote_ident(name) FROM cs_vals ORDER BY id;
SELECT perfopt.cache_last_outcome();
RESET quote_all_identifiers;

SELECT count(*) FROM cs_vals WHERE '2020-01-01 12:00 EST'::timestamptz = '2020-01-01 17:00 UTC';
SET timezone_abbreviations = 'Australia';
SELECT count(*) FROM cs_vals WHERE '2020-01-01 12:00 EST'::timestamptz = '2020-01-01 17:00 UTC';
SELECT perfopt.cache_last_outcome();
RESET timezone_abbreviations;

SELECT xmlelement(name v, b)::text FROM cs_vals ORDER BY id;
SET xmlbinary = 'hex';
SELECT xmlelement(name v, b)::text FROM cs_vals ORDER BY id;
SELECT perfopt.cache_last_outcome();
RESET xmlbinary;

-- the multi-tenant pattern under a TTL rule: keyed on the custom setting
SET app.tenant = 'a';
SELECT perfopt.cache_query('SELECT id FROM cs_vals WHERE tenant = current_setting(''app.tenant'') ORDER BY id', '1 hour') <> 0 AS ruled;
SELECT id FROM cs_vals WHERE tenant = current_setting('app.tenant') ORDER BY id;
SELECT id FROM cs_vals WHERE tenant = current_setting('app.tenant') ORDER BY id;
SELECT perfopt.cache_last_outcome();
SET app.tenant = 'b';
SELECT id FROM cs_vals WHERE tenant = current_setting('app.tenant') ORDER BY id;
SELECT perfopt.cache_last_outcome();
-- current_setting() of a setting that cannot change other answers is keyed too
SET application_name = 'one';
SELECT current_setting('application_name'), count(*) FROM cs_vals;
SELECT perfopt.cache_query('SELECT current_setting(''application_name''), count(*) FROM cs_vals', '1 hour') <> 0 AS ruled;
SELECT current_setting('application_name'), count(*) FROM cs_vals;
SELECT current_setting('application_name'), count(*) FROM cs_vals;
SELECT perfopt.cache_last_outcome();
SET application_name = 'two';
SELECT current_setting('application_name'), count(*) FROM cs_vals;
SELECT perfopt.cache_last_outcome();
RESET application_name;

-- answers of one backend, client or transaction: never shared, even with a TTL
SELECT perfopt.cache_table('cs_vals', '1 hour') IS NOT NULL AS ruled;
SELECT pg_backend_pid() = pg_backend_pid() AS same, count(*) FROM cs_vals;
SELECT pg_backend_pid() = pg_backend_pid() AS same, count(*) FROM cs_vals;
SELECT perfopt.cache_last_outcome();
SELECT inet_client_port() IS NULL AS local_socket, count(*) FROM cs_vals;
SELECT perfopt.cache_last_outcome();
SELECT txid_current() > 0 AS has_xid, count(*) FROM cs_vals;
SELECT perfopt.cache_last_outcome();
-- while now() under a TTL is allowed (old, never someone else's)
SELECT now() IS NOT NULL AS has_time, count(*) FROM cs_vals;
SELECT now() IS NOT NULL AS has_time, count(*) FROM cs_vals;
SELECT perfopt.cache_last_outcome();
SELECT perfopt.cache_query('SELECT pg_backend_pid(), count(*) FROM cs_vals', '1 hour');

SELECT perfopt.uncache_query('SELECT id FROM cs_vals WHERE tenant = current_setting(''app.tenant'') ORDER BY id');
SELECT perfopt.uncache_query('SELECT current_setting(''application_name''), count(*) FROM cs_vals');
SELECT perfopt.uncache_table('cs_vals');
DROP TABLE cs_vals;

-- a result being captured must never reach the 1GB a backend can allocate
-- at once (the statement would fail): the largest entry is 512MB
SET perfopt.cache_max_entry_size = '600MB';
SET perfopt.cache_max_entry_size = '512MB';
SHOW perfopt.cache_max_entry_size;
RESET perfopt.cache_max_entry_size;
