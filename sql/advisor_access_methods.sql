-- Access methods beyond btree: hypothetical GIN and BRIN indexes costed by
-- the planner (perfopt.explain_hypothetical), and the advisor's candidates
-- for them: GIN for jsonb containment and key existence, arrays and
-- trigrams (pg_trgm); BRIN for range filters on a column that follows the
-- table's physical order in a table that is mostly appended to.  Tables are
-- small, analyzed in full and never autovacuumed: the statistics, plans and
-- advice are deterministic.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
CREATE SCHEMA advisor_am;
SET search_path = advisor_am, public;
SET perfopt.advisor_max_candidates = 1000;

CREATE TABLE docs (id int PRIMARY KEY, doc jsonb NOT NULL, tags text[] NOT NULL,
                   name text NOT NULL, pad text NOT NULL)
    WITH (autovacuum_enabled = off);
INSERT INTO docs
SELECT i, jsonb_build_object('k', i % 2000, 'kind', CASE WHEN i % 1000 = 0 THEN 'rare' ELSE 'common' END,
                             'key' || (i % 2000), true),
       ARRAY['t' || (i % 2000), 'g' || (i % 5)],
       'Name' || i || ' ' || md5(i::text), repeat('x', 200)
  FROM generate_series(1, 20000) i;
ANALYZE docs;

-- plan lines without their costs, which depend on the platform's float math
CREATE FUNCTION plan_shape(q text, idx text[]) RETURNS SETOF text
LANGUAGE sql AS $$
    SELECT regexp_replace(line, '  \(cost=.*\)$', '')
      FROM perfopt.explain_hypothetical(q, idx) e,
           regexp_split_to_table(e.plan, E'\n') line
$$;

-- hypothetical GIN indexes: jsonb containment with jsonb_path_ops, key
-- existence with jsonb_ops, arrays with array_ops
SELECT plan_shape('SELECT id FROM docs WHERE doc @> ''{"k": 7}''',
                  ARRAY['CREATE INDEX ON docs USING gin (doc jsonb_path_ops)']);
SELECT plan_shape('SELECT id FROM docs WHERE doc ? ''key7''',
                  ARRAY['CREATE INDEX ON docs USING gin (doc)']);
SELECT plan_shape('SELECT id FROM docs WHERE tags && ARRAY[''t7'']',
                  ARRAY['CREATE INDEX ON docs USING gin (tags)']);
SELECT total_cost < cost_without AS cheaper, indexes_used
  FROM perfopt.explain_hypothetical('SELECT id FROM docs WHERE doc @> ''{"k": 7}''',
                                    ARRAY['CREATE INDEX ON docs USING gin (doc jsonb_path_ops)']);
-- jsonb_path_ops does not serve key existence: the planner ignores it
SELECT indexes_used
  FROM perfopt.explain_hypothetical('SELECT id FROM docs WHERE doc ? ''key7''',
                                    ARRAY['CREATE INDEX ON docs USING gin (doc jsonb_path_ops)']);
-- nothing was created
SELECT count(*) FROM pg_indexes WHERE schemaname = 'advisor_am';

-- the advisor's GIN candidates: jsonb_path_ops when containment is the only
-- use of the column in the statement, jsonb_ops otherwise
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE doc @> ''{"k": 7}''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE doc ? ''key7''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE doc ?| ARRAY[''key7'', ''key8'']');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE doc @> ''{"k": 7}'' AND doc ? ''key7''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE tags @> ARRAY[''t7'']');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE tags && ARRAY[''t7'', ''t8'']');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE tags <@ ARRAY[''t7'', ''g2'']');
-- a partial GIN index, and one on an expression
SELECT indexes_used
  FROM perfopt.explain_hypothetical('SELECT id FROM docs WHERE doc ? ''key7'' AND id > 100',
                                    ARRAY['CREATE INDEX ON docs USING gin (doc) WHERE id > 100']);
SELECT plan_shape('SELECT doc FROM docs WHERE (doc -> ''kind'') ? ''rare''',
                  ARRAY['CREATE INDEX ON docs USING gin ((doc -> ''kind''))']);
