#!/usr/bin/env bash
# The result cache under a thundering herd: a write invalidates a slow,
# popular result while four clients ask for it at once.  With
# perfopt.cache_recompute_wait (extension/cache/cache_flight.c) one client
# recomputes it and the three others wait for it and are answered from the
# cache; with the wait off all four compute it.  Every client gets the
# answer that includes the write.  The herd is made, not hoped for: the four
# sessions queue behind a table lock the script holds and are let go at once,
# and the flight whose owner is cancelled has a waiter seen waiting first.
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

# sessions running the statement that wait for a lock / for a flight
blocked() { test "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = '$1' AND query = '$STMT'")" = "$2"; }
computing() { test "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '$STMT'")" = 1; }
herd_locked() {
	test "$(q -c "SELECT count(*) FROM pg_locks WHERE relation = 'herd'::regclass AND granted
		AND mode = 'AccessExclusiveLock'")" = 1
}
# until CONDITION... holds, or 60 s passed (then the assertion after it tells)
until_true() { local i; for i in $(seq 600); do "$@" && return 0; sleep 0.1; done; return 1; }

# herd WAIT_MS: invalidate, then four clients let go at once; prints their outcomes
herd() {
	local i dir holder
	dir=$(mktemp -d)
	chmod 777 "$dir"
	q -c "INSERT INTO herd SELECT max(id) + 1, 5, 5 FROM herd"
	mkfifo "$dir/lock"
	q <"$dir/lock" >/dev/null &
	holder=$!
	exec 9>"$dir/lock"
	echo "BEGIN; LOCK TABLE herd IN ACCESS EXCLUSIVE MODE; SELECT 1;" >&9
	until_true herd_locked
	for i in 1 2 3 4; do
		PGOPTIONS="-c perfopt.cache_recompute_wait=$1" q -F ' ' -c "$STMT" \
			-c "SELECT perfopt.cache_last_outcome()" >"$dir/$i" 2>&1 &
	done
	until_true blocked Lock 4
	echo "COMMIT;" >&9
	exec 9>&-
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
# the recomputing session is cancelled while another waits for its flight:
# the flight lands with its transaction, so the waiter (with a 30 s bound)
# goes on at once and computes the answer itself
q -c "INSERT INTO herd SELECT max(id) + 1, 5, 5 FROM herd"
want=$(truth)
dir=$(mktemp -d); chmod 777 "$dir"
q -c "$STMT" >"$dir/a" 2>&1 &
until_true computing
PGOPTIONS="-c perfopt.cache_recompute_wait=30000" q -F ' ' -c "$STMT" \
	-c "SELECT perfopt.cache_last_outcome()" >"$dir/b" 2>&1 &
waiter=$!
until_true blocked Extension 1
start=$(date +%s%N)
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = '$STMT' AND wait_event_type IS DISTINCT FROM 'Extension'" >/dev/null
# how long it goes on computing is the machine's business; when it stops waiting is the cache's
until_true blocked Extension 0
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait $waiter
wait
assert_match "the recomputing session was cancelled" "canceling statement due to user request" "$(cat "$dir/a")"
assert_eq "the waiting session computed the answer itself" "$want|miss, stored" "$(paste -sd'|' "$dir/b")"
assert_true "it stopped waiting without waiting out the 30 s bound (after ${took_ms} ms)" test "$took_ms" -lt 20000
rm -rf "$dir"

flights=$(q -c "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'Extension'")
assert_eq "nobody is left waiting" 0 "$flights"
assert_summary
