#!/usr/bin/env bash
# The index advisor under real clients: statements captured through the
# extended protocol ($n in the text) are advised on; DDL racing the advisor
# (tables dropped and re-created while recommendations, findings and
# hypothetical plans are computed) gives no error and no crash; the advice
# is cancellable and leaves no hypothetical index behind.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
trap cluster_stop_all EXIT

cluster_start db "shared_preload_libraries = 'perfopt'" "autovacuum = off" ||
	{ fail "cluster start"; assert_summary; exit 1; }
sql() { as_pg psql -X -At -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
WORK=$(make_pg_dir advisor)
trap 'cluster_stop_all; rm -rf "$WORK"' EXIT
bench() { as_pg pgbench -h "$db_HOST" -p "$db_PORT" -U postgres -n "$@" postgres; }

sql -q <<'SQL' >/dev/null
CREATE EXTENSION perfopt;
CREATE TABLE items (id int PRIMARY KEY, k int, v int);
INSERT INTO items SELECT g, g % 5000, g FROM generate_series(1, 100000) g;
VACUUM ANALYZE items;
SELECT pg_stat_force_next_flush();
SQL
sql -q -c "SELECT perfopt.reset_stats(), perfopt.advisor_reset()" >/dev/null

# --- the extended protocol: the captured text has $1 and is planned generic
cat >"$WORK/prepared.sql" <<'SQL'
\set k random(1, 5000)
SELECT id, v FROM items WHERE k = :k;
SQL
chown postgres: "$WORK"/*.sql
bench -c 2 -j 2 -t 50 -M prepared -f "$WORK/prepared.sql" >"$WORK/prepared.out" 2>&1
assert_eq "pgbench -M prepared ran" 0 $?
assert_eq "the example kept is the text with its parameter" \
	'SELECT id, v FROM items WHERE k = $1' \
	"$(sql -c "SELECT example FROM perfopt.advisor_workload WHERE example LIKE 'SELECT id, v FROM items%'")"
assert_eq "it is advised on: an index on k" \
	'CREATE INDEX CONCURRENTLY ON public.items USING btree (k)|100' \
	"$(sql -c "SELECT index_definition, (SELECT calls FROM perfopt.query_stats q WHERE q.queryid = r.queryids[1])
	             FROM perfopt.index_recommendations r WHERE table_name = 'public.items'")"

# --- a skewed column through the extended protocol: planned generic,
# "flag = $1" reads half the table (two values) and no index helps; the
# values it ran with (flag = 1: one row in ten thousand) are kept and costed
sql -q <<'SQL' >/dev/null
CREATE TABLE skew (id int PRIMARY KEY, flag int, pad text);
INSERT INTO skew SELECT g, CASE WHEN g % 10000 = 0 THEN 1 ELSE 0 END, 'p' FROM generate_series(1, 100000) g;
VACUUM ANALYZE skew;
SELECT pg_stat_force_next_flush();
SQL
cat >"$WORK/skew.sql" <<'SQL'
\set f 1
SELECT id FROM skew WHERE flag = :f;
SQL
chown postgres: "$WORK"/*.sql
bench -c 1 -j 1 -t 20 -M prepared -f "$WORK/skew.sql" >"$WORK/skew.out" 2>&1
assert_eq "pgbench -M prepared ran the skewed statement" 0 $?
assert_eq "the bind values it ran with are kept and costed: an index on flag" \
	'CREATE INDEX CONCURRENTLY ON public.skew USING btree (flag)' \
	"$(sql -c "SELECT index_definition FROM perfopt.index_recommendations WHERE table_name = 'public.skew'")"

# --- writes after the capture began count; their count outlives a clean
# restart (the loads before it never counted: the advice above has none)
sql -q -c "UPDATE items SET v = v + 1 WHERE id <= 2000" >/dev/null
wo_before=$(sql -c "SELECT write_overhead FROM perfopt.index_recommendations WHERE table_name = 'public.items'")
assert_true "2000 updates after the capture began weigh on the index (${wo_before:-none})" \
	awk -v w="${wo_before:-0}" 'BEGIN { exit !(w > 0) }'

# --- a clean restart keeps what was captured, as it keeps the statistics
cluster_restart db
assert_eq "the writes counted survive a clean restart" "$wo_before" \
	"$(sql -c "SELECT write_overhead FROM perfopt.index_recommendations WHERE table_name = 'public.items'")"
assert_eq "the capture survives a clean restart" \
	'SELECT id, v FROM items WHERE k = $1|{"items.k ="}' \
	"$(sql -c "SELECT example, predicates FROM perfopt.advisor_workload WHERE example LIKE 'SELECT id, v FROM items%'")"
assert_eq "and so does the advice" 'CREATE INDEX CONCURRENTLY ON public.items USING btree (k)' \
	"$(sql -c "SELECT index_definition FROM perfopt.index_recommendations WHERE table_name = 'public.items'")"

# --- privacy: example texts carry constants; a role without
# pg_read_all_stats sees none of another role's, and advice on its own only
sql -q -c "CREATE ROLE advisor_user LOGIN" -c "GRANT SELECT ON items TO advisor_user" >/dev/null
as_user() { as_pg psql -X -At -h "$db_HOST" -p "$db_PORT" -U advisor_user -d postgres "$@"; }
assert_eq "another role's example texts are hidden" 0 \
	"$(as_user -c "SELECT count(*) FROM perfopt.advisor_workload WHERE example IS NOT NULL")"
assert_eq "another role's statements get no advice" 0 \
	"$(as_user -c "SELECT count(*) FROM perfopt.index_recommendations")"
as_user -c "SELECT count(*) FROM items WHERE v = 5" -c "SELECT count(*) FROM items WHERE v = 6" >/dev/null
assert_eq "its own do" "{v}" "$(as_user -c "SELECT columns FROM perfopt.index_recommendations")"
assert_match "and it may not reset the capture" "permission denied" \
	"$(as_user -c "SELECT perfopt.advisor_reset()" 2>&1)"

# --- N+1: one statement back to back with different constants (autocommit),
# against a busy mix of two statements that is not a loop
sql -q -c "SET perfopt.advisor_n_plus_one_threshold = 20" >/dev/null
for i in $(seq 1 30); do echo "SELECT v FROM items WHERE id = $i;"; done | sql -q >/dev/null
for i in $(seq 1 30); do
	echo "SELECT k FROM items WHERE id = $i;"
	echo "SELECT count(*) FROM items WHERE id < $i;"
done | sql -q >/dev/null
assert_eq "a loop of 30 lookups is an N+1 finding, a mix of two statements is not" \
	'n_plus_one|SELECT v FROM items WHERE id = $1' \
	"$(sql -c "SELECT kind, query FROM perfopt.findings WHERE kind = 'n_plus_one'")"

# --- DDL racing the advisor
sql -q -c "CREATE FUNCTION try_explain() RETURNS text LANGUAGE plpgsql AS \$\$
BEGIN
	RETURN (SELECT plan FROM perfopt.explain_hypothetical('SELECT * FROM racer WHERE v = 5',
	                                                      ARRAY['CREATE INDEX ON racer (v)']));
EXCEPTION WHEN undefined_table THEN
	RETURN 'gone';
END \$\$" >/dev/null
cat >"$WORK/ddl.sql" <<'SQL'
\set n random(1, 1000)
DROP TABLE IF EXISTS racer;
CREATE TABLE racer AS SELECT g AS id, g % 100 AS v, g % 7 AS w FROM generate_series(1, 20000) g;
ANALYZE racer;
SELECT count(*) FROM racer WHERE v = :n;
SELECT count(*) FROM racer WHERE w = 3 AND id > :n;
ALTER TABLE racer ALTER COLUMN v TYPE bigint;
SELECT count(*) FROM racer WHERE v = :n;
SQL
cat >"$WORK/advise.sql" <<'SQL'
\set x random(1, 2)
SELECT count(*) FROM perfopt.index_recommendations;
SELECT count(*) FROM perfopt.findings;
SELECT count(*) FROM perfopt.advisor_workload;
SELECT try_explain() IS NOT NULL;
SQL
chown postgres: "$WORK"/*.sql
bench -c 2 -j 1 -T 8 -f "$WORK/ddl.sql" >"$WORK/ddl.out" 2>&1 &
p1=$!
bench -c 3 -j 1 -T 8 -f "$WORK/advise.sql" >"$WORK/advise.out" 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
# two DDL clients race each other too: only their own lock/exists errors count
grep -h "ERROR" "$WORK/advise.out" | head -3
assert_eq "the advisor's clients saw no error while tables were dropped and altered" 0 "$r2"
assert_match "the advisor's clients ran many times" "number of transactions actually processed: [1-9][0-9]*" \
	"$(grep 'actually processed' "$WORK/advise.out")"
assert_match "the DDL clients ran too" "number of transactions actually processed: [1-9][0-9]*" \
	"$(grep 'actually processed' "$WORK/ddl.out")"
assert_eq "the server is up" 1 "$(sql -c 'SELECT 1')"
assert_eq "no backend crashed" 0 "$(grep -c 'terminated by signal' "$db_DIR/server.log")"

# --- a reset is seen by backends that knew the statement: it is captured again
out=$(sql -q <<'SQL'
\o /dev/null
SELECT v FROM items WHERE id = 1;
SELECT v FROM items WHERE id = 2;
SELECT perfopt.advisor_reset();
SELECT v FROM items WHERE id = 3;
\o
SELECT count(*) FROM perfopt.advisor_workload WHERE example = 'SELECT v FROM items WHERE id = 3';
SQL
)
assert_eq "captured again after a reset, in the session that knew it" 1 "$out"

# --- cancellable, and nothing left behind
sql -q -c "SELECT perfopt.advisor_reset()" >/dev/null
for i in $(seq 1 40); do
	echo "CREATE TABLE t$i AS SELECT g AS id, g % 1000 AS k, g % 77 AS v FROM generate_series(1, 20000) g;"
	echo "ANALYZE t$i;"
done | sql -q >/dev/null
# the loads are not the workload: the advisor counts writes from the
# first capture of each table (flushed first, as an earlier load would be)
sql -q -c "SELECT pg_stat_force_next_flush()" >/dev/null
for i in $(seq 1 40); do echo "SELECT count(*) FROM t$i WHERE k = 5 AND v > 3 AND id < 15000;"; done |
	sql -q >/dev/null
started=$(date +%s%N)
sql -c "SELECT count(*) FROM perfopt.index_recommendations" >/dev/null
echo "# advice on 40 statements took $(( ($(date +%s%N) - started) / 1000000 )) ms"
out=$(sql -c "SET perfopt.advisor_max_candidates = 10000" -c "SET statement_timeout = '5ms'" \
	-c "SELECT count(*) FROM perfopt.index_recommendations" 2>&1)
assert_match "a statement_timeout cancels the advice" "canceling statement due to statement timeout" "$out"
out=$(as_pg psql -X -At -h "$db_HOST" -p "$db_PORT" -U postgres -d postgres \
	-c "SET perfopt.advisor_max_candidates = 10000" \
	-c "SET statement_timeout = '5ms'" -c "SELECT count(*) FROM perfopt.index_recommendations" \
	-c "RESET statement_timeout" -c "EXPLAIN (COSTS OFF) SELECT * FROM items WHERE k = 5" 2>&1)
assert_match "after the cancel the session plans without hypothetical indexes" "Seq Scan on items" "$out"
assert_eq "and the advice still works in full: one index per table" 40 \
	"$(sql -q -c "SET perfopt.advisor_max_candidates = 1000" -c "SELECT count(*) FROM perfopt.index_recommendations WHERE table_name LIKE 'public.t%'")"

assert_summary
