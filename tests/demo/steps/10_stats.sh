#!/usr/bin/env bash
# tests/demo/steps/10_stats.sh: the demo's query-statistics findings:
# where the time goes (perfopt.query_stats, with percentiles) and the slow
# statements perfopt captured with their plans (perfopt.slow_queries).
# Run by tests/demo/run with PGHOST PGPORT PGDATABASE PGUSER pointing at the
# demo database.
set -euo pipefail

q() { psql -X -q -v ON_ERROR_STOP=1 -P pager=off -P null='' "$@"; }

# Only the app's statements: not the demo's own queries on perfopt's views.
APP="datname = current_database() AND query NOT LIKE '%perfopt.%'"

echo
echo "== Where the time goes: top statements by total execution time (perfopt.query_stats)"
echo "   times in ms; p50/p95/p99 from perfopt's per-statement latency histogram"
q <<SQL
SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 64)       AS statement,
       calls,
       round(total_exec_time::numeric)                         AS total,
       round((100 * total_exec_time / nullif(sum(total_exec_time) OVER (), 0))::numeric, 1) AS "time %",
       round(mean_exec_time::numeric, 2)                       AS mean,
       round(p50_exec_time::numeric, 2)                        AS p50,
       round(p95_exec_time::numeric, 2)                        AS p95,
       round(p99_exec_time::numeric, 2)                        AS p99,
       round(max_exec_time::numeric, 1)                        AS max
  FROM perfopt.query_stats
 WHERE $APP
 ORDER BY total_exec_time DESC
 LIMIT 10;
SQL

echo
echo "== Slow statements captured (perfopt.slow_queries, threshold $(q -At -c 'SHOW perfopt.slow_query_threshold'))"
q <<SQL
SELECT count(*)                                                 AS captured,
       round(min(duration)::numeric)                            AS "min ms",
       round(max(duration)::numeric)                            AS "max ms",
       left(regexp_replace((array_agg(query ORDER BY duration DESC))[1], '\s+', ' ', 'g'), 80) AS "slowest, with its constants"
  FROM perfopt.slow_queries
 WHERE $APP
 GROUP BY queryid
 ORDER BY max(duration) DESC;
SQL

echo
echo "== The slowest capture of each statement, with the first lines of its plan"
[ "$(q -At -c "SELECT count(*) FROM perfopt.slow_queries WHERE $APP")" != 0 ] ||
	echo "   (nothing above the threshold yet)"
q -At <<SQL
SELECT format(E'\\n-- %s ms, %s rows, captured %s from %s\\n%s\\n%s',
              round(duration::numeric, 1), rows, captured_at::timestamp(0),
              coalesce(nullif(application_name, ''), '?'),
              left(regexp_replace(query, '\s+', ' ', 'g'), 300),
              array_to_string(array(SELECT '    ' || line
                                      FROM unnest((string_to_array(plan, E'\\n'))[1:20]) line), E'\\n'))
  FROM (SELECT DISTINCT ON (queryid) *
          FROM perfopt.slow_queries
         WHERE $APP
         ORDER BY queryid, duration DESC) slowest
 ORDER BY duration DESC
 LIMIT 3;
SQL
