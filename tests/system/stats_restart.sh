#!/usr/bin/env bash
# Statistics and slow queries across restarts: kept over a clean restart,
# dropped (and shared memory rebuilt cleanly) after a crash; without
# preloading, CREATE EXTENSION works and the views say what to do.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

cluster_start db "shared_preload_libraries = 'perfopt'" "perfopt.slow_query_threshold = 0" ||
	{ fail "cluster start"; assert_summary; exit 1; }
sql() { as_pg psql -X -At -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

sql -q -c "CREATE EXTENSION perfopt" -c "CREATE TABLE r(a int)" \
	-c "INSERT INTO r SELECT generate_series(1, 100)" >/dev/null
for i in 1 2 3; do sql -c "SELECT count(*) FROM r WHERE a > $i" >/dev/null; done
before=$(sql -c "SELECT calls || ' ' || round(p99_exec_time::numeric, 6) FROM perfopt.query_stats WHERE query = 'SELECT count(*) FROM r WHERE a > \$1'")
slow_before=$(sql -c "SELECT count(*) FROM perfopt.slow_queries WHERE query LIKE 'SELECT count(*) FROM r WHERE a >%'")
assert_eq "three executions counted" "3" "${before%% *}"
assert_eq "three slow captures" "3" "$slow_before"

cluster_restart db
after=$(sql -c "SELECT calls || ' ' || round(p99_exec_time::numeric, 6) FROM perfopt.query_stats WHERE query = 'SELECT count(*) FROM r WHERE a > \$1'")
assert_eq "statistics (calls and histogram) survive a clean restart" "$before" "$after"
slow_after=$(sql -c "SELECT count(*) FROM perfopt.slow_queries WHERE query LIKE 'SELECT count(*) FROM r WHERE a >%' AND plan LIKE 'Aggregate%'")
assert_eq "slow queries with plans survive a clean restart" "3" "$slow_after"
assert_true "the saved file is consumed at start" test ! -e "$db_DATA/pg_stat/perfopt.stat"

# A crash: kill -9 a backend; the postmaster reinitialises shared memory.
as_pg psql -X -At -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres \
	-c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
sleep 0.5
victim=$(sql -c "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'")
kill -9 "$victim"
wait
for _ in $(seq 1 60); do sql -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
assert_eq "the server is back after a crash" "1" "$(sql -c 'SELECT 1' 2>&1)"
assert_eq "a crash restart starts from empty statistics" "0" \
	"$(sql -c "SELECT count(*) FROM perfopt.query_stats WHERE query LIKE '%FROM r WHERE%'")"
sql -c "SELECT count(*) FROM r WHERE a > 7" >/dev/null
assert_eq "statistics work again after the crash" "1" \
	"$(sql -c "SELECT calls FROM perfopt.query_stats WHERE query = 'SELECT count(*) FROM r WHERE a > \$1'")"
assert_match "the crash was a real one" "terminated by signal 9" "$(cat "$db_DIR/server.log")"

# Saving can be turned off.
sql -q -c "ALTER SYSTEM SET perfopt.save = off" -c "SELECT pg_reload_conf()" >/dev/null
cluster_restart db
assert_eq "perfopt.save = off keeps nothing over a restart" "0" \
	"$(sql -c "SELECT count(*) FROM perfopt.query_stats WHERE query LIKE '%FROM r WHERE%'")"

# Without shared_preload_libraries.
cluster_start bare || { fail "bare cluster start"; assert_summary; exit 1; }
bare() { as_pg psql -X -At -h "$bare_HOST" -p "$bare_PORT" -U postgres -d postgres "$@" 2>&1; }
assert_eq "CREATE EXTENSION works without preloading" "CREATE EXTENSION" "$(bare -c 'CREATE EXTENSION perfopt')"
for view in query_stats slow_queries stats_info; do
	out=$(bare -v VERBOSITY=verbose -c "SELECT * FROM perfopt.$view")
	assert_match "$view without preloading: error with SQLSTATE 55000" "ERROR:  55000: perfopt must be loaded via shared_preload_libraries" "$out"
	assert_match "$view without preloading: hint names the setting" "HINT:  Add perfopt to shared_preload_libraries" "$out"
done

assert_summary
