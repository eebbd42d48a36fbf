#!/usr/bin/env bash
# Bounded memory under abuse: 100,000 distinct statements against a limit of
# 100 (eviction keeps the count at the limit and counts what it evicted,
# shared memory does not grow), and a 1 MB statement text (cut with a
# marker, in both views).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

cluster_start db "shared_preload_libraries = 'perfopt'" "perfopt.max_statements = 100" ||
	{ fail "cluster start"; assert_summary; exit 1; }
sql() { as_pg psql -X -At -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
WORK=$(make_pg_dir scale)
trap 'cluster_stop_all; rm -rf "$WORK"' EXIT

cols=$(seq -s, -f 'c%g int' 1 50)
sql -q -c "CREATE EXTENSION perfopt" -c "CREATE TABLE w ($cols)" >/dev/null
shm_before=$(sql -c "SELECT sum(allocated_size) FROM pg_shmem_allocations WHERE name LIKE 'perfopt%'")

# every (i, j, k) column triple is a distinct statement shape
awk 'BEGIN { n = 0; for (i = 1; i <= 50 && n < 100000; i++) for (j = 1; j <= 50 && n < 100000; j++)
	for (k = 1; k <= 50 && n < 100000; k++) { printf "SELECT c%d, c%d, c%d FROM w;\n", i, j, k; n++ } }' \
	>"$WORK/distinct.sql"
chown postgres: "$WORK/distinct.sql"
assert_eq "100,000 distinct statements generated" "100000" "$(wc -l <"$WORK/distinct.sql" | tr -d ' ')"
sql -q -o /dev/null -f "$WORK/distinct.sql"

count=$(sql -c "SELECT count(*) FROM perfopt.query_stats")
evictions=$(sql -c "SELECT evictions FROM perfopt.stats_info")
assert_true "tracked statements stay at the limit of 100 (got $count)" test "$count" -le 100 -a "$count" -ge 90
assert_true "evictions are counted (got $evictions)" test "$evictions" -ge 99000
assert_eq "shared memory does not grow" "$shm_before" \
	"$(sql -c "SELECT sum(allocated_size) FROM pg_shmem_allocations WHERE name LIKE 'perfopt%'")"
assert_eq "the newest statements are kept" "1" \
	"$(sql -c "SELECT count(*) FROM perfopt.query_stats WHERE query = 'SELECT c40, c50, c50 FROM w'")"

# a 1 MB statement text
awk 'BEGIN { printf "SELECT 1 AS huge /* "; for (i = 0; i < 1048576; i++) printf "x"; print " */;" }' >"$WORK/huge.sql"
chown postgres: "$WORK/huge.sql"
sql -q -c "SET perfopt.slow_query_threshold = 0" -f "$WORK/huge.sql" >/dev/null
assert_eq "a 1 MB statement is tracked, its text cut at max_query_length with a marker" "t|t" \
	"$(sql -c "SELECT length(query) <= 8192, query LIKE '%...[truncated]' FROM perfopt.query_stats WHERE query LIKE 'SELECT \$1 AS huge%'")"
assert_eq "its slow capture is cut the same way" "t|t" \
	"$(sql -c "SELECT length(query) <= 8192, query LIKE '%...[truncated]' FROM perfopt.slow_queries WHERE query LIKE 'SELECT 1 AS huge%'")"
assert_eq "the server is still up" "1" "$(sql -c 'SELECT 1')"

assert_summary