-- a path read with ->> is an expression key for a btree
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE (doc ->> ''k'') = ''7''');
-- an overlap every row matches gets nothing
SELECT count(*) FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE tags && ARRAY[''g0'', ''g1'', ''g2'', ''g3'', ''g4'']');

-- trigrams: no candidate for an infix LIKE without pg_trgm, one with it
SELECT count(*) FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE name LIKE ''%e4da3b7%''');
CREATE EXTENSION pg_trgm;
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE name LIKE ''%e4da3b7%''');
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE name ILIKE ''%E4DA3B7%''');
SELECT plan_shape('SELECT id FROM docs WHERE name LIKE ''%e4da3b7%''',
                  ARRAY['CREATE INDEX ON docs USING gin (name gin_trgm_ops)']);
-- in a schema off the search path, the operator class is qualified
CREATE SCHEMA trgm_home;
ALTER EXTENSION pg_trgm SET SCHEMA trgm_home;
SELECT index_definition FROM perfopt.recommend_indexes('SELECT id FROM docs WHERE name LIKE ''%e4da3b7%''');
DROP EXTENSION pg_trgm;

-- BRIN: an append-only table loaded in time order, and the same rows
-- shuffled (no correlation with the physical order); BRIN takes the place
-- of the btree on the ordered one
CREATE TABLE ticks (id int, at timestamptz, v int, pad text)
    WITH (autovacuum_enabled = off);
INSERT INTO ticks
SELECT i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', i % 100, repeat('x', 300)
  FROM generate_series(1, 30000) i;
CREATE TABLE ticks_shuffled (LIKE ticks) WITH (autovacuum_enabled = off);
INSERT INTO ticks_shuffled SELECT * FROM ticks ORDER BY md5(id::text);
ANALYZE ticks, ticks_shuffled;
SELECT tablename, abs(correlation) > 0.9 AS ordered FROM pg_stats
 WHERE schemaname = 'advisor_am' AND attname = 'at' ORDER BY tablename;
SELECT plan_shape('SELECT count(*) FROM ticks WHERE at >= ''2024-01-10'' AND at < ''2024-01-11''',
                  ARRAY['CREATE INDEX ON ticks USING brin (at)']);
SELECT total_cost < cost_without AS cheaper, indexes_used
  FROM perfopt.explain_hypothetical('SELECT count(*) FROM ticks WHERE at >= ''2024-01-10'' AND at < ''2024-01-11''',
                                    ARRAY['CREATE INDEX ON ticks USING brin (at)']);
-- a hypothetical BRIN index is costed at its own range size (WITH
-- pages_per_range): smaller ranges read fewer pages for one hour, and the
-- cost is what the planner gives the real index built with that option
CREATE FUNCTION plan_cost(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE j json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
    RETURN (j->0->'Plan'->>'Total Cost')::float8;
END $$;
SELECT h8.total_cost < h128.total_cost AS smaller_ranges_cheaper, h8.indexes_used
  FROM perfopt.explain_hypothetical('SELECT count(*) FROM ticks WHERE at >= ''2024-01-10'' AND at < ''2024-01-10 01:00''',
                                    ARRAY['CREATE INDEX ON ticks USING brin (at) WITH (pages_per_range = 8)']) h8,
       perfopt.explain_hypothetical('SELECT count(*) FROM ticks WHERE at >= ''2024-01-10'' AND at < ''2024-01-10 01:00''',
                                    ARRAY['CREATE INDEX ON ticks USING brin (at)']) h128;
SELECT h8.total_cost AS hypo_cost8, h128.total_cost AS hypo_cost128
  FROM perfopt.explain_hypothetical('SELECT count(*) FROM ticks WHERE at >= ''2024-01-10'' AND at < ''2024-01-10 01:00''',
                                    ARRAY['CREATE INDEX ON ticks USING brin (at) WITH (pages_per_range = 8)']) h8,
       perfopt.explain_hypothetical('SELECT count(*) FROM ticks WHERE at >= ''2024-01-10'' AND at < ''2024-01-10 01:00''',
                                    ARRAY['CREATE INDEX ON ticks USING brin (at)']) h128 \gset
BEGIN;
CREATE INDEX ticks_at_brin8 ON ticks USING brin (at) WITH (pages_per_range = 8);
SELECT plan_cost('SELECT count(*) FROM ticks WHERE at >= ''2024-01-10'' AND at < ''2024-01-10 01:00''') AS built_cost8 \gset
SELECT abs(:built_cost8 / :hypo_cost8 - 1) < 0.02 AS costed_as_built,
       abs(:built_cost8 / :hypo_cost128 - 1) > 0.2 AS default_range_differs;
ROLLBACK;
-- options are checked as CREATE INDEX checks them
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON ticks USING brin (at) WITH (pages_per_range = 0)']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON ticks (at) WITH (pages_per_range = 8)']);
SELECT index_definition, estimated_size_bytes < 100000 AS tiny
  FROM perfopt.recommend_indexes('SELECT count(*) FROM ticks WHERE at >= ''2024-01-10'' AND at < ''2024-01-11''');
