-- What-if on existing indexes: perfopt.explain_hypothetical hides indexes,
-- perfopt.unused_indexes and perfopt.duplicate_indexes tell what the
-- captured workload would lose without each, and perfopt.findings reports a
-- recommended index that was created but is not used by its statements.
-- Small tables analyzed in full: exact statistics, deterministic plans.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
CREATE SCHEMA advisor_whatif;
SET search_path = advisor_whatif, public;
SET perfopt.advisor_max_candidates = 1000;

CREATE TABLE accounts (id int PRIMARY KEY, org int NOT NULL, score int NOT NULL,
                       name text NOT NULL) WITH (autovacuum_enabled = off);
INSERT INTO accounts SELECT i, i % 500, i % 1000, repeat('n', 60) || i
  FROM generate_series(1, 20000) i;
CREATE INDEX accounts_org_idx ON accounts (org);
-- a prefix duplicate, much wider: the planner prefers the narrow one
CREATE INDEX accounts_org_name_idx ON accounts (org, name);
-- a table no statement of the workload reads
CREATE TABLE quiet (id int, v int) WITH (autovacuum_enabled = off);
INSERT INTO quiet SELECT i, i FROM generate_series(1, 1000) i;
CREATE INDEX quiet_v_idx ON quiet (v);
-- the closing-the-loop table
CREATE TABLE docs (id int PRIMARY KEY, code text NOT NULL, body text)
    WITH (autovacuum_enabled = off);
INSERT INTO docs SELECT i, 'c' || i, repeat('x', 50) FROM generate_series(1, 20000) i;
ANALYZE accounts, quiet, docs;

-- plan lines without their costs, which depend on the platform's float math
CREATE FUNCTION plan_shape(q text, idx text[], hide regclass[]) RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT regexp_replace(line, '  \(cost=.*\)$', '')
      FROM perfopt.explain_hypothetical(q, idx, hide) e,
           regexp_split_to_table(e.plan, E'\n') line
$$;

-- as planned today: the narrower index
SELECT plan_shape('SELECT * FROM accounts WHERE org = 7', '{}', '{}');
-- the two-argument call is the same, row for row
SELECT (SELECT e FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7', '{}') e) =
       (SELECT e FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7', '{}', '{}') e)
       AS same;
-- without it: the wider one, at a higher cost than today's
SELECT plan_shape('SELECT * FROM accounts WHERE org = 7', '{}', '{accounts_org_idx}');
SELECT total_cost > cost_without AS dearer, indexes_used
  FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7', '{}',
                                    '{accounts_org_idx}');
-- without both: a sequential scan
SELECT plan_shape('SELECT * FROM accounts WHERE org = 7', '{}',
                  '{accounts_org_idx, accounts_org_name_idx}');
-- hidden and hypothetical together: the hypothetical one replaces it
SELECT plan_shape('SELECT * FROM accounts WHERE org = 7',
                  ARRAY['CREATE INDEX ON accounts (org, score)'],
                  '{accounts_org_idx, accounts_org_name_idx}');
-- hiding changes nothing for the statements after it, nor on error
SELECT plan_shape('SELECT * FROM accounts WHERE org = 7', '{}', '{}');
SELECT 1 FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7 AND nosuch = 1',
                                           '{}', '{accounts_org_idx}');
SELECT plan_shape('SELECT * FROM accounts WHERE org = 7', '{}', '{}');
EXPLAIN (COSTS OFF) SELECT * FROM accounts WHERE org = 7;

-- bad indexes to hide
\set VERBOSITY default
SELECT * FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7', '{}',
                                           '{accounts}');
SELECT * FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7', '{}',
                                           '{quiet_v_idx}');
SELECT * FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7', '{}',
                                           ARRAY[NULL]::regclass[]);
SELECT * FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7', '{}',
                                           '{no_such_idx}');
SELECT * FROM perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 7', '{}',
                                           ARRAY[4000000001::oid]::regclass[]);
