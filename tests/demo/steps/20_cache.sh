#!/usr/bin/env bash
# tests/demo/steps/20_cache.sh: the result cache on the demo app.
# Caches the sample leaderboard with perfopt.cache_query() (no change to the
# app's SQL), then shows its latency before and after and the hit ratio:
# first with the leaderboard alone (people watching the boards), then
# inside the app's whole mix, where a finished game (submit_score)
# invalidates its own game's board (the board reads scores WHERE game_id =
# a constant: a key) and nothing else: touching the player's last_seen is
# an UPDATE of a column no board reads.  The cache never serves a stale
# board.  The hit ratio follows the views per write of each board: the
# whole mix views a board about seven times per finished game; a
# write-heavy variant (three finished games per view, the mix's old
# proportions) shows the other end.  The last runs are evenings: spectators
# refresh the boards while games finish at a steady rate, each of
# DEMO_GAMES_PER_SEC ("1 5 20" games a second), and print the hit ratio
# each rate gives.
# Run by tests/demo/run with PGHOST PGPORT PGDATABASE PGUSER (and DEMO_*)
# pointing at the demo database.
set -euo pipefail

q() { psql -X -q -v ON_ERROR_STOP=1 -P pager=off -P null='' "$@"; }
ROOT=${PERFOPT_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
WL=$ROOT/tests/demo/workload
SECS=${DEMO_CACHE_SECONDS:-10}
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
echo "   The triggers the rule put on the tables it reads:"
q <<'SQL'
SELECT t.tgrelid::regclass AS "table", t.tgname AS "trigger",
       CASE WHEN t.tgname = 'perfopt_cache_keys'
            THEN 'each row''s band of ' || (SELECT string_agg(a.attname, ', ') FROM pg_attribute a
                                             WHERE a.attrelid = t.tgrelid
                                               AND a.attnum::text = ANY (string_to_array(encode(t.tgargs, 'escape'), '\000')))
            ELSE 'INSERT, DELETE, TRUNCATE, UPDATE of ' ||
                 coalesce((SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
                            WHERE a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr)), 'any column')
       END AS "notes"
  FROM pg_trigger t
 WHERE t.tgname LIKE 'perfopt_cache_%' AND t.tgrelid <> 'perfopt.cache_rule_defs'::regclass
 ORDER BY 1, 2;
SQL

mapfile -t MIX < <(for f in "$WL"/*.sql; do
	printf '%s\n' -f "$f@$(sed -n 's/^-- weight: *\([0-9][0-9]*\).*/\1/p' "$f" | head -1)"; done)
# the same mix with three finished games per board view
mapfile -t HEAVY < <(printf '%s\n' "${MIX[@]}" |
	sed -e "s|/leaderboard.sql@.*|/leaderboard.sql@50|" -e "s|/submit_score.sql@.*|/submit_score.sql@150|")

echo
echo "== Leaderboard latency and hit ratio, $CLIENTS clients, ${SECS}s per run"
printf '%-44s %10s %14s %8s %8s %9s\n' "run" "tps" "leaderboard ms" "hits" "misses" "hit ratio"
run "leaderboards only, cache off (before)" "-c perfopt.cache_mode=off" -f "$WL/leaderboard.sql"
run "leaderboards only, cached (after)" "" -f "$WL/leaderboard.sql"
run "whole app mix, cache off" "-c perfopt.cache_mode=off" "${MIX[@]}"
run "whole app mix, cached" "" "${MIX[@]}"
run "write-heavy mix (3 games per view), cached" "" "${HEAVY[@]}"

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
	echo "   ($games games finished meanwhile, each one invalidating its game's board)"
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
echo "   A finished game (submit_score) inserts a score of one game and touches the"
echo "   player's last_seen: the commit invalidates that game's board only (the"
echo "   board reads scores WHERE game_id = a constant, so its entry depends on that"
echo "   key), and no board at all for last_seen, a column no board reads.  The"
echo "   cache never serves a board missing a score.  The hit ratio follows how"
echo "   often each board is viewed per finished game of its own: about seven times"
echo "   in the whole mix, a third of a time in the write-heavy one, where boards"
echo "   are nearly always recomputed."
