#!/usr/bin/env bash
# PostgreSQL's own core regression suite (src/test/regress, parallel_schedule)
# with perfopt preloaded at its defaults gives exactly the results it gives
# without perfopt: the standing proof of "do no harm" on SQL nobody here wrote.
#
# The suite comes from Debian's source package of PostgreSQL 15 (the newest
# release of it the registry serves; apt checks the signed index, and the
# tarball's SHA-256 is checked again against the .dsc), regress.so is built
# with PGXS.  Both runs use the same server binaries in throwaway instances;
# the plain one sets compute_query_id = on, as preloading perfopt does (like
# pg_stat_statements), so EXPLAIN VERBOSE shows a Query Identifier in both
# (its value, which holds table OIDs, is masked).
# Results are compared with each other, not with the suite's expected files:
# a suite a release or two away from the server differs from its expected
# output in the same way in both runs, and that is not perfopt's doing.
#
# One check per test of the schedule.  Without the registry (no network)
# nothing can be fetched: the suite is reported as not run, never passed.
# PG_CORE_REGRESS_CACHE keeps the download and the plain run between runs
# (default under /var/cache; tests/lib/core_regress.sh): the plain run is
# shared with pg_core_regress_cache.sh, which compares it with a server where
# every table is cached.
set -uo pipefail
ROOT=${PERFOPT_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$ROOT/tests/lib/cluster.sh"
. "$ROOT/tests/lib/assert.sh"
. "$ROOT/tests/lib/core_regress.sh"

WORK=$(make_pg_dir coreregress)
[ -z "${KEEP_TMP:-}" ] && trap 'rm -rf "$WORK"' EXIT

core_begin "$WORK"
echo "shared_preload_libraries = 'perfopt'" >"$WORK/perfopt.conf"
core_run "$WORK" perfopt || { echo "0 passed, 1 failed"; exit 1; }

for t in $(core_tests "$WORK"); do
	a=$WORK/out_plain/results/$t.out
	b=$WORK/out_perfopt/results/$t.out
	if [ -f "$a" ] && [ -f "$b" ] && cmp -s <(core_normalized "$a") <(core_normalized "$b"); then
		pass "$t: the same result with perfopt preloaded"
	else
		fail "$t: the same result with perfopt preloaded"
		diff -u <(core_normalized "$a") <(core_normalized "$b") 2>&1 | head -40
	fi
done
assert_summary
