#!/usr/bin/env bash
# perfopt.cache_standby_wal: loading perfopt on a primary changes nothing for
# its standbys unless asked, and a standby serves its cache only while its
# primary writes the cache's invalidations to the WAL.  A primary with
# perfopt preloaded, the setting at its default (off), and standbys on
# loopback:
#
#   - a standby WITHOUT perfopt keeps replaying while the primary writes to
#     cached tables and runs DDL (a record of perfopt's resource manager
#     would stop its recovery), and answers as the primary does;
#   - a standby with perfopt never serves from its cache (no hit, and the
#     bypass reason says why) and reads stay exact (cache_standby.py's
#     comparison against the cache off at the same snapshot);
#   - the primary restarted with the setting on: the standby serves (hits,
#     exact), and the primary's data directory holds the state file;
#   - restarted with it off again: its first write carries the "off"
#     record, after which the standby stops serving and reads stay exact;
#     the mutation: a standby that ignores that record
#     (perfopt.cache_standby_fault = off) serves stale answers;
#   - on once more: the standby serves again, exact; then promoted (its own
#     setting off, its copy of the state file there, as it replayed the
#     primary's records): its first write carries the "off" record, and as
#     a primary it serves its cache, exact.
# pg_walinspect counts perfopt's records in the WAL.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

PY="$ROOT/tests/system/cache_standby.py"
STATE=perfopt_cache_wal.state

# WAL kept from the start, for pg_walinspect (the base backups checkpoint)
cluster_start pri "shared_preload_libraries = 'perfopt'" "perfopt.slow_query_threshold = -1" \
	"autovacuum = off" "wal_keep_size = 256MB" || { fail "primary start"; assert_summary; exit 1; }
py() { as_pg /usr/bin/python3 "$PY" "$@" 2>&1; }
field() { sed -n "s/.*\\b$1=\\([0-9]*\\).*/\\1/p" <<<"$2" | tail -1; }
# rounds_line DESC STANDBY SEED ROUNDS: the comparison's totals, echoed
rounds_line() {
	local out
	out=$(py rounds "$(cluster_dsn pri)" "$(cluster_dsn "$2")" --rounds "$4" --seed "$3")
	grep -v "^reads=" <<<"$out" | head -10 >&2
	out=$(grep '^reads=' <<<"$out" | tail -1)
	echo "$1: $out" >&2
	echo "$out"
}
Q="SELECT count(*), sum(v), max(v) FROM sb_plain WHERE grp = 2"
outcome() { cluster_sql "$1" -c "$Q" -c "$Q" -c "SELECT perfopt.cache_last_outcome()" | tail -1; }
lsn() { cluster_sql "$1" -c "SELECT pg_current_wal_flush_lsn()"; }
# records NAME SINCE: perfopt's records in NAME's WAL since SINCE, "off|bumps"
records() {
	cluster_sql "$1" -c "SELECT count(*) FILTER (WHERE record_type = 'CACHE_WAL_OFF'),
		count(*) FILTER (WHERE record_type = 'CACHE_BUMPS')
		FROM pg_get_wal_records_info('$2', pg_current_wal_flush_lsn())
		WHERE resource_manager = 'perfopt'"
}
set_wal() {
	as_pg sh -c "echo 'perfopt.cache_standby_wal = $1' >>'$pri_DATA/postgresql.conf'"
	cluster_restart pri || fail "primary restart with perfopt.cache_standby_wal = $1"
}

cluster_sql pri -q -c "CREATE EXTENSION pg_walinspect" || fail "pg_walinspect"
since=$(lsn pri)
out=$(py setup "$(cluster_dsn pri)")
assert_eq "setup: tables and rules on the primary" "setup: key triggers=1" "$out"
assert_eq "perfopt.cache_standby_wal is off by default" "off" "$(cluster_sql pri -c 'SHOW perfopt.cache_standby_wal')"

cluster_start_standby bare pri "shared_preload_libraries = ''" ||
	{ fail "standby without perfopt: start"; assert_summary; exit 1; }
cluster_start_standby sb pri || { fail "standby sb start"; assert_summary; exit 1; }

# --- the setting off: nothing in the WAL -------------------------------------------
line=$(rounds_line "off, standby with perfopt" sb 1 4)
assert_eq "off: the standby with perfopt serves no hit" 0 "$(field hits "$line")"
assert_eq "off: and answers exactly (mismatches)" 0 "$(field mismatches "$line")"
assert_eq "off: no errors" 0 "$(field errors "$line")"
assert_true "off: reads were checked ($(field checked "$line"))" test "$(field checked "$line")" -gt 0
cluster_sql pri -q -c "CREATE TABLE wal_new (id int PRIMARY KEY, v int NOT NULL)" \
	-c "SELECT perfopt.cache_table('wal_new')" \
	-c "INSERT INTO wal_new SELECT g, g FROM generate_series(1, 40) g" \
	-c "ALTER TABLE wal_new ADD COLUMN w int" -c "UPDATE wal_new SET w = v * 2 WHERE id <= 10" \
	-c "BEGIN" -c "UPDATE sb_plain SET v = v + 1 WHERE id = 3" -c "PREPARE TRANSACTION 'wal_2pc'" \
	-c "COMMIT PREPARED 'wal_2pc'" >/dev/null || fail "writes and DDL on the primary"
