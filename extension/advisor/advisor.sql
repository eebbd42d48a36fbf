
-- ---------------------------------------------------------------------------
-- Index advisor: hypothetical indexes, recommendations, findings
-- ---------------------------------------------------------------------------

CREATE FUNCTION perfopt.explain_hypothetical(
    query text, indexes text[] DEFAULT '{}', hide regclass[] DEFAULT '{}',
    OUT plan text, OUT total_cost double precision,
    OUT cost_without double precision, OUT indexes_used text[])
RETURNS record
AS 'MODULE_PATHNAME', 'perfopt_explain_hypothetical'
LANGUAGE C STRICT VOLATILE;

COMMENT ON FUNCTION perfopt.explain_hypothetical(text, text[], regclass[]) IS
'plan of a statement (never executed) with hypothetical btree, GIN or BRIN indexes given as CREATE INDEX statements, and without the existing indexes in hide';

-- What the captured workload of this database would lose without an index
-- (weighted planner cost: calls times cost, without it less as it is): 0
-- when no captured statement reads its table, NULL when no statement that
-- reads a table was captured.
CREATE FUNCTION perfopt._workload_cost_increase(index oid)
RETURNS double precision
AS 'MODULE_PATHNAME', 'perfopt_workload_cost_increase'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt._recommended_indexes_unused(
    OUT queryid bigint, OUT index oid, OUT recommended text, OUT plan text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_recommended_indexes_unused'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt._index_recommendations(
    OUT table_name text, OUT columns text[], OUT index_definition text,
    OUT queryids bigint[], OUT queries text[],
    OUT cost_before double precision, OUT cost_after double precision,
    OUT improvement_pct double precision, OUT estimated_size_bytes bigint,
    OUT write_overhead double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_index_recommendations'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW perfopt.index_recommendations AS
SELECT table_name, columns, index_definition, queryids, queries,
       round(cost_before::numeric, 2) AS cost_before,
       round(cost_after::numeric, 2) AS cost_after,
       round(improvement_pct::numeric, 1) AS improvement_pct,
       estimated_size_bytes,
       round(write_overhead::numeric, 2) AS write_overhead
  FROM perfopt._index_recommendations();

CREATE FUNCTION perfopt.recommend_indexes(
    query text,
    OUT table_name text, OUT columns text[], OUT index_definition text,
    OUT queryids bigint[], OUT queries text[],
    OUT cost_before double precision, OUT cost_after double precision,
    OUT improvement_pct double precision, OUT estimated_size_bytes bigint,
    OUT write_overhead double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_recommend_indexes'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt._advisor_workload(
    OUT dbid oid, OUT queryid bigint, OUT example text, OUT max_burst bigint,
    OUT predicates text[], OUT full_scans oid[])
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_advisor_workload'
LANGUAGE C STRICT VOLATILE;

-- What the advisor captured per statement of this database.
CREATE VIEW perfopt.advisor_workload AS
SELECT w.queryid, w.example, w.max_burst, w.predicates,
       w.full_scans::regclass[] AS full_scans
  FROM perfopt._advisor_workload() w
 WHERE w.dbid = (SELECT oid FROM pg_catalog.pg_database
                  WHERE datname = pg_catalog.current_database());

CREATE FUNCTION perfopt.advisor_reset()
RETURNS void
AS 'MODULE_PATHNAME', 'perfopt_advisor_reset'
LANGUAGE C STRICT VOLATILE;

-- Indexes never scanned since the statistics were reset, except those that
-- enforce a constraint or uniqueness; with what the captured workload would
-- lose without each.
CREATE VIEW perfopt.unused_indexes AS
SELECT s.schemaname::text AS schema_name, s.relname::text AS table_name,
       s.indexrelname::text AS index_name,
       pg_catalog.pg_relation_size(s.indexrelid) AS index_size_bytes,
       s.idx_scan,
       pg_catalog.pg_get_indexdef(s.indexrelid) AS index_definition,
       (SELECT d.stats_reset FROM pg_catalog.pg_stat_database d
         WHERE d.datname = pg_catalog.current_database()) AS stats_since,
       round(perfopt._workload_cost_increase(s.indexrelid)::numeric, 2)
           AS workload_cost_increase
  FROM pg_catalog.pg_stat_user_indexes s
  JOIN pg_catalog.pg_index i ON i.indexrelid = s.indexrelid
 WHERE s.idx_scan = 0
   AND i.indisvalid AND NOT i.indisunique AND NOT i.indisprimary
   AND NOT i.indisexclusion
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                    WHERE c.conindid = s.indexrelid)
 ORDER BY index_size_bytes DESC, schema_name, index_name;

