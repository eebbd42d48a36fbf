#!/usr/bin/env bash
# PostgreSQL's own core regression suite (parallel_schedule) on a server
# where perfopt.cache_mode = 'all' and every table the suite creates is
# cached, compared with plain PostgreSQL's run of the same suite: what the
# cache answers must be what PostgreSQL answers, on SQL nobody here wrote.
#
# Every table gets a table rule from an event trigger installed, with the
# extension, in the regression database before the suite's first test
# (ddl_command_end of CREATE TABLE, CREATE TABLE AS, SELECT INTO, calling
# perfopt.cache_table()).  Left uncached, each for a reason:
#   * what perfopt never caches: temporary and foreign tables, views,
#     materialized views (cache_table() refuses them);
#   * the tables create_view.sql and rules.sql turn into views with CREATE
#     RULE "_RETURN": a table with triggers cannot become a view.
# Partitions and inheritance children are cached like any table.
#
# Differences allowed, each recognised by tests/lib/core_regress_norm.py and
# nothing else: perfopt's trigger in \d listings, rows naming perfopt's
# objects (catalog-wide queries list its functions and event triggers, lock
# listings its rule table, which its event trigger reads during CREATE and
# ALTER TABLE, EXPLAIN ANALYZE its trigger's calls),
# pg_trigger queries that count triggers without naming them, the suite's
# event triggers reporting the trigger perfopt creates with a table, the
# "Perfopt Cache:" line of EXPLAIN ANALYZE (a rule selects every statement),
# and the order of rows of statements without ORDER BY.
#
# One check per test of the schedule, one for the setup and one that the
# cache answered (hits and stores counted over the run).  The plain run is
# shared with pg_core_regress.sh (tests/lib/core_regress.sh keeps it).
set -uo pipefail
ROOT=${PERFOPT_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
. "$ROOT/tests/lib/core_regress.sh"

WORK=$(make_pg_dir corecache)
[ -z "${KEEP_TMP:-}" ] && trap 'rm -rf "$WORK"' EXIT

core_begin "$WORK"

mkdir -p "$WORK/src/sql" "$WORK/src/expected"
cat >"$WORK/src/sql/perfopt_cache_all.sql" <<'EOS'
CREATE FUNCTION perfopt.perfopt_regress_cache_every_table() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t oid;
BEGIN
    FOR t IN
        SELECT DISTINCT c.objid
          FROM pg_event_trigger_ddl_commands() c
          JOIN pg_class r ON r.oid = c.objid
         WHERE c.classid = 'pg_class'::regclass
           AND c.command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
           AND r.relkind IN ('r', 'p') AND r.relpersistence <> 't'
           AND r.relname NOT IN ('tt27', 'tt28', 'rules_fooview', 'rules_fooview_child',
                                 'rules_fooview_part')
    LOOP
        PERFORM perfopt.cache_table(t);
    END LOOP;
END $$;
CREATE EVENT TRIGGER perfopt_regress_cache_every_table ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
    EXECUTE FUNCTION perfopt.perfopt_regress_cache_every_table();
SHOW perfopt.cache_mode;
CREATE TABLE perfopt_probe (a int);
SELECT kind, tbl FROM perfopt.cache_rules;
SELECT perfopt.uncache_table('perfopt_probe');
DROP TABLE perfopt_probe;
EOS
cat >"$WORK/src/sql/perfopt_cache_totals.sql" <<'EOS'
SELECT 'totals' AS what, hits, stores FROM perfopt.cache_totals;
SELECT 'rules', count(*) FROM perfopt.cache_rule_defs;
EOS
touch "$WORK/src/expected/perfopt_cache_all.out" "$WORK/src/expected/perfopt_cache_totals.out"
{
	echo "test: perfopt_cache_all"
	cat "$WORK/src/parallel_schedule"
	echo "test: perfopt_cache_totals"
} >"$WORK/cacheall.schedule"
cat >"$WORK/cacheall.conf" <<'EOS'
shared_preload_libraries = 'perfopt'
perfopt.cache_mode = 'all'
EOS
core_run "$WORK" cacheall --load-extension=perfopt || { echo "0 passed, 1 failed"; exit 1; }

setup=$WORK/out_cacheall/results/perfopt_cache_all.out
if grep -q ERROR "$setup" || ! grep -q '^ table | perfopt_probe$' "$setup"; then
	fail "setup: every new table gets a cache rule"
	cat "$setup"
else
	pass "setup: every new table gets a cache rule"
fi

# perfopt's objects, by name, from its own SQL
grep -ohiE '^CREATE (UNIQUE )?(FUNCTION|VIEW|TABLE|INDEX|TRIGGER|EVENT TRIGGER) (perfopt\.)?[a-z_0-9]+' \
	"$ROOT"/extension/*.sql "$ROOT"/extension/*/*.sql | awk '{print $NF}' | sed 's/^perfopt\.//' |
	sort -u >"$WORK/names"
mkdir -p "$WORK/norm_plain" "$WORK/norm_cacheall"
python3 "$ROOT/tests/lib/core_regress_norm.py" "$WORK/norm_plain" "$WORK"/out_plain/results/*.out &&
	python3 "$ROOT/tests/lib/core_regress_norm.py" --cached --names "$WORK/names" \
		"$WORK/norm_cacheall" "$WORK"/out_cacheall/results/*.out ||
	{ echo "0 passed, 1 failed"; exit 1; }
for t in $(core_tests "$WORK"); do
	a=$WORK/norm_plain/$t.out
	b=$WORK/norm_cacheall/$t.out
	if [ -f "$a" ] && [ -f "$b" ] && cmp -s "$a" "$b"; then
		pass "$t: the same result with every table cached"
	else
		fail "$t: the same result with every table cached"
		diff -u "$a" "$b" 2>&1 | head -60
	fi
done

read -r hits stores < <(awk -F'|' '$1 ~ /^ totals *$/ {gsub(/ /, ""); print $2, $3}' \
	"$WORK/out_cacheall/results/perfopt_cache_totals.out")
core_log "cache over the run: ${hits:-?} hits, ${stores:-?} stores"
if [ "${hits:-0}" -gt 0 ] && [ "${stores:-0}" -gt 0 ]; then
	pass "the cache answered during the suite (${hits} hits, ${stores} stores)"
else
	fail "the cache answered during the suite"
	cat "$WORK/out_cacheall/results/perfopt_cache_totals.out"
fi
assert_summary