CREATE TABLE parted (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
CREATE INDEX parted_v_idx ON parted (v);
SELECT * FROM perfopt.explain_hypothetical('SELECT * FROM parted WHERE v = 1', '{}',
                                           '{parted_v_idx}');
-- the partition's own index can be hidden
SELECT plan_shape('SELECT * FROM parted WHERE v = 1', '{}', '{}');
SELECT plan_shape('SELECT * FROM parted WHERE v = 1', '{}', '{parted_1_v_idx}');
DROP TABLE parted;
CREATE TABLE secret (id int, v int);
CREATE INDEX secret_v_idx ON secret (v);
CREATE ROLE whatif_user;
SELECT 'secret_v_idx'::regclass::oid AS secret_idx \gset
SET ROLE whatif_user;
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', '{}', ARRAY[:secret_idx]::regclass[]);
RESET ROLE;
\set VERBOSITY terse

-- the workload: its loads are not part of it
SELECT pg_stat_force_next_flush();
SELECT perfopt.advisor_reset();
-- no statement that reads a table captured yet: no workload to cost against
SELECT index_name, workload_cost_increase FROM perfopt.unused_indexes
 WHERE schema_name = 'advisor_whatif' ORDER BY index_name;
\o /dev/null
SELECT format('SELECT * FROM accounts WHERE org = %s', i) FROM generate_series(1, 5) i \gexec
SELECT format('SELECT id FROM accounts WHERE score = %s', i) FROM generate_series(1, 5) i \gexec
SELECT format('SELECT * FROM docs WHERE code = %L', 'c' || i) FROM generate_series(1, 5) i \gexec
SELECT pg_stat_force_next_flush();
\o
-- created after the statements on score ran: unused, but they would use it
CREATE INDEX accounts_score_idx ON accounts (score);
ANALYZE accounts;

-- the statements on org use accounts_org_idx, so hiding
-- accounts_org_name_idx costs nothing; accounts_score_idx would serve the statements
-- on score; no statement reads quiet
SELECT index_name, idx_scan, workload_cost_increase > 0 AS rises,
       workload_cost_increase = 0 AS zero
  FROM perfopt.unused_indexes
 WHERE schema_name = 'advisor_whatif' ORDER BY index_name;
-- a role that may not read the statements' statistics gets no workload
SET ROLE whatif_user;
SELECT index_name, workload_cost_increase FROM perfopt.unused_indexes
 WHERE index_name = 'accounts_score_idx';
RESET ROLE;
-- accounts_org_idx, covered by the wider index, is what the statements on
-- org use: the workload would pay for dropping it
SELECT index_name, covered_by, kind, workload_cost_increase > 0 AS rises
  FROM perfopt.duplicate_indexes WHERE schema_name = 'advisor_whatif';
-- the increase is the statements' calls times their cost difference
SELECT d.workload_cost_increase =
       round((5 * (h.total_cost - h.cost_without))::numeric, 2) AS five_calls
  FROM perfopt.duplicate_indexes d,
       perfopt.explain_hypothetical('SELECT * FROM accounts WHERE org = 1', '{}',
                                    '{accounts_org_idx}') h
 WHERE d.schema_name = 'advisor_whatif';

-- closing the loop: the recommendation for the statements on docs is
-- remembered when the recommendations are read
SELECT index_definition, cardinality(queryids) AS statements
  FROM perfopt.index_recommendations WHERE table_name = 'advisor_whatif.docs';
-- created, but under another collation: equality on code cannot use it
CREATE INDEX docs_code_c_idx ON docs (code COLLATE "C");
ANALYZE docs;
-- not a finding until the statements run again
SELECT count(*) FROM perfopt.findings WHERE kind = 'recommended_index_unused';
\o /dev/null
SELECT format('SELECT * FROM docs WHERE code = %L', 'c' || i) FROM generate_series(6, 8) i \gexec
SELECT pg_stat_force_next_flush();
\o
SELECT relation, query,
       regexp_replace(detail, '  \(cost=[^)]*\)', '', 'g') AS detail
  FROM perfopt.findings WHERE kind = 'recommended_index_unused';
-- nor to a role that may not read the statement
SET ROLE whatif_user;
SELECT count(*) FROM perfopt.findings WHERE kind = 'recommended_index_unused';
RESET ROLE;
-- the index as recommended, which the statements use: no finding
DROP INDEX docs_code_c_idx;
CREATE INDEX docs_code_idx ON docs (code);
ANALYZE docs;
\o /dev/null
SELECT format('SELECT * FROM docs WHERE code = %L', 'c' || i) FROM generate_series(9, 10) i \gexec
SELECT pg_stat_force_next_flush();
\o
SELECT count(*) FROM perfopt.findings WHERE kind = 'recommended_index_unused';

DROP SCHEMA advisor_whatif CASCADE;
DROP ROLE whatif_user;
