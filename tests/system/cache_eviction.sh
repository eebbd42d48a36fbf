#!/usr/bin/env bash
# Eviction of the result cache under a small perfopt.cache_size: least
# recently used first (an entry hit regularly survives a flood of new ones),
# and a full cache admits a statement only at its second miss.  The size is
# fixed at server start, so this needs a cluster of its own, started with a
# cache small enough to fill.  The cache over a restart and on a logical
# replication subscriber: t/003_cache_restart.pl, t/004_cache_logical_replication.pl.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

cluster_start db "shared_preload_libraries = 'perfopt'" "perfopt.cache_size = 256kB" \
	"perfopt.slow_query_threshold = -1" ||
	{ fail "cluster start"; assert_summary; exit 1; }
q() { as_pg psql -X -At -q -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

q -c "CREATE EXTENSION perfopt" -c "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)" \
	-c "INSERT INTO items SELECT g, g * 10 FROM generate_series(1, 1000) g" \
	-c "SELECT perfopt.cache_table('items')" >/dev/null

# one session: store A and B, then 600 other statements, hitting A every 20;
# the cache fills up, and from then on a statement is stored only the second
# time it misses (admission), so then 200 of the unstored ones again: each
# is stored and evicts an entry not hit lately
script=$(
	echo "SELECT v FROM items WHERE id = 1;"
	echo "SELECT v FROM items WHERE id = 2;"
	for i in $(seq 3 602) $(seq 303 502); do
		echo "SELECT v FROM items WHERE id = $i;"
		[ $((i % 20)) = 0 ] && echo "SELECT v FROM items WHERE id = 1;"
	done
	echo "SELECT v FROM items WHERE id = 1;"
	echo "SELECT perfopt.cache_last_outcome();"
	echo "SELECT v FROM items WHERE id = 2;"
	echo "SELECT perfopt.cache_last_outcome();"
	echo "SELECT v FROM items WHERE id = 900;"
	echo "SELECT perfopt.cache_last_outcome();"
	echo "SELECT v FROM items WHERE id = 900;"
	echo "SELECT perfopt.cache_last_outcome();"
)
out=$(q <<<"$script")
outcomes=$(grep -E '^(hit|miss.*)$' <<<"$out")
assert_eq "the regularly hit entry is still cached" "hit" "$(sed -n 1p <<<"$outcomes")"
assert_eq "an entry never hit again was evicted" "miss" "$(sed -n 2p <<<"$outcomes" | cut -d, -f1)"
assert_eq "a full cache does not store a statement's first miss" \
	"miss, not stored: the cache is full and the statement missed for the first time" "$(sed -n 3p <<<"$outcomes")"
assert_eq "... but stores its second" "miss, stored" "$(sed -n 4p <<<"$outcomes")"
assert_eq "answers stay right under eviction" "10 20 9000" "$(grep -E '^(10|20|9000)$' <<<"$out" | sort -n | uniq | xargs)"
read -r ev entries cap refused <<<"$(q -F ' ' -c "SELECT evictions, entries, capacity, stores_refused FROM perfopt.cache_totals")"
assert_true "entries were evicted ($ev)" test "${ev:-0}" -gt 100
assert_true "first misses of a full cache were not stored ($refused)" test "${refused:-0}" -gt 100
assert_true "the cache stays within perfopt.cache_size ($entries entries, capacity $cap)" test "${cap:-0}" -eq 262144 -a "${entries:-999}" -le 256

assert_summary
