#!/usr/bin/env bash
# The result cache under a protocol-level row limit (Execute with max_rows),
# as asyncpg's fetchrow, fetchval and cursors send it: a miss stores only a
# whole answer, a hit replays it in pieces (see cache_row_limit.py).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

cluster_start db "shared_preload_libraries = 'perfopt'" "perfopt.slow_query_threshold = -1" ||
	{ fail "cluster start"; assert_summary; exit 1; }
as_pg psql -X -q -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres -c "CREATE EXTENSION perfopt" ||
	{ fail "create extension"; assert_summary; exit 1; }
as_pg /usr/bin/python3 "$ROOT/tests/system/cache_row_limit.py" "$db_HOST" "$db_PORT"
