-- Hypothetical indexes: perfopt.explain_hypothetical plans a statement with
-- indexes that do not exist.  Tables are small, analyzed in full (so their
-- statistics are exact and the plans deterministic), never autovacuumed.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
CREATE SCHEMA advisor_hypo;
SET search_path = advisor_hypo, public;

CREATE TABLE accounts (
    id int PRIMARY KEY,
    org int NOT NULL,
    score int NOT NULL,
    email text NOT NULL,
    status text NOT NULL,
    created timestamptz NOT NULL
) WITH (autovacuum_enabled = off);
INSERT INTO accounts
SELECT i, i % 500, i % 1000, 'User' || i || '@Example.com',
       CASE WHEN i % 100 = 0 THEN 'open' ELSE 'closed' END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 20000) i;
ANALYZE accounts;

-- plan lines without their costs, which depend on the platform's float math
CREATE FUNCTION plan_shape(q text, idx text[]) RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT regexp_replace(line, '  \(cost=.*\)$', '')
      FROM perfopt.explain_hypothetical(q, idx) e,
           regexp_split_to_table(e.plan, E'\n') line
$$;

-- multi-column: both equality columns become index conditions
SELECT plan_shape('SELECT * FROM accounts WHERE org = 7 AND score = 7',
                  ARRAY['CREATE INDEX ON accounts (org, score)']);
-- it is cheaper than without, and reported as used
SELECT total_cost < cost_without AS cheaper, indexes_used
  FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7 AND score = 7',
                                    ARRAY['CREATE INDEX ON accounts (org, score)']);
-- the planner takes the better of two hypothetical indexes
SELECT indexes_used
  FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7 AND score = 7',
                                    ARRAY['CREATE INDEX ON accounts (status)',
                                          'CREATE INDEX ON accounts (org, score)']);
-- nothing was created: the primary key is the only index
SELECT count(*) FROM pg_indexes WHERE schemaname = 'advisor_hypo';

-- ORDER BY ... LIMIT served by a descending index, no sort
SELECT plan_shape('SELECT id FROM accounts ORDER BY created DESC LIMIT 5',
                  ARRAY['CREATE INDEX ON accounts (created DESC)']);
-- an expression index
SELECT plan_shape('SELECT id FROM accounts WHERE lower(email) = ''user5@example.com''',
                  ARRAY['CREATE INDEX ON accounts (lower(email))']);
-- a partial index is used only where its predicate holds
SELECT plan_shape('SELECT id FROM accounts WHERE status = ''open'' ORDER BY created LIMIT 5',
                  ARRAY['CREATE INDEX ON accounts (created) WHERE status = ''open''']);
SELECT indexes_used
  FROM perfopt.explain_hypothetical('SELECT id FROM accounts WHERE status = ''closed'' ORDER BY created LIMIT 5',
                                    ARRAY['CREATE INDEX ON accounts (created) WHERE status = ''open''']);
-- INCLUDE columns make an index-only scan possible (once VACUUM has set the
-- visibility map)
VACUUM accounts;
SELECT plan_shape('SELECT org, score FROM accounts WHERE org = 3',
                  ARRAY['CREATE INDEX ON accounts (org) INCLUDE (score)']);
-- a low-selectivity filter is not worth an index: the planner keeps the seq scan
SELECT plan_shape('SELECT * FROM accounts WHERE status = ''closed''',
                  ARRAY['CREATE INDEX ON accounts (status)']);

-- bad input: clear errors with their SQLSTATE
\set VERBOSITY sqlstate
SELECT * FROM perfopt.explain_hypothetical('SELEC 1', '{}');
SELECT * FROM perfopt.explain_hypothetical('SELECT 1; DROP TABLE accounts', '{}');
SELECT * FROM perfopt.explain_hypothetical('DROP TABLE accounts', '{}');
SELECT * FROM perfopt.explain_hypothetical('SELECT * FROM nosuchtable', '{}');
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['DROP TABLE accounts']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON nosuchtable (a)']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON accounts (nosuchcolumn)']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON accounts USING hash (org)']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON accounts (org']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY[NULL]::text[]);
SELECT * FROM perfopt.recommend_indexes('VACUUM accounts');
\set VERBOSITY default
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON accounts (org']);
-- the table is still there and still unindexed: nothing was executed
SELECT count(*) FROM accounts;

-- UPDATE and DELETE are planned, never executed
SELECT indexes_used FROM perfopt.explain_hypothetical(
    'DELETE FROM accounts WHERE org = 5', ARRAY['CREATE INDEX ON accounts (org)']);
SELECT count(*) FROM accounts WHERE org = 5;

-- views: the index goes on the table behind the view
CREATE VIEW open_accounts AS SELECT * FROM accounts WHERE status = 'open';
SELECT indexes_used FROM perfopt.explain_hypothetical(
    'SELECT * FROM open_accounts WHERE org = 100', ARRAY['CREATE INDEX ON accounts (org)']);

-- partitions: a hypothetical index on one partition is used by scans of it
CREATE TABLE measurements (id int, day int, value int) PARTITION BY RANGE (day);
CREATE TABLE measurements_1 PARTITION OF measurements FOR VALUES FROM (0) TO (100)
    WITH (autovacuum_enabled = off);
CREATE TABLE measurements_2 PARTITION OF measurements FOR VALUES FROM (100) TO (200)
    WITH (autovacuum_enabled = off);
INSERT INTO measurements SELECT i, i % 200, i % 1000 FROM generate_series(1, 20000) i;
ANALYZE measurements;
SELECT plan_shape('SELECT * FROM measurements WHERE day = 5 AND value = 7',
                  ARRAY['CREATE INDEX ON measurements_1 (value)']);
-- advice on a partitioned table goes to the partitions the plan reads
SELECT index_definition FROM perfopt.recommend_indexes(
    'SELECT * FROM measurements WHERE day = 5 AND value = 7');
\set VERBOSITY sqlstate
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON measurements (value)']);
\set VERBOSITY default

-- inheritance: the parent's own rows and each child are separate relations
CREATE TABLE animals (id int, kind text, legs int) WITH (autovacuum_enabled = off);
CREATE TABLE dogs () INHERITS (animals) WITH (autovacuum_enabled = off);
INSERT INTO animals SELECT i, 'cat', 4 FROM generate_series(1, 5000) i;
INSERT INTO dogs SELECT i, 'dog', i % 100 FROM generate_series(1, 20000) i;
ANALYZE animals;
ANALYZE dogs;
SELECT indexes_used FROM perfopt.explain_hypothetical(
    'SELECT * FROM animals WHERE legs = 3', ARRAY['CREATE INDEX ON dogs (legs)']);
SELECT index_definition FROM perfopt.recommend_indexes('SELECT * FROM animals WHERE legs = 3');
-- and on a view, to the table behind it
SELECT index_definition FROM perfopt.recommend_indexes('SELECT * FROM open_accounts WHERE org = 100');

SET client_min_messages = warning;
DROP SCHEMA advisor_hypo CASCADE;
-- leave the database as the next file expects it: no extension, no statistics
SELECT perfopt.reset_stats();
SELECT perfopt.advisor_reset();
DROP EXTENSION perfopt;
