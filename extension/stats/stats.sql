
-- ---------------------------------------------------------------------------
-- Query statistics and slow-query capture
-- ---------------------------------------------------------------------------

CREATE FUNCTION perfopt._query_stats(
    OUT queryid bigint, OUT userid oid, OUT dbid oid, OUT query text,
    OUT calls bigint, OUT rows bigint,
    OUT total_exec_time double precision, OUT mean_exec_time double precision,
    OUT min_exec_time double precision, OUT max_exec_time double precision,
    OUT p50_exec_time double precision, OUT p95_exec_time double precision,
    OUT p99_exec_time double precision,
    OUT plans bigint, OUT total_plan_time double precision,
    OUT shared_blks_hit bigint, OUT shared_blks_read bigint,
    OUT temp_blks_written bigint,
    OUT cache_hits bigint, OUT cache_misses bigint,
    OUT first_seen timestamptz, OUT last_seen timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_query_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW perfopt.query_stats AS
SELECT s.queryid, s.userid, s.dbid, d.datname, r.rolname AS username, s.query,
       s.calls, s.rows, s.total_exec_time, s.mean_exec_time,
       s.min_exec_time, s.max_exec_time,
       s.p50_exec_time, s.p95_exec_time, s.p99_exec_time,
       s.plans, s.total_plan_time,
       s.shared_blks_hit, s.shared_blks_read, s.temp_blks_written,
       s.cache_hits, s.cache_misses,
       s.first_seen, s.last_seen
  FROM perfopt._query_stats() s
  LEFT JOIN pg_catalog.pg_database d ON d.oid = s.dbid
  LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.userid;

-- bookkeeping_skipped: statements whose statistics, slow capture or advisor
-- capture perfopt skipped rather than fail them (see the server log), since
-- the server started or the last reset_stats().
CREATE FUNCTION perfopt._stats_info(OUT evictions bigint, OUT stats_reset timestamptz,
    OUT bookkeeping_skipped bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'perfopt_stats_info'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW perfopt.stats_info AS
SELECT evictions, stats_reset, bookkeeping_skipped FROM perfopt._stats_info();

CREATE FUNCTION perfopt.reset_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'perfopt_reset_stats'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE FUNCTION perfopt._slow_queries(
    OUT captured_at timestamptz, OUT duration double precision,
    OUT userid oid, OUT dbid oid, OUT datname text, OUT username text,
    OUT application_name text, OUT client_addr text,
    OUT queryid bigint, OUT query text, OUT params text, OUT rows bigint,
    OUT plan text, OUT plan_json text,
    OUT shared_blks_hit bigint, OUT shared_blks_read bigint,
    OUT shared_blks_dirtied bigint, OUT shared_blks_written bigint,
    OUT temp_blks_read bigint, OUT temp_blks_written bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_slow_queries'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

CREATE VIEW perfopt.slow_queries AS
SELECT captured_at, duration, userid, dbid, datname::name, username::name,
       application_name, client_addr::inet, queryid, query, params, rows,
       plan, plan_json::json,
       shared_blks_hit, shared_blks_read, shared_blks_dirtied,
       shared_blks_written, temp_blks_read, temp_blks_written
  FROM perfopt._slow_queries()
 ORDER BY captured_at DESC;

CREATE FUNCTION perfopt.reset_slow_queries()
RETURNS void
AS 'MODULE_PATHNAME', 'perfopt_reset_slow_queries'
LANGUAGE C STRICT VOLATILE PARALLEL SAFE;

-- Everyone may read (rows of other users are masked in C); only superusers
-- and roles granted EXECUTE may reset, as in pg_stat_statements.
GRANT USAGE ON SCHEMA perfopt TO PUBLIC;
GRANT SELECT ON perfopt.query_stats, perfopt.stats_info, perfopt.slow_queries TO PUBLIC;
REVOKE ALL ON FUNCTION perfopt.reset_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION perfopt.reset_slow_queries() FROM PUBLIC;
