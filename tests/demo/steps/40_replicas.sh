#!/usr/bin/env bash
# tests/demo/steps/40_replicas.sh: scaling reads out to a hot standby.
# Makes a streaming standby of the demo database (pg_basebackup -R, on
# loopback; it inherits shared_preload_libraries, so perfopt runs there
# too), puts a second perfopt-pooler in front of both with
# read_only_routing and causal_reads = session, and shows:
#   - where transactions went: writes to the primary, BEGIN READ ONLY to the
#     standby (each server's own count of the statements);
#   - read-your-writes: a player submits a score and reads their best back
#     in a read-only transaction on the standby, every time seeing it;
#   - the standby's own result cache answering the leaderboard (cached by
#     the cache step with perfopt.cache_query), kept exact by the
#     invalidations the primary logs in the WAL;
#   - SHOW DATABASES: each host's role, health and replay lag.
# The standby and this pooler are stopped at the end of the step.
# Run by tests/demo/run with PGHOST PGPORT PGDATABASE PGUSER (and DEMO_*)
# pointing at the demo database.
set -euo pipefail
ROOT=${PERFOPT_ROOT:-$(cd "$(dirname "$0")/../../.." && pwd)}
. "$ROOT/tests/lib/cluster.sh"
ROUNDS=${DEMO_REPLICA_ROUNDS:-300}
BIN=$ROOT/pooler/perfopt-pooler
[ -x "$BIN" ] || BIN=$(command -v perfopt-pooler)
q() { psql -X -q -v ON_ERROR_STOP=1 -P pager=off "$@"; }

echo
echo "== Scaling reads out: a hot standby behind the pooler"
PRIM_PORT=$DEMO_PORT
PRIM_HOST=$DEMO_HOST
WORK=$(make_pg_dir demo-replica)
POOLER_PID=
cleanup() {
	[ -n "$POOLER_PID" ] && kill "$POOLER_PID" 2>/dev/null && wait "$POOLER_PID" 2>/dev/null
	cluster_stop_all
	rm -rf "$WORK"
}
trap cleanup EXIT
cluster_start_standby STBY PRIM >/dev/null
cluster_wait_replay STBY PRIM
echo "   standby made with pg_basebackup -R, streaming on port $STBY_PORT; primary on $DEMO_PORT"

port=$(free_port 16432)
cat >"$WORK/pooler.ini" <<EOF
[databases]
$DEMO_DB = host=127.0.0.1,127.0.0.1 port=$DEMO_PORT,$STBY_PORT dbname=$DEMO_DB read_only_routing=on causal_reads=session

[pooler]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
admin_users = $DEMO_USER
pool_size = 10
EOF
"$BIN" -c "$WORK/pooler.ini" 2>"$WORK/pooler.log" &
POOLER_PID=$!
for _ in $(seq 1 100); do
	q -h 127.0.0.1 -p "$port" -U "$DEMO_USER" -d "$DEMO_DB" -c "SELECT 1" >/dev/null 2>&1 && break
	sleep 0.1
done
echo "   pooler on port $port:  $DEMO_DB = host=127.0.0.1,127.0.0.1 port=$DEMO_PORT,$STBY_PORT read_only_routing=on causal_reads=session"

calls() {
	psql -X -At -h "$1" -p "$2" -U "$DEMO_USER" -d "$DEMO_DB" -c \
		"SELECT coalesce(sum(calls), 0) FROM perfopt.query_stats WHERE query LIKE '$3%'"
}
best_q='SELECT max(points) FROM scores WHERE user_id'
ins_q='INSERT INTO scores'
p0=$(calls "$DEMO_HOST" "$DEMO_PORT" "$best_q"); s0=$(calls "$STBY_HOST" "$STBY_PORT" "$best_q")
w0=$(calls "$DEMO_HOST" "$DEMO_PORT" "$ins_q")

