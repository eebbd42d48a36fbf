-- Result cache: never serve one role's rows to another.  Row-level security
-- with two roles, a policy enabled after caching began, and per-role entries.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never

CREATE ROLE cache_alice;
CREATE ROLE cache_bob;
GRANT USAGE ON SCHEMA perfopt TO cache_alice, cache_bob;
CREATE TABLE rls_notes (owner name NOT NULL, body text NOT NULL);
INSERT INTO rls_notes VALUES ('cache_alice', 'alice-1'), ('cache_alice', 'alice-2'), ('cache_bob', 'bob-1');
GRANT SELECT ON rls_notes TO cache_alice, cache_bob;

-- cached while it has no row security: each role gets its own entry
SELECT perfopt.cache_table('rls_notes');
SET ROLE cache_alice;
SELECT owner, body FROM rls_notes ORDER BY body;
SELECT owner, body FROM rls_notes ORDER BY body;
SELECT perfopt.cache_last_outcome();
SET ROLE cache_bob;
SELECT owner, body FROM rls_notes ORDER BY body;
SELECT perfopt.cache_last_outcome();
RESET ROLE;

-- enabling row security takes effect at once, cached entries or not
ALTER TABLE rls_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON rls_notes USING (owner = current_user);
SET ROLE cache_alice;
SELECT owner, body FROM rls_notes ORDER BY body;
SELECT perfopt.cache_last_outcome();
SELECT owner, body FROM rls_notes ORDER BY body;
SET ROLE cache_bob;
SELECT owner, body FROM rls_notes ORDER BY body;
SELECT owner, body FROM rls_notes ORDER BY body;
SELECT perfopt.cache_last_outcome();
SET perfopt.cache_mode = 'all';
SELECT owner, body FROM rls_notes ORDER BY body;
SELECT perfopt.cache_last_outcome();
RESET perfopt.cache_mode;
RESET ROLE;
-- and a table with row security cannot be given a rule
SELECT perfopt.uncache_table('rls_notes');
SELECT perfopt.cache_table('rls_notes');
SELECT perfopt.cache_query('SELECT body FROM rls_notes');

-- Through a view owned by a role that may read everything: the view's
-- owner's privileges apply, the entry is still per calling role.
ALTER TABLE rls_notes DISABLE ROW LEVEL SECURITY;
CREATE TABLE rls_open (id int, secret text);
INSERT INTO rls_open VALUES (1, 's1'), (2, 's2');
CREATE VIEW rls_open_ids AS SELECT id FROM rls_open;
GRANT SELECT ON rls_open_ids TO cache_alice;
SELECT perfopt.cache_table('rls_open');
SET ROLE cache_alice;
SELECT id FROM rls_open_ids ORDER BY id;
SELECT id FROM rls_open_ids ORDER BY id;
SELECT perfopt.cache_last_outcome();
SELECT id, secret FROM rls_open ORDER BY id;
SET ROLE cache_bob;
SELECT id FROM rls_open_ids ORDER BY id;
RESET ROLE;
-- the superuser's cached answer is not bob's
SELECT id, secret FROM rls_open ORDER BY id;
SELECT id, secret FROM rls_open ORDER BY id;
SELECT perfopt.cache_last_outcome();
SET ROLE cache_bob;
SELECT id, secret FROM rls_open ORDER BY id;
RESET ROLE;

SELECT perfopt.uncache_table('rls_open');
DROP VIEW rls_open_ids;
DROP TABLE rls_notes, rls_open;
DROP OWNED BY cache_alice, cache_bob;
DROP ROLE cache_alice, cache_bob;
-- leave the database as the next file expects it: no extension, no statistics
SELECT perfopt.reset_stats();
SELECT perfopt.cache_clear() >= 0 AS cleared;
DROP EXTENSION perfopt;