if cluster_wait_replay bare pri; then
	pass "the standby without perfopt replayed the writes to cached tables and the DDL"
else
	fail "the standby without perfopt replayed the writes to cached tables and the DDL: $(tail -3 "$bare_DIR/server.log")"
fi
assert_eq "it is still in recovery" "t" "$(cluster_sql bare -c 'SELECT pg_is_in_recovery()' 2>&1)"
want=$(cluster_sql pri -c "SELECT sum(v), sum(w), (SELECT sum(v) FROM sb_plain) FROM wal_new")
assert_eq "it answers as the primary does" "$want" \
	"$(cluster_sql bare -c "SELECT sum(v), sum(w), (SELECT sum(v) FROM sb_plain) FROM wal_new" 2>&1)"
assert_true "no state file on the primary" test ! -e "$pri_DATA/$STATE"
assert_eq "off: the primary wrote no record of perfopt's (off|bumps)" "0|0" "$(records pri "$since")"
cluster_wait_replay sb pri
assert_eq "off: the bypass reason names the primary's logging" \
	"standby: primary not known to log cache invalidations yet" "$(outcome sb)"
assert_eq "off: the standby's counters show no hit" 0 "$(cluster_sql sb -c 'SELECT hits FROM perfopt.cache_totals')"
cluster_stop bare

# --- on: the standby serves ----------------------------------------------------------
cluster_start_standby mut pri "perfopt.cache_standby_fault = off" ||
	{ fail "standby mut start"; assert_summary; exit 1; }
set_wal on
line=$(rounds_line "on" sb 2 4)
assert_true "on: the standby serves hits ($(field hits "$line"))" test "$(field hits "$line")" -gt 0
assert_eq "on: zero mismatches" 0 "$(field mismatches "$line")"
assert_eq "on: no errors" 0 "$(field errors "$line")"
assert_true "on: the primary keeps the state file" test -e "$pri_DATA/$STATE"
assert_true "on: the standby keeps its copy" test -e "$sb_DATA/$STATE"
line=$(rounds_line "on, mutation standby" mut 3 2)
assert_true "on: the mutation standby serves too ($(field hits "$line") hits)" test "$(field hits "$line")" -gt 0

# --- off again: the "off" record ------------------------------------------------------
set_wal off
since=$(lsn pri)
cluster_sql pri -q -c "UPDATE sb_plain SET v = v + 1 WHERE id = 1" >/dev/null
cluster_wait_replay sb pri
assert_eq "off again: the first write carried one off record, and no bumps (off|bumps)" "1|0" \
	"$(records pri "$since")"
assert_eq "off again: after the primary's first write the standby bypasses its cache" \
	"standby: primary does not log cache invalidations" "$(outcome sb)"
assert_true "off again: the primary removed the state file" test ! -e "$pri_DATA/$STATE"
assert_true "off again: the standby removed its copy" test ! -e "$sb_DATA/$STATE"
hits=$(cluster_sql sb -c 'SELECT hits FROM perfopt.cache_totals')
line=$(rounds_line "off again" sb 4 4)
assert_eq "off again: no hit" 0 "$(field hits "$line")"
assert_eq "off again: zero mismatches" 0 "$(field mismatches "$line")"
assert_true "off again: reads were checked ($(field checked "$line"))" test "$(field checked "$line")" -gt 0
assert_eq "off again: the standby's hit counter stands still" "$hits" \
	"$(cluster_sql sb -c 'SELECT hits FROM perfopt.cache_totals')"
assert_eq "off again: only the first write carried it (off|bumps)" "1|0" "$(records pri "$since")"
line=$(rounds_line "off again, mutation" mut 4 4)
assert_true "mutation: a standby that ignores the off record serves stale answers (mismatches=$(field mismatches "$line"))" \
	test "$(field mismatches "$line")" -gt 0
cluster_stop mut

# --- on once more, then the standby promoted ----------------------------------------
set_wal on
line=$(rounds_line "on again" sb 5 3)
assert_true "on again: the standby serves again ($(field hits "$line") hits)" test "$(field hits "$line")" -gt 0
assert_eq "on again: zero mismatches" 0 "$(field mismatches "$line")"
assert_true "on again: the standby keeps its copy of the state file" test -e "$sb_DATA/$STATE"
assert_eq "the standby's own setting is off" "off" "$(cluster_sql sb -c 'SHOW perfopt.cache_standby_wal')"
cluster_stop pri
cluster_promote sb || fail "promotion"
since=$(lsn sb)
out=$(py rounds "$(cluster_dsn sb)" "$(cluster_dsn sb)" --rounds 3 --seed 6)
line=$(grep '^reads=' <<<"$out" | tail -1)
echo "promoted: $line"
assert_eq "promoted: its first write carried the off record, and it logs nothing else (off|bumps)" "1|0" \
	"$(records sb "$since")"
assert_true "promoted: it removed its copy of the state file" test ! -e "$sb_DATA/$STATE"
assert_true "promoted: it serves its cache as a primary ($(field hits "$line") hits)" \
	test "$(field hits "$line")" -gt 0
assert_eq "promoted: zero mismatches" 0 "$(field mismatches "$line")"
assert_eq "promoted: no errors" 0 "$(field errors "$line")"

assert_summary