echo
echo "-- $ROUNDS rounds: a player submits a score (a write), then reads their best back in BEGIN READ ONLY"
/usr/bin/python3 - "$port" "$DEMO_DB" "$DEMO_USER" "$ROUNDS" <<'PY'
import random, sys, time
import psycopg
port, db, user, rounds = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
stale, waits = 0, []
with psycopg.connect(host="127.0.0.1", port=port, dbname=db, user=user, autocommit=True) as c:
    for i in range(rounds):
        uid, points = random.randint(1, 50000), 1000000 + i
        c.execute("INSERT INTO scores (user_id, game_id, points, played_at) VALUES (%s, 1, %s, now())",
                  (uid, points))
        t0 = time.perf_counter()
        c.execute("BEGIN READ ONLY")
        best = c.execute("SELECT max(points) FROM scores WHERE user_id = %s", (uid,)).fetchone()[0]
        c.execute("COMMIT")
        waits.append((time.perf_counter() - t0) * 1000)
        stale += best is None or best < points
waits.sort()
print("   reads that missed the player's own score: %d of %d (read median %.2f ms, p99 %.2f ms)"
      % (stale, rounds, waits[len(waits) // 2], waits[int(len(waits) * 0.99) - 1]))
PY
p1=$(calls "$DEMO_HOST" "$DEMO_PORT" "$best_q"); s1=$(calls "$STBY_HOST" "$STBY_PORT" "$best_q")
w1=$(calls "$DEMO_HOST" "$DEMO_PORT" "$ins_q")
echo "   writes run on the primary: $((w1 - w0)); read-only reads on the primary: $((p1 - p0)), on the standby: $((s1 - s0))"

echo
echo "-- the leaderboard, read 500 times in read-only transactions through the pooler"
LB=$(grep -v '^\\set\|^--' "$ROOT/tests/demo/workload/leaderboard.sql" | sed 's/:gid/1/')
cat >"$WORK/lb.sql" <<EOF
BEGIN READ ONLY;
$LB
END;
EOF
chmod 644 "$WORK/lb.sql"
before=$(psql -X -At -h "$STBY_HOST" -p "$STBY_PORT" -U "$DEMO_USER" -d "$DEMO_DB" -c \
	"SELECT coalesce(sum(hits), 0) || ' ' || coalesce(sum(misses), 0) FROM perfopt.cache_stats")
pgbench -n -h 127.0.0.1 -p "$port" -U "$DEMO_USER" -c 2 -t 250 -f "$WORK/lb.sql" "$DEMO_DB" >/dev/null
after=$(psql -X -At -h "$STBY_HOST" -p "$STBY_PORT" -U "$DEMO_USER" -d "$DEMO_DB" -c \
	"SELECT coalesce(sum(hits), 0) || ' ' || coalesce(sum(misses), 0) FROM perfopt.cache_stats")
read -r h0 m0 <<<"$before"; read -r h1 m1 <<<"$after"
echo "   the standby's own result cache: $((h1 - h0)) hits, $((m1 - m0)) misses (invalidations arrive in the WAL:"
echo "   perfopt.cache_standby_wal = on on the primary)"

echo
echo "-- SHOW DATABASES on the pooler's admin console"

/usr/bin/python3 - "$port" "$DEMO_USER" <<'PY'
import sys
import psycopg
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), dbname="perfopt", user=sys.argv[2],
                     autocommit=True) as c:
    cur = c.execute("SHOW DATABASES")
    cols = [d.name for d in cur.description]
    keep = ["name", "host", "port", "role", "health", "replay_lag_bytes", "checked_ms_ago", "failures"]
    rows = [[str(r[cols.index(k)]) for k in keep] for r in cur.fetchall()]
    w = [max(len(k), *(len(r[i]) for r in rows)) for i, k in enumerate(keep)]
    print("   " + " | ".join(k.ljust(w[i]) for i, k in enumerate(keep)))
    for r in rows:
        print("   " + " | ".join(v.ljust(w[i]) for i, v in enumerate(r)))
PY