SELECT index_definition
  FROM perfopt.recommend_indexes('SELECT count(*) FROM ticks_shuffled WHERE at >= ''2024-01-10'' AND at < ''2024-01-11''');

-- the same ordered table: BRIN until it is rewritten after the advisor
-- began to capture it, when it is no longer mostly appended to
CREATE TABLE ticks_rewritten (LIKE ticks) WITH (autovacuum_enabled = off);
INSERT INTO ticks_rewritten SELECT * FROM ticks;
ANALYZE ticks_rewritten;
SELECT pg_stat_force_next_flush();
\o /dev/null
SELECT count(*) FROM ticks_rewritten WHERE at >= '2024-01-10' AND at < '2024-01-11';
\o
SELECT index_definition
  FROM perfopt.recommend_indexes('SELECT count(*) FROM ticks_rewritten WHERE at >= ''2024-01-10'' AND at < ''2024-01-11''');
UPDATE ticks_rewritten SET v = v + 1;
SELECT pg_stat_force_next_flush();
SELECT index_definition
  FROM perfopt.recommend_indexes('SELECT count(*) FROM ticks_rewritten WHERE at >= ''2024-01-10'' AND at < ''2024-01-11''');

-- the write cost of each access method on a captured workload, with rows
-- appended since the capture began: a GIN index maintains an entry per key
-- of the row (more than the btree on the same table), a BRIN index almost
-- never changes for an appended row (less than the btree on the same table)
SELECT pg_stat_force_next_flush();
SELECT perfopt.advisor_reset();
\o /dev/null
SELECT format('SELECT count(*) FROM ticks WHERE at >= %L AND at < %L',
              timestamptz '2024-01-10 00:00:00+00' + i * interval '1 day',
              timestamptz '2024-01-11 00:00:00+00' + i * interval '1 day')
  FROM generate_series(1, 3) i \gexec
SELECT format('SELECT count(*) FROM ticks WHERE v = %s', i) FROM generate_series(1, 3) i \gexec
SELECT format('SELECT id FROM docs WHERE doc @> %L', jsonb_build_object('k', i))
  FROM generate_series(1, 3) i \gexec
SELECT format('SELECT id FROM docs WHERE (doc ->> ''k'') = %L', i) FROM generate_series(1, 3) i \gexec
\o
INSERT INTO ticks
SELECT i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', i % 100, repeat('x', 300)
  FROM generate_series(30001, 30300) i;
INSERT INTO docs SELECT id + 20000, doc, tags, name, pad FROM docs WHERE id <= 300;
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE recs AS
SELECT table_name, index_definition, write_overhead FROM perfopt.index_recommendations
 WHERE table_name LIKE 'advisor_am.%';
SELECT index_definition, write_overhead > 0 AS counted FROM recs ORDER BY index_definition;
SELECT (SELECT write_overhead FROM recs WHERE index_definition LIKE '%gin (doc jsonb_path_ops)') >
       (SELECT write_overhead FROM recs WHERE index_definition LIKE '%btree (((doc%') AS gin_costs_more,
       (SELECT write_overhead FROM recs WHERE index_definition LIKE '%brin (at)%') <
       (SELECT write_overhead FROM recs WHERE index_definition LIKE '%btree (v)') AS brin_costs_less;

-- bad definitions: clean errors with their SQLSTATE
\set VERBOSITY sqlstate
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON docs USING hash (id)']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON docs USING gin (doc nosuch_ops)']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON docs USING gin (name)']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE UNIQUE INDEX ON docs USING gin (doc)']);
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON docs USING brin (id DESC)']);
\set VERBOSITY default
SELECT * FROM perfopt.explain_hypothetical('SELECT 1', ARRAY['CREATE INDEX ON docs USING hash (id)']);

SET client_min_messages = warning;
DROP SCHEMA advisor_am CASCADE;
DROP SCHEMA trgm_home CASCADE;
-- leave the database as the next file expects it: no extension, no statistics
SELECT perfopt.reset_stats();
SELECT perfopt.advisor_reset();
DROP EXTENSION perfopt;
