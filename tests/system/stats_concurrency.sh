#!/usr/bin/env bash
# 50 concurrent sessions: 25 run statements (simple and extended protocol,
# some captured as slow), 25 read the views and fail on any torn row (a
# row whose counters contradict each other).  No error, no crash.  Also
# shows that bind parameters of the extended protocol are captured.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

cluster_start db "shared_preload_libraries = 'perfopt'" "perfopt.max_statements = 200" \
	"perfopt.slow_query_threshold = 0" "perfopt.slow_query_max = 50" "perfopt.track = all" ||
	{ fail "cluster start"; assert_summary; exit 1; }
sql() { as_pg psql -X -At -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
WORK=$(make_pg_dir conc)
trap 'cluster_stop_all; rm -rf "$WORK"' EXIT
bench() { as_pg pgbench -h "$db_HOST" -p "$db_PORT" -U postgres -n "$@" postgres; }

# churn(n) runs one of 400 statement shapes (n + 1 output columns), nested
sql -q -c "CREATE EXTENSION perfopt" -c "CREATE FUNCTION churn(n int) RETURNS void LANGUAGE plpgsql AS
	\$\$ BEGIN EXECUTE format('SELECT %s 1', repeat('1, ', n)); END \$\$" >/dev/null
as_pg pgbench -h "$db_HOST" -p "$db_PORT" -U postgres -i -s 1 -q postgres >/dev/null 2>&1

cat >"$WORK/run.sql" <<'SQL'
\set aid random(1, 100000)
\set shape random(1, 300)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
SELECT count(*) FROM pgbench_branches WHERE bid > :shape;
SQL
# distinct shapes churn the store so readers race eviction too
cat >"$WORK/churn.sql" <<'SQL'
\set n random(1, 400)
SELECT churn(:n) AS c;
SQL
cat >"$WORK/read.sql" <<'SQL'
\set x random(1, 2)
SELECT CASE WHEN count(*) > 0 THEN 1 / (count(*) - count(*)) END AS torn_stats FROM perfopt.query_stats
 WHERE calls < 0 OR rows < 0 OR min_exec_time > max_exec_time
    OR (calls > 0 AND abs(mean_exec_time * calls - total_exec_time) > 1e-6 * greatest(total_exec_time, 1))
    OR p50_exec_time > p95_exec_time OR p95_exec_time > p99_exec_time
    OR p99_exec_time > max_exec_time OR p50_exec_time < min_exec_time
    OR query IS NULL OR first_seen > last_seen;
SELECT CASE WHEN count(*) > 0 THEN 1 / (count(*) - count(*)) END AS torn_slow FROM perfopt.slow_queries
 WHERE duration < 0 OR query IS NULL OR plan IS NULL OR (plan_json -> 'Plan') IS NULL;
SELECT count(*) FROM perfopt.stats_info;
SQL
chown postgres: "$WORK"/*.sql

# the statement sessions run a fixed number of transactions (20 x 50 UPDATEs), so
# the count checked below does not depend on how fast a busy machine runs them
bench -c 20 -j 2 -t 50 -M simple -f "$WORK/run.sql" >"$WORK/run.out" 2>&1 &
p1=$!
bench -c 5 -j 1 -T 10 -M extended -f "$WORK/churn.sql" >"$WORK/churn.out" 2>&1 &
p2=$!
bench -c 25 -j 2 -T 10 -f "$WORK/read.sql" >"$WORK/read.out" 2>&1 &
p3=$!
wait $p1; r1=$?
wait $p2; r2=$?
wait $p3; r3=$?
[ "$r1$r2$r3" = 000 ] || grep -h -m3 error "$WORK"/*.out
assert_eq "20 statement sessions finished without error" "0" "$r1"
assert_eq "5 churning sessions (extended protocol) finished without error" "0" "$r2"
assert_eq "25 reader sessions saw no torn row" "0" "$r3"
grep -q "division by zero" "$WORK"/*.out && fail "a torn row was seen" || pass "no torn row was seen"
assert_match "readers really read" "number of transactions actually processed: [1-9]" "$(cat "$WORK/read.out")"
assert_eq "the server did not crash" "0" "$(grep -c 'terminated by signal' "$db_DIR/server.log")"
assert_true "the store stayed within its limit" \
	test "$(sql -c 'SELECT count(*) FROM perfopt.query_stats')" -le 200
assert_true "the UPDATE was counted by every session (>= 100 calls)" \
	test "$(sql -c "SELECT calls FROM perfopt.query_stats WHERE query LIKE 'UPDATE pgbench_accounts%'")" -ge 100
bench -c 1 -t 1 -M extended -f "$WORK/churn.sql" >/dev/null 2>&1
assert_match "extended-protocol bind parameters are captured" "^\\\$1 = '[0-9]+'" \
	"$(sql -c "SELECT params FROM perfopt.slow_queries WHERE query LIKE 'SELECT churn(\$1) AS c%' ORDER BY captured_at DESC LIMIT 1")"

assert_summary
