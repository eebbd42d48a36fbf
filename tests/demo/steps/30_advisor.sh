#!/usr/bin/env bash
# tests/demo/steps/30_advisor.sh: the index advisor on the demo app.
# Shows perfopt.index_recommendations and perfopt.findings for the workload
# just run, creates the recommended indexes, runs the same workload again
# and shows what each statement gained.
# Run by tests/demo/run with PGHOST PGPORT PGDATABASE PGUSER (and DEMO_*)
# pointing at the demo database.
set -euo pipefail

q() { psql -X -q -v ON_ERROR_STOP=1 -P pager=off -P null='' "$@"; }
ROOT=${PERFOPT_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
SECONDS_AGAIN=${DEMO_SECONDS:-10}
CLIENTS=${DEMO_CLIENTS:-4}

# Only the app's statements: not the demo's own queries on perfopt's views.
APP="datname = current_database() AND query NOT LIKE '%perfopt.%' AND query NOT LIKE '%advisor_demo%'"

echo
echo "== Index recommendations for the whole workload (perfopt.index_recommendations)"
echo "   cost: the planner's, times each statement's calls, before and after; helps: the statements it speeds up"
q <<'SQL'
SELECT table_name AS "table", array_to_string(columns, ', ') AS columns,
       improvement_pct AS "gain %", pg_size_pretty(estimated_size_bytes) AS size,
       round(write_overhead) AS "write cost",
       array_to_string(array(SELECT left(regexp_replace(x, '\s+', ' ', 'g'), 60) FROM unnest(queries) x), E'\n') AS helps
  FROM perfopt.index_recommendations;
SQL

echo
echo "== What else to look at (perfopt.findings)"
q <<SQL
SELECT kind, left(regexp_replace(query, '\s+', ' ', 'g'), 60) AS statement, calls,
       round(total_exec_time) AS "total ms", detail
  FROM perfopt.findings
 WHERE query NOT LIKE '%perfopt.%' AND query NOT LIKE '%advisor_demo%'
 LIMIT 8;
SQL

echo
echo "== Indexes nobody uses, or that another makes redundant"
q -c "SELECT table_name, index_name, pg_size_pretty(index_size_bytes) AS size FROM perfopt.unused_indexes LIMIT 5" \
	-c "SELECT table_name, index_name, covered_by, kind FROM perfopt.duplicate_indexes LIMIT 5"

DEFS=$(q -At -c "SELECT index_definition FROM perfopt.index_recommendations")
if [ -z "$DEFS" ]; then
	echo "   (no index to recommend for this workload)"
	exit 0
fi

HELPED=$(q -At -c "SELECT string_agg(DISTINCT id::text, ',') FROM perfopt.index_recommendations, unnest(queryids) id")

args=()
for f in "$ROOT"/tests/demo/workload/*.sql; do
	w=$(sed -n 's/^-- weight: *\([0-9][0-9]*\).*/\1/p' "$f" | head -1)
	args+=(-f "$f@${w:-1}")
done
# run the workload for SECONDS_AGAIN s; print its tps
workload() {
	local log
	log=$(mktemp)
	q -o /dev/null -c "SELECT perfopt.reset_stats()"
	pgbench -n -c "$CLIENTS" -j 2 -T "$SECONDS_AGAIN" "${args[@]}" >"$log" 2>&1 ||
		{ tail -20 "$log" >&2; rm -f "$log"; exit 1; }
	sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log"
	rm -f "$log"
}

echo
echo "== The workload for $SECONDS_AGAIN s without them, then with them (same mix, same clients)"
TPS_BEFORE=$(workload)
q -o /dev/null -c "SET client_min_messages = warning; DROP TABLE IF EXISTS advisor_demo_before" -c "CREATE TABLE advisor_demo_before AS
	SELECT queryid, query, calls, mean_exec_time, total_exec_time FROM perfopt.query_stats WHERE $APP"
while IFS= read -r def; do
	echo "   $def"
	PGOPTIONS="-c perfopt.slow_query_threshold=-1" q -c "$def"
done <<<"$DEFS"
q -o /dev/null -c "ANALYZE"
TPS_AFTER=$(workload)
echo "   tps without: $TPS_BEFORE   with: $TPS_AFTER"

echo
echo "== Mean time of the statements the indexes help, before and after (ms)"
q <<SQL
SELECT left(regexp_replace(b.query, '\s+', ' ', 'g'), 60) AS statement,
       round(b.mean_exec_time::numeric, 2) AS before,
       round(a.mean_exec_time::numeric, 2) AS after,
       round((b.mean_exec_time / nullif(a.mean_exec_time, 0))::numeric, 1) AS "speed-up x"
  FROM advisor_demo_before b
  JOIN perfopt.query_stats a USING (queryid)
 WHERE b.queryid IN ($HELPED)
 ORDER BY b.total_exec_time DESC;
SQL
q -o /dev/null -c "DROP TABLE advisor_demo_before"
