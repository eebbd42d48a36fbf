#!/usr/bin/env bash
# tests/demo/steps/20_cache.sh: the result cache on the demo app (issue 3).
# Caches the sample leaderboard with perfopt.cache_query() (no change to the
# app's SQL), then shows its latency before and after and the hit ratio:
# first with the leaderboard alone (people watching the boards), then
# inside the app's full mix, where every finished game (submit_score)
# invalidates the boards at once: the cache never serves a stale board.
# The hit ratio follows the reads per write of the tables read: the full
# mix finishes three games per leaderboard view, so its boards are nearly
# always recomputed.  The last runs are read-heavy evenings: spectators
# refresh the boards while games finish at a steady rate, each of
# DEMO_GAMES_PER_SEC ("1 5 20" games a second), and print the hit ratio
# each rate gives.
# Run by tests/demo/run with PGHOST PGPORT PGDATABASE PGUSER (and DEMO_*)
# pointing at the demo database.
set -euo pipefail

q() { psql -X -q -v ON_ERROR_STOP=1 -P pager=off -P null='' "$@"; }
ROOT=${PERFOPT_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
WL=$ROOT/tests/demo/workload
SECS=${DEMO_CACHE_SECONDS:-5}
CLIENTS=${DEMO_CLIENTS:-4}
GAMES_PER_SEC=${DEMO_GAMES_PER_SEC:-1 5 20}

# The leaderboard exactly as the app sends it, with one game's constant.
LB_SQL=$(grep -v '^\\set\|^--' "$WL/leaderboard.sql" | sed 's/:gid/1/')

# run LABEL PGOPTIONS pgbench-args... -> one line of the results table
totals() { q -At -F ' ' -c "SELECT coalesce(sum(hits), 0), coalesce(sum(misses), 0) FROM perfopt.cache_stats WHERE queryid = $QID"; }
run() {
	local label=$1 opts=$2 out h0 m0 h1 m1; shift 2
	read -r h0 m0 < <(totals)
	out=$(PGOPTIONS="$opts" pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -r "$@" 2>&1) ||
		{ echo "$out" | tail -5 >&2; return 1; }
	read -r h1 m1 < <(totals)
	# the leaderboard's own average latency, from pgbench's per-statement report
	local lat
	lat=$(echo "$out" | awk '/SELECT u.name, max\(s.points\)/ {print $1; exit}')
	printf '%-44s %10s %14s %8s %8s %9s\n' "$label" "$(echo "$out" | sed -n 's/^tps = \([0-9]*\).*/\1/p')" \
		"${lat:-?}" $((h1 - h0)) $((m1 - m0)) \
		"$(awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN {if (h + m) printf "%.1f%%", 100 * h / (h + m); else print "-"}')"
}

echo
echo "== Result cache: caching the leaderboard without touching the app"
echo "   SELECT perfopt.cache_query('${LB_SQL//$'\n'/ }')"
QID=$(q -At -c "SELECT perfopt.cache_query(\$q\$$LB_SQL\$q\$)")
q -c "SELECT kind, left(regexp_replace(query, '\s+', ' ', 'g'), 50) AS query, triggered_tables FROM perfopt.cache_rules"

mapfile -t MIX < <(for f in "$WL"/*.sql; do
	printf '%s\n' -f "$f@$(sed -n 's/^-- weight: *\([0-9][0-9]*\).*/\1/p' "$f" | head -1)"; done)

echo
echo "== Leaderboard latency and hit ratio, $CLIENTS clients, ${SECS}s per run"
printf '%-44s %10s %14s %8s %8s %9s\n' "run" "tps" "leaderboard ms" "hits" "misses" "hit ratio"
run "leaderboards only, cache off (before)" "-c perfopt.cache_mode=off" -f "$WL/leaderboard.sql"
run "leaderboards only, cached (after)" "" -f "$WL/leaderboard.sql"
run "whole app mix, cache off" "-c perfopt.cache_mode=off" "${MIX[@]}"
run "whole app mix, cached" "" "${MIX[@]}"

# spectators RATE: leaderboard views at full speed while one more client
# finishes RATE games a second (pgbench -R), both for SECS seconds
spectators() {
	local rate=$1 label="evening: boards viewed, $1 games/s finish" h0 m0 h1 m1 out wpid games
	read -r h0 m0 < <(totals)
	pgbench -n -c 1 -T "$SECS" -R "$rate" -f "$WL/submit_score.sql" >"$TMPW" 2>&1 &
	wpid=$!
	out=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -r -f "$WL/leaderboard.sql" 2>&1) ||
		{ echo "$out" | tail -5 >&2; wait "$wpid"; return 1; }
	wait "$wpid" || { tail -5 "$TMPW" >&2; return 1; }
	read -r h1 m1 < <(totals)
	games=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TMPW")
	printf '%-44s %10s %14s %8s %8s %9s\n' "$label" "$(echo "$out" | sed -n 's/^tps = \([0-9]*\).*/\1/p')" \
		"$(echo "$out" | awk '/SELECT u.name, max\(s.points\)/ {print $1; exit}')" $((h1 - h0)) $((m1 - m0)) \
		"$(awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN {if (h + m) printf "%.1f%%", 100 * h / (h + m); else print "-"}')"
	echo "   ($games games finished meanwhile, each one invalidating every board)"
}
TMPW=$(mktemp)
trap 'rm -f "$TMPW"' EXIT
for rate in $GAMES_PER_SEC; do
	spectators "$rate"
done

echo
echo "== perfopt.cache_stats for the leaderboard"
q <<SQL
SELECT hits, misses, round(hit_ratio::numeric, 3) AS hit_ratio, entries, bytes, invalidations, evictions,
       round(mean_hit_time::numeric, 3) AS "hit ms", round(mean_miss_time::numeric, 3) AS "miss ms"
  FROM perfopt.cache_stats WHERE queryid = $QID;
SQL
echo "   In the full mix every finished game (submit_score, 3x as frequent as a"
echo "   leaderboard view) changes the scores table, so each board is recomputed"
echo "   after a write: the cache never serves a board missing a score.  The hit"
echo "   ratio follows the reads per write and what a miss costs (every board is"
echo "   recomputed, ~45 ms each here, after every finished game): with a game"
echo "   finishing every second most views are answered from the cache, each one"
echo "   exactly what running the query would return; at 20 games a second the"
echo "   boards are recomputed nearly all the time."
