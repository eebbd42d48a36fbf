#!/usr/bin/env bash
# The result cache over a cluster's life: eviction under a small
# perfopt.cache_size (least recently used first: an entry hit regularly
# survives a flood of new ones), a restart (rules and triggers persist, the
# cache starts empty), and logical replication (the apply worker fires no
# statement triggers: perfopt detects it, so a subscriber never serves a
# stale answer).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

cluster_start pub "shared_preload_libraries = 'perfopt'" "perfopt.cache_size = 256kB" \
	"wal_level = logical" "perfopt.slow_query_threshold = -1" ||
	{ fail "cluster start"; assert_summary; exit 1; }
q() { as_pg psql -X -At -q -h "$pub_HOST" -p "$pub_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

q -c "CREATE EXTENSION perfopt" -c "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)" \
	-c "INSERT INTO items SELECT g, g * 10 FROM generate_series(1, 1000) g" \
	-c "SELECT perfopt.cache_table('items')" >/dev/null

# --- eviction ---------------------------------------------------------------
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

# --- restart ----------------------------------------------------------------
cluster_restart pub
assert_eq "rules survive a restart" "table|items" "$(q -c "SELECT kind, tbl FROM perfopt.cache_rules")"
assert_eq "the trigger survives a restart" "1" \
	"$(q -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'items'::regclass AND tgname = 'perfopt_cache_invalidate' AND tgenabled = 'A'")"
assert_eq "the cache starts empty" "0" "$(q -c "SELECT entries FROM perfopt.cache_totals")"
assert_eq "first read after restart is a miss, the next a hit" "miss, stored hit" \
	"$(q -c "SELECT v FROM items WHERE id = 7" -c "SELECT perfopt.cache_last_outcome()" \
		-c "SELECT v FROM items WHERE id = 7" -c "SELECT perfopt.cache_last_outcome()" | grep -v '^70$' | xargs)"

# --- logical replication ----------------------------------------------------
cluster_start sub "shared_preload_libraries = 'perfopt'" "perfopt.slow_query_threshold = -1" ||
	{ fail "subscriber start"; assert_summary; exit 1; }
s() { as_pg psql -X -At -q -h "$sub_HOST" -p "$sub_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE PUBLICATION items_pub FOR TABLE items" >/dev/null
s -c "CREATE EXTENSION perfopt" -c "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)" >/dev/null
s -c "CREATE SUBSCRIPTION items_sub CONNECTION 'host=$pub_HOST port=$pub_PORT user=postgres dbname=postgres' PUBLICATION items_pub" >/dev/null 2>&1
for _ in $(seq 1 100); do
	[ "$(s -c "SELECT count(*) FROM items")" = 1000 ] && break
	sleep 0.2
done
assert_eq "the subscriber has the rows" "1000" "$(s -c "SELECT count(*) FROM items")"
s -c "SELECT perfopt.cache_table('items')" >/dev/null
sum_and_outcome() { s -c "SELECT sum(v) FROM items" -c "SELECT perfopt.cache_last_outcome()" | xargs; }
sum_and_outcome >/dev/null
assert_eq "the subscriber caches" "5005000 hit" "$(sum_and_outcome)"
q -c "UPDATE items SET v = v + 1 WHERE id <= 10" >/dev/null
for _ in $(seq 1 100); do
	[ "$(s -c "SELECT sum(v) FROM items WHERE id <= 10 AND random() >= 0")" = 560 ] && break
	sleep 0.2
done
assert_eq "replicated write arrived (uncached read)" "560" "$(s -c "SELECT sum(v) FROM items WHERE id <= 10 AND random() >= 0")"
assert_eq "the cached answer reflects the replicated write" "5005010" "$(sum_and_outcome | cut -d' ' -f1)"
assert_eq "and is cached again" "5005010 hit" "$(sum_and_outcome)"
s -c "DROP SUBSCRIPTION items_sub" >/dev/null 2>&1
assert_summary
