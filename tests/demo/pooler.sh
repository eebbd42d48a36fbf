# tests/demo/pooler.sh: perfopt-pooler in the demo.  Sourced by tests/demo/run,
# which calls:
#   demo_pooler_start PG_PORT PG_SOCKET_DIR DBNAME
#       start the pooler in front of the demo cluster (transaction mode,
#       pool_size 20, no overflow) on port 6432 if free, else another free
#       port; sets DEMO_POOLER_PORT (and DEMO_POOLER_HOST=127.0.0.1), and
#       samples client and server connection counts twice a second
#   demo_pooler_report
#       a short summary: clients connected to the pooler vs server
#       connections PostgreSQL sees (now and at peak), then what the pooler
#       itself reports: SHOW POOLS / SHOW STATS on its admin console and a
#       few series of its Prometheus endpoint
#   demo_pooler_stop
#       stop the sampler and the pooler (by pid), remove their files
# DEMO_PG_USER (default $DEMO_USER, else postgres) counts connections.

_demo_pooler_port_free() {
	! (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_demo_pooler_counts() {
	local clients servers
	clients=$(ss -Htn state established "( sport = :$DEMO_POOLER_PORT )" 2>/dev/null | wc -l)
	servers=$(psql -X -At -h "$DEMO_POOLER_PG_HOST" -p "$DEMO_POOLER_PG_PORT" -U "${DEMO_PG_USER:-${DEMO_USER:-postgres}}" \
		-d "$DEMO_POOLER_DB" -c "SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND datname = current_database()
		  AND pid <> pg_backend_pid() AND client_addr IS NULL" 2>/dev/null)
	echo "${clients:-0} ${servers:-0}"
}

demo_pooler_start() {
	local pg_port=$1 sockdir=$2 db=$3 root bin port ini i
	root=${PERFOPT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
	bin=$root/pooler/perfopt-pooler
	[ -x "$bin" ] || bin=$(command -v perfopt-pooler) || { echo "demo: perfopt-pooler not built" >&2; return 1; }
	DEMO_POOLER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/perfopt-demo-pooler.XXXXXX")
	chmod 755 "$DEMO_POOLER_DIR"
	port=6432
	while ! _demo_pooler_port_free "$port"; do port=$((port + 1)); done
	DEMO_POOLER_METRICS_PORT=9127
	while ! _demo_pooler_port_free "$DEMO_POOLER_METRICS_PORT" || [ "$DEMO_POOLER_METRICS_PORT" = "$port" ]; do
		DEMO_POOLER_METRICS_PORT=$((DEMO_POOLER_METRICS_PORT + 1))
	done
	ini=$DEMO_POOLER_DIR/perfopt-pooler.ini
	cat >"$ini" <<EOF2
; written by tests/demo/pooler.sh
[databases]
$db = host=$sockdir port=$pg_port dbname=$db
* = host=$sockdir port=$pg_port

[pooler]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $DEMO_POOLER_DIR
pool_mode = transaction
pool_size = 20
max_overflow = 0
pool_timeout = 30
auth_type = trust
max_client_conn = 5000
admin_users = ${DEMO_PG_USER:-${DEMO_USER:-postgres}}
metrics_port = $DEMO_POOLER_METRICS_PORT
logfile = $DEMO_POOLER_DIR/pooler.log
EOF2
	"$bin" -c "$ini" >>"$DEMO_POOLER_DIR/pooler.log" 2>&1 &
	DEMO_POOLER_PID=$!
	for ((i = 0; i < 100; i++)); do
		_demo_pooler_port_free "$port" || break
		kill -0 "$DEMO_POOLER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if _demo_pooler_port_free "$port"; then
		echo "demo: perfopt-pooler did not start:" >&2
		tail -5 "$DEMO_POOLER_DIR/pooler.log" >&2
		return 1
	fi
	DEMO_POOLER_PORT=$port
	DEMO_POOLER_HOST=127.0.0.1
	DEMO_POOLER_PG_HOST=$sockdir
	DEMO_POOLER_PG_PORT=$pg_port
	DEMO_POOLER_DB=$db
	export DEMO_POOLER_PORT DEMO_POOLER_HOST
	# peak clients and peak server connections, sampled twice a second
	(
		peak_c=0 peak_s=0
		while :; do
			read -r c s <<<"$(_demo_pooler_counts)"
			[ "$c" -gt "$peak_c" ] && peak_c=$c
			[ "$s" -gt "$peak_s" ] && peak_s=$s
			echo "$peak_c $peak_s" >"$DEMO_POOLER_DIR/peaks.tmp" && mv "$DEMO_POOLER_DIR/peaks.tmp" "$DEMO_POOLER_DIR/peaks"
			sleep 0.5
		done
	) >/dev/null 2>&1 &
	DEMO_POOLER_SAMPLER=$!
	echo "perfopt-pooler listening on 127.0.0.1:$port (transaction mode, pool_size 20) in front of $db"
	return 0
}

demo_pooler_report() {
	[ -n "${DEMO_POOLER_PORT:-}" ] || { echo "perfopt-pooler: not running"; return 0; }
	local now peaks
	now=$(_demo_pooler_counts)
	peaks=$(cat "$DEMO_POOLER_DIR/peaks" 2>/dev/null || echo "0 0")
	echo "perfopt-pooler (127.0.0.1:$DEMO_POOLER_PORT, transaction mode, pool_size 20):"
	echo "  clients connected to the pooler:     now ${now% *}, peak ${peaks% *}"
	echo "  server connections PostgreSQL sees:  now ${now#* }, peak ${peaks#* } (limit 20)"
	if [ "${peaks% *}" -gt 20 ] && [ "${peaks#* }" -le 20 ]; then
		echo "  => ${peaks% *} clients were served by at most ${peaks#* } PostgreSQL backends"
	fi
	_demo_pooler_console
	_demo_pooler_metrics
	return 0
}

# The admin console: the virtual database "perfopt" answers SHOW commands.
_demo_pooler_console() {
	local admin="psql -X -h 127.0.0.1 -p $DEMO_POOLER_PORT -U ${DEMO_PG_USER:-${DEMO_USER:-postgres}} -d perfopt"
	echo "  admin console ($admin -c 'SHOW POOLS'):"
	$admin -c "SHOW POOLS" 2>&1 | sed 's/^/    /'
	echo "  SHOW STATS:"
	$admin -c "SHOW STATS" 2>&1 | sed 's/^/    /'
}

# A scrape of the Prometheus endpoint, the series for the demo's pool.
_demo_pooler_metrics() {
	local url="http://127.0.0.1:$DEMO_POOLER_METRICS_PORT/metrics"
	echo "  Prometheus endpoint ($url), the demo pool's counters:"
	python3 - "$url" "$DEMO_POOLER_DB" <<'PY' 2>&1 | sed 's/^/    /'
import sys, urllib.request
url, db = sys.argv[1], sys.argv[2]
wanted = ("transactions_total", "queries_total", "waits_total", "wait_timeouts_total",
          "server_connections{", "clients_waiting", "wait_seconds_count", "pre_ping_failures_total")
for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
    if line.startswith("perfopt_pooler_") and 'database="%s"' % db in line and any(w in line for w in wanted):
        print(line)
PY
}

demo_pooler_stop() {
	if [ -n "${DEMO_POOLER_SAMPLER:-}" ]; then
		kill "$DEMO_POOLER_SAMPLER" 2>/dev/null || true
		wait "$DEMO_POOLER_SAMPLER" 2>/dev/null || true
	fi
	if [ -n "${DEMO_POOLER_PID:-}" ] && kill -0 "$DEMO_POOLER_PID" 2>/dev/null; then
		kill "$DEMO_POOLER_PID" 2>/dev/null || true
		wait "$DEMO_POOLER_PID" 2>/dev/null || true
	fi
	if [ -n "${DEMO_POOLER_DIR:-}" ] && [ -z "${KEEP_TMP:-}" ]; then
		rm -rf "$DEMO_POOLER_DIR"
	fi
	DEMO_POOLER_PID= DEMO_POOLER_SAMPLER= DEMO_POOLER_PORT= DEMO_POOLER_DIR=
	return 0
}