-- Indexes identical to another, or whose keys lead another's: every search
-- they serve, the other serves too.
CREATE VIEW perfopt.duplicate_indexes AS
SELECT n.nspname::text AS schema_name, t.relname::text AS table_name,
       ca.relname::text AS index_name, cb.relname::text AS covered_by,
       CASE WHEN a.indnatts = b.indnatts AND a.indkey::text = b.indkey::text
            THEN 'identical' ELSE 'prefix' END AS kind,
       pg_catalog.pg_relation_size(a.indexrelid) AS index_size_bytes,
       pg_catalog.pg_get_indexdef(a.indexrelid) AS index_definition,
       pg_catalog.pg_get_indexdef(b.indexrelid) AS covered_by_definition,
       round(perfopt._workload_cost_increase(a.indexrelid)::numeric, 2)
           AS workload_cost_increase
  FROM pg_catalog.pg_index a
  JOIN pg_catalog.pg_index b
    ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
  JOIN pg_catalog.pg_class ca ON ca.oid = a.indexrelid
  JOIN pg_catalog.pg_class cb ON cb.oid = b.indexrelid
  JOIN pg_catalog.pg_class t ON t.oid = a.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND a.indisvalid AND b.indisvalid AND ca.relam = cb.relam
   AND a.indnkeyatts <= b.indnkeyatts
   AND (a.indkey::int2[])[0:a.indnkeyatts - 1] = (b.indkey::int2[])[0:a.indnkeyatts - 1]
   AND (a.indclass::oid[])[0:a.indnkeyatts - 1] = (b.indclass::oid[])[0:a.indnkeyatts - 1]
   AND (a.indoption::int2[])[0:a.indnkeyatts - 1] = (b.indoption::int2[])[0:a.indnkeyatts - 1]
   AND pg_catalog.pg_get_expr(a.indexprs, a.indrelid) IS NOT DISTINCT FROM
       pg_catalog.pg_get_expr(b.indexprs, b.indrelid)
   AND pg_catalog.pg_get_expr(a.indpred, a.indrelid) IS NOT DISTINCT FROM
       pg_catalog.pg_get_expr(b.indpred, b.indrelid)
   -- INCLUDE columns of a must be in b
   AND (a.indnatts = a.indnkeyatts OR a.indkey::text = b.indkey::text)
   -- an index enforcing a constraint or uniqueness is never the redundant one
   AND NOT a.indisprimary AND NOT a.indisexclusion
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = a.indexrelid)
   AND (NOT a.indisunique OR (b.indisunique AND a.indnkeyatts = b.indnkeyatts))
   -- of two identical indexes, report one: the newer, unless the other is worse
   AND NOT (a.indnatts = b.indnatts AND a.indkey::text = b.indkey::text
            AND a.indexrelid < b.indexrelid
            AND NOT (b.indisprimary OR (b.indisunique AND NOT a.indisunique)
                     OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                                 WHERE c.conindid = b.indexrelid)))
 ORDER BY schema_name, table_name, index_name;

CREATE FUNCTION perfopt._plan_full_scans(example text)
RETURNS oid[]
AS 'MODULE_PATHNAME', 'perfopt_plan_full_scans'
LANGUAGE C STRICT VOLATILE;

-- What else a DBA should look at: statements that read all of a big table,
-- N+1 patterns (one statement run many times in a row with different
-- constants, in one transaction or a burst), and recommended indexes that
-- were created but that the statements they were recommended for, run
-- since, are planned without.
CREATE VIEW perfopt.findings AS
WITH w AS (
    SELECT * FROM perfopt._advisor_workload()
     WHERE dbid = (SELECT oid FROM pg_catalog.pg_database
                    WHERE datname = pg_catalog.current_database())),
q AS (
    SELECT s.queryid, sum(s.calls)::bigint AS calls,
           sum(s.total_exec_time) AS total_exec_time, min(s.query) AS query
      FROM perfopt.query_stats s
     WHERE s.datname = pg_catalog.current_database()
     GROUP BY s.queryid)
SELECT 'full_scan'::text AS kind, w.queryid, q.query, c.oid::regclass::text AS relation,
       q.calls, q.total_exec_time,
       format('reads all %s rows of %s at each of its %s calls: see perfopt.index_recommendations or add a selective filter',
              c.reltuples::bigint, c.oid::regclass, q.calls) AS detail
  FROM w JOIN q USING (queryid)
  -- today's plan when the example can be planned (an index created since
  -- the capture fixes the finding), else the captured one
  CROSS JOIN LATERAL (SELECT DISTINCT u FROM unnest(coalesce(
      CASE WHEN w.example IS NOT NULL THEN perfopt._plan_full_scans(w.example) END,
      w.full_scans)) u) f(relid)
  JOIN pg_catalog.pg_class c ON c.oid = f.relid
 WHERE c.reltuples >= current_setting('perfopt.advisor_big_table_rows')::float8
UNION ALL
SELECT 'n_plus_one', w.queryid, q.query, NULL, q.calls, q.total_exec_time,
       format('run %s times in a row with different constants (one transaction or burst): fetch those rows with one statement (a join, or = ANY($1))',
              w.max_burst)
  FROM w JOIN q USING (queryid)
 WHERE w.max_burst >= current_setting('perfopt.advisor_n_plus_one_threshold')::int
UNION ALL
SELECT 'recommended_index_unused', u.queryid, q.query, u.index::regclass::text,
       q.calls, q.total_exec_time,
       format(E'index %s was created as recommended (%s), but the statement, run since, is planned without it:\n%s',
              u.index::regclass, u.recommended, u.plan)
  FROM perfopt._recommended_indexes_unused() u JOIN q USING (queryid)
 ORDER BY total_exec_time DESC, kind, queryid;

GRANT SELECT ON perfopt.index_recommendations, perfopt.advisor_workload,
    perfopt.unused_indexes, perfopt.duplicate_indexes, perfopt.findings TO PUBLIC;
REVOKE ALL ON FUNCTION perfopt.advisor_reset() FROM PUBLIC;
