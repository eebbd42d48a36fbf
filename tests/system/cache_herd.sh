#!/usr/bin/env bash
# The result cache under a thundering herd: a write invalidates a slow,
# popular result while four clients ask for it at once.  With
# perfopt.cache_recompute_wait (extension/cache_flight.c) one client
# recomputes it and the three others wait for it and are answered from the
# cache; with the wait off all four compute it.  Every client gets the
# answer that includes the write.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

cluster_start db "shared_preload_libraries = 'perfopt'" "perfopt.slow_query_threshold = -1" \
	"max_parallel_workers_per_gather = 0" ||
	{ fail "cluster start"; assert_summary; exit 1; }
q() { as_pg psql -X -At -q -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

q -c "CREATE EXTENSION perfopt" \
	-c "CREATE TABLE herd (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL)" \
	-c "INSERT INTO herd SELECT i, i % 1000, i % 7 FROM generate_series(1, 1500000) i" \
	-c "VACUUM ANALYZE herd" -c "SELECT perfopt.cache_table('herd')" >/dev/null ||
	{ fail "setup"; assert_summary; exit 1; }
# slow enough (a sort of 1.5M rows) for four clients to arrive while it runs
STMT="SELECT count(DISTINCT (g, v, id % 4096)) AS groups, sum(v) AS total FROM herd"
q -c "$STMT" >/dev/null
q -c "$STMT" -c "SELECT perfopt.cache_last_outcome()" | tail -1 | grep -qx hit ||
	fail "the statement is answered from the cache before the herd"

# herd WAIT_MS: invalidate, then four clients at once; prints their outcomes
herd() {
	local i dir
	dir=$(mktemp -d)
	chmod 777 "$dir"
	q -c "INSERT INTO herd SELECT max(id) + 1, 5, 5 FROM herd"
	for i in 1 2 3 4; do
		PGOPTIONS="-c perfopt.cache_recompute_wait=$1" q -F ' ' -c "$STMT" \
			-c "SELECT perfopt.cache_last_outcome()" >"$dir/$i" 2>&1 &
	done
	wait
	# one line per client: its answer, then the outcome
	for i in 1 2 3 4; do paste -sd'|' "$dir/$i"; done
	rm -rf "$dir"
}
truth() { PGOPTIONS="-c perfopt.cache_mode=off" q -F ' ' -c "$STMT"; }

out=$(herd 30000)
want=$(truth)
outcomes=$(cut -d'|' -f2 <<<"$out" | sort | uniq -c | awk '{$1=$1; print}' | paste -sd';' -)
assert_eq "with the wait: one client recomputes, three are answered by its result" \
	"3 hit;1 miss, stored" "$outcomes"
assert_eq "all four answers include the write" "$want$want$want$want" \
	"$(cut -d'|' -f1 <<<"$out" | tr -d '\n')"

out=$(herd 0)
want=$(truth)
misses=$(cut -d'|' -f2 <<<"$out" | grep -c '^miss')
assert_true "without the wait the herd computes it several times ($misses of 4 missed)" \
	test "$misses" -ge 2
assert_eq "all four answers include the write" "$want$want$want$want" \
	"$(cut -d'|' -f1 <<<"$out" | tr -d '\n')"
# the recomputing session is cancelled (statement_timeout): its flight lands
# with its transaction, so a session waiting for it (with a 30 s bound) goes
# on at once and computes the answer itself
q -c "INSERT INTO herd SELECT max(id) + 1, 5, 5 FROM herd"
want=$(truth)
dir=$(mktemp -d); chmod 777 "$dir"
PGOPTIONS="-c statement_timeout=300" q -c "$STMT" >"$dir/a" 2>&1 &
sleep 0.1
start=$(date +%s%N)
PGOPTIONS="-c perfopt.cache_recompute_wait=30000" q -F ' ' -c "$STMT" \
	-c "SELECT perfopt.cache_last_outcome()" >"$dir/b" 2>&1
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait
assert_match "the recomputing session was cancelled" "statement timeout" "$(cat "$dir/a")"
assert_eq "the waiting session computed the answer itself" "$want|miss, stored" "$(paste -sd'|' "$dir/b")"
assert_true "without waiting out the 30 s bound (took ${took_ms} ms)" test "$took_ms" -lt 20000
rm -rf "$dir"

flights=$(q -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'Extension'")
assert_eq "nobody is left waiting" 0 "$flights"
assert_summary
